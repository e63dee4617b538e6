/*
 * iceml.c - module entry point, GUCs and the version smoke test.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include <json-c/json_c_version.h>

#include "iceml.h"
#include "iceml_catalog.h"
#include "iceml_nn.h"
#include "iceml_worker.h"
#include "iceml_fs.h"
#include "iceml_predict.h"
#include "iceml_shard.h"
#include "iceml_stats.h"

PG_MODULE_MAGIC;

/* OpenBLAS's own entry point; not in every cblas.h, so declared here. */
extern char *openblas_get_config(void);

int			iceml_train_threads = 2;
int			iceml_max_workers = 4;
int			iceml_predict_threads = 1;
double		iceml_log_inferences = 0.0;

void		_PG_init(void);

void
_PG_init(void)
{
	/*
	 * Settings that spend the machine's threads or memory, or decide what
	 * is logged about other roles' calls, are a superuser's (PGC_SUSET):
	 * set them in postgresql.conf or with ALTER ROLE/DATABASE ... SET.
	 */
	DefineCustomIntVariable("iceml.train_threads",
							"Threads a training worker's engine computes on.",
							"Used when a run's hyperparameters do not set \"threads\".",
							&iceml_train_threads,
							2, 1, 64,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("iceml.max_workers",
							"Maximum number of iceml background workers training at once.",
							"iceml's share of max_worker_processes; runs beyond it wait in the queue.",
							&iceml_max_workers,
							4, 0, 64,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("iceml.predict_threads",
							"Threads the engine computes on inside a backend for iceml_predict().",
							NULL,
							&iceml_predict_threads,
							1, 1, 64,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomRealVariable("iceml.log_inferences",
							 "Fraction of iceml_predict() calls recorded in iceml.inference_log.",
							 "0 logs nothing, 1 logs every call.",
							 &iceml_log_inferences,
							 0.0, 0.0, 1.0,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	LimitsInit();
	ShardInit();				/* defines iceml.node_name */
	ShardPredictInit();		/* predictions where the rows are */

	MarkGUCPrefixReserved("iceml");

	CatalogInit();
	WorkerInit();
	FeatureStoreInit();
	IngestInit();
	PredictInit();
	MonitorInit();
}

PG_FUNCTION_INFO_V1(iceml_version);

/*
 * iceml.version(): the library version, the linked OpenBLAS and json-c
 * builds (which also proves both libraries are really linked), and what
 * the engine runs here: its kernel set and OpenBLAS's core, as chosen for
 * this CPU (or the refusal of an ICEML_KERNELS it cannot run).
 */
Datum
iceml_version(PG_FUNCTION_ARGS)
{
	/* the engine chooses the core first: the config names it */
	const char *engine = iceml_nn_runtime();
	const char *blas = openblas_get_config();

	PG_RETURN_TEXT_P(cstring_to_text(psprintf("iceml %s (%s; %s; json-c %s)",
											  ICEML_VERSION,
											  blas ? blas : "OpenBLAS (unknown build)",
											  engine,
											  json_c_version())));
}
