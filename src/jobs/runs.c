/*
 * runs.c - the privileged core of iceml.train(), iceml.tune(),
 * iceml.cancel() and iceml.resume().
 *
 * The SQL-level functions (src/sql/41_training_api.sql) validate their
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
PG_FUNCTION_INFO_V1(iceml_queue_run);
PG_FUNCTION_INFO_V1(iceml_train_impl);
PG_FUNCTION_INFO_V1(iceml_architecture_spec);
PG_FUNCTION_INFO_V1(iceml_cancel_job);
PG_FUNCTION_INFO_V1(iceml_resume_run);
PG_FUNCTION_INFO_V1(iceml_maintain);
PG_FUNCTION_INFO_V1(iceml_xmin_is_current);

/*
 * The engine's description of a spec: canonical JSON (malloc'd) and input
 * channels; an invalid spec is refused with the engine's message (layer
 * index, type and shapes).  Nothing is allocated for the layers.
 */
static IcemlNet *
DescribeSpec(Jsonb *spec)
{
	char	   *text = JsonbToCString(NULL, &spec->root, VARSIZE(spec));
	char		err[ICEML_NN_ERRLEN];
	IcemlNet   *net = iceml_net_describe(text, err, sizeof(err));

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
	return net;
}

/*
 * iceml._spec_info(spec jsonb): the engine's canonical form of a spec, its
 * parameter count, input channels and forward FLOPs per image; an invalid
 * spec is refused with the engine's message (layer index, type and shapes).
 */
Datum
iceml_spec_info(PG_FUNCTION_ARGS)
{
	/* described, not allocated: a huge spec costs nothing here */
	IcemlNet   *net = DescribeSpec(PG_GETARG_JSONB_P(0));
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	char	   *canon;
	int			c,
				h,
				w;

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
CheckExperimentName(text *experiment)
{
	char	   *name = experiment ? text_to_cstring(experiment) : "";

	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("experiment must be a non-empty name")));
	/*
	 * the experiment name is the deployment name: iceml_predict, the
	 * inference log and iceml.monitor keep names of up to 63 bytes
	 */
	if (strlen(name) > 63)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("experiment name \"%s\" is too long", name),
				 errdetail("It has %d bytes; an experiment (and deployment) name has at most 63.",
						   (int) strlen(name))));
}

/*
 * iceml._queue_run(experiment, training_dataset, architecture, spec,
 *                  hyperparams, study_id, trial, launch) -> run id
 *
 * Everything a worker would trip over is checked here, in the caller's
 * transaction: the dataset, the hyperparameters (src/jobs/hyperparams.c), the
 * spec, the memory limits and the channels; then the run is inserted
 * 'queued' on behalf of the caller and, with launch, its worker starts at
 * commit.  Called by the implementations of iceml.train, iceml.tune and
 * iceml.ablation_study, as the catalog owner.
 */
static int64 QueueRun(text *experiment, Oid dataset, text *architecture, Jsonb *spec,
					  Jsonb *given, int64 study_id, text *trial, bool launch);

/*
 * The spec of a named architecture (in the caller's memory context), or
 * 22023 listing the known ones.  SPI connected.
 */
static Jsonb *
ArchitectureSpec(text *name)
{
	IcemlOwnerContext own;
	Datum		arg = PointerGetDatum(name);
	Oid			type = TEXTOID;
	Datum		d;
	Jsonb	   *spec = NULL;

	BecomeCatalogOwner(&own);
	if (SpiExec("SELECT spec FROM iceml.architectures WHERE name OPERATOR(pg_catalog.=) $1",
				1, &type, &arg, NULL) == 1 && SpiGetDatum(0, 1, &d))
		/* detoasted here, copied out of SPI's memory */
		spec = DatumGetJsonbP(SPI_datumTransfer(PointerGetDatum(PG_DETOAST_DATUM(d)), false, -1));
	else
		SpiExec("SELECT COALESCE(pg_catalog.string_agg(name, ', ' ORDER BY name), '(none)') FROM iceml.architectures",
				0, NULL, NULL, NULL);
	RestoreUser(&own);
	if (spec == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown architecture \"%s\"", text_to_cstring(name)),
				 errhint("Known: %s; add one with iceml.create_architecture().", SpiGetText(0, 1))));
	return spec;
}

/* iceml._architecture_spec(name text) -> jsonb */
Datum
iceml_architecture_spec(PG_FUNCTION_ARGS)
{
	Jsonb	   *spec;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("architecture must not be NULL")));
	SPI_connect();
	spec = ArchitectureSpec(PG_GETARG_TEXT_PP(0));
	SPI_finish();
	PG_RETURN_JSONB_P(spec);
}

/*
 * iceml._train(experiment, training_dataset, architecture, hyperparams):
 * iceml.train's implementation (run by the gate as the catalog owner).
 * Without the supervisor the queue moves first (the lazy path).
 */
Datum
iceml_train_impl(PG_FUNCTION_ARGS)
{
	Jsonb	   *spec;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("architecture must not be NULL")));
	JobsMaintain();
	SPI_connect();
	spec = ArchitectureSpec(PG_GETARG_TEXT_PP(2));
	SPI_finish();
	PG_RETURN_INT64(QueueRun(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
							 PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1),
							 PG_GETARG_TEXT_PP(2), spec,
							 PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3),
							 0, NULL, true));
}

/* iceml._queue_run(experiment, training_dataset, architecture, spec, hyperparams, study_id, trial, launch) */
Datum
iceml_queue_run(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(7))
		elog(ERROR, "iceml._queue_run: architecture, spec and launch must not be NULL");
	PG_RETURN_INT64(QueueRun(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
							 PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1),
							 PG_GETARG_TEXT_PP(2), PG_GETARG_JSONB_P(3),
							 PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4),
							 PG_ARGISNULL(5) ? 0 : PG_GETARG_INT64(5),
							 PG_ARGISNULL(6) ? NULL : PG_GETARG_TEXT_PP(6),
							 PG_GETARG_BOOL(7)));
}

/* the recipe's hyperparameters: recipe_cnn's defaults (README, "the recipe") */
#define RECIPE_HYPERPARAMS \
	"{\"epochs\": 15, \"augment\": true, \"learning_rate\": 0.002, \"lr_schedule\": \"cosine\"," \
	" \"warmup_epochs\": 1, \"weight_decay\": 0.01}"

static int64
QueueRun(text *experiment, Oid dataset, text *architecture, Jsonb *spec, Jsonb *given,
		 int64 study_id, text *trial, bool launch)
{
	Jsonb	   *hp;
	IcemlRunConfig cfg;
	IcemlNet   *net;
	char	   *canon;
	int			c,
				h,
				w;
	int64		images = 0;
	IcemlOwnerContext own;
	Oid			types[16] = {TEXTOID, REGCLASSOID, TEXTOID, JSONBOID, JSONBOID, INT4OID,
		TEXTOID, TEXTOID, TEXTARRAYOID, JSONBOID, INT8OID, TEXTOID,
	NAMEOID, OIDOID, OIDOID, OIDOID};
	Datum		values[16];
	char		nulls[17];
	Datum		d;
	int64		id;

	CheckExperimentName(experiment);
	if (!OidIsValid(dataset))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("training_dataset must not be NULL")));

	values[1] = ObjectIdGetDatum(dataset);
	memset(nulls, ' ', sizeof(nulls));
	nulls[16] = '\0';

	SPI_connect();
	BecomeCatalogOwner(&own);
	/* label, validation split and lineage, or 22023 for a table that is none */
	SpiExec("SELECT d.label, d.val_split, d.lineage,"
			"       (SELECT pg_catalog.sum(e.value::pg_catalog.int8)::pg_catalog.int8"
			"          FROM iceml.training_datasets t, pg_catalog.jsonb_each_text(t.row_counts) e"
			"         WHERE t.\"table\" OPERATOR(pg_catalog.=) $1)"
			"  FROM iceml._dataset_info($1) d",
			1, &types[1], &values[1], NULL);
	SpiGetDatum(0, 1, &d);
	values[6] = SPI_datumTransfer(d, false, -1);
	nulls[7] = SpiGetDatum(0, 2, &d) ? ' ' : 'n';
	values[7] = nulls[7] == ' ' ? SPI_datumTransfer(d, false, -1) : (Datum) 0;
	SpiGetDatum(0, 3, &d);
	values[9] = SPI_datumTransfer(d, false, -1);
	if (SpiGetDatum(0, 4, &d))
		images = DatumGetInt64(d);
	RestoreUser(&own);

	/*
	 * The recipe (README): recipe_cnn trains with its own defaults, which
	 * the caller's hyperparameters override one by one.
	 */
	if (architecture != NULL && strcmp(text_to_cstring(architecture), "recipe_cnn") == 0 &&
		(given == NULL || JB_ROOT_IS_OBJECT(given)))
	{
		Datum		recipe = DirectFunctionCall1(jsonb_in, CStringGetDatum(RECIPE_HYPERPARAMS));

		given = given == NULL ? DatumGetJsonbP(recipe) :
			DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, recipe, JsonbPGetDatum(given)));
	}

	/* the hyperparameters, the spec, the limits, the channels */
	hp = ResolveHyperparams(given, dataset, &cfg);
	net = DescribeSpec(spec);
	canon = iceml_net_spec_json(net);
	iceml_net_input_shape(net, &c, &h, &w);
	/* side inputs (the engine's "side" layer): real columns of the dataset */
	for (int k = 0; k < iceml_net_side_count(net); k++)
	{
		const char *side = iceml_net_side_name(net, k);
		AttrNumber	att = get_attnum(dataset, side);

		if (att == InvalidAttrNumber || get_atttype(dataset, att) != FLOAT4OID)
		{
			char	   *name = pstrdup(side);

			iceml_net_free(net);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("architecture \"%s\" takes the side input \"%s\" but training dataset %s has no real column \"%s\"",
							text_to_cstring(architecture), name,
							DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(dataset))), name),
					 errhint("Create the training dataset from a feature group with an inc_angle column, or use an architecture without a side layer.")));
		}
	}
	iceml_net_free(net);
	IcemlCheckSpecLimits(psprintf("architecture \"%s\"", text_to_cstring(architecture)),
						 canon, cfg.train.batch_size, images);
	if (c != list_length(cfg.channels))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("architecture \"%s\" takes %d input channels but \"channels\" names %d",
						text_to_cstring(architecture), c, list_length(cfg.channels)),
				 errhint("Set \"channels\" in hyperparams, or change \"input\" in the architecture.")));

	/* who asks, and may they */
	RequireIcemlUser("train");
	if (pg_class_aclcheck(dataset, IcemlCaller(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for training dataset %s",
						DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(dataset)))),
				 errhint("The worker reads the dataset as the role that calls iceml.train().")));

	values[0] = PointerGetDatum(experiment);
	values[2] = PointerGetDatum(architecture);
	values[3] = DirectFunctionCall1(jsonb_in, CStringGetDatum(canon));
	free(canon);
	values[4] = JsonbPGetDatum(hp);
	values[5] = Int32GetDatum(cfg.train.epochs);
	{
		Datum	   *ch = palloc(sizeof(Datum) * list_length(cfg.channels));
		ListCell   *lc;

		foreach(lc, cfg.channels)
			ch[foreach_current_index(lc)] = CStringGetTextDatum(lfirst(lc));
		values[8] = PointerGetDatum(construct_array_builtin(ch, list_length(cfg.channels), TEXTOID));
	}
	values[10] = Int64GetDatum(study_id);
	nulls[10] = study_id == 0 ? 'n' : ' ';
	values[11] = PointerGetDatum(trial);
	nulls[11] = trial == NULL ? 'n' : ' ';
	values[12] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(IcemlCaller(), false)));
	values[13] = ObjectIdGetDatum(IcemlCaller());
	values[14] = ObjectIdGetDatum(GetSessionUserId());
	values[15] = ObjectIdGetDatum(MyDatabaseId);

	/* a trial joins only a running study of the caller's own */
	if (study_id != 0)
		RequireOwnRunningStudy(study_id);
	id = OwnerInsertId("INSERT INTO iceml.runs (experiment, training_dataset, architecture, spec, hyperparams, epochs,"
					   "                        label, val_split, channels, lineage, study_id, trial,"
					   "                        owner, role, login, database)"
					   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
					   " RETURNING id",
					   16, types, values, nulls);
	SPI_finish();

	if (launch)
		LaunchAtCommit(id, IcemlCaller(), GetSessionUserId());
	return id;
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
	const char *col;

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
	/* a run by its id, a study's trials by their study_id */
	col = kind == 'r' ? "id" : "study_id";
	n += SpiExec(psprintf("UPDATE iceml.runs SET status = 'cancelled', finished_at = pg_catalog.now()"
						  " WHERE %s OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'queued'", col),
				 1, &type, &arg, NULL);
	n += SpiExec(psprintf("UPDATE iceml.runs SET cancel_requested = true"
						  " WHERE %s OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'", col),
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

	RequireIcemlUser("train");
	SPI_connect();
	JobsMaintain();
	if (VisibleJob(id, &status) != 'r')
		NoSuchJob(id);
	if (strcmp(status, "failed") != 0 && strcmp(status, "cancelled") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("iceml run %lld is %s; only a failed or cancelled run can be resumed",
						(long long) id, status)));
	/*
	 * A trial placed on a node (iceml.remote_trials) has its checkpoints
	 * there: its worker resumes it there when the node still has it, and
	 * queues it afresh otherwise (src/shard/remote_trial.c).
	 */
	if (SpiExec("SELECT 1 WHERE EXISTS (SELECT FROM iceml.checkpoints c WHERE c.run_id OPERATOR(pg_catalog.=) $1)"
				"    OR EXISTS (SELECT FROM iceml.remote_trials t WHERE t.run_id OPERATOR(pg_catalog.=) $1)",
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
 * iceml._maintain(), called by iceml.wait (every few seconds), iceml.tune
 * and iceml.ablation_study: without the supervisor, mark runs whose worker
 * died as failed and start queued runs that have room (the lazy path);
 * with it, ask it to visit this database (it does not know a database
 * restored or copied with runs in it until someone there asks).
 */
Datum
iceml_maintain(PG_FUNCTION_ARGS)
{
	if (JobsSupervised())
	{
		WakeSupervisor(MyDatabaseId, true, false);
		PG_RETURN_INT32(0);
	}
	PG_RETURN_INT32(JobsMaintain());
}

/* iceml._xmin_is_current(xid): was this row version written by my transaction? */
Datum
iceml_xmin_is_current(PG_FUNCTION_ARGS)
{
	TransactionId xid = DatumGetTransactionId(PG_GETARG_DATUM(0));

	PG_RETURN_BOOL(TransactionIdIsCurrentTransactionId(xid));
}
