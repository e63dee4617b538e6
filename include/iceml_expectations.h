/*
 * iceml_expectations.h - parsed expectation documents (internal to the
 * feature store: src/featurestore/expectations.c parses and checks, src/featurestore/featurestore.c
 * runs the triggers).
 */
#ifndef ICEML_EXPECTATIONS_H
#define ICEML_EXPECTATIONS_H

#include "postgres.h"
#include "fmgr.h"
#include "access/tupdesc.h"
#include "utils/jsonb.h"

/* longest feature group or feature name: leaves room for "_<version>" */
#define FS_MAX_NAME_LEN		48
/* failing keys kept per rule and statement for iceml.validations */
#define FS_MAX_KEYS			5

/* what a value is, for HAS_DATATYPE and for the rules that fit a type */
typedef enum FsValueClass
{
	FS_CLASS_INTEGRAL,
	FS_CLASS_FRACTIONAL,
	FS_CLASS_STRING,
	FS_CLASS_BOOLEAN,
	FS_CLASS_ARRAY,				/* only as an accepted_type */
	FS_CLASS_OTHER				/* date, timestamp, ...: orderable, not numeric */
} FsValueClass;

typedef struct FsFeature
{
	char	   *name;
	Oid			typid;
	int32		typmod;
	bool		isarray;
	Oid			elemtype;		/* typid itself for a scalar */
	FsValueClass cls;			/* class of the value, of an element for arrays */
	AttrNumber	attno;			/* in the table; 0 when parsed from the document */
	Oid			collation;
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;
} FsFeature;

typedef enum FsRuleKind
{
	FS_HAS_MIN,
	FS_HAS_MAX,
	FS_HAS_DATATYPE,
	FS_HAS_COMPLETENESS,
	FS_IS_CONTAINED_IN,
	FS_HAS_PATTERN,
	FS_HAS_LENGTH,
	FS_IS_FINITE,
	FS_HAS_MEAN,
	FS_HAS_STDDEV,
	FS_HAS_UNIQUENESS
} FsRuleKind;

/* one rule of one expectation on one feature (an expectation over several
 * features becomes one FsRule per feature) */
typedef struct FsRule
{
	FsRuleKind	kind;
	const char *rule;			/* "HAS_MIN", ... */
	const char *expectation;	/* the expectation's name */
	int			feature;		/* index into FsExpectations.features */
	bool		batch;			/* checked once per statement */
	bool		error_level;	/* level ERROR (else WARNING) */
	bool		has_min;
	bool		has_max;
	double		min;
	double		max;
	FsValueClass accepted;		/* HAS_DATATYPE */
	bool		static_pass;	/* HAS_DATATYPE decided by the column type */
	int			nlegal;			/* IS_CONTAINED_IN */
	Datum	   *legal;
	FmgrInfo	eq;
	text	   *pattern;		/* HAS_PATTERN */
} FsRule;

typedef struct FsExpectations
{
	int			nfeatures;
	FsFeature  *features;
	int			nrules;
	FsRule	   *rules;
	int			nrowrules;		/* rules[0 .. nrowrules-1] are row rules */
} FsExpectations;

/* a failed row rule */
typedef struct FsFailure
{
	FsRule	   *rule;
	int			element;		/* 1-based array subscript, 0 for the value */
	char	   *value;			/* the offending value as text */
} FsFailure;

/* features */
extern FsFeature *FsFeaturesFromJsonb(Jsonb *features, int *nfeatures);
extern FsFeature *FsFeaturesFromTupleDesc(TupleDesc tupdesc, int *nfeatures);
extern int	FsFindFeature(FsFeature *features, int nfeatures, const char *name);
extern void FsCheckIdentifier(const char *value, const char *what);
extern void FsResolveType(const char *typestr, int index, const char *feature,
						  Oid *typid, int32 *typmod);
extern void FsDescribeType(FsFeature *f);

/* expectations: parsed, checked (22023 with the JSON path of a fault) */
extern FsExpectations *FsParseExpectations(Jsonb *doc, FsFeature *features,
										   int nfeatures);
extern void FsCheckOneExpectation(Jsonb *expectation, Jsonb *existing,
								  FsFeature *features, int nfeatures);

/* row rules: true when the value passes, else *failure filled in */
extern bool FsCheckRowRule(FsRule *rule, FsFeature *f, Datum value, bool isnull,
						   FsFailure *failure);

#endif							/* ICEML_EXPECTATIONS_H */
