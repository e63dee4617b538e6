/*
 * trial_leftovers.c - what a study's trials leave on the nodes (the
 * coordinator's side; src/shard/remote_trial.c places and follows them).
 *
 * A trial's node run, its model and (with the last trial of a study there)
 * its dataset copy are forgotten by the node when the trial ends.  A node
 * that went away first keeps them; the next trial of the same role placed
 * on that node has it forget them, and iceml.remote_trials.forgotten_at
 * records it.  A resumed trial goes on where its node still has it: the
 * node resumes its run from its own last checkpoint, on the copy that is
 * still there.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/memutils.h"

#include "iceml_worker.h"
#include "remote_trial.h"

/*
 * The node forgets the node run of trial `run_id` (its run, model and,
 * with the last trial of its dataset copy, the copy), which is recorded
 * here; a run the node no longer has counts as forgotten.  A failure there
 * is only logged: the next trial of this role on the node tries again.
 */
void
TrialForget(RemoteTrial *rt, int64 run_id, int64 node_run)
{
	char		id[32];
	const char *p[1] = {id};
	MemoryContext ctx = CurrentMemoryContext;
	volatile bool gone = false;

	snprintf(id, sizeof(id), "%lld", (long long) node_run);
	PG_TRY();
	{
		PQclear(TrialNodeExec(rt, "SELECT iceml.forget_trial($1::pg_catalog.int8)", 1, p, 0));
		gone = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(ctx);
		edata = CopyErrorData();
		FlushErrorState();
		if (edata->sqlerrcode == ERRCODE_UNDEFINED_OBJECT)
			gone = true;
		else
			ereport(WARNING,
					(errmsg("iceml: trial run %lld: node \"%s\" did not forget its run %lld: %s",
							(long long) run_id, rt->node, (long long) node_run, edata->message)));
	}
	PG_END_TRY();
	if (gone)
	{
		Datum		v[1] = {Int64GetDatum(run_id)};
		Oid			t[1] = {INT8OID};

		OwnerExec("UPDATE iceml.remote_trials SET forgotten_at = pg_catalog.now()"
				  " WHERE run_id OPERATOR(pg_catalog.=) $1", 1, t, v, NULL);
	}
}

/*
 * A resumed trial whose node still has its run: resumed there, from the
 * node's last checkpoint, on the dataset copy that is still there, and
 * followed by this session (iceml.adopt_trial: its gates wait for us).
 * False when the node cannot (no checkpoint, the run is gone): the caller
 * then has the node forget it and queues the trial afresh.
 */
static bool
ResumeOnNode(RemoteTrial *rt, int64 node_run)
{
	char		id[32];
	const char *p[1] = {id};
	MemoryContext ctx = CurrentMemoryContext;
	volatile bool resumed = false;

	snprintf(id, sizeof(id), "%lld", (long long) node_run);
	PG_TRY();
	{
		TrialNodeCommand(rt, "START TRANSACTION");
		PQclear(TrialNodeExec(rt, "SELECT iceml.resume($1::pg_catalog.int8)", 1, p, 0));
		PQclear(TrialNodeExec(rt, "SELECT iceml.adopt_trial($1::pg_catalog.int8)", 1, p, 0));
		TrialNodeCommand(rt, "COMMIT");
		resumed = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(ctx);
		edata = CopyErrorData();
		FlushErrorState();
		if (PQstatus(rt->conn) == CONNECTION_OK && PQtransactionStatus(rt->conn) != PQTRANS_IDLE)
			PQclear(PQexec(rt->conn, "ROLLBACK"));
		elog(LOG, "iceml: trial run %lld: node \"%s\" could not resume its run %lld (%s); the trial starts again",
			 (long long) rt->run_id, rt->node, (long long) node_run, edata->message);
	}
	PG_END_TRY();
	if (resumed)
	{
		Datum		v[2] = {Int64GetDatum(rt->run_id), Int64GetDatum(node_run)};
		Oid			t[2] = {INT8OID, INT8OID};

		rt->node_run = node_run;
		OwnerExec("UPDATE iceml.remote_trials SET node_run = $2, queued_at = pg_catalog.now(), forgotten_at = NULL"
				  " WHERE run_id OPERATOR(pg_catalog.=) $1", 2, t, v, NULL);
	}
	return resumed;
}

/*
 * Before a trial is queued on a node: what earlier trials of the same role
 * left there (their node went away before it could forget them) is
 * forgotten now.  A resumed trial goes on where the node has it, if it
 * can (true then: nothing to queue); else its old run there is forgotten
 * too and its row starts afresh.
 */
bool
TrialLeftovers(RemoteTrial *rt)
{
	IcemlOwnerContext own;
	Datum		v[3] = {CStringGetTextDatum(rt->node), ObjectIdGetDatum(rt->role), Int64GetDatum(rt->run_id)};
	Oid			t[3] = {TEXTOID, OIDOID, INT8OID};
	uint64		n;
	int64	   *runs;
	int64	   *node_runs;

	WorkerBeginTx();
	BecomeCatalogOwner(&own);
	n = SpiExec("SELECT t.run_id, t.node_run FROM iceml.remote_trials t"
				"  JOIN iceml.runs r ON r.id OPERATOR(pg_catalog.=) t.run_id"
				" WHERE t.node OPERATOR(pg_catalog.=) $1 AND r.role::pg_catalog.oid OPERATOR(pg_catalog.=) $2"
				"   AND t.node_run IS NOT NULL AND t.forgotten_at IS NULL"
				"   AND (r.status OPERATOR(pg_catalog.<>) ALL (ARRAY['queued', 'running'])"
				"        OR t.run_id OPERATOR(pg_catalog.=) $3)"
				" ORDER BY t.run_id OPERATOR(pg_catalog.=) $3, t.run_id", 3, t, v, NULL);
	runs = MemoryContextAlloc(TopMemoryContext, sizeof(int64) * (n + 1));
	node_runs = MemoryContextAlloc(TopMemoryContext, sizeof(int64) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		Datum		d;

		SpiGetDatum(i, 1, &d);
		runs[i] = DatumGetInt64(d);
		SpiGetDatum(i, 2, &d);
		node_runs[i] = DatumGetInt64(d);
	}
	RestoreUser(&own);
	WorkerEndTx();

	/* the others' first: this trial's own old run, if any, comes last */
	for (uint64 i = 0; i < n; i++)
	{
		if (runs[i] == rt->run_id && ResumeOnNode(rt, node_runs[i]))
		{
			pfree(runs);
			pfree(node_runs);
			return true;
		}
		TrialForget(rt, runs[i], node_runs[i]);
	}
	pfree(runs);
	pfree(node_runs);
	OwnerExec("UPDATE iceml.remote_trials SET node_run = NULL, queued_at = NULL, forgotten_at = NULL"
			  " WHERE run_id OPERATOR(pg_catalog.=) $1", 1, &t[2], &v[2], NULL);
	return false;
}
