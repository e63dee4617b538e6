/*
 * trial_nodes.c - may the caller place a study's trials on these nodes?
 * iceml._check_trial_nodes(nodes text[]), run by iceml.tune before it
 * queues anything (src/sql/62_shard_trials.sql); the trials themselves are
 * followed by remote_trial.c.
 *
 * Each node is checked as the trial's worker will use it: connected as the
 * caller through the node's foreign server and the caller's user mapping,
 * iceml installed there at this server's version, the node role an
 * iceml_user.  The caller needs USAGE on the node's server.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "iceml_catalog.h"
#include "iceml_shard.h"

/* this server's iceml version */
static char *
LocalVersion(void)
{
	char	   *version;

	SPI_connect();
	SpiExec("SELECT e.extversion FROM pg_catalog.pg_extension e"
			" WHERE e.extname OPERATOR(pg_catalog.=) 'iceml'", 0, NULL, NULL, NULL);
	version = MemoryContextStrdup(TopTransactionContext, SpiGetText(0, 1));
	SPI_finish();
	return version;
}

/* the node's answer to: which iceml, is the role an iceml_user, who */
static void
CheckOn(PGconn *conn, const char *node, const char *local_version)
{
	PGresult   *res = NULL;
	char	   *version;
	char	   *role;
	bool		member;

	if (PQsendQuery(conn, "SET search_path = pg_catalog, pg_temp;"
					" SELECT (SELECT e.extversion FROM pg_catalog.pg_extension e"
					"          WHERE e.extname OPERATOR(pg_catalog.=) 'iceml'),"
					"        pg_catalog.pg_has_role('iceml_user', 'MEMBER'),"
					"        CURRENT_USER"))
		res = ShardLastResult(conn);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		ShardNodeError e;

		ShardTakeNodeError(conn, res, &e);
		ereport(ERROR,
				(errcode(e.code),
				 errmsg("node \"%s\": %s", node, e.message),
				 e.detail ? errdetail_internal("%s", e.detail) : 0,
				 e.hint ? errhint("%s", e.hint) : 0,
				 errcontext("checking node \"%s\" for trials", node)));
	}
	/* copied out, so that no libpq result is left behind by an error */
	version = PQgetisnull(res, 0, 0) ? NULL : pstrdup(PQgetvalue(res, 0, 0));
	member = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	role = pstrdup(PQgetvalue(res, 0, 2));
	PQclear(res);
	if (version == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("iceml is not installed on node \"%s\"", node),
				 errhint("Run CREATE EXTENSION iceml in the node's database.")));
	if (strcmp(version, local_version) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("node \"%s\" has iceml version %s, this server %s",
						node, version, local_version),
				 errhint("Install the same iceml release on every node and run ALTER EXTENSION iceml UPDATE.")));
	if (!member)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" on node \"%s\" is not a member of iceml_user",
						role, node),
				 errhint("GRANT iceml_user to that role on the node.")));
}

/* connected as the caller, as the trial's worker will be */
static void
CheckTrialNode(const char *node, Oid caller, const char *local_version)
{
	PGconn	   *conn = ShardNodeConnect(node, caller);

	PG_TRY();
	{
		CheckOn(conn, node, local_version);
	}
	PG_FINALLY();
	{
		PQfinish(conn);
	}
	PG_END_TRY();
}

PG_FUNCTION_INFO_V1(iceml_check_trial_nodes);

Datum
iceml_check_trial_nodes(PG_FUNCTION_ARGS)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Oid			caller = IcemlCaller();
	char	   *local_version = NULL;

	if (PG_ARGISNULL(0))
		PG_RETURN_VOID();
	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nodes must be a one-dimensional array of node names")));
	deconstruct_array_builtin(arr, TEXTOID, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nodes must name at least one node"),
				 errhint("Leave nodes out (NULL) to run the trials on this server.")));
	for (int i = 0; i < n; i++)
	{
		char	   *node;
		ForeignServer *srv;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("nodes must not contain NULL")));
		node = TextDatumGetCString(elems[i]);
		for (int j = 0; j < i; j++)
			if (!nulls[j] && strcmp(node, TextDatumGetCString(elems[j])) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("nodes names node \"%s\" twice", node),
						 errhint("A node runs as many trials at once as the study's parallel share gives it.")));
		srv = GetForeignServerByName(psprintf("iceml_node_%s", node), true);
		if (srv == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("node \"%s\" does not exist", node),
					 errhint("Nodes are added by iceml.add_node and listed in iceml.nodes.")));
		if (pg_foreign_server_aclcheck(srv->serverid, caller, ACL_USAGE) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to run trials on node \"%s\"", node),
					 errdetail("Role \"%s\" has no USAGE privilege on foreign server \"%s\".",
							   GetUserNameFromId(caller, false), srv->servername),
					 errhint("An administrator grants it: GRANT USAGE ON FOREIGN SERVER %s TO %s.",
							 quote_identifier(srv->servername),
							 quote_identifier(GetUserNameFromId(caller, false)))));
		if (local_version == NULL)
			local_version = LocalVersion();
		CheckTrialNode(node, caller, local_version);
	}
	PG_RETURN_VOID();
}
