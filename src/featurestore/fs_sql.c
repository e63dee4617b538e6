/*
 * fs_sql.c - C helpers of the feature store's SQL functions
 * (src/sql/10_featurestore.sql): names checked as identifiers, the DDL
 * of a feature group table, expectation documents checked before they are
 * stored.
 */
#include "postgres.h"

#include "access/relation.h"
#include "utils/builtins.h"

#include "featurestore_internal.h"

PG_FUNCTION_INFO_V1(iceml_fs_table_ddl);
PG_FUNCTION_INFO_V1(iceml_fs_check_expectations);
PG_FUNCTION_INFO_V1(iceml_fs_check_expectation);
PG_FUNCTION_INFO_V1(iceml_fs_check_name);

/* ----------------------------------------------------------------
 * helpers of the SQL functions
 * ---------------------------------------------------------------- */

/* iceml._fs_check_name(name text, what text): a safe identifier, or 22023 */
Datum
iceml_fs_check_name(PG_FUNCTION_ARGS)
{
	FsCheckIdentifier(text_to_cstring(PG_GETARG_TEXT_PP(0)),
					  text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}

/*
 * iceml._fs_table_ddl(features jsonb, primary_key text[]) RETURNS text: the
 * column list of CREATE TABLE, from checked names (quoted anyway) and types
 * written back from their oids, with the primary key.
 */
Datum
iceml_fs_table_ddl(PG_FUNCTION_ARGS)
{
	Jsonb	   *doc = PG_GETARG_JSONB_P(0);
	ArrayType  *pk = PG_GETARG_ARRAYTYPE_P(1);
	FsFeature  *features;
	int			nf,
				npk,
				i,
				j;
	Datum	   *pkd;
	bool	   *pkn;
	bool	   *inpk;
	StringInfoData s;

	features = FsFeaturesFromJsonb(doc, &nf);
	if (ARR_NDIM(pk) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("primary_key must be a one-dimensional array of feature names")));
	deconstruct_array(pk, TEXTOID, -1, false, TYPALIGN_INT, &pkd, &pkn, &npk);
	if (npk == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("primary_key must name at least one feature"),
				 errhint("For example primary_key => ARRAY['id'].")));
	inpk = palloc0(sizeof(bool) * nf);
	initStringInfo(&s);
	for (i = 0; i < npk; i++)
	{
		char	   *name;
		int			k;

		if (pkn[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("primary_key[%d] is NULL", i + 1)));
		name = TextDatumGetCString(pkd[i]);
		k = FsFindFeature(features, nf, name);
		if (k < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("primary_key[%d] \"%s\" is not a feature", i + 1, name)));
		if (inpk[k])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("primary_key[%d] \"%s\" is listed twice", i + 1, name)));
		if (features[k].isarray)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("primary_key[%d] \"%s\" is an array feature", i + 1, name),
					 errhint("A primary key is made of scalar features such as an id.")));
		inpk[k] = true;
	}
	for (i = 0; i < nf; i++)
		appendStringInfo(&s, "%s%s %s%s", i ? ", " : "", quote_identifier(features[i].name),
						 format_type_with_typemod(features[i].typid, features[i].typmod),
						 inpk[i] ? " NOT NULL" : "");
	appendStringInfoString(&s, ", PRIMARY KEY (");
	for (j = 0; j < npk; j++)
		appendStringInfo(&s, "%s%s", j ? ", " : "",
						 quote_identifier(TextDatumGetCString(pkd[j])));
	appendStringInfoChar(&s, ')');
	PG_RETURN_TEXT_P(cstring_to_text(s.data));
}

/* iceml._fs_check_expectations(features jsonb, expectations jsonb) */
Datum
iceml_fs_check_expectations(PG_FUNCTION_ARGS)
{
	int			nf;
	FsFeature  *features = FsFeaturesFromJsonb(PG_GETARG_JSONB_P(0), &nf);

	(void) FsParseExpectations(PG_GETARG_JSONB_P(1), features, nf);
	PG_RETURN_VOID();
}

/*
 * iceml._fs_check_expectation(feature_group regclass, existing jsonb,
 * expectation jsonb): one more expectation for a table, checked against its
 * live columns.
 */
Datum
iceml_fs_check_expectation(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Relation	rel = relation_open(relid, AccessShareLock);
	int			nf;
	FsFeature  *features = FsFeaturesFromTupleDesc(RelationGetDescr(rel), &nf);

	FsCheckOneExpectation(PG_GETARG_JSONB_P(2), PG_GETARG_JSONB_P(1), features, nf);
	relation_close(rel, AccessShareLock);
	PG_RETURN_VOID();
}
