/*
 * node_trial.c - the node's side of a trial placed on it by a coordinator's
 * study (src/shard/remote_trial.c is the coordinator's side): the trial
 * queued as a run of this server's own workers, on the dataset copy the
 * coordinator sent (iceml.receive_trial_data, src/sql/62_shard_trials.sql).
 */
#include "postgres.h"

#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "iceml.h"
#include "iceml_worker.h"

/*
 * The epochs at which the trial waits for the coordinator's decision (an
 * ASHA study's rungs, before its last epoch), followed by this session:
 * the trial fails if it is gone while the trial waits (src/jobs/train.c).
 */
static void
AddGates(int64 run_id, ArrayType *gates, int epochs)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Oid			types[4] = {INT8OID, INT4OID, INT4OID, TIMESTAMPTZOID};
	Datum		v[4];
	IcemlOwnerContext own;

	if (ARR_NDIM(gates) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("gates must be a one-dimensional array of epochs")));
	deconstruct_array_builtin(gates, INT4OID, &elems, &nulls, &n);
	v[0] = Int64GetDatum(run_id);
	v[2] = Int32GetDatum(MyProcPid);
	v[3] = TimestampTzGetDatum(MyStartTimestamp);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i] || DatumGetInt32(elems[i]) < 1 || DatumGetInt32(elems[i]) >= epochs)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("gate %s is not an epoch before the trial's last (%d)",
							nulls[i] ? "NULL" : psprintf("%d", DatumGetInt32(elems[i])), epochs),
					 errhint("Gates are the epochs of an ASHA study's rungs.")));
	}
	BecomeCatalogOwner(&own);
	for (int i = 0; i < n; i++)
	{
		v[1] = elems[i];
		SpiExec("INSERT INTO iceml.trial_gates (run_id, epoch, follower, follower_start) VALUES ($1, $2, $3, $4)"
				" ON CONFLICT DO NOTHING", 4, types, v, NULL);
	}
	RestoreUser(&own);
}

/*
 * iceml._run_trial(experiment, training_data, architecture, spec,
 * hyperparams, label, val_split, trial, lineage, threads_share, gates): run by the
 * gate iceml.run_trial as the catalog owner for a coordinator's trial
 * worker.  The run trains on a dataset copy of the caller's (received by
 * iceml.receive_trial_data) with this server's workers and threads
 * (iceml.train_threads / threads_share unless "threads" is given), and
 * never deploys.  Returns its id; its worker starts at commit.
 */
PG_FUNCTION_INFO_V1(iceml_run_trial_impl);

Datum
iceml_run_trial_impl(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"experiment", "training_data", "architecture", "spec",
	"hyperparams", "label", NULL, NULL, "lineage"};
	Oid			rel;
	char	   *relname;
	char	   *nsp;
	char	   *label;
	Jsonb	   *hp;
	IcemlRunConfig cfg;
	Oid			types[15] = {TEXTOID, REGCLASSOID, TEXTOID, JSONBOID, JSONBOID, INT4OID,
		TEXTOID, TEXTOID, TEXTARRAYOID, JSONBOID, TEXTOID, NAMEOID, OIDOID, OIDOID, OIDOID};
	Datum		v[15];
	char		n[16];
	Datum	   *ch;
	ListCell   *lc;
	int64		id;

	for (int i = 0; i < (int) lengthof(names); i++)
		if (names[i] && PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be NULL", names[i])));
	RequireIcemlUser("train");
	rel = PG_GETARG_OID(1);
	relname = get_rel_name(rel);
	nsp = relname ? get_namespace_name(get_rel_namespace(rel)) : NULL;
	if (relname == NULL || strcmp(nsp, "iceml_td") != 0 || strncmp(relname, "trial_", 6) != 0 ||
		!pg_class_ownercheck(rel, IcemlCaller()))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation %s is not a trial dataset copy of role \"%s\"",
						relname ? quote_qualified_identifier(nsp, relname) : psprintf("%u", rel),
						GetUserNameFromId(IcemlCaller(), false)),
				 errhint("A coordinator sends it with iceml.receive_trial_data.")));
	label = text_to_cstring(PG_GETARG_TEXT_PP(5));
	if (get_attnum(rel, label) == InvalidAttrNumber || get_attnum(rel, "split") == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trial dataset copy %s has no column \"%s\" or no column \"split\"",
						quote_qualified_identifier(nsp, relname), label)));

	/* never deployed here; this server's threads shared by its trials */
	hp = PG_GETARG_JSONB_P(4);
	if (!JB_ROOT_IS_OBJECT(hp))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hyperparams must be a JSON object")));
	hp = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(hp),
											DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"deploy\": \"never\"}"))));
	if (!PG_ARGISNULL(9))
	{
		int			share = PG_GETARG_INT32(9);

		if (share < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("threads_share must be at least 1, not %d", share)));
		hp = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(hp),
												DirectFunctionCall1(jsonb_in,
																	CStringGetDatum(psprintf("{\"threads\": %d}",
																							 Max(1, iceml_train_threads / share))))));
	}
	hp = ResolveHyperparams(hp, rel, &cfg);

	memset(n, ' ', sizeof(n));
	n[15] = '\0';
	v[0] = PG_GETARG_DATUM(0);
	v[1] = ObjectIdGetDatum(rel);
	v[2] = PG_GETARG_DATUM(2);
	v[3] = PG_GETARG_DATUM(3);
	v[4] = JsonbPGetDatum(hp);
	v[5] = Int32GetDatum(cfg.train.epochs);
	v[6] = CStringGetTextDatum(label);
	v[7] = PG_ARGISNULL(6) ? (Datum) 0 : PG_GETARG_DATUM(6);
	n[7] = PG_ARGISNULL(6) ? 'n' : ' ';
	ch = palloc(sizeof(Datum) * Max(list_length(cfg.channels), 1));
	foreach(lc, cfg.channels)
		ch[foreach_current_index(lc)] = CStringGetTextDatum(lfirst(lc));
	v[8] = PointerGetDatum(construct_array_builtin(ch, list_length(cfg.channels), TEXTOID));
	v[9] = PG_GETARG_DATUM(8);
	v[10] = PG_ARGISNULL(7) ? (Datum) 0 : PG_GETARG_DATUM(7);
	n[10] = PG_ARGISNULL(7) ? 'n' : ' ';
	v[11] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(IcemlCaller(), false)));
	v[12] = ObjectIdGetDatum(IcemlCaller());
	v[13] = ObjectIdGetDatum(GetSessionUserId());
	v[14] = ObjectIdGetDatum(MyDatabaseId);

	SPI_connect();
	id = OwnerInsertId("INSERT INTO iceml.runs (experiment, training_dataset, architecture, spec, hyperparams, epochs,"
					   "                        label, val_split, channels, lineage, trial, owner, role, login, database)"
					   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
					   " RETURNING id",
					   15, types, v, n);
	if (!PG_ARGISNULL(10))
		AddGates(id, PG_GETARG_ARRAYTYPE_P(10), cfg.train.epochs);
	SPI_finish();
	LaunchAtCommit(id, IcemlCaller(), GetSessionUserId());
	PG_RETURN_INT64(id);
}

