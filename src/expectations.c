/*
 * expectations.c - feature lists and expectation documents of the feature
 * store: parsed and checked once (every fault refused with SQLSTATE 22023 and
 * the JSON path of the offending field), then evaluated row by row by the
 * BEFORE ROW trigger of src/featurestore.c.
 *
 * An expectation is {"name", "features": [...], "rules": [...]}; each rule
 * applies to each of the expectation's features, so the parsed form is a flat
 * array of FsRule, one per (rule, feature), row rules first.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/tupdesc.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "parser/parse_type.h"
#include "regex/regex.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/typcache.h"

#include "iceml_expectations.h"

/* longest value shown in an error message or a validations row */
#define FS_MAX_SHOWN	80

typedef struct RuleSpec
{
	const char *name;
	FsRuleKind	kind;
	const char *params;			/* allowed keys besides name/level/description */
} RuleSpec;

static const RuleSpec rule_specs[] = {
	{"HAS_MIN", FS_HAS_MIN, "min"},
	{"HAS_MAX", FS_HAS_MAX, "max"},
	{"HAS_DATATYPE", FS_HAS_DATATYPE, "accepted_type"},
	{"HAS_COMPLETENESS", FS_HAS_COMPLETENESS, "min max"},
	{"IS_CONTAINED_IN", FS_IS_CONTAINED_IN, "legal_values"},
	{"HAS_PATTERN", FS_HAS_PATTERN, "pattern"},
	{"HAS_LENGTH", FS_HAS_LENGTH, "value min max"},
	{"IS_FINITE", FS_IS_FINITE, ""},
	{"HAS_MEAN", FS_HAS_MEAN, "min max"},
	{"HAS_STDDEV", FS_HAS_STDDEV, "min max"},
	{"HAS_UNIQUENESS", FS_HAS_UNIQUENESS, "min max"},
};

static char *Shorten(char *s);

/* ----------------------------------------------------------------
 * small helpers
 * ---------------------------------------------------------------- */

static void
pg_attribute_noreturn()
DocError(const char *path, const char *msg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid expectation at %s: %s", path, msg),
			 errhint("See the expectation format in the iceml README (\"Expectations\").")));
}

static JsonbValue *
JField(JsonbContainer *c, const char *key)
{
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

static bool
JIsObject(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static bool
JIsArray(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data) &&
		!JsonContainerIsScalar(v->val.binary.data);
}

static char *
JString(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static double
JNumber(JsonbValue *v, const char *path)
{
	double		d;

	if (v->type != jbvNumeric)
		DocError(path, "must be a number");
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
										   NumericGetDatum(v->val.numeric)));
	if (isnan(d) || isinf(d))
		DocError(path, "must be a finite number");
	return d;
}

/* refuse keys of an object that are not in the space-separated list allowed */
static void
CheckKeys(JsonbContainer *c, const char *path, const char *allowed, bool feature)
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
		key = JString(&v);
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
							path, key, Shorten(key), allowed)));
		if (!found)
			DocError(psprintf("%s.%s", path, key),
					 psprintf("unknown key \"%s\" (allowed: %s)", Shorten(key), allowed));
	}
}

static char *
Shorten(char *s)
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
static char *
TryInSubxact(void (*fn) (void *), void *arg)
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

typedef struct InputCall
{
	Oid			typinput;
	Oid			typioparam;
	int32		typmod;
	char	   *str;
	Datum		result;
} InputCall;

static void
DoInput(void *arg)
{
	InputCall  *c = arg;

	c->result = OidInputFunctionCall(c->typinput, c->str, c->typioparam, c->typmod);
}

typedef struct RegexCall
{
	text	   *pattern;
	Oid			collation;
} RegexCall;

typedef struct TypeCall
{
	const char *str;
	Oid			typid;
	int32		typmod;
} TypeCall;

static void
DoParseType(void *arg)
{
	TypeCall   *c = arg;

	c->typid = InvalidOid;
	c->typmod = -1;
	parseTypeString(c->str, &c->typid, &c->typmod, true);
}

static void
DoRegex(void *arg)
{
	RegexCall  *c = arg;

	(void) RE_compile_and_cache(c->pattern, REG_ADVANCED, c->collation);
}

/* ----------------------------------------------------------------
 * identifiers and types
 * ---------------------------------------------------------------- */

/*
 * Feature group, feature and training dataset names: lower-case letters,
 * digits and underscores, starting with a letter, at most FS_MAX_NAME_LEN
 * characters, so they never need quoting and leave room for "_<version>".
 */
void
FsCheckIdentifier(const char *value, const char *what)
{
	const char *p;
	bool		ok = value[0] >= 'a' && value[0] <= 'z';

	for (p = value; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
	if (!ok || strlen(value) > FS_MAX_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s \"%s\"", what, Shorten(pstrdup(value))),
				 errdetail("A name is 1 to %d lower-case letters, digits or underscores, starting with a letter.",
						   FS_MAX_NAME_LEN)));
}

static bool
AllowedScalar(Oid t)
{
	switch (t)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case BOOLOID:
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return true;
		default:
			return false;
	}
}

static bool
AllowedElement(Oid t)
{
	return AllowedScalar(t) && t != DATEOID && t != TIMESTAMPOID &&
		t != TIMESTAMPTZOID && t != BPCHAROID;
}

static FsValueClass
ClassOf(Oid t)
{
	switch (t)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return FS_CLASS_INTEGRAL;
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			return FS_CLASS_FRACTIONAL;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			return FS_CLASS_STRING;
		case BOOLOID:
			return FS_CLASS_BOOLEAN;
		default:
			return FS_CLASS_OTHER;
	}
}

/*
 * Resolve a feature's type through PostgreSQL's own type parser, inside a
 * subtransaction so that a syntax error becomes our 22023 naming the
 * feature.  Only a small character set reaches the parser at all, and only
 * the allow-listed types (and one-dimensional arrays of them) come back: the
 * DDL is then written from the type's oid, never from the user's text.
 */
void
FsResolveType(const char *typestr, int index, const char *feature,
			  Oid *typid, int32 *typmod)
{
	const char *p;
	bool		charset_ok = strlen(typestr) > 0 && strlen(typestr) <= 64;
	bool		parsed = false;
	Oid			elem;

	for (p = typestr; charset_ok && *p; p++)
		charset_ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || strchr(" _(),[]", *p) != NULL;

	*typid = InvalidOid;
	*typmod = -1;
	if (charset_ok)
	{
		TypeCall	call;

		call.str = typestr;
		parsed = TryInSubxact(DoParseType, &call) == NULL;
		*typid = call.typid;
		*typmod = call.typmod;
	}
	if (!parsed || !OidIsValid(*typid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid feature at $[%d] (\"%s\"): unknown type \"%s\"",
						index, feature, Shorten(pstrdup(typestr))),
				 errhint("Use a PostgreSQL type name such as integer, real, text or real[].")));

	elem = get_element_type(*typid);
	if (OidIsValid(elem) ? !AllowedElement(elem) : !AllowedScalar(*typid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid feature at $[%d] (\"%s\"): type %s is not a feature type",
						index, feature, format_type_with_typemod(*typid, *typmod)),
				 errdetail("Feature types are smallint, integer, bigint, real, double precision, numeric, text, varchar, char, boolean, date, timestamp, timestamptz, and arrays of the numeric, text and boolean ones.")));
}

void
FsDescribeType(FsFeature *f)
{
	Oid			elem = get_element_type(f->typid);

	f->isarray = OidIsValid(elem);
	f->elemtype = f->isarray ? elem : f->typid;
	f->cls = ClassOf(f->elemtype);
	get_typlenbyvalalign(f->elemtype, &f->elmlen, &f->elmbyval, &f->elmalign);
	if (!OidIsValid(f->collation))
		f->collation = get_typcollation(f->typid);
}

static const char *const reserved_columns[] = {
	"tableoid", "cmax", "xmax", "cmin", "xmin", "ctid", "oid", NULL
};

/*
 * The features document of create_feature_group: a non-empty array of
 * {"name": ..., "type": ..., "description": ...}, every name a safe,
 * distinct identifier and every type a resolvable feature type.
 */
FsFeature *
FsFeaturesFromJsonb(Jsonb *features, int *nfeatures)
{
	JsonbContainer *c = &features->root;
	FsFeature  *out;
	int			n,
				i;

	if (!JsonContainerIsArray(c) || JsonContainerIsScalar(c) || JsonContainerSize(c) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("features must be a non-empty JSON array"),
				 errhint("For example [{\"name\":\"id\",\"type\":\"text\"},{\"name\":\"band_1\",\"type\":\"real[]\"}].")));
	n = JsonContainerSize(c);
	if (n > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("too many features: %d", n),
				 errdetail("A feature group has at most 1000 features.")));
	out = palloc0(sizeof(FsFeature) * n);
	for (i = 0; i < n; i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(c, i);
		JsonbValue *name,
				   *type;
		char	   *path = psprintf("$[%d]", i);
		int			j;

		if (!JIsObject(v))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid feature at %s: must be an object with \"name\" and \"type\"", path)));
		CheckKeys(v->val.binary.data, path, "name type description", true);
		name = JField(v->val.binary.data, "name");
		type = JField(v->val.binary.data, "type");
		if (name == NULL || name->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid feature at %s.name: a string is required", path)));
		out[i].name = JString(name);
		{
			const char *p = out[i].name;
			bool		ok = p[0] >= 'a' && p[0] <= 'z' && strlen(p) <= FS_MAX_NAME_LEN;

			for (; ok && *p; p++)
				ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
			for (j = 0; ok && reserved_columns[j]; j++)
				ok = strcmp(out[i].name, reserved_columns[j]) != 0;
			if (!ok)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid feature at %s.name: \"%s\" is not a valid feature name",
								path, Shorten(out[i].name)),
						 errdetail("A feature name is 1 to %d lower-case letters, digits or underscores, starting with a letter, and not a system column name.",
								   FS_MAX_NAME_LEN)));
		}
		for (j = 0; j < i; j++)
			if (strcmp(out[j].name, out[i].name) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid feature at %s.name: duplicate feature \"%s\"",
								path, out[i].name)));
		if (type == NULL || type->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid feature at %s.type (\"%s\"): a type name string is required",
							path, out[i].name)));
		FsResolveType(JString(type), i, out[i].name, &out[i].typid, &out[i].typmod);
		FsDescribeType(&out[i]);
	}
	*nfeatures = n;
	return out;
}

/* the live columns of a feature group table */
FsFeature *
FsFeaturesFromTupleDesc(TupleDesc tupdesc, int *nfeatures)
{
	FsFeature  *out = palloc0(sizeof(FsFeature) * Max(tupdesc->natts, 1));
	int			n = 0,
				i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		out[n].name = pstrdup(NameStr(att->attname));
		out[n].typid = att->atttypid;
		out[n].typmod = att->atttypmod;
		out[n].attno = att->attnum;
		out[n].collation = att->attcollation;
		FsDescribeType(&out[n]);
		n++;
	}
	*nfeatures = n;
	return out;
}

int
FsFindFeature(FsFeature *features, int nfeatures, const char *name)
{
	int			i;

	for (i = 0; i < nfeatures; i++)
		if (strcmp(features[i].name, name) == 0)
			return i;
	return -1;
}

/* ----------------------------------------------------------------
 * expectation documents
 * ---------------------------------------------------------------- */

static bool
IsNumericClass(FsFeature *f)
{
	return f->cls == FS_CLASS_INTEGRAL || f->cls == FS_CLASS_FRACTIONAL;
}

/* does the rule make sense on this feature's type? NULL when it does */
static const char *
RuleMisfit(FsRuleKind kind, FsFeature *f)
{
	switch (kind)
	{
		case FS_HAS_MIN:
		case FS_HAS_MAX:
		case FS_IS_FINITE:
		case FS_HAS_MEAN:
		case FS_HAS_STDDEV:
			return IsNumericClass(f) ? NULL : "a numeric feature or an array of numbers";
		case FS_HAS_PATTERN:
			return (!f->isarray && f->cls == FS_CLASS_STRING) ? NULL : "a text feature";
		case FS_HAS_LENGTH:
			return (f->isarray || f->cls == FS_CLASS_STRING) ? NULL : "a text or array feature";
		case FS_IS_CONTAINED_IN:
			return !f->isarray ? NULL : "a feature that is not an array";
		case FS_HAS_DATATYPE:
		case FS_HAS_COMPLETENESS:
		case FS_HAS_UNIQUENESS:
			return NULL;
	}
	return NULL;
}

/* optional "min"/"max" bounds of a rule, with min <= max */
static void
ParseBounds(JsonbContainer *rc, const char *rpath, FsRule *r, double lo, double hi)
{
	JsonbValue *vmin = JField(rc, "min");
	JsonbValue *vmax = JField(rc, "max");

	if (vmin)
	{
		char	   *p = psprintf("%s.min", rpath);

		r->has_min = true;
		r->min = JNumber(vmin, p);
		if (r->min < lo || r->min > hi)
			DocError(p, psprintf("must be between %g and %g", lo, hi));
	}
	if (vmax)
	{
		char	   *p = psprintf("%s.max", rpath);

		r->has_max = true;
		r->max = JNumber(vmax, p);
		if (r->max < lo || r->max > hi)
			DocError(p, psprintf("must be between %g and %g", lo, hi));
	}
	if (r->has_min && r->has_max && r->min > r->max)
		DocError(psprintf("%s.max", rpath),
				 psprintf("max %g is less than min %g", r->max, r->min));
}

/*
 * One rule of one expectation, into template r (feature filled in later).
 * Checks that the rule fits every feature of the expectation.
 */
static void
ParseRule(JsonbContainer *rc, const char *rpath, FsRule *r,
		  FsFeature *features, int *fidx, int nf, const char *const *fpaths)
{
	JsonbValue *v;
	const RuleSpec *spec = NULL;
	char	   *rname;
	int			i;

	memset(r, 0, sizeof(FsRule));
	v = JField(rc, "name");
	if (v == NULL)
		DocError(psprintf("%s.name", rpath), "a rule name is required");
	if (v->type != jbvString)
		DocError(psprintf("%s.name", rpath), "must be a string");
	rname = JString(v);
	for (i = 0; i < (int) lengthof(rule_specs); i++)
		if (pg_strcasecmp(rule_specs[i].name, rname) == 0)
			spec = &rule_specs[i];
	if (spec == NULL)
		DocError(psprintf("%s.name", rpath),
				 psprintf("unknown rule \"%s\" (rules: HAS_MIN, HAS_MAX, HAS_DATATYPE, HAS_COMPLETENESS, IS_CONTAINED_IN, HAS_PATTERN, HAS_LENGTH, IS_FINITE, HAS_MEAN, HAS_STDDEV, HAS_UNIQUENESS)",
						  Shorten(rname)));
	CheckKeys(rc, rpath, psprintf("name level description %s", spec->params), false);
	r->kind = spec->kind;
	r->rule = spec->name;

	r->error_level = true;
	v = JField(rc, "level");
	if (v)
	{
		char	   *level;

		if (v->type != jbvString)
			DocError(psprintf("%s.level", rpath), "must be \"ERROR\" or \"WARNING\"");
		level = JString(v);
		if (pg_strcasecmp(level, "ERROR") == 0)
			r->error_level = true;
		else if (pg_strcasecmp(level, "WARNING") == 0)
			r->error_level = false;
		else
			DocError(psprintf("%s.level", rpath),
					 psprintf("unknown level \"%s\" (levels: ERROR, WARNING)", Shorten(level)));
	}

	switch (r->kind)
	{
		case FS_HAS_MIN:
			v = JField(rc, "min");
			if (v == NULL)
				DocError(psprintf("%s.min", rpath), "HAS_MIN needs a \"min\" bound");
			r->has_min = true;
			r->min = JNumber(v, psprintf("%s.min", rpath));
			break;
		case FS_HAS_MAX:
			v = JField(rc, "max");
			if (v == NULL)
				DocError(psprintf("%s.max", rpath), "HAS_MAX needs a \"max\" bound");
			r->has_max = true;
			r->max = JNumber(v, psprintf("%s.max", rpath));
			break;
		case FS_HAS_DATATYPE:
			{
				char	   *t;
				char	   *p = psprintf("%s.accepted_type", rpath);

				v = JField(rc, "accepted_type");
				if (v == NULL)
					DocError(p, "HAS_DATATYPE needs an \"accepted_type\"");
				if (v->type != jbvString)
					DocError(p, "must be a string");
				t = JString(v);
				if (pg_strcasecmp(t, "Integral") == 0)
					r->accepted = FS_CLASS_INTEGRAL;
				else if (pg_strcasecmp(t, "Fractional") == 0)
					r->accepted = FS_CLASS_FRACTIONAL;
				else if (pg_strcasecmp(t, "String") == 0)
					r->accepted = FS_CLASS_STRING;
				else if (pg_strcasecmp(t, "Boolean") == 0)
					r->accepted = FS_CLASS_BOOLEAN;
				else if (pg_strcasecmp(t, "Array") == 0)
					r->accepted = FS_CLASS_ARRAY;
				else
					DocError(p, psprintf("unknown type \"%s\" (types: Integral, Fractional, String, Boolean, Array)",
										 Shorten(t)));
				break;
			}
		case FS_HAS_COMPLETENESS:
			ParseBounds(rc, rpath, r, 0.0, 1.0);
			r->batch = r->has_min && r->min < 1.0;
			if (!r->batch)
			{
				/* "min": 1 (or none): every row non-null */
				r->has_min = true;
				r->min = 1.0;
			}
			break;
		case FS_IS_CONTAINED_IN:
			{
				char	   *p = psprintf("%s.legal_values", rpath);
				JsonbContainer *lc;

				v = JField(rc, "legal_values");
				if (v == NULL)
					DocError(p, "IS_CONTAINED_IN needs \"legal_values\"");
				if (!JIsArray(v) || JsonContainerSize(v->val.binary.data) == 0)
					DocError(p, "must be a non-empty array");
				lc = v->val.binary.data;
				r->nlegal = JsonContainerSize(lc);
				for (i = 0; i < r->nlegal; i++)
				{
					JsonbValue *e = getIthJsonbValueFromContainer(lc, i);

					if (e->type != jbvString && e->type != jbvNumeric && e->type != jbvBool)
						DocError(psprintf("%s[%d]", p, i), "must be a string, number or boolean");
				}
				break;
			}
		case FS_HAS_PATTERN:
			{
				char	   *p = psprintf("%s.pattern", rpath);

				v = JField(rc, "pattern");
				if (v == NULL)
					DocError(p, "HAS_PATTERN needs a \"pattern\"");
				if (v->type != jbvString)
					DocError(p, "must be a string");
				r->pattern = cstring_to_text_with_len(v->val.string.val, v->val.string.len);
				break;
			}
		case FS_HAS_LENGTH:
			v = JField(rc, "value");
			if (v)
			{
				char	   *p = psprintf("%s.value", rpath);
				double		d = JNumber(v, p);

				if (d < 0 || d != floor(d) || d > INT_MAX)
					DocError(p, "must be a non-negative integer");
				if (JField(rc, "min") || JField(rc, "max"))
					DocError(p, "give either \"value\" or \"min\"/\"max\", not both");
				r->has_min = r->has_max = true;
				r->min = r->max = d;
			}
			else
			{
				ParseBounds(rc, rpath, r, 0.0, (double) INT_MAX);
				if (!r->has_min && !r->has_max)
					DocError(psprintf("%s.value", rpath),
							 "HAS_LENGTH needs a \"value\" or a \"min\"/\"max\" bound");
			}
			break;
		case FS_IS_FINITE:
			break;
		case FS_HAS_MEAN:
		case FS_HAS_STDDEV:
			ParseBounds(rc, rpath, r, r->kind == FS_HAS_STDDEV ? 0.0 : -DBL_MAX, DBL_MAX);
			if (!r->has_min && !r->has_max)
				DocError(psprintf("%s.min", rpath),
						 psprintf("%s needs a \"min\" or a \"max\" bound", r->rule));
			r->batch = true;
			break;
		case FS_HAS_UNIQUENESS:
			ParseBounds(rc, rpath, r, 0.0, 1.0);
			if (!r->has_min && !r->has_max)
			{
				r->has_min = true;
				r->min = 1.0;
			}
			r->batch = true;
			break;
	}

	for (i = 0; i < nf; i++)
	{
		FsFeature  *f = &features[fidx[i]];
		const char *need = RuleMisfit(r->kind, f);

		if (need)
			DocError(rpath,
					 psprintf("rule %s does not fit feature \"%s\" of type %s (%s needs %s, see %s)",
							  r->rule, f->name, format_type_with_typemod(f->typid, f->typmod),
							  r->rule, need, fpaths[i]));
	}
}

/* bind the parsed template to one feature: legal values, datatype */
static void
BindRule(FsRule *r, FsFeature *f, JsonbContainer *rc, const char *rpath)
{
	int			i;

	if (r->kind == FS_HAS_DATATYPE)
	{
		switch (r->accepted)
		{
			case FS_CLASS_ARRAY:
				r->static_pass = f->isarray;
				break;
			default:
				r->static_pass = !f->isarray && f->cls == r->accepted;
				break;
		}
	}
	if (r->kind == FS_IS_CONTAINED_IN)
	{
		JsonbContainer *lc = JField(rc, "legal_values")->val.binary.data;
		TypeCacheEntry *tce = lookup_type_cache(f->typid, TYPECACHE_EQ_OPR_FINFO);
		InputCall	call;

		if (!OidIsValid(tce->eq_opr_finfo.fn_oid))
			elog(ERROR, "no equality operator for type %u", f->typid);
		fmgr_info_copy(&r->eq, &tce->eq_opr_finfo, CurrentMemoryContext);
		getTypeInputInfo(f->typid, &call.typinput, &call.typioparam);
		call.typmod = f->typmod;
		r->legal = palloc(sizeof(Datum) * r->nlegal);
		for (i = 0; i < r->nlegal; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(lc, i);
			char	   *err;

			if (e->type == jbvString)
				call.str = JString(e);
			else if (e->type == jbvBool)
				call.str = e->val.boolean ? "true" : "false";
			else
				call.str = DatumGetCString(DirectFunctionCall1(numeric_out,
															   NumericGetDatum(e->val.numeric)));
			err = TryInSubxact(DoInput, &call);
			if (err)
				DocError(psprintf("%s.legal_values[%d]", rpath, i),
						 psprintf("not a value of feature \"%s\" (%s)", f->name, err));
			r->legal[i] = call.result;
		}
	}
	if (r->kind == FS_HAS_PATTERN)
	{
		RegexCall	call;
		char	   *err;

		call.pattern = r->pattern;
		call.collation = OidIsValid(f->collation) ? f->collation : DEFAULT_COLLATION_OID;
		err = TryInSubxact(DoRegex, &call);
		if (err)
			DocError(psprintf("%s.pattern", rpath), err);
	}
}

/*
 * One expectation object at path; appends its rules to *rules (grown as
 * needed) and returns its name.
 */
static char *
ParseExpectation(JsonbValue *ev, const char *path, FsFeature *features, int nfeatures,
				 FsRule **rules, int *nrules, int *cap)
{
	JsonbContainer *ec;
	JsonbValue *v;
	char	   *ename;
	int			nf,
				nr,
				i,
				j;
	int		   *fidx;
	const char **fpaths;

	if (!JIsObject(ev))
		DocError(path, "an expectation must be an object with \"name\", \"features\" and \"rules\"");
	ec = ev->val.binary.data;
	CheckKeys(ec, path, "name features rules description", false);

	v = JField(ec, "name");
	if (v == NULL || v->type != jbvString || v->val.string.len == 0)
		DocError(psprintf("%s.name", path), "a non-empty name string is required");
	ename = JString(v);
	if (strlen(ename) > 63)
		DocError(psprintf("%s.name", path), "must be at most 63 characters");

	v = JField(ec, "features");
	if (v == NULL || !JIsArray(v) || JsonContainerSize(v->val.binary.data) == 0)
		DocError(psprintf("%s.features", path), "a non-empty array of feature names is required");
	nf = JsonContainerSize(v->val.binary.data);
	fidx = palloc(sizeof(int) * nf);
	fpaths = palloc(sizeof(char *) * nf);
	for (i = 0; i < nf; i++)
	{
		JsonbValue *fv = getIthJsonbValueFromContainer(v->val.binary.data, i);
		char	   *fp = psprintf("%s.features[%d]", path, i);
		char	   *fname;

		if (fv->type != jbvString)
			DocError(fp, "must be a feature name string");
		fname = JString(fv);
		fidx[i] = FsFindFeature(features, nfeatures, fname);
		if (fidx[i] < 0)
			DocError(fp, psprintf("feature \"%s\" does not exist", Shorten(fname)));
		for (j = 0; j < i; j++)
			if (fidx[j] == fidx[i])
				DocError(fp, psprintf("feature \"%s\" is listed twice", fname));
		fpaths[i] = fp;
	}

	v = JField(ec, "rules");
	if (v == NULL || !JIsArray(v) || JsonContainerSize(v->val.binary.data) == 0)
		DocError(psprintf("%s.rules", path), "a non-empty array of rules is required");
	nr = JsonContainerSize(v->val.binary.data);
	for (i = 0; i < nr; i++)
	{
		JsonbValue *rv = getIthJsonbValueFromContainer(v->val.binary.data, i);
		char	   *rp = psprintf("%s.rules[%d]", path, i);
		FsRule		tmpl;

		if (!JIsObject(rv))
			DocError(rp, "a rule must be an object with a \"name\"");
		ParseRule(rv->val.binary.data, rp, &tmpl, features, fidx, nf, fpaths);
		for (j = 0; j < nf; j++)
		{
			if (*nrules >= *cap)
			{
				*cap *= 2;
				*rules = repalloc(*rules, sizeof(FsRule) * *cap);
			}
			(*rules)[*nrules] = tmpl;
			(*rules)[*nrules].expectation = ename;
			(*rules)[*nrules].feature = fidx[j];
			BindRule(&(*rules)[*nrules], &features[fidx[j]], rv->val.binary.data, rp);
			(*nrules)++;
		}
	}
	return ename;
}

static FsRule *
ParseAll(Jsonb *doc, FsFeature *features, int nfeatures, int *nrules, List **names)
{
	JsonbContainer *c = &doc->root;
	int			cap = 16,
				n,
				i;
	FsRule	   *rules = palloc(sizeof(FsRule) * cap);

	*nrules = 0;
	*names = NIL;
	if (!JsonContainerIsArray(c) || JsonContainerIsScalar(c))
		DocError("$", "the expectations must be a JSON array of expectation objects");
	n = JsonContainerSize(c);
	for (i = 0; i < n; i++)
	{
		char	   *path = psprintf("$[%d]", i);
		char	   *name;
		ListCell   *lc;

		name = ParseExpectation(getIthJsonbValueFromContainer(c, i), path,
								features, nfeatures, &rules, nrules, &cap);
		foreach(lc, *names)
			if (strcmp((char *) lfirst(lc), name) == 0)
				DocError(psprintf("%s.name", path),
						 psprintf("duplicate expectation name \"%s\"", name));
		*names = lappend(*names, name);
	}
	return rules;
}

/*
 * Parse and check a whole expectations document against the features.
 * Row rules come first in the result, batch rules after them.
 */
FsExpectations *
FsParseExpectations(Jsonb *doc, FsFeature *features, int nfeatures)
{
	FsExpectations *ex = palloc0(sizeof(FsExpectations));
	FsRule	   *rules;
	List	   *names;
	int			n,
				i,
				k = 0;

	rules = ParseAll(doc, features, nfeatures, &n, &names);
	ex->features = features;
	ex->nfeatures = nfeatures;
	ex->nrules = n;
	ex->rules = palloc(sizeof(FsRule) * Max(n, 1));
	for (i = 0; i < n; i++)
		if (!rules[i].batch)
			ex->rules[k++] = rules[i];
	ex->nrowrules = k;
	for (i = 0; i < n; i++)
		if (rules[i].batch)
			ex->rules[k++] = rules[i];
	return ex;
}

/*
 * add_expectation: the new expectation (paths relative to it, "$.rules[0]")
 * must be valid and its name new among the existing ones.
 */
void
FsCheckOneExpectation(Jsonb *expectation, Jsonb *existing,
					  FsFeature *features, int nfeatures)
{
	List	   *names;
	int			nrules,
				cap = 16;
	FsRule	   *rules = palloc(sizeof(FsRule) * cap);
	JsonbValue	ev;
	char	   *name;
	ListCell   *lc;

	(void) ParseAll(existing, features, nfeatures, &nrules, &names);
	if (JB_ROOT_IS_SCALAR(expectation) || !JB_ROOT_IS_OBJECT(expectation))
		DocError("$", "an expectation must be an object with \"name\", \"features\" and \"rules\"");
	ev.type = jbvBinary;
	ev.val.binary.data = &expectation->root;
	ev.val.binary.len = VARSIZE(expectation) - VARHDRSZ;
	nrules = 0;
	name = ParseExpectation(&ev, "$", features, nfeatures, &rules, &nrules, &cap);
	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), name) == 0)
			DocError("$.name", psprintf("an expectation named \"%s\" already exists", name));
}

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
	return Shorten(OidOutputFunctionCall(out, d));
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
