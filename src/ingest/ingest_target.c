/*
 * ingest_target.c - the target of iceml.ingest_statoil(): its columns mapped
 * to the Statoil fields, the duplicate-id check against its unique index,
 * and the quarantined records written to iceml.quarantine.
 */
#include "postgres.h"

#include "catalog/pg_am_d.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "iceml_catalog.h"
#include "ingest_internal.h"

/* ----------------------------------------------------------------
 * Set-up
 * ---------------------------------------------------------------- */

static uint32
IdHash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	(void) keysize;
	return hash_bytes((const unsigned char *) s, strlen(s));
}

static int
IdMatch(const void *a, const void *b, Size keysize)
{
	(void) keysize;
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

AttrNumber
FindColumn(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return a->attnum;
	}
	return InvalidAttrNumber;
}

static void
ColumnTypeError(IngestState *st, const char *col, Oid found, const char *wanted)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"%s\" of %s has type %s, which ingest_statoil cannot fill",
					col, st->relname, format_type_be(found)),
			 errdetail("ingest_statoil fills \"%s\" when it is of type %s.", col, wanted)));
}

/*
 * Map the Statoil fields to the target's columns by name; returns the COPY
 * column list.
 */
List *
MapColumns(IngestState *st)
{
	TupleDesc	desc = RelationGetDescr(st->rel);
	List	   *cols = NIL;
	static const char *const required[] = {"id", "band_1", "band_2"};
	AttrNumber	att;

	for (int i = 0; i < 3; i++)
	{
		Oid			type;

		att = FindColumn(desc, required[i]);
		if (att == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("%s has no column \"%s\"", st->relname, required[i]),
					 errdetail("The target of ingest_statoil needs columns id (text), band_1 and band_2 (real[]); inc_angle, is_iceberg and band_avg are filled when present.")));
		type = TupleDescAttr(desc, att - 1)->atttypid;
		if (i == 0 && type != TEXTOID && type != VARCHAROID && type != BPCHAROID)
			ColumnTypeError(st, required[i], type, "text, varchar or char");
		if (i > 0 && type != FLOAT4ARRAYOID)
			ColumnTypeError(st, required[i], type, "real[]");
		cols = lappend(cols, makeString(pstrdup(required[i])));
	}

	att = FindColumn(desc, "inc_angle");
	if (att != InvalidAttrNumber)
	{
		st->angle_type = TupleDescAttr(desc, att - 1)->atttypid;
		if (st->angle_type != FLOAT4OID && st->angle_type != FLOAT8OID)
			ColumnTypeError(st, "inc_angle", st->angle_type, "real or double precision");
		cols = lappend(cols, makeString(pstrdup("inc_angle")));
	}
	att = FindColumn(desc, "is_iceberg");
	if (att != InvalidAttrNumber)
	{
		st->label_type = TupleDescAttr(desc, att - 1)->atttypid;
		if (st->label_type != INT2OID && st->label_type != INT4OID &&
			st->label_type != INT8OID && st->label_type != BOOLOID)
			ColumnTypeError(st, "is_iceberg", st->label_type,
							"smallint, integer, bigint or boolean");
		cols = lappend(cols, makeString(pstrdup("is_iceberg")));
	}
	att = FindColumn(desc, "band_avg");
	if (att != InvalidAttrNumber && TupleDescAttr(desc, att - 1)->attgenerated == '\0')
	{
		Oid			type = TupleDescAttr(desc, att - 1)->atttypid;

		if (type != FLOAT4ARRAYOID)
			ColumnTypeError(st, "band_avg", type, "real[]");
		st->has_avg = true;
		cols = lappend(cols, makeString(pstrdup("band_avg")));
	}
	st->nfields = list_length(cols);
	return cols;
}

/*
 * Duplicate ids are bad records only when the target has a unique btree
 * index on id alone (its primary key, typically): then they are found in
 * the input (a hash of the ids seen) and in the table (a probe of that
 * index), so that a quarantine load never dies of a unique violation.
 */
void
SetupDuplicateCheck(IngestState *st)
{
	AttrNumber	idatt = FindColumn(RelationGetDescr(st->rel), "id");
	List	   *indexes;
	ListCell   *lc;
	HASHCTL		ctl;

	if (st->rel->rd_rel->relkind != RELKIND_RELATION)
		return;
	indexes = RelationGetIndexList(st->rel);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = idx->rd_index;

		if (form->indisunique && form->indisvalid && form->indimmediate &&
			form->indnkeyatts == 1 && form->indkey.values[0] == idatt &&
			idx->rd_rel->relam == BTREE_AM_OID &&
			RelationGetIndexPredicate(idx) == NIL)
		{
			Oid			optype = idx->rd_opcintype[0];
			Oid			op = get_opfamily_member(idx->rd_opfamily[0], optype, optype,
												 BTEqualStrategyNumber);

			if (OidIsValid(op))
			{
				st->idxrel = idx;
				st->eqproc = get_opcode(op);
				st->collation = idx->rd_indcollation[0];
				break;
			}
		}
		index_close(idx, AccessShareLock);
	}
	list_free(indexes);
	if (st->idxrel == NULL)
		return;

	st->idcxt = AllocSetContextCreate(CurrentMemoryContext, "ingest ids",
									  ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(IdEntry);
	ctl.hash = IdHash;
	ctl.match = IdMatch;
	ctl.hcxt = st->idcxt;
	st->ids = hash_create("ingest ids", 1024, &ctl,
						  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	/*
	 * Quarantine loads into one table take turns, so that two of them with
	 * the same ids quarantine the later copies instead of dying of a unique
	 * violation: each sees the other's rows once it has committed (the
	 * probes use a dirty snapshot).  The lock is iceml's own (an advisory
	 * tag of a kind SQL's advisory locks do not use) and lasts until the end
	 * of the transaction; 'abort' loads do not take it.
	 */
	if (st->quarantine)
	{
		LOCKTAG		tag;

		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, st->relid, 0x1CE, 3);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
	InitDirtySnapshot(st->dirty);
	st->scancxt = CurrentMemoryContext;
	st->slot = table_slot_create(st->rel, NULL);
	st->scan = index_beginscan(st->rel, st->idxrel, &st->dirty, 1, 0);
}

void
CloseDuplicateCheck(IngestState *st)
{
	if (st->scan)
		index_endscan(st->scan);
	if (st->slot)
		ExecDropSingleTupleTableSlot(st->slot);
	if (st->idxrel)
		index_close(st->idxrel, AccessShareLock);
	st->scan = NULL;
	st->slot = NULL;
	st->idxrel = NULL;
}

/*
 * Write the quarantined records, in input order: as the catalog owner (users
 * only read iceml's catalogs), recorded as the calling role's.
 */
void
WriteQuarantine(IngestState *st)
{
	TupleTableSlot *slot;
	SPIPlanPtr	plan;
	Oid			types[9] = {OIDOID, INT8OID, TEXTOID, TEXTOID, BOOLOID, INT8OID,
	TEXTOID, TEXTOID, OIDOID};

	IcemlOwnerContext own;
	Oid			caller = IcemlCaller();

	if (st->nquarantined == 0)
		return;
	BecomeCatalogOwner(&own);
	plan = SPI_prepare("INSERT INTO iceml.quarantine (feature_group, record_number, record_id,"
					   " raw, raw_truncated, raw_bytes, reason, sqlstate, role)"
					   " VALUES ($1::pg_catalog.regclass, $2, $3, $4, $5, $6, $7, $8,"
					   " $9::pg_catalog.regrole)",
					   9, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	slot = MakeSingleTupleTableSlot(st->qdesc, &TTSOpsMinimalTuple);
	while (tuplestore_gettupleslot(st->qstore, true, false, slot))
	{
		Datum		values[9];
		char		nulls[9];

		values[0] = ObjectIdGetDatum(st->relid);
		nulls[0] = ' ';
		values[8] = ObjectIdGetDatum(caller);
		nulls[8] = ' ';
		for (int i = 0; i < 7; i++)
		{
			bool		isnull;

			values[i + 1] = slot_getattr(slot, i + 1, &isnull);
			nulls[i + 1] = isnull ? 'n' : ' ';
		}
		if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not write to iceml.quarantine");
	}
	ExecDropSingleTupleTableSlot(slot);
	RestoreUser(&own);
}
