/*
 * trainer.c - optimisers, epochs, augmentation, checkpoints.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

struct IcemlTrainer
{
	IcemlNet   *net;
	IcemlTrainConfig cfg;
	Plan	   *plan;
	float	   *grads;			/* nparams each: gradients, first and second moments */
	float	   *m1;
	float	   *m2;
	int64_t		step;
	int64_t    *order;
	int64_t		order_cap;
	uint8_t    *aug;
};

void
iceml_train_config_defaults(IcemlTrainConfig *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->batch_size = 32;
	cfg->learning_rate = 1e-3f;
	cfg->optimizer = ICEML_OPT_ADAM;
	cfg->momentum = 0.9f;
	cfg->weight_decay = 0.0f;
	cfg->beta1 = 0.9f;
	cfg->beta2 = 0.999f;
	cfg->epsilon = 1e-8f;
	cfg->augment = 0;
	cfg->seed = 42;
	cfg->schedule = ICEML_SCHED_CONSTANT;
	cfg->epochs = 1;
	cfg->step_epochs = 10;
	cfg->step_gamma = 0.1f;
	cfg->warmup_epochs = 0.0f;
}

float
iceml_train_lr(const IcemlTrainConfig *cfg, int epoch, double frac)
{
	double		t = (double) (epoch - 1) + frac;	/* epochs done after this batch */
	double		w = cfg->warmup_epochs;
	double		lr = cfg->learning_rate;

	if (w > 0 && t < w)
		return (float) (lr * t / w);
	switch (cfg->schedule)
	{
		case ICEML_SCHED_STEP:
			{
				int			k = (int) floor(((double) (epoch - 1) - w) / cfg->step_epochs);

				return (float) (lr * pow(cfg->step_gamma, k > 0 ? k : 0));
			}
		case ICEML_SCHED_COSINE:
			{
				double		span = cfg->epochs - w;
				/* the epoch's rate is set at its start: the last epoch is not 0 */
				double		at = (double) (epoch - 1) - w;

				if (span <= 0)
					return (float) lr;
				if (at < 0)
					at = 0;
				if (at > span)
					at = span;
				return (float) (lr * 0.5 * (1.0 + cos(3.14159265358979323846 * at / span)));
			}
		default:
			return (float) lr;
	}
}

IcemlTrainer *
iceml_trainer_create(IcemlNet *net, const IcemlTrainConfig *cfg, char *err, size_t errlen)
{
	IcemlTrainer *tr;

	if (cfg->batch_size < 1 || cfg->batch_size > 65536)
	{
		snprintf(err, errlen, "batch_size must be between 1 and 65536, not %d", cfg->batch_size);
		return NULL;
	}
	if (!(cfg->learning_rate > 0.0f) || !isfinite(cfg->learning_rate))
	{
		snprintf(err, errlen, "learning_rate must be positive, not %g", (double) cfg->learning_rate);
		return NULL;
	}
	if (cfg->optimizer != ICEML_OPT_SGD && cfg->optimizer != ICEML_OPT_ADAM)
	{
		snprintf(err, errlen, "unknown optimizer %d", (int) cfg->optimizer);
		return NULL;
	}
	if (!(cfg->weight_decay >= 0.0f) || !(cfg->momentum >= 0.0f && cfg->momentum < 1.0f) ||
		!(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f) || !(cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f) ||
		!(cfg->epsilon > 0.0f) ||
		(cfg->schedule != ICEML_SCHED_CONSTANT && cfg->schedule != ICEML_SCHED_STEP &&
		 cfg->schedule != ICEML_SCHED_COSINE) ||
		cfg->epochs < 1 || cfg->step_epochs < 1 || !(cfg->step_gamma > 0.0f && cfg->step_gamma <= 1.0f) ||
		!(cfg->warmup_epochs >= 0.0f && cfg->warmup_epochs <= 1e6f))
	{
		snprintf(err, errlen, "optimizer settings out of range");
		return NULL;
	}
	tr = calloc(1, sizeof(IcemlTrainer));
	if (tr == NULL)
		goto oom;
	tr->net = net;
	tr->cfg = *cfg;
	tr->plan = nn_plan_create(net, cfg->batch_size, 1);
	tr->grads = calloc(net->nparams * 3 + 1, sizeof(float));
	tr->aug = calloc((size_t) cfg->batch_size, 1);
	if (tr->plan == NULL || tr->grads == NULL || tr->aug == NULL)
		goto oom;
	tr->m1 = tr->grads + net->nparams;
	tr->m2 = tr->m1 + net->nparams;
	return tr;

oom:
	iceml_trainer_free(tr);
	snprintf(err, errlen, "out of memory for the training plan (batch %d)", cfg->batch_size);
	return NULL;
}

void
iceml_trainer_free(IcemlTrainer *tr)
{
	if (tr == NULL)
		return;
	nn_plan_free(tr->plan);
	free(tr->grads);
	free(tr->order);
	free(tr->aug);
	free(tr);
}

/* Apply one optimiser step with the gradients in tr->grads. */
static void
optimizer_step(IcemlTrainer *tr, float lr)
{
	IcemlNet   *net = tr->net;
	const IcemlTrainConfig *c = &tr->cfg;
	float	   *p = net->params;
	float	   *g = tr->grads;

	tr->step++;
	nn_params_changed(net);
	if (c->optimizer == ICEML_OPT_ADAM)
	{
		/*
		 * PyTorch's form: epsilon is added to the bias-corrected sqrt(v).
		 * (Keras adds it to the uncorrected one, an epsilon effectively
		 * 1/sqrt(1 - beta2^t) times larger in the first steps.)
		 */
		float		b1 = c->beta1,
					b2 = c->beta2;
		float		step_size = lr / (float) (1.0 - pow(b1, (double) tr->step));
		float		inv_c2 = (float) (1.0 / sqrt(1.0 - pow(b2, (double) tr->step)));
		float		eps = c->epsilon;

		for (size_t i = 0; i < net->nparams; i++)
		{
			tr->m1[i] = b1 * tr->m1[i] + (1.0f - b1) * g[i];
			tr->m2[i] = b2 * tr->m2[i] + (1.0f - b2) * g[i] * g[i];
			p[i] -= step_size * tr->m1[i] / (sqrtf(tr->m2[i]) * inv_c2 + eps);
		}
		/* decoupled weight decay, on conv and dense weights only */
		if (c->weight_decay > 0.0f)
			for (int li = 0; li < net->nlayers; li++)
			{
				Layer	   *l = &net->layers[li];

				if (l->type == L_CONV || l->type == L_DENSE)
					for (size_t k = 0; k < l->nw; k++)
						p[l->w_off + k] -= lr * c->weight_decay * p[l->w_off + k];
			}
	}
	else
	{
		/* SGD with momentum; L2 weight decay on conv and dense weights */
		if (c->weight_decay > 0.0f)
			for (int li = 0; li < net->nlayers; li++)
			{
				Layer	   *l = &net->layers[li];

				if (l->type == L_CONV || l->type == L_DENSE)
					for (size_t k = 0; k < l->nw; k++)
						g[l->w_off + k] += c->weight_decay * p[l->w_off + k];
			}
		for (size_t i = 0; i < net->nparams; i++)
		{
			tr->m1[i] = c->momentum * tr->m1[i] + g[i];
			p[i] -= lr * tr->m1[i];
		}
	}
}

int
iceml_trainer_epoch(IcemlTrainer *tr, const float *x, const float *y, int64_t n, int epoch,
					IcemlBatchCallback cb, void *cb_arg, double *mean_loss,
					char *err, size_t errlen)
{
	return iceml_trainer_epoch_side(tr, x, NULL, y, n, epoch, cb, cb_arg, mean_loss, err, errlen);
}

int
iceml_trainer_epoch_side(IcemlTrainer *tr, const float *x, const float *side, const float *y,
						 int64_t n, int epoch, IcemlBatchCallback cb, void *cb_arg,
						 double *mean_loss, char *err, size_t errlen)
{
	IcemlNet   *net = tr->net;
	int			B = tr->cfg.batch_size;
	uint64_t	s;
	double		total = 0;

	if (n <= 0)
	{
		snprintf(err, errlen, "no training images");
		return -1;
	}
	if (n > tr->order_cap)
	{
		int64_t    *o = realloc(tr->order, sizeof(int64_t) * (size_t) n);

		if (o == NULL)
		{
			snprintf(err, errlen, "out of memory for %lld images", (long long) n);
			return -1;
		}
		tr->order = o;
		tr->order_cap = n;
	}
	/* a shuffle that depends only on (seed, epoch) */
	for (int64_t i = 0; i < n; i++)
		tr->order[i] = i;
	s = nn_mix(tr->cfg.seed, 0xE0000 + (uint64_t) epoch);
	for (int64_t i = n - 1; i > 0; i--)
	{
		int64_t		j = (int64_t) (nn_splitmix64(&s) % (uint64_t) (i + 1));
		int64_t		t = tr->order[i];

		tr->order[i] = tr->order[j];
		tr->order[j] = t;
	}

	for (int64_t at = 0; at < n; at += B)
	{
		int			b = (int) ((n - at) < B ? (n - at) : B);
		const float *z;
		double		loss = 0;
		uint64_t	bs = nn_mix(nn_mix(tr->cfg.seed, (uint64_t) epoch), (uint64_t) at);

		if (tr->cfg.augment)
			for (int k = 0; k < b; k++)
			{
				uint64_t	r = nn_splitmix64(&bs);
				uint8_t		a = 0;

				if ((tr->cfg.augment & ICEML_AUG_FLIP_H) && (r & 1))
					a |= 1;
				if ((tr->cfg.augment & ICEML_AUG_FLIP_V) && (r & 2))
					a |= 2;
				if ((tr->cfg.augment & ICEML_AUG_ROT90) && net->h == net->w)
					a |= (uint8_t) (((r >> 2) & 3) << 2);
				tr->aug[k] = a;
			}
		nn_gather(net, tr->plan, x, tr->order + at, b, tr->cfg.augment ? tr->aug : NULL);
		nn_gather_side(net, tr->plan, side, tr->order + at, b);
		z = nn_forward(net, tr->plan, b, 1, nn_splitmix64(&bs));
		if (z == NULL)
		{
			snprintf(err, errlen, "interrupted");
			return ICEML_NN_INTERRUPTED;
		}
		for (int k = 0; k < b; k++)
		{
			float		yk = y[tr->order[at + k]];
			float		zk = z[k];
			float		p = zk >= 0 ? 1.0f / (1.0f + expf(-zk)) : expf(zk) / (1.0f + expf(zk));

			/* binary cross-entropy on the logit, stable for any |z| */
			loss += (zk > 0 ? zk : 0) - zk * yk + log1pf(expf(-fabsf(zk)));
			tr->plan->dout[k] = (p - yk) / (float) b;
		}
		if (!isfinite(loss))
		{
			snprintf(err, errlen, "the loss diverged (not finite) at image %lld of epoch %d; lower the learning rate",
					 (long long) at, epoch);
			return -1;
		}
		if (nn_backward(net, tr->plan, b, tr->grads) != 0)
		{
			snprintf(err, errlen, "interrupted");
			return ICEML_NN_INTERRUPTED;
		}
		optimizer_step(tr, iceml_train_lr(&tr->cfg, epoch, (double) (at + b) / (double) n));
		total += loss;
		if (cb && cb(cb_arg, at + b, n, loss / b) != 0)
			return 1;
	}
	*mean_loss = total / (double) n;
	return 0;
}

/* ---- checkpoints ------------------------------------------------------------ */

/*
 * "ICEMLCK\0"  u32 version  u64 nparams  u64 nstate  i64 step
 * f32 params[]  f32 state[]  f32 m1[]  f32 m2[]  u32 crc32
 */
#define CKPT_MAGIC "ICEMLCK"
#define CKPT_VERSION 1

int
iceml_trainer_save(const IcemlTrainer *tr, void **blob, size_t *len)
{
	const IcemlNet *net = tr->net;
	uint32_t	v = CKPT_VERSION,
				crc;
	uint64_t	np = net->nparams,
				ns = net->nstate;
	size_t		total = 8 + 4 + 8 + 8 + 8 + sizeof(float) * (3 * np + ns) + 4;
	unsigned char *b = malloc(total),
			   *p;

	if (b == NULL)
		return -1;
	p = b;
	memcpy(p, CKPT_MAGIC, 8);
	p += 8;
	memcpy(p, &v, 4);
	p += 4;
	memcpy(p, &np, 8);
	p += 8;
	memcpy(p, &ns, 8);
	p += 8;
	memcpy(p, &tr->step, 8);
	p += 8;
	memcpy(p, net->params, sizeof(float) * np);
	p += sizeof(float) * np;
	memcpy(p, net->state, sizeof(float) * ns);
	p += sizeof(float) * ns;
	memcpy(p, tr->m1, sizeof(float) * np);
	p += sizeof(float) * np;
	memcpy(p, tr->m2, sizeof(float) * np);
	p += sizeof(float) * np;
	crc = nn_crc32(b, (size_t) (p - b));
	memcpy(p, &crc, 4);
	*blob = b;
	*len = total;
	return 0;
}

int
iceml_trainer_restore(IcemlTrainer *tr, const void *blob, size_t len, char *err, size_t errlen)
{
	IcemlNet   *net = tr->net;
	const unsigned char *p = blob;
	uint32_t	v,
				crc;
	uint64_t	np,
				ns;
	size_t		want;

	if (blob == NULL || len < 8 + 4 + 8 + 8 + 8 + 4 || memcmp(p, CKPT_MAGIC, 8) != 0)
	{
		snprintf(err, errlen, "not an iceml checkpoint");
		return -1;
	}
	memcpy(&v, p + 8, 4);
	if (v != CKPT_VERSION)
	{
		snprintf(err, errlen, "iceml checkpoint format version %u is not supported", v);
		return -1;
	}
	memcpy(&crc, p + len - 4, 4);
	if (crc != nn_crc32(p, len - 4))
	{
		snprintf(err, errlen, "iceml checkpoint is corrupted or truncated: checksum mismatch");
		return -1;
	}
	memcpy(&np, p + 12, 8);
	memcpy(&ns, p + 20, 8);
	want = 8 + 4 + 8 + 8 + 8 + sizeof(float) * (3 * (size_t) np + (size_t) ns) + 4;
	if (np != net->nparams || ns != net->nstate || len != want)
	{
		snprintf(err, errlen, "iceml checkpoint does not fit this architecture (%llu parameters, the net has %zu)",
				 (unsigned long long) np, net->nparams);
		return -1;
	}
	p += 20 + 8;
	memcpy(&tr->step, p, 8);
	p += 8;
	memcpy(net->params, p, sizeof(float) * np);
	nn_params_changed(net);
	p += sizeof(float) * np;
	memcpy(net->state, p, sizeof(float) * ns);
	p += sizeof(float) * ns;
	memcpy(tr->m1, p, sizeof(float) * np);
	p += sizeof(float) * np;
	memcpy(tr->m2, p, sizeof(float) * np);
	return 0;
}
