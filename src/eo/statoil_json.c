/*
 * statoil_json.c - the streaming reader of the Kaggle Statoil/C-CORE JSON
 * layout: input, record boundaries and recovery after malformed records
 * (see include/iceml_statoil.h).  statoil_record.c checks and converts one
 * record; statoil_pipeline.c runs the reader in a parse thread.
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
#include "statoil_internal.h"


typedef enum TopState
{
	TOP_START,					/* nothing read yet */
	TOP_ARRAY_FIRST,			/* after '[' */
	TOP_ARRAY_AFTER,			/* after a record of the array */
	TOP_LINES,					/* JSON lines: between records */
	TOP_DONE					/* the input is exhausted */
} TopState;

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
		statoil_id_from_raw(rec);
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
	statoil_esc_reset(&r->esc);
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
		statoil_esc_scan(&r->esc, p, used);
		r->pos += used;

		if (err == json_tokener_success)
			break;
		if (rec->raw_bytes > STATOIL_RECORD_MAX)
			return too_big(r, rec);
		if (err != json_tokener_continue)
		{
			statoil_set_reason(rec, "invalid JSON at byte %lld of the record: %s",
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
			statoil_set_reason(rec, "%s", nl ? "the line ends inside the record"
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
		statoil_set_reason(rec, "a string has \\u%04x, half of a UTF-16 surrogate pair without its other half",
				   r->esc.bad_code);
		return bad(r, rec);
	}
	if (!statoil_check_record(rec, r->obj))
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
