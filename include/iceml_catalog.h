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

extern void CatalogInit(void);

#endif							/* ICEML_CATALOG_H */
