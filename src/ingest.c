/*
 * ingest.c - iceml.ingest_statoil(): the streaming loader of the Kaggle
 * Statoil/C-CORE layout into a feature group.
 *
 * The input (a server file, or a document passed as text) is either a JSON
 * array of records or JSON lines (one object per line).  The reader of
 * src/statoil_json.c reads it in 64 KiB chunks, feeds json-c's incremental
 * tokener one record at a time and hands out each record checked and
 * converted; it runs in a parse thread of its own (iceml.ingest_parse_thread)
 * a few records ahead of this backend, so only a few records are ever in
 * memory, whatever the size of the input.  Everything PostgreSQL (duplicate
 * ids, COPY, quarantine, errors) happens here, in the backend's thread.
 *
 * Good records are encoded in PostgreSQL's binary COPY format and handed to
 * the COPY machinery (BeginCopyFrom with a data-source callback, CopyFrom):
 * the load is ONE statement on the target table, so its triggers (the
 * feature store's expectations, commit rows and batch rules), constraints
 * and indexes apply as for any COPY.
 *
 * Bad records either fail the call (on_error 'abort': nothing is inserted)
 * or are stored whole in iceml.quarantine (on_error 'quarantine'), the rest
 * being inserted: read = inserted + quarantined.
 */
#include "postgres.h"

#include <string.h>
#include <sys/stat.h>

#include "access/genam.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/tableam.h"
#include "access/stratnum.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_authid_d.h"
#include "catalog/pg_type_d.h"
#include "commands/copy.h"
#include "commands/copyfrom_internal.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_relation.h"
#include "port/pg_bswap.h"
#include "storage/fd.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "iceml.h"
#include "iceml_fs.h"
#include "iceml_catalog.h"
#include "iceml_sar.h"
#include "iceml_statoil.h"


#define INGEST_BAND_LEN		STATOIL_BAND_LEN	/* 5625 values per band */
#define INGEST_RING			16	/* records remembered for COPY-time errors */
#define INGEST_ID_MAX		200 /* bytes of an id quoted in messages */

typedef enum RecordResult
{
	REC_EOF,
	REC_GOOD,
	REC_BAD
} RecordResult;

/* What COPY-time errors and the reject hook need to know of a record */
typedef struct RingSlot
{
	int64		tupleno;		/* 1-based COPY tuple number, 0 if unused */
	int64		recno;			/* 0-based record number in the input */
	StringInfoData id;
	StringInfoData raw;			/* quarantine mode only */
	bool		raw_capped;
	int64		raw_bytes;
} RingSlot;

typedef struct IdEntry
{
	char	   *id;				/* key: pointer to the id string */
	int64		recno;
} IdEntry;

typedef struct IngestState
{
	/* target */
	Relation	rel;
	Oid			relid;
	char	   *relname;		/* qualified, for messages */
	bool		quarantine;
	Oid			angle_type;		/* FLOAT4OID, FLOAT8OID or InvalidOid */
	Oid			label_type;		/* INT2OID, INT4OID, INT8OID, BOOLOID or InvalidOid */
	bool		has_avg;
	int16		nfields;

	/* input: the reader, run by the pipeline (in a thread of its own) */
	FILE	   *file;
	const char *path;
	const char *doc;
	size_t		doc_len;
	StatoilReader *reader;
	StatoilPipeline *pipe;
	StatoilRecord *rec;			/* the record being processed */
	MemoryContext recordcxt;

	/* the current record */
	int64		recno;
	const char *cur_id;
	const char *reason;
	const char *sqlstate;
	float	   *avg;

	/* COPY */
	CopyFromState cstate;
	StringInfoData out;
	int			out_pos;
	bool		header_sent;
	bool		finished;
	int64		ntuples;
	RingSlot	ring[INGEST_RING];
	ErrorContextCallback errcb;
	ErrorContextCallback *outer_stack;

	/* duplicates */
	HTAB	   *ids;
	MemoryContext idcxt;
	Relation	idxrel;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	Oid			eqproc;
	Oid			collation;

	/* results */
	int64		nread;
	int64		nquarantined;
	Tuplestorestate *qstore;
	TupleDesc	qdesc;
} IngestState;

/* GUC iceml.ingest_parse_thread */
static bool ingest_parse_thread = true;

/* the data-source callback of COPY takes no argument */
static IngestState *current_ingest = NULL;

static const char binary_signature[11] = "PGCOPY\n\377\r\n";

/* ----------------------------------------------------------------
 * One record
 * ---------------------------------------------------------------- */

/*
 * Is the id already taken, earlier in the input or in the table?  NULL if
 * not, else why.  Only when the target has a unique index on id alone.
 */
static const char *
CheckDuplicate(IngestState *st)
{
	const char *key = st->cur_id;
	IdEntry    *e;
	bool		found;
	ScanKeyData skey;

	if (st->ids == NULL)
		return NULL;
	e = (IdEntry *) hash_search(st->ids, &key, HASH_FIND, NULL);
	if (e)
		return psprintf("id \"%.*s\" already appears in record %lld of the input",
						INGEST_ID_MAX, key, (long long) e->recno);

	if (st->scan)
	{
		ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
							   st->collation, st->eqproc, CStringGetTextDatum(key));
		index_rescan(st->scan, &skey, 1, NULL, 0);
		found = index_getnext_slot(st->scan, ForwardScanDirection, st->slot);
		ExecClearTuple(st->slot);
		if (found)
			return psprintf("a row with id \"%.*s\" already exists in %s",
							INGEST_ID_MAX, key, st->relname);
	}

	e = (IdEntry *) hash_search(st->ids, &key, HASH_ENTER, &found);
	e->id = MemoryContextStrdup(st->idcxt, key);
	e->recno = st->recno;
	return NULL;
}

/* The input's structure is broken, or it cannot be read: the load ends */
static void pg_attribute_noreturn()
InputFatal(IngestState *st, StatoilRecord *rec)
{
	switch (rec->fatal)
	{
		case STATOIL_FATAL_IO:
			errno = rec->fatal_errno;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", st->path ? st->path : "(document)")));
			break;
		case STATOIL_FATAL_NOMEM:
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory while parsing Statoil record %lld",
							(long long) rec->recno)));
			break;
		case STATOIL_FATAL_TOO_BIG:
		case STATOIL_FATAL_STRUCTURE:
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("malformed Statoil input at byte %llu: %s",
					(unsigned long long) rec->fatal_offset, statoil_fatal_text(rec)),
			 errdetail("The input must be a JSON array of records or JSON lines (one object per line).")));
	pg_unreachable();
}

/*
 * Read the next record from the pipeline: REC_GOOD (in st->rec), REC_BAD
 * (st->reason, st->sqlstate) or REC_EOF.
 */
static RecordResult
NextRecord(IngestState *st)
{
	StatoilRecord *rec;

	if (st->rec)
	{
		statoil_pipeline_release(st->pipe, st->rec);
		st->rec = NULL;
	}
	MemoryContextReset(st->recordcxt);
	st->cur_id = NULL;
	st->reason = NULL;
	st->sqlstate = "22P02";

	/* a slow input must not make the backend deaf to cancels */
	while ((rec = statoil_pipeline_next(st->pipe, 100)) == NULL)
		CHECK_FOR_INTERRUPTS();
	if (rec->status == STATOIL_EOF)
		return REC_EOF;
	if (rec->status == STATOIL_FATAL)
		InputFatal(st, rec);
	st->rec = rec;
	st->recno = rec->recno;
	st->nread = rec->recno + 1;
	st->cur_id = rec->has_id ? rec->id : NULL;
	if (rec->status == STATOIL_BAD)
	{
		st->reason = rec->reason;
		st->sqlstate = rec->sqlstate;
		return REC_BAD;
	}
	if (!pg_verify_mbstr(GetDatabaseEncoding(), st->cur_id, strlen(st->cur_id), true))
	{
		st->reason = psprintf("\"id\" is not valid %s", GetDatabaseEncodingName());
		return REC_BAD;
	}
	st->reason = CheckDuplicate(st);
	if (st->reason)
	{
		st->sqlstate = "23505";
		return REC_BAD;
	}
	return REC_GOOD;
}

/* "record 3 (id "abc")" */
static char *
RecordLabel(int64 recno, const char *id)
{
	if (id)
		return psprintf("record %lld (id \"%.*s\")", (long long) recno, INGEST_ID_MAX, id);
	return psprintf("record %lld (no id)", (long long) recno);
}

/* ----------------------------------------------------------------
 * Quarantine
 * ---------------------------------------------------------------- */

static void
QuarantineAdd(IngestState *st, int64 recno, const char *id, const char *raw,
			  int rawlen, bool capped, int64 rawbytes, const char *reason,
			  const char *sqlstate)
{
	Datum		values[7];
	bool		nulls[7] = {0};
	int			valid;

	/* the raw text must be valid in the database encoding (and have no NUL) */
	valid = pg_encoding_verifymbstr(GetDatabaseEncoding(), raw, rawlen);
	if (valid < rawlen)
	{
		rawlen = valid;
		capped = true;
	}
	values[0] = Int64GetDatum(recno);
	if (id)
		values[1] = CStringGetTextDatum(id);
	else
		nulls[1] = true;
	values[2] = PointerGetDatum(cstring_to_text_with_len(raw, rawlen));
	values[3] = BoolGetDatum(capped);
	values[4] = Int64GetDatum(rawbytes);
	values[5] = CStringGetTextDatum(reason);
	values[6] = CStringGetTextDatum(sqlstate);
	tuplestore_putvalues(st->qstore, st->qdesc, values, nulls);
	st->nquarantined++;
}

/* The bad record just read: fail the call, or keep it for the quarantine */
static void
BadRecord(IngestState *st)
{
	if (!st->quarantine)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE(st->sqlstate[0], st->sqlstate[1], st->sqlstate[2],
									   st->sqlstate[3], st->sqlstate[4])),
				 errmsg("%s Statoil %s: %s",
						strcmp(st->sqlstate, "23505") == 0 ? "duplicate" : "invalid",
						RecordLabel(st->recno, st->cur_id), st->reason),
				 errdetail("Records are numbered from 0; nothing was ingested."),
				 errhint("Use on_error => 'quarantine' to keep bad records in iceml.quarantine and load the others.")));
	QuarantineAdd(st, st->recno, st->cur_id, st->rec->raw ? st->rec->raw : "",
				  (int) st->rec->raw_len, st->rec->raw_capped, st->rec->raw_bytes,
				  st->reason, st->sqlstate);
}

static RingSlot *
RingLookup(IngestState *st, int64 tupleno)
{
	RingSlot   *s = &st->ring[tupleno % INGEST_RING];

	return (tupleno > 0 && s->tupleno == tupleno) ? s : NULL;
}

/* The feature store hands over a row its expectations block */
static void
IngestRejectHook(Oid relid, HeapTuple tuple, const char *reason, void *arg)
{
	IngestState *st = (IngestState *) arg;
	RingSlot   *s;

	(void) tuple;
	if (relid != st->relid || st->cstate == NULL)
		return;
	s = RingLookup(st, (int64) st->cstate->cur_lineno);
	if (s == NULL)
		elog(ERROR, "iceml ingest: record of COPY row %llu not found",
			 (unsigned long long) st->cstate->cur_lineno);
	QuarantineAdd(st, s->recno, s->id.data, s->raw.data, s->raw.len,
				  s->raw_capped, s->raw_bytes, reason, "23514");
}

/* Errors raised by COPY, constraints and triggers name the record */
static void
IngestErrorCallback(void *arg)
{
	IngestState *st = (IngestState *) arg;
	RingSlot   *s = NULL;

	if (st->cstate)
		s = RingLookup(st, (int64) st->cstate->cur_lineno);
	if (s)
		errcontext("while ingesting %s into %s (records are numbered from 0)",
				   RecordLabel(s->recno, s->id.data), st->relname);
	else
		errcontext("while ingesting into %s", st->relname);
}

/* ----------------------------------------------------------------
 * Binary COPY encoding
 * ---------------------------------------------------------------- */

static inline void
PutInt16(StringInfo out, int16 v)
{
	uint16		n = pg_hton16((uint16) v);

	appendBinaryStringInfo(out, (char *) &n, 2);
}

static inline void
PutInt32(StringInfo out, int32 v)
{
	uint32		n = pg_hton32((uint32) v);

	appendBinaryStringInfo(out, (char *) &n, 4);
}

static void
PutFloat4Array(StringInfo out, const float *v, int n)
{
	int			size = 20 + n * 8;
	char	   *p;

	PutInt32(out, size);
	PutInt32(out, 1);			/* ndim */
	PutInt32(out, 0);			/* no nulls */
	PutInt32(out, FLOAT4OID);
	PutInt32(out, n);
	PutInt32(out, 1);			/* lower bound */
	enlargeStringInfo(out, n * 8);
	p = out->data + out->len;
	for (int i = 0; i < n; i++)
	{
		uint32		len = pg_hton32(4);
		uint32		bits;

		memcpy(&bits, &v[i], 4);
		bits = pg_hton32(bits);
		memcpy(p, &len, 4);
		memcpy(p + 4, &bits, 4);
		p += 8;
	}
	out->len += n * 8;
	out->data[out->len] = '\0';
}

static void
EncodeRecord(IngestState *st)
{
	StringInfo	out = &st->out;
	StatoilRecord *rec = st->rec;
	int			idlen = strlen(st->cur_id);
	char	   *id;

	/* binary COPY reads text in the client encoding */
	id = pg_server_to_client(st->cur_id, idlen);
	if (id != st->cur_id)
		idlen = strlen(id);
	PutInt16(out, st->nfields);
	PutInt32(out, idlen);
	appendBinaryStringInfo(out, id, idlen);
	PutFloat4Array(out, rec->band_1, INGEST_BAND_LEN);
	PutFloat4Array(out, rec->band_2, INGEST_BAND_LEN);
	if (st->angle_type != InvalidOid)
	{
		if (rec->angle_null)
			PutInt32(out, -1);
		else if (st->angle_type == FLOAT4OID)
		{
			float		f = rec->angle_f;
			uint32		bits;

			memcpy(&bits, &f, 4);
			PutInt32(out, 4);
			PutInt32(out, (int32) bits);
		}
		else
		{
			uint64		bits;

			memcpy(&bits, &rec->angle, 8);
			PutInt32(out, 8);
			PutInt32(out, (int32) (bits >> 32));
			PutInt32(out, (int32) (bits & 0xFFFFFFFF));
		}
	}
	if (st->label_type != InvalidOid)
	{
		if (rec->label_null)
			PutInt32(out, -1);
		else if (st->label_type == BOOLOID)
		{
			PutInt32(out, 1);
			appendStringInfoChar(out, rec->label ? 1 : 0);
		}
		else if (st->label_type == INT2OID)
		{
			PutInt32(out, 2);
			PutInt16(out, (int16) rec->label);
		}
		else if (st->label_type == INT4OID)
		{
			PutInt32(out, 4);
			PutInt32(out, rec->label);
		}
		else
		{
			PutInt32(out, 8);
			PutInt32(out, 0);
			PutInt32(out, rec->label);
		}
	}
	if (st->has_avg)
	{
		iceml_band_avg(rec->band_1, rec->band_2, st->avg, INGEST_BAND_LEN);
		PutFloat4Array(out, st->avg, INGEST_BAND_LEN);
	}
}

/* Remember the record about to become COPY tuple number ++ntuples */
static void
RingRemember(IngestState *st)
{
	RingSlot   *s;

	st->ntuples++;
	s = &st->ring[st->ntuples % INGEST_RING];
	s->tupleno = st->ntuples;
	s->recno = st->recno;
	resetStringInfo(&s->id);
	appendStringInfoString(&s->id, st->cur_id);
	if (st->quarantine)
	{
		resetStringInfo(&s->raw);
		appendBinaryStringInfo(&s->raw, st->rec->raw, st->rec->raw_len);
		s->raw_capped = st->rec->raw_capped;
		s->raw_bytes = st->rec->raw_bytes;
	}
}

/* Fill st->out with the next piece of the COPY stream */
static void
ProduceNext(IngestState *st)
{
	ErrorContextCallback *save = error_context_stack;

	resetStringInfo(&st->out);
	st->out_pos = 0;
	if (!st->header_sent)
	{
		appendBinaryStringInfo(&st->out, binary_signature, 11);
		PutInt32(&st->out, 0);	/* flags */
		PutInt32(&st->out, 0);	/* header extension */
		st->header_sent = true;
		return;
	}

	/*
	 * Errors of the records themselves name the record in their message;
	 * COPY's context line ("COPY x, line n") would only confuse.
	 */
	error_context_stack = st->outer_stack;
	for (;;)
	{
		RecordResult r;

		CHECK_FOR_INTERRUPTS();
		r = NextRecord(st);
		if (r == REC_EOF)
		{
			PutInt16(&st->out, -1);
			st->finished = true;
			break;
		}
		if (r == REC_GOOD)
		{
			RingRemember(st);
			EncodeRecord(st);

			/*
			 * COPY's multi-insert buffer flushes after 1000 rows or 64 kB of
			 * input, counting the bytes in line_buf, which binary COPY
			 * leaves empty: it would hold 1000 records (~70 MB).  Report
			 * each record's size there, so that it flushes every record or
			 * two as text COPY would (nothing else reads line_buf in binary
			 * mode).
			 */
			if (st->cstate)
				st->cstate->line_buf.len = st->out.len;
			break;
		}
		BadRecord(st);
	}
	error_context_stack = save;
}

static int
IngestCopySource(void *outbuf, int minread, int maxread)
{
	IngestState *st = current_ingest;
	char	   *dst = (char *) outbuf;
	int			n = 0;

	Assert(st != NULL);
	while (n < maxread)
	{
		if (st->out_pos < st->out.len)
		{
			int			k = Min(maxread - n, st->out.len - st->out_pos);

			memcpy(dst + n, st->out.data + st->out_pos, k);
			n += k;
			st->out_pos += k;
			continue;
		}
		/* produce no further ahead of COPY than asked */
		if (n >= minread || st->finished)
			break;
		ProduceNext(st);
	}
	return n;
}

/* ----------------------------------------------------------------
 * Set-up
 * ---------------------------------------------------------------- */

static uint32
IdHash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	(void) keysize;
	return hash_bytes((const unsigned char *) s, strlen(s));
}

static int
IdMatch(const void *a, const void *b, Size keysize)
{
	(void) keysize;
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static AttrNumber
FindColumn(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return a->attnum;
	}
	return InvalidAttrNumber;
}

static void
ColumnTypeError(IngestState *st, const char *col, Oid found, const char *wanted)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"%s\" of %s has type %s, which ingest_statoil cannot fill",
					col, st->relname, format_type_be(found)),
			 errdetail("ingest_statoil fills \"%s\" when it is of type %s.", col, wanted)));
}

/*
 * Map the Statoil fields to the target's columns by name; returns the COPY
 * column list.
 */
static List *
MapColumns(IngestState *st)
{
	TupleDesc	desc = RelationGetDescr(st->rel);
	List	   *cols = NIL;
	static const char *const required[] = {"id", "band_1", "band_2"};
	AttrNumber	att;

	for (int i = 0; i < 3; i++)
	{
		Oid			type;

		att = FindColumn(desc, required[i]);
		if (att == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("%s has no column \"%s\"", st->relname, required[i]),
					 errdetail("The target of ingest_statoil needs columns id (text), band_1 and band_2 (real[]); inc_angle, is_iceberg and band_avg are filled when present.")));
		type = TupleDescAttr(desc, att - 1)->atttypid;
		if (i == 0 && type != TEXTOID && type != VARCHAROID && type != BPCHAROID)
			ColumnTypeError(st, required[i], type, "text, varchar or char");
		if (i > 0 && type != FLOAT4ARRAYOID)
			ColumnTypeError(st, required[i], type, "real[]");
		cols = lappend(cols, makeString(pstrdup(required[i])));
	}

	att = FindColumn(desc, "inc_angle");
	if (att != InvalidAttrNumber)
	{
		st->angle_type = TupleDescAttr(desc, att - 1)->atttypid;
		if (st->angle_type != FLOAT4OID && st->angle_type != FLOAT8OID)
			ColumnTypeError(st, "inc_angle", st->angle_type, "real or double precision");
		cols = lappend(cols, makeString(pstrdup("inc_angle")));
	}
	att = FindColumn(desc, "is_iceberg");
	if (att != InvalidAttrNumber)
	{
		st->label_type = TupleDescAttr(desc, att - 1)->atttypid;
		if (st->label_type != INT2OID && st->label_type != INT4OID &&
			st->label_type != INT8OID && st->label_type != BOOLOID)
			ColumnTypeError(st, "is_iceberg", st->label_type,
							"smallint, integer, bigint or boolean");
		cols = lappend(cols, makeString(pstrdup("is_iceberg")));
	}
	att = FindColumn(desc, "band_avg");
	if (att != InvalidAttrNumber && TupleDescAttr(desc, att - 1)->attgenerated == '\0')
	{
		Oid			type = TupleDescAttr(desc, att - 1)->atttypid;

		if (type != FLOAT4ARRAYOID)
			ColumnTypeError(st, "band_avg", type, "real[]");
		st->has_avg = true;
		cols = lappend(cols, makeString(pstrdup("band_avg")));
	}
	st->nfields = list_length(cols);
	return cols;
}

/*
 * Duplicate ids are bad records only when the target has a unique btree
 * index on id alone (its primary key, typically): then they are found in
 * the input (a hash of the ids seen) and in the table (a probe of that
 * index), so that a quarantine load never dies of a unique violation.
 */
static void
SetupDuplicateCheck(IngestState *st)
{
	AttrNumber	idatt = FindColumn(RelationGetDescr(st->rel), "id");
	List	   *indexes;
	ListCell   *lc;
	HASHCTL		ctl;

	if (st->rel->rd_rel->relkind != RELKIND_RELATION)
		return;
	indexes = RelationGetIndexList(st->rel);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = idx->rd_index;

		if (form->indisunique && form->indisvalid && form->indimmediate &&
			form->indnkeyatts == 1 && form->indkey.values[0] == idatt &&
			idx->rd_rel->relam == BTREE_AM_OID &&
			RelationGetIndexPredicate(idx) == NIL)
		{
			Oid			optype = idx->rd_opcintype[0];
			Oid			op = get_opfamily_member(idx->rd_opfamily[0], optype, optype,
												 BTEqualStrategyNumber);

			if (OidIsValid(op))
			{
				st->idxrel = idx;
				st->eqproc = get_opcode(op);
				st->collation = idx->rd_indcollation[0];
				break;
			}
		}
		index_close(idx, AccessShareLock);
	}
	list_free(indexes);
	if (st->idxrel == NULL)
		return;

	st->idcxt = AllocSetContextCreate(CurrentMemoryContext, "ingest ids",
									  ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(IdEntry);
	ctl.hash = IdHash;
	ctl.match = IdMatch;
	ctl.hcxt = st->idcxt;
	st->ids = hash_create("ingest ids", 1024, &ctl,
						  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	st->slot = table_slot_create(st->rel, NULL);
	st->scan = index_beginscan(st->rel, st->idxrel, GetActiveSnapshot(), 1, 0);
}

static void
CloseDuplicateCheck(IngestState *st)
{
	if (st->scan)
		index_endscan(st->scan);
	if (st->slot)
		ExecDropSingleTupleTableSlot(st->slot);
	if (st->idxrel)
		index_close(st->idxrel, AccessShareLock);
	st->scan = NULL;
	st->slot = NULL;
	st->idxrel = NULL;
}

/*
 * Write the quarantined records, in input order: as the catalog owner (users
 * only read iceml's catalogs), recorded as the calling role's.
 */
static void
WriteQuarantine(IngestState *st)
{
	TupleTableSlot *slot;
	SPIPlanPtr	plan;
	Oid			types[9] = {OIDOID, INT8OID, TEXTOID, TEXTOID, BOOLOID, INT8OID,
	TEXTOID, TEXTOID, OIDOID};

	IcemlOwnerContext own;
	Oid			caller = IcemlCaller();

	if (st->nquarantined == 0)
		return;
	BecomeCatalogOwner(&own);
	plan = SPI_prepare("INSERT INTO iceml.quarantine (feature_group, record_number, record_id,"
					   " raw, raw_truncated, raw_bytes, reason, sqlstate, role)"
					   " VALUES ($1::pg_catalog.regclass, $2, $3, $4, $5, $6, $7, $8,"
					   " $9::pg_catalog.regrole)",
					   9, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	slot = MakeSingleTupleTableSlot(st->qdesc, &TTSOpsMinimalTuple);
	while (tuplestore_gettupleslot(st->qstore, true, false, slot))
	{
		Datum		values[9];
		char		nulls[9];

		values[0] = ObjectIdGetDatum(st->relid);
		nulls[0] = ' ';
		values[8] = ObjectIdGetDatum(caller);
		nulls[8] = ' ';
		for (int i = 0; i < 7; i++)
		{
			bool		isnull;

			values[i + 1] = slot_getattr(slot, i + 1, &isnull);
			nulls[i + 1] = isnull ? 'n' : ' ';
		}
		if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not write to iceml.quarantine");
	}
	ExecDropSingleTupleTableSlot(slot);
	RestoreUser(&own);
}

/*
 * The load itself: COPY from IngestCopySource(), with the reject hook set in
 * quarantine mode and the record named in every error COPY or a trigger
 * raises.  Returns the rows inserted.
 */
static pg_noinline uint64
RunCopy(IngestState *st, ParseState *pstate, List *cols)
{
	volatile uint64 inserted = 0;

	current_ingest = st;
	st->outer_stack = error_context_stack;
	st->errcb.callback = IngestErrorCallback;
	st->errcb.arg = st;
	st->errcb.previous = error_context_stack;
	error_context_stack = &st->errcb;
	if (st->quarantine && IsFeatureGroup(st->relid))
		FeatureGroupSetRejectHook(IngestRejectHook, st);
	PG_TRY();
	{
		CopyFromState cstate;

		/*
		 * The parse thread lives inside this block only: it reads the FILE
		 * that the end of the transaction would close.
		 */
		st->reader = st->file ? statoil_reader_file(st->file)
			: statoil_reader_buffer(st->doc, st->doc_len);
		if (st->reader)
			st->pipe = statoil_pipeline_start(st->reader, ingest_parse_thread);
		if (st->pipe == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));

		cstate = BeginCopyFrom(pstate, st->rel, NULL, NULL, false,
							   IngestCopySource, cols,
							   list_make1(makeDefElem("format",
													  (Node *) makeString("binary"), -1)));
		st->cstate = cstate;
		inserted = CopyFrom(cstate);
		st->cstate = NULL;
		EndCopyFrom(cstate);
	}
	PG_FINALLY();
	{
		FeatureGroupSetRejectHook(NULL, NULL);
		current_ingest = NULL;
		statoil_pipeline_stop(st->pipe);
		statoil_reader_free(st->reader);
		st->pipe = NULL;
		st->reader = NULL;
		st->rec = NULL;
	}
	PG_END_TRY();
	error_context_stack = st->errcb.previous;
	return inserted;
}

void
IngestInit(void)
{
	DefineCustomBoolVariable("iceml.ingest_parse_thread",
							 "Parse the input of ingest_statoil() in a thread of its own.",
							 "The thread runs json-c only, one record ahead of the backend, which inserts meanwhile; off parses in the backend itself.",
							 &ingest_parse_thread,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
}

/* ----------------------------------------------------------------
 * iceml.ingest_statoil(feature_group, path, on_error, document)
 * ---------------------------------------------------------------- */

PG_FUNCTION_INFO_V1(iceml_ingest_statoil);

Datum
iceml_ingest_statoil(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IngestState *st;
	MemoryContext cxt;
	MemoryContext oldcxt;
	char	   *on_error;
	ParseState *pstate;
	ParseNamespaceItem *nsitem;
	RangeTblEntry *rte;
	List	   *cols;
	ListCell   *lc;
	uint64		inserted = 0;
	Datum		result[3];
	bool		rnulls[3] = {0};
	int			qtypes_n = 7;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature_group must not be NULL")));
	if (PG_ARGISNULL(1) == PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ingest_statoil needs exactly one of path and document"),
				 errhint("Call iceml.ingest_statoil(fg, path => '/server/file.json') for a server file, or iceml.ingest_statoil(fg, document => ...) for text sent by the client.")));
	on_error = PG_ARGISNULL(2) ? "abort" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strcmp(on_error, "abort") != 0 && strcmp(on_error, "quarantine") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid on_error \"%s\"", on_error),
				 errhint("Use 'abort' (the default) or 'quarantine'.")));

	InitMaterializedSRF(fcinfo, 0);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "ingest_statoil",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	st = palloc0(sizeof(IngestState));
	st->relid = PG_GETARG_OID(0);
	st->quarantine = (strcmp(on_error, "quarantine") == 0);

	PreventCommandIfReadOnly("ingest_statoil()");

	/* the source: a server file for the privileged, or the document */
	if (!PG_ARGISNULL(1))
	{
		struct stat stt;

		st->path = text_to_cstring(PG_GETARG_TEXT_PP(1));
		if (!has_privs_of_role(IcemlCaller(), ROLE_PG_READ_SERVER_FILES))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to ingest server file \"%s\"", st->path),
					 errdetail("Only superusers and members of pg_read_server_files may read server files."),
					 errhint("Send the file from the client instead: iceml.ingest_statoil(fg, document => ...), see README.md.")));
		st->file = AllocateFile(st->path, PG_BINARY_R);
		if (st->file == NULL)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\" for reading: %m", st->path)));
		if (fstat(fileno(st->file), &stt) == 0 && S_ISDIR(stt.st_mode))
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is a directory", st->path)));
	}
	else
	{
		text	   *doc = PG_GETARG_TEXT_PP(3);

		st->doc = VARDATA_ANY(doc);
		st->doc_len = VARSIZE_ANY_EXHDR(doc);
	}

	/* the target, with the checks COPY FROM would make */
	st->rel = table_open(st->relid, RowExclusiveLock);
	st->relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(st->rel)),
											 RelationGetRelationName(st->rel));
	if (st->rel->rd_rel->relkind != RELKIND_RELATION &&
		st->rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot ingest into %s: it is not a table", st->relname)));
	cols = MapColumns(st);
	pstate = make_parsestate(NULL);
	nsitem = addRangeTableEntryForRelation(pstate, st->rel, RowExclusiveLock,
										   NULL, false, false);
	rte = nsitem->p_rte;
	rte->requiredPerms = ACL_INSERT;
	foreach(lc, cols)
	{
		AttrNumber	att = FindColumn(RelationGetDescr(st->rel), strVal(lfirst(lc)));

		rte->insertedCols = bms_add_member(rte->insertedCols,
										   att - FirstLowInvalidHeapAttributeNumber);
	}
	ExecCheckRTPerms(pstate->p_rtable, true);
	if (check_enable_rls(st->relid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("ingest_statoil does not support row-level security on %s", st->relname),
				 errhint("Ingest into a table without row-level security, or as a role that bypasses it.")));

	/* working state */
	st->recordcxt = AllocSetContextCreate(cxt, "ingest record", ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&st->out);
	for (int i = 0; i < INGEST_RING; i++)
	{
		initStringInfo(&st->ring[i].id);
		initStringInfo(&st->ring[i].raw);
	}
	st->avg = palloc(sizeof(float) * INGEST_BAND_LEN);
	st->qdesc = CreateTemplateTupleDesc(qtypes_n);
	TupleDescInitEntry(st->qdesc, 1, "record_number", INT8OID, -1, 0);
	TupleDescInitEntry(st->qdesc, 2, "record_id", TEXTOID, -1, 0);
	TupleDescInitEntry(st->qdesc, 3, "raw", TEXTOID, -1, 0);
	TupleDescInitEntry(st->qdesc, 4, "raw_truncated", BOOLOID, -1, 0);
	TupleDescInitEntry(st->qdesc, 5, "raw_bytes", INT8OID, -1, 0);
	TupleDescInitEntry(st->qdesc, 6, "reason", TEXTOID, -1, 0);
	TupleDescInitEntry(st->qdesc, 7, "sqlstate", TEXTOID, -1, 0);
	st->qstore = tuplestore_begin_heap(false, false, work_mem);
	SetupDuplicateCheck(st);

	/* the load: one COPY statement on the target */
	inserted = RunCopy(st, pstate, cols);

	CloseDuplicateCheck(st);
	if (st->file)
		FreeFile(st->file);
	st->file = NULL;
	table_close(st->rel, NoLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	WriteQuarantine(st);
	SPI_finish();

	/* a feature group that asks for statistics gets them after each load */
	if (inserted > 0 && FeatureGroupWantsStatistics(st->relid))
	{
		if (pg_class_aclcheck(st->relid, IcemlCaller(), ACL_SELECT) != ACLCHECK_OK)
			ereport(NOTICE,
					(errmsg("statistics of %s were not computed", st->relname),
					 errdetail("Computing them reads the whole table, and this role may not SELECT from it."),
					 errhint("Let the group's owner run iceml.compute_statistics('%s').", st->relname)));
		else
		{
			/* a snapshot that sees the rows just copied */
			CommandCounterIncrement();
			PushCopiedSnapshot(GetActiveSnapshot());
			UpdateActiveSnapshotCommandId();
			(void) FeatureGroupComputeStatistics(st->relid);
			PopActiveSnapshot();
		}
	}

	if ((int64) inserted + st->nquarantined != st->nread)
		ereport(NOTICE,
				(errmsg("%lld of %lld records were neither inserted nor quarantined",
						(long long) (st->nread - st->nquarantined - (int64) inserted),
						(long long) st->nread),
				 errdetail("Another trigger on %s skipped them.", st->relname)));

	result[0] = Int64GetDatum(st->nread);
	result[1] = Int64GetDatum((int64) inserted);
	result[2] = Int64GetDatum(st->nquarantined);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, result, rnulls);

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}
