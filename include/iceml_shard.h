/*
 * iceml_shard.h - scale-out over postgres_fdw (src/shard/): what the
 * scale-out files offer each other and _PG_init.
 */
#ifndef ICEML_SHARD_H
#define ICEML_SHARD_H

#include "postgres.h"

#include "libpq-fe.h"

/*
 * One statement with parameters on a node, committed there at once,
 * whatever becomes of the local transaction (a connection of its own,
 * autocommit).  Returns the result (PQclear it); errors name the node.
 */
extern PGresult *ShardNodeExecAutonomous(const char *node, const char *sql, int nparams,
										 const Oid *types, const char *const *values,
										 const int *lengths, const int *formats);

/*
 * A new connection to `node` as `userid` through the node's foreign server
 * and that role's user mapping (postgres_fdw's password rule); PQfinish it.
 * Needs a transaction.  Errors name the node.
 */
extern PGconn *ShardNodeConnect(const char *node, Oid userid);
/*
 * Talking to a node with libpq (every file of src/shard): wait for a result
 * interruptibly (false: the connection was lost), and copy a node's error
 * out of libpq (res cleared) to be raised with the caller's context.
 */
typedef struct ShardNodeError
{
	int			code;			/* the node's SQLSTATE, or 08006 */
	char	   *message;
	char	   *detail;
	char	   *hint;
	char	   *context;
} ShardNodeError;

extern bool ShardAwaitResult(PGconn *conn);
/* the last result of what was sent (several statements: the last's); NULL when lost */
extern PGresult *ShardLastResult(PGconn *conn);
extern void ShardTakeNodeError(PGconn *conn, PGresult *res, ShardNodeError *e);

/* Close this session's idle connections to `node` (no remote transaction). */
extern void ShardCloseNode(const char *node);

/*
 * src/shard/remote_trial.c: a study's trials on the nodes.  The training
 * worker (src/jobs/worker.c) hands a claimed run to claimed_run_hook,
 * RemoteTrialClaimed, which follows a trial placed on a node there instead
 * of training it.
 */
extern bool IsRemoteTrial(int64 run_id);
extern void RemoteTrialInWorker(int64 run_id, Oid role);
extern bool RemoteTrialClaimed(int64 run_id, Oid role);

/* Is relid a sharded feature group?  Its merged statistics (shard_stats.c). */
extern bool ShardIsSharded(Oid relid);
extern int64 ShardComputeStatistics(Oid relid);

/* The GUC, the executor hooks and the statistics hook; from _PG_init. */
extern void ShardInit(void);

/* src/shard/shard_predict.c: predictions run where the rows are */
extern void ShardPredictInit(void);

#endif							/* ICEML_SHARD_H */
