/*
 * iceml_worker.h - jobs (src/jobs/): the queue and its workers, the
 * supervisor, hyperparameters, studies, what a training run records, and
 * what every iceml background worker does (src/jobs/bgworker.c).
 * src/jobs/worker.c's opening comment walks a run from iceml.train() to
 * its model: read it first.
 */
#ifndef ICEML_WORKER_H
#define ICEML_WORKER_H

#include "postgres.h"

#include "executor/spi.h"
#include "postmaster/bgworker.h"

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#include "iceml_catalog.h"
#include "iceml_nn.h"

/* What a launched worker needs besides its job id (in bgw_extra). */
typedef struct IcemlWorkerExtra
{
	Oid			database;		/* the caller's database */
	Oid			login_role;		/* the caller's session user: connects */
	Oid			role;			/* the caller's current role: reads data */
} IcemlWorkerExtra;

/* ---- hyperparameters (src/jobs/hyperparams.c) --- */

/* Hyperparameter "deploy": what a run does with its model (50_predict.sql). */
typedef enum IcemlDeploy
{
	ICEML_DEPLOY_IF_BETTER = 0,
	ICEML_DEPLOY_ALWAYS = 1,
	ICEML_DEPLOY_NEVER = 2
} IcemlDeploy;

/* A run's hyperparameters, parsed: the engine's part and the worker's. */
typedef struct IcemlRunConfig
{
	IcemlTrainConfig train;		/* batch size, optimiser, schedule, epochs, ... */
	int			init;			/* IcemlInit */
	int			patience;		/* early stopping, 0 for none */
	int			checkpoint_every;	/* epochs, 0 for none */
	int			threads;
	int			deploy;			/* IcemlDeploy */
	List	   *channels;		/* of char *: input channels in order */
} IcemlRunConfig;

/*
 * Check hyperparameters (22023 naming the key and value, the range as a
 * hint), fill in the defaults and parse them into *cfg; `dataset`, unless
 * InvalidOid, must have the channels.  Returns the resolved object.
 */
extern Jsonb *ResolveHyperparams(Jsonb *given, Oid dataset, IcemlRunConfig *cfg);
/* Their names, comma-separated; `tunable`: those a search may set. */
extern char *HyperparameterNames(bool tunable);

/*
 * Start a worker for run `id` when the current transaction commits; it
 * connects as `login` and reads data as `role` (the run's).
 */
extern void LaunchAtCommit(int64 id, Oid role, Oid login);
/* Likewise for pipeline run `id` (src/jobs/pipeline.c). */
extern void LaunchPipelineAtCommit(int64 id, Oid role, Oid login);

/*
 * Start workers for the oldest queued runs of this database, within the
 * free trainer slots and each study's parallel limit.  Returns how many
 * were started.  Needs a transaction.
 */
extern int	LaunchQueuedRuns(void);

/*
 * Mark runs whose worker is gone (killed, crashed, server restarted) as
 * failed; `startup` names a server restart as the reason.  Returns how
 * many; does nothing in a read-only transaction.
 */
extern int	ReapOrphanedRuns(bool startup);

/*
 * The lazy path: reap and start queued runs now, unless the supervisor
 * does it (iceml preloaded).  Returns how many runs were reaped.
 */
extern int	JobsMaintain(void);

/* Queued and running jobs of this database.  SPI connected. */
typedef struct JobsQueueState
{
	int64		queued;
	int64		running;
} JobsQueueState;
extern JobsQueueState QueueState(void);

/* ---- the supervisor and trainer slots (src/jobs/supervisor.c) --- */

/* Is iceml preloaded, with its supervisor and slots in shared memory? */
extern bool JobsSupervised(void);
/* Take / give back one of iceml.max_workers trainer slots (preloaded). */
extern bool TakeTrainerSlot(int64 run_id);
extern void ReleaseTrainerSlot(bool wake);
extern int	TrainerSlotsFree(void);
/* Ask for a visit of `db`, or note that it has runs waiting for a slot. */
extern void WakeSupervisor(Oid db, bool visit, bool queued);
/* Ask for a visit of this database when this process exits. */
extern void WakeSupervisorAtExit(void);
/* What a visit of `db` found: runs waiting for a slot, runs not finished. */
extern void SupervisorVisited(Oid db, bool queued, bool active);
extern void SupervisorInit(void);

/* ---- studies (src/jobs/studies.c) --- */

/* A study the caller owns and that is still running, or 42704.  SPI connected. */
extern void RequireOwnRunningStudy(int64 study_id);

/*
 * End the studies (or study `study_id`) none of whose trials is queued or
 * running, recording the best trial and offering it for deployment.  Needs
 * SPI, as the catalog owner.
 */
extern void FinishStudies(int64 study_id);

/*
 * ASHA, stopping form: should the trial `run_id` of study `study_id` stop
 * after `epoch` of `epochs`?  Rungs at min_epochs * 3^k.  Needs a worker
 * transaction (SPI connected).
 */
extern bool AshaStops(int64 study_id, int64 run_id, const char *metric,
					  int min_epochs, int epoch, int epochs);
/* Is `epoch` of `epochs` one of ASHA's rungs (min_epochs * 3^k, before the last)? */
extern bool AshaRung(int min_epochs, int epoch, int epochs);

/*
 * On a node, after `epoch` of a coordinator's trial: at one of its gates
 * (the ASHA rungs, iceml.trial_gates) wait for the coordinator's decision,
 * decided there with the study's other trials.  0: go on (released, or no
 * gate at this epoch); 1: stop(arg) said stop (the coordinator stops a
 * trial by cancelling it); 2: the coordinator's session that follows the
 * trial is gone.  Outside a transaction.
 */
extern int	TrialGateWait(int64 run_id, int epoch, int epochs, ArrayType *gates,
						  int (*stop) (void *), void *arg);

/* ---- background workers (src/jobs/bgworker.c) --- */

/* In a worker: wait for the latch or ms; interrupts served unless terminating. */
extern void WorkerNap(long ms);
/* In a worker: a short transaction with SPI connected, committed at the end. */
extern void WorkerBeginTx(void);
extern void WorkerEndTx(void);
/* One catalog statement as the owner, in a transaction of its own. */
extern uint64 OwnerExec(const char *sql, int nargs, Oid *types, Datum *values,
						const char *nulls);
/* Register a dynamic iceml worker connected to a database. */
extern bool RegisterIcemlWorker(const char *function, const char *type, const char *name,
								Datum arg, const void *extra, size_t extra_len,
								bool notify, BackgroundWorkerHandle **handle);
/* In a worker's PG_CATCH: the error logged and copied into ctx, the transaction aborted. */
extern ErrorData *WorkerCatchError(MemoryContext ctx);
/* A launched worker's start: signals, connection; returns its job id. */
extern int64 WorkerConnect(IcemlWorkerExtra *extra);

/* ---- what a training worker records (src/jobs/run_record.c) --- */

/* A failed run's error text: message, SQLSTATE, detail and hint. */
extern char *ErrorText(ErrorData *edata);
extern bool RunCancelRequested(int64 run_id);
/*
 * One epoch's metrics (val NULL without a validation split), the run's
 * epoch and best epoch, and with ckpt the checkpoint (best: the model of
 * the best epoch so far).
 */
extern void RecordEpoch(int64 run_id, int epoch, double train_loss, double train_acc,
						const IcemlMetrics *val, double seconds,
						const void *ckpt, size_t ckpt_len, const void *best, size_t best_len,
						int best_epoch);
/*
 * How the run ended: succeeded (with the model: net, c input channels,
 * blob, metrics), failed (error), cancelled or stopped; ends its study.
 */
extern void FinishRun(int64 run_id, int64 study_id, int c, const char *status, const char *error,
					  IcemlNet *net, const void *blob, size_t blob_len,
					  const IcemlMetrics *metrics, int best_epoch);

/*
 * A claimed run that another part of iceml carries out instead of training
 * it here (src/shard/remote_trial.c: a trial placed on a node): set at load,
 * it returns true when it did, false for an ordinary run.
 */
typedef bool (*ClaimedRunHook) (int64 run_id, Oid role);
extern PGDLLIMPORT ClaimedRunHook claimed_run_hook;

/* The training body, in src/jobs/train.c; called by the worker main. */
extern void TrainRunInWorker(int64 run_id, Oid role);

/* Transaction callbacks and the supervisor; called from _PG_init. */
extern void WorkerInit(void);

#endif							/* ICEML_WORKER_H */
