/*
 * fs_json.c - what the parsers of feature lists (fs_types.c) and expectation
 * documents (expectations.c) share: reading JSON fields, refusing unknown
 * keys and bad values with 22023 and the path at fault, shortening values
 * for messages, and PostgreSQL's parsers' errors caught in a subtransaction.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/resowner.h"

#include "expectations_internal.h"

/* longest value shown in an error message or a validations row */
#define FS_MAX_SHOWN	80

void
FsDocError(const char *path, const char *msg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid expectation at %s: %s", path, msg),
			 errhint("See the expectation format in the iceml README (\"Expectations\").")));
}

JsonbValue *
FsJField(JsonbContainer *c, const char *key)
{
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

bool
FsJIsObject(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

bool
FsJIsArray(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data) &&
		!JsonContainerIsScalar(v->val.binary.data);
}

char *
FsJString(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

double
FsJNumber(JsonbValue *v, const char *path)
{
	double		d;

	if (v->type != jbvNumeric)
		FsDocError(path, "must be a number");
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
										   NumericGetDatum(v->val.numeric)));
	if (isnan(d) || isinf(d))
		FsDocError(path, "must be a finite number");
	return d;
}

/* refuse keys of an object that are not in the space-separated list allowed */
void
FsCheckKeys(JsonbContainer *c, const char *path, const char *allowed, bool feature)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		const char *p;
		bool		found = false;
		size_t		len;

		if (tok != WJB_KEY)
			continue;
		key = FsJString(&v);
		len = strlen(key);
		for (p = allowed; *p;)
		{
			const char *end = strchr(p, ' ');
			size_t		n = end ? (size_t) (end - p) : strlen(p);

			if (n == len && strncmp(p, key, n) == 0)
				found = true;
			p += n;
			while (*p == ' ')
				p++;
		}
		if (!found && feature)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid feature at %s.%s: unknown key \"%s\" (allowed: %s)",
							path, key, FsShorten(key), allowed)));
		if (!found)
			FsDocError(psprintf("%s.%s", path, key),
					 psprintf("unknown key \"%s\" (allowed: %s)", FsShorten(key), allowed));
	}
}

char *
FsShorten(char *s)
{
	if (strlen(s) > FS_MAX_SHOWN)
	{
		int			n = pg_mbcliplen(s, strlen(s), FS_MAX_SHOWN);

		s = psprintf("%.*s...", n, s);
	}
	return s;
}

/*
 * Run fn(arg) in a subtransaction; on error return its message (the error is
 * swallowed), else NULL.  Used to turn the errors of PostgreSQL's parsers
 * (types, input functions, regular expressions) into our 22023 with a path.
 */
char *
FsTryInSubxact(void (*fn) (void *), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char	   *volatile msg = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		msg = pstrdup(edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return msg;
}
