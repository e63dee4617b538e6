/*
 * iceml_catalog.h - running as the catalog owner, on behalf of a caller
 * (src/catalog.c explains the rules).
 */
#ifndef ICEML_CATALOG_H
#define ICEML_CATALOG_H

#include "postgres.h"

/*
 * Catalog writes happen as the owner of iceml's catalog tables, with
 * search_path pinned to "pg_catalog, pg_temp"; users only read the catalog
 * (through row-level security).  Bracket such work with these two; an error
 * in between is undone by the transaction's (or subtransaction's) abort.
 */
typedef struct IcemlOwnerContext
{
	Oid			save_userid;
	int			save_sec_context;
	int			guc_nest;
	int			depth;
} IcemlOwnerContext;

extern Oid	CatalogOwner(void);
extern void BecomeCatalogOwner(IcemlOwnerContext *ctx);
extern void RestoreUser(IcemlOwnerContext *ctx);

/* The role on whose behalf iceml works: the caller of the outermost switch. */
extern Oid	IcemlCaller(void);

/* May the caller see catalog rows owned by `owner` (owner, member, admin)? */
extern bool CallerMaySee(Oid owner);

/* 42501 unless the caller is a member of iceml_user ("permission denied to <action>"). */
extern void RequireIcemlUser(const char *action);

/*
 * SPI helpers: run one statement (SPI must be connected), error out with
 * the statement's text on failure; return SPI_processed.
 */
extern uint64 SpiExec(const char *sql, int nargs, Oid *argtypes, Datum *values,
					  const char *nulls);
/* Column `col` (1-based) of row `row` of SPI_tuptable; false if NULL. */
extern bool SpiGetDatum(uint64 row, int col, Datum *out);
extern char *SpiGetText(uint64 row, int col);
/* An INSERT ... RETURNING id run as the catalog owner (SPI connected): the id. */
extern int64 OwnerInsertId(const char *sql, int nargs, Oid *argtypes, Datum *values,
						   const char *nulls);

extern void CatalogInit(void);

#endif							/* ICEML_CATALOG_H */
