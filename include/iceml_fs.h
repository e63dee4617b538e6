/*
 * iceml_fs.h - the feature store's interface for other parts of iceml
 * (the JSON loader in particular).
 *
 * A feature group is a table iceml_fs.<name>_<version> registered in
 * iceml.feature_groups.  Its expectations are enforced by a C BEFORE ROW
 * trigger (row rules) and C AFTER STATEMENT triggers (batch rules, the commit
 * row and the validations rows), whatever writes to it: INSERT, UPDATE, COPY,
 * or the loader's internal COPY.
 */
#ifndef ICEML_FS_H
#define ICEML_FS_H

#include "postgres.h"
#include "access/htup.h"

/*
 * While a reject hook is set, a row that fails a blocking rule under its
 * group's validation mode is handed to the hook (with the full 23514 message
 * as reason) and skipped (the BEFORE ROW trigger returns NULL) instead of
 * raising; the loader uses this to quarantine bad records.
 *
 * The hook is called inside the trigger, in a short-lived memory context:
 * copy what you keep.  It may use SPI (the trigger is not connected to SPI
 * when it calls the hook).  A skipped row is not counted in the commit row
 * nor in iceml.validations.
 *
 * The setting is backend-global.  Set it right before the statement that
 * writes, and clear it in PG_FINALLY:
 *
 *		FeatureGroupSetRejectHook(my_hook, &state);
 *		PG_TRY();
 *		{
 *			... BeginCopyFrom / CopyFrom ...
 *		}
 *		PG_FINALLY();
 *		{
 *			FeatureGroupSetRejectHook(NULL, NULL);
 *		}
 *		PG_END_TRY();
 *
 * As a safety net the hook is also cleared at the end of every transaction
 * (commit or abort), and when a subtransaction aborts that is the one it was
 * set in or an enclosing one (a subtransaction the loader opens and aborts
 * per record, inside the writing statement, leaves the hook in place).
 */
typedef void (*FeatureGroupRejectHook) (Oid relid, HeapTuple tuple,
										const char *reason, void *arg);
extern void FeatureGroupSetRejectHook(FeatureGroupRejectHook hook, void *arg);	/* NULL to clear */

/* Is relid a table registered in iceml.feature_groups? */
extern bool IsFeatureGroup(Oid relid);

/* Its "statistics" flag: should an ingestion end with statistics? (false
 * when relid is not a feature group) */
extern bool FeatureGroupWantsStatistics(Oid relid);

/* iceml.compute_statistics(relid) in C: one pass over the table into
 * iceml.feature_statistics; returns the rows summarised.  Raises 22023 when
 * relid is not a feature group, 42501 without SELECT on it. */
extern int64 FeatureGroupComputeStatistics(Oid relid);

/* subsystem initialisation, from _PG_init */
extern void FeatureStoreInit(void);

#endif							/* ICEML_FS_H */
