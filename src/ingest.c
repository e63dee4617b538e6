/*
 * ingest.c - iceml.ingest_statoil(): the streaming loader of the Kaggle
 * Statoil/C-CORE layout into a feature group.
 *
 * The input (a server file, or a document passed as text) is either a JSON
 * array of records or JSON lines (one object per line); the first non-blank
 * byte decides: '[' is an array, anything else JSON lines.  It is read in
 * 64 KiB chunks and fed to json-c's incremental tokener one record at a time;
 * the top level ('[', ',', ']', newlines) is handled here, so only one record
 * is ever parsed into memory, whatever the size of the input.
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

#include <math.h>
#include <string.h>
#include <sys/stat.h>

/*
 * PostgreSQL's SQL function json_object() (fmgrprotos.h) and json-c's type
 * json_object share a name: PostgreSQL's headers are read with theirs
 * renamed, json-c's after.
 */
#define json_object iceml_pg_json_object_fn
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
#undef json_object

#include <json-c/json.h>

#include "iceml.h"
#include "iceml_fs.h"
#include "iceml_synth.h"

/* ---- BEGIN TEMPORARY STAND-IN: delete when branch eo lands include/iceml_sar.h ----
 * iceml_band_avg() is written on branch eo with exactly this prototype; this
 * local definition only lets the loader be built and tested before then. */
static void
iceml_band_avg(const float *a, const float *b, float *out, int n)
{
	for (int i = 0; i < n; i++)
		out[i] = (a[i] + b[i]) / 2.0f;
}
/* ---- END TEMPORARY STAND-IN ---- */

#define INGEST_CHUNK_SIZE	(64 * 1024)
#define INGEST_BAND_LEN		ICEML_CHIP_PIXELS	/* 5625 values per band */
#define INGEST_RING			16	/* records remembered for COPY-time errors */
#define INGEST_ID_MAX		200 /* bytes of an id quoted in messages */

/*
 * A quarantined record keeps at most this much of its raw JSON text; a
 * longer one keeps its first ICEML_QUARANTINE_RAW_MAX bytes and is flagged
 * raw_truncated.  A real Statoil record is about 120 kB.
 */
#define ICEML_QUARANTINE_RAW_MAX	(1024 * 1024)

typedef enum TopState
{
	TOP_START,					/* nothing read yet */
	TOP_ARRAY_FIRST,			/* after '[' */
	TOP_ARRAY_AFTER,			/* after a record of the array */
	TOP_LINES,					/* JSON lines: between records */
	TOP_DONE					/* the input is exhausted */
} TopState;

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

	/* input */
	FILE	   *file;
	const char *path;
	const char *doc;
	size_t		doc_len;
	size_t		doc_pos;
	char	   *chunk;			/* file mode: the read buffer */
	const char *buf;			/* current chunk */
	size_t		len;
	size_t		pos;
	bool		eof;
	uint64		offset;			/* input bytes before buf */

	TopState	top;
	bool		lines;
	json_tokener *tok;
	json_object *obj;			/* the record being processed */
	MemoryContext recordcxt;

	/* the current record */
	int64		recno;
	const char *cur_id;
	StringInfoData raw;
	bool		raw_capped;
	int64		raw_bytes;
	const char *reason;
	const char *sqlstate;
	float	   *band1;
	float	   *band2;
	float	   *avg;
	bool		angle_null;
	double		angle;
	bool		label_null;
	int			label;

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

/* the data-source callback of COPY takes no argument */
static IngestState *current_ingest = NULL;

static const char binary_signature[11] = "PGCOPY\n\377\r\n";

/* ----------------------------------------------------------------
 * Input
 * ---------------------------------------------------------------- */

/* Make sure buf[pos] is valid; false at the end of the input. */
static bool
InputFill(IngestState *st)
{
	if (st->pos < st->len)
		return true;
	if (st->eof)
		return false;
	st->offset += st->len;
	st->pos = 0;
	if (st->file)
	{
		size_t		n = fread(st->chunk, 1, INGEST_CHUNK_SIZE, st->file);

		if (n == 0 && ferror(st->file))
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", st->path)));
		st->buf = st->chunk;
		st->len = n;
	}
	else
	{
		size_t		n = Min((size_t) INGEST_CHUNK_SIZE, st->doc_len - st->doc_pos);

		st->buf = st->doc + st->doc_pos;
		st->len = n;
		st->doc_pos += n;
	}
	if (st->len == 0)
	{
		st->eof = true;
		return false;
	}
	return true;
}

/* Skip blanks; the next byte, or -1 at the end of the input. */
static int
InputPeek(IngestState *st, bool stop_at_newline)
{
	for (;;)
	{
		char		c;

		if (!InputFill(st))
			return -1;
		c = st->buf[st->pos];
		if (c == ' ' || c == '\t' || c == '\r' || (c == '\n' && !stop_at_newline))
			st->pos++;
		else
			return (unsigned char) c;
	}
}

static uint64
InputOffset(IngestState *st)
{
	return st->offset + st->pos;
}

/*
 * Raw text of the current record (its first ICEML_QUARANTINE_RAW_MAX bytes):
 * for the quarantine, and for the id of a record that does not parse.
 */
static void
RawAppend(IngestState *st, const char *p, size_t n)
{
	if (n == 0)
		return;
	st->raw_bytes += n;
	if (st->raw_capped)
		return;
	if (st->raw.len + n > ICEML_QUARANTINE_RAW_MAX)
	{
		n = ICEML_QUARANTINE_RAW_MAX - st->raw.len;
		st->raw_capped = true;
	}
	appendBinaryStringInfo(&st->raw, p, n);
}

/*
 * A structural error of the input as a whole (not of one record): it ends
 * the load in both modes, since the following records cannot be found.
 */
static void pg_attribute_noreturn()
InputStructureError(IngestState *st, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("malformed Statoil input at byte %llu: %s",
					(unsigned long long) InputOffset(st), what),
			 errdetail("The input must be a JSON array of records or JSON lines (one object per line).")));
}

/*
 * Lines mode: the rest of the current line belongs to a bad record; skip it
 * (keeping it as raw text).
 */
static void
SkipRestOfLine(IngestState *st)
{
	while (InputFill(st))
	{
		const char *start = st->buf + st->pos;
		const char *nl = memchr(start, '\n', st->len - st->pos);
		size_t		n = nl ? (size_t) (nl - start) : st->len - st->pos;

		RawAppend(st, start, n);
		st->pos += n;
		if (nl)
			return;
	}
}

/*
 * Array mode: find the end of a malformed record by counting brackets
 * outside strings, from the start of its raw text, then on in the input.
 */
typedef struct ValueScan
{
	int			depth;
	bool		in_string;
	bool		escape;
	bool		started;
	bool		done;
} ValueScan;

static size_t
ValueScanFeed(ValueScan *vs, const char *p, size_t n)
{
	size_t		i;

	for (i = 0; i < n && !vs->done; i++)
	{
		char		c = p[i];

		if (vs->in_string)
		{
			if (vs->escape)
				vs->escape = false;
			else if (c == '\\')
				vs->escape = true;
			else if (c == '"')
			{
				vs->in_string = false;
				if (vs->depth == 0)
					vs->done = true;
			}
			continue;
		}
		switch (c)
		{
			case '"':
				vs->in_string = true;
				vs->started = true;
				break;
			case '{':
			case '[':
				vs->depth++;
				vs->started = true;
				break;
			case '}':
			case ']':
				if (vs->depth == 0)
				{
					/* a scalar ended by the array's closing bracket */
					vs->done = true;
					return i;
				}
				if (--vs->depth == 0)
					vs->done = true;
				break;
			case ',':
			case ' ':
			case '\t':
			case '\r':
			case '\n':
				if (vs->depth == 0 && vs->started)
				{
					vs->done = true;
					return i;
				}
				break;
			default:
				vs->started = true;
				break;
		}
	}
	return i;
}

static void
SkipMalformedValue(IngestState *st)
{
	ValueScan	vs = {0};

	if (st->raw_capped)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("cannot find the end of malformed Statoil record %lld",
						(long long) st->recno),
				 errdetail("The record is larger than %d bytes.", ICEML_QUARANTINE_RAW_MAX)));
	(void) ValueScanFeed(&vs, st->raw.data, st->raw.len);
	while (!vs.done && InputFill(st))
	{
		size_t		n = ValueScanFeed(&vs, st->buf + st->pos, st->len - st->pos);

		RawAppend(st, st->buf + st->pos, n);
		st->pos += n;
	}
}

/* ----------------------------------------------------------------
 * One record: tokenise, check, convert
 * ---------------------------------------------------------------- */

static void
ForgetRecordObject(IngestState *st)
{
	if (st->obj)
	{
		json_object_put(st->obj);
		st->obj = NULL;
	}
}

/* json-c allocates with malloc: free it however the call ends */
static void
IngestCleanup(void *arg)
{
	IngestState *st = (IngestState *) arg;

	ForgetRecordObject(st);
	if (st->tok)
	{
		json_tokener_free(st->tok);
		st->tok = NULL;
	}
	if (current_ingest == st)
		current_ingest = NULL;
}

/*
 * Best effort for records that did not parse: the value of the first "id"
 * key in the raw text.
 */
static const char *
IdFromRaw(IngestState *st)
{
	const char *p = st->raw.data;
	const char *end = p + st->raw.len;

	while (p && p < end)
	{
		const char *k = memchr(p, '"', end - p);
		const char *q;

		if (k == NULL || end - k < 4)
			return NULL;
		if (strncmp(k, "\"id\"", 4) != 0)
		{
			p = k + 1;
			continue;
		}
		q = k + 4;
		while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
			q++;
		if (q >= end || *q != ':')
		{
			p = k + 1;
			continue;
		}
		q++;
		while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
			q++;
		if (q < end && *q == '"')
		{
			const char *s = q + 1;
			const char *e = s;

			while (e < end && *e != '"' && *e != '\\' && e - s < INGEST_ID_MAX)
				e++;
			if (e < end && *e == '"')
				return pnstrdup(s, e - s);
		}
		return NULL;
	}
	return NULL;
}

static const char *
JsonTypeName(json_object *v)
{
	switch (json_object_get_type(v))
	{
		case json_type_null:
			return "null";
		case json_type_boolean:
			return "boolean";
		case json_type_double:
		case json_type_int:
			return "number";
		case json_type_object:
			return "object";
		case json_type_array:
			return "array";
		case json_type_string:
			return "string";
	}
	return "value";
}

/*
 * The float4 of a JSON number, as float4in() would read its text.  json-c
 * parses the text with strtod(); rounding that double to float is exact
 * unless the double lies exactly halfway between two floats (double
 * rounding), in which case the number's text is read again with strtof().
 * NULL on success, else why not.
 */
static const char *
NumberToFloat4(json_object *v, float *out)
{
	double		d;
	float		f;
	uint64		bits;

	if (json_object_get_type(v) == json_type_int)
	{
		*out = (float) json_object_get_int64(v);
		return NULL;
	}
	if (json_object_get_type(v) != json_type_double)
		return psprintf("is a JSON %s, not a number", JsonTypeName(v));
	d = json_object_get_double(v);
	if (isnan(d) || isinf(d))
		return psprintf("is not a finite number (%s)", json_object_get_string(v));
	f = (float) d;
	memcpy(&bits, &d, sizeof(bits));
	if ((bits & UINT64CONST(0x1FFFFFFF)) == UINT64CONST(0x10000000))
		f = strtof(json_object_get_string(v), NULL);
	if (isinf(f))
		return psprintf("(%s) is out of range for type real", json_object_get_string(v));
	*out = f;
	return NULL;
}

static const char *
ReadBand(json_object *rec, const char *key, float *out)
{
	json_object *arr;
	size_t		n;

	if (!json_object_object_get_ex(rec, key, &arr))
		return psprintf("\"%s\" is missing", key);
	if (json_object_get_type(arr) != json_type_array)
		return psprintf("\"%s\" must be an array of %d numbers, not a JSON %s",
						key, INGEST_BAND_LEN, JsonTypeName(arr));
	n = json_object_array_length(arr);
	if (n != INGEST_BAND_LEN)
		return psprintf("\"%s\" has %zu values, not %d", key, n, INGEST_BAND_LEN);
	for (size_t i = 0; i < n; i++)
	{
		const char *why = NumberToFloat4(json_object_array_get_idx(arr, i), &out[i]);

		if (why)
			return psprintf("%s[%zu] %s", key, i, why);
	}
	return NULL;
}

/* Check a parsed record and convert it; NULL if good, else why not */
static const char *
CheckRecord(IngestState *st, json_object *rec)
{
	json_object *v;
	const char *why;

	if (json_object_get_type(rec) != json_type_object)
		return psprintf("the record is a JSON %s, not an object", JsonTypeName(rec));

	if (!json_object_object_get_ex(rec, "id", &v))
		return "\"id\" is missing";
	if (json_object_get_type(v) != json_type_string)
		return psprintf("\"id\" must be a string, not a JSON %s", JsonTypeName(v));
	st->cur_id = json_object_get_string(v);
	if (strlen(st->cur_id) != (size_t) json_object_get_string_len(v))
		return "\"id\" contains a NUL character";
	if (!pg_verify_mbstr(GetDatabaseEncoding(), st->cur_id, strlen(st->cur_id), true))
		return psprintf("\"id\" is not valid %s", GetDatabaseEncodingName());

	if ((why = ReadBand(rec, "band_1", st->band1)) != NULL)
		return why;
	if ((why = ReadBand(rec, "band_2", st->band2)) != NULL)
		return why;

	st->angle_null = true;
	if (json_object_object_get_ex(rec, "inc_angle", &v) &&
		json_object_get_type(v) != json_type_null)
	{
		if (json_object_get_type(v) == json_type_string)
		{
			if (strcmp(json_object_get_string(v), "na") != 0)
				return psprintf("\"inc_angle\" must be a number or \"na\", not the string \"%.40s\"",
								json_object_get_string(v));
		}
		else if (json_object_get_type(v) == json_type_int ||
				 json_object_get_type(v) == json_type_double)
		{
			float		f;

			if ((why = NumberToFloat4(v, &f)) != NULL)
				return psprintf("\"inc_angle\" %s", why);
			st->angle = json_object_get_double(v);
			if (st->angle_type == FLOAT4OID)
				st->angle = f;
			st->angle_null = false;
		}
		else
			return psprintf("\"inc_angle\" must be a number or \"na\", not a JSON %s",
							JsonTypeName(v));
	}

	st->label_null = true;
	if (json_object_object_get_ex(rec, "is_iceberg", &v) &&
		json_object_get_type(v) != json_type_null)
	{
		int64		l;

		if (json_object_get_type(v) != json_type_int ||
			((l = json_object_get_int64(v)) != 0 && l != 1))
			return psprintf("\"is_iceberg\" must be 0 or 1, not %.40s",
							json_object_get_string(v));
		st->label = (int) l;
		st->label_null = false;
	}
	return NULL;
}

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

/*
 * Tokenise the next record into st->obj.  REC_GOOD when it parsed (it may
 * still be a bad record), REC_BAD with st->reason when it did not, REC_EOF
 * at the end of the input.
 */
static RecordResult
TokeniseRecord(IngestState *st)
{
	int			c;

	/* the top level */
	for (;;)
	{
		switch (st->top)
		{
			case TOP_START:
				c = InputPeek(st, false);
				/* a UTF-8 byte order mark */
				if (c == 0xEF && st->len - st->pos >= 3 &&
					memcmp(st->buf + st->pos, "\xEF\xBB\xBF", 3) == 0)
				{
					st->pos += 3;
					continue;
				}
				if (c == '[')
				{
					st->pos++;
					st->top = TOP_ARRAY_FIRST;
				}
				else
				{
					st->lines = true;
					st->top = TOP_LINES;
				}
				continue;
			case TOP_ARRAY_FIRST:
				c = InputPeek(st, false);
				if (c == ']')
				{
					st->pos++;
					st->top = TOP_DONE;
					if (InputPeek(st, false) != -1)
						InputStructureError(st, "unexpected text after the closing ']'");
					return REC_EOF;
				}
				if (c == -1)
					InputStructureError(st, "the input ends inside the top-level array");
				break;
			case TOP_ARRAY_AFTER:
				c = InputPeek(st, false);
				if (c == ',')
				{
					st->pos++;
					c = InputPeek(st, false);
					if (c == -1)
						InputStructureError(st, "the input ends inside the top-level array");
					if (c == ']')
						InputStructureError(st, "a ',' is followed by ']'");
					break;
				}
				if (c == ']')
				{
					st->pos++;
					st->top = TOP_DONE;
					if (InputPeek(st, false) != -1)
						InputStructureError(st, "unexpected text after the closing ']'");
					return REC_EOF;
				}
				if (c == -1)
					InputStructureError(st, "the input ends inside the top-level array (no closing ']')");
				InputStructureError(st, psprintf("expected ',' or ']' after record %lld, found '%c'",
												 (long long) st->nread - 1, c));
				break;
			case TOP_LINES:
				c = InputPeek(st, false);
				if (c == -1)
				{
					st->top = TOP_DONE;
					return REC_EOF;
				}
				break;
			case TOP_DONE:
				return REC_EOF;
		}
		break;
	}

	/* one value, fed to the tokener chunk by chunk */
	json_tokener_reset(st->tok);
	for (;;)
	{
		const char *p = st->buf + st->pos;
		size_t		n = st->len - st->pos;
		const char *nl = NULL;
		size_t		used;
		enum json_tokener_error err;

		/* JSON lines: a record never extends past its line */
		if (st->lines && (nl = memchr(p, '\n', n)) != NULL)
			n = nl - p;

		st->obj = json_tokener_parse_ex(st->tok, p, (int) n);
		err = json_tokener_get_error(st->tok);
		used = json_tokener_get_parse_end(st->tok);
		RawAppend(st, p, used);
		st->pos += used;

		if (err == json_tokener_success)
		{
			if (st->top == TOP_ARRAY_FIRST)
				st->top = TOP_ARRAY_AFTER;
			return REC_GOOD;
		}
		if (err != json_tokener_continue)
		{
			st->reason = psprintf("invalid JSON at byte %lld of the record: %s",
								  (long long) st->raw_bytes,
								  json_tokener_error_desc(err));
			if (st->quarantine)
			{
				if (st->lines)
					SkipRestOfLine(st);
				else
					SkipMalformedValue(st);
			}
			if (st->top == TOP_ARRAY_FIRST)
				st->top = TOP_ARRAY_AFTER;
			return REC_BAD;
		}
		/* the tokener wants more */
		if (nl || (st->pos >= st->len && !InputFill(st)))
		{
			/* end of the line or of the input: a number may end here */
			st->obj = json_tokener_parse_ex(st->tok, "", 1);
			if (st->obj)
			{
				if (st->top == TOP_ARRAY_FIRST)
					st->top = TOP_ARRAY_AFTER;
				return REC_GOOD;
			}
			st->reason = nl ? "the line ends inside the record"
				: "the input ends inside the record (truncated)";
			/* nothing follows a record truncated by the end of the input */
			if (!nl)
				st->top = TOP_DONE;
			else if (st->top == TOP_ARRAY_FIRST)
				st->top = TOP_ARRAY_AFTER;
			return REC_BAD;
		}
	}
}

/*
 * Read the next record: REC_GOOD (converted into st), REC_BAD (st->reason,
 * st->sqlstate) or REC_EOF.
 */
static RecordResult
NextRecord(IngestState *st)
{
	RecordResult r;

	ForgetRecordObject(st);
	MemoryContextReset(st->recordcxt);
	resetStringInfo(&st->raw);
	st->raw_capped = false;
	st->raw_bytes = 0;
	st->cur_id = NULL;
	st->reason = NULL;
	st->sqlstate = "22P02";

	r = TokeniseRecord(st);
	if (r == REC_EOF)
		return r;
	st->recno = st->nread++;
	if (r == REC_GOOD)
	{
		st->reason = CheckRecord(st, st->obj);
		if (st->reason == NULL)
		{
			st->reason = CheckDuplicate(st);
			if (st->reason)
				st->sqlstate = "23505";
		}
		r = st->reason ? REC_BAD : REC_GOOD;
	}
	if (r == REC_BAD && st->cur_id == NULL)
		st->cur_id = IdFromRaw(st);
	return r;
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
	QuarantineAdd(st, st->recno, st->cur_id, st->raw.data, st->raw.len,
				  st->raw_capped, st->raw_bytes, st->reason, st->sqlstate);
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
	int			idlen = strlen(st->cur_id);
	char	   *id;

	/* binary COPY reads text in the client encoding */
	id = pg_server_to_client(st->cur_id, idlen);
	if (id != st->cur_id)
		idlen = strlen(id);
	PutInt16(out, st->nfields);
	PutInt32(out, idlen);
	appendBinaryStringInfo(out, id, idlen);
	PutFloat4Array(out, st->band1, INGEST_BAND_LEN);
	PutFloat4Array(out, st->band2, INGEST_BAND_LEN);
	if (st->angle_type != InvalidOid)
	{
		if (st->angle_null)
			PutInt32(out, -1);
		else if (st->angle_type == FLOAT4OID)
		{
			float		f = (float) st->angle;
			uint32		bits;

			memcpy(&bits, &f, 4);
			PutInt32(out, 4);
			PutInt32(out, (int32) bits);
		}
		else
		{
			uint64		bits;

			memcpy(&bits, &st->angle, 8);
			PutInt32(out, 8);
			PutInt32(out, (int32) (bits >> 32));
			PutInt32(out, (int32) (bits & 0xFFFFFFFF));
		}
	}
	if (st->label_type != InvalidOid)
	{
		if (st->label_null)
			PutInt32(out, -1);
		else if (st->label_type == BOOLOID)
		{
			PutInt32(out, 1);
			appendStringInfoChar(out, st->label ? 1 : 0);
		}
		else if (st->label_type == INT2OID)
		{
			PutInt32(out, 2);
			PutInt16(out, (int16) st->label);
		}
		else if (st->label_type == INT4OID)
		{
			PutInt32(out, 4);
			PutInt32(out, st->label);
		}
		else
		{
			PutInt32(out, 8);
			PutInt32(out, 0);
			PutInt32(out, st->label);
		}
	}
	if (st->has_avg)
	{
		iceml_band_avg(st->band1, st->band2, st->avg, INGEST_BAND_LEN);
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
		appendBinaryStringInfo(&s->raw, st->raw.data, st->raw.len);
		s->raw_capped = st->raw_capped;
		s->raw_bytes = st->raw_bytes;
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

/* Write the quarantined records, in input order, as the calling role */
static void
WriteQuarantine(IngestState *st)
{
	TupleTableSlot *slot;
	SPIPlanPtr	plan;
	Oid			types[8] = {OIDOID, INT8OID, TEXTOID, TEXTOID, BOOLOID, INT8OID,
	TEXTOID, TEXTOID};

	if (st->nquarantined == 0)
		return;
	plan = SPI_prepare("INSERT INTO iceml.quarantine (feature_group, record_number, record_id,"
					   " raw, raw_truncated, raw_bytes, reason, sqlstate)"
					   " VALUES ($1::pg_catalog.regclass, $2, $3, $4, $5, $6, $7, $8)",
					   8, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	slot = MakeSingleTupleTableSlot(st->qdesc, &TTSOpsMinimalTuple);
	while (tuplestore_gettupleslot(st->qstore, true, false, slot))
	{
		Datum		values[8];
		char		nulls[8];

		values[0] = ObjectIdGetDatum(st->relid);
		nulls[0] = ' ';
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
	}
	PG_END_TRY();
	error_context_stack = st->errcb.previous;
	return inserted;
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
	MemoryContextCallback *cb;
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
	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = IngestCleanup;
	cb->arg = st;
	MemoryContextRegisterResetCallback(cxt, cb);

	PreventCommandIfReadOnly("ingest_statoil()");

	/* the source: a server file for the privileged, or the document */
	if (!PG_ARGISNULL(1))
	{
		struct stat stt;

		st->path = text_to_cstring(PG_GETARG_TEXT_PP(1));
		if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
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
		st->chunk = palloc(INGEST_CHUNK_SIZE);
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
	st->tok = json_tokener_new();
	if (st->tok == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	json_tokener_set_flags(st->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	initStringInfo(&st->raw);
	initStringInfo(&st->out);
	for (int i = 0; i < INGEST_RING; i++)
	{
		initStringInfo(&st->ring[i].id);
		initStringInfo(&st->ring[i].raw);
	}
	st->band1 = palloc(sizeof(float) * INGEST_BAND_LEN);
	st->band2 = palloc(sizeof(float) * INGEST_BAND_LEN);
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
		if (pg_class_aclcheck(st->relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
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
