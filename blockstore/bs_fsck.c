/* blockstore/bs_fsck.c - bs_fsck: the block store's records and replica
 * files checked against each other.
 *
 * Three passes, so no read transaction spans file I/O (meta.h): (1) one
 * read transaction walks the volume tables (records decode, ids map back,
 * base manifests exist, parents and their snapshots exist, clone counts
 * match, attachments and states agree) and lists every extent record with
 * written blocks; (2)
 * each such record's replica files are checked (present, VOL_EXTENT_SIZE
 * bytes), and with fix re-copied from a readable replica while the volume
 * is quiesced; (3) extents/<id> folders on the devices whose id names no
 * volume are orphans (re-checked in a fresh transaction just before a
 * removal: a folder is only made after its volume's record committed).
 * Memory: one entry per volume, snapshot and written extent record.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockstore/bs_internal.h"
#include "core/io.h"
#include "core/log.h"
#include "meta/meta.h"
#include "ring/ring.h"

struct fsck_vol {
	uint8_t id[VOL_ID_LEN];
	char name[VOL_NAME_MAX + 1];
	unsigned replicas;
	uint8_t state;
	bool has_parent;
	uint8_t parent_id[VOL_ID_LEN];
	uint32_t parent_gen;
	bool attach_rec;
};

struct fsck_snap {
	uint8_t id[VOL_ID_LEN];
	uint32_t gen;
	uint32_t nclones;
	uint32_t counted;
};

struct fsck_ext {
	size_t vol; /* index into vols */
	uint32_t gen;
	uint64_t index;
	uint64_t present;
};

struct fsck {
	struct bs_store *bs;
	bool fix;
	struct bs_check_report *rep;
	struct fsck_vol *vols;
	size_t nvols, capvols;
	struct fsck_snap *snaps;
	size_t nsnaps, capsnaps;
	struct fsck_ext *exts;
	size_t nexts, capexts;
};

static int fsck_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 64;
	void *na = realloc(*arr, nc * elem);
	if (!na)
		return -ENOMEM;
	*arr = na;
	*cap = nc;
	return 0;
}

static int fsck_cmp_vol(const void *a, const void *b)
{
	return memcmp(((const struct fsck_vol *)a)->id, ((const struct fsck_vol *)b)->id,
		      VOL_ID_LEN);
}

/* The volume with this id (vols sorted by id), or NULL. O(log volumes). */
static struct fsck_vol *fsck_vol_find(struct fsck *f, const uint8_t id[VOL_ID_LEN])
{
	struct fsck_vol key;
	memcpy(key.id, id, VOL_ID_LEN);
	return bsearch(&key, f->vols, f->nvols, sizeof(key), fsck_cmp_vol);
}

static void fsck_bad(struct fsck *f, const char *what, const char *name)
{
	f->rep->bad_records++;
	log_warn(BS_TAG, "fsck: %s%s%s", what, name ? ": " : "", name ? name : "");
}

static int fsck_snap_fn(const struct vol_snap *s, void *arg)
{
	struct fsck *f = arg;
	int ret = fsck_grow((void **)&f->snaps, &f->capsnaps, f->nsnaps, sizeof(*f->snaps));
	if (ret < 0)
		return ret;
	struct fsck_snap *fs = &f->snaps[f->nsnaps++];
	memcpy(fs->id, f->vols[f->nvols - 1].id, VOL_ID_LEN);
	fs->gen = s->gen;
	fs->nclones = s->nclones;
	fs->counted = 0;
	return 0;
}

/* Pass 1a: volume records, their ids, their snapshots. */
static int fsck_volumes(struct fsck *f, struct meta_txn *t)
{
	struct meta_cursor *c = NULL;
	const void *k, *val;
	size_t kl, vl;
	int ret = meta_cursor_open(t, META_T_VOLUMES, &c);
	if (ret == 0)
		ret = meta_cursor_seek(c, NULL, 0, &k, &kl, &val, &vl);
	while (ret == 0) {
		char name[VOL_NAME_MAX + 1];
		struct vol v, byid;
		int rc;
		if (kl <= 4 || kl > 4 + VOL_NAME_MAX) {
			fsck_bad(f, "volume key of a bad length", NULL);
			goto next;
		}
		memcpy(name, (const uint8_t *)k + 4, kl - 4);
		name[kl - 4] = 0;
		/* vol_get moves nothing in this read transaction, so the
		 * cursor stays valid. */
		rc = vol_get(t, meta_get_be32(k), name, &v);
		if (rc < 0) {
			fsck_bad(f, "volume record does not decode", name);
			goto next;
		}
		f->rep->volumes++;
		rc = vol_get_by_id(t, v.id, &byid);
		if (rc < 0 || strcmp(byid.name, v.name) != 0 || byid.part != v.part)
			fsck_bad(f, "volume id does not map back to its name", name);
		if (v.replicas == 0 || v.gen < VOL_GEN_FIRST || v.size % VOL_BLOCK_SIZE ||
		    v.state > VOL_DELETING)
			fsck_bad(f, "volume record breaks an invariant", name);
		if (v.has_base) {
			/* Its reference keeps the manifest alive: gone means
			 * the base's bytes are lost (reads fail). */
			struct cs_mid m;
			uint64_t msize;
			memcpy(m.b, v.base_mid, CS_MID_LEN);
			rc = cs_manifest_size(t, f->bs->pool, &m, &msize);
			if (rc == -ENOMEM) {
				ret = rc;
				break;
			}
			if (rc < 0)
				fsck_bad(f, "volume's base manifest is gone", name);
		}
		ret = fsck_grow((void **)&f->vols, &f->capvols, f->nvols, sizeof(*f->vols));
		if (ret < 0)
			break;
		struct fsck_vol *fv = &f->vols[f->nvols++];
		memset(fv, 0, sizeof(*fv));
		memcpy(fv->id, v.id, VOL_ID_LEN);
		snprintf(fv->name, sizeof(fv->name), "%s", v.name);
		fv->replicas = v.replicas;
		fv->state = v.state;
		fv->has_parent = v.has_parent;
		memcpy(fv->parent_id, v.parent_id, VOL_ID_LEN);
		fv->parent_gen = v.parent_gen;
		rc = vol_snapshot_list(t, &v, fsck_snap_fn, f);
		if (rc == -ENOMEM) {
			ret = rc;
			break;
		}
		if (rc < 0)
			fsck_bad(f, "snapshot record does not decode", name);
	next:
		ret = meta_cursor_next(c, &k, &kl, &val, &vl);
	}
	if (ret == CAIRN_ENOTFOUND)
		ret = 0;
	meta_cursor_close(c);
	return ret;
}

/* Pass 1b: parents, clone counts, ids, attachments, intents. */
static int fsck_links(struct fsck *f, struct meta_txn *t)
{
	struct meta_cursor *c = NULL;
	const void *k, *val;
	size_t kl, vl;
	int ret;
	if (f->nvols > 1) /* qsort(NULL, 0) is undefined (UBSan stops on it) */
		qsort(f->vols, f->nvols, sizeof(*f->vols), fsck_cmp_vol);
	for (size_t i = 0; i < f->nvols; i++) {
		struct fsck_vol *v = &f->vols[i];
		size_t j;
		if (!v->has_parent)
			continue;
		for (j = 0; j < f->nsnaps; j++)
			if (f->snaps[j].gen == v->parent_gen &&
			    !memcmp(f->snaps[j].id, v->parent_id, VOL_ID_LEN))
				break;
		if (j == f->nsnaps || !fsck_vol_find(f, v->parent_id))
			fsck_bad(f, "clone's parent snapshot is gone", v->name);
		else
			f->snaps[j].counted++;
	}
	for (size_t j = 0; j < f->nsnaps; j++)
		if (f->snaps[j].counted != f->snaps[j].nclones) {
			struct fsck_vol *v = fsck_vol_find(f, f->snaps[j].id);
			log_warn(BS_TAG, "fsck: snapshot gen %u says %u clones, %u found",
				 f->snaps[j].gen, f->snaps[j].nclones, f->snaps[j].counted);
			fsck_bad(f, "snapshot clone count is wrong", v ? v->name : NULL);
		}
	/* Ids that name no volume. */
	ret = meta_cursor_open(t, META_T_VOLIDS, &c);
	if (ret == 0)
		ret = meta_cursor_seek(c, NULL, 0, &k, &kl, &val, &vl);
	while (ret == 0) {
		if (kl != VOL_ID_LEN || !fsck_vol_find(f, k))
			fsck_bad(f, "volume id entry of no volume", NULL);
		ret = meta_cursor_next(c, &k, &kl, &val, &vl);
	}
	meta_cursor_close(c);
	c = NULL;
	if (ret != CAIRN_ENOTFOUND)
		return ret;
	/* Attachments agree with the volumes' states. */
	ret = meta_cursor_open(t, META_T_ATTACH, &c);
	if (ret == 0)
		ret = meta_cursor_seek(c, NULL, 0, &k, &kl, &val, &vl);
	while (ret == 0) {
		struct fsck_vol *v = kl == VOL_ID_LEN ? fsck_vol_find(f, k) : NULL;
		struct vol_attach_rec ar;
		if (!v)
			fsck_bad(f, "attachment of no volume", NULL);
		else if (bs_attach_load(t, v->id, &ar, NULL) < 0)
			fsck_bad(f, "attachment record does not decode", v->name);
		else
			v->attach_rec = true;
		ret = meta_cursor_next(c, &k, &kl, &val, &vl);
	}
	meta_cursor_close(c);
	c = NULL;
	if (ret != CAIRN_ENOTFOUND)
		return ret;
	for (size_t i = 0; i < f->nvols; i++)
		if (f->vols[i].attach_rec != (f->vols[i].state == VOL_ATTACHED))
			fsck_bad(f, "volume state and attachment disagree", f->vols[i].name);
	/* Write intents outstanding (resynced at the next open). */
	ret = meta_cursor_open(t, META_T_INTENTS, &c);
	if (ret == 0)
		ret = meta_cursor_seek(c, NULL, 0, &k, &kl, &val, &vl);
	while (ret == 0) {
		f->rep->intents++;
		ret = meta_cursor_next(c, &k, &kl, &val, &vl);
	}
	meta_cursor_close(c);
	return ret == CAIRN_ENOTFOUND ? 0 : ret;
}

/* Pass 1c: every extent record, in key order. */
static int fsck_extents(struct fsck *f, struct meta_txn *t)
{
	struct meta_cursor *c = NULL;
	const void *k, *val;
	size_t kl, vl;
	int ret = meta_cursor_open(t, META_T_EXTENTS, &c);
	if (ret == 0)
		ret = meta_cursor_seek(c, NULL, 0, &k, &kl, &val, &vl);
	while (ret == 0) {
		struct vol_ext_rec e;
		struct fsck_vol *v;
		uint32_t gen;
		f->rep->extents++;
		if (kl != VOL_EXT_KEY_LEN || !(v = fsck_vol_find(f, k))) {
			fsck_bad(f, "extent record of no volume", NULL);
			goto next;
		}
		gen = meta_get_be32((const uint8_t *)k + VOL_ID_LEN + 8);
		if (vl != sizeof(e)) {
			fsck_bad(f, "extent record does not decode", v->name);
			goto next;
		}
		memcpy(&e, val, sizeof(e));
		if (e.version > VOL_EXT_VERSION || e.gen != gen || (e.present & e.zero)) {
			fsck_bad(f, "extent record breaks an invariant", v->name);
			goto next;
		}
		if (!e.present)
			goto next;
		ret = fsck_grow((void **)&f->exts, &f->capexts, f->nexts, sizeof(*f->exts));
		if (ret < 0)
			break;
		f->exts[f->nexts++] =
		    (struct fsck_ext){.vol = (size_t)(v - f->vols),
				      .gen = gen,
				      .index = meta_get_be64((const uint8_t *)k + VOL_ID_LEN),
				      .present = e.present};
	next:
		ret = meta_cursor_next(c, &k, &kl, &val, &vl);
	}
	meta_cursor_close(c);
	return ret == CAIRN_ENOTFOUND ? 0 : ret;
}

/* Copies the record's blocks to every replica from one that reads, with
 * the volume quiesced so no write races the copy. Damaged replicas (a
 * wrong size: a torn create) are removed first, so the copy can only read
 * from a whole one and makes them anew. */
static int fsck_repair(struct fsck *f, struct io_ctx **ctx, const struct fsck_ext *x,
		       char (*damaged)[PATH_MAX], unsigned ndamaged)
{
	const struct fsck_vol *fv = &f->vols[x->vol];
	struct bs_vol *vol = NULL;
	int ret;
	if (!*ctx) {
		ret = io_ctx_create(64, ctx);
		if (ret < 0)
			return ret;
	}
	ret = bs_vol_get(f->bs, fv->id, &vol);
	if (ret < 0)
		return ret; /* CAIRN_ENOTFOUND: deleted since pass 1 */
	bs_vol_quiesce(vol);
	if (atomic_load(&vol->nhandles) > 0) {
		/* Its handles' fd cache may hold the lost inode: a file made
		 * anew under it would be shadowed. Repaired once they close. */
		log_warn(BS_TAG, "fsck: volume %s has open connections: repair it after they close",
			 fv->name);
		bs_vol_resume(vol, NULL);
		bs_vol_put(f->bs, vol);
		return -EBUSY;
	}
	for (unsigned i = 0; i < ndamaged; i++)
		if (unlink(damaged[i]) < 0 && errno != ENOENT)
			log_warn(BS_TAG, "fsck: removing damaged %s: %s", damaged[i],
				 strerror(errno));
	ret = bs_io_copy_blocks(f->bs, *ctx, fv->id, x->gen, fv->replicas, fv->id, x->gen,
				fv->replicas, x->index, x->present);
	bs_vol_resume(vol, NULL);
	bs_vol_put(f->bs, vol);
	return ret;
}

/* Pass 2: the replica files of every written record. */
static int fsck_files(struct fsck *f)
{
	char(*damaged)[PATH_MAX] = malloc(256 * sizeof(*damaged));
	struct io_ctx *ctx = NULL;
	int ret = 0;
	if (!damaged)
		return -ENOMEM;
	for (size_t i = 0; i < f->nexts; i++) {
		const struct fsck_ext *x = &f->exts[i];
		const struct fsck_vol *fv = &f->vols[x->vol];
		uint32_t devs[256]; /* replicas is a u8; 0 was reported in pass 1 */
		unsigned n, bad = 0, ndamaged = 0;
		if (fv->replicas == 0)
			continue;
		n = bs_extent_devs(f->bs, fv->id, x->index, fv->replicas, devs);
		for (unsigned d = 0; d < n; d++) {
			char path[PATH_MAX];
			struct stat st;
			const char *why = "is damaged";
			f->rep->files_checked++;
			ret = bs_extent_path(f->bs, devs[d], fv->id, x->gen, x->index, path,
					     sizeof(path));
			if (ret < 0)
				goto out;
			if (stat(path, &st) < 0)
				why = errno == ENOENT ? "is missing" : "cannot be read";
			else if (S_ISREG(st.st_mode) && st.st_size == VOL_EXTENT_SIZE)
				continue;
			else if (S_ISREG(st.st_mode))
				memcpy(damaged[ndamaged++], path, sizeof(path));
			bad++;
			log_warn(BS_TAG, "fsck: volume %s extent %llu gen %u: replica %s %s",
				 fv->name, (unsigned long long)x->index, x->gen, path, why);
		}
		if (!bad)
			continue;
		f->rep->missing_files += bad;
		if (bad == n) {
			log_err(BS_TAG, "fsck: volume %s extent %llu gen %u: every replica is lost",
				fv->name, (unsigned long long)x->index, x->gen);
			continue;
		}
		if (!f->fix)
			continue;
		int rc = fsck_repair(f, &ctx, x, damaged, ndamaged);
		if (rc == 0)
			f->rep->fixed += bad;
		else
			log_err(BS_TAG, "fsck: volume %s extent %llu gen %u: repair failed: %s",
				fv->name, (unsigned long long)x->index, x->gen, cairn_strerror(rc));
	}
out:
	io_ctx_free(ctx);
	free(damaged);
	return ret;
}

static int fsck_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -errno;
}

static bool fsck_parse_hex(const char *s, uint8_t id[VOL_ID_LEN])
{
	if (strlen(s) != 2 * VOL_ID_LEN)
		return false;
	for (unsigned i = 0; i < 2 * VOL_ID_LEN; i++) {
		char ch = s[i];
		unsigned v = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
			     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
						      : 16u;
		if (v == 16)
			return false;
		if (i % 2 == 0)
			id[i / 2] = (uint8_t)(v << 4);
		else
			id[i / 2] |= (uint8_t)v;
	}
	return true;
}

/* Pass 3: extents/<id> folders of no volume. */
static int fsck_orphans(struct fsck *f)
{
	uint32_t n = ring_dev_count(f->bs->ring), found = 0;
	int ret = 0;
	for (uint32_t dev = 0; found < n && dev < 65536 && ret == 0; dev++) {
		char dir[PATH_MAX], sub[PATH_MAX + 300];
		struct dirent *de;
		DIR *d;
		if (!ring_dev(f->bs->ring, dev))
			continue;
		found++;
		ret = bs_dev_dir(f->bs, dev, dir, sizeof(dir));
		if (ret < 0)
			break;
		strncat(dir, "/extents", sizeof(dir) - strlen(dir) - 1);
		d = opendir(dir);
		if (!d)
			continue; /* no volume ever wrote to this device */
		while ((de = readdir(d))) {
			uint8_t id[VOL_ID_LEN];
			struct meta_txn *t = NULL;
			struct vol v;
			int rc;
			if (de->d_name[0] == '.')
				continue;
			if (!fsck_parse_hex(de->d_name, id)) {
				log_warn(BS_TAG, "fsck: %s/%s is not a volume folder", dir,
					 de->d_name);
				continue;
			}
			rc = meta_txn_begin(f->bs->meta, false, &t);
			if (rc == 0)
				rc = vol_get_by_id(t, id, &v);
			meta_txn_abort(t);
			if (rc != CAIRN_ENOTFOUND) {
				if (rc < 0)
					ret = rc;
				continue;
			}
			f->rep->orphan_dirs++;
			snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
			log_warn(BS_TAG, "fsck: %s belongs to no volume%s", sub,
				 f->fix ? ": removing it" : "");
			if (f->fix) {
				if (nftw(sub, fsck_rm_cb, 16, FTW_DEPTH | FTW_PHYS) == 0)
					f->rep->fixed++;
				else
					log_err(BS_TAG, "fsck: removing %s: %s", sub,
						strerror(errno));
			}
		}
		closedir(d);
	}
	return ret;
}

int bs_fsck(struct bs_store *bs, bool fix, struct bs_check_report *rep)
{
	struct fsck f = {.bs = bs, .fix = fix, .rep = rep};
	struct meta_txn *t = NULL;
	int ret;
	memset(rep, 0, sizeof(*rep));
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = fsck_volumes(&f, t);
	if (ret == 0)
		ret = fsck_links(&f, t);
	if (ret == 0)
		ret = fsck_extents(&f, t);
	meta_txn_abort(t);
	if (ret == 0)
		ret = fsck_files(&f);
	if (ret == 0)
		ret = fsck_orphans(&f);
	log_info(BS_TAG,
		 "fsck: %llu volumes, %llu extent records, %llu files checked, %llu missing, "
		 "%llu bad records, %llu orphan folders, %llu intents, %llu fixed",
		 (unsigned long long)rep->volumes, (unsigned long long)rep->extents,
		 (unsigned long long)rep->files_checked, (unsigned long long)rep->missing_files,
		 (unsigned long long)rep->bad_records, (unsigned long long)rep->orphan_dirs,
		 (unsigned long long)rep->intents, (unsigned long long)rep->fixed);
	free(f.vols);
	free(f.snaps);
	free(f.exts);
	return ret;
}
