/*
 * expectations_internal.h - the helpers (fs_json.c) shared by the parsers of
 * feature lists (fs_types.c) and expectation documents (expectations.c), and
 * the check of row rules (expectations_check.c).  Not for use outside these
 * files.
 */
#ifndef ICEML_EXPECTATIONS_INTERNAL_H
#define ICEML_EXPECTATIONS_INTERNAL_H

#include "utils/jsonb.h"

/* 22023 "invalid expectation at <path>: <msg>" */
extern void FsDocError(const char *path, const char *msg) pg_attribute_noreturn();
/* the value of key in a JSON object, NULL if absent */
extern JsonbValue *FsJField(JsonbContainer *c, const char *key);
extern bool FsJIsObject(JsonbValue *v);
extern bool FsJIsArray(JsonbValue *v);
extern char *FsJString(JsonbValue *v);
/* a finite number, else FsDocError at path */
extern double FsJNumber(JsonbValue *v, const char *path);
/* refuse (22023) keys of an object outside the allowed, space-separated list */
extern void FsCheckKeys(JsonbContainer *c, const char *path, const char *allowed, bool feature);
/* s cut to FS_MAX_SHOWN characters for a message */
extern char *FsShorten(char *s);
/* fn(arg) in a subtransaction: NULL if it returned, else the error message */
extern char *FsTryInSubxact(void (*fn) (void *), void *arg);

#endif							/* ICEML_EXPECTATIONS_INTERNAL_H */
