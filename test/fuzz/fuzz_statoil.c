/*
 * fuzz_statoil.c - libFuzzer target: the streaming Statoil JSON reader
 * (src/eo/statoil_json.c), array and JSON-lines layouts, which reads the
 * files and documents given to iceml.ingest_statoil().
 *
 * The input is the document itself (the first non-blank byte decides the
 * layout, as in ingest).  It is read twice: in one piece, and through the
 * parse-thread pipeline; both must give the same sequence of records.
 * Oracles besides the sanitizers: every record has a status, bad records a
 * reason and an SQLSTATE, good records an id without NUL and finite bands,
 * and the reader ends (EOF or FATAL) within a bound of calls.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iceml_statoil.h"

typedef struct Seen
{
	StatoilStatus status;
	int64_t		recno;
	uint64_t	hash;
} Seen;

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * UINT64_C(1099511628211);
	return h;
}

static uint64_t
record_hash(const StatoilRecord *rec)
{
	uint64_t	h = UINT64_C(14695981039346656037);

	h = fnv(h, &rec->status, sizeof(rec->status));
	h = fnv(h, &rec->has_id, sizeof(rec->has_id));
	if (rec->has_id)
		h = fnv(h, rec->id, strlen(rec->id));
	h = fnv(h, rec->reason, strlen(rec->reason));
	if (rec->status == STATOIL_GOOD)
	{
		h = fnv(h, rec->band_1, sizeof(rec->band_1));
		h = fnv(h, rec->band_2, sizeof(rec->band_2));
		h = fnv(h, &rec->angle_null, sizeof(rec->angle_null));
		if (!rec->angle_null)
			h = fnv(h, &rec->angle_f, sizeof(rec->angle_f));
		h = fnv(h, &rec->label_null, sizeof(rec->label_null));
		if (!rec->label_null)
			h = fnv(h, &rec->label, sizeof(rec->label));
	}
	if (rec->status == STATOIL_BAD)
		h = fnv(h, rec->raw ? rec->raw : "", rec->raw_len);
	return h;
}

static void
check_record(const StatoilRecord *rec)
{
	switch (rec->status)
	{
		case STATOIL_GOOD:
			if (!rec->has_id || rec->id == NULL || rec->reason[0] != '\0')
				abort();
			for (int i = 0; i < STATOIL_BAND_LEN; i++)
				if (!isfinite(rec->band_1[i]) || !isfinite(rec->band_2[i]))
					abort();
			if (!rec->label_null && rec->label != 0 && rec->label != 1)
				abort();
			break;
		case STATOIL_BAD:
			if (rec->reason[0] == '\0' || rec->sqlstate == NULL || strlen(rec->sqlstate) != 5)
				abort();
			if (rec->has_id && rec->id == NULL)
				abort();
			if (rec->raw_len > STATOIL_RAW_MAX || (int64_t) rec->raw_len > rec->raw_bytes)
				abort();
			break;
		case STATOIL_FATAL:
			if (rec->reason[0] == '\0')
				abort();
			break;
		case STATOIL_EOF:
			break;
		default:
			abort();
	}
}

static int
read_all(const uint8_t *data, size_t size, Seen *seen, size_t maxseen)
{
	StatoilReader *r = statoil_reader_buffer((const char *) data, size);
	StatoilRecord *rec = calloc(1, sizeof(StatoilRecord));
	int			n = 0;

	if (r == NULL || rec == NULL)
		abort();
	for (;;)
	{
		StatoilStatus st = statoil_next(r, rec);

		if (st != rec->status)
			abort();
		check_record(rec);
		if ((size_t) n >= maxseen)
			abort();			/* more records than the bytes could hold */
		seen[n].status = st;
		seen[n].recno = rec->recno;
		seen[n].hash = record_hash(rec);
		n++;
		if (st == STATOIL_EOF || st == STATOIL_FATAL)
			break;
	}
	/* the end is sticky */
	if (seen[n - 1].status == STATOIL_EOF && statoil_next(r, rec) != STATOIL_EOF)
		abort();
	statoil_record_free(rec);
	free(rec);
	statoil_reader_free(r);
	return n;
}

static void
read_pipeline(const uint8_t *data, size_t size, const Seen *seen, int nseen)
{
	StatoilReader *r = statoil_reader_buffer((const char *) data, size);
	StatoilPipeline *pipe;
	int			n = 0;

	if (r == NULL)
		abort();
	pipe = statoil_pipeline_start(r, true);
	if (pipe == NULL)
		abort();
	for (;;)
	{
		StatoilRecord *rec = statoil_pipeline_next(pipe, 1000);
		StatoilStatus st;

		if (rec == NULL)
			continue;
		st = rec->status;
		if (n >= nseen || st != seen[n].status || record_hash(rec) != seen[n].hash ||
			((st == STATOIL_GOOD || st == STATOIL_BAD) && rec->recno != seen[n].recno))
		{
			fprintf(stderr, "the pipeline differs from the reader at record %d\n", n);
			abort();
		}
		n++;
		statoil_pipeline_release(pipe, rec);
		if (st == STATOIL_EOF || st == STATOIL_FATAL)
			break;
	}
	if (n != nseen)
		abort();
	if (!statoil_pipeline_stop(pipe, 10000))
		abort();
}

static bool
stop_now(void *arg)
{
	(void) arg;
	return true;
}

/* A stopped reader says so at once, whatever the input */
static void
read_stopped(const uint8_t *data, size_t size)
{
	StatoilReader *r = statoil_reader_buffer((const char *) data, size);
	StatoilRecord *rec = calloc(1, sizeof(StatoilRecord));

	if (r == NULL || rec == NULL)
		abort();
	statoil_reader_set_stop(r, stop_now, NULL);
	if (statoil_next(r, rec) != STATOIL_FATAL || rec->fatal != STATOIL_FATAL_STOPPED)
		abort();
	statoil_record_free(rec);
	free(rec);
	statoil_reader_free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a record takes at least one byte, plus the end */
	Seen	   *seen = malloc((size + 2) * sizeof(Seen));
	int			n;

	if (seen == NULL)
		return 0;
	n = read_all(data, size, seen, size + 2);
	/* the pipeline (a thread per input) on a sample: it costs a thread */
	if (size > 0 && data[size - 1] % 8 == 0)
		read_pipeline(data, size, seen, n);
	if (size > 0 && data[0] % 16 == 1)
		read_stopped(data, size);
	free(seen);
	return 0;
}
