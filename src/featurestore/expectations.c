/*
 * expectations.c - feature lists and expectation documents of the feature
 * store: parsed and checked once (every fault refused with SQLSTATE 22023 and
 * the JSON path of the offending field), then evaluated row by row by the
 * BEFORE ROW trigger of src/featurestore/featurestore.c.
 *
 * An expectation is {"name", "features": [...], "rules": [...]}; each rule
 * applies to each of the expectation's features, so the parsed form is a flat
 * array of FsRule, one per (rule, feature), row rules first.
 *
 * This file: expectation documents.  fs_types.c: feature lists, names and
 * types.  fs_json.c: the helpers both parsers share.  expectations_check.c: the
 * row rules evaluated by the trigger.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_collation.h"
#include "regex/regex.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "iceml_expectations.h"
#include "expectations_internal.h"

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

static void
DoRegex(void *arg)
{
	RegexCall  *c = arg;

	(void) RE_compile_and_cache(c->pattern, REG_ADVANCED, c->collation);
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
	JsonbValue *vmin = FsJField(rc, "min");
	JsonbValue *vmax = FsJField(rc, "max");

	if (vmin)
	{
		char	   *p = psprintf("%s.min", rpath);

		r->has_min = true;
		r->min = FsJNumber(vmin, p);
		if (r->min < lo || r->min > hi)
			FsDocError(p, psprintf("must be between %g and %g", lo, hi));
	}
	if (vmax)
	{
		char	   *p = psprintf("%s.max", rpath);

		r->has_max = true;
		r->max = FsJNumber(vmax, p);
		if (r->max < lo || r->max > hi)
			FsDocError(p, psprintf("must be between %g and %g", lo, hi));
	}
	if (r->has_min && r->has_max && r->min > r->max)
		FsDocError(psprintf("%s.max", rpath),
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
	v = FsJField(rc, "name");
	if (v == NULL)
		FsDocError(psprintf("%s.name", rpath), "a rule name is required");
	if (v->type != jbvString)
		FsDocError(psprintf("%s.name", rpath), "must be a string");
	rname = FsJString(v);
	for (i = 0; i < (int) lengthof(rule_specs); i++)
		if (pg_strcasecmp(rule_specs[i].name, rname) == 0)
			spec = &rule_specs[i];
	if (spec == NULL)
		FsDocError(psprintf("%s.name", rpath),
				 psprintf("unknown rule \"%s\" (rules: HAS_MIN, HAS_MAX, HAS_DATATYPE, HAS_COMPLETENESS, IS_CONTAINED_IN, HAS_PATTERN, HAS_LENGTH, IS_FINITE, HAS_MEAN, HAS_STDDEV, HAS_UNIQUENESS)",
						  FsShorten(rname)));
	FsCheckKeys(rc, rpath, psprintf("name level description %s", spec->params), false);
	r->kind = spec->kind;
	r->rule = spec->name;

	r->error_level = true;
	v = FsJField(rc, "level");
	if (v)
	{
		char	   *level;

		if (v->type != jbvString)
			FsDocError(psprintf("%s.level", rpath), "must be \"ERROR\" or \"WARNING\"");
		level = FsJString(v);
		if (pg_strcasecmp(level, "ERROR") == 0)
			r->error_level = true;
		else if (pg_strcasecmp(level, "WARNING") == 0)
			r->error_level = false;
		else
			FsDocError(psprintf("%s.level", rpath),
					 psprintf("unknown level \"%s\" (levels: ERROR, WARNING)", FsShorten(level)));
	}

	switch (r->kind)
	{
		case FS_HAS_MIN:
			v = FsJField(rc, "min");
			if (v == NULL)
				FsDocError(psprintf("%s.min", rpath), "HAS_MIN needs a \"min\" bound");
			r->has_min = true;
			r->min = FsJNumber(v, psprintf("%s.min", rpath));
			break;
		case FS_HAS_MAX:
			v = FsJField(rc, "max");
			if (v == NULL)
				FsDocError(psprintf("%s.max", rpath), "HAS_MAX needs a \"max\" bound");
			r->has_max = true;
			r->max = FsJNumber(v, psprintf("%s.max", rpath));
			break;
		case FS_HAS_DATATYPE:
			{
				char	   *t;
				char	   *p = psprintf("%s.accepted_type", rpath);

				v = FsJField(rc, "accepted_type");
				if (v == NULL)
					FsDocError(p, "HAS_DATATYPE needs an \"accepted_type\"");
				if (v->type != jbvString)
					FsDocError(p, "must be a string");
				t = FsJString(v);
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
					FsDocError(p, psprintf("unknown type \"%s\" (types: Integral, Fractional, String, Boolean, Array)",
										 FsShorten(t)));
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

				v = FsJField(rc, "legal_values");
				if (v == NULL)
					FsDocError(p, "IS_CONTAINED_IN needs \"legal_values\"");
				if (!FsJIsArray(v) || JsonContainerSize(v->val.binary.data) == 0)
					FsDocError(p, "must be a non-empty array");
				lc = v->val.binary.data;
				r->nlegal = JsonContainerSize(lc);
				for (i = 0; i < r->nlegal; i++)
				{
					JsonbValue *e = getIthJsonbValueFromContainer(lc, i);

					if (e->type != jbvString && e->type != jbvNumeric && e->type != jbvBool)
						FsDocError(psprintf("%s[%d]", p, i), "must be a string, number or boolean");
				}
				break;
			}
		case FS_HAS_PATTERN:
			{
				char	   *p = psprintf("%s.pattern", rpath);

				v = FsJField(rc, "pattern");
				if (v == NULL)
					FsDocError(p, "HAS_PATTERN needs a \"pattern\"");
				if (v->type != jbvString)
					FsDocError(p, "must be a string");
				r->pattern = cstring_to_text_with_len(v->val.string.val, v->val.string.len);
				break;
			}
		case FS_HAS_LENGTH:
			v = FsJField(rc, "value");
			if (v)
			{
				char	   *p = psprintf("%s.value", rpath);
				double		d = FsJNumber(v, p);

				if (d < 0 || d != floor(d) || d > INT_MAX)
					FsDocError(p, "must be a non-negative integer");
				if (FsJField(rc, "min") || FsJField(rc, "max"))
					FsDocError(p, "give either \"value\" or \"min\"/\"max\", not both");
				r->has_min = r->has_max = true;
				r->min = r->max = d;
			}
			else
			{
				ParseBounds(rc, rpath, r, 0.0, (double) INT_MAX);
				if (!r->has_min && !r->has_max)
					FsDocError(psprintf("%s.value", rpath),
							 "HAS_LENGTH needs a \"value\" or a \"min\"/\"max\" bound");
			}
			break;
		case FS_IS_FINITE:
			break;
		case FS_HAS_MEAN:
		case FS_HAS_STDDEV:
			ParseBounds(rc, rpath, r, r->kind == FS_HAS_STDDEV ? 0.0 : -DBL_MAX, DBL_MAX);
			if (!r->has_min && !r->has_max)
				FsDocError(psprintf("%s.min", rpath),
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
			FsDocError(rpath,
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
		JsonbContainer *lc = FsJField(rc, "legal_values")->val.binary.data;
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
				call.str = FsJString(e);
			else if (e->type == jbvBool)
				call.str = e->val.boolean ? "true" : "false";
			else
				call.str = DatumGetCString(DirectFunctionCall1(numeric_out,
															   NumericGetDatum(e->val.numeric)));
			err = FsTryInSubxact(DoInput, &call);
			if (err)
				FsDocError(psprintf("%s.legal_values[%d]", rpath, i),
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
		err = FsTryInSubxact(DoRegex, &call);
		if (err)
			FsDocError(psprintf("%s.pattern", rpath), err);
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

	if (!FsJIsObject(ev))
		FsDocError(path, "an expectation must be an object with \"name\", \"features\" and \"rules\"");
	ec = ev->val.binary.data;
	FsCheckKeys(ec, path, "name features rules description", false);

	v = FsJField(ec, "name");
	if (v == NULL || v->type != jbvString || v->val.string.len == 0)
		FsDocError(psprintf("%s.name", path), "a non-empty name string is required");
	ename = FsJString(v);
	if (strlen(ename) > 63)
		FsDocError(psprintf("%s.name", path), "must be at most 63 characters");

	v = FsJField(ec, "features");
	if (v == NULL || !FsJIsArray(v) || JsonContainerSize(v->val.binary.data) == 0)
		FsDocError(psprintf("%s.features", path), "a non-empty array of feature names is required");
	nf = JsonContainerSize(v->val.binary.data);
	fidx = palloc(sizeof(int) * nf);
	fpaths = palloc(sizeof(char *) * nf);
	for (i = 0; i < nf; i++)
	{
		JsonbValue *fv = getIthJsonbValueFromContainer(v->val.binary.data, i);
		char	   *fp = psprintf("%s.features[%d]", path, i);
		char	   *fname;

		if (fv->type != jbvString)
			FsDocError(fp, "must be a feature name string");
		fname = FsJString(fv);
		fidx[i] = FsFindFeature(features, nfeatures, fname);
		if (fidx[i] < 0)
			FsDocError(fp, psprintf("feature \"%s\" does not exist", FsShorten(fname)));
		for (j = 0; j < i; j++)
			if (fidx[j] == fidx[i])
				FsDocError(fp, psprintf("feature \"%s\" is listed twice", fname));
		fpaths[i] = fp;
	}

	v = FsJField(ec, "rules");
	if (v == NULL || !FsJIsArray(v) || JsonContainerSize(v->val.binary.data) == 0)
		FsDocError(psprintf("%s.rules", path), "a non-empty array of rules is required");
	nr = JsonContainerSize(v->val.binary.data);
	for (i = 0; i < nr; i++)
	{
		JsonbValue *rv = getIthJsonbValueFromContainer(v->val.binary.data, i);
		char	   *rp = psprintf("%s.rules[%d]", path, i);
		FsRule		tmpl;

		if (!FsJIsObject(rv))
			FsDocError(rp, "a rule must be an object with a \"name\"");
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
		FsDocError("$", "the expectations must be a JSON array of expectation objects");
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
				FsDocError(psprintf("%s.name", path),
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
		FsDocError("$", "an expectation must be an object with \"name\", \"features\" and \"rules\"");
	ev.type = jbvBinary;
	ev.val.binary.data = &expectation->root;
	ev.val.binary.len = VARSIZE(expectation) - VARHDRSZ;
	nrules = 0;
	name = ParseExpectation(&ev, "$", features, nfeatures, &rules, &nrules, &cap);
	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), name) == 0)
			FsDocError("$.name", psprintf("an expectation named \"%s\" already exists", name));
}
