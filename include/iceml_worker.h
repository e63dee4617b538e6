/*
 * iceml_worker.h - background workers that train, and the catalog access
 * they share with the SQL functions.
 */
#ifndef ICEML_WORKER_H
#define ICEML_WORKER_H

#include "postgres.h"

#include "executor/spi.h"

#include "iceml_catalog.h"

/* What a launched worker needs besides its job id (in bgw_extra). */
typedef struct IcemlWorkerExtra
{
	Oid			database;		/* the caller's database */
	Oid			login_role;		/* the caller's session user: connects */
	Oid			role;			/* the caller's current role: reads data */
} IcemlWorkerExtra;

/*
 * Start a worker for run `id` when the current transaction commits; it
 * connects as `login` and reads data as `role` (the run's).
 */
extern void LaunchAtCommit(int64 id, Oid role, Oid login);

/*
 * Start workers for the oldest queued runs of this database, within
 * iceml.max_workers and each study's parallel limit.  Returns how many were
 * started.  Needs a transaction.
 */
extern int	LaunchQueuedRuns(void);

/*
 * Mark runs whose worker is gone (killed, crashed, server restarted) as
 * failed.  Returns how many; does nothing in a read-only transaction.
 */
extern int	ReapOrphanedRuns(void);

/*
 * End the studies (or study `study_id`) none of whose trials is queued or
 * running, recording the best trial.  Needs SPI, as the catalog owner.
 */
extern void FinishStudies(int64 study_id);

/* Switching to the catalog owner: see iceml_catalog.h. */

/*
 * SPI helpers: run one statement (SPI must be connected), error out with
 * the statement's text on failure; return SPI_processed.
 */
extern uint64 SpiExec(const char *sql, int nargs, Oid *argtypes, Datum *values,
					  const char *nulls);
/* Column `col` (1-based) of row `row` of SPI_tuptable; false if NULL. */
extern bool SpiGetDatum(uint64 row, int col, Datum *out);
extern char *SpiGetText(uint64 row, int col);

/* The training body, in src/train.c; called by the worker main. */
extern void TrainRunInWorker(int64 run_id, Oid role);

/* Set up transaction callbacks; called from _PG_init. */
extern void WorkerInit(void);

#endif							/* ICEML_WORKER_H */
