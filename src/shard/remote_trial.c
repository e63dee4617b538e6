/*
 * remote_trial.c - a study's trials on the nodes (iceml.tune(...,
 * nodes => ...); src/sql/62_shard_trials.sql has the SQL side).
 *
 * On the coordinator a trial placed on a node is an ordinary queued run of
 * the study plus a row of iceml.remote_trials; the study's parallel limit,
 * wait, cancel, progress and the study's end work on it unchanged.  The
 * coordinator's worker that claims it (src/jobs/worker.c calls
 * RemoteTrialInWorker instead of training) acts as the run's role:
 *
 *   1. connects to the node through the node's foreign server and that
 *      role's user mapping (ShardNodeConnect: postgres_fdw's password
 *      rule; iceml stores no credentials);
 *   2. in one transaction on the node: iceml.receive_trial_data creates the
 *      dataset copy iceml_td.<key> (one per study and node) unless it is
 *      there, COPY fills it with the training dataset read here as the
 *      run's role, iceml.run_trial queues the trial as a run of the node's
 *      own workers (the node's cores and iceml.max_workers);
 *   3. every POLL_MS: the node run's status, then its new epochs, recorded
 *      here (RecordEpoch: run_metrics, progress); ASHA decides here with
 *      the study's other trials and cancels the node run to stop it;
 *      iceml.cancel here is passed on;
 *   4. at the end: the node's model (the best epoch's weights and
 *      metrics), loaded by the engine to check it, recorded here as the
 *      run's model (FinishRun: deploy, the study's best trial), and the
 *      node forgets the trial (iceml.forget_trial: its run, model and, with
 *      the last trial, the dataset copy).
 *
 * A node that cannot be reached or goes away fails the trial with the
 * node's name and libpq's reason; the study goes on with its other trials.
 * Nothing is written on the coordinator but the run's own rows.
 */
#include "postgres.h"

#include <math.h>

#include "libpq/pqformat.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "iceml_shard.h"
#include "remote_trial.h"
#include "iceml_worker.h"

#define POLL_MS 300
#define COPY_CHUNK (1024 * 1024)


/* ---- 1. what the trial is ------------------------------------------------ */

static char *
CopyText(int col)
{
	char	   *s = SpiGetText(0, col);

	return s ? MemoryContextStrdup(TopMemoryContext, s) : NULL;
}

static void
LoadTrial(RemoteTrial *rt)
{
	IcemlOwnerContext own;
	Datum		arg = Int64GetDatum(rt->run_id);
	Oid			type = INT8OID;
	Datum		d;

	WorkerBeginTx();
	BecomeCatalogOwner(&own);
	if (SpiExec("SELECT t.node, t.data_key, COALESCE(t.threads_share, 0), r.training_dataset::pg_catalog.oid,"
				"       r.experiment, r.architecture, r.spec::pg_catalog.text, r.hyperparams::pg_catalog.text,"
				"       r.label, r.val_split, r.trial, r.lineage::pg_catalog.text,"
				"       pg_catalog.cardinality(r.channels), r.epochs, COALESCE(r.study_id, 0),"
				"       CASE WHEN s.strategy OPERATOR(pg_catalog.=) 'asha' THEN s.metric END,"
				"       GREATEST(COALESCE((s.hyperparams OPERATOR(pg_catalog.->>) 'asha_min_epochs')::pg_catalog.int4, 1), 1)"
				"  FROM iceml.remote_trials t JOIN iceml.runs r ON r.id OPERATOR(pg_catalog.=) t.run_id"
				"  LEFT JOIN iceml.studies s ON s.id OPERATOR(pg_catalog.=) r.study_id"
				" WHERE t.run_id OPERATOR(pg_catalog.=) $1",
				1, &type, &arg, NULL) != 1)
		elog(ERROR, "iceml trial run %lld vanished", (long long) rt->run_id);
	rt->node = CopyText(1);
	rt->data_key = CopyText(2);
	SpiGetDatum(0, 3, &d);
	rt->threads_share = DatumGetInt32(d);
	SpiGetDatum(0, 4, &d);
	rt->dataset = DatumGetObjectId(d);
	rt->experiment = CopyText(5);
	rt->architecture = CopyText(6);
	rt->spec = CopyText(7);
	rt->hyperparams = CopyText(8);
	rt->label = CopyText(9);
	rt->val_split = CopyText(10);
	rt->trial = CopyText(11);
	rt->lineage = CopyText(12);
	SpiGetDatum(0, 13, &d);
	rt->c = DatumGetInt32(d);
	SpiGetDatum(0, 14, &d);
	rt->epochs = DatumGetInt32(d);
	SpiGetDatum(0, 15, &d);
	rt->study_id = DatumGetInt64(d);
	rt->study_metric = CopyText(16);
	SpiGetDatum(0, 17, &d);
	rt->asha_min_epochs = DatumGetInt32(d);
	RestoreUser(&own);
	WorkerEndTx();
}

/* ---- 2. the dataset and the trial, queued on the node ------------------- */

static void
PutCopyData(RemoteTrial *rt, StringInfo buf)
{
	if (buf->len > 0 && PQputCopyData(rt->conn, buf->data, buf->len) != 1)
		TrialNodeFailed(rt, NULL, "COPY");
	resetStringInfo(buf);
}

/*
 * COPY the training dataset (every column, read here as the run's role)
 * into the node's copy, in binary: values travel in their types' binary
 * forms, exactly.  Returns the rows sent.
 */
static int64
SendDataset(RemoteTrial *rt, const char *columns_sql)
{
	IcemlOwnerContext own;
	Portal		portal;
	StringInfoData buf;
	MemoryContext rows;
	int64		n = 0;
	char	   *table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(rt->dataset)),
												   get_rel_name(rt->dataset));
	PGresult   *res;
	static const char header[] = "PGCOPY\n\377\r\n\0";

	res = TrialNodeExec(rt, psprintf("COPY iceml_td.%s (%s) FROM STDIN (FORMAT binary)",
								quote_identifier(rt->data_key), columns_sql), 0, NULL, 0);
	if (PQresultStatus(res) != PGRES_COPY_IN)
		TrialNodeFailed(rt, res, "COPY");
	PQclear(res);

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, header, 11);
	pq_sendint32(&buf, 0);		/* flags */
	pq_sendint32(&buf, 0);		/* header extension */

	GetUserIdAndSecContext(&own.save_userid, &own.save_sec_context);
	SetUserIdAndSecContext(rt->role, own.save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	rows = AllocSetContextCreate(CurrentMemoryContext, "iceml trial rows", ALLOCSET_DEFAULT_SIZES);
	portal = SPI_cursor_open_with_args(NULL, psprintf("SELECT %s FROM %s", columns_sql, table),
									   0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		TupleDesc	desc;

		SPI_cursor_fetch(portal, true, 64);
		if (SPI_processed == 0)
			break;
		desc = SPI_tuptable->tupdesc;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			MemoryContext old = MemoryContextSwitchTo(rows);

			pq_sendint16(&buf, desc->natts);
			for (int a = 0; a < desc->natts; a++)
			{
				bool		isnull;
				Datum		v = SPI_getbinval(SPI_tuptable->vals[r], desc, a + 1, &isnull);

				if (isnull)
					pq_sendint32(&buf, -1);
				else
				{
					Oid			send;
					bool		varlena;
					bytea	   *b;

					getTypeBinaryOutputInfo(TupleDescAttr(desc, a)->atttypid, &send, &varlena);
					b = OidSendFunctionCall(send, v);
					pq_sendint32(&buf, VARSIZE(b) - VARHDRSZ);
					appendBinaryStringInfo(&buf, VARDATA(b), VARSIZE(b) - VARHDRSZ);
				}
			}
			MemoryContextSwitchTo(old);
			MemoryContextReset(rows);
			n++;
			if (buf.len >= COPY_CHUNK)
				PutCopyData(rt, &buf);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SetUserIdAndSecContext(own.save_userid, own.save_sec_context);

	pq_sendint16(&buf, -1);		/* trailer */
	PutCopyData(rt, &buf);
	if (PQputCopyEnd(rt->conn, NULL) != 1)
		TrialNodeFailed(rt, NULL, "COPY");
	PQclear(TrialNodeResult(rt, "COPY"));
	return n;
}

/*
 * The epochs at which the trial waits on the node for ASHA's decision here
 * (its rungs before the last epoch), as an int4[] literal; NULL outside an
 * ASHA study.
 */
static char *
Gates(RemoteTrial *rt)
{
	StringInfoData buf;

	if (rt->study_metric == NULL)
		return NULL;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int e = 1; e < rt->epochs; e++)
		if (AshaRung(rt->asha_min_epochs, e, rt->epochs))
			appendStringInfo(&buf, "%s%d", buf.len > 1 ? "," : "", e);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static void
QueueOnNode(RemoteTrial *rt)
{
	IcemlOwnerContext own;
	char	   *columns_json;
	char	   *columns_sql;
	Datum		arg = ObjectIdGetDatum(rt->dataset);
	Oid			type = OIDOID;
	PGresult   *res;
	const char *params[11];
	char	   *hp;
	int64		sent = -1;

	/* the dataset's columns: names and types, as JSON and as a SELECT list */
	WorkerBeginTx();
	BecomeCatalogOwner(&own);
	if (get_rel_name(rt->dataset) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the training dataset of run %lld (relation %u) no longer exists",
						(long long) rt->run_id, rt->dataset)));
	SpiExec("SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('name', a.attname,"
			"           'type', pg_catalog.format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)::pg_catalog.text,"
			"       pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)"
			"  FROM pg_catalog.pg_attribute a"
			" WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0"
			"   AND NOT a.attisdropped",
			1, &type, &arg, NULL);
	columns_json = MemoryContextStrdup(TopMemoryContext, SpiGetText(0, 1));
	columns_sql = MemoryContextStrdup(TopMemoryContext, SpiGetText(0, 2));
	RestoreUser(&own);

	/*
	 * One transaction on the node: the copy's lock (taken by
	 * receive_trial_data) is held until the trial is queued on it.
	 */
	TrialNodeCommand(rt, "START TRANSACTION");
	params[0] = rt->data_key;
	params[1] = columns_json;
	res = TrialNodeExec(rt, "SELECT iceml.receive_trial_data($1, $2::pg_catalog.jsonb)", 2, params, 0);
	if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
	{
		PQclear(res);
		pgstat_report_activity(STATE_RUNNING, psprintf("sending the training dataset to node %s", rt->node));
		sent = SendDataset(rt, columns_sql);
	}
	else
		PQclear(res);
	WorkerEndTx();

	/* the node's threads are shared by the node: "threads" only if given */
	hp = rt->threads_share > 0
		? "($5::pg_catalog.jsonb OPERATOR(pg_catalog.-) 'threads'::pg_catalog.text)"
		: "$5::pg_catalog.jsonb";
	params[0] = rt->experiment;
	params[1] = rt->data_key;
	params[2] = rt->architecture;
	params[3] = rt->spec;
	params[4] = rt->hyperparams;
	params[5] = rt->label;
	params[6] = rt->val_split;
	params[7] = rt->trial;
	params[8] = psprintf("{\"coordinator_run\": %lld, \"study\": %lld, \"coordinator_lineage\": %s}",
						 (long long) rt->run_id, (long long) rt->study_id, rt->lineage);
	params[9] = rt->threads_share > 0 ? psprintf("%d", rt->threads_share) : NULL;
	params[10] = Gates(rt);
	res = TrialNodeExec(rt, psprintf("SELECT iceml.run_trial($1, pg_catalog.format('iceml_td.%%I', $2::pg_catalog.text)::pg_catalog.regclass,"
								" $3, $4::pg_catalog.jsonb, %s, $6, $7, $8, $9::pg_catalog.jsonb,"
								" $10::pg_catalog.int4, $11::pg_catalog.int4[])", hp),
				   11, params, 0);
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		TrialNodeFailed(rt, res, "iceml.run_trial");
	rt->node_run = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	TrialNodeCommand(rt, "COMMIT");

	{
		Datum		v[2] = {Int64GetDatum(rt->run_id), Int64GetDatum(rt->node_run)};
		Oid			t[2] = {INT8OID, INT8OID};

		OwnerExec("UPDATE iceml.remote_trials SET node_run = $2, queued_at = pg_catalog.now()"
				  " WHERE run_id OPERATOR(pg_catalog.=) $1", 2, t, v, NULL);
	}
	if (sent >= 0)
		elog(LOG, "iceml: trial run %lld: sent %lld rows of its training dataset to node \"%s\"; run %lld there",
			 (long long) rt->run_id, (long long) sent, rt->node, (long long) rt->node_run);
}

/* ---- 3. following the node's run ----------------------------------------- */

static double
ResultFloat(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NAN : strtod(PQgetvalue(res, row, col), NULL);
}

static void
CancelOnNode(RemoteTrial *rt)
{
	char		id[32];
	const char *p[1] = {id};

	snprintf(id, sizeof(id), "%lld", (long long) rt->node_run);
	PQclear(TrialNodeExec(rt, "SELECT iceml.cancel($1::pg_catalog.int8)", 1, p, 0));
}

/* the trial waiting at a rung goes on */
static void
ReleaseOnNode(RemoteTrial *rt, int epoch)
{
	char		id[32];
	char		ep[16];
	const char *p[2] = {id, ep};

	snprintf(id, sizeof(id), "%lld", (long long) rt->node_run);
	snprintf(ep, sizeof(ep), "%d", epoch);
	PQclear(TrialNodeExec(rt, "SELECT iceml.release_trial($1::pg_catalog.int8, $2::pg_catalog.int4)", 2, p, 0));
}

/* the kept model of the node's run, recorded here as the run's */
static void
TakeModel(RemoteTrial *rt, int64 model_id, int best_epoch)
{
	char		id[32];
	const char *p[1] = {id};
	PGresult   *res;
	IcemlMetrics m;
	IcemlNet   *net;
	char		err[256];
	int			c,
				h,
				w;
	size_t		len;
	void	   *blob;

	snprintf(id, sizeof(id), "%lld", (long long) model_id);
	res = TrialNodeExec(rt, "SELECT (m.metrics OPERATOR(pg_catalog.->>) 'n')::pg_catalog.int8,"
				   " (m.metrics OPERATOR(pg_catalog.->>) 'log_loss')::pg_catalog.float8,"
				   " (m.metrics OPERATOR(pg_catalog.->>) 'accuracy')::pg_catalog.float8,"
				   " (m.metrics OPERATOR(pg_catalog.->>) 'precision')::pg_catalog.float8,"
				   " (m.metrics OPERATOR(pg_catalog.->>) 'recall')::pg_catalog.float8,"
				   " (m.metrics OPERATOR(pg_catalog.->>) 'f1')::pg_catalog.float8,"
				   " (m.metrics OPERATOR(pg_catalog.->>) 'roc_auc')::pg_catalog.float8,"
				   " (m.metrics #>> '{confusion,tp}')::pg_catalog.int8,"
				   " (m.metrics #>> '{confusion,fp}')::pg_catalog.int8,"
				   " (m.metrics #>> '{confusion,tn}')::pg_catalog.int8,"
				   " (m.metrics #>> '{confusion,fn}')::pg_catalog.int8"
				   " FROM iceml.models m WHERE m.id OPERATOR(pg_catalog.=) $1::pg_catalog.int8", 1, p, 0);
	if (PQntuples(res) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("node \"%s\": the model %s of trial run %lld there is not readable",
						rt->node, id, (long long) rt->node_run)));
	memset(&m, 0, sizeof(m));
	m.n = (int64) ResultFloat(res, 0, 0);
	m.log_loss = ResultFloat(res, 0, 1);
	m.accuracy = ResultFloat(res, 0, 2);
	m.precision = ResultFloat(res, 0, 3);
	m.recall = ResultFloat(res, 0, 4);
	m.f1 = ResultFloat(res, 0, 5);
	m.auc = ResultFloat(res, 0, 6);
	m.tp = (int64) ResultFloat(res, 0, 7);
	m.fp = (int64) ResultFloat(res, 0, 8);
	m.tn = (int64) ResultFloat(res, 0, 9);
	m.fn = (int64) ResultFloat(res, 0, 10);
	PQclear(res);

	res = TrialNodeExec(rt, "SELECT m.weights FROM iceml.models m WHERE m.id OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
				   1, p, 1);
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		TrialNodeFailed(rt, res, "the model's weights");
	len = PQgetlength(res, 0, 0);
	blob = palloc(len);
	memcpy(blob, PQgetvalue(res, 0, 0), len);
	PQclear(res);

	/* the engine checks what came over the wire before it is recorded */
	net = iceml_net_load(blob, len, err, sizeof(err));
	if (net == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("node \"%s\": the model of trial run %lld does not load: %s",
						rt->node, (long long) rt->node_run, err)));
	iceml_net_input_shape(net, &c, &h, &w);
	if (c != rt->c)
	{
		iceml_net_free(net);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("node \"%s\": the model of trial run %lld takes %d input channels, not %d",
						rt->node, (long long) rt->node_run, c, rt->c)));
	}
	FinishRun(rt->run_id, rt->study_id, rt->c, "succeeded", NULL, net, blob, len, &m, best_epoch);
	iceml_net_free(net);
}

/*
 * Follow the node's run to its end; record the end here.  Returns when the
 * run has ended on both sides.
 */
static void
FollowTrial(RemoteTrial *rt)
{
	char		id[32];
	char		after[32];
	const char *p[2] = {id, after};
	int			reported = 0;
	bool		cancel_sent = false;
	bool		stop_sent = false;
	bool		terminated = false;

	snprintf(id, sizeof(id), "%lld", (long long) rt->node_run);
	pgstat_report_activity(STATE_RUNNING, psprintf("trial on node %s (run %lld there)", rt->node,
												   (long long) rt->node_run));
	for (;;)
	{
		PGresult   *st;
		PGresult   *ep;
		char	   *status;
		int			best_epoch;

		/* asked to stop (shutdown): cancel there, record the end, then go */
		if (ProcDiePending && !terminated)
		{
			HOLD_INTERRUPTS();
			terminated = true;
		}

		/* the status first: epochs are committed before the run ends */
		st = TrialNodeExec(rt, "SELECT r.status, COALESCE(r.best_epoch, 0), r.error, r.model_id FROM iceml.runs r"
					  " WHERE r.id OPERATOR(pg_catalog.=) $1::pg_catalog.int8", 1, p, 0);
		if (PQntuples(st) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("node \"%s\": trial run %lld is gone from the node", rt->node,
							(long long) rt->node_run)));
		status = pstrdup(PQgetvalue(st, 0, 0));
		best_epoch = atoi(PQgetvalue(st, 0, 1));

		snprintf(after, sizeof(after), "%d", reported);
		ep = TrialNodeExec(rt, "SELECT x.epoch, x.train_loss, x.train_acc, x.val_loss, x.val_acc, x.val_auc, x.seconds"
					  " FROM iceml.run_metrics x WHERE x.run_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8"
					  " AND x.epoch OPERATOR(pg_catalog.>) $2::pg_catalog.int4 ORDER BY x.epoch", 2, p, 0);
		for (int i = 0; i < PQntuples(ep); i++)
		{
			int			epoch = atoi(PQgetvalue(ep, i, 0));
			IcemlMetrics val;
			bool		has_val = !PQgetisnull(ep, i, 3);

			memset(&val, 0, sizeof(val));
			val.log_loss = ResultFloat(ep, i, 3);
			val.accuracy = ResultFloat(ep, i, 4);
			val.auc = ResultFloat(ep, i, 5);
			RecordEpoch(rt->run_id, epoch, ResultFloat(ep, i, 1), ResultFloat(ep, i, 2),
						has_val ? &val : NULL, ResultFloat(ep, i, 6), NULL, 0, NULL, 0,
						Min(best_epoch, epoch));
			reported = epoch;
			/* a rung: the trial waits there for this decision */
			if (rt->study_metric && !stop_sent && !cancel_sent &&
				AshaRung(rt->asha_min_epochs, epoch, rt->epochs))
			{
				bool		stop;

				WorkerBeginTx();
				stop = AshaStops(rt->study_id, rt->run_id, rt->study_metric,
								 rt->asha_min_epochs, epoch, rt->epochs);
				WorkerEndTx();
				if (stop)
				{
					CancelOnNode(rt);
					stop_sent = true;
				}
				else
					ReleaseOnNode(rt, epoch);
			}
		}
		PQclear(ep);

		if (strcmp(status, "queued") != 0 && strcmp(status, "running") != 0)
		{
			char	   *error = PQgetisnull(st, 0, 2) ? NULL : pstrdup(PQgetvalue(st, 0, 2));
			int64		model_id = PQgetisnull(st, 0, 3) ? 0 : strtoll(PQgetvalue(st, 0, 3), NULL, 10);

			PQclear(st);
			if (terminated)
				FinishRun(rt->run_id, rt->study_id, rt->c, "failed",
						  "the worker was asked to terminate (server shutdown or pg_terminate_backend); its trial on the node was cancelled",
						  NULL, NULL, 0, NULL, best_epoch);
			else if (strcmp(status, "succeeded") == 0 && model_id != 0)
				TakeModel(rt, model_id, best_epoch);
			else if (strcmp(status, "failed") == 0)
				FinishRun(rt->run_id, rt->study_id, rt->c, "failed",
						  psprintf("node \"%s\": %s", rt->node, error ? error : "the trial failed there"),
						  NULL, NULL, 0, NULL, best_epoch);
			else
				FinishRun(rt->run_id, rt->study_id, rt->c,
						  stop_sent && !cancel_sent ? "stopped" : "cancelled",
						  NULL, NULL, NULL, 0, NULL, best_epoch);
			return;
		}
		PQclear(st);

		/* iceml.cancel() here, or this worker asked to stop: cancel there */
		if (!cancel_sent && !stop_sent && (terminated || RunCancelRequested(rt->run_id)))
		{
			CancelOnNode(rt);
			cancel_sent = true;
		}
		WorkerNap(POLL_MS);
	}
}

/*
 * Is run `run_id` a trial placed on a node?  Called by the training worker
 * (src/jobs/worker.c) after claiming a run.
 */
bool
IsRemoteTrial(int64 run_id)
{
	IcemlOwnerContext own;
	Datum		arg = Int64GetDatum(run_id);
	Oid			type = INT8OID;
	bool		remote;

	WorkerBeginTx();
	BecomeCatalogOwner(&own);
	remote = SpiExec("SELECT 1 FROM iceml.remote_trials t WHERE t.run_id OPERATOR(pg_catalog.=) $1",
					 1, &type, &arg, NULL) == 1;
	RestoreUser(&own);
	WorkerEndTx();
	return remote;
}

void
RemoteTrialInWorker(int64 run_id, Oid role)
{
	RemoteTrial rt;
	MemoryContext ctx = CurrentMemoryContext;

	memset(&rt, 0, sizeof(rt));
	rt.run_id = run_id;
	rt.role = role;
	PG_TRY();
	{
		LoadTrial(&rt);
		WorkerBeginTx();
		TrialNodeConnect(&rt);
		WorkerEndTx();
		if (!TrialLeftovers(&rt))
			QueueOnNode(&rt);
		FollowTrial(&rt);
		TrialForget(&rt, rt.run_id, rt.node_run);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		edata = WorkerCatchError(ctx);
		HOLD_INTERRUPTS();
		/* a trial that may still run on a reachable node is cancelled there */
		if (rt.conn && rt.node_run != 0 && PQstatus(rt.conn) == CONNECTION_OK)
		{
			char		id[32];
			const char *p[1] = {id};
			PGresult   *res;

			snprintf(id, sizeof(id), "%lld", (long long) rt.node_run);
			if (PQtransactionStatus(rt.conn) != PQTRANS_IDLE)
				PQclear(PQexec(rt.conn, "ROLLBACK"));
			res = PQexecParams(rt.conn, "SELECT iceml.cancel($1::pg_catalog.int8)", 1, NULL, p, NULL, NULL, 0);
			PQclear(res);
		}
		FinishRun(rt.run_id, rt.study_id, rt.c, "failed",
				  rt.node && (edata->message == NULL || strncmp(edata->message, "node \"", 6) != 0) &&
				  strstr(edata->message ? edata->message : "", rt.node) == NULL
				  ? psprintf("node \"%s\": %s", rt.node, ErrorText(edata)) : ErrorText(edata),
				  NULL, NULL, 0, NULL, 0);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();
	if (rt.conn)
		PQfinish(rt.conn);
}

/*
 * claimed_run_hook (src/jobs/worker.c, set by ShardInit): a claimed run
 * that is a trial placed on a node is followed there; true when it was.
 */
bool
RemoteTrialClaimed(int64 run_id, Oid role)
{
	if (!IsRemoteTrial(run_id))
		return false;
	RemoteTrialInWorker(run_id, role);
	return true;
}
