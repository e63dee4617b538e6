/*
 * iceml_shard.h - scale-out over postgres_fdw: what src/shard/shard.c offers the
 * other scale-out files (src/shard/shard_predict.c).
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

/* src/shard/shard_predict.c: predictions run where the rows are */
extern void ShardPredictInit(void);

#endif							/* ICEML_SHARD_H */
