/*
 * limits.c - what one role may make the server allocate or compute.
 *
 *   iceml.max_model_mb     the largest model (parameters and state) an
 *                          architecture may have: refused at
 *                          create_architecture, train and tune (54000);
 *   iceml.train_memory_mb  the most a training run may take: the model,
 *                          gradients, optimiser moments, the activations of
 *                          a batch, the checkpoint copies and the training
 *                          dataset in memory; refused at train and tune, and
 *                          again by the worker before it allocates (53200).
 *
 * Both are superuser settings (PGC_SUSET) and are checked from the engine's
 * own memory plan (iceml_net_describe, iceml_net_memory), which allocates
 * nothing, so a huge spec is refused at once.
 *
 * The engine also asks, between the layers of every forward and backward
 * pass, whether to stop (EngineInterruptCheck): a cancel, a statement
 * timeout or a terminate request stops a long pass with an error code, never
 * a longjmp through the engine; the caller then lets PostgreSQL raise the
 * error (IcemlEngineInterrupted).
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include <math.h>
#include <unistd.h>

#include "iceml.h"
#include "iceml_nn.h"

int			iceml_max_model_mb = 1024;
int			iceml_train_memory_mb = 4096;

PG_FUNCTION_INFO_V1(iceml_check_limits);
PG_FUNCTION_INFO_V1(iceml_max_train_threads);

#define MB (1024.0 * 1024.0)

/*
 * Whether to stop a pass: the requests CHECK_FOR_INTERRUPTS turns into an
 * error (cancel, statement or lock timeout, terminate).  Reads only
 * signal-set flags; called on the backend's own thread.
 */
static int
EngineInterruptCheck(void)
{
	return InterruptPending && (QueryCancelPending || ProcDiePending);
}

/*
 * After the engine returned ICEML_NN_INTERRUPTED: raise the pending
 * interrupt's own error (cancel, timeout, terminate); should it not be
 * raised here (interrupts held off), still end the statement.
 */
void
IcemlEngineInterrupted(const char *what)
{
	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(ERRCODE_QUERY_CANCELED),
			 errmsg("canceling %s: an interrupt is pending", what)));
}

/*
 * Refuse a spec whose model exceeds iceml.max_model_mb and, with
 * batch_size > 0, a training run whose memory plan for that batch plus
 * images raw images exceeds iceml.train_memory_mb.  name says which
 * architecture (or run) in the messages.  Allocates nothing of the net's.
 */
void
IcemlCheckSpecLimits(const char *name, const char *spec_json, int batch_size, int64 images)
{
	char		err[ICEML_NN_ERRLEN];
	IcemlNet   *net = iceml_net_describe(spec_json, err, sizeof(err));
	IcemlNetMemory m;
	int			c,
				h,
				w;
	double		data;

	if (net == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid architecture spec of %s: %s", name, err)));
	iceml_net_memory(net, batch_size > 0 ? batch_size : 1, &m);
	iceml_net_input_shape(net, &c, &h, &w);
	iceml_net_free(net);

	if (m.model_bytes > iceml_max_model_mb * MB)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s has %lld parameters (%.0f MB), more than iceml.max_model_mb allows (%d MB)",
						name, (long long) m.parameters, ceil(m.model_bytes / MB), iceml_max_model_mb),
				 errhint("Use fewer or smaller layers, or ask a superuser to raise iceml.max_model_mb.")));
	if (batch_size <= 0)
		return;

	/* the worker holds the dataset as floats, one per channel and pixel */
	data = (double) Max(images, 0) * c * h * w * sizeof(float) + (double) Max(images, 0) * sizeof(float);
	if (m.train_bytes + data > iceml_train_memory_mb * MB)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("training %s with batch_size %d needs about %.0f MB, more than iceml.train_memory_mb allows (%d MB)",
						name, batch_size, ceil((m.train_bytes + data) / MB), iceml_train_memory_mb),
				 images > 0 ?
				 errdetail("The model takes %.0f MB; its gradients, optimiser state, activations of a batch and checkpoint copies %.0f MB; the %lld images of the training dataset %.0f MB.",
						   ceil(m.model_bytes / MB), ceil((m.train_bytes - m.model_bytes) / MB),
						   (long long) images, ceil(data / MB)) :
				 errdetail("The model takes %.0f MB; its gradients, optimiser state, activations of a batch and checkpoint copies %.0f MB.",
						   ceil(m.model_bytes / MB), ceil((m.train_bytes - m.model_bytes) / MB)),
				 errhint("Lower batch_size, use a smaller architecture, or ask a superuser to raise iceml.train_memory_mb.")));
}

/*
 * iceml._check_limits(name text, spec jsonb, batch_size integer, images
 * bigint): IcemlCheckSpecLimits from SQL; batch_size NULL checks the model
 * size only.
 */
Datum
iceml_check_limits(PG_FUNCTION_ARGS)
{
	char	   *name;
	Jsonb	   *spec;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("architecture name and spec must not be NULL")));
	name = psprintf("architecture \"%s\"", text_to_cstring(PG_GETARG_TEXT_PP(0)));
	spec = PG_GETARG_JSONB_P(1);
	IcemlCheckSpecLimits(name, JsonbToCString(NULL, &spec->root, VARSIZE(spec)),
						 PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2),
						 PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3));
	PG_RETURN_VOID();
}

/*
 * iceml._max_train_threads(): the most threads a run may ask for: the
 * server's processors, or iceml.train_threads if a superuser set more.
 */
Datum
iceml_max_train_threads(PG_FUNCTION_ARGS)
{
	long		cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus < 1)
		cpus = 1;
	PG_RETURN_INT32(Max((int) Min(cpus, 64), iceml_train_threads));
}

void
LimitsInit(void)
{
	DefineCustomIntVariable("iceml.max_model_mb",
							"Largest model an architecture may have (parameters and state).",
							"Checked by iceml.create_architecture, iceml.train and iceml.tune before anything is allocated.",
							&iceml_max_model_mb,
							1024, 1, 1048576,
							PGC_SUSET, GUC_UNIT_MB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("iceml.train_memory_mb",
							"Most memory one training run may take.",
							"The model, gradients, optimiser state, activations of a batch, checkpoint copies and the training dataset; checked by iceml.train and iceml.tune and again by the worker.",
							&iceml_train_memory_mb,
							4096, 1, 1048576,
							PGC_SUSET, GUC_UNIT_MB,
							NULL, NULL, NULL);
	iceml_nn_set_interrupt_check(EngineInterruptCheck);
}
