/*
 * shard.c - scale-out over PostgreSQL's own distribution: the C parts of
 * nodes and sharded feature groups (src/sql/60_shard.sql has the rest).
 *
 * The data path is postgres_fdw's: a sharded feature group is, on the
 * coordinator, a table partitioned by hash of its primary key whose
 * partitions are foreign tables, one per node, each over a real feature
 * group on its node (expectation triggers included).  postgres_fdw routes
 * INSERT and COPY rows, runs the remote statements in a remote transaction
 * that commits with the local one, and reports remote errors.
 *
 * What postgres_fdw cannot do is run iceml's own functions on a node
 * (create the node's group, summarise its rows).  For that this file keeps
 * its own libpq connection per node, made from the same foreign server and
 * user mapping (no credentials of its own), with the same rule as
 * postgres_fdw: a role that is not a superuser must authenticate by
 * password unless the mapping says password_required 'false'.  Commands on
 * a node run in a remote transaction opened on first use and committed in
 * the local transaction's pre-commit (like postgres_fdw; there is no
 * two-phase commit, see README "Scale-out"), rolled back (by closing the
 * connection) when the local transaction aborts.  A remote transaction
 * used in a subtransaction that aborts can no longer commit: the local
 * transaction then fails at commit, naming the node.
 *
 * Errors name the node: iceml._node_exec prefixes remote errors with it;
 * on a node, the coordinator's connections set iceml.node_name, and
 * statements run with an error context line naming the node, which
 * postgres_fdw passes back; the coordinator's log hook then puts the node's
 * name into the message of an error that came back from a node.
 *
 * Statistics of a sharded group are merged, not averaged: each node sends
 * mergeable state (counts, finite count, mean and sum of squared deviations,
 * min, max, HyperLogLog registers: iceml.shard_statistics), the coordinator
 * merges the moments (the parallel-variance formula), the registers (max
 * per register) and the ranges, then asks each node for exact 20-bin
 * counts over the merged [min, max] (iceml.shard_histogram) and sums them.
 */
#include "postgres.h"

#include <math.h>

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "iceml.h"
#include "iceml_catalog.h"
#include "iceml_fs.h"
#include "iceml_shard.h"
#include "iceml_stats.h"
#include "iceml_worker.h"

#define MAX_NODE_CONNS 64
#define NODE_SERVER_PREFIX "iceml_node_"
#define NODE_CONTEXT_MARK "iceml node \""

static char *node_name = NULL;

static ExecutorRun_hook_type prev_run_hook = NULL;
static ExecutorFinish_hook_type prev_finish_hook = NULL;
static emit_log_hook_type prev_emit_hook = NULL;

/* ---- on a node: errors name it ------------------------------------------ */

static void
NodeErrorContext(void *arg)
{
	errcontext(NODE_CONTEXT_MARK "%s\"", (const char *) arg);
}

#define WITH_NODE_CONTEXT(call) \
	do { \
		ErrorContextCallback cb; \
		bool		push = node_name != NULL && node_name[0] != '\0'; \
		if (push) \
		{ \
			cb.callback = NodeErrorContext; \
			cb.arg = node_name; \
			cb.previous = error_context_stack; \
			error_context_stack = &cb; \
		} \
		call; \
		if (push) \
			error_context_stack = cb.previous; \
	} while (0)

static void
ShardExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				 bool execute_once)
{
	WITH_NODE_CONTEXT(
					  if (prev_run_hook)
					  prev_run_hook(queryDesc, direction, count, execute_once);
					  else
					  standard_ExecutorRun(queryDesc, direction, count, execute_once));
}

/* AFTER STATEMENT triggers (batch rules) fire here */
static void
ShardExecutorFinish(QueryDesc *queryDesc)
{
	WITH_NODE_CONTEXT(
					  if (prev_finish_hook)
					  prev_finish_hook(queryDesc);
					  else
					  standard_ExecutorFinish(queryDesc));
}

/*
 * On the coordinator: an error that came back from a node (postgres_fdw
 * adds the remote SQL to its context, the node added its own name) gets the
 * node's name in its message.
 */
static void
ShardEmitLog(ErrorData *edata)
{
	if (edata->elevel >= ERROR && edata->context && edata->message &&
		strstr(edata->context, "remote SQL command:") &&
		strncmp(edata->message, "node \"", 6) != 0)
	{
		const char *m = strstr(edata->context, NODE_CONTEXT_MARK);

		if (m)
		{
			const char *start = m + strlen(NODE_CONTEXT_MARK);
			const char *end = strchr(start, '"');

			if (end && end - start < NAMEDATALEN)
			{
				MemoryContext old = MemoryContextSwitchTo(ErrorContext);

				edata->message = psprintf("node \"%.*s\": %s", (int) (end - start),
										  start, edata->message);
				MemoryContextSwitchTo(old);
			}
		}
	}
	if (prev_emit_hook)
		prev_emit_hook(edata);
}

/* ---- the coordinator's own connections to its nodes ---------------------- */

typedef struct NodeConn
{
	char		node[NAMEDATALEN];
	Oid			serverid;
	Oid			userid;
	PGconn	   *conn;
	bool		xact_open;		/* a remote transaction is open */
	int			max_level;		/* deepest local nest level that used it */
	bool		poisoned;		/* it can no longer commit */
	char	   *poison_reason;
	bool		stale;			/* server or mapping changed: reconnect */
	bool		autonomous;		/* autocommit, never in a remote transaction
								 * (shipping models: src/shard/shard_predict.c) */
} NodeConn;

static NodeConn conns[MAX_NODE_CONNS];
static int	nconns = 0;
static bool callbacks_registered = false;

static void
CloseConn(NodeConn *c)
{
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	c->xact_open = false;
	c->poisoned = false;
	c->max_level = 0;
	if (c->poison_reason)
		pfree(c->poison_reason);
	c->poison_reason = NULL;
}

static void
ShardInvalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	for (int i = 0; i < nconns; i++)
		conns[i].stale = true;
}

/*
 * Wait, interruptibly, until a result of what was sent on conn can be read
 * without blocking; false when the connection was lost.
 */
bool
ShardAwaitResult(PGconn *conn)
{
	while (PQisBusy(conn))
	{
		int			rc = WaitLatchOrSocket(MyLatch,
										   WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH,
										   PQsocket(conn), -1L, PG_WAIT_EXTENSION);

		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if ((rc & WL_SOCKET_READABLE) && !PQconsumeInput(conn))
			return false;
	}
	return true;
}

/*
 * A node's error (res, or the connection's own message without one) copied
 * out of libpq, its SQLSTATE kept (08006 for a lost connection); res is
 * cleared.
 */
void
ShardTakeNodeError(PGconn *conn, PGresult *res, ShardNodeError *e)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
	const char *context = res ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;

	e->code = ERRCODE_CONNECTION_FAILURE;
	if (state && strlen(state) == 5)
		e->code = MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
	e->message = msg ? pstrdup(msg) : pchomp(PQerrorMessage(conn));
	if (e->message[0] == '\0')
		e->message = pstrdup("the connection was lost");
	e->detail = detail ? pstrdup(detail) : NULL;
	e->hint = hint ? pstrdup(hint) : NULL;
	e->context = context ? pstrdup(context) : NULL;
	if (res)
		PQclear(res);
}

/* wait for the last result of the query sent on conn; NULL when lost */
PGresult *
ShardLastResult(PGconn *conn)
{
	PGresult   *last = NULL;

	for (;;)
	{
		PGresult   *res;

		if (!ShardAwaitResult(conn))
		{
			if (last)
				PQclear(last);
			return NULL;
		}
		res = PQgetResult(conn);
		if (res == NULL)
			return last;
		if (last)
			PQclear(last);
		last = res;
	}
}

static void
RemoteError(NodeConn *c, PGresult *res, const char *sql)
{
	ShardNodeError e;

	ShardTakeNodeError(c->conn, res, &e);
	if (e.code == ERRCODE_CONNECTION_FAILURE || PQstatus(c->conn) != CONNECTION_OK)
		CloseConn(c);
	else if (c->xact_open)
	{
		c->poisoned = true;
		c->poison_reason = MemoryContextStrdup(TopMemoryContext, e.message);
	}
	ereport(ERROR,
			(errcode(e.code),
			 errmsg("node \"%s\": %s", c->node, e.message),
			 e.detail ? errdetail_internal("%s", e.detail) : 0,
			 e.hint ? errhint("%s", e.hint) : 0,
			 e.context ? errcontext("%s", e.context) : 0,
			 errcontext("iceml command on node \"%s\": %s", c->node, sql)));
}

/* run sql on c; the result (never NULL: errors are raised) */
static PGresult *
RemoteExec(NodeConn *c, const char *sql)
{
	PGresult   *res;

	if (!PQsendQuery(c->conn, sql))
		RemoteError(c, NULL, sql);
	res = ShardLastResult(c->conn);
	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
						PQresultStatus(res) != PGRES_TUPLES_OK))
		RemoteError(c, res, sql);
	return res;
}

static bool
IsLibpqOption(const char *keyword)
{
	static PQconninfoOption *defaults = NULL;

	if (defaults == NULL)
		defaults = PQconndefaults();
	if (defaults == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	for (PQconninfoOption *o = defaults; o->keyword; o++)
		if (strcmp(o->keyword, keyword) == 0)
			return strchr(o->dispchar, 'D') == NULL &&
				strcmp(keyword, "replication") != 0 &&
				strcmp(keyword, "fallback_application_name") != 0 &&
				strcmp(keyword, "client_encoding") != 0;
	return false;
}

static void
AddOptions(List *options, const char **kw, const char **val, int *n,
		   bool *has_password, bool *password_required)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "password_required") == 0)
			*password_required = defGetBoolean(d);
		else if (IsLibpqOption(d->defname))
		{
			if (strcmp(d->defname, "password") == 0 && defGetString(d)[0] != '\0')
				*has_password = true;
			kw[*n] = d->defname;
			val[*n] = defGetString(d);
			(*n)++;
		}
	}
}

/*
 * A new libpq connection to `node` as `userid`, made from the node's
 * foreign server and that role's user mapping (PUBLIC's unless it has its
 * own), with postgres_fdw's rule that a role that is not a superuser must
 * authenticate by password unless the mapping says password_required
 * 'false'.  Not cached: the caller PQfinishes it.  Needs a transaction
 * (catalog lookups).  Errors name the node (08001, 2F003, 42704).
 */
PGconn *
ShardNodeConnect(const char *node, Oid userid)
{
	char	   *srvname = psprintf(NODE_SERVER_PREFIX "%s", node);
	ForeignServer *srv = GetForeignServerByName(srvname, true);
	UserMapping *um;
	const char **kw,
			  **val;
	int			n = 0;
	bool		has_password = false,
				password_required = true;
	PGconn	   *conn;

	if (srv == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("node \"%s\" does not exist", node),
				 errhint("Nodes are added by iceml.add_node and listed in iceml.nodes.")));
	um = GetUserMapping(userid, srv->serverid);
	kw = palloc0(sizeof(char *) * (list_length(srv->options) + list_length(um->options) + 4));
	val = palloc0(sizeof(char *) * (list_length(srv->options) + list_length(um->options) + 4));
	AddOptions(srv->options, kw, val, &n, &has_password, &password_required);
	AddOptions(um->options, kw, val, &n, &has_password, &password_required);
	kw[n] = "fallback_application_name";
	val[n++] = "iceml";
	kw[n] = "client_encoding";
	val[n++] = GetDatabaseEncodingName();
	kw[n] = NULL;
	val[n] = NULL;

	/* postgres_fdw's rule: only superusers may connect without a password */
	if (!superuser_arg(userid) && password_required && !has_password)
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("node \"%s\": password is required", node),
				 errdetail("Non-superusers must give a password in the user mapping of server \"%s\".", srvname)));

	conn = PQconnectdbParams(kw, val, false);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		char	   *why = conn ? pchomp(PQerrorMessage(conn)) : pstrdup("out of memory");

		if (conn)
			PQfinish(conn);
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to node \"%s\"", node),
				 errdetail_internal("%s", why),
				 errhint("Check the node's server and its options in iceml.nodes, and that it accepts connections.")));
	}
	if (!superuser_arg(userid) && password_required && !PQconnectionUsedPassword(conn))
	{
		PQfinish(conn);
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("node \"%s\": password is required", node),
				 errdetail("The node did not ask for the password; non-superusers must authenticate by password.")));
	}
	return conn;
}

static NodeConn *
GetNodeConnKind(const char *node, bool autonomous)
{
	char	   *srvname = psprintf(NODE_SERVER_PREFIX "%s", node);
	ForeignServer *srv = GetForeignServerByName(srvname, true);
		NodeConn   *c = NULL;
	Oid			userid = GetUserId();
	PGresult   *res;

	if (srv == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("node \"%s\" does not exist", node),
				 errhint("Nodes are added by iceml.add_node and listed in iceml.nodes.")));
	if (!callbacks_registered)
	{
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID, ShardInvalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(USERMAPPINGOID, ShardInvalidate, (Datum) 0);
		callbacks_registered = true;
	}
	for (int i = 0; i < nconns; i++)
	{
		/* connections to servers changed or dropped since: closed */
		if (conns[i].stale && !conns[i].xact_open && conns[i].conn)
			CloseConn(&conns[i]);
		if (conns[i].serverid == srv->serverid && conns[i].userid == userid &&
			conns[i].autonomous == autonomous)
			c = &conns[i];
	}
	/* a new server: reuse the slot of a closed connection */
	for (int i = 0; c == NULL && i < nconns; i++)
		if (conns[i].conn == NULL && !conns[i].xact_open)
		{
			c = &conns[i];
			memset(c, 0, sizeof(NodeConn));
			strlcpy(c->node, node, NAMEDATALEN);
			c->serverid = srv->serverid;
			c->userid = userid;
			c->autonomous = autonomous;
		}
	if (c && c->conn && !c->xact_open &&
		(c->stale || PQstatus(c->conn) != CONNECTION_OK ||
		 PQtransactionStatus(c->conn) != PQTRANS_IDLE))
		CloseConn(c);
	if (c && c->conn)
		return c;
	if (c == NULL)
	{
		if (nconns >= MAX_NODE_CONNS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("iceml keeps at most %d node connections per session", MAX_NODE_CONNS)));
		c = &conns[nconns++];
		memset(c, 0, sizeof(NodeConn));
		strlcpy(c->node, node, NAMEDATALEN);
		c->serverid = srv->serverid;
		c->userid = userid;
		c->autonomous = autonomous;
	}
	c->stale = false;
	c->conn = ShardNodeConnect(node, userid);
	res = RemoteExec(c, "SET search_path = pg_catalog, pg_temp");
	PQclear(res);
	return c;
}

static NodeConn *
GetNodeConn(const char *node)
{
	return GetNodeConnKind(node, false);
}

/*
 * For src/shard/shard_predict.c: one statement with parameters (text or binary
 * as formats says) on a node, committed there at once (autocommit, on a
 * connection of its own that never holds a remote transaction), whatever
 * becomes of the local transaction.  Only for work whose result is right
 * whether or not the local transaction commits (a content-addressed model
 * copy).  Returns the result (PQclear it); errors name the node.
 */
PGresult *
ShardNodeExecAutonomous(const char *node, const char *sql, int nparams,
						const Oid *types, const char *const *values,
						const int *lengths, const int *formats)
{
	/*
	 * A cached connection whose node restarted since is found broken only
	 * when used: connect again once (the statements sent here are
	 * idempotent).
	 */
	for (int attempt = 0;; attempt++)
	{
		NodeConn   *c = GetNodeConnKind(node, true);
		PGresult   *res = NULL;

		if (PQsendQueryParams(c->conn, sql, nparams, types, values, lengths, formats, 0))
		{
			res = ShardLastResult(c->conn);
			if (res && (PQresultStatus(res) == PGRES_COMMAND_OK ||
						PQresultStatus(res) == PGRES_TUPLES_OK))
				return res;
			if (PQstatus(c->conn) == CONNECTION_OK || attempt > 0)
				RemoteError(c, res, sql);
		}
		else if (attempt > 0)
			RemoteError(c, NULL, sql);
		if (res)
			PQclear(res);
		CloseConn(c);
	}
}

/*
 * Close this session's connections to `node` that hold no remote
 * transaction (drop_node: the node's database may be dropped next).
 */
void
ShardCloseNode(const char *node)
{
	for (int i = 0; i < nconns; i++)
		if (strcmp(conns[i].node, node) == 0 && conns[i].conn && !conns[i].xact_open)
			CloseConn(&conns[i]);
}

static void
ShardXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			for (int i = 0; i < nconns; i++)
			{
				NodeConn   *c = &conns[i];

				if (!c->xact_open)
					continue;
				if (c->poisoned)
				{
					char	   *why = pstrdup(c->poison_reason ? c->poison_reason : "a command failed");

					CloseConn(c);
					ereport(ERROR,
							(errcode(ERRCODE_IN_FAILED_SQL_TRANSACTION),
							 errmsg("the remote transaction on node \"%s\" cannot commit", c->node),
							 errdetail("It was used in a subtransaction that rolled back (%s).", why)));
				}
				PQclear(RemoteExec(c, "COMMIT"));
				c->xact_open = false;
				c->max_level = 0;
			}
			break;
		case XACT_EVENT_PRE_PREPARE:
			for (int i = 0; i < nconns; i++)
				if (conns[i].xact_open)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cannot prepare a transaction that ran iceml commands on node \"%s\"",
									conns[i].node)));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* closing the connection rolls the remote transaction back */
			for (int i = 0; i < nconns; i++)
				if (conns[i].xact_open || (conns[i].conn &&
										   PQtransactionStatus(conns[i].conn) != PQTRANS_IDLE))
					CloseConn(&conns[i]);
			break;
		default:
			break;
	}
}

static void
ShardSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (int i = 0; i < nconns; i++)
	{
		NodeConn   *c = &conns[i];

		if (c->xact_open && !c->poisoned &&
			c->max_level >= GetCurrentTransactionNestLevel())
		{
			c->poisoned = true;
			c->poison_reason = MemoryContextStrdup(TopMemoryContext,
												   "its work there may belong to the rolled-back part");
		}
	}
}

/*
 * iceml._node_exec(node text, sql text) RETURNS jsonb: runs one statement
 * of iceml's on a node, in the node's remote transaction; returns the first
 * column of the first row as jsonb (NULL when there is none).
 */
PG_FUNCTION_INFO_V1(iceml_node_exec);

Datum
iceml_node_exec(PG_FUNCTION_ARGS)
{
	char	   *node = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	NodeConn   *c;
	PGresult   *res;
	char	   *out = NULL;

	PreventCommandIfParallelMode("iceml._node_exec");
	c = GetNodeConn(node);
	if (!c->xact_open)
	{
		const char *begin = IsolationIsSerializable()
			? "START TRANSACTION ISOLATION LEVEL SERIALIZABLE"
			: "START TRANSACTION ISOLATION LEVEL REPEATABLE READ";

		/*
		 * A cached connection whose node restarted since is found broken
		 * only now: outside a remote transaction, connect again once.
		 */
		if (PQsendQuery(c->conn, begin))
		{
			res = ShardLastResult(c->conn);
			if (res && PQresultStatus(res) == PGRES_COMMAND_OK)
				c->xact_open = true;
			else if (PQstatus(c->conn) == CONNECTION_OK)
				RemoteError(c, res, begin);
			else if (res)
				PQclear(res);
			if (c->xact_open)
				PQclear(res);
		}
		if (!c->xact_open)
		{
			CloseConn(c);
			c = GetNodeConn(node);
			PQclear(RemoteExec(c, begin));
			c->xact_open = true;
		}
	}
	c->max_level = Max(c->max_level, GetCurrentTransactionNestLevel());
	res = RemoteExec(c, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 &&
		PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
		out = pstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (out == NULL)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out)));
}

/*
 * iceml._node_conninfo(conninfo text) RETURNS TABLE (keyword text, value
 * text): the options a libpq connection string sets (22023 when it does not
 * parse).
 */
PG_FUNCTION_INFO_V1(iceml_node_conninfo);

Datum
iceml_node_conninfo(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *ci = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(ci, &err);

	if (opts == NULL)
	{
		char	   *why = err ? pchomp(err) : pstrdup("out of memory");

		if (err)
			PQfreemem(err);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid conninfo: %s", why),
				 errhint("Give a libpq connection string, e.g. 'host=node1.example dbname=iceml user=iceml_node', or a postgresql:// URI.")));
	}
	InitMaterializedSRF(fcinfo, 0);
	for (PQconninfoOption *o = opts; o->keyword; o++)
	{
		Datum		v[2];
		bool		nulls[2] = {false, false};

		if (o->val == NULL)
			continue;
		v[0] = CStringGetTextDatum(o->keyword);
		v[1] = CStringGetTextDatum(o->val);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
	}
	PQconninfoFree(opts);
	return (Datum) 0;
}

void
ShardInit(void)
{
	DefineCustomStringVariable("iceml.node_name",
							   "The name of this server as an iceml node of a coordinator.",
							   "Set by the coordinator's connections (server option \"options\"); errors of statements on this server then name the node.",
							   &node_name,
							   "",
							   PGC_USERSET, 0,
							   NULL, NULL, NULL);
	prev_run_hook = ExecutorRun_hook;
	ExecutorRun_hook = ShardExecutorRun;
	prev_finish_hook = ExecutorFinish_hook;
	ExecutorFinish_hook = ShardExecutorFinish;
	partitioned_statistics_hook = ShardComputeStatistics;
	claimed_run_hook = RemoteTrialClaimed;
	prev_emit_hook = emit_log_hook;
	emit_log_hook = ShardEmitLog;
	RegisterXactCallback(ShardXactCallback, NULL);
	RegisterSubXactCallback(ShardSubXactCallback, NULL);
}
