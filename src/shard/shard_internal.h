/*
 * shard_internal.h - what the files of src/shard share.  Not for use
 * outside src/shard.
 */
#ifndef ICEML_SHARD_INTERNAL_H
#define ICEML_SHARD_INTERNAL_H

#include "common/sha2.h"

/* a content hash as lower-case hex */
#define HASH_HEX_LEN (PG_SHA256_DIGEST_LENGTH * 2)

/* shipped_model.c */
extern bytea *HashBytes(const char *hex);
extern bool IsPredictFunc(Oid funcid, bool *by_name);
extern bool ResolveModel(const char *name, int64 id, int64 *model_id, char *hash);
extern void ShipModel(const char *node, int64 model_id, const char *hash);
extern int64 DropNodeModels(const char *node, const char *hashes);

#endif							/* ICEML_SHARD_INTERNAL_H */
