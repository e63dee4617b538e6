/*
 * model_cache.c - the per-backend cache of deserialised models behind
 * iceml_predict, predict_table, predict_batch and evaluate.
 *
 * The cache.  Each backend (and each parallel worker, for its short life)
 * keeps up to PREDICT_MAX_ENTRIES models, keyed by deployment name or by
 * "#<model id>", within iceml.predict_cache_mb bytes (least recently used
 * first out).  An entry remembers the deployment row and the model row
 * (id and xmin) it was built from.
 *
 * Staying current without a catalog query per call.  Every change that can
 * make an entry stale sends a relcache invalidation for iceml.deployments:
 * the trigger on iceml.deployments (a deploy) and the one on iceml.models
 * (a model deleted or rewritten) call CacheInvalidateRelcacheByRelid, which
 * PostgreSQL delivers to other backends only when the transaction commits
 * (never for a rolled-back one).  Our relcache callback notes the time it
 * saw one.  An entry is trusted without a query when it was checked in a
 * statement (or, under REPEATABLE READ and SERIALIZABLE, a transaction) that
 * began after the last invalidation; otherwise the first call of the
 * statement checks it once, with the statement's own snapshot, so one
 * statement always uses one deployment and the next statement after a
 * committed deploy uses the new one.
 *
 * Reading the catalog.  Checks and loads run as the owner of iceml's
 * catalog, in read-only SPI with the caller's snapshot: iceml_reader may
 * call iceml_predict but not read iceml.models.weights.  Parallel workers do
 * the same for themselves on their first call (read-only SPI is allowed
 * there).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/namespace.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "iceml_predict.h"
#include "iceml_worker.h"

#define PREDICT_MAX_ENTRIES 32
#define PREDICT_KEY_LEN		(NAMEDATALEN * 2)

typedef struct PredictEntry
{
	bool		used;
	char		key[PREDICT_KEY_LEN];	/* deployment name, or "#<id>" */
	int64		deployment_id;	/* 0 for the model-id form */
	int			nmembers;		/* 1, or an ensemble's size */
	bool		tta;
	int64		model_ids[ICEML_PREDICT_MAX_MEMBERS];
	TransactionId model_xmins[ICEML_PREDICT_MAX_MEMBERS];	/* each model row's version */
	TimestampTz checked_basis;	/* statement/xact start of the last check */
	uint64		last_used;
	TimestampTz pinned_basis;	/* not evicted during this statement (PredictPin) */
	size_t		bytes;			/* accounted against iceml.predict_cache_mb */
	IcemlModel	model;
} PredictEntry;

static PredictEntry entries[PREDICT_MAX_ENTRIES];
static uint64 use_clock = 0;
static TimestampTz last_inval = 0;	/* when a deployment/model change arrived */
static Oid	deployments_relid = InvalidOid;
static int	predict_cache_mb = 256;

/* counters for iceml.predict_cache() */
static int64 stat_loads = 0;
static int64 stat_checks = 0;
static int64 stat_evictions = 0;

/* ---- invalidation --------------------------------------------------------- */

static void
PredictRelcacheCallback(Datum arg, Oid relid)
{
	/* InvalidOid: the whole relcache is being reset (e.g. queue overflow) */
	if (relid == InvalidOid || relid == deployments_relid)
	{
		last_inval = GetCurrentTimestamp();
		if (relid == deployments_relid)
			deployments_relid = InvalidOid;	/* may have been dropped: look again */
	}
}

static Oid
DeploymentsRelid(bool missing_ok)
{
	if (!OidIsValid(deployments_relid))
	{
		Oid			nsp = get_namespace_oid("iceml", true);

		if (OidIsValid(nsp))
			deployments_relid = get_relname_relid("deployments", nsp);
		if (!OidIsValid(deployments_relid) && !missing_ok)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("iceml catalog table iceml.deployments is missing"),
					 errhint("Create the extension with CREATE EXTENSION iceml.")));
	}
	return deployments_relid;
}

/*
 * The statement (or, with a transaction snapshot, the transaction) whose
 * snapshot a check uses.  Parallel workers get the leader's timestamps.
 */
static TimestampTz accepted_basis = 0;	/* last basis invalidations were taken in */

static TimestampTz
CheckBasis(void)
{
	return IsolationUsesXactSnapshot() ? GetCurrentTransactionStartTimestamp()
		: GetCurrentStatementStartTimestamp();
}

/*
 * iceml._predict_cache_invalidate(): trigger on iceml.deployments and
 * iceml.models.  The relcache invalidation is queued with the transaction
 * and sent to other backends at commit only.
 */
PG_FUNCTION_INFO_V1(iceml_predict_cache_invalidate);
Datum
iceml_predict_cache_invalidate(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iceml._predict_cache_invalidate() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(DeploymentsRelid(false));
	return PointerGetDatum(NULL);
}

/* ---- entries -------------------------------------------------------------- */

/* Free a model's nets and buffers (any of them may be missing). */
static void
FreeModel(IcemlModel *m)
{
	for (int i = 0; i < m->nmembers; i++)
		iceml_net_free(m->members[i]);
	free(m->input);
	memset(m, 0, sizeof(*m));
}

static void
FreeEntry(PredictEntry *e)
{
	FreeModel(&e->model);
	memset(e, 0, sizeof(*e));
}

/* An entry's memory: with the engine's batch workspace once a batched call made it. */
static size_t
EntryBytes(const PredictEntry *e)
{
	return e->bytes + (e->model.batched ? e->model.batch_bytes : 0);
}

static size_t
CacheBytes(void)
{
	size_t		total = 0;

	for (int i = 0; i < PREDICT_MAX_ENTRIES; i++)
		if (entries[i].used)
			total += EntryBytes(&entries[i]);
	return total;
}

/* Evict least recently used entries (never `keep`) until `need` more fit. */
static void
MakeRoom(size_t need, PredictEntry *keep)
{
	size_t		budget = (size_t) predict_cache_mb * 1024 * 1024;

	for (;;)
	{
		PredictEntry *victim = NULL;
		int			n = 0;

		for (int i = 0; i < PREDICT_MAX_ENTRIES; i++)
			if (entries[i].used)
				n++;
		if (CacheBytes() + need <= budget && n < PREDICT_MAX_ENTRIES)
			return;
		for (int i = 0; i < PREDICT_MAX_ENTRIES; i++)
			if (entries[i].used && &entries[i] != keep &&
				entries[i].pinned_basis != CheckBasis() &&
				(victim == NULL || entries[i].last_used < victim->last_used))
				victim = &entries[i];
		if (victim == NULL)
			return;				/* only `keep` and pinned ones are left: may exceed the budget */
		FreeEntry(victim);
		stat_evictions++;
	}
}

static PredictEntry *
FindEntry(const char *key)
{
	for (int i = 0; i < PREDICT_MAX_ENTRIES; i++)
		if (entries[i].used && strcmp(entries[i].key, key) == 0)
			return &entries[i];
	return NULL;
}

/*
 * Add member k (model model_id, a serialised net and its channels) to m.
 * The first member sets the input shape and channels; the others must take
 * the same (iceml.deploy_ensemble checks it; a restored or rewritten row
 * could still differ).  On error the caller frees m with FreeModel.
 */
static void
AddMember(IcemlModel *m, int k, int64 model_id, bytea *weights, ArrayType *channels)
{
	char		err[ICEML_NN_ERRLEN];
	IcemlNet   *net;
	Datum	   *elems;
	bool	   *nulls;
	int			nch,
				c,
				h,
				w;

	net = iceml_net_load(VARDATA_ANY(weights), VARSIZE_ANY_EXHDR(weights), err, sizeof(err));
	if (net == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model %lld cannot be loaded: %s", (long long) model_id, err)));
	m->members[k] = net;
	m->member_ids[k] = model_id;
	m->nmembers = k + 1;
	/* side inputs (issue 16): iceml_predict supplies the incidence angle */
	for (int i = 0; i < iceml_net_side_count(net); i++)
		if (i > 0 || strcmp(iceml_net_side_name(net, i), "inc_angle") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("model %lld takes side input \"%s\", which iceml_predict cannot supply",
							(long long) model_id, iceml_net_side_name(net, i)),
					 errdetail("iceml_predict supplies one side input, inc_angle.")));
	{
		IcemlNetMemory mem;

		/* what the engine's 32-image inference workspace adds (PredictScore) */
		iceml_net_memory(net, 1, &mem);
		m->batch_bytes += (size_t) (mem.predict_bytes - mem.model_bytes);
	}
	iceml_net_input_shape(net, &c, &h, &w);
	deconstruct_array(channels, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nch);
	if (nch != c || c > ICEML_PREDICT_MAX_CHANNELS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model %lld names %d channels but its net takes %d",
						(long long) model_id, nch, c)));
	if (k > 0 && (c != m->c || h != m->h || w != m->w))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model %lld takes %dx%dx%d images but model %lld, the first member of the ensemble, takes %dx%dx%d",
						(long long) model_id, c, h, w, (long long) m->model_id, m->c, m->h, m->w)));
	for (int i = 0; i < nch; i++)
	{
		char	   *ch = TextDatumGetCString(elems[i]);
		int			code;

		if (strcmp(ch, "band_1") == 0)
			code = CH_BAND_1;
		else if (strcmp(ch, "band_2") == 0)
			code = CH_BAND_2;
		else if (strcmp(ch, "band_avg") == 0)
			code = CH_BAND_AVG;
		else
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("model %lld takes channel \"%s\", which iceml_predict cannot build",
							(long long) model_id, ch),
					 errdetail("iceml_predict builds band_1, band_2 and band_avg from its arguments.")));
		if (k > 0 && code != m->channel[i])
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("model %lld takes channel \"%s\" in place %d, unlike model %lld, the first member of the ensemble",
							(long long) model_id, ch, i + 1, (long long) m->model_id)));
		m->channel[i] = code;
	}
	if (k == 0)
	{
		m->net = net;
		m->model_id = model_id;
		m->c = c;
		m->h = h;
		m->w = w;
		m->input = malloc(sizeof(float) * (size_t) c * h * w);
		if (m->input == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory loading model %lld", (long long) model_id)));
	}
}

/*
 * Load the members of a deployment (or one model) into m: all or nothing.
 * Runs inside the catalog owner's SPI connection.
 */
static size_t
BuildModel(IcemlModel *m, int nmembers, const int64 *ids, bool tta)
{
	size_t		bytes = 0;

	memset(m, 0, sizeof(*m));
	PG_TRY();
	{
		for (int k = 0; k < nmembers; k++)
		{
			Datum		arg = Int64GetDatum(ids[k]);
			Oid			argtype = INT8OID;
			Datum		d;
			bytea	   *weights;

			if (SPI_execute_with_args("SELECT weights, channels FROM iceml.models"
									  " WHERE id OPERATOR(pg_catalog.=) $1",
									  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT ||
				SPI_processed != 1)
				elog(ERROR, "iceml: model %lld vanished while loading", (long long) ids[k]);
			SpiGetDatum(0, 1, &d);
			weights = DatumGetByteaPP(d);
			bytes += VARSIZE_ANY_EXHDR(weights) * 2;
			SpiGetDatum(0, 2, &d);
			AddMember(m, k, ids[k], weights, DatumGetArrayTypeP(d));
			SPI_freetuptable(SPI_tuptable);
		}
	}
	PG_CATCH();
	{
		FreeModel(m);
		PG_RE_THROW();
	}
	PG_END_TRY();
	/* flips keep a non-square image's shape; quarter turns need a square */
	m->views = !tta ? 1 : m->h == m->w ? 8 : 4;
	m->angle = NAN;
	bytes += sizeof(float) * (size_t) m->c * m->h * m->w;	/* m->input */
	return bytes;
}

/*
 * For src/shard/shard_predict.c (scale-out), a few lines kept here so that the
 * channel mapping stays in one place: a model built from a serialised net
 * and its channels outside the cache, and its release.
 */
void
PredictBuildModel(IcemlModel *m, int64 model_id, bytea *weights, ArrayType *channels)
{
	memset(m, 0, sizeof(*m));
	PG_TRY();
	{
		AddMember(m, 0, model_id, weights, channels);
	}
	PG_CATCH();
	{
		FreeModel(m);
		PG_RE_THROW();
	}
	PG_END_TRY();
	m->views = 1;
	m->angle = NAN;
}

void
PredictFreeModel(IcemlModel *m)
{
	FreeModel(m);
}

/*
 * Check (and if need be load) the entry for `key` against the catalog, with
 * the active snapshot, as the catalog owner.
 */
static PredictEntry *
CheckEntryQueries(const char *key, const char *name, int64 model_id_arg, PredictEntry *e)
{
	Datum		arg;
	Oid			argtype;
	int64		deployment_id = 0;
	int64		ids[ICEML_PREDICT_MAX_MEMBERS];
	TransactionId xmins[ICEML_PREDICT_MAX_MEMBERS];
	int			nmembers = 1;
	bool		tta = false;
	Datum		d;

	if (name)
	{
		Datum	   *ide,
				   *xe;
		bool	   *idn,
				   *xn;
		int			nx;

		arg = CStringGetTextDatum(name);
		argtype = TEXTOID;
		/* the latest deployment: its models in order, and each one's row version */
		if (SPI_execute_with_args("SELECT d.id, d.tta, u.ids,"
								  "       ARRAY(SELECT m.xmin::text::bigint"
								  "               FROM pg_catalog.unnest(u.ids) WITH ORDINALITY x(id, k)"
								  "               LEFT JOIN iceml.models m ON m.id OPERATOR(pg_catalog.=) x.id"
								  "              ORDER BY x.k)"
								  "  FROM iceml.deployments d,"
								  "       LATERAL (SELECT COALESCE(d.members, ARRAY[d.model_id]) AS ids) u"
								  " WHERE d.name OPERATOR(pg_catalog.=) $1"
								  " ORDER BY d.id DESC LIMIT 1",
								  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "iceml: deployment lookup failed");
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("no model is deployed under the name \"%s\"", name),
					 errhint("Deploy one with iceml.deploy('%s'), or call iceml_predict with a model id.", name)));
		SpiGetDatum(0, 1, &d);
		deployment_id = DatumGetInt64(d);
		SpiGetDatum(0, 2, &d);
		tta = DatumGetBool(d);
		SpiGetDatum(0, 3, &d);
		deconstruct_array(DatumGetArrayTypeP(d), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &ide, &idn, &nmembers);
		SpiGetDatum(0, 4, &d);
		deconstruct_array(DatumGetArrayTypeP(d), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &xe, &xn, &nx);
		if (nmembers < 1 || nmembers > ICEML_PREDICT_MAX_MEMBERS || nx != nmembers)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("deployment %lld under the name \"%s\" has %d models; iceml_predict runs 1 to %d",
							(long long) deployment_id, name, nmembers, ICEML_PREDICT_MAX_MEMBERS)));
		for (int k = 0; k < nmembers; k++)
		{
			ids[k] = DatumGetInt64(ide[k]);
			if (xn[k])
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("model %lld deployed under the name \"%s\" no longer exists", (long long) ids[k], name),
						 errhint("Deploy another model with iceml.deploy('%s', 'rollback') or iceml.deploy('%s', <model id>).",
								 name, name)));
			xmins[k] = (TransactionId) DatumGetInt64(xe[k]);
		}
	}
	else
	{
		ids[0] = model_id_arg;
		arg = Int64GetDatum(model_id_arg);
		argtype = INT8OID;
		if (SPI_execute_with_args("SELECT m.xmin::text::bigint FROM iceml.models m"
								  " WHERE m.id OPERATOR(pg_catalog.=) $1",
								  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "iceml: model lookup failed");
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model %lld does not exist", (long long) model_id_arg)));
		SpiGetDatum(0, 1, &d);
		xmins[0] = (TransactionId) DatumGetInt64(d);
	}

	if (e == NULL || e->nmembers != nmembers || e->tta != tta ||
		memcmp(e->model_ids, ids, sizeof(int64) * nmembers) != 0 ||
		memcmp(e->model_xmins, xmins, sizeof(TransactionId) * nmembers) != 0)
	{
		IcemlModel m;
		size_t		bytes;

		if (e)
			FreeEntry(e);
		e = NULL;
		bytes = BuildModel(&m, nmembers, ids, tta);
		MakeRoom(bytes, NULL);
		stat_loads++;
		/* a free slot exists after MakeRoom */
		for (int i = 0; i < PREDICT_MAX_ENTRIES && e == NULL; i++)
			if (!entries[i].used)
				e = &entries[i];
		Assert(e != NULL);
		memset(e, 0, sizeof(*e));
		e->used = true;
		strlcpy(e->key, key, sizeof(e->key));
		e->model = m;
		e->bytes = bytes;
		e->nmembers = nmembers;
		e->tta = tta;
		memcpy(e->model_ids, ids, sizeof(int64) * nmembers);
		memcpy(e->model_xmins, xmins, sizeof(TransactionId) * nmembers);
	}
	e->deployment_id = deployment_id;
	e->model.deployment_id = deployment_id;
	e->checked_basis = CheckBasis();
	return e;
}

static PredictEntry *
CheckEntry(const char *key, const char *name, int64 model_id_arg, PredictEntry *e)
{
	IcemlOwnerContext own;
	PredictEntry *volatile result = NULL;

	DeploymentsRelid(false);
	stat_checks++;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	BecomeCatalogOwner(&own);
	PG_TRY();
	{
		result = CheckEntryQueries(key, name, model_id_arg, e);
	}
	PG_CATCH();
	{
		RestoreUser(&own);
		PG_RE_THROW();
	}
	PG_END_TRY();
	RestoreUser(&own);
	SPI_finish();
	return result;
}

IcemlModel *
PredictGetModel(const char *name, int64 model_id)
{
	char		key[PREDICT_KEY_LEN];
	PredictEntry *e;

	if (name)
	{
		if (strlen(name) >= NAMEDATALEN * 2 - 1)
			ereport(ERROR,
					(errcode(ERRCODE_NAME_TOO_LONG),
					 errmsg("deployment name \"%.40s...\" is too long", name)));
		strlcpy(key, name, sizeof(key));
	}
	else
		snprintf(key, sizeof(key), "#%lld", (long long) model_id);

	/*
	 * Once per statement, take in the invalidations other backends have
	 * committed since: a statement that opens no relation (predict over
	 * constants in a transaction block) would otherwise not see them, and
	 * keep serving the model deployed before.
	 */
	if (CheckBasis() != accepted_basis)
	{
		AcceptInvalidationMessages();
		accepted_basis = CheckBasis();
	}
	e = FindEntry(key);
	/* trusted: checked by a statement that began after the last change */
	if (e == NULL || !(e->checked_basis > last_inval || e->checked_basis == CheckBasis()))
		e = CheckEntry(key, name, model_id, e);
	e->last_used = ++use_clock;
	return &e->model;
}

void
PredictPin(IcemlModel *m)
{
	for (int i = 0; i < PREDICT_MAX_ENTRIES; i++)
		if (entries[i].used && &entries[i].model == m)
			entries[i].pinned_basis = CheckBasis();
}

/*
 * iceml.predict_cache(): this backend's cached models and counters, to see
 * (and test) that warm calls neither load nor query.
 */
PG_FUNCTION_INFO_V1(iceml_predict_cache);
Datum
iceml_predict_cache(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < PREDICT_MAX_ENTRIES; i++)
	{
		Datum		v[9];
		bool		n[9] = {0};

		if (!entries[i].used)
			continue;
		v[0] = CStringGetTextDatum(entries[i].key);
		v[1] = Int64GetDatum(entries[i].deployment_id);
		n[1] = entries[i].deployment_id == 0;
		v[2] = Int64GetDatum(entries[i].model_ids[0]);
		v[3] = Int64GetDatum((int64) EntryBytes(&entries[i]));
		v[4] = Int64GetDatum(stat_loads);
		v[5] = Int64GetDatum(stat_checks);
		v[6] = Int64GetDatum(stat_evictions);
		v[7] = Int32GetDatum(entries[i].nmembers);
		v[8] = BoolGetDatum(entries[i].tta);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(iceml_predict_cache_reset);
Datum
iceml_predict_cache_reset(PG_FUNCTION_ARGS)
{
	int			n = 0;

	for (int i = 0; i < PREDICT_MAX_ENTRIES; i++)
		if (entries[i].used)
		{
			FreeEntry(&entries[i]);
			n++;
		}
	stat_loads = stat_checks = stat_evictions = 0;
	PG_RETURN_INT32(n);
}

/* The setting iceml.predict_cache_mb and the invalidation callback; from _PG_init. */
void
ModelCacheInit(void)
{
	DefineCustomIntVariable("iceml.predict_cache_mb",
							"Memory a backend may use for cached models of iceml_predict().",
							"Least recently used models are freed beyond it; one model is always kept.",
							&predict_cache_mb,
							256, 1, 65536,
							PGC_SUSET, GUC_UNIT_MB,
							NULL, NULL, NULL);
	CacheRegisterRelcacheCallback(PredictRelcacheCallback, (Datum) 0);
}
