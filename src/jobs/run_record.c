/*
 * run_record.c - what a training worker writes to the catalog: each epoch
 * (metrics, checkpoint), the end of the run (its model, deployment and
 * study), and why it failed; and the cancel flag it reads.  Every write is
 * made as the catalog owner in a short transaction of its own, so
 * iceml.progress shows it at once.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "iceml.h"
#include "iceml_nn.h"
#include "iceml_worker.h"

/*
 * What a failed run records: the message, then its SQLSTATE, detail and
 * hint, so that iceml.runs.error says what the client would have been told.
 */
char *
ErrorText(ErrorData *edata)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s (SQLSTATE %s)", edata->message ? edata->message : "unknown error",
					 unpack_sql_state(edata->sqlerrcode));
	if (edata->detail)
		appendStringInfo(&buf, " DETAIL: %s", edata->detail);
	if (edata->hint)
		appendStringInfo(&buf, " HINT: %s", edata->hint);
	return buf.data;
}

/* Has iceml.cancel() asked run `run_id` to stop? */
bool
RunCancelRequested(int64 run_id)
{
	Datum		arg = Int64GetDatum(run_id);
	Oid			type = INT8OID;
	Datum		d;
	IcemlOwnerContext own;
	bool		cancel;

	WorkerBeginTx();
	BecomeCatalogOwner(&own);
	cancel = SpiExec("SELECT cancel_requested FROM iceml.runs WHERE id OPERATOR(pg_catalog.=) $1",
					 1, &type, &arg, NULL) == 1 &&
		SpiGetDatum(0, 1, &d) && DatumGetBool(d);
	RestoreUser(&own);
	WorkerEndTx();
	return cancel;
}

/* ---- each epoch ---------------------------------------------------------------- */

static Datum
NullableFloat8(double v, char *null)
{
	*null = isfinite(v) ? ' ' : 'n';
	return Float8GetDatum(isfinite(v) ? v : 0.0);
}

void
RecordEpoch(int64 run_id, int epoch, double train_loss, double train_acc,
			const IcemlMetrics *val, double seconds,
			const void *ckpt, size_t ckpt_len, const void *best, size_t best_len,
			int best_epoch)
{
	IcemlOwnerContext own;
	Oid			types[8] = {INT8OID, INT4OID, FLOAT8OID, FLOAT8OID, FLOAT8OID,
	FLOAT8OID, FLOAT8OID, FLOAT8OID};
	Datum		v[8];
	char		n[9] = "        ";

	WorkerBeginTx();
	BecomeCatalogOwner(&own);
	v[0] = Int64GetDatum(run_id);
	v[1] = Int32GetDatum(epoch);
	v[2] = NullableFloat8(train_loss, &n[2]);
	v[3] = NullableFloat8(train_acc, &n[3]);
	v[4] = NullableFloat8(val ? val->log_loss : NAN, &n[4]);
	v[5] = NullableFloat8(val ? val->accuracy : NAN, &n[5]);
	v[6] = NullableFloat8(val ? val->auc : NAN, &n[6]);
	v[7] = Float8GetDatum(seconds);
	SpiExec("INSERT INTO iceml.run_metrics (run_id, epoch, train_loss, train_acc, val_loss, val_acc, val_auc, seconds)"
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
			" ON CONFLICT (run_id, epoch) DO UPDATE SET train_loss = EXCLUDED.train_loss,"
			"   train_acc = EXCLUDED.train_acc, val_loss = EXCLUDED.val_loss, val_acc = EXCLUDED.val_acc,"
			"   val_auc = EXCLUDED.val_auc, seconds = EXCLUDED.seconds, recorded_at = pg_catalog.now()",
			8, types, v, n);
	v[2] = Int32GetDatum(best_epoch);
	types[2] = INT4OID;
	n[2] = best_epoch > 0 ? ' ' : 'n';
	SpiExec("UPDATE iceml.runs SET epoch = $2, best_epoch = $3 WHERE id OPERATOR(pg_catalog.=) $1",
			3, types, v, n);
	if (ckpt)
	{
		bytea	   *state = palloc(VARHDRSZ + ckpt_len);
		bytea	   *beststate = palloc(VARHDRSZ + best_len);
		Oid			ctypes[4] = {INT8OID, INT4OID, BYTEAOID, BYTEAOID};
		Datum		cv[4];
		char		cn[5] = "    ";

		SET_VARSIZE(state, VARHDRSZ + ckpt_len);
		memcpy(VARDATA(state), ckpt, ckpt_len);
		SET_VARSIZE(beststate, VARHDRSZ + best_len);
		if (best_len)
			memcpy(VARDATA(beststate), best, best_len);
		cv[0] = Int64GetDatum(run_id);
		cv[1] = Int32GetDatum(epoch);
		cv[2] = PointerGetDatum(state);
		cv[3] = PointerGetDatum(beststate);
		cn[3] = best_len ? ' ' : 'n';
		SpiExec("INSERT INTO iceml.checkpoints (run_id, epoch, state, best_state) VALUES ($1, $2, $3, $4)"
				" ON CONFLICT (run_id) DO UPDATE SET epoch = EXCLUDED.epoch, state = EXCLUDED.state,"
				"   best_state = EXCLUDED.best_state, saved_at = pg_catalog.now()",
				4, ctypes, cv, cn);
	}
	RestoreUser(&own);
	WorkerEndTx();
}

/* ---- the end of a run ---------------------------------------------------- */


static char *
MetricsJson(const IcemlMetrics *m)
{
	return psprintf("{\"n\": %lld, \"log_loss\": %.9g, \"accuracy\": %.9g, \"precision\": %.9g,"
					" \"recall\": %.9g, \"f1\": %.9g, \"roc_auc\": %s,"
					" \"confusion\": {\"tp\": %lld, \"fp\": %lld, \"tn\": %lld, \"fn\": %lld}}",
					(long long) m->n, m->log_loss, m->accuracy, m->precision, m->recall, m->f1,
					isfinite(m->auc) ? psprintf("%.9g", m->auc) : "null",
					(long long) m->tp, (long long) m->fp, (long long) m->tn, (long long) m->fn);
}

static char *
NormalisationJson(IcemlNet *net, int c)
{
	const float *mean = iceml_net_norm_mean(net);
	const float *std = iceml_net_norm_std(net);
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoString(&s, "{\"mean\": [");
	for (int i = 0; i < c; i++)
		appendStringInfo(&s, "%s%.9g", i ? ", " : "", mean[i]);
	appendStringInfoString(&s, "], \"std\": [");
	for (int i = 0; i < c; i++)
		appendStringInfo(&s, "%s%.9g", i ? ", " : "", std[i]);
	appendStringInfoChar(&s, ']');
	/* side inputs: {"side": {"inc_angle": {"mean": m, "std": s}}} */
	if (iceml_net_side_mean(net) != NULL)
	{
		appendStringInfoString(&s, ", \"side\": {");
		for (int k = 0; k < iceml_net_side_count(net); k++)
		{
			appendStringInfo(&s, "%s", k ? ", " : "");
			escape_json(&s, iceml_net_side_name(net, k));
			appendStringInfo(&s, ": {\"mean\": %.9g, \"std\": %.9g}",
							 iceml_net_side_mean(net)[k], iceml_net_side_std(net)[k]);
		}
		appendStringInfoChar(&s, '}');
	}
	appendStringInfoChar(&s, '}');
	return s.data;
}

/*
 * Record how the run ended.  status is succeeded, failed, cancelled or
 * stopped; model data only for succeeded (and stopped ASHA trials keep none).
 */
void
FinishRun(int64 run_id, int64 study_id, int c, const char *status, const char *error,
		  IcemlNet *net, const void *blob, size_t blob_len,
		  const IcemlMetrics *metrics, int best_epoch)
{
	IcemlOwnerContext own;
	Datum		v[8];
	Oid			t[8];
	char		n[9] = "        ";

	WorkerBeginTx();
	BecomeCatalogOwner(&own);
	v[0] = Int64GetDatum(run_id);
	t[0] = INT8OID;
	if (blob)
	{
		bytea	   *weights = palloc(VARHDRSZ + blob_len);

		SET_VARSIZE(weights, VARHDRSZ + blob_len);
		memcpy(VARDATA(weights), blob, blob_len);
		v[1] = PointerGetDatum(weights);
		t[1] = BYTEAOID;
		v[2] = CStringGetTextDatum(MetricsJson(metrics));
		t[2] = TEXTOID;
		v[3] = CStringGetTextDatum(NormalisationJson(net, c));
		t[3] = TEXTOID;
		v[4] = Int64GetDatum(iceml_net_param_count(net));
		t[4] = INT8OID;
		SpiExec("WITH m AS (INSERT INTO iceml.models (run_id, experiment, architecture, spec, parameters,"
				"                         channels, normalisation, metrics, training_dataset, lineage, weights, owner)"
				"           SELECT r.id, r.experiment, r.architecture, r.spec, $5, r.channels,"
				"                  $4::jsonb, $3::jsonb, r.training_dataset, r.lineage, $2, r.owner"
				"             FROM iceml.runs r WHERE r.id OPERATOR(pg_catalog.=) $1"
				"           RETURNING id)"
				" UPDATE iceml.runs SET model_id = (SELECT id FROM m) WHERE id OPERATOR(pg_catalog.=) $1",
				5, t, v, NULL);
		/* hyperparameter "deploy" (default if_better): see 50_predict.sql */
		SpiExec("SELECT iceml._deploy_if_better($1)", 1, t, v, NULL);
	}
	v[1] = CStringGetTextDatum(status);
	t[1] = TEXTOID;
	v[2] = error ? CStringGetTextDatum(error) : (Datum) 0;
	t[2] = TEXTOID;
	n[2] = error ? ' ' : 'n';
	v[3] = Int32GetDatum(best_epoch);
	t[3] = INT4OID;
	n[3] = best_epoch > 0 ? ' ' : 'n';
	SpiExec("UPDATE iceml.runs SET status = $2, error = $3, finished_at = pg_catalog.now(),"
			"       best_epoch = COALESCE($4, best_epoch), worker_pid = NULL"
			" WHERE id OPERATOR(pg_catalog.=) $1",
			4, t, v, n);
	if (study_id != 0)
		FinishStudies(study_id);
	RestoreUser(&own);
	WorkerEndTx();
}

