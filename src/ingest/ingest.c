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
 * This file: the SQL function.  ingest_copy.c: the binary COPY stream and
 * the load.  ingest_records.c: one record at a time, bad records and the
 * quarantine, errors naming the record.  ingest_target.c: the target's
 * columns, duplicate ids, the quarantine write.  ingest_internal.h: the
 * shared state.
 */
#include "postgres.h"

#include <sys/stat.h>

#include "access/table.h"
#include "catalog/pg_authid_d.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "iceml_fs.h"
#include "iceml_catalog.h"
#include "ingest_internal.h"

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

