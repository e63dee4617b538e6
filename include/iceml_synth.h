/*
 * iceml_synth.h - realistic synthetic SAR chips in the Statoil/C-CORE layout.
 *
 * Plain C, no PostgreSQL headers: used by iceml.synthesize_statoil() and by the
 * engine's tests and benchmarks.  A chip depends only on (seed, index), so any
 * range of chips can be generated independently and in any order, and the first
 * k chips of synthesize_statoil(n, seed) are the same for every n >= k.
 */
#ifndef ICEML_SYNTH_H
#define ICEML_SYNTH_H

#include <stdint.h>

#define ICEML_CHIP_SIDE   75
#define ICEML_CHIP_PIXELS (ICEML_CHIP_SIDE * ICEML_CHIP_SIDE)   /* 5625 */

typedef struct IcemlChip
{
	char		id[9];			/* 8 lower-case hex digits, NUL-terminated */
	float		band_1[ICEML_CHIP_PIXELS];	/* HH, dB, row-major */
	float		band_2[ICEML_CHIP_PIXELS];	/* HV, dB, row-major */
	float		inc_angle;		/* degrees; NAN where the real data says "na" */
	int			is_iceberg;		/* 0 ship, 1 iceberg */
} IcemlChip;

/* Fill *out with chip number `index` of the stream selected by `seed`. */
extern void iceml_synth_chip(uint32_t seed, uint64_t index, IcemlChip *out);

#endif							/* ICEML_SYNTH_H */
