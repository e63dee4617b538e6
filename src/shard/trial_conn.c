/*
 * trial_conn.c - the connection of a coordinator's trial worker to the
 * trial's node (src/shard/remote_trial.c, trial_leftovers.c): made as the
 * run's role through the node's foreign server and that role's user
 * mapping, statements waited for interruptibly, the node's errors raised
 * with its name and the trial's run as context.
 */
#include "postgres.h"

#include "iceml_shard.h"
#include "remote_trial.h"

/* An error of the node's (or of the connection to it), its name first. */
void
TrialNodeFailed(RemoteTrial *rt, PGresult *res, const char *what)
{
	ShardNodeError e;

	ShardTakeNodeError(rt->conn, res, &e);
	ereport(ERROR,
			(errcode(e.code),
			 errmsg("node \"%s\": %s", rt->node, e.message),
			 e.detail ? errdetail_internal("%s", e.detail) : 0,
			 e.hint ? errhint("%s", e.hint) : 0,
			 errcontext("trial run %lld on node \"%s\": %s", (long long) rt->run_id, rt->node, what)));
}

/*
 * The result of what was sent on the node's connection, waited for
 * interruptibly; errors raised (PQclear the result).
 */
PGresult *
TrialNodeResult(RemoteTrial *rt, const char *sql)
{
	PGresult   *res;
	PGresult   *extra;

	if (!ShardAwaitResult(rt->conn))
		TrialNodeFailed(rt, NULL, sql);
	res = PQgetResult(rt->conn);
	if (res && PQresultStatus(res) == PGRES_COPY_IN)
		return res;				/* the COPY's data goes next */
	while (ShardAwaitResult(rt->conn) && (extra = PQgetResult(rt->conn)) != NULL)
		PQclear(extra);
	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
						PQresultStatus(res) != PGRES_TUPLES_OK))
		TrialNodeFailed(rt, res, sql);
	return res;
}

/* One statement with text parameters on the node; its result (PQclear it). */
PGresult *
TrialNodeExec(RemoteTrial *rt, const char *sql, int nparams, const char *const *values, int resultFormat)
{
	if (!PQsendQueryParams(rt->conn, sql, nparams, NULL, values, NULL, NULL, resultFormat))
		TrialNodeFailed(rt, NULL, sql);
	return TrialNodeResult(rt, sql);
}

void
TrialNodeCommand(RemoteTrial *rt, const char *sql)
{
	PQclear(TrialNodeExec(rt, sql, 0, NULL, 0));
}

/* Connect as the run's role (needs a transaction: catalog lookups). */
void
TrialNodeConnect(RemoteTrial *rt)
{
	rt->conn = ShardNodeConnect(rt->node, rt->role);
	TrialNodeCommand(rt, "SET search_path = pg_catalog, pg_temp");
}
