/*
 * iceml_statoil.h - the streaming reader of the Kaggle Statoil/C-CORE JSON
 * layout (src/eo/statoil_json.c), in plain C: no PostgreSQL headers, so that it
 * can run in a thread of its own beside the backend's COPY (see
 * src/ingest/ingest.c) and be tested as plain C.
 *
 * The input, a file descriptor or a memory buffer, is a JSON array of records or JSON
 * lines (the first non-blank byte decides: '[' is an array).  It is read in
 * 64 KiB chunks and fed to json-c's incremental tokener one record at a time;
 * each record comes out checked and converted (bands as float, the "na"
 * angle as NULL), or as a bad record with the reason, or as a fatal error of
 * the input's structure.  Memory stays flat whatever the size of the input.
 */
#ifndef ICEML_STATOIL_H
#define ICEML_STATOIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "iceml_synth.h"		/* ICEML_CHIP_PIXELS */

#define STATOIL_BAND_LEN	ICEML_CHIP_PIXELS	/* 5625 */
#define STATOIL_CHUNK_SIZE	(64 * 1024)

/*
 * The most bytes one record may take, skipping a malformed one included: an
 * input with no end of record in sight (a device, an enormous string, a
 * line that never ends) is refused after this many, not read forever.  A
 * Statoil record is about 200 kB.
 */
#define STATOIL_RECORD_MAX	(16 * 1024 * 1024)

/*
 * The raw text kept of a record (for the quarantine, and for the id of a
 * record that does not parse): its first STATOIL_RAW_MAX bytes.
 */
#define STATOIL_RAW_MAX		(1024 * 1024)

typedef enum StatoilStatus
{
	STATOIL_GOOD,				/* a record, checked and converted */
	STATOIL_BAD,				/* a bad record: reason, raw text */
	STATOIL_EOF,				/* the input is exhausted */
	STATOIL_FATAL				/* the input cannot be read further */
} StatoilStatus;

typedef enum StatoilFatal
{
	STATOIL_FATAL_STRUCTURE,	/* the array's or lines' structure is broken */
	STATOIL_FATAL_TOO_BIG,		/* a malformed record too big to skip */
	STATOIL_FATAL_IO,			/* reading failed: fatal_errno */
	STATOIL_FATAL_NOMEM,		/* out of memory */
	STATOIL_FATAL_STOPPED		/* the stop function asked to stop */
} StatoilFatal;

typedef struct StatoilRecord
{
	StatoilStatus status;
	int64_t		recno;			/* 0-based position in the input */

	/* the id (NULL when the record has none that could be read) */
	char	   *id;
	size_t		id_cap;
	bool		has_id;

	/* the record's text as it was in the input, up to STATOIL_RAW_MAX */
	char	   *raw;
	size_t		raw_len;
	size_t		raw_cap;
	bool		raw_capped;
	int64_t		raw_bytes;		/* its whole size */

	/* STATOIL_BAD: why, and the SQLSTATE it stands for */
	char		reason[384];
	const char *sqlstate;

	/* STATOIL_FATAL */
	StatoilFatal fatal;
	int			fatal_errno;
	uint64_t	fatal_offset;	/* byte offset in the input */

	/* STATOIL_GOOD */
	float		band_1[STATOIL_BAND_LEN];
	float		band_2[STATOIL_BAND_LEN];
	bool		angle_null;
	double		angle;			/* the JSON number as a double */
	float		angle_f;		/* ... and as the float4 of its text */
	bool		label_null;
	int			label;
} StatoilRecord;

typedef struct StatoilReader StatoilReader;

/* A reader of an open file descriptor (the reader owns it and closes it,
 * even when it returns NULL) or of a buffer that stays valid while the
 * reader is used; NULL when out of memory. */
extern StatoilReader *statoil_reader_fd(int fd);
extern StatoilReader *statoil_reader_buffer(const char *data, size_t len);
extern void statoil_reader_free(StatoilReader *reader);

/*
 * The reader calls fn(arg) before it reads each chunk (64 KiB), whatever it
 * is doing, even skipping a malformed record; when fn returns true, the
 * reader stops: statoil_next() returns STATOIL_FATAL_STOPPED.  fn may also
 * leave by longjmp (the backend's CHECK_FOR_INTERRUPTS when it parses in its
 * own thread): the reader and record may then only be freed.
 */
typedef bool (*StatoilStopFn) (void *arg);
extern void statoil_reader_set_stop(StatoilReader *reader, StatoilStopFn fn, void *arg);

/* The next record into *rec (whose buffers are reused); returns its status. */
extern StatoilStatus statoil_next(StatoilReader *reader, StatoilRecord *rec);

/* Frees the buffers of a record. */
extern void statoil_record_free(StatoilRecord *rec);

/*
 * A pipeline: a parse thread runs statoil_next() ahead of the consumer into
 * a small ring of records (or, with threaded = false, the consumer parses
 * on demand, with the same results).  The thread blocks all signals and
 * calls nothing but libc and json-c.  The pipeline owns the reader (also
 * when start fails) and, threaded, sets its stop function.
 */
typedef struct StatoilPipeline StatoilPipeline;

extern StatoilPipeline *statoil_pipeline_start(StatoilReader *reader, bool threaded);
/* The next record, in input order; valid until statoil_pipeline_release().
 * NULL when the parse thread has none ready within timeout_ms (so that the
 * caller can look at its interrupts and ask again). */
extern StatoilRecord *statoil_pipeline_next(StatoilPipeline *pipe, int timeout_ms);
extern void statoil_pipeline_release(StatoilPipeline *pipe, StatoilRecord *rec);
/*
 * Stops the thread, whatever it is doing (it notices within a chunk), and
 * frees everything, the reader included.  Waits at most timeout_ms for the
 * thread: if it has not ended by then, it is detached and frees everything
 * itself when it ends (false is returned), so the caller never waits
 * unboundedly.
 */
extern bool statoil_pipeline_stop(StatoilPipeline *pipe, int timeout_ms);

/* The text of a fatal error, for messages. */
extern const char *statoil_fatal_text(const StatoilRecord *rec);

#endif							/* ICEML_STATOIL_H */
