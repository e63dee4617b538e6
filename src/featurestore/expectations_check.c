/*
 * expectations_check.c - the row rules of expectations evaluated on one
 * value (a scalar, or every element of an array), with the failure
 * described for the validation row and the error message.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "regex/regex.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "iceml_expectations.h"
#include "expectations_internal.h"

/* ----------------------------------------------------------------
 * row rules
 * ---------------------------------------------------------------- */

static double
DatumToDouble(Datum d, Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return (double) DatumGetInt16(d);
		case INT4OID:
			return (double) DatumGetInt32(d);
		case INT8OID:
			return (double) DatumGetInt64(d);
		case FLOAT4OID:
			return (double) DatumGetFloat4(d);
		case FLOAT8OID:
			return DatumGetFloat8(d);
		case NUMERICOID:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
		default:
			elog(ERROR, "type %u is not numeric", typid);
	}
	return 0.0;					/* keep compiler quiet */
}

static char *
ValueText(Datum d, Oid typid)
{
	Oid			out;
	bool		varlena;

	getTypeOutputInfo(typid, &out, &varlena);
	return FsShorten(OidOutputFunctionCall(out, d));
}

static char *
Float4Text(float4 v)
{
	return DatumGetCString(DirectFunctionCall1(float4out, Float4GetDatum(v)));
}

static bool
NumberFails(FsRule *r, double v)
{
	switch (r->kind)
	{
		case FS_HAS_MIN:
			return v < r->min;
		case FS_HAS_MAX:
			return v > r->max;
		case FS_IS_FINITE:
			return !isfinite(v);
		default:
			return false;
	}
}

/*
 * HAS_MIN, HAS_MAX, IS_FINITE on every element of an array.  real[] and
 * double precision[] without nulls are read in place (the hot path of the
 * Statoil bands); other arrays are deconstructed.  NaN passes HAS_MIN and
 * HAS_MAX (IS_FINITE is the rule for it).
 */
static bool
CheckNumericArray(FsRule *r, FsFeature *f, ArrayType *a, FsFailure *failure)
{
	int			n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	int			lb = ARR_NDIM(a) == 1 ? ARR_LBOUND(a)[0] : 1;
	int			i,
				bad = -1;

	if (ARR_ELEMTYPE(a) == FLOAT4OID && !ARR_HASNULL(a))
	{
		const float4 *p = (const float4 *) ARR_DATA_PTR(a);

		switch (r->kind)
		{
			case FS_HAS_MIN:
				{
					float4		lo = (float4) r->min;

					/* the float4 bound rounds: compare exactly only near it */
					for (i = 0; i < n; i++)
						if (p[i] <= lo && (double) p[i] < r->min)
						{
							bad = i;
							break;
						}
					break;
				}
			case FS_HAS_MAX:
				{
					float4		hi = (float4) r->max;

					for (i = 0; i < n; i++)
						if (p[i] >= hi && (double) p[i] > r->max)
						{
							bad = i;
							break;
						}
					break;
				}
			default:
				for (i = 0; i < n; i++)
					if (!isfinite(p[i]))
					{
						bad = i;
						break;
					}
				break;
		}
		if (bad < 0)
			return true;
		failure->element = lb + bad;
		failure->value = Float4Text(p[bad]);
		return false;
	}
	else
	{
		Datum	   *elems;
		bool	   *nulls;
		int			ne;

		deconstruct_array(a, f->elemtype, f->elmlen, f->elmbyval, f->elmalign,
						  &elems, &nulls, &ne);
		for (i = 0; i < ne; i++)
			if (!nulls[i] && NumberFails(r, DatumToDouble(elems[i], f->elemtype)))
			{
				failure->element = lb + i;
				failure->value = ValueText(elems[i], f->elemtype);
				return false;
			}
		return true;
	}
}

/*
 * Check one row rule on one value.  Arrays arrive detoasted (the trigger
 * detoasts each feature once per row, whatever number of rules read it).
 */
bool
FsCheckRowRule(FsRule *r, FsFeature *f, Datum value, bool isnull, FsFailure *failure)
{
	failure->rule = r;
	failure->element = 0;
	failure->value = NULL;

	if (isnull)
	{
		if (r->kind == FS_HAS_COMPLETENESS)
		{
			failure->value = "NULL";
			return false;
		}
		return true;			/* only completeness judges a null */
	}

	switch (r->kind)
	{
		case FS_HAS_COMPLETENESS:
			return true;
		case FS_HAS_DATATYPE:
			if (r->static_pass)
				return true;
			if (r->accepted == FS_CLASS_INTEGRAL && !f->isarray && f->typid == NUMERICOID)
			{
				double		d = DatumToDouble(value, NUMERICOID);

				if (isfinite(d) && d == floor(d))
					return true;
			}
			failure->value = psprintf("%s of type %s", ValueText(value, f->typid),
									  format_type_be(f->typid));
			return false;
		case FS_HAS_MIN:
		case FS_HAS_MAX:
		case FS_IS_FINITE:
			if (f->isarray)
				return CheckNumericArray(r, f, DatumGetArrayTypeP(value), failure);
			if (NumberFails(r, DatumToDouble(value, f->typid)))
			{
				failure->value = ValueText(value, f->typid);
				return false;
			}
			return true;
		case FS_IS_CONTAINED_IN:
			{
				int			i;

				for (i = 0; i < r->nlegal; i++)
					if (DatumGetBool(FunctionCall2Coll(&r->eq, f->collation, value, r->legal[i])))
						return true;
				failure->value = ValueText(value, f->typid);
				return false;
			}
		case FS_HAS_PATTERN:
			{
				text	   *t = DatumGetTextPP(value);

				if (RE_compile_and_execute(r->pattern, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
										   REG_ADVANCED,
										   OidIsValid(f->collation) ? f->collation : DEFAULT_COLLATION_OID,
										   0, NULL))
					return true;
				failure->value = ValueText(value, f->typid);
				return false;
			}
		case FS_HAS_LENGTH:
			{
				int64		len;

				if (f->isarray)
				{
					ArrayType  *a = DatumGetArrayTypeP(value);

					len = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
				}
				else
				{
					text	   *t = DatumGetTextPP(value);

					len = pg_mbstrlen_with_len(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				}
				if ((r->has_min && len < r->min) || (r->has_max && len > r->max))
				{
					failure->value = psprintf("length " INT64_FORMAT, len);
					return false;
				}
				return true;
			}
		default:
			return true;		/* batch rules are not row rules */
	}
}
