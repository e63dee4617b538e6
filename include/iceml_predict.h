/*
 * iceml_predict.h - in-database inference (src/serving/): the model cache
 * (model_cache.c), a chip made into a model's input (predict_input.c),
 * scoring with ensembles and test-time augmentation (score.c), the SQL
 * entry points (predict.c: iceml_predict; predict_batch.c: predict_table
 * and predict_batch) and inference monitoring (monitor.c).
 *
 * Other subsystems (what-if analysis, evaluation, pipelines, shards) reuse
 * the per-backend model cache through PredictGetModel and score chips with
 * PredictFillInput + PredictRun (one chip) or PredictScore (n chips), so
 * that they compute exactly what iceml_predict() computes: the mean
 * probability over a deployment's members and, with test-time
 * augmentation, over the flips and quarter turns of each chip.
 */
#ifndef ICEML_PREDICT_H
#define ICEML_PREDICT_H

#include "postgres.h"

#include "portability/instr_time.h"
#include "utils/array.h"

#include "iceml_nn.h"

#define ICEML_PREDICT_MAX_CHANNELS 8

/* what builds a channel of a model's input from the two bands (IcemlModel.channel) */
typedef enum PredictChannel
{
	CH_BAND_1,
	CH_BAND_2,
	CH_BAND_AVG
} PredictChannel;
#define ICEML_PREDICT_MAX_MEMBERS 16	/* models of an ensemble deployment */
#define ICEML_PREDICT_MAX_VIEWS 8	/* test-time augmentation: the 8 flips and quarter turns */
#define ICEML_PREDICT_CHUNK 64	/* images (views included) per engine call of PredictScore */

/* A cached, ready-to-run model or ensemble.  Owned by the cache: do not free. */
typedef struct IcemlModel
{
	int64		model_id;		/* the model; an ensemble's first member */
	int64		deployment_id;	/* 0 when looked up by id */
	IcemlNet   *net;			/* == members[0] */
	int			c,
				h,
				w;				/* the input shape all members take */
	int			channel[ICEML_PREDICT_MAX_CHANNELS];	/* what builds each channel */
	float	   *input;			/* c*h*w scratch for one image */
	/* test-time augmentation and ensembles (src/serving/predict_batch.c) */
	int			nmembers;		/* 1 for a single model */
	IcemlNet   *members[ICEML_PREDICT_MAX_MEMBERS];
	int64		member_ids[ICEML_PREDICT_MAX_MEMBERS];
	int			views;			/* 1, or with tta 8 (4 for a non-square input: flips only) */
	/*
	 * The engine keeps a one-image workspace per net until it is given more
	 * than one image at once; then a 32-image one (about 190 MB for
	 * statoil_cnn), which the cache counts from then on.
	 */
	bool		batched;		/* a call gave the members several images at once */
	size_t		batch_bytes;	/* what their 32-image workspaces add */
	float		angle;			/* the call's inc_angle, NaN when NULL: the
								 * side input of members that take it */
} IcemlModel;

/*
 * The model deployed under `name` (when name is not NULL) or model
 * `model_id`, from this backend's cache; loads or re-checks it only after a
 * committed deploy or model change.  ERRORs (42704) when there is none.
 */
extern IcemlModel *PredictGetModel(const char *name, int64 model_id);

/*
 * A model built from a serialised net and its channels (text[]), outside
 * the cache (src/shard/shard_predict.c keeps its own, by content hash); ERRORs
 * leave nothing allocated.  PredictFreeModel releases it.
 */
extern void PredictBuildModel(IcemlModel *m, int64 model_id, bytea *weights,
							  ArrayType *channels);
extern void PredictFreeModel(IcemlModel *m);

/*
 * Keep m in the cache until the statement ends, whatever other models
 * queries run meanwhile load (a caller that holds m across queries: the
 * relation iceml.predict_table reads may itself call iceml_predict).
 */
extern void PredictPin(IcemlModel *m);

/*
 * Check a band argument of function `fn` (one-dimensional real[], n values,
 * no NULLs, finite); returns a pointer into the array's data.
 */
/* An inc_angle argument: finite, 0 to 90 degrees, else 22023 naming fn and argname. */
extern float PredictCheckAngle(float angle, const char *fn, const char *argname);
extern const float *PredictCheckBand(ArrayType *arr, const char *fn,
									 const char *argname, int n);

/*
 * Build one image of the net's input (m->c * m->h * m->w floats at dst)
 * from two raw bands of m->h * m->w values: the one place where a chip
 * becomes the net's input.  PredictFillInput fills m->input.
 */
extern void PredictFillImage(IcemlModel *m, float *dst, const float *band_1, const float *band_2);
extern void PredictFillInput(IcemlModel *m, const float *band_1, const float *band_2);

/* The probability for one image x (m->c * m->h * m->w raw values). */
extern float PredictRun(IcemlModel *m, const float *x);

/*
 * Probabilities of n images x (as PredictFillImage builds them), scored in
 * the engine's batches over `threads` threads; `fn` names the caller in
 * errors.  angles: each image's inc_angle (NaN when missing), the side
 * input of members that take it, or NULL when every angle is missing.  The same values PredictRun gives one by one, up to the last
 * bits of float rounding.  n = 1 (even augmented) runs the engine one image
 * at a time, so that per-row calls keep the engine's small workspace.
 */
extern void PredictScore(IcemlModel *m, const float *x, const float *angles, int64 n,
						 float *prob, int threads, const char *fn);

/* iceml.predict_batch_threads: threads of one batched scoring call */
extern int	iceml_predict_batch_threads;

/*
 * Inference logging (src/serving/monitor.c): a sampled call goes into shared memory;
 * a background worker writes it to iceml.inference_log.  No-op unless
 * iceml was preloaded.
 */
extern void MonitorRecord(IcemlModel *m, const char *name, const float *band_1,
						  const float *band_2, int n, bool has_angle, float angle,
						  float prob, instr_time start);

/*
 * A buffer a backend keeps for its life, grown as needed (src/serving/score.c):
 * freeing and allocating megabytes per call makes malloc keep ever more of
 * them.  busy: taken by a call up the stack.
 */
typedef struct PredictScratch
{
	float	   *buf;
	size_t		floats;
	bool		busy;
} PredictScratch;
extern float *PredictScratchGet(PredictScratch *s, size_t floats);

extern void PredictInit(void);
extern void ModelCacheInit(void);
extern void PredictBatchInit(void);
extern void MonitorInit(void);

#endif							/* ICEML_PREDICT_H */
