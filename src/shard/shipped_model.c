/*
 * shipped_model.c - models named by their content: the SHA-256 content hash
 * of a model, iceml.predict_model (the IMMUTABLE form of iceml_predict that
 * postgres_fdw ships to nodes) with its per-backend cache of models by
 * hash, and on the coordinator resolving a deployment to (model, hash) and
 * copying the model to a node (iceml.receive_model there).  The planner
 * hook that uses them is in shard_predict.c.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/parallel.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/cost.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
#include "parser/parse_oper.h"
#include "partitioning/partdesc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "access/table.h"

#include "iceml.h"
#include "iceml_catalog.h"
#include "iceml_predict.h"
#include "iceml_shard.h"
#include "shard_internal.h"

#define SHIPPED_CACHE_ENTRIES 8

/* ---- content hash ----------------------------------------------------------- */

/*
 * SHA-256 of the serialised net, a zero byte and the channels joined by
 * commas, as 64 hex digits: what names a model's content on every server.
 */
static void
ModelContentHash(bytea *weights, ArrayType *channels, char *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	StringInfoData ch;

	deconstruct_array(channels, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	initStringInfo(&ch);
	appendStringInfoChar(&ch, '\0');
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a model's channels must not contain NULL")));
		appendStringInfo(&ch, "%s%s", i ? "," : "", TextDatumGetCString(elems[i]));
	}
	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) VARDATA_ANY(weights), VARSIZE_ANY_EXHDR(weights)) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) ch.data, ch.len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
	{
		pg_cryptohash_free(ctx);
		elog(ERROR, "could not compute a SHA-256 hash");
	}
	pg_cryptohash_free(ctx);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
	out[HASH_HEX_LEN] = '\0';
}

/*
 * The content hash argument of predict_model: bytea, not text, because
 * postgres_fdw does not send a function with a text constant argument (its
 * collation does not come from a foreign column).  As hex digits.
 */
static char *
HashArg(bytea *b)
{
	char	   *hex;

	if (VARSIZE_ANY_EXHDR(b) != PG_SHA256_DIGEST_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid model content hash of %d bytes", (int) VARSIZE_ANY_EXHDR(b)),
				 errdetail("A content hash is the %d bytes of a SHA-256 digest.", PG_SHA256_DIGEST_LENGTH),
				 errhint("iceml.shipped_models.content_hash holds them as hexadecimal digits: decode(content_hash, 'hex').")));
	hex = palloc(HASH_HEX_LEN + 1);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", ((const uint8 *) VARDATA_ANY(b))[i]);
	return hex;
}

bytea *
HashBytes(const char *hex)
{
	bytea	   *b = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

	SET_VARSIZE(b, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
	{
		unsigned int v;

		sscanf(hex + 2 * i, "%2x", &v);
		((uint8 *) VARDATA(b))[i] = (uint8) v;
	}
	return b;
}

/*
 * iceml._model_content_hash(weights bytea, channels text[], model_id bigint)
 * RETURNS text: the content hash of a serialised model, after checking
 * that it loads (model_id names it in errors)
 * (22023 / XX001 otherwise) and fits iceml.max_model_mb (54000).
 */
PG_FUNCTION_INFO_V1(iceml_model_content_hash);

Datum
iceml_model_content_hash(PG_FUNCTION_ARGS)
{
	bytea	   *weights = PG_GETARG_BYTEA_PP(0);
	ArrayType  *channels = PG_GETARG_ARRAYTYPE_P(1);
	int64		model_id = PG_GETARG_INT64(2);
	char		hash[HASH_HEX_LEN + 1];
	IcemlModel	m;

	if ((int64) VARSIZE_ANY_EXHDR(weights) > (int64) iceml_max_model_mb * 1024 * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model of %lld bytes exceeds iceml.max_model_mb (%d MB)",
						(long long) VARSIZE_ANY_EXHDR(weights), iceml_max_model_mb)));
	if (ARR_NDIM(channels) != 1 || ARR_ELEMTYPE(channels) != TEXTOID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channels must be a one-dimensional text[]")));
	ModelContentHash(weights, channels, hash);
	/* it must load, with channels iceml_predict can build */
	PredictBuildModel(&m, model_id, weights, channels);
	PredictFreeModel(&m);
	PG_RETURN_TEXT_P(cstring_to_text(hash));
}

/* ---- iceml.predict_model: the immutable form ------------------------------- */

typedef struct ShippedEntry
{
	bool		used;
	char		hash[HASH_HEX_LEN + 1];
	uint64		last_used;
	IcemlModel	model;
} ShippedEntry;

static ShippedEntry shipped[SHIPPED_CACHE_ENTRIES];
static uint64 shipped_clock = 0;

/* the model of content `hash` on this server, as the catalog owner */
static void
LoadByHash(IcemlModel *m, int64 model_id, const char *hash)
{
	IcemlOwnerContext own;
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(hash)};
	Oid			idtype[1] = {INT8OID};
	Datum		idarg[1] = {Int64GetDatum(model_id)};
	bool		found = false;
	bool		mismatch = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	BecomeCatalogOwner(&own);
	if (SPI_execute_with_args("SELECT weights, channels FROM iceml.shipped_models"
							  " WHERE content_hash OPERATOR(pg_catalog.=) $1",
							  1, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "iceml: shipped model lookup failed");
	if (SPI_processed == 0)
	{
		if (SPI_execute_with_args("SELECT weights, channels FROM iceml.models"
								  " WHERE id OPERATOR(pg_catalog.=) $1",
								  1, idtype, idarg, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "iceml: model lookup failed");
	}
	if (SPI_processed == 1)
	{
		bool		isnull;
		bytea	   *w = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		ArrayType  *ch = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		char		h[HASH_HEX_LEN + 1];

		ModelContentHash(w, ch, h);
		if (strcmp(h, hash) == 0)
		{
			PredictBuildModel(m, model_id, w, ch);
			found = true;
		}
		else
			mismatch = true;
	}
	RestoreUser(&own);
	SPI_finish();
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model %lld with content hash %.12s... is not on this server",
						(long long) model_id, hash),
				 mismatch ? errdetail("Model %lld here has other weights.", (long long) model_id)
				 : errdetail("Neither iceml.shipped_models nor iceml.models holds it."),
				 errhint("A coordinator copies a model to its nodes when it plans a query that predicts over a sharded feature group; "
						 "a transaction that read this node before the copy does not see it: run the query in a new transaction.")));
}

static IcemlModel *
ShippedModel(int64 model_id, const char *hash)
{
	ShippedEntry *e = NULL;

	for (int i = 0; i < SHIPPED_CACHE_ENTRIES; i++)
		if (shipped[i].used && strcmp(shipped[i].hash, hash) == 0)
			e = &shipped[i];
	if (e == NULL)
	{
		IcemlModel	m;

		LoadByHash(&m, model_id, hash);
		/* a free entry, or the least recently used one */
		for (int i = 0; i < SHIPPED_CACHE_ENTRIES; i++)
			if (e == NULL || !shipped[i].used ||
				(e->used && shipped[i].last_used < e->last_used))
				e = &shipped[i];
		if (e->used)
			PredictFreeModel(&e->model);
		memset(e, 0, sizeof(*e));
		e->used = true;
		strlcpy(e->hash, hash, sizeof(e->hash));
		e->model = m;
	}
	e->last_used = ++shipped_clock;
	/* the id in errors is the caller's name for it */
	e->model.model_id = model_id;
	return &e->model;
}

/*
 * iceml.predict_model(model_id bigint, content_hash text, band_1 real[],
 * band_2 real[], inc_angle real) RETURNS real, IMMUTABLE: iceml_predict by
 * a model's content.  NULL model or bands give NULL.
 */
PG_FUNCTION_INFO_V1(iceml_predict_model);

Datum
iceml_predict_model(PG_FUNCTION_ARGS)
{
	char	   *hash;
	float		angle;
	IcemlModel *m;
	const float *b1,
			   *b2;
	float		p;
	instr_time	start;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_NULL();
	hash = HashArg(PG_GETARG_BYTEA_PP(1));
	INSTR_TIME_SET_CURRENT(start);
	/* NULL: a missing angle */
	angle = PG_ARGISNULL(4) ? NAN
		: PredictCheckAngle(PG_GETARG_FLOAT4(4), "iceml.predict_model", "argument inc_angle");
	m = ShippedModel(PG_GETARG_INT64(0), hash);
	b1 = PredictCheckBand(PG_GETARG_ARRAYTYPE_P(2), "iceml.predict_model", "band_1", m->h * m->w);
	b2 = PredictCheckBand(PG_GETARG_ARRAYTYPE_P(3), "iceml.predict_model", "band_2", m->h * m->w);
	PredictFillInput(m, b1, b2);
	m->angle = angle;
	p = PredictRun(m, m->input);

	/*
	 * Sampled as iceml_predict is (this server's iceml.log_inferences),
	 * under the sender's model id with no name or deployment: the
	 * coordinator collects these records (iceml.collect_inferences) and
	 * names the deployment.
	 */
	if (iceml_log_inferences > 0)
		MonitorRecord(m, NULL, b1, b2, m->h * m->w, !isnan(angle), angle, p, start);
	PG_RETURN_FLOAT4(p);
}

/* ---- the coordinator: resolving, shipping ----------------------------------- */

/* content hashes of this server's models, by (id, row version) */
typedef struct HashMemo
{
	int64		model_id;
	int64		xmin;
	char		hash[HASH_HEX_LEN + 1];
} HashMemo;

#define HASH_MEMO_ENTRIES 16
static HashMemo hash_memo[HASH_MEMO_ENTRIES];
static int	hash_memo_next = 0;

bool
IsPredictFunc(Oid funcid, bool *by_name)
{
	char	   *name = get_func_name(funcid);
	Oid			ext;
	Oid		   *argtypes;
	int			nargs;

	if (name == NULL || strcmp(name, "iceml_predict") != 0)
		return false;
	ext = get_extension_oid("iceml", true);
	if (!OidIsValid(ext) || getExtensionOfObject(ProcedureRelationId, funcid) != ext)
		return false;
	get_func_signature(funcid, &argtypes, &nargs);
	if (nargs != 4)
		return false;
	*by_name = argtypes[0] == TEXTOID;
	return argtypes[0] == TEXTOID || argtypes[0] == INT8OID;
}

/*
 * The model iceml_predict would use, with this statement's snapshot:
 * false when there is none (the call is left as it is and fails, or not,
 * as on one server).
 */
bool
ResolveModel(const char *name, int64 id, int64 *model_id, char *hash)
{
	IcemlOwnerContext own;
	bool		ok = false;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	BecomeCatalogOwner(&own);
	if (name)
	{
		Oid			t[1] = {TEXTOID};
		Datum		a[1] = {CStringGetTextDatum(name)};

		if (SPI_execute_with_args("SELECT d.model_id, m.xmin::text::bigint FROM iceml.deployments d"
								  " LEFT JOIN iceml.models m ON m.id OPERATOR(pg_catalog.=) d.model_id"
								  " WHERE d.name OPERATOR(pg_catalog.=) $1 ORDER BY d.id DESC LIMIT 1",
								  1, t, a, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "iceml: deployment lookup failed");
	}
	else
	{
		Oid			t[1] = {INT8OID};
		Datum		a[1] = {Int64GetDatum(id)};

		if (SPI_execute_with_args("SELECT m.id, m.xmin::text::bigint FROM iceml.models m"
								  " WHERE m.id OPERATOR(pg_catalog.=) $1",
								  1, t, a, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "iceml: model lookup failed");
	}
	if (SPI_processed == 1)
	{
		int64		xmin;

		*model_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		xmin = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (!isnull)
		{
			for (int i = 0; i < HASH_MEMO_ENTRIES && !ok; i++)
				if (hash_memo[i].model_id == *model_id && hash_memo[i].xmin == xmin &&
					hash_memo[i].hash[0])
				{
					strcpy(hash, hash_memo[i].hash);
					ok = true;
				}
			if (!ok)
			{
				Oid			t[1] = {INT8OID};
				Datum		a[1] = {Int64GetDatum(*model_id)};
				HashMemo   *h = &hash_memo[hash_memo_next++ % HASH_MEMO_ENTRIES];

				if (SPI_execute_with_args("SELECT weights, channels FROM iceml.models"
										  " WHERE id OPERATOR(pg_catalog.=) $1",
										  1, t, a, NULL, true, 1) != SPI_OK_SELECT ||
					SPI_processed != 1)
					elog(ERROR, "iceml: model %lld vanished while planning", (long long) *model_id);
				ModelContentHash(DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
								 DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)),
								 hash);
				h->model_id = *model_id;
				h->xmin = xmin;
				strcpy(h->hash, hash);
				ok = true;
			}
		}
	}
	RestoreUser(&own);
	SPI_finish();
	return ok;
}

/* the node has the model, or gets it now (committed there at once) */
void
ShipModel(const char *node, int64 model_id, const char *hash)
{
	Oid			t1[1] = {TEXTOID};
	const char *v1[1] = {hash};
	PGresult   *res;
	bool		present;
	IcemlOwnerContext own;
	Oid			t[1] = {INT8OID};
	Datum		a[1] = {Int64GetDatum(model_id)};
	bool		isnull;
	bytea	   *w;
	char	   *channels;
	char	   *idtext;
	Oid			types[4] = {INT8OID, TEXTOID, BYTEAOID, TEXTARRAYOID};
	const char *values[4];
	int			lengths[4] = {0, 0, 0, 0};
	int			formats[4] = {0, 0, 1, 0};

	res = ShardNodeExecAutonomous(node, "SELECT pg_catalog.count(*) FROM iceml.shipped_models"
								  " WHERE content_hash OPERATOR(pg_catalog.=) $1",
								  1, t1, v1, NULL, NULL);
	present = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") != 0;
	PQclear(res);
	if (present)
		return;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	BecomeCatalogOwner(&own);
	if (SPI_execute_with_args("SELECT weights, channels::text FROM iceml.models WHERE id OPERATOR(pg_catalog.=) $1",
							  1, t, a, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "iceml: model %lld vanished while shipping", (long long) model_id);
	w = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	channels = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	RestoreUser(&own);

	idtext = psprintf(INT64_FORMAT, model_id);
	values[0] = idtext;
	values[1] = hash;
	values[2] = VARDATA_ANY(w);
	lengths[2] = VARSIZE_ANY_EXHDR(w);
	values[3] = channels;
	res = ShardNodeExecAutonomous(node, "SELECT iceml.receive_model($1, $2, $3, $4)",
								  4, types, values, lengths, formats);
	PQclear(res);

	/*
	 * A new copy means a deployment changed: the copies of models that no
	 * deployment here names any more go (README "Scale-out": copies).
	 */
	BecomeCatalogOwner(&own);
	if (SPI_execute("SELECT iceml._retired_model_hashes()::pg_catalog.text", true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "iceml: could not list the retired models");
	{
		char	   *retired = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		RestoreUser(&own);
		if (retired != NULL)
			(void) DropNodeModels(node, retired);
	}
	SPI_finish();
}

/*
 * Remove copies received from this coordinator (the node role's) from
 * `node`: those of the content hashes in `hashes` (a text[] literal), or all
 * when it is NULL.  On a connection of its own, committed there at once (a
 * copy is right or not whatever the local transaction does).  Returns how
 * many went.
 */
int64
DropNodeModels(const char *node, const char *hashes)
{
	Oid			types[1] = {TEXTARRAYOID};
	const char *values[1] = {hashes};
	PGresult   *res;
	int64		n;

	res = ShardNodeExecAutonomous(node, "SELECT iceml.drop_shipped_models($1)", 1, types, values, NULL, NULL);
	n = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return n;
}

/*
 * iceml._drop_node_models(node text, content_hashes text[]) RETURNS bigint:
 * DropNodeModels for iceml.cleanup_shipped_models and iceml.drop_node.
 */
PG_FUNCTION_INFO_V1(iceml_drop_node_models);

Datum
iceml_drop_node_models(PG_FUNCTION_ARGS)
{
	char	   *hashes = NULL;
	char	   *node;
	volatile int64 n = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("node must not be NULL")));
	node = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(1))
		hashes = OidOutputFunctionCall(F_ARRAY_OUT, PG_GETARG_DATUM(1));
	if (hashes != NULL)
		PG_RETURN_INT64(DropNodeModels(node, hashes));
	/* all copies: the node is being dropped, its connection is not needed */
	PG_TRY();
	{
		n = DropNodeModels(node, NULL);
	}
	PG_FINALLY();
	{
		ShardCloseNode(node);
	}
	PG_END_TRY();
	PG_RETURN_INT64(n);
}

/*
 * iceml._node_call(node text, sql text, arg text) RETURNS text: one
 * statement with one text parameter on a node, on a connection of its own,
 * committed there at once; the first column of its first row (NULL when
 * there is none).  For iceml.collect_inferences, whose marks make a
 * repeated call harmless.
 */
PG_FUNCTION_INFO_V1(iceml_node_call);

Datum
iceml_node_call(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {TEXTOID};
	const char *values[1];
	PGresult   *res;
	text	   *out = NULL;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("node and sql must not be NULL")));
	values[0] = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	res = ShardNodeExecAutonomous(text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)),
								  1, types, values, NULL, NULL);
	if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
		out = cstring_to_text(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (out == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(out);
}
