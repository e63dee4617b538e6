/*
 * studies.c - everything about studies in one place: recording a study and
 * its invalid trials, the study metrics, ASHA's early stopping, and the end
 * of a study (its best trial, offered for deployment).
 *
 * A study is a row of iceml.studies plus one run per trial
 * (src/sql/42_studies.sql makes the trials; src/jobs/runs.c queues them).
 * Its metric has one name here and two columns elsewhere: the key of the
 * validation metrics in iceml.models.metrics and the column of
 * iceml.run_metrics.  The table below is the only translation.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "iceml_catalog.h"
#include "iceml.h"
#include "iceml_worker.h"

PG_FUNCTION_INFO_V1(iceml_study_metric);
PG_FUNCTION_INFO_V1(iceml_insert_study);
PG_FUNCTION_INFO_V1(iceml_record_invalid_trial);

/* ---- the metrics ------------------------------------------------------------ */

typedef struct StudyMetric
{
	const char *name;			/* as iceml.studies.metric stores it */
	const char *aliases[2];		/* also accepted from users */
	const char *model_key;		/* key of iceml.models.metrics */
	const char *epoch_column;	/* column of iceml.run_metrics */
	bool		lower_better;
} StudyMetric;

static const StudyMetric study_metrics[] = {
	{"val_log_loss", {"val_loss", "log_loss"}, "log_loss", "val_loss", true},
	{"val_acc", {"val_accuracy", "accuracy"}, "accuracy", "val_acc", false},
	{"val_auc", {"val_roc_auc", "roc_auc"}, "roc_auc", "val_auc", false},
};

/* The metric of a name or alias, or NULL. */
static const StudyMetric *
FindStudyMetric(const char *name)
{
	for (size_t i = 0; i < lengthof(study_metrics); i++)
	{
		const StudyMetric *m = &study_metrics[i];

		if (strcmp(name, m->name) == 0 || strcmp(name, m->aliases[0]) == 0 ||
			strcmp(name, m->aliases[1]) == 0)
			return m;
	}
	return NULL;
}

/* A stored study's metric (stored names are canonical). */
static const StudyMetric *
StoredStudyMetric(const char *name)
{
	const StudyMetric *m = FindStudyMetric(name);

	if (m == NULL)
		elog(ERROR, "iceml: study metric \"%s\" is not one iceml knows", name);
	return m;
}

/* iceml._study_metric(metric text) -> the canonical name, or 22023 */
Datum
iceml_study_metric(PG_FUNCTION_ARGS)
{
	const char *name = PG_ARGISNULL(0) ? "NULL" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	const StudyMetric *m = PG_ARGISNULL(0) ? NULL : FindStudyMetric(name);

	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown study metric \"%s\"", name),
				 errhint("Use val_log_loss (lower is better), val_acc or val_auc (higher is better).")));
	PG_RETURN_TEXT_P(cstring_to_text(m->name));
}

/* ---- recording a study ------------------------------------------------------ */

/*
 * A study the caller owns and that is still running, or an error.  Needs
 * SPI, as the catalog owner.
 */
void
RequireOwnRunningStudy(int64 study_id)
{
	Oid			t[2] = {INT8OID, OIDOID};
	Datum		v[2] = {Int64GetDatum(study_id), ObjectIdGetDatum(IcemlCaller())};
	IcemlOwnerContext own;
	bool		found;

	BecomeCatalogOwner(&own);
	found = SpiExec("SELECT 1 FROM iceml.studies WHERE id OPERATOR(pg_catalog.=) $1"
					"   AND owner OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid($2)"
					"   AND status OPERATOR(pg_catalog.=) 'running'",
					2, t, v, NULL) == 1;
	RestoreUser(&own);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("iceml study %lld is not a running study of role \"%s\"",
						(long long) study_id, GetUserNameFromId(IcemlCaller(), false))));
}

/*
 * iceml._insert_study(kind, experiment, training_dataset, architecture,
 *                     strategy, search_space, components, trials, parallel,
 *                     metric, hyperparams) -> study id
 */
Datum
iceml_insert_study(PG_FUNCTION_ARGS)
{
	Oid			argtypes[11] = {TEXTOID, TEXTOID, REGCLASSOID, TEXTOID, TEXTOID, JSONBOID,
	JSONBOID, INT4OID, INT4OID, TEXTOID, JSONBOID};
	Oid			types[12];
	Datum		values[12];
	char		nulls[13];
	int64		id;

	RequireIcemlUser("train");
	memset(nulls, ' ', sizeof(nulls));
	nulls[12] = '\0';
	for (int i = 0; i < 11; i++)
	{
		types[i] = argtypes[i];
		values[i] = PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	types[11] = NAMEOID;
	values[11] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(IcemlCaller(), false)));

	SPI_connect();
	id = OwnerInsertId("INSERT INTO iceml.studies (kind, experiment, training_dataset, architecture, strategy,"
					   "                           search_space, components, trials, parallel, metric, hyperparams, owner)"
					   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
					   12, types, values, nulls);
	SPI_finish();
	PG_RETURN_INT64(id);
}

/*
 * iceml._record_invalid_trial(study, trial, spec, hyperparams, error) -> run
 *
 * A trial of the caller's own running study whose architecture the engine
 * refused (an ablation that leaves out something the rest needs): recorded
 * as a run that failed before it began, with the engine's reason, so that
 * the study's results say so instead of missing a row.
 */
Datum
iceml_record_invalid_trial(PG_FUNCTION_ARGS)
{
	Oid			types[8] = {INT8OID, TEXTOID, JSONBOID, JSONBOID, TEXTOID, OIDOID, OIDOID, OIDOID};
	Datum		values[8];
	int64		id;

	RequireIcemlUser("train");
	for (int i = 0; i < 5; i++)
		values[i] = PG_GETARG_DATUM(i);
	values[5] = ObjectIdGetDatum(IcemlCaller());
	values[6] = ObjectIdGetDatum(GetSessionUserId());
	values[7] = ObjectIdGetDatum(MyDatabaseId);

	SPI_connect();
	RequireOwnRunningStudy(PG_GETARG_INT64(0));
	id = OwnerInsertId("INSERT INTO iceml.runs (experiment, study_id, trial, training_dataset, architecture, spec,"
			"                        hyperparams, status, label, val_split, channels, lineage, owner, role,"
			"                        login, database, epochs, error, finished_at)"
			" SELECT s.experiment, s.id, $2, s.training_dataset, s.architecture, $3, $4, 'failed',"
			"        d.label, d.val_split, ARRAY(SELECT pg_catalog.jsonb_array_elements_text($4 OPERATOR(pg_catalog.->) 'channels')),"
			"        d.lineage, s.owner, $6, $7, $8, ($4 OPERATOR(pg_catalog.->>) 'epochs')::pg_catalog.int4,"
			"        $5, pg_catalog.now()"
			"   FROM iceml.studies s, iceml._dataset_info(s.training_dataset) d"
			"  WHERE s.id OPERATOR(pg_catalog.=) $1"
			" RETURNING id",
			8, types, values, NULL);
	SPI_finish();
	PG_RETURN_INT64(id);
}

/* ---- ASHA --------------------------------------------------------------------- */

/*
 * ASHA, stopping form: at each rung (min_epochs * 3^k epochs) a trial goes
 * on only if it is among the best third of the trials of its study that
 * have reached that rung so far.
 */
bool
AshaRung(int min_epochs, int epoch, int epochs)
{
	int			rung = min_epochs;

	if (min_epochs <= 0)
		return false;
	while (rung < epoch)
		rung *= 3;
	return rung == epoch && epoch < epochs;
}

bool
AshaStops(int64 study_id, int64 run_id, const char *metric, int min_epochs,
		  int epoch, int epochs)
{
	IcemlOwnerContext own;
	const StudyMetric *m = StoredStudyMetric(metric);
	Datum		args[3];
	Oid			types[3] = {INT8OID, INT4OID, INT8OID};
	Datum		d;
	int64		better,
				total;

	if (!AshaRung(min_epochs, epoch, epochs))
		return false;

	BecomeCatalogOwner(&own);
	args[0] = Int64GetDatum(study_id);
	args[1] = Int32GetDatum(epoch);
	args[2] = Int64GetDatum(run_id);
	SpiExec(psprintf("WITH m AS (SELECT m.run_id, m.%s AS v FROM iceml.run_metrics m"
					 "            JOIN iceml.runs r ON r.id OPERATOR(pg_catalog.=) m.run_id"
					 "           WHERE r.study_id OPERATOR(pg_catalog.=) $1 AND m.epoch OPERATOR(pg_catalog.=) $2"
					 "             AND m.%s IS NOT NULL)"
					 " SELECT (SELECT pg_catalog.count(*) FROM m, m AS me"
					 "          WHERE me.run_id OPERATOR(pg_catalog.=) $3 AND m.v OPERATOR(pg_catalog.%s) me.v),"
					 "        (SELECT pg_catalog.count(*) FROM m)",
					 m->epoch_column, m->epoch_column, m->lower_better ? "<" : ">"),
			3, types, args, NULL);
	SpiGetDatum(0, 1, &d);
	better = DatumGetInt64(d);
	SpiGetDatum(0, 2, &d);
	total = DatumGetInt64(d);
	RestoreUser(&own);

	/* go on while fewer than ceil(total / 3) trials are better */
	return better >= (total + 2) / 3;
}

/*
 * A trial of a coordinator's study waiting at a gate here (a rung: see
 * iceml.trial_gates): 1 when the coordinator released it, -1 when the
 * coordinator's session that follows it (process id and start time, so a
 * reused process id is not taken for it) is gone, 0 while it waits.  Needs
 * a worker transaction: each one reads the sessions afresh.
 */
static int
TrialGateState(int64 run_id, int epoch)
{
	IcemlOwnerContext own;
	Datum		args[2] = {Int64GetDatum(run_id), Int32GetDatum(epoch)};
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		d;
	bool		released;
	int			pid;
	TimestampTz start;
	int			n;

	BecomeCatalogOwner(&own);
	if (SpiExec("SELECT g.released, g.follower, g.follower_start FROM iceml.trial_gates g"
				" WHERE g.run_id OPERATOR(pg_catalog.=) $1 AND g.epoch OPERATOR(pg_catalog.=) $2",
				2, types, args, NULL) != 1)
	{
		RestoreUser(&own);
		return 1;				/* no gate (any more): go on */
	}
	SpiGetDatum(0, 1, &d);
	released = DatumGetBool(d);
	SpiGetDatum(0, 2, &d);
	pid = DatumGetInt32(d);
	SpiGetDatum(0, 3, &d);
	start = DatumGetTimestampTz(d);
	RestoreUser(&own);
	if (released)
		return 1;
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *b = pgstat_fetch_stat_local_beentry(i);

		if (b && b->backendStatus.st_procpid == pid &&
			b->backendStatus.st_proc_start_timestamp == start)
			return 0;
	}
	return -1;
}

int
TrialGateWait(int64 run_id, int epoch, int epochs, ArrayType *gates,
			  int (*stop) (void *), void *arg)
{
	Datum	   *elems;
	int			n;
	bool		gate = false;

	if (gates == NULL)
		return 0;
	deconstruct_array_builtin(gates, INT4OID, &elems, NULL, &n);
	for (int i = 0; i < n; i++)
		gate |= DatumGetInt32(elems[i]) == epoch;
	if (!gate)
		return 0;
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("epoch %d of %d: waiting for the coordinator's ASHA decision",
									epoch, epochs));
	for (;;)
	{
		int			state;

		WorkerBeginTx();
		state = TrialGateState(run_id, epoch);
		WorkerEndTx();
		if (state != 0)
			return state > 0 ? 0 : 2;
		if (stop(arg) != 0)
			return 1;
		WorkerNap(50);
	}
}

/* ---- the end of a study ------------------------------------------------------ */

/*
 * A study ends when none of its trials is queued or running: it records its
 * best trial (by the study's metric, among trials that kept a model) and
 * ends succeeded, or failed when no trial kept one.  Trials end in separate
 * workers at the same time, so the study row is locked first: the last of
 * two concurrent trials then waits, and its check (a fresh snapshot per
 * statement) sees the other's end.  The lock is FOR NO KEY UPDATE: a
 * finishing trial already holds FOR KEY SHARE on its study (the foreign key
 * check of its second update of its run row), and two such holders each
 * asking FOR UPDATE deadlocked.  study_id 0: every running study.
 * Needs SPI and the catalog owner.
 */
void
FinishStudies(int64 study_id)
{
	Datum		arg = Int64GetDatum(study_id);
	Oid			type = INT8OID;
	uint64		n;
	int64	   *ids;
	const StudyMetric **metric;

	if (study_id != 0)
		n = SpiExec("SELECT id, metric FROM iceml.studies"
					" WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'"
					" FOR NO KEY UPDATE",
					1, &type, &arg, NULL);
	else
		/* a sweep: skip studies a finishing trial holds, it ends them itself */
		n = SpiExec("SELECT s.id, s.metric FROM iceml.studies s"
					" WHERE s.status OPERATOR(pg_catalog.=) 'running'"
					"   AND NOT EXISTS (SELECT 1 FROM iceml.runs r"
					"                    WHERE r.study_id OPERATOR(pg_catalog.=) s.id"
					"                      AND r.status OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running']))"
					" ORDER BY s.id FOR NO KEY UPDATE SKIP LOCKED",
					0, NULL, NULL, NULL);
	ids = palloc(sizeof(int64) * (n + 1));
	metric = palloc(sizeof(StudyMetric *) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		Datum		d;

		SpiGetDatum(i, 1, &d);
		ids[i] = DatumGetInt64(d);
		metric[i] = StoredStudyMetric(SpiGetText(i, 2));
	}
	for (uint64 i = 0; i < n; i++)
	{
		arg = Int64GetDatum(ids[i]);
		/* the best: by the study's metric, among trials that kept a model */
		if (SpiExec(psprintf("WITH t AS (SELECT r.id, r.model_id, r.status,"
							 "                  (m.metrics OPERATOR(pg_catalog.->>) %s)::float8 AS v"
							 "             FROM iceml.runs r LEFT JOIN iceml.models m ON m.id OPERATOR(pg_catalog.=) r.model_id"
							 "            WHERE r.study_id OPERATOR(pg_catalog.=) $1),"
							 "     s AS (SELECT * FROM iceml.studies WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'"
							 "             AND NOT EXISTS (SELECT 1 FROM t WHERE t.status OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running']))),"
							 "     best AS (SELECT t.id, t.model_id FROM t, s WHERE t.model_id IS NOT NULL"
							 "               ORDER BY t.v %s NULLS LAST, t.id LIMIT 1)"
							 " UPDATE iceml.studies st SET finished_at = pg_catalog.now(),"
							 "        status = CASE WHEN EXISTS (SELECT 1 FROM best) THEN 'succeeded' ELSE 'failed' END,"
							 "        best_run = (SELECT id FROM best), best_model = (SELECT model_id FROM best)"
							 "   FROM s WHERE st.id OPERATOR(pg_catalog.=) s.id"
							 " RETURNING st.best_run",
							 quote_literal_cstr(metric[i]->model_key),
							 metric[i]->lower_better ? "ASC" : "DESC"),
					1, &type, &arg, NULL) == 1)
		{
			Datum		best;

			/* the best trial is offered for deployment as its "deploy" says */
			if (SpiGetDatum(0, 1, &best))
				SpiExec("SELECT iceml._deploy_if_better($1, true)", 1, &type, &best, NULL);
		}
	}
	pfree(metric);
	pfree(ids);
}

