/* registry/img_store.h - image records in LMDB and the in-memory index.
 *
 * Records (registry/img_format.h) are the truth; the index holds every
 * image in memory (a sorted array of entries by id) so listing, filtering
 * and sorting never scan LMDB. Writes are read-modify-write inside a
 * cs_commit callback: the callback reads the current record in the group
 * transaction, lets a mutation function change a decoded copy, stamps a new
 * seq (a registry-wide counter bumped on the committer thread, so seqs
 * follow commit order) and writes it. Only after the commit returned 0 is
 * the result applied to the index, and only if its seq is newer than what
 * the index holds; a deletion leaves a tombstone (with its seq) so that a
 * late apply of an older write cannot bring the image back. Tombstones are
 * dropped when no write is in flight.
 *
 * Entries are immutable once published and reference-counted: a reader
 * takes one under the read lock (img_store_get) or walks the array under
 * img_store_rdlock. A write replaces the entry; the old one lives until its
 * last reference goes.
 *
 * Threads: any. The index lock is a rwlock; mutation functions run on the
 * committer thread and must not block.
 */
#ifndef CAIRN_REGISTRY_IMG_STORE_H
#define CAIRN_REGISTRY_IMG_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "registry/img_format.h"

struct cs_pool;
struct cs_txn;

struct img_entry {
	atomic_int refs;
	bool deleted; /* a tombstone: only id and rec.seq mean anything */
	struct img_rec rec;
	json_t *doc; /* owned; never changed once published */
	char id[37];
	/* borrowed from doc (NULL when absent or null) */
	const char *name, *owner, *disk_format, *container_format;
	/* cached usage (cairn_unique_bytes/shared_bytes) of rec's manifests;
	 * usage_gen is the caller's generation when it was computed, usage_ns
	 * the time (other data sharing the chunks changes the figures) */
	_Atomic uint64_t unique_bytes, shared_bytes;
	atomic_bool usage_valid;
	_Atomic uint64_t usage_gen;
	_Atomic int64_t usage_ns;
};

struct img_store;

/* Parses a UUID string (any case, with dashes) into 16 bytes. */
int img_id_parse(const char *s, uint8_t id[IMG_ID_LEN]) CAIRN_WUR;
/* Lowercase UUID string with dashes (37 bytes with the NUL). */
void img_id_fmt(const uint8_t id[IMG_ID_LEN], char out[37]);
/* The LMDB key of an image. */
void img_key(struct cs_pool *pool, const uint8_t id[IMG_ID_LEN], uint8_t key[IMG_KEY_LEN]);

/* Record codec. encode: *out malloc'd. decode: CAIRN_EFORMAT for a newer
 * version, CAIRN_ECORRUPT for a short or bad record; *doc is a new object. */
int img_rec_encode(const struct img_rec *r, const json_t *doc, uint8_t **out,
		   size_t *len) CAIRN_WUR;
int img_rec_decode(const void *v, size_t len, struct img_rec *r, json_t **doc) CAIRN_WUR;

/* A new doc with Glance's defaults for the fields the fixed part does not
 * hold (name null, formats null, min_disk/min_ram 0, tags [], props {},
 * members {}). */
json_t *img_doc_new(void);

/* Loads every record into the index and recovers interrupted uploads:
 * saving/importing (and uploading without staged data) go back to queued,
 * releasing raw_mid/stage_mid references. */
int img_store_open(struct cs_pool *pool, struct img_store **out) CAIRN_WUR;
void img_store_close(struct img_store *st);

/* One image with a reference (img_entry_put), or NULL (also for tombstones). */
struct img_entry *img_store_get(struct img_store *st, const uint8_t id[IMG_ID_LEN]);
void img_entry_get(struct img_entry *e);
void img_entry_put(struct img_entry *e);

/* Walking the index: between rdlock and unlock, img_store_at(i) for
 * i < img_store_count() (tombstones included: skip e->deleted). */
void img_store_rdlock(struct img_store *st);
void img_store_unlock(struct img_store *st);
size_t img_store_count(struct img_store *st);
struct img_entry *img_store_at(struct img_store *st, size_t i);

/* Updates the usage cache of the entry currently indexed for id if its seq
 * is still seq, stamped with gen and the time. */
void img_store_set_usage(struct img_store *st, const uint8_t id[IMG_ID_LEN], uint64_t seq,
			 uint64_t gen, uint64_t unique_bytes, uint64_t shared_bytes);

/* ---- writes ---- */

struct img_mut;
/* Changes m->rec/m->doc (the current record, decoded; for a create, a
 * fresh one) inside the transaction. May set m->remove. A negative return
 * undoes the write (the message in m->why). */
typedef int (*img_mut_fn)(struct cs_txn *txn, struct img_mut *m);

struct img_mut {
	uint8_t id[IMG_ID_LEN];
	bool create;	/* the record must not exist (CAIRN_EEXISTS) */
	img_mut_fn fn;	/* may be NULL (rewrite as is) */
	void *arg;	/* for fn */
	int64_t now_ns; /* 0: taken at the write */
	/* filled by the write: */
	struct img_rec rec;
	json_t *doc;
	bool remove;
	bool done; /* a write committed into rec/doc (apply it) */
	char why[256];
};

/* Inside any cs_commit callback: reads the record, runs m->fn, writes.
 * Returns fn's code, CAIRN_ENOTFOUND (no record, not a create), or
 * CAIRN_EEXISTS (a create of an existing id). m->doc is replaced each call. */
int img_store_mut_txn(struct img_store *st, struct cs_txn *txn, struct img_mut *m) CAIRN_WUR;
/* After the commit that ran img_store_mut_txn returned 0: publish. */
void img_store_mut_apply(struct img_store *st, struct img_mut *m);
/* cs_commit(NULL writer) + mut_txn + apply. */
int img_store_write(struct img_store *st, struct img_mut *m) CAIRN_WUR;
/* Frees m->doc. */
void img_mut_clear(struct img_mut *m);
/* Re-reads the record of id from LMDB and makes the index agree (after a
 * failure that may have left part of a multi-commit write behind). */
int img_store_refresh(struct img_store *st, const uint8_t id[IMG_ID_LEN]) CAIRN_WUR;
/* Writes in flight bracket (img_store_write does it itself): callers that
 * commit through other paths (img_upload_commit) call begin before and
 * end after applying. */
void img_store_write_begin(struct img_store *st);
void img_store_write_end(struct img_store *st);

struct cs_pool *img_store_pool(struct img_store *st);

/* Unix nanoseconds now. */
int64_t img_now_ns(void);

#endif
