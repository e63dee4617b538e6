/*
 * bgworker.c - what every background worker of iceml's does: registered
 * with iceml's library and a type no session can set, connected as the
 * caller's session user, and its catalog work in short transactions of its
 * own.  Used by the queue (worker.c), the supervisor, training, recording
 * and pipelines.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/snapmgr.h"

#include "iceml_worker.h"

/* ---- worker transactions ------------------------------------------------- */

void
WorkerBeginTx(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
}

void
WorkerEndTx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

uint64
OwnerExec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	IcemlOwnerContext own;
	uint64		n;

	WorkerBeginTx();
	BecomeCatalogOwner(&own);
	n = SpiExec(sql, nargs, types, values, nulls);
	RestoreUser(&own);
	WorkerEndTx();
	return n;
}

/*
 * A worker's nap between polls: the latch or ms, whichever comes first;
 * interrupts are served unless a terminate is pending (the caller notices
 * ProcDiePending itself and records why it stops).
 */
void
WorkerNap(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	if (!ProcDiePending)
		CHECK_FOR_INTERRUPTS();
}

/*
 * The start of every launched worker: SIGTERM sets ProcDiePending (noticed
 * between batches and steps), then connect as the caller's session user.
 * Returns the job id.
 */
int64
WorkerConnect(IcemlWorkerExtra *extra)
{
	memcpy(extra, MyBgworkerEntry->bgw_extra, sizeof(*extra));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(extra->database, extra->login_role, 0);
	return DatumGetInt64(MyBgworkerEntry->bgw_main_arg);
}

/*
 * Register a dynamic worker of iceml's connected to a database: `function`
 * is its entry point, `type` what pg_stat_activity shows as backend_type
 * (no session can set it), arg and extra what it is told; the postmaster
 * tells this backend when it stops if `notify`.  False when no background
 * worker slot is free.
 */
bool
RegisterIcemlWorker(const char *function, const char *type, const char *name,
					Datum arg, const void *extra, size_t extra_len,
					bool notify, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	Assert(extra_len <= BGW_EXTRALEN);
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "iceml", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker.bgw_name, name, BGW_MAXLEN);
	strlcpy(worker.bgw_type, type, BGW_MAXLEN);
	worker.bgw_main_arg = arg;
	memcpy(worker.bgw_extra, extra, extra_len);
	worker.bgw_notify_pid = notify ? MyProcPid : 0;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

/*
 * In a worker's PG_CATCH: the error to the server log (whole: SQLSTATE,
 * detail, context), a copy of it in ctx, and the transaction aborted, so
 * that the worker can record the failure in a transaction of its own.
 */
ErrorData *
WorkerCatchError(MemoryContext ctx)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(ctx);
	EmitErrorReport();
	edata = CopyErrorData();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	return edata;
}
