/*
 * statoil_record.c - one record of the Statoil/C-CORE JSON layout: its id,
 * bands, angle and label checked and converted the way PostgreSQL would
 * read them, and the scan for lone UTF-16 surrogates that json-c accepts.
 *
 * Plain C on json-c and libc only (it runs in the parse thread).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "iceml_statoil.h"
#include "statoil_internal.h"

/* the reason a record is bad, for the caller's message */
void
statoil_set_reason(StatoilRecord *rec, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(rec->reason, sizeof(rec->reason), fmt, ap);
	va_end(ap);
}

bool
statoil_set_id(StatoilRecord *rec, const char *id, size_t len)
{
	if (len + 1 > rec->id_cap)
	{
		size_t		cap = len + 64;
		char	   *nid = realloc(rec->id, cap);

		if (nid == NULL)
			return false;
		rec->id = nid;
		rec->id_cap = cap;
	}
	memcpy(rec->id, id, len);
	rec->id[len] = '\0';
	rec->has_id = true;
	return true;
}

/* ----------------------------------------------------------------
 * One record: check and convert
 * ---------------------------------------------------------------- */

/* Best effort for a record that did not parse: the first "id" in its text */
void
statoil_id_from_raw(StatoilRecord *rec)
{
	const char *p = rec->raw;
	const char *end;

	/* nothing kept yet (a record bad from its first byte): no id */
	if (p == NULL)
		return;
	end = p + rec->raw_len;
	while (p < end)
	{
		const char *k = memchr(p, '"', end - p);
		const char *q;

		if (k == NULL || end - k < 4)
			return;
		if (strncmp(k, "\"id\"", 4) != 0)
		{
			p = k + 1;
			continue;
		}
		q = k + 4;
		while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
			q++;
		if (q >= end || *q != ':')
		{
			p = k + 1;
			continue;
		}
		q++;
		while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
			q++;
		if (q < end && *q == '"')
		{
			const char *s = q + 1;
			const char *e = s;

			while (e < end && *e != '"' && *e != '\\' && e - s < STATOIL_ID_MAX)
				e++;
			if (e < end && *e == '"')
				(void) statoil_set_id(rec, s, e - s);
		}
		return;
	}
}

static const char *
json_type_text(json_object *v)
{
	switch (json_object_get_type(v))
	{
		case json_type_null:
			return "null";
		case json_type_boolean:
			return "boolean";
		case json_type_double:
		case json_type_int:
			return "number";
		case json_type_object:
			return "object";
		case json_type_array:
			return "array";
		case json_type_string:
			return "string";
	}
	return "value";
}

/*
 * The float4 of a JSON number, as PostgreSQL's float4in() reads its text.
 * json-c parses the text with strtod(); rounding that double to float is
 * exact unless the double lies exactly halfway between two floats (double
 * rounding), in which case the number's text is read again with strtof().
 * NULL on success, else why not (in buf).
 */
static const char *
number_to_float4(json_object *v, float *out, char *buf, size_t bufsize)
{
	double		d;
	float		f;
	uint64_t	bits;

	if (json_object_get_type(v) == json_type_int)
	{
		*out = (float) json_object_get_int64(v);
		return NULL;
	}
	if (json_object_get_type(v) != json_type_double)
	{
		snprintf(buf, bufsize, "is a JSON %s, not a number", json_type_text(v));
		return buf;
	}
	d = json_object_get_double(v);
	if (isnan(d) || isinf(d))
	{
		snprintf(buf, bufsize, "is not a finite number (%.40s)", json_object_get_string(v));
		return buf;
	}
	f = (float) d;
	memcpy(&bits, &d, sizeof(bits));
	if ((bits & UINT64_C(0x1FFFFFFF)) == UINT64_C(0x10000000))
		f = strtof(json_object_get_string(v), NULL);
	if (isinf(f))
	{
		snprintf(buf, bufsize, "(%.40s) is out of range for type real", json_object_get_string(v));
		return buf;
	}
	*out = f;
	return NULL;
}

static bool
read_band(StatoilRecord *rec, json_object *obj, const char *key, float *out)
{
	json_object *arr;
	size_t		n;
	char		why[128];

	if (!json_object_object_get_ex(obj, key, &arr))
	{
		statoil_set_reason(rec, "\"%s\" is missing", key);
		return false;
	}
	if (json_object_get_type(arr) != json_type_array)
	{
		statoil_set_reason(rec, "\"%s\" must be an array of %d numbers, not a JSON %s",
				   key, STATOIL_BAND_LEN, json_type_text(arr));
		return false;
	}
	n = json_object_array_length(arr);
	if (n != STATOIL_BAND_LEN)
	{
		statoil_set_reason(rec, "\"%s\" has %zu values, not %d", key, n, STATOIL_BAND_LEN);
		return false;
	}
	for (size_t i = 0; i < n; i++)
	{
		const char *bad = number_to_float4(json_object_array_get_idx(arr, i), &out[i],
										   why, sizeof(why));

		if (bad)
		{
			statoil_set_reason(rec, "%s[%zu] %s", key, i, bad);
			return false;
		}
	}
	return true;
}

/* Check a parsed record and convert it; false with rec->reason if bad */
bool
statoil_check_record(StatoilRecord *rec, json_object *obj)
{
	json_object *v;
	char		why[128];

	if (json_object_get_type(obj) != json_type_object)
	{
		statoil_set_reason(rec, "the record is a JSON %s, not an object", json_type_text(obj));
		return false;
	}
	if (!json_object_object_get_ex(obj, "id", &v))
	{
		statoil_set_reason(rec, "\"id\" is missing");
		return false;
	}
	if (json_object_get_type(v) != json_type_string)
	{
		statoil_set_reason(rec, "\"id\" must be a string, not a JSON %s", json_type_text(v));
		return false;
	}
	if (!statoil_set_id(rec, json_object_get_string(v), json_object_get_string_len(v)))
	{
		statoil_set_reason(rec, "out of memory");
		return false;
	}
	if (strlen(rec->id) != (size_t) json_object_get_string_len(v))
	{
		statoil_set_reason(rec, "\"id\" contains a NUL character");
		return false;
	}

	if (!read_band(rec, obj, "band_1", rec->band_1) ||
		!read_band(rec, obj, "band_2", rec->band_2))
		return false;

	rec->angle_null = true;
	if (json_object_object_get_ex(obj, "inc_angle", &v) &&
		json_object_get_type(v) != json_type_null)
	{
		if (json_object_get_type(v) == json_type_string)
		{
			if (strcmp(json_object_get_string(v), "na") != 0)
			{
				statoil_set_reason(rec, "\"inc_angle\" must be a number or \"na\", not the string \"%.40s\"",
						   json_object_get_string(v));
				return false;
			}
		}
		else if (json_object_get_type(v) == json_type_int ||
				 json_object_get_type(v) == json_type_double)
		{
			const char *bad = number_to_float4(v, &rec->angle_f, why, sizeof(why));

			if (bad)
			{
				statoil_set_reason(rec, "\"inc_angle\" %s", bad);
				return false;
			}
			rec->angle = json_object_get_double(v);
			rec->angle_null = false;
		}
		else
		{
			statoil_set_reason(rec, "\"inc_angle\" must be a number or \"na\", not a JSON %s",
					   json_type_text(v));
			return false;
		}
	}

	rec->label_null = true;
	if (json_object_object_get_ex(obj, "is_iceberg", &v) &&
		json_object_get_type(v) != json_type_null)
	{
		int64_t		l = 0;

		if (json_object_get_type(v) != json_type_int ||
			((l = json_object_get_int64(v)) != 0 && l != 1))
		{
			statoil_set_reason(rec, "\"is_iceberg\" must be 0 or 1, not %.40s",
					   json_object_get_string(v));
			return false;
		}
		rec->label = (int) l;
		rec->label_null = false;
	}
	return true;
}

/*
 * json-c turns a lone UTF-16 surrogate escape (\ud800 not followed by a low
 * half, or \udc00 alone) into U+FFFD, so that different ids would become
 * the same one.  The bytes of each record go through this scan as they go to
 * the tokener; a lone surrogate makes the record bad.  A backslash outside
 * strings is a syntax error the tokener reports itself.
 */
void
statoil_esc_reset(EscScan *es)
{
	memset(es, 0, sizeof(*es));
}

static void
esc_lone(EscScan *es, unsigned code)
{
	if (!es->bad)
	{
		es->bad = true;
		es->bad_code = code;
	}
	es->high = 0;
	es->state = ESC_PLAIN;
}

void
statoil_esc_scan(EscScan *es, const char *p, size_t n)
{
	const char *end = p + n;

	while (p < end)
	{
		char		c;

		if (es->state == ESC_PLAIN)
		{
			p = memchr(p, '\\', end - p);
			if (p == NULL)
				return;
			es->state = ESC_BACKSLASH;
			p++;
			continue;
		}
		c = *p++;
		switch (es->state)
		{
			case ESC_PLAIN:
				break;
			case ESC_BACKSLASH:
				if (c == 'u')
				{
					es->state = ESC_HEX;
					es->nhex = 0;
					es->code = 0;
				}
				else
					es->state = ESC_PLAIN;
				break;
			case ESC_NEED_BACKSLASH:
				if (c == '\\')
					es->state = ESC_NEED_U;
				else
					esc_lone(es, es->high);
				break;
			case ESC_NEED_U:
				if (c == 'u')
				{
					es->state = ESC_HEX;
					es->nhex = 0;
					es->code = 0;
				}
				else
					esc_lone(es, es->high);
				break;
			case ESC_HEX:
				{
					int			v;

					if (c >= '0' && c <= '9')
						v = c - '0';
					else if (c >= 'a' && c <= 'f')
						v = c - 'a' + 10;
					else if (c >= 'A' && c <= 'F')
						v = c - 'A' + 10;
					else
					{
						/* not an escape: the tokener refuses it */
						es->state = ESC_PLAIN;
						es->high = 0;
						break;
					}
					es->code = es->code * 16 + (unsigned) v;
					if (++es->nhex < 4)
						break;
					es->state = ESC_PLAIN;
					if (es->high)
					{
						if (es->code >= 0xDC00 && es->code <= 0xDFFF)
							es->high = 0;	/* a pair */
						else
							esc_lone(es, es->high);
					}
					else if (es->code >= 0xD800 && es->code <= 0xDBFF)
					{
						es->high = es->code;
						es->state = ESC_NEED_BACKSLASH;
					}
					else if (es->code >= 0xDC00 && es->code <= 0xDFFF)
						esc_lone(es, es->code);
				}
				break;
		}
	}
}
