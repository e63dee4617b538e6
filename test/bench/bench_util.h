/*
 * bench_util.h - what the engine's benchmark programs share: a monotonic
 * clock in seconds and a comparison for qsort of doubles (medians).
 */
#ifndef ICEML_BENCH_UTIL_H
#define ICEML_BENCH_UTIL_H

#include <time.h>

static inline double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static inline int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

#endif							/* ICEML_BENCH_UTIL_H */
