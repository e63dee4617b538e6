/*
 * ingest_records.c - iceml.ingest_statoil() one record at a time: the next
 * record from the reader (checked, its id not a duplicate), a bad record
 * refused or quarantined, and errors of COPY, constraints and triggers
 * naming the record they came from (a ring of the last records sent).
 */
#include "postgres.h"

#include "commands/copyfrom_internal.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"

#include "ingest_internal.h"

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
		/*
		 * A dirty snapshot sees rows committed after this statement began
		 * and rows of transactions still in progress: wait for those, as
		 * the unique index itself would, then look again.
		 */
		Datum		keydatum = CStringGetTextDatum(key);

		for (;;)
		{
			TransactionId xwait;
			MemoryContext oldcxt;

			/*
			 * In the scan's own context: btree keeps what it allocates
			 * during a scan (the dead entries it will mark, for instance)
			 * across calls, and this runs in COPY's per-tuple context,
			 * which is reset every row (a use after free that crashed the
			 * load once a killed earlier load had left dead entries).
			 */
			ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
								   st->collation, st->eqproc, keydatum);
			oldcxt = MemoryContextSwitchTo(st->scancxt);
			index_rescan(st->scan, &skey, 1, NULL, 0);
			found = index_getnext_slot(st->scan, ForwardScanDirection, st->slot);
			MemoryContextSwitchTo(oldcxt);
			xwait = TransactionIdIsValid(st->dirty.xmin) ? st->dirty.xmin : st->dirty.xmax;
			if (found && TransactionIdIsValid(xwait))
			{
				ItemPointerData tid = st->slot->tts_tid;

				ExecClearTuple(st->slot);
				XactLockTableWait(xwait, st->rel, &tid, XLTW_InsertIndex);
				continue;
			}
			ExecClearTuple(st->slot);
			break;
		}
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
 * The reader's stop function when it runs in this backend's thread
 * (iceml.ingest_parse_thread = off): called once per chunk of input, even
 * inside a record, so that cancel and timeouts end an endless input.  It
 * leaves by longjmp; the pipeline is then only freed (RunCopy).
 */
bool
IngestStopCheck(void *arg)
{
	(void) arg;
	CHECK_FOR_INTERRUPTS();
	return false;
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
		case STATOIL_FATAL_STOPPED:
			/* only this backend stops the reader, and only on interrupts */
			CHECK_FOR_INTERRUPTS();
			elog(ERROR, "iceml ingest: the reader stopped without an interrupt");
			break;
		case STATOIL_FATAL_TOO_BIG:
		case STATOIL_FATAL_STRUCTURE:
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("malformed Statoil input at byte %llu: %s",
					(unsigned long long) rec->fatal_offset, statoil_fatal_text(rec)),
			 rec->fatal == STATOIL_FATAL_TOO_BIG ?
			 errdetail("A Statoil record takes about 200 kB; ingest_statoil reads at most %d MB of one record, skipping included.",
					   STATOIL_RECORD_MAX / (1024 * 1024)) :
			 errdetail("The input must be a JSON array of records or JSON lines (one object per line).")));
	pg_unreachable();
}

/*
 * Read the next record from the pipeline: REC_GOOD (in st->rec), REC_BAD
 * (st->reason, st->sqlstate) or REC_EOF.
 */
RecordResult
NextRecord(IngestState *st)
{
	StatoilRecord *rec;

	if (st->rec)
	{
		statoil_pipeline_release(st->pipe, st->rec);
		st->rec = NULL;
	}
	st->cur_id = NULL;
	st->reason = NULL;
	st->sqlstate = "22P02";

	/*
	 * A slow input must not make the backend deaf to cancels, timeouts,
	 * terminate and barriers (DROP DATABASE elsewhere waits for them).
	 */
	while ((rec = statoil_pipeline_next(st->pipe, INGEST_WAIT_MS)) == NULL)
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
void
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
void
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
void
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
