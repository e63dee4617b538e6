/*
 * iceml_pgarray.h - the checks of a real[] argument at the SQL edge, and the
 * construction of real[] results.
 *
 * Every SQL function of iceml that takes a band (features.c, predict, the
 * loader) checks it here once, with errors that name the function, the
 * argument and the element at fault, and then reads ARR_DATA_PTR directly.
 */
#ifndef ICEML_PGARRAY_H
#define ICEML_PGARRAY_H

#include "postgres.h"
#include "utils/array.h"

/* Largest band accepted: a 4096 x 4096 image (64 MiB of float4). */
#define ICEML_MAX_SIDE			4096
#define ICEML_MAX_BAND_ELEMS	(ICEML_MAX_SIDE * ICEML_MAX_SIDE)

/*
 * Check that arr is a one-dimensional real[] of 1 .. ICEML_MAX_BAND_ELEMS
 * elements, none NULL, all finite; return a pointer to its elements and set
 * *len.  func and argname are used in the messages ("band_avg", "a").
 * Errors: 22023 shape/empty/non-finite, 22004 NULL element, 54000 too long,
 * 42804 element type not real.  Indexes in messages are SQL subscripts.
 */
extern const float *IcemlRealArrayArg(ArrayType *arr, const char *func,
									  const char *argname, int *len);

/* The same, and the length must be side*side for some side >= 1 (22023
 * otherwise); sets *side. */
extern const float *IcemlSquareImageArg(ArrayType *arr, const char *func,
										const char *argname, int *side);

/* Check that two bands checked above have the same length (22023). */
extern void IcemlSameLength(const char *func, const char *aname, int alen,
							const char *bname, int blen);

/* A new one-dimensional real[] of n elements (lower bound 1, zeroed); *data
 * points to its elements for the kernel to fill. */
extern ArrayType *IcemlNewRealArray(int n, float **data);

#endif							/* ICEML_PGARRAY_H */
