/*
 * features.c - the SAR feature functions of API.md section 3:
 * iceml.band_avg, to_linear, to_db, standardize, lee_filter, band_stats.
 *
 * Each is a thin layer: the arguments are checked by the helpers of
 * src/pgarray.c, the numbers are computed by the plain-C kernels of
 * src/eo/sar.c, and the result is built straight into a new real[].
 */
#include "postgres.h"

#include "funcapi.h"

#include "iceml_pgarray.h"
#include "iceml_sar.h"

PG_FUNCTION_INFO_V1(band_avg);
PG_FUNCTION_INFO_V1(to_linear);
PG_FUNCTION_INFO_V1(to_db);
PG_FUNCTION_INFO_V1(standardize);
PG_FUNCTION_INFO_V1(lee_filter);
PG_FUNCTION_INFO_V1(band_stats);

/* Largest Lee window: beyond it the filter is a plain blur of the chip. */
#define LEE_MAX_WINDOW	101

Datum
band_avg(PG_FUNCTION_ARGS)
{
	int			na,
				nb;
	const float *a = IcemlRealArrayArg(PG_GETARG_ARRAYTYPE_P(0), "band_avg", "a", &na);
	const float *b = IcemlRealArrayArg(PG_GETARG_ARRAYTYPE_P(1), "band_avg", "b", &nb);
	float	   *out;
	ArrayType  *r;

	IcemlSameLength("band_avg", "a", na, "b", nb);
	r = IcemlNewRealArray(na, &out);
	iceml_band_avg(a, b, out, na);
	PG_RETURN_ARRAYTYPE_P(r);
}

Datum
to_linear(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	int			n;
	const float *db = IcemlRealArrayArg(arr, "to_linear", "db", &n);
	float	   *out;
	ArrayType  *r = IcemlNewRealArray(n, &out);
	int			bad = iceml_to_linear(db, out, n);

	if (bad >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("to_linear: db value %g at index %d is out of range for real",
						db[bad], ARR_LBOUND(arr)[0] + bad),
				 errdetail("10^(dB/10) exceeds the largest real above about 385 dB."),
				 errhint("Backscatter in dB lies well within -100 .. 100.")));
	PG_RETURN_ARRAYTYPE_P(r);
}

Datum
to_db(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	int			n;
	const float *x = IcemlRealArrayArg(arr, "to_db", "linear", &n);
	float	   *out;
	ArrayType  *r = IcemlNewRealArray(n, &out);
	int			bad = iceml_to_db(x, out, n);

	if (bad >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_ARGUMENT_FOR_LOG),
				 errmsg("to_db: linear has a non-positive value %g at index %d",
						x[bad], ARR_LBOUND(arr)[0] + bad),
				 errdetail("The logarithm of zero or of a negative power is undefined."),
				 errhint("Clamp the band first, e.g. greatest(x, 1e-10) over unnest().")));
	PG_RETURN_ARRAYTYPE_P(r);
}

/* A constant band is centred to zeros (it has no scale), not made NaN. */
Datum
standardize(PG_FUNCTION_ARGS)
{
	int			n;
	const float *x = IcemlRealArrayArg(PG_GETARG_ARRAYTYPE_P(0), "standardize", "band", &n);
	float	   *out;
	ArrayType  *r = IcemlNewRealArray(n, &out);

	(void) iceml_standardize(x, out, n);
	PG_RETURN_ARRAYTYPE_P(r);
}

Datum
lee_filter(PG_FUNCTION_ARGS)
{
	int			side;
	const float *x = IcemlSquareImageArg(PG_GETARG_ARRAYTYPE_P(0), "lee_filter", "band", &side);
	int32		window = PG_GETARG_INT32(1);
	float	   *out;
	ArrayType  *r;
	double	   *work;

	if (window < 1 || window % 2 == 0 || window > side || window > LEE_MAX_WINDOW)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lee_filter: window %d is invalid for a %d x %d image",
						window, side, side),
				 errdetail("The window must be odd, at least 1 and at most the image side and %d.",
						   LEE_MAX_WINDOW),
				 errhint("Use an odd window such as 3, 5 or 7.")));
	r = IcemlNewRealArray(side * side, &out);
	work = palloc(iceml_lee_work_len(side) * sizeof(double));
	if (iceml_lee_filter(x, out, side, window, work) != 0)
		elog(ERROR, "lee_filter: kernel refused side %d window %d", side, window);
	pfree(work);
	PG_RETURN_ARRAYTYPE_P(r);
}

/* OUT min real, max real, mean double precision, stddev double precision
 * (population standard deviation, as stddev_pop). */
Datum
band_stats(PG_FUNCTION_ARGS)
{
	int			n;
	const float *x = IcemlRealArrayArg(PG_GETARG_ARRAYTYPE_P(0), "band_stats", "band", &n);
	IcemlBandStats st;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "band_stats: return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	iceml_band_stats(x, n, &st);
	values[0] = Float4GetDatum((float4) st.min);
	values[1] = Float4GetDatum((float4) st.max);
	values[2] = Float8GetDatum(st.mean);
	values[3] = Float8GetDatum(st.stddev);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
