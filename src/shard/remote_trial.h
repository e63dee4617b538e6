/*
 * remote_trial.h - the coordinator's side of a trial on a node, shared by
 * src/shard/remote_trial.c (placing and following it), trial_leftovers.c
 * (what trials leave on nodes, resuming there) and trial_conn.c (the
 * connection to the node).
 */
#ifndef ICEML_REMOTE_TRIAL_H
#define ICEML_REMOTE_TRIAL_H

#include "postgres.h"

#include "libpq-fe.h"

typedef struct RemoteTrial
{
	int64		run_id;
	int64		study_id;
	char	   *node;
	char	   *data_key;
	int			threads_share;	/* 0: the hyperparameters set threads */
	Oid			dataset;
	char	   *experiment;
	char	   *architecture;
	char	   *spec;
	char	   *hyperparams;
	char	   *label;
	char	   *val_split;
	char	   *trial;
	char	   *lineage;
	int			c;				/* input channels */
	char	   *study_metric;	/* ASHA's metric, or NULL */
	int			asha_min_epochs;
	int			epochs;
	Oid			role;
	PGconn	   *conn;
	int64		node_run;
} RemoteTrial;

/* trial_conn.c: connect as the run's role (needs a transaction) */
extern void TrialNodeConnect(RemoteTrial *rt);
/* The result of what was sent (a COPY's PGRES_COPY_IN too); errors raised. */
extern PGresult *TrialNodeResult(RemoteTrial *rt, const char *sql);
/* An error of the node's (or of the connection to it), raised naming it. */
extern void TrialNodeFailed(RemoteTrial *rt, PGresult *res, const char *what) pg_attribute_noreturn();
/* One statement with text parameters on the node; its result (PQclear it). */
extern PGresult *TrialNodeExec(RemoteTrial *rt, const char *sql, int nparams,
							   const char *const *values, int resultFormat);
extern void TrialNodeCommand(RemoteTrial *rt, const char *sql);

/*
 * trial_leftovers.c: before a trial is queued, the node forgets what
 * earlier trials of the role left there, and a resumed trial goes on there
 * if it can (true: nothing to queue); after it, the node forgets its run.
 */
extern bool TrialLeftovers(RemoteTrial *rt);
extern void TrialForget(RemoteTrial *rt, int64 run_id, int64 node_run);

#endif							/* ICEML_REMOTE_TRIAL_H */
