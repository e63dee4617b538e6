/*
 * ingest_internal.h - the state of one iceml.ingest_statoil() call, shared by
 * ingest.c (the SQL function), ingest_copy.c (binary COPY encoding and the
 * load), ingest_records.c (records, quarantine, errors naming a record) and
 * ingest_target.c (the target's columns, duplicate ids, the quarantine
 * write).  Not for use outside these files.
 */
#ifndef ICEML_INGEST_INTERNAL_H
#define ICEML_INGEST_INTERNAL_H

#include "access/genam.h"
#include "commands/copy.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "parser/parse_node.h"
#include "utils/hsearch.h"
#include "utils/rel.h"
#include "utils/snapshot.h"
#include "utils/tuplestore.h"

#include "iceml_statoil.h"



#define INGEST_BAND_LEN		STATOIL_BAND_LEN	/* 5625 values per band */
#define INGEST_RING			16	/* records remembered for COPY-time errors */
#define INGEST_ID_MAX		200 /* bytes of an id quoted in messages */
#define INGEST_WAIT_MS		100 /* the longest wait for the parse thread between interrupt checks */
#define INGEST_STOP_WAIT_MS	5000	/* the longest wait for the thread to stop */

typedef enum RecordResult
{
	REC_EOF,
	REC_GOOD,
	REC_BAD
} RecordResult;

/* What COPY-time errors and the reject hook need to know of a record */
typedef struct RingSlot
{
	int64		tupleno;		/* 1-based COPY tuple number, 0 if unused */
	int64		recno;			/* 0-based record number in the input */
	StringInfoData id;
	StringInfoData raw;			/* quarantine mode only */
	bool		raw_capped;
	int64		raw_bytes;
} RingSlot;

typedef struct IdEntry
{
	char	   *id;				/* key: pointer to the id string */
	int64		recno;
} IdEntry;

typedef struct IngestState
{
	/* target */
	Relation	rel;
	Oid			relid;
	char	   *relname;		/* qualified, for messages */
	bool		quarantine;
	Oid			angle_type;		/* FLOAT4OID, FLOAT8OID or InvalidOid */
	Oid			label_type;		/* INT2OID, INT4OID, INT8OID, BOOLOID or InvalidOid */
	bool		has_avg;
	int16		nfields;

	/* input: the reader, run by the pipeline (in a thread of its own) */
	int			fd;				/* the server file (transient), else -1 */
	const char *path;
	const char *doc;
	size_t		doc_len;
	StatoilPipeline *pipe;		/* owns the reader */
	StatoilRecord *rec;			/* the record being processed */

	/* the current record */
	int64		recno;
	const char *cur_id;
	const char *reason;
	const char *sqlstate;
	float	   *avg;

	/* COPY */
	CopyFromState cstate;
	StringInfoData out;
	int			out_pos;
	bool		header_sent;
	bool		finished;
	int64		ntuples;
	RingSlot	ring[INGEST_RING];
	ErrorContextCallback errcb;
	ErrorContextCallback *outer_stack;

	/* duplicates */
	HTAB	   *ids;
	MemoryContext idcxt;
	Relation	idxrel;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	Oid			eqproc;
	Oid			collation;
	SnapshotData dirty;			/* of the index probes */
	MemoryContext scancxt;		/* where the probe scan lives */

	/* results */
	int64		nread;
	int64		nquarantined;
	Tuplestorestate *qstore;
	TupleDesc	qdesc;
} IngestState;


/* ingest_records.c: records */
extern RecordResult NextRecord(IngestState *st);
extern void BadRecord(IngestState *st);
extern bool IngestStopCheck(void *arg);
extern void IngestRejectHook(Oid relid, HeapTuple tuple, const char *reason, void *arg);
extern void IngestErrorCallback(void *arg);

/* ingest_target.c: the target table */
extern AttrNumber FindColumn(TupleDesc desc, const char *name);
extern List *MapColumns(IngestState *st);
extern void SetupDuplicateCheck(IngestState *st);
extern void CloseDuplicateCheck(IngestState *st);
extern void WriteQuarantine(IngestState *st);

/* ingest_copy.c: the load */
extern uint64 RunCopy(IngestState *st, ParseState *pstate, List *cols);

#endif							/* ICEML_INGEST_INTERNAL_H */
