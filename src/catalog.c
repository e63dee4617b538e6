/*
 * catalog.c - the one place where iceml changes the user it runs as.
 *
 * iceml's catalog tables (iceml.runs, iceml.feature_groups, ...) belong to
 * the role that created the extension.  Users read them through row-level
 * security and write them only through iceml's functions, which switch to
 * the catalog owner for the write.  Code that runs as another role must not
 * resolve a single name the caller could shadow: every switch here also
 * pins search_path to "pg_catalog, pg_temp" for its duration (types,
 * functions and operators then come from pg_catalog; pg_temp is searched
 * last, and never for functions or operators), and iceml's own objects are
 * always written schema-qualified.
 *
 * Three entry points:
 *
 *   BecomeCatalogOwner / RestoreUser   bracket catalog work in C code;
 *   iceml_gate                          the C body of SQL API functions that
 *                                       write catalogs: it runs the
 *                                       implementation iceml._<name> (same
 *                                       arguments; executable by the catalog
 *                                       owner only) as the catalog owner;
 *   iceml._as_caller(sql)               inside a gate, runs one statement
 *                                       back as the calling role (reading or
 *                                       filling the caller's own tables).
 *
 * IcemlCaller() answers "on whose behalf": the role that entered the
 * outermost switch, or the current user outside any.  A frame applies only
 * while the current user is still the one it switched to, so code that
 * runs under another identity inside a frame (the caller's own code via
 * _as_caller, or a SECURITY DEFINER function that code calls) is judged by
 * its own identity, never the frame's.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "iceml.h"
#include "iceml_worker.h"

#define ICEML_SAFE_SEARCH_PATH "pg_catalog, pg_temp"
#define MAX_FRAMES 64

typedef struct OwnerFrame
{
	Oid			as_user;		/* the user this frame switched to */
	Oid			caller;			/* on whose behalf */
	int			xact_level;		/* transaction nest level that pushed it */
} OwnerFrame;

static OwnerFrame frames[MAX_FRAMES];
static int	nframes = 0;

Oid
CatalogOwner(void)
{
	Oid			nsp = get_namespace_oid("iceml", false);
	Oid			relid = get_relname_relid("runs", nsp);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("iceml catalog table iceml.runs is missing"),
				 errhint("Reinstall the extension with DROP EXTENSION iceml; CREATE EXTENSION iceml.")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

Oid
IcemlCaller(void)
{
	Oid			current = GetUserId();

	if (nframes > 0 && frames[nframes - 1].as_user == current)
		return frames[nframes - 1].caller;
	return current;
}

/* Pin search_path for the current GUC nest level (popped by RestoreUser). */
static int
PinSearchPath(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", ICEML_SAFE_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

static void
SwitchUser(IcemlOwnerContext *ctx, Oid to)
{
	Oid			caller = IcemlCaller();

	if (nframes >= MAX_FRAMES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("iceml calls nested more than %d deep", MAX_FRAMES)));
	GetUserIdAndSecContext(&ctx->save_userid, &ctx->save_sec_context);
	ctx->depth = nframes;
	frames[nframes].as_user = to;
	frames[nframes].caller = caller;
	frames[nframes].xact_level = GetCurrentTransactionNestLevel();
	nframes++;
	SetUserIdAndSecContext(to, ctx->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	ctx->guc_nest = PinSearchPath();
}

void
BecomeCatalogOwner(IcemlOwnerContext *ctx)
{
	SwitchUser(ctx, CatalogOwner());
}

/*
 * Back to the user of before.  Also safe in a PG_CATCH block before the
 * error is re-thrown; an error that is not caught is undone by the
 * transaction's abort (user, GUC nest level and, below, the frames).
 */
void
RestoreUser(IcemlOwnerContext *ctx)
{
	AtEOXact_GUC(true, ctx->guc_nest);
	SetUserIdAndSecContext(ctx->save_userid, ctx->save_sec_context);
	if (nframes > ctx->depth)
		nframes = ctx->depth;
}

static void
CatalogXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
		nframes = 0;
}

static void
CatalogSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		int			level = GetCurrentTransactionNestLevel();

		while (nframes > 0 && frames[nframes - 1].xact_level >= level)
			nframes--;
	}
}

void
CatalogInit(void)
{
	RegisterXactCallback(CatalogXactCallback, NULL);
	RegisterSubXactCallback(CatalogSubXactCallback, NULL);
}

/* ---- the gate ------------------------------------------------------------- */

typedef struct GateCache
{
	FmgrInfo	impl;
	int			nargs;
} GateCache;

/*
 * The implementation of gate function fn_oid: iceml._<name> with the same
 * argument types and result.
 */
static GateCache *
GateLookup(FunctionCallInfo fcinfo)
{
	Oid			fn_oid = fcinfo->flinfo->fn_oid;
	HeapTuple	tup;
	Form_pg_proc proc;
	char	   *implname;
	Oid			impl_oid;
	GateCache  *gc;
	Oid			nsp = get_namespace_oid("iceml", false);

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->pronamespace != nsp)
		elog(ERROR, "iceml_gate serves functions of schema iceml only");
	implname = psprintf("_%s", NameStr(proc->proname));
	impl_oid = LookupFuncName(list_make2(makeString("iceml"), makeString(implname)),
							  proc->pronargs, proc->proargtypes.values, true);
	if (!OidIsValid(impl_oid) || get_func_rettype(impl_oid) != proc->prorettype ||
		get_func_retset(impl_oid) != proc->proretset)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("iceml function %s has no implementation iceml.%s",
						NameStr(proc->proname), implname),
				 errhint("Reinstall the extension.")));
	gc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(GateCache));
	gc->nargs = proc->pronargs;
	ReleaseSysCache(tup);
	fmgr_info_cxt(impl_oid, &gc->impl, fcinfo->flinfo->fn_mcxt);
	return gc;
}

PG_FUNCTION_INFO_V1(iceml_gate);

Datum
iceml_gate(PG_FUNCTION_ARGS)
{
	GateCache  *gc = (GateCache *) fcinfo->flinfo->fn_extra;
	LOCAL_FCINFO(impl, FUNC_MAX_ARGS);
	IcemlOwnerContext own;
	Datum		result;

	if (gc == NULL)
		fcinfo->flinfo->fn_extra = gc = GateLookup(fcinfo);
	InitFunctionCallInfoData(*impl, &gc->impl, gc->nargs, fcinfo->fncollation,
							 fcinfo->context, fcinfo->resultinfo);
	for (int i = 0; i < gc->nargs; i++)
		impl->args[i] = fcinfo->args[i];

	BecomeCatalogOwner(&own);
	result = FunctionCallInvoke(impl);
	RestoreUser(&own);
	fcinfo->isnull = impl->isnull;
	return result;
}

/* iceml._caller(): the role on whose behalf iceml works now. */
PG_FUNCTION_INFO_V1(iceml_caller);

Datum
iceml_caller(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(IcemlCaller());
}

/*
 * iceml._as_caller(sql text) RETURNS jsonb: run one statement as the
 * calling role, from inside a gate.  The statement is iceml's own text (the
 * function is executable by the catalog owner only); it runs with the
 * caller's privileges and row-level security, under the pinned search_path.
 * Returns the first column of the first row when the statement returns
 * rows (it must be jsonb; NULL when there are none), else the number of
 * rows processed.
 */
PG_FUNCTION_INFO_V1(iceml_as_caller);

Datum
iceml_as_caller(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			caller = IcemlCaller();
	Oid			save_user;
	int			save_sec;
	int			rc;
	Datum		result = (Datum) 0;
	bool		isnull = true;
	bool		counted = false;
	uint64		processed;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(caller, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	SPI_connect();
	rc = SPI_execute(sql, false, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute failed (%s)", SPI_result_code_string(rc));
	if (SPI_tuptable != NULL && SPI_tuptable->tupdesc->natts >= 1 &&
		(rc == SPI_OK_SELECT || rc == SPI_OK_INSERT_RETURNING ||
		 rc == SPI_OK_UPDATE_RETURNING || rc == SPI_OK_DELETE_RETURNING))
	{
		if (SPI_gettypeid(SPI_tuptable->tupdesc, 1) != JSONBOID)
			elog(ERROR, "iceml._as_caller: the first column must be jsonb");
		if (SPI_processed > 0)
		{
			result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
				result = SPI_datumTransfer(result, false, -1);
		}
	}
	else
		counted = true;
	processed = SPI_processed;
	SPI_finish();
	SetUserIdAndSecContext(save_user, save_sec);
	if (counted)
		PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in,
											CStringGetDatum(psprintf(UINT64_FORMAT, processed))));
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * Can the caller see a catalog row owned by `owner`?  The rule of the
 * row-level security policies: its owner (or a member of it) and
 * iceml_admin.
 */
bool
CallerMaySee(Oid owner)
{
	Oid			caller = IcemlCaller();
	Oid			admin = get_role_oid("iceml_admin", true);

	return has_privs_of_role(caller, owner) ||
		(OidIsValid(admin) && has_privs_of_role(caller, admin));
}

PG_FUNCTION_INFO_V1(iceml_caller_may_see);

Datum
iceml_caller_may_see(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CallerMaySee(PG_GETARG_OID(0)));
}

/*
 * 42501 unless the caller is a member of iceml_user; `action` completes
 * "permission denied to ..." (e.g. "train", "run a pipeline").
 */
void
RequireIcemlUser(const char *action)
{
	if (!has_privs_of_role(IcemlCaller(), get_role_oid("iceml_user", false)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s: role \"%s\" is not a member of iceml_user",
						action, GetUserNameFromId(IcemlCaller(), false))));
}

/* ---- SPI helpers ---------------------------------------------------------- */

uint64
SpiExec(const char *sql, int nargs, Oid *argtypes, Datum *values, const char *nulls)
{
	int			rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls,
										   false, 0);

	if (rc < 0)
		elog(ERROR, "iceml: SPI failed (%s) running: %s",
			 SPI_result_code_string(rc), sql);
	return SPI_processed;
}

bool
SpiGetDatum(uint64 row, int col, Datum *out)
{
	bool		isnull;

	*out = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);
	return !isnull;
}

char *
SpiGetText(uint64 row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

int64
OwnerInsertId(const char *sql, int nargs, Oid *argtypes, Datum *values, const char *nulls)
{
	IcemlOwnerContext own;
	Datum		d;

	BecomeCatalogOwner(&own);
	if (SpiExec(sql, nargs, argtypes, values, nulls) != 1 || !SpiGetDatum(0, 1, &d))
		elog(ERROR, "iceml: no id returned by: %s", sql);
	RestoreUser(&own);
	return DatumGetInt64(d);
}

