/*
 * pgarray.c - real[] arguments checked once at the SQL edge; see
 * include/iceml_pgarray.h.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type_d.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "iceml_pgarray.h"

const float *
IcemlRealArrayArg(ArrayType *arr, const char *func, const char *argname,
				  int *len)
{
	int			ndim = ARR_NDIM(arr);
	int			lb;
	int			n;
	const float *data;

	if (ARR_ELEMTYPE(arr) != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s: %s must be an array of real, not of %s",
						func, argname, format_type_be(ARR_ELEMTYPE(arr)))));
	if (ndim == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: %s is an empty array", func, argname),
				 errhint("Pass a band of at least one value.")));
	if (ndim != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: %s must be a one-dimensional array, not %d-dimensional",
						func, argname, ndim),
				 errdetail("Bands are stored flat, row by row: a 75 x 75 chip is 5625 values."),
				 errhint("Flatten it first, e.g. with ARRAY(SELECT unnest(%s)).",
						 argname)));

	n = ARR_DIMS(arr)[0];
	lb = ARR_LBOUND(arr)[0];
	if (n > ICEML_MAX_BAND_ELEMS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s: %s has %d elements, more than the limit of %d",
						func, argname, n, ICEML_MAX_BAND_ELEMS),
				 errdetail("The largest band accepted is a %d x %d image.",
						   ICEML_MAX_SIDE, ICEML_MAX_SIDE),
				 errhint("Cut the image into tiles.")));

	if (ARR_HASNULL(arr) && array_contains_nulls(arr))
	{
		bits8	   *bitmap = ARR_NULLBITMAP(arr);

		for (int i = 0; i < n; i++)
			if (!(bitmap[i / 8] & (1 << (i % 8))))
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("%s: %s has a NULL element at index %d",
								func, argname, lb + i),
						 errhint("Replace missing pixels first, e.g. with coalesce() over unnest().")));
	}

	data = (const float *) ARR_DATA_PTR(arr);
	for (int i = 0; i < n; i++)
		if (!isfinite(data[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s: %s has a non-finite value (%s) at index %d",
							func, argname,
							isnan(data[i]) ? "NaN" :
							data[i] > 0 ? "Infinity" : "-Infinity",
							lb + i),
					 errhint("Bands must hold finite values only.")));
	*len = n;
	return data;
}

const float *
IcemlSquareImageArg(ArrayType *arr, const char *func, const char *argname,
					int *side)
{
	int			n;
	const float *data = IcemlRealArrayArg(arr, func, argname, &n);
	int			s = (int) floor(sqrt((double) n) + 0.5);

	if ((int64) s * s != n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: %s has %d elements, which is not a square image",
						func, argname, n),
				 errdetail("An n x n image is stored as n*n values, row by row (75 x 75 = 5625)."),
				 errhint("Pass a whole square image.")));
	*side = s;
	return data;
}

void
IcemlSameLength(const char *func, const char *aname, int alen,
				const char *bname, int blen)
{
	if (alen != blen)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: %s has %d elements but %s has %d",
						func, aname, alen, bname, blen),
				 errhint("Both bands must be of the same image.")));
}

ArrayType *
IcemlNewRealArray(int n, float **data)
{
	Size		size;
	ArrayType  *r;

	Assert(n >= 0 && n <= ICEML_MAX_BAND_ELEMS);
	size = add_size(ARR_OVERHEAD_NONULLS(1), mul_size(n, sizeof(float4)));
	r = (ArrayType *) palloc0(size);
	SET_VARSIZE(r, size);
	r->ndim = 1;
	r->dataoffset = 0;
	r->elemtype = FLOAT4OID;
	ARR_DIMS(r)[0] = n;
	ARR_LBOUND(r)[0] = 1;
	*data = (float *) ARR_DATA_PTR(r);
	return r;
}
