/*
 * spec_canonical.c - a net's spec written back in canonical form: every
 * layer with all its options, defaults filled in, so that two specs that
 * build the same net read the same (models and architectures store it).
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "nn_internal.h"

char *
nn_spec_canonical(const IcemlNet *net)
{
	json_object *root = json_object_new_object();
	json_object *input = json_object_new_array();
	json_object *layers = json_object_new_array();
	static const char *const acts[] = {"linear", "relu", "sigmoid"};
	char	   *out;

	json_object_array_add(input, json_object_new_int(net->c));
	json_object_array_add(input, json_object_new_int(net->h));
	json_object_array_add(input, json_object_new_int(net->w));
	json_object_object_add(root, "input", input);
	for (int i = 0; i < net->nlayers; i++)
	{
		const Layer *l = &net->layers[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "type", json_object_new_string(nn_layer_type_names[l->type]));
		if (l->name[0])
			json_object_object_add(o, "name", json_object_new_string(l->name));
		if (l->group[0])
			json_object_object_add(o, "group", json_object_new_string(l->group));
		switch (l->type)
		{
			case L_CONV:
				json_object_object_add(o, "filters", json_object_new_int(l->filters));
				if (l->kh == l->kw)
					json_object_object_add(o, "kernel", json_object_new_int(l->kh));
				else
				{
					json_object *k = json_object_new_array();

					json_object_array_add(k, json_object_new_int(l->kh));
					json_object_array_add(k, json_object_new_int(l->kw));
					json_object_object_add(o, "kernel", k);
				}
				json_object_object_add(o, "stride", json_object_new_int(l->stride));
				json_object_object_add(o, "padding", json_object_new_string(l->same ? "same" : "valid"));
				json_object_object_add(o, "activation", json_object_new_string(acts[l->act]));
				break;
			case L_POOL:
				if (l->kh == l->kw)
					json_object_object_add(o, "size", json_object_new_int(l->kh));
				else
				{
					json_object *k = json_object_new_array();

					json_object_array_add(k, json_object_new_int(l->kh));
					json_object_array_add(k, json_object_new_int(l->kw));
					json_object_object_add(o, "size", k);
				}
				json_object_object_add(o, "stride", json_object_new_int(l->stride));
				break;
			case L_DENSE:
				json_object_object_add(o, "units", json_object_new_int(l->units));
				json_object_object_add(o, "activation", json_object_new_string(acts[l->act]));
				break;
			case L_DROPOUT:
				json_object_object_add(o, "rate", json_object_new_double((double) l->rate));
				break;
			case L_BATCHNORM:
				json_object_object_add(o, "momentum", json_object_new_double((double) l->bn_momentum));
				json_object_object_add(o, "epsilon", json_object_new_double((double) l->bn_epsilon));
				break;
			case L_SIDE:
				{
					json_object *names = json_object_new_array();

					for (int k = 0; k < net->nside; k++)
						json_object_array_add(names, json_object_new_string(net->side_name[k]));
					json_object_object_add(o, "inputs", names);
					break;
				}
			default:
				break;
		}
		json_object_array_add(layers, o);
	}
	json_object_object_add(root, "layers", layers);
	out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return out;
}
