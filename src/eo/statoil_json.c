/*
 * statoil_json.c - the streaming reader of the Kaggle Statoil/C-CORE JSON
 * layout, and the pipeline that runs it in a parse thread (see
 * include/iceml_statoil.h).
 *
 * Plain C on json-c and libc only: no PostgreSQL call may happen here, since
 * the reader runs in a thread beside the backend.  Errors are returned, never
 * raised; memory comes from malloc.
 *
 * Whatever the input, a call of statoil_next() ends: it reads at most
 * STATOIL_RECORD_MAX bytes of one record (skipping included) and asks the
 * stop function before every chunk it reads, so that an endless or
 * malicious input can always be stopped.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "iceml_statoil.h"

#define STATOIL_ID_MAX		200		/* bytes of an id read from raw text */
#define PIPELINE_SLOTS		4

typedef enum TopState
{
	TOP_START,					/* nothing read yet */
	TOP_ARRAY_FIRST,			/* after '[' */
	TOP_ARRAY_AFTER,			/* after a record of the array */
	TOP_LINES,					/* JSON lines: between records */
	TOP_DONE					/* the input is exhausted */
} TopState;

/* lone UTF-16 surrogates in \u escapes: the scan of a record's bytes */
typedef enum EscState
{
	ESC_PLAIN,					/* not after a backslash */
	ESC_BACKSLASH,				/* after a backslash */
	ESC_HEX,					/* in the 4 hex digits of \u */
	ESC_NEED_BACKSLASH,			/* after a high surrogate: "\" must follow */
	ESC_NEED_U					/* ... then "u" */
} EscState;

typedef struct EscScan
{
	EscState	state;
	int			nhex;
	unsigned	code;
	unsigned	high;			/* a high surrogate waiting for its low half */
	bool		bad;
	unsigned	bad_code;		/* the lone surrogate */
} EscScan;

struct StatoilReader
{
	int			fd;				/* -1 when reading a buffer */
	const char *doc;
	size_t		doc_len;
	size_t		doc_pos;
	char	   *chunk;
	const char *buf;
	size_t		len;
	size_t		pos;
	bool		eof;
	int			read_errno;
	bool		stopped;		/* the stop function said so */
	StatoilStopFn stop_fn;
	void	   *stop_arg;
	EscScan		esc;
	uint64_t	offset;			/* input bytes before buf */
	TopState	top;
	bool		lines;
	int64_t		nread;
	json_tokener *tok;
	json_object *obj;
};

/* ----------------------------------------------------------------
 * Input
 * ---------------------------------------------------------------- */

static StatoilReader *
reader_new(void)
{
	StatoilReader *r = calloc(1, sizeof(StatoilReader));

	if (r == NULL)
		return NULL;
	r->fd = -1;
	r->tok = json_tokener_new();
	if (r->tok == NULL)
	{
		free(r);
		return NULL;
	}
	json_tokener_set_flags(r->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	return r;
}

StatoilReader *
statoil_reader_fd(int fd)
{
	StatoilReader *r = reader_new();

	if (r == NULL)
	{
		close(fd);
		return NULL;
	}
	r->fd = fd;
	r->chunk = malloc(STATOIL_CHUNK_SIZE);
	if (r->chunk == NULL)
	{
		statoil_reader_free(r);
		return NULL;
	}
	return r;
}

void
statoil_reader_set_stop(StatoilReader *r, StatoilStopFn fn, void *arg)
{
	r->stop_fn = fn;
	r->stop_arg = arg;
}

StatoilReader *
statoil_reader_buffer(const char *data, size_t len)
{
	StatoilReader *r = reader_new();

	if (r == NULL)
		return NULL;
	r->doc = data;
	r->doc_len = len;
	return r;
}

void
statoil_reader_free(StatoilReader *r)
{
	if (r == NULL)
		return;
	if (r->obj)
		json_object_put(r->obj);
	if (r->tok)
		json_tokener_free(r->tok);
	if (r->fd >= 0)
		close(r->fd);
	free(r->chunk);
	free(r);
}

void
statoil_record_free(StatoilRecord *rec)
{
	free(rec->id);
	free(rec->raw);
	rec->id = rec->raw = NULL;
	rec->id_cap = rec->raw_cap = 0;
}

/* Make sure buf[pos] is valid; false at the end of the input (or on a read
 * error, then read_errno is set, or when stopped, then stopped is set). */
static bool
input_fill(StatoilReader *r)
{
	if (r->pos < r->len)
		return true;
	if (r->eof)
		return false;
	/* every loop of the reader comes here once per chunk */
	if (r->stop_fn && r->stop_fn(r->stop_arg))
	{
		r->stopped = true;
		r->eof = true;
		return false;
	}
	r->offset += r->len;
	r->pos = 0;
	if (r->fd >= 0)
	{
		ssize_t		n;

		do
			n = read(r->fd, r->chunk, STATOIL_CHUNK_SIZE);
		while (n < 0 && errno == EINTR);
		if (n < 0)
		{
			r->read_errno = errno ? errno : EIO;
			n = 0;
		}
		r->buf = r->chunk;
		r->len = (size_t) n;
	}
	else
	{
		size_t		n = r->doc_len - r->doc_pos;

		if (n > STATOIL_CHUNK_SIZE)
			n = STATOIL_CHUNK_SIZE;
		r->buf = r->doc + r->doc_pos;
		r->len = n;
		r->doc_pos += n;
	}
	if (r->len == 0)
	{
		r->eof = true;
		return false;
	}
	return true;
}

/* Skip blanks; the next byte, or -1 at the end of the input. */
static int
input_peek(StatoilReader *r)
{
	for (;;)
	{
		char		c;

		if (!input_fill(r))
			return -1;
		c = r->buf[r->pos];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			r->pos++;
		else
			return (unsigned char) c;
	}
}

static void
set_reason(StatoilRecord *rec, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
set_reason(StatoilRecord *rec, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(rec->reason, sizeof(rec->reason), fmt, ap);
	va_end(ap);
}

static StatoilStatus
fatal(StatoilReader *r, StatoilRecord *rec, StatoilFatal kind, const char *what)
{
	if (r->stopped)
	{
		/* what looked like the end of the input was a stop request */
		kind = STATOIL_FATAL_STOPPED;
		what = "stopped";
	}
	else if (r->read_errno)
	{
		/* what looked like the end of the input was a failed read */
		kind = STATOIL_FATAL_IO;
		what = "could not read the input";
	}
	rec->status = STATOIL_FATAL;
	rec->fatal = kind;
	rec->fatal_errno = (kind == STATOIL_FATAL_IO) ? r->read_errno : 0;
	rec->fatal_offset = r->offset + r->pos;
	snprintf(rec->reason, sizeof(rec->reason), "%s", what);
	r->top = TOP_DONE;
	return STATOIL_FATAL;
}

const char *
statoil_fatal_text(const StatoilRecord *rec)
{
	return rec->reason;
}

/* Keep the raw text of the record (its first STATOIL_RAW_MAX bytes) */
static bool
raw_append(StatoilRecord *rec, const char *p, size_t n)
{
	if (n == 0)
		return true;
	rec->raw_bytes += n;
	if (rec->raw_capped)
		return true;
	if (rec->raw_len + n > STATOIL_RAW_MAX)
	{
		n = STATOIL_RAW_MAX - rec->raw_len;
		rec->raw_capped = true;
	}
	if (rec->raw_len + n + 1 > rec->raw_cap)
	{
		size_t		cap = rec->raw_cap ? rec->raw_cap : 256 * 1024;
		char	   *nraw;

		while (cap < rec->raw_len + n + 1)
			cap *= 2;
		nraw = realloc(rec->raw, cap);
		if (nraw == NULL)
			return false;
		rec->raw = nraw;
		rec->raw_cap = cap;
	}
	memcpy(rec->raw + rec->raw_len, p, n);
	rec->raw_len += n;
	rec->raw[rec->raw_len] = '\0';
	return true;
}

static bool
set_id(StatoilRecord *rec, const char *id, size_t len)
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

/* How a skip of a malformed record ended */
typedef enum SkipResult
{
	SKIP_DONE,					/* at its end (or at the end of the input) */
	SKIP_NOMEM,
	SKIP_TOO_BIG,				/* no end within STATOIL_RECORD_MAX bytes */
	SKIP_UNSCANNABLE			/* its text was longer than the raw text keeps */
} SkipResult;

/* Lines mode: the rest of the current line belongs to a bad record */
static SkipResult
skip_rest_of_line(StatoilReader *r, StatoilRecord *rec)
{
	while (input_fill(r))
	{
		const char *start = r->buf + r->pos;
		const char *nl = memchr(start, '\n', r->len - r->pos);
		size_t		n = nl ? (size_t) (nl - start) : r->len - r->pos;

		if (!raw_append(rec, start, n))
			return SKIP_NOMEM;
		r->pos += n;
		if (nl)
			break;
		if (rec->raw_bytes > STATOIL_RECORD_MAX)
			return SKIP_TOO_BIG;
	}
	return SKIP_DONE;
}

/*
 * Array mode: find the end of a malformed record by counting brackets
 * outside strings, from the start of its raw text, then on in the input.
 */
typedef struct ValueScan
{
	int			depth;
	bool		in_string;
	bool		escape;
	bool		started;
	bool		done;
} ValueScan;

static size_t
value_scan(ValueScan *vs, const char *p, size_t n)
{
	size_t		i;

	for (i = 0; i < n && !vs->done; i++)
	{
		char		c = p[i];

		if (vs->in_string)
		{
			if (vs->escape)
				vs->escape = false;
			else if (c == '\\')
				vs->escape = true;
			else if (c == '"')
			{
				vs->in_string = false;
				if (vs->depth == 0)
					vs->done = true;
			}
			continue;
		}
		switch (c)
		{
			case '"':
				vs->in_string = true;
				vs->started = true;
				break;
			case '{':
			case '[':
				vs->depth++;
				vs->started = true;
				break;
			case '}':
			case ']':
				if (vs->depth == 0)
				{
					/* a scalar ended by the array's closing bracket */
					vs->done = true;
					return i;
				}
				if (--vs->depth == 0)
					vs->done = true;
				break;
			case ',':
			case ' ':
			case '\t':
			case '\r':
			case '\n':
				if (vs->depth == 0 && vs->started)
				{
					vs->done = true;
					return i;
				}
				break;
			default:
				vs->started = true;
				break;
		}
	}
	return i;
}

/*
 * The end of a malformed value of the array.  Too big when its text was more
 * than the raw text keeps (the scan needs it all) or when no end comes
 * within STATOIL_RECORD_MAX bytes.
 */
static SkipResult
skip_malformed_value(StatoilReader *r, StatoilRecord *rec)
{
	ValueScan	vs = {0};

	if (rec->raw_capped)
		return SKIP_UNSCANNABLE;
	(void) value_scan(&vs, rec->raw, rec->raw_len);
	while (!vs.done && input_fill(r))
	{
		size_t		n = value_scan(&vs, r->buf + r->pos, r->len - r->pos);

		if (!raw_append(rec, r->buf + r->pos, n))
			return SKIP_NOMEM;
		r->pos += n;
		if (!vs.done && rec->raw_bytes > STATOIL_RECORD_MAX)
			return SKIP_TOO_BIG;
	}
	return SKIP_DONE;
}

/* ----------------------------------------------------------------
 * One record: check and convert
 * ---------------------------------------------------------------- */

/* Best effort for a record that did not parse: the first "id" in its text */
static void
id_from_raw(StatoilRecord *rec)
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
				(void) set_id(rec, s, e - s);
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
		set_reason(rec, "\"%s\" is missing", key);
		return false;
	}
	if (json_object_get_type(arr) != json_type_array)
	{
		set_reason(rec, "\"%s\" must be an array of %d numbers, not a JSON %s",
				   key, STATOIL_BAND_LEN, json_type_text(arr));
		return false;
	}
	n = json_object_array_length(arr);
	if (n != STATOIL_BAND_LEN)
	{
		set_reason(rec, "\"%s\" has %zu values, not %d", key, n, STATOIL_BAND_LEN);
		return false;
	}
	for (size_t i = 0; i < n; i++)
	{
		const char *bad = number_to_float4(json_object_array_get_idx(arr, i), &out[i],
										   why, sizeof(why));

		if (bad)
		{
			set_reason(rec, "%s[%zu] %s", key, i, bad);
			return false;
		}
	}
	return true;
}

/* Check a parsed record and convert it; false with rec->reason if bad */
static bool
check_record(StatoilRecord *rec, json_object *obj)
{
	json_object *v;
	char		why[128];

	if (json_object_get_type(obj) != json_type_object)
	{
		set_reason(rec, "the record is a JSON %s, not an object", json_type_text(obj));
		return false;
	}
	if (!json_object_object_get_ex(obj, "id", &v))
	{
		set_reason(rec, "\"id\" is missing");
		return false;
	}
	if (json_object_get_type(v) != json_type_string)
	{
		set_reason(rec, "\"id\" must be a string, not a JSON %s", json_type_text(v));
		return false;
	}
	if (!set_id(rec, json_object_get_string(v), json_object_get_string_len(v)))
	{
		set_reason(rec, "out of memory");
		return false;
	}
	if (strlen(rec->id) != (size_t) json_object_get_string_len(v))
	{
		set_reason(rec, "\"id\" contains a NUL character");
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
				set_reason(rec, "\"inc_angle\" must be a number or \"na\", not the string \"%.40s\"",
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
				set_reason(rec, "\"inc_angle\" %s", bad);
				return false;
			}
			rec->angle = json_object_get_double(v);
			rec->angle_null = false;
		}
		else
		{
			set_reason(rec, "\"inc_angle\" must be a number or \"na\", not a JSON %s",
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
			set_reason(rec, "\"is_iceberg\" must be 0 or 1, not %.40s",
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
static void
esc_reset(EscScan *es)
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

static void
esc_scan(EscScan *es, const char *p, size_t n)
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

/* ----------------------------------------------------------------
 * The next record
 * ---------------------------------------------------------------- */

/* A record with no end in sight: the input cannot be read further */
static StatoilStatus
too_big(StatoilReader *r, StatoilRecord *rec)
{
	char		what[128];

	snprintf(what, sizeof(what), "record %lld is larger than %d bytes",
			 (long long) rec->recno, STATOIL_RECORD_MAX);
	return fatal(r, rec, STATOIL_FATAL_TOO_BIG, what);
}

static StatoilStatus
bad(StatoilReader *r, StatoilRecord *rec)
{
	(void) r;
	rec->status = STATOIL_BAD;
	rec->sqlstate = "22P02";
	if (!rec->has_id)
		id_from_raw(rec);
	return STATOIL_BAD;
}

/* After a record: where the array stands */
static void
after_record(StatoilReader *r)
{
	if (r->top == TOP_ARRAY_FIRST)
		r->top = TOP_ARRAY_AFTER;
}

static StatoilStatus
next_record(StatoilReader *r, StatoilRecord *rec)
{
	int			c;
	SkipResult	skip;

	if (r->obj)
	{
		json_object_put(r->obj);
		r->obj = NULL;
	}
	rec->has_id = false;
	rec->raw_len = 0;
	rec->raw_capped = false;
	rec->raw_bytes = 0;
	rec->reason[0] = '\0';
	rec->sqlstate = NULL;
	if (rec->raw)
		rec->raw[0] = '\0';

	/* the top level */
	for (;;)
	{
		switch (r->top)
		{
			case TOP_START:
				c = input_peek(r);
				/* a UTF-8 byte order mark */
				if (c == 0xEF && r->len - r->pos >= 3 &&
					memcmp(r->buf + r->pos, "\xEF\xBB\xBF", 3) == 0)
				{
					r->pos += 3;
					continue;
				}
				if (c == '[')
				{
					r->pos++;
					r->top = TOP_ARRAY_FIRST;
				}
				else
				{
					r->lines = true;
					r->top = TOP_LINES;
				}
				continue;
			case TOP_ARRAY_FIRST:
				c = input_peek(r);
				if (c == ']')
				{
					r->pos++;
					r->top = TOP_DONE;
					if (input_peek(r) != -1)
						return fatal(r, rec, STATOIL_FATAL_STRUCTURE, "unexpected text after the closing ']'");
					break;
				}
				if (c == -1)
					return fatal(r, rec, STATOIL_FATAL_STRUCTURE, "the input ends inside the top-level array");
				break;
			case TOP_ARRAY_AFTER:
				c = input_peek(r);
				if (c == ',')
				{
					r->pos++;
					c = input_peek(r);
					if (c == -1)
						return fatal(r, rec, STATOIL_FATAL_STRUCTURE, "the input ends inside the top-level array");
					if (c == ']')
						return fatal(r, rec, STATOIL_FATAL_STRUCTURE, "a ',' is followed by ']'");
					break;
				}
				if (c == ']')
				{
					r->pos++;
					r->top = TOP_DONE;
					if (input_peek(r) != -1)
						return fatal(r, rec, STATOIL_FATAL_STRUCTURE, "unexpected text after the closing ']'");
					break;
				}
				if (c == -1)
					return fatal(r, rec, STATOIL_FATAL_STRUCTURE,
								 "the input ends inside the top-level array (no closing ']')");
				{
					char		what[96];

					snprintf(what, sizeof(what), "expected ',' or ']' after record %lld, found '%c'",
							 (long long) r->nread - 1, c);
					return fatal(r, rec, STATOIL_FATAL_STRUCTURE, what);
				}
			case TOP_LINES:
				c = input_peek(r);
				if (c == -1)
					r->top = TOP_DONE;
				break;
			case TOP_DONE:
				break;
		}
		break;
	}
	if (r->read_errno || r->stopped)
		return fatal(r, rec, STATOIL_FATAL_IO, "could not read the input");
	if (r->top == TOP_DONE)
	{
		rec->status = STATOIL_EOF;
		return STATOIL_EOF;
	}

	/* one value, fed to the tokener chunk by chunk */
	rec->recno = r->nread++;
	json_tokener_reset(r->tok);
	esc_reset(&r->esc);
	for (;;)
	{
		const char *p = r->buf + r->pos;
		size_t		n = r->len - r->pos;
		const char *nl = NULL;
		size_t		used;
		enum json_tokener_error err;

		/* JSON lines: a record never extends past its line */
		if (r->lines && (nl = memchr(p, '\n', n)) != NULL)
			n = nl - p;

		r->obj = json_tokener_parse_ex(r->tok, p, (int) n);
		err = json_tokener_get_error(r->tok);
		used = json_tokener_get_parse_end(r->tok);
		if (!raw_append(rec, p, used))
			return fatal(r, rec, STATOIL_FATAL_NOMEM, "out of memory");
		esc_scan(&r->esc, p, used);
		r->pos += used;

		if (err == json_tokener_success)
			break;
		if (rec->raw_bytes > STATOIL_RECORD_MAX)
			return too_big(r, rec);
		if (err != json_tokener_continue)
		{
			set_reason(rec, "invalid JSON at byte %lld of the record: %s",
					   (long long) rec->raw_bytes, json_tokener_error_desc(err));
			skip = r->lines ? skip_rest_of_line(r, rec) : skip_malformed_value(r, rec);
			if (skip == SKIP_NOMEM)
				return fatal(r, rec, STATOIL_FATAL_NOMEM, "out of memory");
			if (skip == SKIP_TOO_BIG)
				return too_big(r, rec);
			if (skip == SKIP_UNSCANNABLE)
			{
				char		what[128];

				snprintf(what, sizeof(what),
						 "cannot find the end of malformed record %lld, larger than %d bytes",
						 (long long) rec->recno, STATOIL_RAW_MAX);
				return fatal(r, rec, STATOIL_FATAL_TOO_BIG, what);
			}
			after_record(r);
			return bad(r, rec);
		}
		/* the tokener wants more */
		if (nl || (r->pos >= r->len && !input_fill(r)))
		{
			if (r->read_errno || r->stopped)
				return fatal(r, rec, STATOIL_FATAL_IO, "could not read the input");
			/* end of the line or of the input: a number or null may end here */
			r->obj = json_tokener_parse_ex(r->tok, "", 1);
			if (json_tokener_get_error(r->tok) == json_tokener_success)
				break;
			set_reason(rec, "%s", nl ? "the line ends inside the record"
					   : "the input ends inside the record (truncated)");
			/* nothing follows a record truncated by the end of the input */
			if (!nl)
				r->top = TOP_DONE;
			else
				after_record(r);
			return bad(r, rec);
		}
	}

	after_record(r);
	if (r->esc.bad)
	{
		set_reason(rec, "a string has \\u%04x, half of a UTF-16 surrogate pair without its other half",
				   r->esc.bad_code);
		return bad(r, rec);
	}
	if (!check_record(rec, r->obj))
		return bad(r, rec);
	rec->status = STATOIL_GOOD;
	return STATOIL_GOOD;
}

StatoilStatus
statoil_next(StatoilReader *r, StatoilRecord *rec)
{
	StatoilStatus st = next_record(r, rec);

	/* a stop ends the input whatever the reader made of its last bytes */
	if (r->stopped && st != STATOIL_FATAL)
		st = fatal(r, rec, STATOIL_FATAL_STOPPED, "stopped");
	return st;
}

/* ----------------------------------------------------------------
 * The pipeline
 * ---------------------------------------------------------------- */

struct StatoilPipeline
{
	StatoilReader *reader;		/* owned: freed with the pipeline */
	bool		threaded;
	pthread_t	thread;
	pthread_mutex_t lock;
	pthread_cond_t filled;		/* a slot was filled, or the thread ended */
	pthread_cond_t freed;		/* a slot was released, or stop */
	bool		stop;			/* under lock; also read by pipeline_stopping() */
	bool		done;			/* the producer has returned EOF or FATAL */
	bool		exited;			/* the thread is about to return */
	bool		orphaned;		/* nobody waits: the thread frees everything */
	StatoilRecord slots[PIPELINE_SLOTS];
	int64_t		produced;		/* slots filled so far */
	int64_t		consumed;		/* slots handed to the consumer */
	int64_t		released;		/* slots given back */
};

static void
pipeline_free(StatoilPipeline *pipe)
{
	for (int i = 0; i < PIPELINE_SLOTS; i++)
		statoil_record_free(&pipe->slots[i]);
	statoil_reader_free(pipe->reader);
	pthread_mutex_destroy(&pipe->lock);
	pthread_cond_destroy(&pipe->filled);
	pthread_cond_destroy(&pipe->freed);
	free(pipe);
}

/* The reader's stop function in the parse thread, asked once per chunk */
static bool
pipeline_stopping(void *arg)
{
	StatoilPipeline *pipe = arg;

	return __atomic_load_n(&pipe->stop, __ATOMIC_ACQUIRE);
}

static void *
pipeline_main(void *arg)
{
	StatoilPipeline *pipe = arg;
	bool		orphaned;

	for (;;)
	{
		StatoilRecord *rec;
		StatoilStatus st;

		pthread_mutex_lock(&pipe->lock);
		while (!pipe->stop && pipe->produced - pipe->released >= PIPELINE_SLOTS)
			pthread_cond_wait(&pipe->freed, &pipe->lock);
		if (pipe->stop)
		{
			pthread_mutex_unlock(&pipe->lock);
			break;
		}
		rec = &pipe->slots[pipe->produced % PIPELINE_SLOTS];
		pthread_mutex_unlock(&pipe->lock);

		st = statoil_next(pipe->reader, rec);

		pthread_mutex_lock(&pipe->lock);
		pipe->produced++;
		if (st == STATOIL_EOF || st == STATOIL_FATAL)
			pipe->done = true;
		pthread_cond_signal(&pipe->filled);
		pthread_mutex_unlock(&pipe->lock);
		if (st == STATOIL_EOF || st == STATOIL_FATAL)
			break;
	}

	pthread_mutex_lock(&pipe->lock);
	pipe->exited = true;
	orphaned = pipe->orphaned;
	pthread_cond_broadcast(&pipe->filled);
	pthread_mutex_unlock(&pipe->lock);
	if (orphaned)
		pipeline_free(pipe);
	return NULL;
}

StatoilPipeline *
statoil_pipeline_start(StatoilReader *reader, bool threaded)
{
	StatoilPipeline *pipe = calloc(1, sizeof(StatoilPipeline));

	if (pipe == NULL)
	{
		statoil_reader_free(reader);
		return NULL;
	}
	pipe->reader = reader;
	pipe->threaded = threaded;
	pthread_mutex_init(&pipe->lock, NULL);
	pthread_cond_init(&pipe->filled, NULL);
	pthread_cond_init(&pipe->freed, NULL);
	if (threaded)
	{
		sigset_t	all;
		sigset_t	old;
		int			rc;

		statoil_reader_set_stop(reader, pipeline_stopping, pipe);
		/* the backend's signals must reach the backend's thread only */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&pipe->thread, NULL, pipeline_main, pipe);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != 0)
		{
			/* parse on demand instead */
			pipe->threaded = false;
			statoil_reader_set_stop(reader, NULL, NULL);
		}
	}
	return pipe;
}

/* An absolute CLOCK_REALTIME time ms milliseconds from now */
static struct timespec
deadline_in(int ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long) (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L)
	{
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

StatoilRecord *
statoil_pipeline_next(StatoilPipeline *pipe, int timeout_ms)
{
	StatoilRecord *rec;
	struct timespec deadline;

	if (!pipe->threaded)
	{
		/* one slot, parsed on demand */
		rec = &pipe->slots[0];
		if (pipe->done)
			return rec;			/* EOF or FATAL again */
		if (statoil_next(pipe->reader, rec) != STATOIL_GOOD &&
			(rec->status == STATOIL_EOF || rec->status == STATOIL_FATAL))
			pipe->done = true;
		return rec;
	}
	deadline = deadline_in(timeout_ms);
	pthread_mutex_lock(&pipe->lock);
	while (pipe->consumed >= pipe->produced)
	{
		if (pthread_cond_timedwait(&pipe->filled, &pipe->lock, &deadline) == ETIMEDOUT &&
			pipe->consumed >= pipe->produced)
		{
			pthread_mutex_unlock(&pipe->lock);
			return NULL;
		}
	}
	rec = &pipe->slots[pipe->consumed % PIPELINE_SLOTS];
	/* the last record (EOF or FATAL) is handed out again and again */
	if (!(pipe->done && pipe->consumed + 1 == pipe->produced))
		pipe->consumed++;
	else
		pipe->consumed = pipe->produced - 1;
	pthread_mutex_unlock(&pipe->lock);
	return rec;
}

void
statoil_pipeline_release(StatoilPipeline *pipe, StatoilRecord *rec)
{
	if (!pipe->threaded || rec->status == STATOIL_EOF || rec->status == STATOIL_FATAL)
		return;
	pthread_mutex_lock(&pipe->lock);
	pipe->released++;
	pthread_cond_signal(&pipe->freed);
	pthread_mutex_unlock(&pipe->lock);
}

bool
statoil_pipeline_stop(StatoilPipeline *pipe, int timeout_ms)
{
	struct timespec deadline;
	bool		exited;

	if (pipe == NULL)
		return true;
	if (!pipe->threaded)
	{
		pipeline_free(pipe);
		return true;
	}
	deadline = deadline_in(timeout_ms);
	pthread_mutex_lock(&pipe->lock);
	__atomic_store_n(&pipe->stop, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&pipe->freed);
	while (!pipe->exited)
		if (pthread_cond_timedwait(&pipe->filled, &pipe->lock, &deadline) == ETIMEDOUT)
			break;
	exited = pipe->exited;
	if (!exited)
		pipe->orphaned = true;
	pthread_mutex_unlock(&pipe->lock);
	if (!exited)
	{
		/* the thread frees the pipeline and the reader when it returns */
		pthread_detach(pipe->thread);
		return false;
	}
	pthread_join(pipe->thread, NULL);
	pipeline_free(pipe);
	return true;
}
