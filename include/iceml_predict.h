/*
 * iceml_predict.h - in-database inference (src/predict.c) and inference
 * monitoring (src/monitor.c).
 *
 * Other subsystems (what-if analysis, evaluation, pipelines) reuse the
 * per-backend model cache through PredictGetModel and run the net with
 * PredictFillInput + PredictRun, so that they compute exactly what
 * iceml_predict() computes.
 */
#ifndef ICEML_PREDICT_H
#define ICEML_PREDICT_H

#include "postgres.h"

#include "portability/instr_time.h"
#include "utils/array.h"

#include "iceml_nn.h"

#define ICEML_PREDICT_MAX_CHANNELS 8

/* A cached, ready-to-run model.  Owned by the cache: do not free. */
typedef struct IcemlModel
{
	int64		model_id;
	int64		deployment_id;	/* 0 when looked up by id */
	IcemlNet   *net;
	int			c,
				h,
				w;				/* the net's input shape */
	int			channel[ICEML_PREDICT_MAX_CHANNELS];	/* what builds each channel */
	float	   *input;			/* c*h*w scratch for one image */
	float		angle;			/* the call's inc_angle, NaN when NULL: the
								 * side input of a net that takes it */
} IcemlModel;

/*
 * The model deployed under `name` (when name is not NULL) or model
 * `model_id`, from this backend's cache; loads or re-checks it only after a
 * committed deploy or model change.  ERRORs (42704) when there is none.
 */
extern IcemlModel *PredictGetModel(const char *name, int64 model_id);

/*
 * Check a band argument of function `fn` (one-dimensional real[], n values,
 * no NULLs, finite); returns a pointer into the array's data.
 */
extern const float *PredictCheckBand(ArrayType *arr, const char *fn,
									 const char *argname, int n);

/* Build m->input from two raw bands of m->h * m->w values. */
extern void PredictFillInput(IcemlModel *m, const float *band_1, const float *band_2);

/* The probability for one image x (m->c * m->h * m->w raw values). */
extern float PredictRun(IcemlModel *m, const float *x);

/*
 * Inference logging (src/monitor.c): a sampled call goes into shared memory;
 * a background worker writes it to iceml.inference_log.  No-op unless
 * iceml was preloaded.
 */
extern void MonitorRecord(IcemlModel *m, const char *name, const float *band_1,
						  const float *band_2, int n, bool has_angle, float angle,
						  float prob, instr_time start);

extern void PredictInit(void);
extern void MonitorInit(void);

#endif							/* ICEML_PREDICT_H */
