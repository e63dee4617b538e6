/*
 * ingest_copy.c - the load of iceml.ingest_statoil(): good records encoded
 * in PostgreSQL's binary COPY format and handed to the COPY machinery by a
 * data-source callback, the parse thread started and stopped around it, and
 * the setting iceml.ingest_parse_thread.
 */
#include "postgres.h"

#include "commands/copyfrom_internal.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"

#include "iceml.h"
#include "iceml_fs.h"
#include "iceml_sar.h"
#include "ingest_internal.h"

/* GUC iceml.ingest_parse_thread */
static bool ingest_parse_thread = true;

/* the data-source callback of COPY takes no argument */
static IngestState *current_ingest = NULL;

static const char binary_signature[11] = "PGCOPY\n\377\r\n";


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

/*
 * The load itself: COPY from IngestCopySource(), with the reject hook set in
 * quarantine mode and the record named in every error COPY or a trigger
 * raises.  Returns the rows inserted.
 */
pg_noinline uint64
RunCopy(IngestState *st, ParseState *pstate, List *cols)
{
	volatile uint64 inserted = 0;
	volatile bool external_fd = false;

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
		StatoilReader *reader;

		/*
		 * The parse thread lives inside this block only.  It reads a file
		 * descriptor of its own (a dup, counted as an external FD), so
		 * that a thread left to finish alone (see below) never reads one
		 * the backend has closed or reused.
		 */
		if (st->fd >= 0)
		{
			int			rfd;

			if (!AcquireExternalFD())
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
						 errmsg("could not read file \"%s\": too many open files", st->path),
						 errhint("Close other sessions or raise max_files_per_process.")));
			external_fd = true;
			rfd = dup(st->fd);
			if (rfd < 0)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not read file \"%s\": %m", st->path)));
			reader = statoil_reader_fd(rfd);
		}
		else
			reader = statoil_reader_buffer(st->doc, st->doc_len);
		if (reader)
		{
			/* parsing in this thread: the reader looks at interrupts itself */
			if (!ingest_parse_thread)
				statoil_reader_set_stop(reader, IngestStopCheck, NULL);
			st->pipe = statoil_pipeline_start(reader, ingest_parse_thread);
		}
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

		/*
		 * The thread notices a stop within one chunk of input; a thread
		 * stuck beyond that (a hung file system) is left to finish alone
		 * rather than holding this backend, so that cancel, terminate and
		 * other sessions' barriers are never blocked by it.
		 */
		if (!statoil_pipeline_stop(st->pipe, INGEST_STOP_WAIT_MS))
			ereport(WARNING,
					(errmsg("the parse thread of ingest_statoil did not stop within %d ms",
							INGEST_STOP_WAIT_MS),
					 errdetail("It was left to end by itself; it frees what it holds when its read returns.")));
		if (external_fd)
			ReleaseExternalFD();
		st->pipe = NULL;
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

