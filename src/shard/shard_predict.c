/*
 * shard_predict.c - predictions where the rows are: iceml_predict over a
 * sharded feature group runs on the nodes, through postgres_fdw.
 *
 * postgres_fdw sends a function to a node only if it is IMMUTABLE and
 * belongs to an extension listed in the server's "extensions" option
 * (iceml's nodes list iceml).  iceml_predict(name, ...) is STABLE: the model
 * behind a deployment name changes with every deploy.  The shippable form
 * is iceml.predict_model(model_id, content_hash, band_1, band_2,
 * inc_angle): the model is named by its content (SHA-256 of the serialised
 * net and its channels), so the function's answer can never change, which
 * is what IMMUTABLE means; model_id is only the model's name in errors.
 *
 * The planner hook below, for a query that reads a sharded feature group
 * (its partitioned table or one of its foreign partitions) and calls
 * iceml_predict with a constant deployment name or model id:
 *   1. resolves the name to the deployed model with the planner's snapshot
 *      (so exactly what iceml_predict would use in this statement: a
 *      rolled-back or not yet committed deploy of another session is never
 *      seen), and rewrites the call into iceml.predict_model(id, hash, ...);
 *   2. copies the model to each node of those groups unless the node has
 *      it (iceml.receive_model there, on a connection of its own committed
 *      at once: the copy is content-addressed, so it is right whether or
 *      not this transaction commits, and it must be visible to
 *      postgres_fdw's own connection before the query runs);
 *   3. makes the plan depend on iceml.deployments, so that a cached plan is
 *      planned again (and the new model resolved and shipped) once a deploy
 *      or a model change commits (the triggers of src/serving/predict.c send that
 *      relcache invalidation at commit only);
 *   4. if the query is a plain scan of the group (SELECT ... FROM group
 *      WHERE ...), rewrites it into a grouping by the primary key with the
 *      prediction as min(iceml.predict_model(...)) over the one row of each
 *      key, and plans it with enable_partitionwise_aggregate: postgres_fdw
 *      sends a base table scan as "SELECT columns", never an expression of
 *      its target list, but it sends a grouping (with its expressions) to
 *      the node when the grouping includes the partition key.  Every key is
 *      on one node and unique there, so each group is exactly one row and
 *      the answer is the plain scan's.  The shards' aggregations are async
 *      foreign scans, run on all nodes at once.
 * A WHERE clause with iceml_predict is sent to the nodes by postgres_fdw
 * as it is, once rewritten (step 1).
 *
 * On every server, iceml.predict_model takes its model from
 * iceml.shipped_models (the copies a coordinator sent) or, when the model
 * is one of this server's own, from iceml.models after checking its
 * content hash, into a small per-backend cache keyed by content hash (a
 * copy never changes, so it is never stale).
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/parallel.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/cost.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
#include "parser/parse_oper.h"
#include "partitioning/partdesc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "access/table.h"

#include "iceml.h"
#include "iceml_catalog.h"
#include "iceml_predict.h"
#include "iceml_shard.h"
#include "shard_internal.h"


static bool shard_predict = true;
static planner_hook_type prev_planner_hook = NULL;
static set_rel_pathlist_hook_type prev_rel_pathlist_hook = NULL;
static Oid	planning_predict_model = InvalidOid;	/* set while planning a rewrite */

/* ---- the coordinator: the query rewrite ------------------------------------- */

typedef struct Rewrite
{
	Oid			predict_model_oid;
	Oid			min_real_oid;
	List	   *sharded;		/* relids of sharded groups and their partitions */
	List	   *nodes;			/* their nodes (char *) */
	List	   *shipped;		/* "node/hash" done in this planning */
	bool		grouped;		/* a scan was turned into a grouping */
} Rewrite;

typedef struct PredictScan
{
	bool		predict;		/* an iceml_predict call */
	List	   *relids;			/* partitioned and foreign relations */
} PredictScan;

static bool
ScanWalker(Node *node, PredictScan *s)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr))
	{
		bool		by_name;

		if (!s->predict && IsPredictFunc(((FuncExpr *) node)->funcid, &by_name))
			s->predict = true;
	}
	else if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION &&
			(rte->relkind == RELKIND_PARTITIONED_TABLE || rte->relkind == RELKIND_FOREIGN_TABLE))
			s->relids = list_append_unique_oid(s->relids, rte->relid);
		return false;
	}
	else if (IsA(node, Query))
		return query_tree_walker((Query *) node, ScanWalker, s, QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, ScanWalker, s);
}

/* which of relids are sharded groups or their partitions, and their nodes */
static void
ShardedRelations(List *relids, Rewrite *rw)
{
	IcemlOwnerContext own;
	Datum	   *d = palloc(sizeof(Datum) * list_length(relids));
	int			n = 0;
	ListCell   *lc;
	Oid			t[1] = {OIDARRAYOID};
	Datum		a[1];
	MemoryContext outer = CurrentMemoryContext;

	foreach(lc, relids)
		d[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	a[0] = PointerGetDatum(construct_array(d, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	BecomeCatalogOwner(&own);
	if (SPI_execute_with_args("SELECT x.relid, s.node FROM iceml.shards s"
							  " JOIN iceml.feature_groups g ON g.id OPERATOR(pg_catalog.=) s.feature_group_id,"
							  " LATERAL pg_catalog.unnest($1) AS x(relid)"
							  " WHERE g.\"table\"::pg_catalog.oid OPERATOR(pg_catalog.=) x.relid"
							  "    OR s.\"partition\"::pg_catalog.oid OPERATOR(pg_catalog.=) x.relid"
							  " ORDER BY s.node",
							  1, t, a, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "iceml: shard lookup failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		char	   *node = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		bool		seen = false;
		/* the lists live in the planner's context, not SPI's */
		MemoryContext old = MemoryContextSwitchTo(outer);

		node = pstrdup(node);
		rw->sharded = list_append_unique_oid(rw->sharded, relid);
		foreach(lc, rw->nodes)
			if (strcmp((char *) lfirst(lc), node) == 0)
				seen = true;
		if (!seen)
			rw->nodes = lappend(rw->nodes, node);
		MemoryContextSwitchTo(old);
	}
	RestoreUser(&own);
	SPI_finish();
}

static bool
IsPredictModel(Node *node, Rewrite *rw)
{
	return node && IsA(node, FuncExpr) && ((FuncExpr *) node)->funcid == rw->predict_model_oid;
}

/* iceml_predict(const, ...) -> iceml.predict_model(id, hash, ...) */
static Node *
RewritePredict(FuncExpr *f, Rewrite *rw)
{
	bool		by_name;
	HeapTuple	tup;
	List	   *args;
	Const	   *first;
	int64		model_id;
	char		hash[HASH_HEX_LEN + 1];
	ListCell   *lc;

	if (!IsPredictFunc(f->funcid, &by_name) ||
		pg_proc_aclcheck(f->funcid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		return NULL;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(f->funcid));
	if (!HeapTupleIsValid(tup))
		return NULL;
	args = expand_function_arguments(f->args, false, f->funcresulttype, tup);
	ReleaseSysCache(tup);
	if (list_length(args) != 4 || !IsA(linitial(args), Const))
		return NULL;
	first = (Const *) linitial(args);
	if (first->constisnull)
		return NULL;
	if (!ResolveModel(by_name ? TextDatumGetCString(first->constvalue) : NULL,
					  by_name ? 0 : DatumGetInt64(first->constvalue), &model_id, hash))
		return NULL;
	foreach(lc, rw->nodes)
	{
		char	   *key = psprintf("%s/%s", (char *) lfirst(lc), hash);
		ListCell   *lc2;
		bool		done = false;

		foreach(lc2, rw->shipped)
			if (strcmp((char *) lfirst(lc2), key) == 0)
				done = true;
		if (!done)
		{
			ShipModel((char *) lfirst(lc), model_id, hash);
			rw->shipped = lappend(rw->shipped, key);
		}
	}
	return (Node *) makeFuncExpr(rw->predict_model_oid, FLOAT4OID,
								 list_make5(makeConst(INT8OID, -1, InvalidOid, sizeof(int64),
													  Int64GetDatum(model_id), false, FLOAT8PASSBYVAL),
											makeConst(BYTEAOID, -1, InvalidOid, -1,
													  PointerGetDatum(HashBytes(hash)), false, false),
											lsecond(args), lthird(args), lfourth(args)),
								 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
}

/* Vars of this query level outside predict_model calls */
typedef struct OutsideVars
{
	Rewrite    *rw;
	List	   *vars;
	bool		upper;			/* a Var or aggregate of an outer query */
} OutsideVars;

static bool
OutsideVarsWalker(Node *node, OutsideVars *ov)
{
	if (node == NULL)
		return false;
	if (IsPredictModel(node, ov->rw))
	{
		/* its own arguments may not reach outer queries either */
		List	   *save = ov->vars;
		bool		r = expression_tree_walker(node, OutsideVarsWalker, ov);

		ov->vars = save;
		return r;
	}
	if (IsA(node, Var))
	{
		if (((Var *) node)->varlevelsup > 0)
			ov->upper = true;
		else
			ov->vars = list_append_unique(ov->vars, node);
		return false;
	}
	if (IsA(node, Aggref) || IsA(node, GroupingFunc) || IsA(node, PlaceHolderVar))
		ov->upper = true;
	return expression_tree_walker(node, OutsideVarsWalker, ov);
}

static bool
ContainsPredictModel(Node *node, Rewrite *rw)
{
	if (node == NULL)
		return false;
	if (IsPredictModel(node, rw))
		return true;
	return expression_tree_walker(node, ContainsPredictModel, rw);
}

static Node *
WrapInMin(Node *node, Rewrite *rw)
{
	if (node == NULL)
		return NULL;
	if (IsPredictModel(node, rw))
	{
		Aggref	   *a = makeNode(Aggref);

		a->aggfnoid = rw->min_real_oid;
		a->aggtype = FLOAT4OID;
		a->aggcollid = InvalidOid;
		a->inputcollid = InvalidOid;
		a->aggtranstype = InvalidOid;
		a->aggargtypes = list_make1_oid(FLOAT4OID);
		a->args = list_make1(makeTargetEntry((Expr *) node, 1, NULL, false));
		a->aggkind = AGGKIND_NORMAL;
		a->agglevelsup = 0;
		a->aggsplit = AGGSPLIT_SIMPLE;
		a->aggno = -1;
		a->aggtransno = -1;
		a->location = -1;
		return (Node *) a;
	}
	return expression_tree_mutator(node, WrapInMin, rw);
}

/* make tle a grouping key (false: its type cannot be grouped) */
static bool
GroupBy(TargetEntry *tle, List **groups, Index *nextref)
{
	Oid			sortop,
				eqop;
	bool		hashable;
	SortGroupClause *sgc;
	ListCell   *lc;

	if (tle->ressortgroupref)
		foreach(lc, *groups)
			if (((SortGroupClause *) lfirst(lc))->tleSortGroupRef == tle->ressortgroupref)
				return true;
	get_sort_group_operators(exprType((Node *) tle->expr), false, false, false,
							 &sortop, &eqop, NULL, &hashable);
	if (!OidIsValid(eqop) || (!OidIsValid(sortop) && !hashable))
		return false;
	if (tle->ressortgroupref == 0)
		tle->ressortgroupref = (*nextref)++;
	sgc = makeNode(SortGroupClause);
	sgc->tleSortGroupRef = tle->ressortgroupref;
	sgc->eqop = eqop;
	sgc->sortop = sortop;
	sgc->nulls_first = false;
	sgc->hashable = hashable;
	*groups = lappend(*groups, sgc);
	return true;
}

static TargetEntry *
FindOrAddJunk(List **tlist, Expr *expr)
{
	ListCell   *lc;
	TargetEntry *tle;

	foreach(lc, *tlist)
		if (equal(((TargetEntry *) lfirst(lc))->expr, expr))
			return (TargetEntry *) lfirst(lc);
	tle = makeTargetEntry((Expr *) copyObject(expr), list_length(*tlist) + 1, NULL, true);
	*tlist = lappend(*tlist, tle);
	return tle;
}

/*
 * SELECT ... FROM <sharded group or shard> WHERE ... whose target list
 * predicts: grouped by the partition key and every other column the target
 * list reads outside the predictions, each prediction min() over its one
 * row (see the top of the file).  Anything else is left as it is.
 */
static void
GroupRewrite(Query *q, Rewrite *rw)
{
	RangeTblEntry *rte;
	Oid			keyrel;
	Relation	rel;
	PartitionKey key;
	List	   *tlist;
	List	   *groups = NIL;
	Index		nextref = 1;
	ListCell   *lc;
	bool		any = false;

	if (q->commandType != CMD_SELECT || list_length(q->rtable) != 1 ||
		list_length(q->jointree->fromlist) != 1 ||
		!IsA(linitial(q->jointree->fromlist), RangeTblRef) ||
		q->hasAggs || q->hasWindowFuncs || q->hasTargetSRFs || q->hasSubLinks ||
		q->hasDistinctOn || q->hasRecursive || q->hasModifyingCTE || q->hasForUpdate ||
		q->hasRowSecurity || q->cteList || q->groupClause || q->groupingSets ||
		q->havingQual || q->windowClause || q->distinctClause || q->limitCount ||
		q->limitOffset || q->rowMarks || q->setOperations || q->utilityStmt)
		return;
	rte = linitial(q->rtable);
	if (rte->rtekind != RTE_RELATION || rte->securityQuals ||
		!list_member_oid(rw->sharded, rte->relid) || rte->tablesample)
		return;
	if (contain_volatile_functions((Node *) q->targetList) ||
		contain_volatile_functions(q->jointree->quals))
		return;
	foreach(lc, q->targetList)
	{
		TargetEntry *tle = lfirst(lc);

		if (tle->ressortgroupref >= nextref)
			nextref = tle->ressortgroupref + 1;
		if (ContainsPredictModel((Node *) tle->expr, rw))
			any = true;
	}
	if (!any)
		return;

	/* the partition key: of the table, or of a shard's parent */
	keyrel = rte->relkind == RELKIND_PARTITIONED_TABLE ? rte->relid
		: get_partition_parent(rte->relid, true);
	if (!OidIsValid(keyrel))
		return;
	tlist = copyObject(q->targetList);
	rel = table_open(keyrel, AccessShareLock);
	key = RelationGetPartitionKey(rel);
	for (int i = 0; key && i < key->partnatts; i++)
	{
		AttrNumber	att;
		Oid			typid,
					coll;
		int32		typmod;

		if (key->partattrs[i] == 0)
		{
			table_close(rel, AccessShareLock);
			return;
		}
		att = get_attnum(rte->relid, get_attname(keyrel, key->partattrs[i], false));
		if (att == InvalidAttrNumber)
		{
			table_close(rel, AccessShareLock);
			return;
		}
		get_atttypetypmodcoll(rte->relid, att, &typid, &typmod, &coll);
		if (!GroupBy(FindOrAddJunk(&tlist, (Expr *) makeVar(1, att, typid, typmod, coll, 0)),
					 &groups, &nextref))
		{
			table_close(rel, AccessShareLock);
			return;
		}
	}
	table_close(rel, AccessShareLock);
	if (key == NULL)
		return;

	for (int i = 0, n = list_length(tlist); i < n; i++)
	{
		TargetEntry *tle = list_nth(tlist, i);
		OutsideVars ov = {rw, NIL, false};

		OutsideVarsWalker((Node *) tle->expr, &ov);
		if (ov.upper)
			return;
		if (ContainsPredictModel((Node *) tle->expr, rw))
		{
			tle->expr = (Expr *) WrapInMin((Node *) tle->expr, rw);
			foreach(lc, ov.vars)
				if (!GroupBy(FindOrAddJunk(&tlist, lfirst(lc)), &groups, &nextref))
					return;
		}
		else if (ov.vars != NIL && !GroupBy(tle, &groups, &nextref))
			return;
	}
	q->targetList = tlist;
	q->groupClause = groups;
	q->hasAggs = true;
	rw->grouped = true;
}

static Node *
RewriteMutator(Node *node, Rewrite *rw)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Query))
	{
		Query	   *q = query_tree_mutator((Query *) node, RewriteMutator, rw, 0);

		GroupRewrite(q, rw);
		return (Node *) q;
	}
	if (IsA(node, FuncExpr))
	{
		FuncExpr   *f = (FuncExpr *) expression_tree_mutator(node, RewriteMutator, rw);
		Node	   *r = RewritePredict(f, rw);

		return r ? r : (Node *) f;
	}
	return expression_tree_mutator(node, RewriteMutator, rw);
}

/*
 * The scan of one shard (a foreign table of an iceml node) in a query this
 * file turned into a grouping that predicts: its paths are disabled as
 * enable_seqscan = off disables a path (disable_cost), so that the planner
 * takes postgres_fdw's path that runs the grouping, predictions included,
 * on the node.  postgres_fdw costs that path from the coordinator's point
 * of view: the predictions (COST 100000 each) cost the same there as here,
 * a group is a row, and the remote path always comes out a little dearer
 * than fetching every row's bands and predicting here.  But that work is
 * the node's, on the node's cores and in parallel with the other nodes.
 * Where postgres_fdw has no such path (a WHERE clause it cannot send), the
 * disabled scan is still the plan, and the coordinator predicts.
 */
static bool
TargetPredicts(Node *node, Oid *fn)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr) && ((FuncExpr *) node)->funcid == *fn)
		return true;
	return expression_tree_walker(node, TargetPredicts, fn);
}

static void
ShardRelPathlist(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	ListCell   *lc;
	ForeignServer *srv;

	if (prev_rel_pathlist_hook)
		prev_rel_pathlist_hook(root, rel, rti, rte);
	if (!OidIsValid(planning_predict_model) || rte->rtekind != RTE_RELATION ||
		rte->relkind != RELKIND_FOREIGN_TABLE || !OidIsValid(rel->serverid) ||
		root->parse->groupClause == NIL ||
		!TargetPredicts((Node *) root->parse->targetList, &planning_predict_model))
		return;
	srv = GetForeignServer(rel->serverid);
	if (strncmp(srv->servername, "iceml_node_", strlen("iceml_node_")) != 0)
		return;
	foreach(lc, rel->pathlist)
	{
		Path	   *p = lfirst(lc);

		p->startup_cost += disable_cost;
		p->total_cost += disable_cost;
	}
	rel->partial_pathlist = NIL;
}

static PlannedStmt *
PlanWith(Query *parse, const char *query_string, int cursorOptions,
		 ParamListInfo boundParams, Oid predict_model)
{
	Oid			save = planning_predict_model;
	PlannedStmt *result;

	planning_predict_model = predict_model;
	PG_TRY();
	{
		if (prev_planner_hook)
			result = prev_planner_hook(parse, query_string, cursorOptions, boundParams);
		else
			result = standard_planner(parse, query_string, cursorOptions, boundParams);
	}
	PG_FINALLY();
	{
		planning_predict_model = save;
	}
	PG_END_TRY();
	return result;
}

static PlannedStmt *
ShardPlanner(Query *parse, const char *query_string, int cursorOptions,
			 ParamListInfo boundParams)
{
	PredictScan		s = {false, NIL};
	Rewrite		rw;
	PlannedStmt *result;
	int			nest = -1;
	Oid			nsp;

	memset(&rw, 0, sizeof(rw));
	if (shard_predict && !IsParallelWorker() && ActiveSnapshotSet())
		ScanWalker((Node *) parse, &s);
	if (s.predict && s.relids != NIL)
		ShardedRelations(s.relids, &rw);
	if (rw.nodes != NIL)
	{
		Oid			types[5] = {INT8OID, BYTEAOID, FLOAT4ARRAYOID, FLOAT4ARRAYOID, FLOAT4OID};
		Oid			real1[1] = {FLOAT4OID};

		rw.predict_model_oid = LookupFuncName(list_make2(makeString("iceml"), makeString("predict_model")),
											  5, types, false);
		rw.min_real_oid = LookupFuncName(list_make2(makeString("pg_catalog"), makeString("min")),
										 1, real1, false);
		parse = (Query *) RewriteMutator((Node *) parse, &rw);
		if (rw.grouped)
		{
			nest = NewGUCNestLevel();
			(void) set_config_option("enable_partitionwise_aggregate", "on",
									 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		}
	}
	result = PlanWith(parse, query_string, cursorOptions, boundParams,
					  rw.grouped ? rw.predict_model_oid : InvalidOid);
	if (nest >= 0)
		AtEOXact_GUC(true, nest);
	/* a committed deploy or model change plans it again (src/serving/predict.c) */
	if (rw.nodes != NIL && OidIsValid(nsp = get_namespace_oid("iceml", true)))
	{
		Oid			dep = get_relname_relid("deployments", nsp);
		Oid			mod = get_relname_relid("models", nsp);

		if (OidIsValid(dep))
			result->relationOids = lappend_oid(result->relationOids, dep);
		if (OidIsValid(mod))
			result->relationOids = lappend_oid(result->relationOids, mod);
	}
	return result;
}

void
ShardPredictInit(void)
{
	DefineCustomBoolVariable("iceml.shard_predict",
							 "Runs iceml_predict over sharded feature groups on the nodes that hold the rows.",
							 "Off: the coordinator fetches the bands and predicts itself.",
							 &shard_predict,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	prev_planner_hook = planner_hook;
	planner_hook = ShardPlanner;
	prev_rel_pathlist_hook = set_rel_pathlist_hook;
	set_rel_pathlist_hook = ShardRelPathlist;
}
