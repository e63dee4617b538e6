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

/* Is relid a sharded feature group?  Its merged statistics (shard_stats.c). */
extern bool ShardIsSharded(Oid relid);
extern int64 ShardComputeStatistics(Oid relid);

/* The GUC, the executor hooks and the statistics hook; from _PG_init. */
extern void ShardInit(void);

/* src/shard/shard_predict.c: predictions run where the rows are */
extern void ShardPredictInit(void);

#endif							/* ICEML_SHARD_H */
