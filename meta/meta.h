/* meta/meta.h - the node's LMDB environment: tables, transactions, cursors.
 *
 * One environment under DATA/meta holds every table (below). Keys that belong
 * to a partition start with the partition number as a big-endian u32, so a
 * partition can be scanned and shipped whole; users and keys are replicated
 * to every node and carry no partition.
 *
 * Threads: read transactions may be opened by any thread (MDB_NOTLS); a read
 * transaction must never span network or device I/O. Write transactions are
 * opened only by the chunk store's committer (chunkstore/cs_commit), by
 * start-up code before the committer runs, and by tests: LMDB allows one
 * writer at a time and cairn batches all metadata writes through one path.
 *
 * Values returned by meta_get and cursors point into the map and are valid
 * until the transaction ends or the next write in it.
 *
 * Errors: MDB_NOTFOUND -> CAIRN_ENOTFOUND, MDB_KEYEXIST -> CAIRN_EEXISTS,
 * MDB_MAP_FULL / MDB_TXN_FULL -> CAIRN_ENOSPACE, corruption -> CAIRN_ECORRUPT,
 * others -> -errno or CAIRN_EINVAL.
 */
#ifndef CAIRN_META_META_H
#define CAIRN_META_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum meta_table {
	META_T_POOL = 0,  /* pool format record, counters (chunkstore) */
	META_T_CHUNKS,	  /* [part][sha256] -> struct cs_chunk_rec */
	META_T_STRIPES,	  /* [part][stripe id] -> struct cs_stripe_rec */
	META_T_MHDR,	  /* [part][manifest id] -> struct cs_mhdr_rec */
	META_T_MANIFESTS, /* [part][manifest id][offset] -> struct cs_ment_rec */
	META_T_BUCKETS,	  /* [part][bucket name] -> objstore bucket record */
	META_T_OBJECTS,	  /* [part][bucket name][0][key] -> objstore object record */
	META_T_USERS,	  /* user name -> user record (objstore/s3_users.h) */
	META_T_KEYS,	  /* access key id -> key record */
	META_T_UPLOADS,	  /* [part][bucket name][0][upload id] -> multipart upload */
	META_T_UPARTS,	  /* [upload id][part number] -> uploaded part */
	META_T_VOLUMES,	  /* [part][volume name] -> vol_rec (blockstore/vol_format.h) */
	META_T_VOLIDS,	  /* [volume id] -> [part][volume name] */
	META_T_EXTENTS,	  /* [volume id][index be64][gen be32] -> vol_ext_rec */
	META_T_SNAPS,	  /* [volume id][gen be32] -> vol_snap_rec + name */
	META_T_INTENTS,	  /* [volume id][index be64] -> vol_intent_rec */
	META_T_ATTACH,	  /* [volume id] -> vol_attach_rec + host */
	META_T_IMAGES,	  /* [part][image id] -> img_rec + JSON (registry/img_format.h) */
	META_T_TOKENS,	  /* sha256(token) -> s3_token_rec + user (objstore/s3_format.h) */
	META_T_COUNT
};

#define META_KEY_MAX 511 /* LMDB's default maximum key size */

struct meta_opts {
	size_t map_size;      /* bytes; 0 = 64 GiB (sparse; grows no file until used) */
	unsigned max_readers; /* 0 = 1024 */
};

struct meta_env;
struct meta_txn;
struct meta_cursor;

/* Opens (creating when absent) the environment in dir. */
int meta_open(const char *dir, const struct meta_opts *opts, struct meta_env **out) CAIRN_WUR;
void meta_close(struct meta_env *env);

int meta_txn_begin(struct meta_env *env, bool write, struct meta_txn **out) CAIRN_WUR;
/* A nested write transaction: its changes join the parent on commit and
 * vanish on abort (used to isolate one request inside a group commit). */
int meta_txn_begin_child(struct meta_txn *parent, struct meta_txn **out) CAIRN_WUR;
/* Commits (durable when it returns 0 for a top-level write txn) and frees. */
int meta_txn_commit(struct meta_txn *txn) CAIRN_WUR;
/* Aborts and frees; NULL is fine. */
void meta_txn_abort(struct meta_txn *txn);
bool meta_txn_is_write(const struct meta_txn *txn);

int meta_get(struct meta_txn *txn, enum meta_table t, const void *key, size_t klen,
	     const void **val, size_t *vlen) CAIRN_WUR;
#define META_NOOVERWRITE 1u
int meta_put(struct meta_txn *txn, enum meta_table t, const void *key, size_t klen, const void *val,
	     size_t vlen, unsigned flags) CAIRN_WUR;
int meta_del(struct meta_txn *txn, enum meta_table t, const void *key, size_t klen) CAIRN_WUR;

/* A cursor belongs to its transaction: when the transaction ends the cursor
 * goes dead (its calls return CAIRN_EINVAL) but must still be freed with
 * meta_cursor_close (NULL is fine). */
int meta_cursor_open(struct meta_txn *txn, enum meta_table t, struct meta_cursor **out) CAIRN_WUR;
void meta_cursor_close(struct meta_cursor *c);
/* Positions at the first key >= key (klen 0: the first key) and returns it. */
int meta_cursor_seek(struct meta_cursor *c, const void *key, size_t klen, const void **k,
		     size_t *kl, const void **v, size_t *vl) CAIRN_WUR;
int meta_cursor_next(struct meta_cursor *c, const void **k, size_t *kl, const void **v,
		     size_t *vl) CAIRN_WUR;
/* Positions at the key before the current one (CAIRN_ENOTFOUND at the
 * start; an unpositioned cursor goes to the last key). */
int meta_cursor_prev(struct meta_cursor *c, const void **k, size_t *kl, const void **v,
		     size_t *vl) CAIRN_WUR;
/* Positions at the last key <= key (for offset seeks); klen 0: the last key.
 * CAIRN_ENOTFOUND when every key is greater. */
int meta_cursor_seek_le(struct meta_cursor *c, const void *key, size_t klen, const void **k,
			size_t *kl, const void **v, size_t *vl) CAIRN_WUR;
/* Deletes the record under the cursor (write transactions). */
int meta_cursor_del(struct meta_cursor *c) CAIRN_WUR;

/* Map usage, for /metrics and ENOSPC decisions. */
int meta_usage(struct meta_env *env, uint64_t *used_bytes, uint64_t *map_bytes) CAIRN_WUR;
/* Bytes of live pages: the high-water mark less the pages on LMDB's free
 * list, which later writes reuse. O(free-list records); opens its own read
 * transaction (call it outside any write transaction of this thread). */
int meta_live_bytes(struct meta_env *env, uint64_t *live_bytes, uint64_t *map_bytes) CAIRN_WUR;

/* Big-endian helpers for key encoding. */
static inline void meta_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void meta_be64(uint8_t *p, uint64_t v)
{
	meta_be32(p, (uint32_t)(v >> 32));
	meta_be32(p + 4, (uint32_t)v);
}
static inline uint32_t meta_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t meta_get_be64(const uint8_t *p)
{
	return (uint64_t)meta_get_be32(p) << 32 | meta_get_be32(p + 4);
}

#endif
