/*
 * runs.c - the privileged core of iceml.train(), iceml.tune(),
 * iceml.cancel() and iceml.resume().
 *
 * The SQL-level functions (sql/install/41_training_api.sql) validate their
 * arguments as the calling role; these C functions then write the catalog
 * as its owner, recording who asked.  Each checks for itself what the
 * caller may do, because users can call them directly.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "iceml_catalog.h"
#include "iceml.h"
#include "iceml_nn.h"
#include "iceml_worker.h"

PG_FUNCTION_INFO_V1(iceml_spec_info);
PG_FUNCTION_INFO_V1(iceml_builtin_spec);
PG_FUNCTION_INFO_V1(iceml_enqueue_run);
PG_FUNCTION_INFO_V1(iceml_insert_study);
PG_FUNCTION_INFO_V1(iceml_record_invalid_trial);
PG_FUNCTION_INFO_V1(iceml_cancel_job);
PG_FUNCTION_INFO_V1(iceml_resume_run);
PG_FUNCTION_INFO_V1(iceml_maintain);
PG_FUNCTION_INFO_V1(iceml_xmin_is_current);

/*
 * iceml._spec_info(spec jsonb): the engine's canonical form of a spec, its
 * parameter count, input channels and forward FLOPs per image; an invalid
 * spec is refused with the engine's message (layer index, type and shapes).
 */
Datum
iceml_spec_info(PG_FUNCTION_ARGS)
{
	Jsonb	   *spec = PG_GETARG_JSONB_P(0);
	char	   *text = JsonbToCString(NULL, &spec->root, VARSIZE(spec));
	char		err[ICEML_NN_ERRLEN];
	/* described, not allocated: a huge spec costs nothing here */
	IcemlNet   *net = iceml_net_describe(text, err, sizeof(err));
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	char	   *canon;
	int			c,
				h,
				w;

	if (net == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid architecture spec: %s", err),
				 errhint("See \"The engine\" in README.md for the layer types and their keys.")));
	/* a model is served by iceml_predict, which has the angle and nothing else */
	for (int k = 0; k < iceml_net_side_count(net); k++)
		if (strcmp(iceml_net_side_name(net, k), "inc_angle") != 0)
		{
			char	   *side = pstrdup(iceml_net_side_name(net, k));

			iceml_net_free(net);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid architecture spec: side input \"%s\" is not supported", side),
					 errdetail("iceml_predict supplies one side input, inc_angle."),
					 errhint("Use \"inputs\": [\"inc_angle\"].")));
		}
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	canon = iceml_net_spec_json(net);
	iceml_net_input_shape(net, &c, &h, &w);
	values[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(canon));
	values[1] = Int64GetDatum(iceml_net_param_count(net));
	values[2] = Int32GetDatum(c);
	values[3] = Float8GetDatum(iceml_net_forward_flops(net));
	free(canon);
	iceml_net_free(net);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* iceml._builtin_spec(name text): a built-in architecture of the engine. */
Datum
iceml_builtin_spec(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const char *spec = iceml_nn_builtin_spec(name);

	if (spec == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the engine has no built-in architecture \"%s\"", name)));
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(spec)));
}

static void
RequireTrainer(void)
{
	Oid			user_role = get_role_oid("iceml_user", false);

	if (!has_privs_of_role(IcemlCaller(), user_role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to train: role \"%s\" is not a member of iceml_user",
						GetUserNameFromId(IcemlCaller(), false))));
}

/*
 * A study the caller owns and that is still running, or an error.  Needs
 * SPI, as the catalog owner.
 */
static void
RequireOwnRunningStudy(int64 study_id)
{
	Oid			t[2] = {INT8OID, OIDOID};
	Datum		v[2] = {Int64GetDatum(study_id), ObjectIdGetDatum(IcemlCaller())};

	if (SpiExec("SELECT 1 FROM iceml.studies WHERE id OPERATOR(pg_catalog.=) $1"
				"   AND owner OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid($2)"
				"   AND status OPERATOR(pg_catalog.=) 'running'",
				2, t, v, NULL) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("iceml study %lld is not a running study of role \"%s\"",
						(long long) study_id, GetUserNameFromId(IcemlCaller(), false))));
}

/*
 * iceml._enqueue_run(experiment, training_dataset, architecture, spec,
 *                    hyperparams, epochs, label, val_split, channels,
 *                    lineage, study_id, trial, launch) -> run id
 */
Datum
iceml_enqueue_run(PG_FUNCTION_ARGS)
{
	Oid			dataset = PG_GETARG_OID(1);
	bool		launch = PG_GETARG_BOOL(12);
	IcemlOwnerContext own;
	Oid			types[16];
	Datum		values[16];
	char		nulls[17];
	Datum		d;
	int64		id;

	RequireTrainer();
	for (int i = 0; i < 12; i++)
		if (PG_ARGISNULL(i) && i != 7 && i != 10 && i != 11)
			elog(ERROR, "iceml._enqueue_run: argument %d is NULL", i + 1);
	if (pg_class_aclcheck(dataset, IcemlCaller(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for training dataset %s",
						DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(dataset)))),
				 errhint("The worker reads the dataset as the role that calls iceml.train().")));

	memset(nulls, ' ', sizeof(nulls));
	nulls[16] = '\0';
	{
		Oid			argtypes[12] = {TEXTOID, REGCLASSOID, TEXTOID, JSONBOID, JSONBOID, INT4OID,
		TEXTOID, TEXTOID, TEXTARRAYOID, JSONBOID, INT8OID, TEXTOID};

		for (int i = 0; i < 12; i++)
		{
			types[i] = argtypes[i];
			values[i] = PG_GETARG_DATUM(i);
			nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
		}
	}
	types[12] = NAMEOID;
	values[12] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(IcemlCaller(), false)));
	types[13] = OIDOID;
	values[13] = ObjectIdGetDatum(IcemlCaller());
	types[14] = OIDOID;
	values[14] = ObjectIdGetDatum(GetSessionUserId());
	types[15] = OIDOID;
	values[15] = ObjectIdGetDatum(MyDatabaseId);

	SPI_connect();
	BecomeCatalogOwner(&own);
	/* a trial joins only a running study of the caller's own */
	if (!PG_ARGISNULL(10))
		RequireOwnRunningStudy(PG_GETARG_INT64(10));
	SpiExec("INSERT INTO iceml.runs (experiment, training_dataset, architecture, spec, hyperparams, epochs,"
			"                        label, val_split, channels, lineage, study_id, trial,"
			"                        owner, role, login, database)"
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
			" RETURNING id",
			16, types, values, nulls);
	SpiGetDatum(0, 1, &d);
	id = DatumGetInt64(d);
	RestoreUser(&own);
	SPI_finish();

	if (launch)
		LaunchAtCommit(id, IcemlCaller(), GetSessionUserId());
	PG_RETURN_INT64(id);
}

/*
 * iceml._insert_study(kind, experiment, training_dataset, architecture,
 *                     strategy, search_space, components, trials, parallel,
 *                     metric, hyperparams) -> study id
 */
Datum
iceml_insert_study(PG_FUNCTION_ARGS)
{
	IcemlOwnerContext own;
	Oid			argtypes[11] = {TEXTOID, TEXTOID, REGCLASSOID, TEXTOID, TEXTOID, JSONBOID,
	JSONBOID, INT4OID, INT4OID, TEXTOID, JSONBOID};
	Oid			types[12];
	Datum		values[12];
	char		nulls[13];
	Datum		d;
	int64		id;

	RequireTrainer();
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
	BecomeCatalogOwner(&own);
	SpiExec("INSERT INTO iceml.studies (kind, experiment, training_dataset, architecture, strategy,"
			"                           search_space, components, trials, parallel, metric, hyperparams, owner)"
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
			12, types, values, nulls);
	SpiGetDatum(0, 1, &d);
	id = DatumGetInt64(d);
	RestoreUser(&own);
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
	IcemlOwnerContext own;
	Oid			types[8] = {INT8OID, TEXTOID, JSONBOID, JSONBOID, TEXTOID, OIDOID, OIDOID, OIDOID};
	Datum		values[8];
	Datum		d;
	int64		id;

	RequireTrainer();
	for (int i = 0; i < 5; i++)
		values[i] = PG_GETARG_DATUM(i);
	values[5] = ObjectIdGetDatum(IcemlCaller());
	values[6] = ObjectIdGetDatum(GetSessionUserId());
	values[7] = ObjectIdGetDatum(MyDatabaseId);

	SPI_connect();
	BecomeCatalogOwner(&own);
	RequireOwnRunningStudy(PG_GETARG_INT64(0));
	SpiExec("INSERT INTO iceml.runs (experiment, study_id, trial, training_dataset, architecture, spec,"
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
	SpiGetDatum(0, 1, &d);
	id = DatumGetInt64(d);
	RestoreUser(&own);
	SPI_finish();
	PG_RETURN_INT64(id);
}

/*
 * Is job `id` a run or a study the caller may see (its owner, a member of
 * it, iceml_admin)?  Read as the catalog owner, so that the answer is the
 * same whoever runs this (a gate's implementation included).  Returns 'r',
 * 's' or 0.
 */
static char
VisibleJob(int64 id, char **status)
{
	Datum		arg = Int64GetDatum(id);
	Oid			type = INT8OID;
	IcemlOwnerContext own;
	char		kind = 0;
	Datum		d;

	BecomeCatalogOwner(&own);
	if (SpiExec("SELECT status, role FROM iceml.runs WHERE id OPERATOR(pg_catalog.=) $1",
				1, &type, &arg, NULL) == 1)
	{
		if (SpiGetDatum(0, 2, &d) && CallerMaySee(DatumGetObjectId(d)))
		{
			*status = SpiGetText(0, 1);
			kind = 'r';
		}
	}
	else if (SpiExec("SELECT status, pg_catalog.to_regrole(owner::pg_catalog.text)::pg_catalog.oid"
					 " FROM iceml.studies WHERE id OPERATOR(pg_catalog.=) $1",
					 1, &type, &arg, NULL) == 1)
	{
		if (SpiGetDatum(0, 2, &d) && CallerMaySee(DatumGetObjectId(d)))
		{
			*status = SpiGetText(0, 1);
			kind = 's';
		}
	}
	else if (SpiExec("SELECT status, role FROM iceml.pipeline_runs WHERE id OPERATOR(pg_catalog.=) $1",
					 1, &type, &arg, NULL) == 1)
	{
		if (SpiGetDatum(0, 2, &d) && CallerMaySee(DatumGetObjectId(d)))
		{
			*status = SpiGetText(0, 1);
			kind = 'p';
		}
	}
	RestoreUser(&own);
	return kind;
}

static void
NoSuchJob(int64 id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("iceml run or study %lld does not exist", (long long) id),
			 errhint("iceml.progress lists the runs you can see; other roles' runs are visible to iceml_admin only.")));
}

/*
 * iceml.cancel(run_id): a queued run ends cancelled at once; a running one
 * is asked to stop (its worker notices within one batch).  A study cancels
 * all its unfinished trials.  False when there was nothing left to cancel.
 */
Datum
iceml_cancel_job(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	IcemlOwnerContext own;
	char	   *status;
	char		kind;
	Datum		arg = Int64GetDatum(id);
	Oid			type = INT8OID;
	uint64		n = 0;

	SPI_connect();
	kind = VisibleJob(id, &status);
	if (kind == 0)
		NoSuchJob(id);
	if (!has_privs_of_role(IcemlCaller(), get_role_oid("iceml_user", false)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to cancel iceml run %lld", (long long) id)));

	BecomeCatalogOwner(&own);
	if (kind == 'p')
	{
		/* a queued pipeline ends at once; a running one stops before its next step */
		n += SpiExec("WITH r AS (UPDATE iceml.pipeline_runs SET status = 'cancelled', finished = pg_catalog.now()"
					 "            WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'queued' RETURNING id),"
					 "     s AS (UPDATE iceml.pipeline_steps SET status = 'cancelled'"
					 "            WHERE run_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM r)))"
					 " SELECT 1 FROM r",
					 1, &type, &arg, NULL);
		n += SpiExec("UPDATE iceml.pipeline_runs SET cancel_requested = true"
					 " WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'"
					 "   AND NOT cancel_requested",
					 1, &type, &arg, NULL);
		RestoreUser(&own);
		SPI_finish();
		if (n == 0)
			ereport(NOTICE,
					(errmsg("iceml pipeline run %lld has already ended (%s)", (long long) id, status)));
		PG_RETURN_BOOL(n > 0);
	}
	n += SpiExec(kind == 'r' ?
				 "UPDATE iceml.runs SET status = 'cancelled', finished_at = pg_catalog.now()"
				 " WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'queued'" :
				 "UPDATE iceml.runs SET status = 'cancelled', finished_at = pg_catalog.now()"
				 " WHERE study_id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'queued'",
				 1, &type, &arg, NULL);
	n += SpiExec(kind == 'r' ?
				 "UPDATE iceml.runs SET cancel_requested = true"
				 " WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'" :
				 "UPDATE iceml.runs SET cancel_requested = true"
				 " WHERE study_id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'",
				 1, &type, &arg, NULL);
	if (kind == 's')
		n += SpiExec("UPDATE iceml.studies SET status = 'cancelled', finished_at = pg_catalog.now()"
					 " WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'",
					 1, &type, &arg, NULL);
	else
		FinishStudies(0);		/* a queued trial cancelled may have been its study's last */
	RestoreUser(&own);
	SPI_finish();

	if (n == 0)
		ereport(NOTICE,
				(errmsg("iceml %s %lld has already ended (%s)",
						kind == 'r' ? "run" : "study", (long long) id, status)));
	PG_RETURN_BOOL(n > 0);
}

/*
 * iceml.resume(run_id): a failed or cancelled run with a checkpoint is
 * queued again and continues after its last checkpointed epoch, as the role
 * that started it.
 */
Datum
iceml_resume_run(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	IcemlOwnerContext own;
	char	   *status;
	Datum		arg = Int64GetDatum(id);
	Oid			type = INT8OID;
	Datum		role,
				login;

	RequireTrainer();
	SPI_connect();
	ReapOrphanedRuns();
	if (VisibleJob(id, &status) != 'r')
		NoSuchJob(id);
	if (strcmp(status, "failed") != 0 && strcmp(status, "cancelled") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("iceml run %lld is %s; only a failed or cancelled run can be resumed",
						(long long) id, status)));
	if (SpiExec("SELECT 1 FROM iceml.checkpoints WHERE run_id OPERATOR(pg_catalog.=) $1",
				1, &type, &arg, NULL) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("iceml run %lld has no checkpoint to resume from", (long long) id),
				 errdetail("It ended before its first epoch was checkpointed."),
				 errhint("Start it again with iceml.train().")));

	BecomeCatalogOwner(&own);
	SpiExec("UPDATE iceml.runs SET status = 'queued', error = NULL, finished_at = NULL,"
			"       cancel_requested = false, worker_pid = NULL, worker_start = NULL"
			" WHERE id OPERATOR(pg_catalog.=) $1 RETURNING role, login",
			1, &type, &arg, NULL);
	/* the worker acts as the run's role, whoever resumes it */
	SpiGetDatum(0, 1, &role);
	SpiGetDatum(0, 2, &login);
	RestoreUser(&own);
	SPI_finish();

	LaunchAtCommit(id, DatumGetObjectId(role), DatumGetObjectId(login));
	PG_RETURN_INT64(id);
}

/*
 * iceml._maintain(): mark runs whose worker died as failed and start queued
 * runs that have room.  Called by iceml.progress, iceml.wait, iceml.train.
 */
Datum
iceml_maintain(PG_FUNCTION_ARGS)
{
	int			reaped = ReapOrphanedRuns();

	LaunchQueuedRuns();
	PG_RETURN_INT32(reaped);
}

/* iceml._xmin_is_current(xid): was this row version written by my transaction? */
Datum
iceml_xmin_is_current(PG_FUNCTION_ARGS)
{
	TransactionId xid = DatumGetTransactionId(PG_GETARG_DATUM(0));

	PG_RETURN_BOOL(TransactionIdIsCurrentTransactionId(xid));
}
