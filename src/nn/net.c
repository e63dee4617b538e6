/*
 * net.c - nets: creation, initialisation, standardisation, inference,
 * serialisation, metrics.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_kernels.h"

#define INFER_BATCH 32

IcemlNet *
iceml_net_create(const char *spec_json, char *err, size_t errlen)
{
	if (nn_init(err, errlen) != 0)
		return NULL;
	return nn_build(spec_json, err, errlen);
}

/* standard normal from two uniforms (Box-Muller) */
static float
normal(uint64_t *s)
{
	float		u1 = nn_uniform(s),
				u2 = nn_uniform(s);

	if (u1 < 1e-12f)
		u1 = 1e-12f;
	return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

int
iceml_init_scheme_parse(const char *name)
{
	if (name == NULL)
		return -1;
	if (strcmp(name, "torch_default") == 0)
		return ICEML_INIT_TORCH_DEFAULT;
	if (strcmp(name, "he_normal") == 0)
		return ICEML_INIT_HE_NORMAL;
	if (strcmp(name, "glorot_uniform") == 0)
		return ICEML_INIT_GLOROT_UNIFORM;
	return -1;
}

const char *
iceml_init_scheme_name(IcemlInit scheme)
{
	switch (scheme)
	{
		case ICEML_INIT_TORCH_DEFAULT:
			return "torch_default";
		case ICEML_INIT_HE_NORMAL:
			return "he_normal";
		case ICEML_INIT_GLOROT_UNIFORM:
			return "glorot_uniform";
	}
	return "unknown";
}

void
iceml_net_init_params(IcemlNet *net, uint64_t seed)
{
	iceml_net_init_params_scheme(net, seed, ICEML_INIT_DEFAULT);
}

void
iceml_net_init_params_scheme(IcemlNet *net, uint64_t seed, IcemlInit scheme)
{
	nn_params_changed(net);
	for (int i = 0; i < net->nlayers; i++)
	{
		Layer	   *l = &net->layers[i];
		uint64_t	s = nn_mix(seed, 0x1000 + (uint64_t) i);
		float	   *W = net->params + l->w_off;
		float	   *bias = net->params + l->b_off;
		double		fan_in,
					fan_out;

		if (l->type == L_BATCHNORM)
		{
			for (int k = 0; k < l->ic; k++)
			{
				W[k] = 1.0f;
				bias[k] = 0.0f;
				net->state[l->s_off + k] = 0.0f;
				net->state[l->s_off + l->ic + k] = 1.0f;
			}
			continue;
		}
		if (l->type != L_CONV && l->type != L_DENSE)
			continue;
		if (l->type == L_CONV)
		{
			fan_in = (double) l->ic * l->kh * l->kw;
			fan_out = (double) l->filters * l->kh * l->kw;
		}
		else
		{
			fan_in = l->ic;
			fan_out = l->units;
		}
		if (scheme == ICEML_INIT_TORCH_DEFAULT)
		{
			/*
			 * kaiming_uniform_(a = sqrt(5)): gain sqrt(2 / (1 + 5)), bound
			 * gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in); the bias is
			 * uniform in the same bound
			 */
			float		lim = (float) (1.0 / sqrt(fan_in));

			for (size_t k = 0; k < l->nw; k++)
				W[k] = lim * (2.0f * nn_uniform(&s) - 1.0f);
			for (size_t k = 0; k < l->nb; k++)
				bias[k] = lim * (2.0f * nn_uniform(&s) - 1.0f);
			continue;
		}
		if (scheme == ICEML_INIT_HE_NORMAL && l->he_init)
		{
			float		sd = (float) sqrt(2.0 / fan_in);

			for (size_t k = 0; k < l->nw; k++)
				W[k] = sd * normal(&s);
		}
		else
		{
			float		lim = (float) sqrt(6.0 / (fan_in + fan_out));

			for (size_t k = 0; k < l->nw; k++)
				W[k] = lim * (2.0f * nn_uniform(&s) - 1.0f);
		}
		memset(bias, 0, sizeof(float) * l->nb);
	}
}

int64_t
iceml_net_param_count(const IcemlNet *net)
{
	return (int64_t) (net->nparams + net->nstate);
}

void
iceml_net_input_shape(const IcemlNet *net, int *c, int *h, int *w)
{
	*c = net->c;
	*h = net->h;
	*w = net->w;
}

char *
iceml_net_spec_json(const IcemlNet *net)
{
	return strdup(net->spec);
}

double
iceml_net_forward_flops(const IcemlNet *net)
{
	double		f = 0;

	for (int i = 0; i < net->nlayers; i++)
	{
		const Layer *l = &net->layers[i];

		if (l->type == L_CONV)
			f += 2.0 * l->filters * l->oh * l->ow * (double) l->ic * l->kh * l->kw;
		else if (l->type == L_DENSE)
			f += 2.0 * l->units * (double) l->ic;
	}
	return f;
}

void
iceml_nn_channel_stats(const float *x, int64_t n, int c, int hw, float *mean, float *std)
{
	for (int k = 0; k < c; k++)
	{
		double		s = 0,
					s2 = 0,
					m;
		double		cnt = (double) n * hw;

		for (int64_t i = 0; i < n; i++)
		{
			const float *v = x + ((size_t) i * c + k) * hw;

			for (int j = 0; j < hw; j++)
				s += v[j];
		}
		m = cnt > 0 ? s / cnt : 0.0;
		for (int64_t i = 0; i < n; i++)
		{
			const float *v = x + ((size_t) i * c + k) * hw;

			for (int j = 0; j < hw; j++)
				s2 += (v[j] - m) * (v[j] - m);
		}
		mean[k] = (float) m;
		std[k] = cnt > 0 ? (float) sqrt(s2 / cnt) : 1.0f;
		if (!(std[k] > 1e-6f))
			std[k] = 1e-6f;
	}
}

int
iceml_net_set_normalisation(IcemlNet *net, const float *mean, const float *std)
{
	for (int k = 0; k < net->c; k++)
		if (!isfinite(mean[k]) || !isfinite(std[k]) || !(std[k] > 0.0f))
			return -1;
	memcpy(net->mean, mean, sizeof(float) * net->c);
	memcpy(net->std, std, sizeof(float) * net->c);
	net->has_norm = 1;
	return 0;
}

const float *
iceml_net_norm_mean(const IcemlNet *net)
{
	return net->has_norm ? net->mean : NULL;
}

const float *
iceml_net_norm_std(const IcemlNet *net)
{
	return net->has_norm ? net->std : NULL;
}

void
iceml_nn_set_threads(int threads)
{
	/* OpenBLAS keeps one thread (nn_init); the engine splits its sgemms */
	nn_init(NULL, 0);
	nn_set_work_threads(threads);
}

static float
sigmoidf(float z)
{
	return z >= 0 ? 1.0f / (1.0f + expf(-z)) : expf(z) / (1.0f + expf(z));
}

int
iceml_net_predict(IcemlNet *net, const float *x, int64_t n, float *prob, char *err, size_t errlen)
{
	return iceml_net_predict_side(net, x, NULL, n, prob, err, errlen);
}

int
iceml_net_predict_side(IcemlNet *net, const float *x, const float *side, int64_t n,
					   float *prob, char *err, size_t errlen)
{
	size_t		img = (size_t) net->c * net->h * net->w;

	if (net->infer == NULL)
	{
		net->infer = nn_plan_create(net, n == 1 ? 1 : INFER_BATCH, 0);
		if (net->infer == NULL)
		{
			snprintf(err, errlen, "out of memory for the inference plan");
			return -1;
		}
	}
	else if ((n > 1 && net->infer->batch < INFER_BATCH) ||
			 net->infer->kern != nn_kernels_current())
	{
		/* grown once from single images to batches; or another kernel set */
		nn_plan_free(net->infer);
		net->infer = nn_plan_create(net, INFER_BATCH, 0);
		if (net->infer == NULL)
		{
			snprintf(err, errlen, "out of memory for the inference plan");
			return -1;
		}
	}
	for (int64_t at = 0; at < n; at += net->infer->batch)
	{
		int			b = (int) ((n - at) < net->infer->batch ? (n - at) : net->infer->batch);
		const float *z;

		nn_gather(net, net->infer, x + (size_t) at * img, NULL, b, NULL);
		nn_gather_side(net, net->infer, side ? side + (size_t) at * net->nside : NULL, NULL, b);
		z = nn_forward(net, net->infer, b, 0, 0);
		if (z == NULL)
		{
			snprintf(err, errlen, "interrupted");
			return ICEML_NN_INTERRUPTED;
		}
		for (int k = 0; k < b; k++)
			prob[at + k] = sigmoidf(z[k]);
	}
	return 0;
}

/* ---- metrics ------------------------------------------------------------- */

typedef struct Scored
{
	float		p;
	float		y;
} Scored;

static int
cmp_scored(const void *a, const void *b)
{
	float		x = ((const Scored *) a)->p,
				y = ((const Scored *) b)->p;

	return (x > y) - (x < y);
}

void
iceml_metrics_compute(const float *prob, const float *y, int64_t n, double threshold, IcemlMetrics *m)
{
	double		ll = 0;
	Scored	   *s;

	memset(m, 0, sizeof(*m));
	m->n = n;
	m->auc = NAN;
	if (n <= 0)
	{
		m->log_loss = m->accuracy = m->precision = m->recall = m->f1 = NAN;
		return;
	}
	for (int64_t i = 0; i < n; i++)
	{
		double		p = prob[i];
		int			pos = y[i] > 0.5f;
		int			pred = p >= threshold;

		if (p < 1e-7)
			p = 1e-7;
		if (p > 1 - 1e-7)
			p = 1 - 1e-7;
		ll += pos ? -log(p) : -log(1 - p);
		if (pred && pos)
			m->tp++;
		else if (pred)
			m->fp++;
		else if (pos)
			m->fn++;
		else
			m->tn++;
	}
	m->log_loss = ll / n;
	m->accuracy = (double) (m->tp + m->tn) / n;
	m->precision = (m->tp + m->fp) > 0 ? (double) m->tp / (m->tp + m->fp) : 0.0;
	m->recall = (m->tp + m->fn) > 0 ? (double) m->tp / (m->tp + m->fn) : 0.0;
	m->f1 = (m->precision + m->recall) > 0 ?
		2 * m->precision * m->recall / (m->precision + m->recall) : 0.0;

	/* ROC AUC by ranks (Mann-Whitney), ties sharing their average rank */
	s = malloc(sizeof(Scored) * (size_t) n);
	if (s == NULL)
		return;
	for (int64_t i = 0; i < n; i++)
	{
		s[i].p = prob[i];
		s[i].y = y[i];
	}
	qsort(s, (size_t) n, sizeof(Scored), cmp_scored);
	{
		double		rank_sum = 0;
		int64_t		npos = 0,
					i = 0;

		while (i < n)
		{
			int64_t		j = i;
			double		avg;

			while (j + 1 < n && s[j + 1].p == s[i].p)
				j++;
			avg = (i + j) / 2.0 + 1.0;
			for (int64_t k = i; k <= j; k++)
				if (s[k].y > 0.5f)
				{
					rank_sum += avg;
					npos++;
				}
			i = j + 1;
		}
		if (npos > 0 && npos < n)
			m->auc = (rank_sum - npos * (npos + 1) / 2.0) / ((double) npos * (n - npos));
	}
	free(s);
}

/* ---- serialisation ------------------------------------------------------- */

/*
 * Model blob, little-endian as written by this machine:
 *   "ICEMLNN\0"  u32 format version  u32 spec length  spec bytes
 *   u32 channels  f32 mean[c]  f32 std[c]  u32 has_norm
 *   u64 nparams  f32 params[]  u64 nstate  f32 state[]
 *   (version 2) u32 side inputs s  f32 side_mean[s]  f32 side_std[s]  u32 has_side_norm
 *   u32 crc32 of everything before it
 * Version 1 (before side inputs) ends after the state; it still loads.
 */
#define NET_MAGIC "ICEMLNN"
#define NET_VERSION 2

uint32_t
nn_crc32(const void *data, size_t len)
{
	static uint32_t table[256];
	static int	ready = 0;
	const unsigned char *p = data;
	uint32_t	crc = 0xFFFFFFFFu;

	if (!ready)
	{
		for (uint32_t i = 0; i < 256; i++)
		{
			uint32_t	c = i;

			for (int k = 0; k < 8; k++)
				c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
		ready = 1;
	}
	for (size_t i = 0; i < len; i++)
		crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
	return crc ^ 0xFFFFFFFFu;
}

typedef struct Writer
{
	unsigned char *buf;
	size_t		len;
} Writer;

static void
put(Writer *w, const void *src, size_t n)
{
	if (w->buf)
		memcpy(w->buf + w->len, src, n);
	w->len += n;
}

static void
write_net(const IcemlNet *net, Writer *w)
{
	uint32_t	v = NET_VERSION,
				speclen = (uint32_t) strlen(net->spec),
				c = (uint32_t) net->c,
				hn = (uint32_t) net->has_norm;
	uint64_t	np = net->nparams,
				ns = net->nstate;

	put(w, NET_MAGIC, 8);
	put(w, &v, 4);
	put(w, &speclen, 4);
	put(w, net->spec, speclen);
	put(w, &c, 4);
	put(w, net->mean, sizeof(float) * c);
	put(w, net->std, sizeof(float) * c);
	put(w, &hn, 4);
	put(w, &np, 8);
	put(w, net->params, sizeof(float) * np);
	put(w, &ns, 8);
	put(w, net->state, sizeof(float) * ns);
	{
		uint32_t	nside = (uint32_t) net->nside,
					hs = (uint32_t) net->has_side_norm;

		put(w, &nside, 4);
		put(w, net->side_mean, sizeof(float) * nside);
		put(w, net->side_std, sizeof(float) * nside);
		put(w, &hs, 4);
	}
}

int
iceml_net_save(const IcemlNet *net, void **blob, size_t *len)
{
	Writer		w = {NULL, 0};
	uint32_t	crc;

	write_net(net, &w);
	w.buf = malloc(w.len + 4);
	if (w.buf == NULL)
		return -1;
	w.len = 0;
	write_net(net, &w);
	crc = nn_crc32(w.buf, w.len);
	put(&w, &crc, 4);
	*blob = w.buf;
	*len = w.len;
	return 0;
}

typedef struct Reader
{
	const unsigned char *p;
	size_t		left;
} Reader;

static int
take(Reader *r, void *dst, size_t n)
{
	if (r->left < n)
		return -1;
	memcpy(dst, r->p, n);
	r->p += n;
	r->left -= n;
	return 0;
}

/* version 2's side-input standardisation; false when it does not fit the net */
static int
take_side(Reader *r, IcemlNet *net)
{
	uint32_t	nside,
				hs;

	if (take(r, &nside, 4) < 0 || nside != (uint32_t) net->nside ||
		take(r, net->side_mean, sizeof(float) * nside) < 0 ||
		take(r, net->side_std, sizeof(float) * nside) < 0 ||
		take(r, &hs, 4) < 0)
		return 0;
	for (uint32_t k = 0; k < nside; k++)
		if (!isfinite(net->side_mean[k]) || !(net->side_std[k] > 0.0f) || !isfinite(net->side_std[k]))
			return 0;
	net->has_side_norm = hs != 0;
	return 1;
}

IcemlNet *
iceml_net_load(const void *blob, size_t len, char *err, size_t errlen)
{
	Reader		r = {blob, len};
	char		magic[8];
	uint32_t	version,
				speclen,
				c,
				hn,
				crc,
				want;
	uint64_t	np,
				ns;
	char	   *spec;
	IcemlNet   *net;

	if (blob == NULL || len < 8 + 4 + 4)
	{
		snprintf(err, errlen, "not an iceml model: %zu bytes is too short", len);
		return NULL;
	}
	take(&r, magic, 8);
	if (memcmp(magic, NET_MAGIC, 8) != 0)
	{
		snprintf(err, errlen, "not an iceml model: bad magic");
		return NULL;
	}
	take(&r, &version, 4);
	if (version < 1 || version > NET_VERSION)
	{
		snprintf(err, errlen, "iceml model format version %u is not supported (this build reads versions 1 to %d)",
				 version, NET_VERSION);
		return NULL;
	}
	memcpy(&crc, (const unsigned char *) blob + len - 4, 4);
	want = nn_crc32(blob, len - 4);
	if (crc != want)
	{
		snprintf(err, errlen, "iceml model is corrupted or truncated: checksum mismatch");
		return NULL;
	}
	r.left -= 4;				/* the checksum */
	if (take(&r, &speclen, 4) < 0 || speclen > r.left)
		goto truncated;
	spec = malloc((size_t) speclen + 1);
	if (spec == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	take(&r, spec, speclen);
	spec[speclen] = '\0';
	net = nn_init(err, errlen) == 0 ? nn_build(spec, err, errlen) : NULL;
	free(spec);
	if (net == NULL)
		return NULL;
	if (take(&r, &c, 4) < 0 || c != (uint32_t) net->c ||
		take(&r, net->mean, sizeof(float) * c) < 0 ||
		take(&r, net->std, sizeof(float) * c) < 0 ||
		take(&r, &hn, 4) < 0 ||
		take(&r, &np, 8) < 0 || np != net->nparams ||
		take(&r, net->params, sizeof(float) * np) < 0 ||
		take(&r, &ns, 8) < 0 || ns != net->nstate ||
		take(&r, net->state, sizeof(float) * ns) < 0 ||
		(version >= 2 && !take_side(&r, net)) ||
		(version == 1 && net->nside != 0) || r.left != 0)
	{
		iceml_net_free(net);
		snprintf(err, errlen, "iceml model is inconsistent: its sizes do not match its architecture");
		return NULL;
	}
	net->has_norm = hn != 0;
	nn_params_changed(net);
	return net;

truncated:
	snprintf(err, errlen, "iceml model is truncated");
	return NULL;
}
