/*
 * monitor.c - inference logging: iceml_predict() calls sampled at
 * iceml.log_inferences go into shared memory; a background worker writes
 * them to iceml.inference_log in their own database.
 *
 * Why shared memory: iceml_predict runs in parallel workers, in read-only
 * transactions and on hot standbys, where it may not write, and a write per
 * call would cost more than the inference.  So a call only appends a small
 * record (model, time, latency, prediction, angle, per-band mean and max)
 * to an array in shared memory under an LWLock, as pg_stat_statements
 * collects its counters; a full array drops records and counts them.
 *
 * Who writes: the static worker "iceml monitor" (registered when iceml is in
 * shared_preload_libraries) wakes every iceml.log_flush_interval, or at once
 * when the array is half full, and for each database with pending records
 * starts a short-lived dynamic worker "iceml log flush" connected to that
 * database.  The flusher takes that database's records out of the array
 * (compacting the rest) and inserts them as the bootstrap superuser in one
 * transaction; a database without iceml.inference_log has its records
 * dropped.  Records that wait longer than five minutes (a database that
 * refuses connections) are dropped by the launcher.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "iceml_catalog.h"
#include "iceml.h"
#include "iceml_predict.h"

#define MONITOR_CAPACITY	16384
#define MONITOR_MAX_DBS		32
#define MONITOR_STALE_SECS	300

typedef struct InferenceRecord
{
	TimestampTz ts;
	Oid			dbid;
	Oid			userid;
	int64		model_id;
	int64		deployment_id;
	float		latency_ms;
	float		prob;
	float		angle;
	bool		has_angle;
	float		mean1,
				max1,
				mean2,
				max2;
	char		name[NAMEDATALEN];
} InferenceRecord;

#define MONITOR_FLYING_SLOTS 64

typedef struct MonitorShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch;	/* NULL until the launcher runs */
	int			n;				/* records pending */
	int64		logged;			/* appended since start */
	int64		dropped;		/* lost: full array, stale, no table */
	int64		flushed;		/* written to a table */
	/* taken out by a flush worker and not yet committed, per database */
	Oid			flying_db[MONITOR_FLYING_SLOTS];
	int			flying_n[MONITOR_FLYING_SLOTS];
	InferenceRecord rec[MONITOR_CAPACITY];
} MonitorShared;

static MonitorShared *mon = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static int	log_flush_interval_ms = 1000;

PGDLLEXPORT void iceml_monitor_launcher_main(Datum arg);
PGDLLEXPORT void iceml_monitor_flush_main(Datum arg);

static Size
MonitorShmemSize(void)
{
	return MAXALIGN(sizeof(MonitorShared));
}

static void
MonitorShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MonitorShmemSize());
	RequestNamedLWLockTranche("iceml_monitor", 1);
}

static void
MonitorShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	mon = ShmemInitStruct("iceml monitor", MonitorShmemSize(), &found);
	if (!found)
	{
		memset(mon, 0, offsetof(MonitorShared, rec));
		mon->lock = &(GetNamedLWLockTranche("iceml_monitor"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* ---- the backend side ------------------------------------------------------ */

static void
BandSummary(const float *v, int n, float *mean, float *max)
{
	double		s = 0;
	float		m = v[0];

	for (int i = 0; i < n; i++)
	{
		s += v[i];
		if (v[i] > m)
			m = v[i];
	}
	*mean = (float) (s / n);
	*max = m;
}

void
MonitorRecord(IcemlModel *m, const char *name, const float *band_1,
			  const float *band_2, int n, bool has_angle, float angle,
			  float prob, instr_time start)
{
	InferenceRecord r;
	instr_time	now;
	bool		wake;

	if (mon == NULL)
		return;					/* iceml is not in shared_preload_libraries */
	if (iceml_log_inferences < 1.0 &&
		pg_prng_double(&pg_global_prng_state) >= iceml_log_inferences)
		return;
	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	r.ts = GetCurrentTimestamp();
	r.dbid = MyDatabaseId;
	r.userid = IcemlCaller();
	r.model_id = m->model_id;
	r.deployment_id = m->deployment_id;
	r.latency_ms = (float) INSTR_TIME_GET_MILLISEC(now);
	r.prob = prob;
	r.angle = angle;
	r.has_angle = has_angle;
	BandSummary(band_1, n, &r.mean1, &r.max1);
	BandSummary(band_2, n, &r.mean2, &r.max2);
	if (name)
	{
		/* deployment names have at most 63 bytes; never split a character */
		int			len = pg_mbcliplen(name, strlen(name), NAMEDATALEN - 1);

		memcpy(r.name, name, len);
		r.name[len] = '\0';
	}
	else
		r.name[0] = '\0';

	LWLockAcquire(mon->lock, LW_EXCLUSIVE);
	if (mon->n < MONITOR_CAPACITY)
	{
		mon->rec[mon->n++] = r;
		mon->logged++;
	}
	else
		mon->dropped++;
	wake = mon->n == MONITOR_CAPACITY / 2 && mon->launcher_latch != NULL;
	LWLockRelease(mon->lock);
	if (wake)
		SetLatch(mon->launcher_latch);
}

/*
 * iceml.inference_log_status(): records waiting in shared memory for this
 * database, and the server-wide counters.
 */
PG_FUNCTION_INFO_V1(iceml_inference_log_status);
Datum
iceml_inference_log_status(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		v[6];
	bool		nulls[6] = {0};
	int			pending = 0;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	v[0] = BoolGetDatum(mon != NULL);
	if (mon)
	{
		LWLockAcquire(mon->lock, LW_SHARED);
		for (int i = 0; i < mon->n; i++)
			if (mon->rec[i].dbid == MyDatabaseId)
				pending++;
		/* records a flush worker holds count until its insert commits */
		for (int i = 0; i < MONITOR_FLYING_SLOTS; i++)
			if (mon->flying_db[i] == MyDatabaseId)
				pending += mon->flying_n[i];
		v[1] = Int32GetDatum(pending);
		v[2] = Int64GetDatum(mon->logged);
		v[3] = Int64GetDatum(mon->flushed);
		v[4] = Int64GetDatum(mon->dropped);
		v[5] = BoolGetDatum(mon->launcher_latch != NULL);
		LWLockRelease(mon->lock);
	}
	else
		for (int i = 1; i < 6; i++)
			nulls[i] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, v, nulls)));
}

/* ---- the launcher -------------------------------------------------------------- */

static bool
LaunchFlusher(Oid dbid)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *h;
	pid_t		pid;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(w.bgw_library_name, "iceml", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "iceml_monitor_flush_main", BGW_MAXLEN);
	snprintf(w.bgw_name, BGW_MAXLEN, "iceml log flush %u", dbid);
	strlcpy(w.bgw_type, "iceml log flush", BGW_MAXLEN);
	w.bgw_main_arg = ObjectIdGetDatum(dbid);
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &h))
		return false;			/* no free slot: next round */
	/*
	 * Poll rather than WaitForBackgroundWorkerShutdown: a worker without a
	 * database connection ignores SIGUSR1, the postmaster's notification.
	 */
	for (;;)
	{
		BgwHandleStatus st = GetBackgroundWorkerPid(h, &pid);

		if (st == BGWH_STOPPED || st == BGWH_POSTMASTER_DIED || ShutdownRequestPending)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 20, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	pfree(h);
	return true;
}

void
iceml_monitor_launcher_main(Datum arg)
{
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(mon->lock, LW_EXCLUSIVE);
	mon->launcher_latch = MyLatch;
	LWLockRelease(mon->lock);

	while (!ShutdownRequestPending)
	{
		Oid			dbs[MONITOR_MAX_DBS];
		int			ndb = 0;
		TimestampTz stale = GetCurrentTimestamp() - (TimestampTz) MONITOR_STALE_SECS * USECS_PER_SEC;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 log_flush_interval_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (ShutdownRequestPending)
			break;

		/* the databases with records; drop the stale ones */
		LWLockAcquire(mon->lock, LW_EXCLUSIVE);
		{
			int			keep = 0;

			for (int i = 0; i < mon->n; i++)
			{
				InferenceRecord *r = &mon->rec[i];
				bool		seen = false;

				if (r->ts < stale)
				{
					mon->dropped++;
					continue;
				}
				if (keep != i)
					mon->rec[keep] = *r;
				keep++;
				for (int k = 0; k < ndb && !seen; k++)
					seen = dbs[k] == r->dbid;
				if (!seen && ndb < MONITOR_MAX_DBS)
					dbs[ndb++] = r->dbid;
			}
			mon->n = keep;
		}
		LWLockRelease(mon->lock);

		for (int k = 0; k < ndb && !ShutdownRequestPending; k++)
			if (!LaunchFlusher(dbs[k]))
				break;
	}
	LWLockAcquire(mon->lock, LW_EXCLUSIVE);
	mon->launcher_latch = NULL;
	LWLockRelease(mon->lock);
	proc_exit(0);
}

/* ---- the flusher ------------------------------------------------------------------- */

static void
FlushDone(int code, Datum arg)
{
	int			slot = DatumGetInt32(arg);

	if (slot < 0 || mon == NULL)
		return;
	LWLockAcquire(mon->lock, LW_EXCLUSIVE);
	mon->flying_db[slot] = InvalidOid;
	mon->flying_n[slot] = 0;
	LWLockRelease(mon->lock);
}

void
iceml_monitor_flush_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	InferenceRecord *recs;
	int			n = 0;
	int			flying_slot = -1;
	Oid			nsp;
	Oid			types[12] = {TIMESTAMPTZOID, TEXTOID, INT8OID, INT8OID, NAMEOID, FLOAT4OID,
	FLOAT4OID, FLOAT4OID, FLOAT4OID, FLOAT4OID, FLOAT4OID, FLOAT4OID};
	SPIPlanPtr	plan;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	pgstat_report_appname("iceml log flush");

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	/* take this database's records out of shared memory */
	recs = palloc(sizeof(InferenceRecord) * MONITOR_CAPACITY);
	LWLockAcquire(mon->lock, LW_EXCLUSIVE);
	{
		int			keep = 0;

		for (int i = 0; i < mon->n; i++)
		{
			if (mon->rec[i].dbid == dbid)
				recs[n++] = mon->rec[i];
			else
			{
				if (keep != i)
					mon->rec[keep] = mon->rec[i];
				keep++;
			}
		}
		mon->n = keep;
		for (int i = 0; i < MONITOR_FLYING_SLOTS && n > 0; i++)
			if (mon->flying_db[i] == InvalidOid)
			{
				mon->flying_db[i] = dbid;
				mon->flying_n[i] = n;
				flying_slot = i;
				break;
			}
	}
	LWLockRelease(mon->lock);
	/* done or failed, the records stop counting as pending when we exit */
	before_shmem_exit(FlushDone, Int32GetDatum(flying_slot));

	nsp = get_namespace_oid("iceml", true);
	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("inference_log", nsp)))
	{
		LWLockAcquire(mon->lock, LW_EXCLUSIVE);
		mon->dropped += n;
		LWLockRelease(mon->lock);
		n = 0;
	}
	if (n > 0)
	{
		IcemlOwnerContext own;

		/*
		 * As the catalog owner, under the pinned search_path: this worker
		 * connects as the bootstrap superuser, with the database's default
		 * search_path, which its owner may have pointed anywhere.
		 */
		BecomeCatalogOwner(&own);
		plan = SPI_prepare("INSERT INTO iceml.inference_log (logged_at, name, model_id, deployment_id, role,"
						   " latency_ms, prediction, inc_angle, band_1_mean, band_1_max, band_2_mean, band_2_max)"
						   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)", 12, types);
		if (plan == NULL)
			elog(ERROR, "iceml: cannot prepare the inference log insert: %s",
				 SPI_result_code_string(SPI_result));
		for (int i = 0; i < n; i++)
		{
			InferenceRecord *r = &recs[i];
			Datum		v[12];
			char		nulls[13] = "            ";
			char	   *role = GetUserNameFromId(r->userid, true);
			NameData	rolename;

			v[0] = TimestampTzGetDatum(r->ts);
			v[1] = r->name[0] ? CStringGetTextDatum(r->name) : (Datum) 0;
			nulls[1] = r->name[0] ? ' ' : 'n';
			v[2] = Int64GetDatum(r->model_id);
			v[3] = Int64GetDatum(r->deployment_id);
			nulls[3] = r->deployment_id ? ' ' : 'n';
			namestrcpy(&rolename, role ? role : "");
			v[4] = NameGetDatum(&rolename);
			nulls[4] = role ? ' ' : 'n';
			v[5] = Float4GetDatum(r->latency_ms);
			v[6] = Float4GetDatum(r->prob);
			v[7] = Float4GetDatum(r->angle);
			nulls[7] = r->has_angle ? ' ' : 'n';
			v[8] = Float4GetDatum(r->mean1);
			v[9] = Float4GetDatum(r->max1);
			v[10] = Float4GetDatum(r->mean2);
			v[11] = Float4GetDatum(r->max2);
			if (SPI_execute_plan(plan, v, nulls, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "iceml: inference log insert failed");
		}
		RestoreUser(&own);
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	if (n > 0)
	{
		LWLockAcquire(mon->lock, LW_EXCLUSIVE);
		mon->flushed += n;
		LWLockRelease(mon->lock);
	}
	proc_exit(0);
}

void
MonitorInit(void)
{
	BackgroundWorker w;

	DefineCustomIntVariable("iceml.log_flush_interval",
							"How often the iceml monitor worker writes logged inferences to iceml.inference_log.",
							NULL,
							&log_flush_interval_ms,
							1000, 10, 60000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = MonitorShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = MonitorShmemStartup;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 10;
	strlcpy(w.bgw_library_name, "iceml", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "iceml_monitor_launcher_main", BGW_MAXLEN);
	strlcpy(w.bgw_name, "iceml monitor", BGW_MAXLEN);
	strlcpy(w.bgw_type, "iceml monitor", BGW_MAXLEN);
	RegisterBackgroundWorker(&w);
}
