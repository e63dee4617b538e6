/*
 * iceml_nn.h - the CNN engine: plain C on OpenBLAS, no PostgreSQL headers.
 *
 * The extension's training workers and iceml_predict() call only what is
 * declared here.  Conventions:
 *   - images are float, layout N x C x H x W (row-major within a channel);
 *   - inputs handed to predict/train are RAW (dB values as stored); the net
 *     applies the per-channel standardisation it stores itself;
 *   - functions that can fail take (char *err, size_t errlen) and write a
 *     one-line, lower-case message there; they return NULL or a negative
 *     value on failure and never abort the process;
 *   - everything is malloc'd; every object has a _free that accepts NULL;
 *   - an IcemlNet or IcemlTrainer is used by one thread at a time.  Process-
 *     wide: the thread count and the engine's threads (a pool made once),
 *     the interrupt check, and the kernel set and OpenBLAS core chosen once
 *     by iceml_nn_init.
 */
#ifndef ICEML_NN_H
#define ICEML_NN_H

#include <stddef.h>
#include <stdint.h>

#define ICEML_NN_ERRLEN 256

typedef struct IcemlNet IcemlNet;
typedef struct IcemlTrainer IcemlTrainer;

/* ---- architecture ---------------------------------------------------- */

/* JSON text of a built-in architecture ("statoil_cnn"), NULL if unknown. */
extern const char *iceml_nn_builtin_spec(const char *name);

/*
 * Parse and check an architecture spec (JSON, see README), infer shapes and
 * allocate the parameters (uninitialised until iceml_net_init_params).  An
 * invalid spec returns NULL with the layer index, its type and the shapes
 * that do not fit in err.
 */
extern IcemlNet *iceml_net_create(const char *spec_json, char *err, size_t errlen);
extern void iceml_net_free(IcemlNet *net);

/*
 * Weight initialisation schemes, reproducible per seed:
 *   ICEML_INIT_TORCH_DEFAULT  PyTorch's default for Conv2d and Linear
 *     (kaiming_uniform_ with a = sqrt(5)): weights and biases uniform in
 *     +-1/sqrt(fan_in), weight variance 1/(3 fan_in); the engine's default;
 *   ICEML_INIT_HE_NORMAL  He normal (variance 2/fan_in) for layers followed
 *     by a ReLU, Glorot uniform for the others, zero biases (the engine's
 *     default before 0.1.1);
 *   ICEML_INIT_GLOROT_UNIFORM  Keras's default: Glorot uniform (variance
 *     2/(fan_in + fan_out)) everywhere, zero biases.
 * Batch norm always starts as the identity (gamma 1, beta 0).
 */
typedef enum IcemlInit
{
	ICEML_INIT_TORCH_DEFAULT = 0,
	ICEML_INIT_HE_NORMAL = 1,
	ICEML_INIT_GLOROT_UNIFORM = 2
} IcemlInit;

#define ICEML_INIT_DEFAULT ICEML_INIT_TORCH_DEFAULT

/* "torch_default", "he_normal", "glorot_uniform": the scheme, or -1. */
extern int	iceml_init_scheme_parse(const char *name);
extern const char *iceml_init_scheme_name(IcemlInit scheme);

/* Initialise every parameter with the default scheme. */
extern void iceml_net_init_params(IcemlNet *net, uint64_t seed);
extern void iceml_net_init_params_scheme(IcemlNet *net, uint64_t seed, IcemlInit scheme);

extern int64_t iceml_net_param_count(const IcemlNet *net);
extern void iceml_net_input_shape(const IcemlNet *net, int *c, int *h, int *w);
/* The canonical spec (all defaults filled in), malloc'd JSON text. */
extern char *iceml_net_spec_json(const IcemlNet *net);
/* Forward FLOPs for one image (multiply-add = 2), for GFLOP/s reports. */
extern double iceml_net_forward_flops(const IcemlNet *net);

/* ---- normalisation ------------------------------------------------- */

/*
 * Per-channel mean and standard deviation over n images of x (C x H x W
 * each), as stored with a model.  std is clamped away from 0.
 */
extern void iceml_nn_channel_stats(const float *x, int64_t n, int c, int hw,
								   float *mean, float *std);
extern int	iceml_net_set_normalisation(IcemlNet *net, const float *mean,
										const float *std);
/* Pointers into the net (channel count = input c); NULL when never set. */
extern const float *iceml_net_norm_mean(const IcemlNet *net);
extern const float *iceml_net_norm_std(const IcemlNet *net);

/* ---- side inputs ---------------------------------------------------- */

/*
 * Scalar side inputs (issue 16): a "side" layer ({"type": "side",
 * "inputs": ["inc_angle"]}, on flat features, one per net) appends, per
 * input, its standardised value and a missing indicator, so the dense
 * layers after it see the image features, the value and whether it was
 * there.  A missing value (NaN, or side NULL) is standardised to 0, the
 * training mean, with the indicator 1.  The standardisation (mean and
 * standard deviation over the present training values) is stored with the
 * model.  Side arrays are N x nside floats, raw, in the order of "inputs".
 */
#define ICEML_NN_MAX_SIDE 8

extern int	iceml_net_side_count(const IcemlNet *net);
extern const char *iceml_net_side_name(const IcemlNet *net, int i);
/* mean and std of each of nside inputs over its present (finite) values */
extern void iceml_nn_side_stats(const float *side, int64_t n, int nside,
								float *mean, float *std);
extern int	iceml_net_set_side_normalisation(IcemlNet *net, const float *mean,
											 const float *std);
/* pointers into the net (iceml_net_side_count values); NULL when never set */
extern const float *iceml_net_side_mean(const IcemlNet *net);
extern const float *iceml_net_side_std(const IcemlNet *net);


/* ---- the machine: kernels, OpenBLAS, threads -------------------------- */

/*
 * Chooses, once per process, the engine's kernel set (the widest this CPU
 * runs: avx512, avx2 or generic; the environment variable
 * ICEML_KERNELS=generic|avx2|avx512 forces one) and OpenBLAS's core for it
 * (src/nn/blas.c; whatever OPENBLAS_CORETYPE says), and sets OpenBLAS to
 * one thread.  iceml_net_create and iceml_net_load call it.  Returns 0, or
 * -1 with err when ICEML_KERNELS names no set or one this CPU lacks (every
 * later call fails the same way).
 */
extern int	iceml_nn_init(char *err, size_t errlen);

/*
 * One line on what runs: "kernels avx512, OpenBLAS core Haswell, chosen
 * for AMD family 19h (OpenBLAS had chosen Cooperlake)"; or iceml_nn_init's
 * error.
 */
extern const char *iceml_nn_runtime(void);

/*
 * Threads the engine works with, process-wide (>= 1): it splits its big
 * sgemms and its other passes over them itself, on threads it makes once
 * (with every signal blocked) and keeps until exit.  Results are
 * reproducible for a given thread count.
 */
extern void iceml_nn_set_threads(int threads);

/* ---- inference ------------------------------------------------------ */

/*
 * Probabilities (sigmoid of the final logit) for n raw images in x.
 * Works through the images in internal batches; the inference workspace is
 * allocated on first use and kept with the net.  Returns 0, or -1 with err.
 */
extern int	iceml_net_predict(IcemlNet *net, const float *x, int64_t n,
							  float *prob, char *err, size_t errlen);
/* The same with side inputs (n x side count, NaN missing; NULL: all missing). */
extern int	iceml_net_predict_side(IcemlNet *net, const float *x, const float *side,
								   int64_t n, float *prob, char *err, size_t errlen);

/*
 * Test-time augmentation's views (views.c): how many an h x w image has (8
 * on a square: the flips and quarter turns; 4 otherwise), and view v of an
 * image of c x h x w floats written to dst (v = 0 is the image itself).
 * A deployment with tta averages its probabilities over the views.
 */
extern int	iceml_nn_view_count(int h, int w);
extern void iceml_nn_view(const float *src, float *dst, int c, int h, int w, int v);

/* ---- training ------------------------------------------------------- */

typedef enum IcemlOptimizer
{
	ICEML_OPT_SGD = 0,			/* with momentum */
	ICEML_OPT_ADAM = 1
} IcemlOptimizer;

#define ICEML_AUG_FLIP_H	0x1
#define ICEML_AUG_FLIP_V	0x2
#define ICEML_AUG_ROT90		0x4

/* Learning-rate schedules (per epoch, see iceml_train_lr). */
typedef enum IcemlSchedule
{
	ICEML_SCHED_CONSTANT = 0,
	ICEML_SCHED_STEP = 1,		/* times step_gamma every step_epochs */
	ICEML_SCHED_COSINE = 2		/* half a cosine from the rate to 0 at epochs */
} IcemlSchedule;

typedef struct IcemlTrainConfig
{
	int			batch_size;		/* >= 1 */
	float		learning_rate;	/* > 0 */
	IcemlOptimizer optimizer;
	float		momentum;		/* SGD, e.g. 0.9 */
	float		weight_decay;	/* >= 0 (decoupled for Adam) */
	float		beta1;			/* Adam, 0.9 */
	float		beta2;			/* Adam, 0.999 */
	float		epsilon;		/* Adam, 1e-8, added to sqrt(v-hat) as PyTorch */
	int			augment;		/* ICEML_AUG_* bits, 0 for none */
	uint64_t	seed;			/* shuffling, dropout, augmentation */
	IcemlSchedule schedule;		/* constant */
	int			epochs;			/* cosine: the run's length (>= 1) */
	int			step_epochs;	/* step: every this many epochs (>= 1), */
	float		step_gamma;		/* the rate is multiplied by this (0.1) */
	float		warmup_epochs;	/* linear warm-up over this many epochs, 0 */
} IcemlTrainConfig;

/* Defaults above (Adam, lr 1e-3, batch 32, no augmentation, seed 42). */
extern void iceml_train_config_defaults(IcemlTrainConfig *cfg);

/*
 * The learning rate at a point of training: epoch (from 1) and the fraction
 * of it done after the current batch (0, 1].  Warm-up rises linearly from 0
 * over warmup_epochs; the schedule then runs from the end of the warm-up
 * (step: counted in whole epochs; cosine: reaches 0 at the end of epoch
 * `epochs`).  Depends only on its arguments, so a resumed run continues the
 * same schedule.
 */
extern float iceml_train_lr(const IcemlTrainConfig *cfg, int epoch, double frac);

/*
 * A trainer owns the optimiser state and the memory plan for cfg->batch_size;
 * nothing is allocated per batch afterwards.  The net must outlive it.
 */
extern IcemlTrainer *iceml_trainer_create(IcemlNet *net, const IcemlTrainConfig *cfg,
										  char *err, size_t errlen);
extern void iceml_trainer_free(IcemlTrainer *tr);

/*
 * Called after every batch; a non-zero return stops the epoch at once
 * (cancel).  done/total count images.
 */
typedef int (*IcemlBatchCallback) (void *arg, int64_t done, int64_t total,
								   double batch_loss);

/*
 * One epoch over n raw images x with labels y (0/1), in an order shuffled by
 * (seed, epoch).  *mean_loss receives the mean training loss.  Returns 0 when
 * done, 1 when the callback stopped it, -1 on error (err).
 */
extern int	iceml_trainer_epoch(IcemlTrainer *tr, const float *x, const float *y,
								int64_t n, int epoch, IcemlBatchCallback cb,
								void *cb_arg, double *mean_loss,
								char *err, size_t errlen);
/* The same with side inputs (n x side count, NaN missing; NULL: all missing). */
extern int	iceml_trainer_epoch_side(IcemlTrainer *tr, const float *x, const float *side,
									 const float *y, int64_t n, int epoch,
									 IcemlBatchCallback cb, void *cb_arg,
									 double *mean_loss, char *err, size_t errlen);

/*
 * Checkpoint: weights, optimiser state, step counters, in one malloc'd blob;
 * restore into a trainer created for the same net spec and config.
 */
extern int	iceml_trainer_save(const IcemlTrainer *tr, void **blob, size_t *len);
extern int	iceml_trainer_restore(IcemlTrainer *tr, const void *blob, size_t len,
								  char *err, size_t errlen);

/* ---- metrics -------------------------------------------------------- */

typedef struct IcemlMetrics
{
	int64_t		n;
	double		log_loss;
	double		accuracy;
	double		precision;
	double		recall;
	double		f1;
	double		auc;			/* ROC AUC, ties averaged; NaN if one class */
	int64_t		tp, fp, tn, fn;
} IcemlMetrics;

/* Metrics of probabilities against 0/1 labels at a decision threshold. */
extern void iceml_metrics_compute(const float *prob, const float *y, int64_t n,
								  double threshold, IcemlMetrics *out);

/* ---- serialisation -------------------------------------------------- */

/*
 * A versioned binary model: magic, format version, spec, normalisation,
 * weights, side-input standardisation (format 2), checksum.  Format 1
 * (before side inputs) still loads.  Load refuses a truncated, corrupted or foreign blob
 * with a message (never a crash).  Round trip is exact.
 */
extern int	iceml_net_save(const IcemlNet *net, void **blob, size_t *len);
extern IcemlNet *iceml_net_load(const void *blob, size_t len, char *err, size_t errlen);

/* ---- resources: what a net costs, stopping a long pass --------------- */

/*
 * A net described from its spec without allocating its parameters: the
 * same checks and messages as iceml_net_create, whatever the size.  Only
 * iceml_net_param_count, iceml_net_input_shape, iceml_net_spec_json,
 * iceml_net_forward_flops, iceml_net_memory and iceml_net_free apply.
 */
extern IcemlNet *iceml_net_describe(const char *spec_json, char *err, size_t errlen);

typedef struct IcemlNetMemory
{
	int64_t		parameters;		/* trainable and state, as iceml_net_param_count */
	double		model_bytes;	/* a loaded model: parameters, state, normalisation */
	double		predict_bytes;	/* the model with iceml_net_predict's workspace */
	double		train_bytes;	/* a trainer for the batch size, with its model,
								 * gradients, optimiser moments, plans and the
								 * checkpoint and best-model copies of an epoch */
} IcemlNetMemory;

/* What the net (created or described) takes, for a training batch size. */
extern void iceml_net_memory(const IcemlNet *net, int batch_size, IcemlNetMemory *out);

/*
 * A check the engine calls on the calling thread between the layers of a
 * forward or backward pass (never from its worker threads); non-zero stops
 * the pass, and iceml_net_predict and iceml_trainer_epoch return
 * ICEML_NN_INTERRUPTED (the interrupted batch takes no optimiser step).
 * Process-wide like the thread count; NULL: none.
 */
typedef int (*IcemlInterruptCheck) (void);
extern void iceml_nn_set_interrupt_check(IcemlInterruptCheck check);

#define ICEML_NN_INTERRUPTED (-2)

#endif							/* ICEML_NN_H */
