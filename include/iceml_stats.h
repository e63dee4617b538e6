/*
 * iceml_stats.h - the accumulators of iceml.compute_statistics
 * (src/featurestore/statistics.c), shared with the sharded statistics of src/shard/shard.c:
 * a node summarises its shard into mergeable state (moments, range,
 * HyperLogLog registers) and exact histograms over the coordinator's range.
 */
#ifndef ICEML_STATS_H
#define ICEML_STATS_H

#include "postgres.h"
#include "utils/rel.h"

#include "iceml_expectations.h"

#define HLL_BITS	10
#define HLL_M		(1 << HLL_BITS)
#define FINE_BINS	4096
#define FINAL_BINS	20

typedef struct Histogram
{
	int			nbuf;
	double		buf[FINE_BINS];
	bool		ranged;
	double		lo;
	double		w;
	int64		bins[FINE_BINS];
} Histogram;

typedef struct Acc
{
	int64		count;			/* non-null values */
	int64		nfinite;
	double		mean;
	double		m2;
	double		min;
	double		max;
	uint8		hll[HLL_M];
	Histogram  *hist;			/* numeric only */
} Acc;

typedef struct FeatStats
{
	FsFeature	f;
	bool		numeric;
	int64		nonnull_rows;
	Acc			value;			/* scalar, or a non-numeric array as a whole */
	Acc			elems;
	Acc			rowmeans;
} FeatStats;

/* One pass over rel (the caller checked it may read it): per-feature state. */
extern FeatStats *StatsCollect(Relation rel, int *nf, int64 *rows);

/* The HyperLogLog estimate of a's registers. */
extern int64 HllEstimate(Acc *a);

/* A numeric Datum of type typid as a double. */
extern double StatsToDouble(Datum d, Oid typid);

/*
 * Statistics of a partitioned feature group (a sharded one: its nodes
 * summarise and the coordinator merges); set by src/shard/ at load, NULL
 * when nothing handles partitioned groups.  Returns the rows summarised.
 */
typedef int64 (*PartitionedStatisticsHook) (Oid relid);
extern PGDLLIMPORT PartitionedStatisticsHook partitioned_statistics_hook;

#endif							/* ICEML_STATS_H */
