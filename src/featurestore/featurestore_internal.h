/*
 * featurestore_internal.h - the per-backend cache of feature groups and the
 * findings of the current statement, shared by the row trigger
 * (featurestore.c) and the statement trigger (fs_commit.c).  Not for use
 * outside these files.
 */
#ifndef ICEML_FEATURESTORE_INTERNAL_H
#define ICEML_FEATURESTORE_INTERNAL_H

#include "executor/spi.h"
#include "storage/itemptr.h"
#include "utils/rel.h"

#include "iceml_expectations.h"
#include "iceml_fs.h"

typedef enum FsMode
{
	FS_MODE_STRICT,
	FS_MODE_WARNING,
	FS_MODE_ALL,
	FS_MODE_NONE
} FsMode;

extern const char *const fs_mode_names[];

/* a rule that failed without blocking, during the current statement */
typedef struct FsFinding
{
	char	   *expectation;
	const char *rule;
	char	   *feature;
	bool		error_level;
	bool		batch;
	int64		failures;
	int			nkeys;
	char	   *keys[FS_MAX_KEYS];
	char	   *value;			/* first failing value, or the observed batch value */
	double		observed;
	bool		has_observed;
} FsFinding;

typedef struct FsCacheEntry
{
	Oid			relid;			/* hash key */
	bool		parsed;			/* ex etc. valid for (xmin, tid) */
	bool		is_fg;			/* the table is in iceml.feature_groups */
	bool		stamped;		/* checked against the catalog in (lxid, cid) */
	LocalTransactionId lxid;
	CommandId	cid;
	TransactionId xmin;
	ItemPointerData tid;
	int64		fg_id;
	FsMode		mode;
	MemoryContext cxt;			/* the parse below */
	char	   *fgname;
	FsExpectations *ex;
	int			npk;
	AttrNumber *pkatts;
	char	  **pknames;
	Oid		   *pkout;
	int			ndetoast;
	AttrNumber *detoast;		/* array features read by row rules */

	/* findings of the current statement, in findcxt */
	MemoryContext findcxt;
	int			find_level;		/* transaction nest level of the first one */
	int			nfindings;
	int			capfindings;
	FsFinding  *findings;
} FsCacheEntry;

/* featurestore.c */
extern FsCacheEntry *GetEntry(Relation rel);
extern void ForgetFindings(FsCacheEntry *e);
extern FsFinding *FindingFor(FsCacheEntry *e, FsRule *r);
extern char *DescribeRule(FsRule *r);
extern bool Blocks(FsMode mode, FsRule *r);
extern SPIPlanPtr KeepPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types);

#endif							/* ICEML_FEATURESTORE_INTERNAL_H */
