/*
 * spec.c - architecture specs: parse (json-c), check, infer shapes and lay
 * out parameters.  The canonical form written back is spec_canonical.c's,
 * the built-in specs are in builtin.c.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "nn_internal.h"

#define MAX_LAYERS 256
#define MAX_DIM 4096

const char *const nn_layer_type_names[] = {
	"conv2d", "maxpool", "dense", "relu", "sigmoid", "dropout", "batchnorm", "flatten", "gap", "side"
};

/* The keys each layer type takes, besides type, name and group. */
static const char *const type_keys[][6] = {
	{"filters", "kernel", "stride", "padding", "activation", NULL},
	{"size", "stride", NULL},
	{"units", "activation", NULL},
	{NULL},
	{NULL},
	{"rate", NULL},
	{"momentum", "epsilon", NULL},
	{NULL},
	{NULL},
	{"inputs", NULL}
};

typedef struct SpecError
{
	char	   *buf;
	size_t		len;
} SpecError;

static void fail(SpecError *e, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
fail(SpecError *e, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(e->buf, e->len, fmt, ap);
	va_end(ap);
}

/* "layer 3 (maxpool \"pool2\")" */
static const char *
where(const Layer *l, int i, char *buf, size_t len)
{
	if (l->name[0])
		snprintf(buf, len, "layer %d (%s \"%s\")", i, nn_layer_type_names[l->type], l->name);
	else
		snprintf(buf, len, "layer %d (%s)", i, nn_layer_type_names[l->type]);
	return buf;
}

static void
shape_text(int flat, int c, int h, int w, char *buf, size_t len)
{
	if (flat)
		snprintf(buf, len, "%d features", c);
	else
		snprintf(buf, len, "%dx%dx%d", c, h, w);
}

/* An integer value; placeholders ("$kernel") left in a spec are refused. */
static int
get_int(json_object *v, const char *key, int lo, int hi, int *out,
		const char *at, SpecError *e)
{
	if (json_object_is_type(v, json_type_string) && json_object_get_string(v)[0] == '$')
	{
		fail(e, "%s: \"%s\" is the unresolved placeholder \"%s\"", at, key, json_object_get_string(v));
		return -1;
	}
	if (json_object_is_type(v, json_type_double))
	{
		double		d = json_object_get_double(v);

		if (d != floor(d))
		{
			fail(e, "%s: \"%s\" must be an integer, not %g", at, key, d);
			return -1;
		}
		if (d < lo || d > hi)
		{
			fail(e, "%s: \"%s\" must be between %d and %d, not %g", at, key, lo, hi, d);
			return -1;
		}
		*out = (int) d;
		return 0;
	}
	if (!json_object_is_type(v, json_type_int))
	{
		fail(e, "%s: \"%s\" must be an integer, not %s", at, key, json_object_to_json_string(v));
		return -1;
	}
	{
		int64_t		x = json_object_get_int64(v);

		if (x < lo || x > hi)
		{
			fail(e, "%s: \"%s\" must be between %d and %d, not %lld", at, key, lo, hi, (long long) x);
			return -1;
		}
		*out = (int) x;
	}
	return 0;
}

static int
get_num(json_object *v, const char *key, double lo, double hi, int hi_open, float *out,
		const char *at, SpecError *e)
{
	double		d;

	if (json_object_is_type(v, json_type_string) && json_object_get_string(v)[0] == '$')
	{
		fail(e, "%s: \"%s\" is the unresolved placeholder \"%s\"", at, key, json_object_get_string(v));
		return -1;
	}
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
	{
		fail(e, "%s: \"%s\" must be a number, not %s", at, key, json_object_to_json_string(v));
		return -1;
	}
	d = json_object_get_double(v);
	if (!(d >= lo && (hi_open ? d < hi : d <= hi)))
	{
		fail(e, "%s: \"%s\" must be in [%g, %g%c, not %g", at, key, lo, hi, hi_open ? ')' : ']', d);
		return -1;
	}
	*out = (float) d;
	return 0;
}

/* kernel or size: an integer or [h, w] */
static int
get_window(json_object *v, const char *key, int *kh, int *kw, const char *at, SpecError *e)
{
	if (json_object_is_type(v, json_type_array))
	{
		if (json_object_array_length(v) != 2)
		{
			fail(e, "%s: \"%s\" must be an integer or [height, width]", at, key);
			return -1;
		}
		if (get_int(json_object_array_get_idx(v, 0), key, 1, MAX_DIM, kh, at, e) < 0 ||
			get_int(json_object_array_get_idx(v, 1), key, 1, MAX_DIM, kw, at, e) < 0)
			return -1;
		return 0;
	}
	if (get_int(v, key, 1, MAX_DIM, kh, at, e) < 0)
		return -1;
	*kw = *kh;
	return 0;
}

static int
get_activation(json_object *v, Activation *out, const char *at, SpecError *e)
{
	const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;

	if (s && strcmp(s, "relu") == 0)
		*out = ACT_RELU;
	else if (s && strcmp(s, "sigmoid") == 0)
		*out = ACT_SIGMOID;
	else if (s && (strcmp(s, "linear") == 0 || strcmp(s, "none") == 0))
		*out = ACT_NONE;
	else
	{
		fail(e, "%s: unknown activation %s (use \"relu\", \"sigmoid\" or \"linear\")", at,
			 json_object_to_json_string(v));
		return -1;
	}
	return 0;
}

static int
get_label(json_object *v, const char *key, char *out, const char *at, SpecError *e)
{
	const char *s;

	if (!json_object_is_type(v, json_type_string) || (s = json_object_get_string(v))[0] == '\0' ||
		strlen(s) >= 64)
	{
		fail(e, "%s: \"%s\" must be a non-empty string of at most 63 characters", at, key);
		return -1;
	}
	strcpy(out, s);
	return 0;
}

/*
 * A side layer's "inputs": 1 to ICEML_NN_MAX_SIDE distinct names, kept in
 * the net (a net has at most one side layer).
 */
static int
get_side_inputs(json_object *v, IcemlNet *net, int i, const char *at, SpecError *e)
{
	int			n;

	if (net->side_layer >= 0)
	{
		fail(e, "%s: the net already has a side layer (layer %d); put all side inputs in one", at,
			 net->side_layer);
		return -1;
	}
	if (!json_object_is_type(v, json_type_array) || (n = (int) json_object_array_length(v)) < 1 ||
		n > ICEML_NN_MAX_SIDE)
	{
		fail(e, "%s: \"inputs\" must be an array of 1 to %d names, such as [\"inc_angle\"]", at,
			 ICEML_NN_MAX_SIDE);
		return -1;
	}
	for (int k = 0; k < n; k++)
	{
		if (get_label(json_object_array_get_idx(v, k), "inputs", net->side_name[k], at, e) < 0)
			return -1;
		for (int j = 0; j < k; j++)
			if (strcmp(net->side_name[j], net->side_name[k]) == 0)
			{
				fail(e, "%s: side input \"%s\" is named twice", at, net->side_name[k]);
				return -1;
			}
	}
	net->nside = n;
	net->side_layer = i;
	for (int k = 0; k < n; k++)
	{
		net->side_mean[k] = 0.0f;
		net->side_std[k] = 1.0f;
	}
	return 0;
}

/* Parse one layer object into l (type, options, defaults); shapes later. */
static int
parse_layer(json_object *obj, int i, Layer *l, IcemlNet *net, SpecError *e)
{
	json_object *tv;
	const char *type;
	char		at[160];
	int			t;

	memset(l, 0, sizeof(*l));
	if (!json_object_is_type(obj, json_type_object))
	{
		fail(e, "layer %d: must be a JSON object", i);
		return -1;
	}
	if (!json_object_object_get_ex(obj, "type", &tv) || !json_object_is_type(tv, json_type_string))
	{
		fail(e, "layer %d: \"type\" is missing (one of conv2d, maxpool, dense, relu, sigmoid, dropout, batchnorm, flatten, gap, side)", i);
		return -1;
	}
	type = json_object_get_string(tv);
	for (t = 0; t <= L_SIDE; t++)
		if (strcmp(type, nn_layer_type_names[t]) == 0)
			break;
	if (t > L_SIDE)
	{
		fail(e, "layer %d: unknown layer type \"%s\" (one of conv2d, maxpool, dense, relu, sigmoid, dropout, batchnorm, flatten, gap, side)", i, type);
		return -1;
	}
	l->type = (LayerType) t;

	/* defaults */
	l->stride = 1;
	l->kh = l->kw = 2;
	l->bn_momentum = 0.99f;
	l->bn_epsilon = 1e-3f;
	l->act = ACT_NONE;
	l->stride = -1;

	{
		json_object *nv;

		if (json_object_object_get_ex(obj, "name", &nv) && get_label(nv, "name", l->name, "", e) < 0)
		{
			fail(e, "layer %d (%s): \"name\" must be a non-empty string of at most 63 characters", i, type);
			return -1;
		}
	}
	where(l, i, at, sizeof(at));

	{
		int			have_filters = 0,
					have_units = 0,
					have_kernel = 0,
					have_inputs = 0;

		json_object_object_foreach(obj, key, val)
		{
			int			known = 0;

			if (strcmp(key, "type") == 0 || strcmp(key, "name") == 0)
				continue;
			if (strcmp(key, "group") == 0)
			{
				if (get_label(val, "group", l->group, at, e) < 0)
					return -1;
				continue;
			}
			for (int k = 0; type_keys[t][k] != NULL; k++)
				if (strcmp(key, type_keys[t][k]) == 0)
					known = 1;
			if (!known)
			{
				fail(e, "%s: unknown key \"%s\"", at, key);
				return -1;
			}
			if (strcmp(key, "filters") == 0)
			{
				if (get_int(val, key, 1, MAX_DIM, &l->filters, at, e) < 0)
					return -1;
				have_filters = 1;
			}
			else if (strcmp(key, "kernel") == 0 || strcmp(key, "size") == 0)
			{
				if (get_window(val, key, &l->kh, &l->kw, at, e) < 0)
					return -1;
				have_kernel = 1;
			}
			else if (strcmp(key, "stride") == 0)
			{
				if (get_int(val, key, 1, MAX_DIM, &l->stride, at, e) < 0)
					return -1;
			}
			else if (strcmp(key, "padding") == 0)
			{
				const char *p = json_object_is_type(val, json_type_string) ? json_object_get_string(val) : "";

				if (strcmp(p, "same") == 0)
					l->same = 1;
				else if (strcmp(p, "valid") == 0)
					l->same = 0;
				else
				{
					fail(e, "%s: \"padding\" must be \"same\" or \"valid\", not %s", at,
						 json_object_to_json_string(val));
					return -1;
				}
			}
			else if (strcmp(key, "activation") == 0)
			{
				if (get_activation(val, &l->act, at, e) < 0)
					return -1;
			}
			else if (strcmp(key, "units") == 0)
			{
				if (get_int(val, key, 1, 65536, &l->units, at, e) < 0)
					return -1;
				have_units = 1;
			}
			else if (strcmp(key, "rate") == 0)
			{
				if (get_num(val, key, 0.0, 1.0, 1, &l->rate, at, e) < 0)
					return -1;
			}
			else if (strcmp(key, "momentum") == 0)
			{
				if (get_num(val, key, 0.0, 1.0, 1, &l->bn_momentum, at, e) < 0)
					return -1;
			}
			else if (strcmp(key, "epsilon") == 0)
			{
				if (get_num(val, key, 1e-12, 1.0, 0, &l->bn_epsilon, at, e) < 0)
					return -1;
			}
			else if (strcmp(key, "inputs") == 0)
			{
				if (get_side_inputs(val, net, i, at, e) < 0)
					return -1;
				have_inputs = 1;
			}
		}
		if (l->type == L_SIDE && !have_inputs)
		{
			fail(e, "%s: needs \"inputs\", the names of its side inputs (such as [\"inc_angle\"])", at);
			return -1;
		}
		if (l->type == L_CONV && (!have_filters || !have_kernel))
		{
			fail(e, "%s: needs \"filters\" and \"kernel\"", at);
			return -1;
		}
		if (l->type == L_DENSE && !have_units)
		{
			fail(e, "%s: needs \"units\"", at);
			return -1;
		}
		if (l->type == L_CONV && !have_kernel)
			l->kh = l->kw = 3;
	}
	if (l->stride < 0)
		l->stride = (l->type == L_POOL) ? l->kh : 1;
	return 0;
}

/* Infer output shapes layer by layer; lay out parameters. */
static int
infer_shapes(IcemlNet *net, SpecError *e)
{
	int			c = net->c,
				h = net->h,
				w = net->w,
				flat = 0;
	size_t		np = 0,
				ns = 0;
	char		at[160],
				in[64];

	for (int i = 0; i < net->nlayers; i++)
	{
		Layer	   *l = &net->layers[i];

		l->ic = c;
		l->ih = h;
		l->iw = w;
		l->in_flat = flat;
		where(l, i, at, sizeof(at));
		shape_text(flat, c, h, w, in, sizeof(in));

		switch (l->type)
		{
			case L_CONV:
				if (flat)
				{
					fail(e, "%s: input is flat (%s); a convolution needs an image", at, in);
					return -1;
				}
				if (l->same)
				{
					int			ph,
								pw;

					l->oh = (h + l->stride - 1) / l->stride;
					l->ow = (w + l->stride - 1) / l->stride;
					ph = (l->oh - 1) * l->stride + l->kh - h;
					pw = (l->ow - 1) * l->stride + l->kw - w;
					l->pad_top = ph > 0 ? ph / 2 : 0;
					l->pad_left = pw > 0 ? pw / 2 : 0;
				}
				else
				{
					if (l->kh > h || l->kw > w)
					{
						fail(e, "%s: input %s is smaller than the %dx%d kernel", at, in, l->kh, l->kw);
						return -1;
					}
					l->oh = (h - l->kh) / l->stride + 1;
					l->ow = (w - l->kw) / l->stride + 1;
				}
				l->oc = l->filters;
				l->nw = (size_t) l->filters * c * l->kh * l->kw;
				l->nb = (size_t) l->filters;
				break;
			case L_POOL:
				if (flat)
				{
					fail(e, "%s: input is flat (%s); pooling needs an image", at, in);
					return -1;
				}
				if (l->kh > h || l->kw > w)
				{
					fail(e, "%s: input %s is smaller than the %dx%d window", at, in, l->kh, l->kw);
					return -1;
				}
				l->oc = c;
				l->oh = (h - l->kh) / l->stride + 1;
				l->ow = (w - l->kw) / l->stride + 1;
				break;
			case L_DENSE:
				if (!flat)
				{
					fail(e, "%s: input %s is not flat; add a flatten or gap layer before it", at, in);
					return -1;
				}
				l->oc = l->units;
				l->oh = l->ow = 1;
				l->nw = (size_t) l->units * c;
				l->nb = (size_t) l->units;
				break;
			case L_BATCHNORM:
				l->oc = c;
				l->oh = h;
				l->ow = w;
				l->nw = (size_t) c;
				l->nb = (size_t) c;
				break;
			case L_FLATTEN:
				if (flat)
				{
					fail(e, "%s: input is already flat (%s)", at, in);
					return -1;
				}
				l->oc = c * h * w;
				l->oh = l->ow = 1;
				break;
			case L_GAP:
				if (flat)
				{
					fail(e, "%s: input is flat (%s); global average pooling needs an image", at, in);
					return -1;
				}
				l->oc = c;
				l->oh = l->ow = 1;
				break;
			case L_SIDE:
				if (!flat)
				{
					fail(e, "%s: input %s is not flat; put the side layer after a flatten or gap layer", at, in);
					return -1;
				}
				/* per side input: the standardised value and a missing indicator */
				l->oc = c + 2 * net->nside;
				l->oh = l->ow = 1;
				break;
			default:			/* relu, sigmoid, dropout: same shape */
				l->oc = c;
				l->oh = h;
				l->ow = w;
				break;
		}
		if ((double) l->oc * l->oh * l->ow > 64.0 * 1024 * 1024)
		{
			fail(e, "%s: output %dx%dx%d is too large", at, l->oc, l->oh, l->ow);
			return -1;
		}
		l->out_flat = (l->type == L_FLATTEN || l->type == L_GAP || l->type == L_DENSE ||
					   l->type == L_SIDE) ? 1 : flat;
		l->w_off = np;
		np += l->nw;
		l->b_off = np;
		np += l->nb;
		if (l->type == L_BATCHNORM)
		{
			l->s_off = ns;
			ns += 2 * (size_t) c;
		}
		c = l->oc;
		h = l->oh;
		w = l->ow;
		flat = l->out_flat;
	}

	/* the network ends in one logit */
	{
		Layer	   *last = &net->layers[net->nlayers - 1];

		if (last->type != L_DENSE || last->units != 1)
		{
			where(last, net->nlayers - 1, at, sizeof(at));
			fail(e, "%s: the last layer must be a dense layer with 1 unit (the iceberg logit)", at);
			return -1;
		}
		if (last->act == ACT_RELU)
		{
			where(last, net->nlayers - 1, at, sizeof(at));
			fail(e, "%s: the last layer's activation must be \"sigmoid\" or \"linear\"", at);
			return -1;
		}
		net->final_sigmoid = 1;
	}
	for (int i = 0; i < net->nlayers; i++)
	{
		Layer	   *l = &net->layers[i];

		l->he_init = (l->act == ACT_RELU) ||
			(i + 1 < net->nlayers && net->layers[i + 1].type == L_RELU);
	}
	net->nparams = np;
	net->nstate = ns;
	return 0;
}

/*
 * Parse, check and infer shapes; with_params allocates the parameters too
 * (without, the net only describes itself: counts, shapes, canonical spec).
 */
static IcemlNet *
build(const char *spec_json, int with_params, char *err, size_t errlen)
{
	SpecError	e = {err, errlen};
	json_object *root = NULL,
			   *input,
			   *layers;
	enum json_tokener_error jerr;
	IcemlNet   *net = NULL;
	int			n;

	if (errlen > 0)
		err[0] = '\0';
	if (spec_json == NULL)
	{
		fail(&e, "the spec is NULL");
		return NULL;
	}
	root = json_tokener_parse_verbose(spec_json, &jerr);
	if (root == NULL)
	{
		fail(&e, "the spec is not valid JSON: %s", json_tokener_error_desc(jerr));
		return NULL;
	}
	if (!json_object_is_type(root, json_type_object))
	{
		fail(&e, "the spec must be a JSON object with \"input\" and \"layers\"");
		goto bad;
	}
	{
		json_object_object_foreach(root, key, val)
		{
			(void) val;
			if (strcmp(key, "input") != 0 && strcmp(key, "layers") != 0)
			{
				fail(&e, "unknown key \"%s\" in the spec (it has \"input\" and \"layers\")", key);
				goto bad;
			}
		}
	}
	if (!json_object_object_get_ex(root, "input", &input) ||
		!json_object_is_type(input, json_type_array) || json_object_array_length(input) != 3)
	{
		fail(&e, "\"input\" must be [channels, height, width]");
		goto bad;
	}
	if (!json_object_object_get_ex(root, "layers", &layers) ||
		!json_object_is_type(layers, json_type_array) || json_object_array_length(layers) == 0)
	{
		fail(&e, "\"layers\" must be a non-empty array");
		goto bad;
	}
	n = (int) json_object_array_length(layers);
	if (n > MAX_LAYERS)
	{
		fail(&e, "\"layers\" has %d layers; at most %d are supported", n, MAX_LAYERS);
		goto bad;
	}

	net = calloc(1, sizeof(IcemlNet));
	if (net != NULL)
		net->layers = calloc((size_t) n, sizeof(Layer));
	if (net == NULL || net->layers == NULL)
	{
		fail(&e, "out of memory");
		goto bad;
	}
	net->nlayers = n;
	net->side_layer = -1;
	if (get_int(json_object_array_get_idx(input, 0), "input", 1, 64, &net->c, "input channels", &e) < 0 ||
		get_int(json_object_array_get_idx(input, 1), "input", 1, MAX_DIM, &net->h, "input height", &e) < 0 ||
		get_int(json_object_array_get_idx(input, 2), "input", 1, MAX_DIM, &net->w, "input width", &e) < 0)
		goto bad;
	for (int i = 0; i < n; i++)
		if (parse_layer(json_object_array_get_idx(layers, i), i, &net->layers[i], net, &e) < 0)
			goto bad;
	if (infer_shapes(net, &e) < 0)
		goto bad;
	if (!with_params)
	{
		net->spec = nn_spec_canonical(net);
		if (net->spec == NULL)
		{
			fail(&e, "out of memory");
			goto bad;
		}
		json_object_put(root);
		return net;
	}

	net->params = calloc(net->nparams ? net->nparams : 1, sizeof(float));
	net->state = calloc(net->nstate ? net->nstate : 1, sizeof(float));
	net->mean = calloc((size_t) net->c, sizeof(float));
	net->std = calloc((size_t) net->c, sizeof(float));
	if (!net->params || !net->state || !net->mean || !net->std)
	{
		fail(&e, "out of memory for %zu parameters", net->nparams);
		goto bad;
	}
	for (int i = 0; i < net->c; i++)
		net->std[i] = 1.0f;
	/* batch norm starts as the identity: gamma 1, running variance 1 */
	for (int i = 0; i < n; i++)
	{
		Layer	   *l = &net->layers[i];

		if (l->type == L_BATCHNORM)
			for (int k = 0; k < l->ic; k++)
			{
				net->params[l->w_off + k] = 1.0f;
				net->state[l->s_off + l->ic + k] = 1.0f;
			}
	}
	net->spec = nn_spec_canonical(net);
	json_object_put(root);
	return net;

bad:
	json_object_put(root);
	iceml_net_free(net);
	return NULL;
}

/* A net's memory: what build() allocates, and the inference plan net.c adds. */
void
iceml_net_free(IcemlNet *net)
{
	if (net == NULL)
		return;
	nn_plan_free(net->infer);
	free(net->spec);
	free(net->layers);
	free(net->params);
	free(net->state);
	free(net->mean);
	free(net->std);
	free(net);
}

IcemlNet *
nn_build(const char *spec_json, char *err, size_t errlen)
{
	return build(spec_json, 1, err, errlen);
}

IcemlNet *
nn_build_shapes(const char *spec_json, char *err, size_t errlen)
{
	return build(spec_json, 0, err, errlen);
}
