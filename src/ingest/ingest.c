/*
 * ingest.c - iceml.ingest_statoil(): the streaming loader of the Kaggle
 * Statoil/C-CORE layout into a feature group.
 *
 * The input (a server file, or a document passed as text) is either a JSON
 * array of records or JSON lines (one object per line).  The reader of
 * src/eo/statoil_json.c reads it in 64 KiB chunks, feeds json-c's incremental
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
 *
 * This file: records, quarantine and the SQL function.  ingest_target.c:
 * the target's columns, duplicate ids, the quarantine write.  ingest_copy.c:
 * the binary COPY stream and the load.  ingest_internal.h: the shared state.
 */
#include "postgres.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
#include "storage/lmgr.h"
#include "storage/lock.h"
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

/* What a file that is not a regular file is, for messages */
static const char *
FileKindText(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	return "of another kind";
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
	st->fd = -1;
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
		/*
		 * O_NONBLOCK: opening a FIFO must not wait for a writer; only a
		 * regular file is read (a device or FIFO may never end).
		 */
		st->fd = OpenTransientFile(st->path, O_RDONLY | O_NONBLOCK | PG_BINARY);
		if (st->fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\" for reading: %m", st->path)));
		if (fstat(st->fd, &stt) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not stat file \"%s\": %m", st->path)));
		if (!S_ISREG(stt.st_mode))
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is not a regular file", st->path),
					 errdetail("It is %s; ingest_statoil reads regular files only, since a device, FIFO or socket may never end.",
							   FileKindText(stt.st_mode)),
					 errhint("Copy the data into a file first, or send it from the client with iceml.ingest_statoil(fg, document => ...).")));
		/* reads of a regular file do not block anyway; keep them plain */
		if (fcntl(st->fd, F_SETFL, fcntl(st->fd, F_GETFL) & ~O_NONBLOCK) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", st->path)));
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
	if (st->fd >= 0)
		CloseTransientFile(st->fd);
	st->fd = -1;
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

