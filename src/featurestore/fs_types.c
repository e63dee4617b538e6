/*
 * fs_types.c - feature lists of the feature store: names checked as
 * identifiers, the types a feature may have (scalars and one-dimensional
 * arrays of them) and their classes, read from a features document or from
 * a table's columns.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "iceml_expectations.h"
#include "expectations_internal.h"

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
				 errmsg("invalid %s \"%s\"", what, FsShorten(pstrdup(value))),
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
		parsed = FsTryInSubxact(DoParseType, &call) == NULL;
		*typid = call.typid;
		*typmod = call.typmod;
	}
	if (!parsed || !OidIsValid(*typid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid feature at $[%d] (\"%s\"): unknown type \"%s\"",
						index, feature, FsShorten(pstrdup(typestr))),
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

		if (!FsJIsObject(v))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid feature at %s: must be an object with \"name\" and \"type\"", path)));
		FsCheckKeys(v->val.binary.data, path, "name type description", true);
		name = FsJField(v->val.binary.data, "name");
		type = FsJField(v->val.binary.data, "type");
		if (name == NULL || name->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid feature at %s.name: a string is required", path)));
		out[i].name = FsJString(name);
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
								path, FsShorten(out[i].name)),
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
		FsResolveType(FsJString(type), i, out[i].name, &out[i].typid, &out[i].typmod);
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
