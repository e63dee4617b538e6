/*
 * synthesize.c - iceml.synthesize_statoil(n, seed): n synthetic chips in the
 * layout of the Statoil/C-CORE records, from the plain-C generator of
 * src/eo/synth.c.
 *
 * Value per call: one chip is generated per row returned, so memory stays at
 * one chip (about 45 KB) whatever n, and a LIMIT stops the work early.  Chip k
 * depends on (seed, k) only, so the first k rows are the same for every n.
 */
#include "postgres.h"

#include <math.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "iceml_pgarray.h"
#include "iceml_synth.h"

PG_FUNCTION_INFO_V1(synthesize_statoil);

/* 10^6 chips are 45 GB of bands: more is surely a mistake */
#define SYNTH_MAX_CHIPS	1000000

typedef struct SynthState
{
	uint32		seed;
	IcemlChip	chip;
} SynthState;

static ArrayType *
BandArray(const float *band)
{
	float	   *data;
	ArrayType  *r = IcemlNewRealArray(ICEML_CHIP_PIXELS, &data);

	memcpy(data, band, ICEML_CHIP_PIXELS * sizeof(float));
	return r;
}

Datum
synthesize_statoil(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	SynthState *st;

	if (SRF_IS_FIRSTCALL())
	{
		int32		n = PG_GETARG_INT32(0);
		int32		seed = PG_GETARG_INT32(1);
		MemoryContext old;
		TupleDesc	tupdesc;

		if (n < 0 || n > SYNTH_MAX_CHIPS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("synthesize_statoil: n must be between 0 and %d, not %d",
							SYNTH_MAX_CHIPS, n),
					 errdetail("Each chip is two bands of 5625 values, about 45 kB."),
					 errhint("Generate large sets in parts: chip k depends only on the seed and k.")));

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "synthesize_statoil: return type must be a row type");
		funcctx->tuple_desc = BlessTupleDesc(tupdesc);
		funcctx->max_calls = n;
		st = palloc(sizeof(SynthState));
		st->seed = (uint32) seed;
		funcctx->user_fctx = st;
		MemoryContextSwitchTo(old);
	}

	funcctx = SRF_PERCALL_SETUP();
	st = (SynthState *) funcctx->user_fctx;
	if (funcctx->call_cntr < funcctx->max_calls)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		IcemlChip  *c = &st->chip;

		CHECK_FOR_INTERRUPTS();
		iceml_synth_chip(st->seed, funcctx->call_cntr, c);
		values[0] = CStringGetTextDatum(c->id);
		values[1] = PointerGetDatum(BandArray(c->band_1));
		values[2] = PointerGetDatum(BandArray(c->band_2));
		if (isnan(c->inc_angle))
		{
			values[3] = (Datum) 0;
			nulls[3] = true;
		}
		else
			values[3] = Float4GetDatum(c->inc_angle);
		values[4] = Int16GetDatum((int16) c->is_iceberg);
		SRF_RETURN_NEXT(funcctx,
						HeapTupleGetDatum(heap_form_tuple(funcctx->tuple_desc,
														  values, nulls)));
	}
	SRF_RETURN_DONE(funcctx);
}
