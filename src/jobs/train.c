/*
 * train.c - what a training worker does with its run.
 *
 * The worker reads the run (as the catalog owner), reads the training
 * dataset as the role that called iceml.train() (so it sees exactly what
 * that role may see), trains with the engine, and after every epoch commits
 * one iceml.run_metrics row and, every checkpoint_every epochs, a checkpoint
 * from which iceml.resume() continues.  The kept model is the epoch with the
 * best validation loss.  Catalog writes are made as the catalog owner.
 *
 * Between batches the worker notices iceml.cancel() (cancel_requested) and
 * SIGTERM (server shutdown, pg_terminate_backend): a cancelled run ends
 * 'cancelled', a terminated one 'failed' with the reason; neither keeps a
 * model.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "iceml.h"
#include "iceml_nn.h"
#include "iceml_pgarray.h"
#include "iceml_sar.h"
#include "iceml_worker.h"

/* Everything the worker knows about its run. */
typedef struct TrainJob
{
	int64		id;
	Oid			role;
	char	   *dataset;		/* regclass text, quoted and qualified */
	Oid			dataset_relid;
	char	   *label;
	char	   *spec;
	char	   *val_split;		/* NULL when the dataset has none */
	List	   *channels;		/* of char* */
	int			epochs;
	IcemlRunConfig run;			/* the hyperparameters, parsed */
	int64		study_id;		/* 0 when not a trial */
	char	   *study_metric;	/* within an ASHA study */
	int			asha_min_epochs;	/* 0 unless the study is ASHA */
	int			resume_epoch;	/* last checkpointed epoch, 0 for a fresh start */
	ArrayType  *gates;			/* a coordinator's trial: epochs to wait at */

	/* data: raw channels, N x C x H x W */
	int			c,
				h,
				w;
	float	   *x_train,
			   *y_train,
			   *x_val,
			   *y_val;
	int64		n_train,
				n_val;
	/* side inputs (issue 16): one per net side input, n x nside, NaN missing */
	int			nside;
	char		side_names[ICEML_NN_MAX_SIDE][64];
	float	   *s_train,
			   *s_val;

	/* during training */
	TimestampTz last_cancel_check;
	bool		cancelled;
	bool		terminated;
} TrainJob;

/* ---- loading the run ----------------------------------------------------- */

static void
LoadJob(TrainJob *job)
{
	IcemlOwnerContext own;
	Datum		arg = Int64GetDatum(job->id);
	Oid			type = INT8OID;
	Datum		d;
	Jsonb	   *hp;
	char	   *s;
	MemoryContext keep = TopMemoryContext;
	MemoryContext old;

	WorkerBeginTx();
	BecomeCatalogOwner(&own);
	if (SpiExec("SELECT r.training_dataset::pg_catalog.oid, r.label, r.spec::pg_catalog.text,"
				"       r.val_split, r.channels, r.hyperparams, r.epochs,"
				"       COALESCE(r.study_id, 0), s.metric, s.strategy,"
				"       (s.hyperparams OPERATOR(pg_catalog.->>) 'asha_min_epochs')::pg_catalog.int4,"
				"       (SELECT c.epoch FROM iceml.checkpoints c WHERE c.run_id OPERATOR(pg_catalog.=) r.id),"
				"       (SELECT pg_catalog.array_agg(g.epoch) FROM iceml.trial_gates g"
				"         WHERE g.run_id OPERATOR(pg_catalog.=) r.id)"
				"  FROM iceml.runs r LEFT JOIN iceml.studies s ON s.id OPERATOR(pg_catalog.=) r.study_id"
				" WHERE r.id OPERATOR(pg_catalog.=) $1",
				1, &type, &arg, NULL) != 1)
		elog(ERROR, "iceml run %lld vanished", (long long) job->id);
	RestoreUser(&own);

	old = MemoryContextSwitchTo(keep);
	{
		Datum		d;
		Oid			relid;
		char	   *relname;

		/*
		 * The dataset may have been dropped since the run was queued: its
		 * regclass would print as a bare number and make no sense in SQL.
		 */
		SpiGetDatum(0, 1, &d);
		relid = DatumGetObjectId(d);
		relname = get_rel_name(relid);
		if (relname == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("the training dataset of run %lld (relation %u) no longer exists",
							(long long) job->id, relid),
					 errhint("It was dropped after the run was queued; create it again and train a new run.")));
		job->dataset = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), relname);
		job->dataset_relid = relid;
	}
	job->label = pstrdup(SpiGetText(0, 2));
	job->spec = pstrdup(SpiGetText(0, 3));
	s = SpiGetText(0, 4);
	job->val_split = s ? pstrdup(s) : NULL;
	{
		ArrayType  *arr;
		Datum	   *elems;
		int			nelems;

		SpiGetDatum(0, 5, &d);
		arr = DatumGetArrayTypePCopy(d);
		deconstruct_array_builtin(arr, TEXTOID, &elems, NULL, &nelems);
		job->channels = NIL;
		for (int i = 0; i < nelems; i++)
			job->channels = lappend(job->channels, TextDatumGetCString(elems[i]));
	}
	SpiGetDatum(0, 6, &d);
	hp = DatumGetJsonbPCopy(d);
	SpiGetDatum(0, 7, &d);
	job->epochs = DatumGetInt32(d);
	SpiGetDatum(0, 8, &d);
	job->study_id = DatumGetInt64(d);
	s = SpiGetText(0, 10);
	if (s && strcmp(s, "asha") == 0)
	{
		job->study_metric = pstrdup(SpiGetText(0, 9));
		/* the study's smallest budget; rungs at min * 3^k epochs */
		job->asha_min_epochs = SpiGetDatum(0, 11, &d) ? Max(DatumGetInt32(d), 1) : 1;
	}
	job->resume_epoch = SpiGetDatum(0, 12, &d) ? DatumGetInt32(d) : 0;
	job->gates = SpiGetDatum(0, 13, &d) ? DatumGetArrayTypePCopy(d) : NULL;

	/* the one parser: the stored object was resolved by it at queue time */
	(void) ResolveHyperparams(hp, InvalidOid, &job->run);
	MemoryContextSwitchTo(old);
	WorkerEndTx();
}

/* ---- reading the training dataset ---------------------------------------- */

/*
 * Put one checked real[] value into channel `ch` of image `row` of x, or
 * (average) average it with what is there: band_avg from band_1 and band_2.
 */
static void
CopyChannel(TrainJob *job, float *x, int64 row, int ch, Datum d, bool isnull,
			const char *column, int64 ordinal, bool average)
{
	float	   *dst;
	int			hw = job->h * job->w;
	ArrayType  *arr;
	const float *v;
	int			n;

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("training dataset %s has a NULL \"%s\" in row %lld",
						job->dataset, column, (long long) ordinal)));
	arr = DatumGetArrayTypeP(d);
	/* the checks of every band at iceml's edge (src/pgarray.c), then the size */
	v = IcemlRealArrayArg(arr, psprintf("training dataset %s, row %lld", job->dataset, (long long) ordinal),
						  psprintf("\"%s\"", column), &n);
	if (n != hw)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("training dataset %s, row %lld: \"%s\" has %d values, not %d",
						job->dataset, (long long) ordinal, column, n, hw),
				 errhint("The architecture's input is %dx%dx%d.", job->c, job->h, job->w)));
	dst = x + (row * job->c + ch) * (int64) hw;
	if (average)
		iceml_band_avg(dst, v, dst, hw);	/* band_1 is already in dst */
	else
		memcpy(dst, v, sizeof(float) * hw);
	if ((Pointer) arr != DatumGetPointer(d))
		pfree(arr);
}

static float *
GrowBuffer(float *buf, int64 *cap, int64 need, size_t per)
{
	if (need <= *cap)
		return buf;
	*cap = Max(need, *cap * 2);
	buf = realloc(buf, (size_t) *cap * per * sizeof(float));
	if (buf == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory reading the training dataset (%lld images)", (long long) *cap)));
	return buf;
}

/*
 * Read the train and validation splits as the calling role.  A channel that
 * is not a column of the dataset may be band_avg, computed from band_1 and
 * band_2 as the loader and iceml_predict() compute it.
 */
static void
ReadDataset(TrainJob *job)
{
	IcemlOwnerContext own;
	StringInfoData sql;
	int			nch = list_length(job->channels);
	int			avg_ch = -1;
	ListCell   *lc;
	Portal		portal;
	MemoryContext rows;
	int64		cap_train = 0,
				cap_val = 0,
				ordinal = 0;
	int			hw = job->h * job->w;
	int			ncols;

	WorkerBeginTx();
	/* read as the role that asked for the run */
	GetUserIdAndSecContext(&own.save_userid, &own.save_sec_context);
	SetUserIdAndSecContext(job->role, own.save_sec_context | SECURITY_LOCAL_USERID_CHANGE);

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	foreach(lc, job->channels)
	{
		const char *ch = lfirst(lc);

		if (strcmp(ch, "band_avg") == 0 &&
			get_attnum(job->dataset_relid, "band_avg") == InvalidAttrNumber)
		{
			avg_ch = foreach_current_index(lc);
			appendStringInfoString(&sql, "band_1, band_2, ");
		}
		else
			appendStringInfo(&sql, "%s, ", quote_identifier(ch));
	}
	ncols = nch + (avg_ch >= 0 ? 1 : 0);
	appendStringInfo(&sql, "%s::pg_catalog.float4, split OPERATOR(pg_catalog.=) 'train'",
					 quote_identifier(job->label));
	/* side inputs after the split flag: real columns (checked by train()) */
	for (int k = 0; k < job->nside; k++)
		appendStringInfo(&sql, ", %s::pg_catalog.float4", quote_identifier(job->side_names[k]));
	appendStringInfo(&sql, " FROM %s WHERE split OPERATOR(pg_catalog.=) 'train'", job->dataset);
	if (job->val_split)
		appendStringInfo(&sql, " OR split OPERATOR(pg_catalog.=) %s", quote_literal_cstr(job->val_split));

	/*
	 * Values are read binary (SPI_getbinval) and copied straight into the
	 * engine's buffers; what detoasting allocates goes into a context reset
	 * after every fetch, so reading costs the same memory at any size.
	 */
	rows = AllocSetContextCreate(CurrentMemoryContext, "iceml dataset rows", ALLOCSET_DEFAULT_SIZES);
	portal = SPI_cursor_open_with_args(NULL, sql.data, 0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		MemoryContext spi = CurrentMemoryContext;

		SPI_cursor_fetch(portal, true, 128);
		if (SPI_processed == 0)
			break;
		MemoryContextSwitchTo(rows);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			bool		is_train = DatumGetBool(SPI_getbinval(tup, desc, ncols + 2, &isnull));
			float	  **xp = is_train ? &job->x_train : &job->x_val;
			float	  **yp = is_train ? &job->y_train : &job->y_val;
			float	  **sp = is_train ? &job->s_train : &job->s_val;
			int64	   *np = is_train ? &job->n_train : &job->n_val;
			int64	   *capp = is_train ? &cap_train : &cap_val;
			int64		row = *np;
			int64		oldcap = *capp;
			Datum		label;
			int			col = 1;

			ordinal++;
			*xp = GrowBuffer(*xp, capp, row + 1, (size_t) nch * hw);
			if (*capp != oldcap)
			{
				int64		c2 = oldcap;

				*yp = GrowBuffer(*yp, &c2, *capp, 1);
				c2 = oldcap;
				if (job->nside > 0)
					*sp = GrowBuffer(*sp, &c2, *capp, (size_t) job->nside);
			}
			for (int ch = 0; ch < nch; ch++)
			{
				/* fetch first: argument evaluation order is unspecified */
				Datum		v1 = SPI_getbinval(tup, desc, col, &isnull);

				if (ch == avg_ch)
				{
					bool		null2;
					Datum		v2 = SPI_getbinval(tup, desc, col + 1, &null2);

					CopyChannel(job, *xp, row, ch, v1, isnull, "band_1", ordinal, false);
					CopyChannel(job, *xp, row, ch, v2, null2, "band_2", ordinal, true);
					col += 2;
				}
				else
				{
					CopyChannel(job, *xp, row, ch, v1, isnull,
								(const char *) list_nth(job->channels, ch), ordinal, false);
					col++;
				}
			}
			label = SPI_getbinval(tup, desc, ncols + 1, &isnull);
			if (isnull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("training dataset %s has a NULL label \"%s\" in row %lld",
								job->dataset, job->label, (long long) ordinal)));
			(*yp)[row] = DatumGetFloat4(label);
			if ((*yp)[row] != 0.0f && (*yp)[row] != 1.0f)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("training dataset %s: label \"%s\" is %g in row %lld; it must be 0 or 1",
								job->dataset, job->label, (*yp)[row], (long long) ordinal)));
			/* side inputs: NULL is missing (the engine's NaN) */
			for (int k = 0; k < job->nside; k++)
			{
				Datum		v = SPI_getbinval(tup, desc, ncols + 3 + k, &isnull);
				float		f = isnull ? NAN : DatumGetFloat4(v);

				if (!isnull && !isfinite(f))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("training dataset %s: side input \"%s\" is %g in row %lld",
									job->dataset, job->side_names[k], f, (long long) ordinal),
							 errhint("A missing value is NULL; the model learns what a missing value means.")));
				(*sp)[row * job->nside + k] = f;
			}
			(*np)++;
		}
		MemoryContextSwitchTo(spi);
		MemoryContextReset(rows);
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(rows);
	SetUserIdAndSecContext(own.save_userid, own.save_sec_context);
	WorkerEndTx();

	if (job->n_train == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("training dataset %s has no rows in split \"train\"", job->dataset)));
}

/* ---- per-epoch bookkeeping ----------------------------------------------- */

static int
BatchCallback(void *arg, int64_t done, int64_t total, double batch_loss)
{
	TrainJob   *job = (TrainJob *) arg;
	TimestampTz now;

	(void) done;
	(void) total;
	(void) batch_loss;

	if (ProcDiePending)
	{
		job->terminated = true;
		return 1;
	}
	/* look at cancel_requested at most every 200 ms */
	now = GetCurrentTimestamp();
	if (TimestampDifferenceExceeds(job->last_cancel_check, now, 200))
	{
		job->last_cancel_check = now;
		job->cancelled |= RunCancelRequested(job->id);
	}
	return job->cancelled ? 1 : 0;
}

/* a gate's wait stops on a cancel or terminate, as a batch does */
static int
GateStop(void *arg)
{
	return BatchCallback(arg, 0, 0, 0);
}

/* ---- the run ------------------------------------------------------------- */

/* an engine message for a failed allocation: 53200, else the given code */
#define ENGINE_ERRCODE(err, other) \
	errcode(strncmp((err), "out of memory", 13) == 0 ? ERRCODE_OUT_OF_MEMORY : (other))

/*
 * An engine pass stopped by an interrupt (src/limits.c): a terminate
 * request ends the run 'failed' as one seen between batches does (returns
 * true); a cancel or timeout raises its error.
 */
static bool
EngineStopped(TrainJob *job)
{
	if (ProcDiePending)
	{
		job->terminated = true;
		return true;
	}
	IcemlEngineInterrupted("the training run");
}

/*
 * Metrics of the net on n images and their side inputs (inference mode,
 * prob as scratch); false
 * when a terminate request stopped the pass.
 */
static bool
Evaluate(TrainJob *job, IcemlNet *net, const float *x, const float *side, const float *y,
		 int64 n, float *prob, IcemlMetrics *m)
{
	char		err[ICEML_NN_ERRLEN];
	int			rc = iceml_net_predict_side(net, x, side, n, prob, err, sizeof(err));

	if (rc == ICEML_NN_INTERRUPTED && EngineStopped(job))
		return false;
	if (rc < 0)
		ereport(ERROR,
				(ENGINE_ERRCODE(err, ERRCODE_INTERNAL_ERROR),
				 errmsg("prediction failed: %s", err)));
	iceml_metrics_compute(prob, y, n, 0.5, m);
	return true;
}

static void
Train(TrainJob *job)
{
	char		err[ICEML_NN_ERRLEN];
	IcemlNet   *net;
	IcemlTrainer *tr;
	float	   *mean,
			   *std,
			   *prob;
	void	   *best_blob = NULL;
	size_t		best_len = 0;
	double		best_loss = INFINITY;
	int			best_epoch = 0;
	int			bad_epochs = 0;
	IcemlMetrics best_metrics;
	int64		n_acc;
	const char *end_status = "succeeded";
	const char *failure = NULL; /* why, when "failed" other than by a shutdown */
	int			gate;

	/* the limits again, before allocating: they may have changed since */
	IcemlCheckSpecLimits(psprintf("the architecture of run %lld", (long long) job->id),
						 job->spec, job->run.train.batch_size, 0);
	net = iceml_net_create(job->spec, err, sizeof(err));
	if (net == NULL)
		ereport(ERROR,
				(ENGINE_ERRCODE(err, ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid architecture for run %lld: %s", (long long) job->id, err)));
	iceml_net_input_shape(net, &job->c, &job->h, &job->w);
	if (job->c != list_length(job->channels))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the architecture takes %d input channels but the run names %d",
						job->c, list_length(job->channels))));

	job->nside = iceml_net_side_count(net);
	for (int k = 0; k < job->nside; k++)
		strlcpy(job->side_names[k], iceml_net_side_name(net, k), sizeof(job->side_names[k]));

	pgstat_report_activity(STATE_RUNNING, "reading the training dataset");
	ReadDataset(job);
	IcemlCheckSpecLimits(psprintf("the architecture of run %lld", (long long) job->id),
						 job->spec, job->run.train.batch_size, job->n_train + job->n_val);

	/* standardisation from the training split only */
	mean = palloc(sizeof(float) * job->c);
	std = palloc(sizeof(float) * job->c);
	iceml_nn_channel_stats(job->x_train, job->n_train, job->c, job->h * job->w, mean, std);
	iceml_net_set_normalisation(net, mean, std);
	if (job->nside > 0)
	{
		float		smean[ICEML_NN_MAX_SIDE],
					sstd[ICEML_NN_MAX_SIDE];

		iceml_nn_side_stats(job->s_train, job->n_train, job->nside, smean, sstd);
		iceml_net_set_side_normalisation(net, smean, sstd);
	}
	iceml_net_init_params_scheme(net, job->run.train.seed, (IcemlInit) job->run.init);
	iceml_nn_set_threads(job->run.threads);
	job->run.train.epochs = job->epochs;	/* the cosine schedule's length */

	tr = iceml_trainer_create(net, &job->run.train, err, sizeof(err));
	if (tr == NULL)
		ereport(ERROR,
				(ENGINE_ERRCODE(err, ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot train run %lld: %s", (long long) job->id, err)));

	memset(&best_metrics, 0, sizeof(best_metrics));
	if (job->resume_epoch > 0)
	{
		/* continue from the checkpoint; the history up to it stays */
		IcemlOwnerContext own;
		Datum		arg = Int64GetDatum(job->id);
		Oid			type = INT8OID;
		Datum		d;
		bytea	   *state;

		WorkerBeginTx();
		BecomeCatalogOwner(&own);
		SpiExec("DELETE FROM iceml.run_metrics m USING iceml.checkpoints c"
				" WHERE m.run_id OPERATOR(pg_catalog.=) $1 AND c.run_id OPERATOR(pg_catalog.=) $1"
				"   AND m.epoch OPERATOR(pg_catalog.>) c.epoch",
				1, &type, &arg, NULL);
		SpiExec("SELECT c.state, c.best_state,"
				"       (SELECT m.epoch FROM iceml.run_metrics m WHERE m.run_id OPERATOR(pg_catalog.=) $1"
				"         ORDER BY m.val_loss NULLS LAST, m.epoch LIMIT 1),"
				"       (SELECT pg_catalog.min(m.val_loss) FROM iceml.run_metrics m WHERE m.run_id OPERATOR(pg_catalog.=) $1)"
				"  FROM iceml.checkpoints c WHERE c.run_id OPERATOR(pg_catalog.=) $1",
				1, &type, &arg, NULL);
		SpiGetDatum(0, 1, &d);
		state = DatumGetByteaPP(d);
		if (iceml_trainer_restore(tr, VARDATA_ANY(state), VARSIZE_ANY_EXHDR(state), err, sizeof(err)) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("cannot resume run %lld from its checkpoint: %s", (long long) job->id, err)));
		if (SpiGetDatum(0, 2, &d))
		{
			bytea	   *b = DatumGetByteaPP(d);

			best_len = VARSIZE_ANY_EXHDR(b);
			best_blob = malloc(best_len);
			memcpy(best_blob, VARDATA_ANY(b), best_len);
		}
		if (SpiGetDatum(0, 3, &d))
			best_epoch = DatumGetInt32(d);
		if (SpiGetDatum(0, 4, &d))
			best_loss = DatumGetFloat8(d);
		bad_epochs = job->resume_epoch - best_epoch;
		RestoreUser(&own);
		WorkerEndTx();
	}

	/*
	 * Training accuracy is measured on a sample: the first 256 training
	 * images, in inference mode.  A sample of 1024 cost a quarter of a
	 * 1283-image statoil_cnn epoch.
	 */
	n_acc = Min(job->n_train, 256);
	prob = palloc(sizeof(float) * Max(job->n_val, n_acc));
	job->last_cancel_check = GetCurrentTimestamp();

	for (int epoch = job->resume_epoch + 1; epoch <= job->epochs; epoch++)
	{
		TimestampTz start = GetCurrentTimestamp();
		double		train_loss;
		IcemlMetrics train_m,
					val_m;
		int			rc;
		void	   *ckpt = NULL;
		size_t		ckpt_len = 0;
		long		secs;
		int			usecs;
		bool		improved = false;

		pgstat_report_activity(STATE_RUNNING,
							   psprintf("epoch %d of %d", epoch, job->epochs));
		rc = iceml_trainer_epoch_side(tr, job->x_train, job->s_train, job->y_train, job->n_train,
									  epoch, BatchCallback, job, &train_loss, err, sizeof(err));
		if (rc == ICEML_NN_INTERRUPTED && EngineStopped(job))
			rc = 1;
		if (rc < 0)
			ereport(ERROR,
					(ENGINE_ERRCODE(err, ERRCODE_INTERNAL_ERROR),
					 errmsg("training run %lld failed in epoch %d: %s", (long long) job->id, epoch, err)));
		if (rc > 0)
		{
			end_status = job->terminated ? "failed" : "cancelled";
			break;
		}

		if (!Evaluate(job, net, job->x_train, job->s_train, job->y_train, n_acc, prob, &train_m))
		{
			end_status = "failed";
			break;
		}
		if (job->n_val > 0)
		{
			if (!Evaluate(job, net, job->x_val, job->s_val, job->y_val, job->n_val, prob, &val_m))
			{
				end_status = "failed";
				break;
			}
			improved = val_m.log_loss < best_loss;
		}
		else
		{
			/* no validation split: the last epoch is the one kept */
			val_m = train_m;
			improved = true;
		}
		if (improved)
		{
			best_loss = job->n_val > 0 ? val_m.log_loss : best_loss;
			best_epoch = epoch;
			best_metrics = val_m;
			bad_epochs = 0;
			free(best_blob);
			if (iceml_net_save(net, &best_blob, &best_len) < 0)
				ereport(ERROR,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("out of memory serialising the model of epoch %d of run %lld",
								epoch, (long long) job->id)));
		}
		else
			bad_epochs++;

		if (job->run.checkpoint_every > 0 &&
			(epoch % job->run.checkpoint_every == 0 || epoch == job->epochs))
			if (iceml_trainer_save(tr, &ckpt, &ckpt_len) < 0)
				ereport(ERROR,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("out of memory checkpointing epoch %d of run %lld",
								epoch, (long long) job->id)));

		TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
		RecordEpoch(job->id, epoch, train_loss, train_m.accuracy,
					job->n_val > 0 ? &val_m : NULL, secs + usecs / 1e6,
					ckpt, ckpt_len, best_blob, best_len, best_epoch);
		free(ckpt);

		if (job->run.patience > 0 && job->n_val > 0 && bad_epochs >= job->run.patience)
			break;				/* early stopping: keep the best epoch */
		gate = TrialGateWait(job->id, epoch, job->epochs, job->gates, GateStop, job);
		if (gate == 1)
		{
			end_status = job->terminated ? "failed" : "cancelled";
			break;
		}
		if (gate == 2)
		{
			end_status = "failed";
			failure = psprintf("the coordinator's session that follows this trial went away while it waited at epoch %d for the ASHA decision",
							   epoch);
			break;
		}
		if (job->study_metric)
		{
			bool		stop;

			WorkerBeginTx();
			stop = AshaStops(job->study_id, job->id, job->study_metric,
							 job->asha_min_epochs, epoch, job->epochs);
			WorkerEndTx();
			if (stop)
			{
				end_status = "stopped";
				break;
			}
		}
		/* cancel or shutdown noticed after the last batch of an epoch */
		if (BatchCallback(job, 0, 0, 0) != 0)
		{
			end_status = job->terminated ? "failed" : "cancelled";
			break;
		}
	}

	if (strcmp(end_status, "succeeded") == 0)
	{
		IcemlNet   *kept;

		/* the model of the best epoch, as it will be served */
		kept = iceml_net_load(best_blob, best_len, err, sizeof(err));
		if (kept == NULL)
			elog(ERROR, "could not reload the kept model: %s", err);
		FinishRun(job->id, job->study_id, job->c, "succeeded", NULL, kept, best_blob, best_len, &best_metrics, best_epoch);
		iceml_net_free(kept);
	}
	else if (strcmp(end_status, "failed") == 0)
	{
		/* a shutdown is pending: record why before it takes the worker */
		HOLD_INTERRUPTS();
		FinishRun(job->id, job->study_id, job->c, "failed",
				  failure ? failure :
				  "the worker was asked to terminate (server shutdown or pg_terminate_backend); iceml.resume() continues from the last checkpoint",
				  NULL, NULL, 0, NULL, best_epoch);
		RESUME_INTERRUPTS();
	}
	else
		FinishRun(job->id, job->study_id, job->c, end_status, NULL, NULL, NULL, 0, NULL, best_epoch);

	free(best_blob);
	iceml_trainer_free(tr);
	iceml_net_free(net);
}

void
TrainRunInWorker(int64 run_id, Oid role)
{
	TrainJob	job;
	MemoryContext ctx = CurrentMemoryContext;

	memset(&job, 0, sizeof(job));
	job.id = run_id;
	job.role = role;

	PG_TRY();
	{
		LoadJob(&job);
		Train(&job);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* the server log gets the whole error, SQLSTATE and context included */
		edata = WorkerCatchError(ctx);
		/* record the failure even when a shutdown is pending */
		HOLD_INTERRUPTS();
		FinishRun(job.id, job.study_id, job.c, "failed", ErrorText(edata), NULL, NULL, 0, NULL, 0);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();

	free(job.x_train);
	free(job.y_train);
	free(job.x_val);
	free(job.y_val);
	free(job.s_train);
	free(job.s_val);
}
