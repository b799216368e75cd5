/* tests/unit/test_gc.c - garbage collection under grace periods (cs_gc),
 * cs_fsck, and a stress test racing deduplicating PUTs, DELETEs and GC.
 *
 * Interleavings are forced, not timed: a GC pass runs on its own thread and
 * reports its phases through the progress callback; the test holds a reader
 * or writer open to keep the pass inside its grace period, and watches the
 * pool's epoch counter to know the period has started. Each test makes its
 * own pool (background GC off) under a fresh temporary dir.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cs_test.h"
#include "chunkstore/chunkstore.h"
#include "chunkstore/cs_internal.h"
#include "core/io.h"
#include "core/log.h"
#include "meta/meta.h"
#include "ring/ring.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define CHUNK (64u * KIB)

static char g_dir[256];

static int setup(void **state)
{
	(void)state;
	return cs_test_tmpdir(g_dir, sizeof(g_dir), "gc");
}

static int teardown(void **state)
{
	(void)state;
	rm_rf(g_dir);
	return 0;
}

/* Small units (3 chunks each, 12 per stripe) so a few objects span several
 * stripes; no background GC. */
static uint32_t g_chunking = CS_CHUNK_FIXED; /* the stress test also runs on CDC */
/* Most tests count stripes and unit files exactly: no sealer. The stress
 * tests seal, so GC races the sealer too. */
static bool g_seal;

static struct cs_pool *open_pool(void)
{
	struct cs_pool_opts o = {.data_dir = g_dir,
				 .unit_size = 256 * KIB,
				 .chunking = g_chunking,
				 .seal_off = !g_seal,
				 .gc_interval = -1};
	struct cs_pool *p = NULL;
	assert_int_equal(cs_pool_open(&o, &p), 0);
	return p;
}

static int create_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_create(t, arg);
}

static int unref_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_unref(t, arg);
}

static int write_all(struct cs_pool *p, const uint8_t *d, size_t size, struct cs_writer **out)
{
	struct cs_writer *w;
	int rc = cs_writer_open(p, &w);
	if (rc < 0)
		return rc;
	for (size_t off = 0; off < size && rc == 0; off += 100000)
		rc = cs_writer_write(w, d + off, size - off < 100000 ? size - off : 100000);
	if (rc == 0)
		rc = cs_writer_finish(w);
	if (rc < 0) {
		cs_writer_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

static int put(struct cs_pool *p, const uint8_t *d, size_t size, struct cs_mid *mid)
{
	struct cs_writer *w = NULL;
	int rc = write_all(p, d, size, &w);
	if (rc == 0)
		rc = cs_commit(p, w, create_fn, mid);
	cs_writer_free(w);
	return rc;
}

static void del(struct cs_pool *p, struct cs_mid *mid)
{
	assert_int_equal(cs_commit(p, NULL, unref_fn, mid), 0);
}

static int read_all(struct cs_pool *p, const struct cs_mid *mid, const uint8_t *d, size_t size)
{
	struct cs_reader *r;
	int rc = cs_reader_open(p, mid, &r);
	if (rc < 0)
		return rc;
	uint8_t *buf = malloc(size + 1);
	if (cs_reader_size(r) != size)
		rc = -1000;
	for (size_t off = 0; rc == 0 && off < size;) {
		long n = cs_reader_read(r, off, buf + off, 300000);
		if (n <= 0)
			rc = n < 0 ? (int)n : -1001;
		else
			off += (size_t)n;
	}
	if (rc == 0 && size && memcmp(buf, d, size))
		rc = -1002;
	free(buf);
	cs_reader_free(r);
	return rc;
}

static void sha256(const void *d, size_t n, uint8_t out[32])
{
	unsigned l = 0;
	assert_int_equal(EVP_Digest(d, n, out, &l, EVP_sha256(), NULL), 1);
}

/* The chunk index record of a chunk's bytes; -1 when absent. */
static int chunk_rec(struct cs_pool *p, const void *d, size_t n, struct cs_chunk_rec *out)
{
	uint8_t fp[32], key[36];
	sha256(d, n, fp);
	cs_key_chunk(key, cs_chunk_part(p, fp), fp);
	struct meta_txn *t;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &t), 0);
	const void *v;
	size_t vl;
	int rc = meta_get(t, META_T_CHUNKS, key, sizeof(key), &v, &vl);
	if (rc == 0 && out)
		memcpy(out, v, sizeof(*out));
	meta_txn_abort(t);
	return rc == 0 ? 0 : -1;
}

static uint64_t count_table(struct cs_pool *p, enum meta_table tab)
{
	struct meta_txn *t;
	struct meta_cursor *c;
	const void *k, *v;
	size_t kl, vl;
	uint64_t n = 0;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &t), 0);
	assert_int_equal(meta_cursor_open(t, tab, &c), 0);
	for (int rc = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl); rc == 0;
	     rc = meta_cursor_next(c, &k, &kl, &v, &vl))
		n++;
	meta_cursor_close(c);
	meta_txn_abort(t);
	return n;
}

/* Unit files on all devices. */
static unsigned count_unit_files(void)
{
	unsigned n = 0;
	for (int d = 0; d < 6; d++) {
		char sdir[512];
		snprintf(sdir, sizeof(sdir), "%s/devices/d%d/stripes", g_dir, d);
		DIR *top = opendir(sdir);
		if (!top)
			continue;
		struct dirent *pe;
		while ((pe = readdir(top))) {
			if (pe->d_name[0] == '.')
				continue;
			char pdir[1024];
			snprintf(pdir, sizeof(pdir), "%s/%s", sdir, pe->d_name);
			DIR *pd = opendir(pdir);
			struct dirent *fe;
			while (pd && (fe = readdir(pd)))
				n += fe->d_name[0] != '.';
			if (pd)
				closedir(pd);
		}
		closedir(top);
	}
	return n;
}

static void gc_now(struct cs_pool *p, struct cs_check_report *rep)
{
	struct cs_check_report r;
	if (g_seal) /* a stripe being sealed is busy: GC would skip it */
		assert_int_equal(cs_seal_drain(p, false), 0);
	assert_int_equal(cs_gc(p, rep ? rep : &r, NULL, NULL), 0);
}

static void fsck_clean(struct cs_pool *p)
{
	struct cs_check_report rep;
	assert_int_equal(cs_fsck(p, false, &rep, NULL, NULL), 0);
	if (rep.problems)
		fail_msg("fsck: %llu problems, first: %s", (unsigned long long)rep.problems,
			 rep.first_problem);
}

/* ---- a GC pass on its own thread, observable ---- */

struct bg_gc {
	struct cs_pool *p;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool unlinking, done;
	int rc;
	struct cs_check_report rep;
	uint64_t epoch0;
};

static void bg_progress(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	(void)done, (void)total;
	struct bg_gc *g = arg;
	if (!strcmp(phase, "unlink")) {
		pthread_mutex_lock(&g->mu);
		g->unlinking = true;
		pthread_cond_broadcast(&g->cv);
		pthread_mutex_unlock(&g->mu);
	}
}

static void *bg_main(void *arg)
{
	struct bg_gc *g = arg;
	int rc = cs_gc(g->p, &g->rep, bg_progress, g);
	pthread_mutex_lock(&g->mu);
	g->rc = rc;
	g->done = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

static uint64_t epoch_now(struct cs_pool *p)
{
	pthread_mutex_lock(&p->ep_mu);
	uint64_t e = p->ep_cur;
	pthread_mutex_unlock(&p->ep_mu);
	return e;
}

static void bg_start(struct bg_gc *g, struct cs_pool *p)
{
	memset(g, 0, sizeof(*g));
	g->p = p;
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->epoch0 = epoch_now(p);
	assert_int_equal(pthread_create(&g->th, NULL, bg_main, g), 0);
}

/* Returns once the pass has begun its first grace period: everything it
 * scanned is decided, manifests at 0 are doomed, and readers or writers
 * opened from now on are not waited for. */
static void bg_wait_grace(struct bg_gc *g)
{
	while (epoch_now(g->p) == g->epoch0)
		usleep(1000);
}

/* Returns once the pass has freed what it will free (it may still wait for
 * the second grace period before unlinking). */
static void bg_wait_freed(struct bg_gc *g)
{
	pthread_mutex_lock(&g->mu);
	while (!g->unlinking && !g->done)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void bg_join(struct bg_gc *g)
{
	pthread_join(g->th, NULL);
	assert_int_equal(g->rc, 0);
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
}

/* ---- tests ---- */

static void test_gc_frees_manifests_chunks_stripes_and_space(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	enum { N = 4 };
	size_t size = 40 * CHUNK + 123; /* > 3 stripes each */
	uint8_t *d[N];
	struct cs_mid mid[N];
	for (int i = 0; i < N; i++) {
		d[i] = malloc(size);
		fill_random(d[i], size, 100 + (uint64_t)i);
		assert_int_equal(put(p, d[i], size, &mid[i]), 0);
	}
	struct cs_stats s0, s1, s2;
	assert_int_equal(cs_pool_stats(p, &s0), 0);
	assert_int_equal(s0.chunks, N * 41);
	unsigned files0 = count_unit_files();
	assert_true(files0 > 0);

	/* nothing dead: GC frees nothing */
	gc_now(p, NULL);
	assert_int_equal(count_table(p, META_T_CHUNKS), N * 41);
	assert_int_equal(count_unit_files(), files0);

	/* delete half: their chunks and whole stripes go, the rest reads exact */
	del(p, &mid[0]);
	del(p, &mid[1]);
	assert_int_equal(count_table(p, META_T_CHUNKS), N * 41); /* dead, not freed */
	struct cs_check_report rep;
	gc_now(p, &rep);
	assert_int_equal(count_table(p, META_T_CHUNKS), 2 * 41);
	assert_int_equal(count_table(p, META_T_MHDR), 2);
	assert_int_equal(rep.freed_bytes, 2 * (40 * CHUNK + 123));
	assert_int_equal(chunk_rec(p, d[0], CHUNK, NULL), -1);
	assert_int_equal(chunk_rec(p, d[2], CHUNK, NULL), 0);
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	assert_true(s1.physical_bytes < s0.physical_bytes);
	assert_true(s1.stripes < s0.stripes);
	assert_true(count_unit_files() < files0);
	assert_int_equal(read_all(p, &mid[0], d[0], size), CAIRN_ENOTFOUND);
	assert_int_equal(read_all(p, &mid[2], d[2], size), 0);
	assert_int_equal(read_all(p, &mid[3], d[3], size), 0);
	fsck_clean(p);

	/* delete the rest; the workers' open stripes are busy until the pool
	 * closes, so after a restart everything goes */
	del(p, &mid[2]);
	del(p, &mid[3]);
	gc_now(p, NULL);
	cs_pool_close(p);
	p = open_pool();
	gc_now(p, NULL);
	assert_int_equal(cs_pool_stats(p, &s2), 0);
	assert_int_equal(s2.physical_bytes, 0);
	assert_int_equal(s2.stripes, 0);
	assert_int_equal(s2.chunks, 0);
	assert_int_equal(s2.manifests, 0);
	assert_int_equal(s2.logical_bytes, 0);
	assert_int_equal(count_table(p, META_T_CHUNKS), 0);
	assert_int_equal(count_table(p, META_T_STRIPES), 0);
	assert_int_equal(count_table(p, META_T_MHDR), 0);
	assert_int_equal(count_table(p, META_T_MANIFESTS), 0);
	assert_int_equal(count_unit_files(), 0);
	fsck_clean(p);
	/* the pool still works */
	assert_int_equal(put(p, d[1], size, &mid[1]), 0);
	assert_int_equal(read_all(p, &mid[1], d[1], size), 0);
	fsck_clean(p);
	cs_pool_close(p);
	for (int i = 0; i < N; i++)
		free(d[i]);
}

static void test_gc_reader_open_across_gc_reads_exact(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	size_t size = 50 * CHUNK + 7;
	uint8_t *d = malloc(size), *buf = malloc(size);
	fill_random(d, size, 7);
	struct cs_mid mid;
	assert_int_equal(put(p, d, size, &mid), 0);
	struct cs_reader *r;
	assert_int_equal(cs_reader_open(p, &mid, &r), 0);
	assert_int_equal(cs_reader_read(r, 0, buf, 1000), 1000);
	del(p, &mid);

	struct bg_gc g;
	bg_start(&g, p);
	bg_wait_grace(&g);
	/* doomed: no new reader; the open one reads everything */
	struct cs_reader *r2 = NULL;
	assert_int_equal(cs_reader_open(p, &mid, &r2), CAIRN_ENOTFOUND);
	uint64_t sz;
	struct meta_txn *t;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &t), 0);
	assert_int_equal(cs_manifest_size(t, p, &mid, &sz), CAIRN_ENOTFOUND);
	meta_txn_abort(t);
	for (size_t off = 0; off < size;) {
		long n = cs_reader_read(r, off, buf + off, 70000);
		assert_true(n > 0);
		off += (size_t)n;
	}
	assert_memory_equal(buf, d, size);
	/* the pass cannot have freed anything yet */
	assert_int_equal(chunk_rec(p, d, CHUNK, NULL), 0);
	assert_false(g.done);
	cs_reader_free(r);
	bg_join(&g);
	assert_int_equal(chunk_rec(p, d, CHUNK, NULL), -1);
	assert_int_equal(count_table(p, META_T_MHDR), 0);
	assert_int_equal(count_table(p, META_T_MANIFESTS), 0);
	fsck_clean(p);
	cs_pool_close(p);
	free(d);
	free(buf);
}

/* A writer deduplicated against live chunks, then their only object was
 * deleted and a GC pass started: the pass waits for the writer, whose
 * commit revives the chunks. */
static void test_gc_dedup_writer_racing_delete_commits_live(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	size_t size = 20 * CHUNK;
	uint8_t *d = malloc(size);
	fill_random(d, size, 11);
	struct cs_mid a, b;
	assert_int_equal(put(p, d, size, &a), 0);
	struct cs_writer *w;
	assert_int_equal(write_all(p, d, size, &w), 0);
	for (size_t i = 0; i < 20; i++)
		assert_false(w->chunks[i].is_new); /* all dedup hits */
	del(p, &a);
	struct bg_gc g;
	bg_start(&g, p);
	bg_wait_grace(&g); /* the chunks were scanned dead: candidates */
	assert_int_equal(cs_commit(p, w, create_fn, &b), 0);
	cs_writer_free(w);
	bg_join(&g);
	struct cs_chunk_rec cr;
	assert_int_equal(chunk_rec(p, d, CHUNK, &cr), 0);
	assert_int_equal(cr.refcount, 1);
	assert_int_equal(read_all(p, &b, d, size), 0);
	assert_int_equal(read_all(p, &a, d, size), CAIRN_ENOTFOUND);
	fsck_clean(p);
	/* and once b goes too, a pass frees them */
	del(p, &b);
	gc_now(p, NULL);
	assert_int_equal(chunk_rec(p, d, CHUNK, NULL), -1);
	fsck_clean(p);
	cs_pool_close(p);
	free(d);
}

/* The case the revival record exists for: a chunk dead at the scan is
 * revived during the grace period by a fresh copy, a new writer (not
 * waited for) deduplicates against it, and it dies again before the pass
 * frees. The pass must keep it, and the writer's commit must succeed. */
static void test_gc_revived_then_dead_again_keeps_chunk(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	size_t size = 20 * CHUNK;
	uint8_t *d = malloc(size);
	fill_random(d, size, 12);
	struct cs_mid a, v, b;
	assert_int_equal(put(p, d, size, &a), 0);
	struct cs_chunk_rec c0, c1;
	assert_int_equal(chunk_rec(p, d, CHUNK, &c0), 0);
	del(p, &a);

	struct cs_writer *hold; /* keeps the pass in its grace period */
	assert_int_equal(cs_writer_open(p, &hold), 0);
	struct bg_gc g;
	bg_start(&g, p);
	bg_wait_grace(&g);
	/* a dead chunk is a dedup miss: v stores fresh copies, and its commit
	 * moves the dead entries there (revival) */
	struct cs_writer *wv;
	assert_int_equal(write_all(p, d, size, &wv), 0);
	assert_true(wv->chunks[0].is_new);
	assert_int_equal(cs_commit(p, wv, create_fn, &v), 0);
	cs_writer_free(wv);
	assert_int_equal(chunk_rec(p, d, CHUNK, &c1), 0);
	assert_int_equal(c1.refcount, 1);
	assert_true(c1.stripe_id != c0.stripe_id || c1.offset != c0.offset || c1.unit != c0.unit);
	/* w deduplicates against the live chunks; then they die again */
	struct cs_writer *w;
	assert_int_equal(write_all(p, d, size, &w), 0);
	assert_false(w->chunks[0].is_new);
	del(p, &v);
	cs_writer_free(hold);
	bg_wait_freed(&g);
	/* the pass has done its freeing: the chunks must still be there */
	assert_int_equal(chunk_rec(p, d, CHUNK, &c1), 0);
	assert_int_equal(c1.refcount, 0);
	assert_int_equal(cs_commit(p, w, create_fn, &b), 0);
	cs_writer_free(w);
	bg_join(&g);
	assert_int_equal(read_all(p, &b, d, size), 0);
	/* v died after this pass doomed manifests: still readable (dead, not
	 * doomed) until the next pass */
	assert_int_equal(read_all(p, &v, d, size), 0);
	fsck_clean(p);
	gc_now(p, NULL);
	assert_int_equal(read_all(p, &v, d, size), CAIRN_ENOTFOUND);
	assert_int_equal(read_all(p, &b, d, size), 0);
	fsck_clean(p);
	cs_pool_close(p);
	free(d);
}

/* The stripe side of the same race: chunks revived in place during the
 * grace period (their stripe had no live bytes at the scan), deduplicated
 * against by a writer the pass does not wait for, then dead again. The
 * stripe must survive the pass, or that writer's commit would revive
 * chunks into a freed stripe. */
static void test_gc_stripe_revived_in_grace_period_survives(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	size_t size = 9 * CHUNK;
	uint8_t *d = malloc(size);
	fill_random(d, size, 16);
	struct cs_mid a, b1, b2;
	assert_int_equal(put(p, d, size, &a), 0);
	cs_pool_close(p); /* its stripe is no longer a worker's */
	p = open_pool();
	struct cs_writer *w1, *w2;
	assert_int_equal(write_all(p, d, size, &w1), 0);
	assert_false(w1->chunks[0].is_new);
	del(p, &a); /* the stripe has no live bytes now */
	struct bg_gc g;
	bg_start(&g, p);
	bg_wait_grace(&g); /* w1 holds the pass in its grace period */
	assert_int_equal(cs_commit(p, w1, create_fn, &b1), 0); /* revives in place */
	assert_int_equal(write_all(p, d, size, &w2), 0);
	assert_false(w2->chunks[0].is_new);
	del(p, &b1);
	cs_writer_free(w1);
	bg_wait_freed(&g);
	assert_int_equal(cs_commit(p, w2, create_fn, &b2), 0);
	cs_writer_free(w2);
	bg_join(&g);
	assert_int_equal(read_all(p, &b2, d, size), 0);
	fsck_clean(p);
	gc_now(p, NULL);
	assert_int_equal(read_all(p, &b2, d, size), 0);
	fsck_clean(p);
	cs_pool_close(p);
	free(d);
}

/* A stripe a worker still appends to is busy: even with no live bytes at
 * the scan it survives, so a writer that appends to it after the pass
 * began (and is not waited for) commits and reads back. */
static void test_gc_keeps_stripe_a_worker_appends_to(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.data_dir = g_dir,
				 .seal_off = true,
				 .chunking = CS_CHUNK_FIXED,
				 .unit_size = 256 * KIB,
				 .gc_interval = -1,
				 .workers = 1};
	struct cs_pool *p = NULL;
	assert_int_equal(cs_pool_open(&o, &p), 0);
	size_t size = 2 * CHUNK;
	uint8_t *d = malloc(size), *d2 = malloc(size);
	fill_random(d, size, 17);
	fill_random(d2, size, 18);
	struct cs_mid a, b;
	assert_int_equal(put(p, d, size, &a), 0);
	del(p, &a); /* the worker's open stripe has no live bytes */
	struct cs_writer *hold, *w;
	assert_int_equal(cs_writer_open(p, &hold), 0);
	struct bg_gc g;
	bg_start(&g, p);
	bg_wait_grace(&g);
	assert_int_equal(write_all(p, d2, size, &w), 0); /* into that stripe */
	assert_true(w->chunks[0].is_new);
	cs_writer_free(hold);
	bg_wait_freed(&g);
	assert_int_equal(cs_commit(p, w, create_fn, &b), 0);
	cs_writer_free(w);
	bg_join(&g);
	assert_int_equal(read_all(p, &b, d2, size), 0);
	fsck_clean(p);
	cs_pool_close(p);
	free(d);
	free(d2);
}

/* A writer that stored fresh copies into a stripe and is still open keeps
 * that stripe's files (its records are uncommitted, the stripe may have no
 * record yet) even once its worker moved on. */
static void test_gc_keeps_uncommitted_writer_data(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	size_t size = 30 * CHUNK; /* fills stripes: the worker moves on */
	uint8_t *d = malloc(size);
	fill_random(d, size, 13);
	struct cs_writer *w;
	assert_int_equal(write_all(p, d, size, &w), 0);
	struct bg_gc g;
	bg_start(&g, p);
	bg_wait_grace(&g);
	struct cs_mid mid;
	assert_int_equal(cs_commit(p, w, create_fn, &mid), 0);
	cs_writer_free(w);
	bg_join(&g);
	assert_int_equal(read_all(p, &mid, d, size), 0);
	gc_now(p, NULL);
	assert_int_equal(read_all(p, &mid, d, size), 0);
	fsck_clean(p);
	/* a writer that never commits leaves dead data: GC removes its files
	 * once no worker holds the stripe (here: after a restart) */
	uint8_t *d2 = malloc(size);
	fill_random(d2, size, 14);
	assert_int_equal(write_all(p, d2, size, &w), 0);
	cs_writer_free(w);
	cs_pool_close(p);
	p = open_pool();
	unsigned before = count_unit_files();
	gc_now(p, NULL);
	assert_true(count_unit_files() < before);
	assert_int_equal(read_all(p, &mid, d, size), 0);
	fsck_clean(p);
	del(p, &mid);
	cs_pool_close(p);
	p = open_pool();
	gc_now(p, NULL);
	assert_int_equal(count_unit_files(), 0);
	cs_pool_close(p);
	free(d);
	free(d2);
}

static void test_gc_removes_orphan_unit_files(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	size_t size = 10 * CHUNK;
	uint8_t *d = malloc(size);
	fill_random(d, size, 15);
	struct cs_mid mid;
	assert_int_equal(put(p, d, size, &mid), 0);
	cs_pool_close(p);
	p = open_pool();
	/* a file of a stripe id that was handed out but has no record (a crash
	 * between a stripe's record removal and its unlink) */
	uint64_t id = 5;
	char dir[CS_PATH_MAX], path[CS_PATH_MAX];
	assert_int_equal(
	    cs_unit_path(p, 0, id, cs_stripe_part(p, id), 0, dir, sizeof(dir), path, sizeof(path)),
	    0);
	assert_int_equal(io_mkdirs(dir, 0755), 0);
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "junk", 4), 4);
	close(fd);
	/* temp copies (sealing, scrub, repair write <unit>.tmp then rename):
	 * one older than the pool's open is a crash's leftover, a new one is
	 * someone's work in progress */
	char old_tmp[CS_PATH_MAX + 8], new_tmp[CS_PATH_MAX + 8];
	snprintf(old_tmp, sizeof(old_tmp), "%s.tmp", path);
	snprintf(new_tmp, sizeof(new_tmp), "%.*s1.tmp", (int)strlen(path) - 1, path);
	for (int i = 0; i < 2; i++) {
		fd = open(i ? new_tmp : old_tmp, O_CREAT | O_WRONLY, 0644);
		assert_true(fd >= 0);
		close(fd);
	}
	struct timespec past[2] = {{.tv_sec = time(NULL) - 3600}, {.tv_sec = time(NULL) - 3600}};
	assert_int_equal(utimensat(AT_FDCWD, old_tmp, past, 0), 0);
	unsigned before = count_unit_files();
	gc_now(p, NULL);
	struct stat st;
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(count_unit_files(), before - 2); /* the orphan and the old temp */
	assert_int_equal(stat(old_tmp, &st), -1);
	assert_int_equal(stat(new_tmp, &st), 0);
	unlink(new_tmp);
	assert_int_equal(read_all(p, &mid, d, size), 0);
	fsck_clean(p);
	cs_pool_close(p);
	free(d);
}

/* ---- compaction ---- */

static void test_compact_moves_live_chunks_and_gc_frees_old_stripe(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.data_dir = g_dir,
				 .seal_off = true,
				 .chunking = CS_CHUNK_FIXED,
				 .unit_size = 256 * KIB,
				 .gc_interval = -1,
				 .workers = 1};
	struct cs_pool *p = NULL;
	assert_int_equal(cs_pool_open(&o, &p), 0);
	enum { N = 12 }; /* one stripe: 4 units of 3 chunks */
	uint8_t *d[N];
	struct cs_mid mid[N];
	for (int i = 0; i < N; i++) {
		d[i] = malloc(CHUNK);
		fill_random(d[i], CHUNK, 200 + (uint64_t)i);
		assert_int_equal(put(p, d[i], CHUNK, &mid[i]), 0);
	}
	struct cs_chunk_rec c10, c0, n10;
	assert_int_equal(chunk_rec(p, d[10], CHUNK, &c10), 0);
	assert_int_equal(chunk_rec(p, d[0], CHUNK, &c0), 0);
	assert_int_equal(c10.stripe_id, c0.stripe_id);
	cs_pool_close(p); /* the stripe is no longer a worker's */
	assert_int_equal(cs_pool_open(&o, &p), 0);
	for (int i = 0; i < 10; i++)
		del(p, &mid[i]);
	/* a reader resolved the old location; a writer deduplicated against it */
	struct cs_reader *r;
	uint8_t buf[CHUNK];
	assert_int_equal(cs_reader_open(p, &mid[11], &r), 0);
	assert_int_equal(cs_reader_read(r, 0, buf, 100), 100);
	struct cs_writer *w;
	assert_int_equal(write_all(p, d[10], CHUNK, &w), 0);
	assert_false(w->chunks[0].is_new);
	struct cs_stats s0, s1, s2;
	assert_int_equal(cs_pool_stats(p, &s0), 0);

	struct cs_check_report rep;
	assert_int_equal(cs_compact(p, 50, &rep, NULL, NULL), 0);
	assert_int_equal(rep.checked, 1);
	assert_int_equal(rep.bytes, 2 * CHUNK);
	assert_int_equal(chunk_rec(p, d[10], CHUNK, &n10), 0);
	assert_true(n10.stripe_id != c10.stripe_id);
	assert_int_equal(n10.refcount, 1);
	assert_int_equal(cs_pool_stats(p, &s1), 0);
	assert_true(s1.physical_bytes > s0.physical_bytes); /* copies made */
	assert_int_equal(s1.stored_bytes, s0.stored_bytes);
	fsck_clean(p);
	/* nothing to compact any more */
	assert_int_equal(cs_compact(p, 50, &rep, NULL, NULL), 0);
	assert_int_equal(rep.bytes, 0);

	struct cs_mid b;
	assert_int_equal(cs_commit(p, w, create_fn, &b), 0);
	cs_writer_free(w);
	assert_int_equal(chunk_rec(p, d[10], CHUNK, &n10), 0);
	assert_int_equal(n10.refcount, 2);

	struct bg_gc g;
	bg_start(&g, p);
	bg_wait_grace(&g);
	assert_int_equal(cs_reader_read(r, 100, buf + 100, CHUNK - 100), CHUNK - 100);
	assert_memory_equal(buf, d[11], CHUNK);
	cs_reader_free(r);
	bg_join(&g);
	assert_int_equal(cs_pool_stats(p, &s2), 0);
	assert_true(s2.physical_bytes < s0.physical_bytes); /* the old stripe went */
	assert_int_equal(s2.stripes, s1.stripes - 1);
	assert_int_equal(read_all(p, &mid[10], d[10], CHUNK), 0);
	assert_int_equal(read_all(p, &mid[11], d[11], CHUNK), 0);
	assert_int_equal(read_all(p, &b, d[10], CHUNK), 0);
	fsck_clean(p);
	cs_pool_close(p);
	for (int i = 0; i < N; i++)
		free(d[i]);
}

/* ---- fsck ---- */

struct breaker {
	uint8_t fp[32];
	int64_t refdelta;
	int64_t chunks_delta;
	int64_t live_delta;
	bool del_chunk;
};

static int break_fn(struct cs_txn *t, void *arg)
{
	struct breaker *b = arg;
	struct cs_pool *p = t->pool;
	uint8_t key[36];
	cs_key_chunk(key, cs_chunk_part(p, b->fp), b->fp);
	const void *v;
	size_t vl;
	struct cs_chunk_rec r;
	int rc = meta_get(t->txn, META_T_CHUNKS, key, sizeof(key), &v, &vl);
	if (rc < 0)
		return rc;
	memcpy(&r, v, sizeof(r));
	if (b->del_chunk)
		return meta_del(t->txn, META_T_CHUNKS, key, sizeof(key));
	r.refcount = (uint64_t)((int64_t)r.refcount + b->refdelta);
	rc = meta_put(t->txn, META_T_CHUNKS, key, sizeof(key), &r, sizeof(r), 0);
	if (rc < 0)
		return rc;
	if (b->live_delta) {
		uint8_t sk[12];
		cs_key_stripe(sk, cs_stripe_part(p, r.stripe_id), r.stripe_id);
		struct cs_stripe_rec s;
		rc = meta_get(t->txn, META_T_STRIPES, sk, sizeof(sk), &v, &vl);
		if (rc < 0)
			return rc;
		memcpy(&s, v, sizeof(s));
		s.live_bytes = (uint64_t)((int64_t)s.live_bytes + b->live_delta);
		rc = meta_put(t->txn, META_T_STRIPES, sk, sizeof(sk), &s, sizeof(s), 0);
	}
	t->d.chunks += b->chunks_delta;
	return rc;
}

static void test_fsck_detects_and_fixes_refcount_live_and_stats(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	size_t size = 12 * CHUNK + 5;
	uint8_t *d = malloc(size);
	fill_random(d, size, 21);
	struct cs_mid a, b;
	assert_int_equal(put(p, d, size, &a), 0);
	assert_int_equal(put(p, d, size, &b), 0); /* refcount 2 each */
	fsck_clean(p);

	struct breaker br = {.refdelta = 1, .chunks_delta = 3, .live_delta = -100};
	sha256(d + CHUNK, CHUNK, br.fp);
	assert_int_equal(cs_commit(p, NULL, break_fn, &br), 0);
	struct cs_check_report rep;
	assert_int_equal(cs_fsck(p, false, &rep, NULL, NULL), 0);
	assert_int_equal(rep.problems, 3); /* refcount, stripe live, counter */
	assert_int_equal(rep.fixed, 0);
	assert_int_equal(rep.unrecoverable, 0);
	assert_non_null(strstr(rep.first_problem, "refcount 3"));
	/* still broken: check only */
	assert_int_equal(cs_fsck(p, false, &rep, NULL, NULL), 0);
	assert_int_equal(rep.problems, 3);
	assert_int_equal(cs_fsck(p, true, &rep, NULL, NULL), 0);
	assert_int_equal(rep.fixed, 3);
	fsck_clean(p);
	struct cs_chunk_rec cr;
	assert_int_equal(chunk_rec(p, d + CHUNK, CHUNK, &cr), 0);
	assert_int_equal(cr.refcount, 2);
	struct cs_stats s;
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_int_equal(s.chunks, 13);

	/* a chunk the manifests name went missing: reported, not fixable */
	struct breaker gone = {.del_chunk = true};
	sha256(d, CHUNK, gone.fp);
	assert_int_equal(cs_commit(p, NULL, break_fn, &gone), 0);
	assert_int_equal(cs_fsck(p, true, &rep, NULL, NULL), 0);
	assert_true(rep.unrecoverable >= 1);
	assert_true(rep.problems > rep.unrecoverable); /* the counters and live bytes */
	assert_int_equal(rep.fixed, rep.problems - rep.unrecoverable);
	assert_int_equal(cs_fsck(p, false, &rep, NULL, NULL), 0);
	assert_int_equal(rep.problems, 1);
	assert_int_equal(rep.unrecoverable, 1);
	assert_non_null(strstr(rep.first_problem, "not in the index"));
	cs_pool_close(p);
	free(d);
}

/* ---- stress ---- */

#define ST_BLOCKS 24
#define ST_THREADS 3
#define ST_MAX_OBJ 64

struct st_obj {
	struct cs_mid mid;
	uint64_t seed; /* recipe */
	size_t size;
};

struct st_shared {
	struct cs_pool *p;
	uint8_t *blocks; /* ST_BLOCKS x CHUNK: shared content, deduplicated */
	atomic_bool stop;
	atomic_int failures;
	atomic_uint puts, dels, reads, passes, xreads, xgone, compacted;
	char first_fail[256];
	pthread_mutex_t mu;
	/* recent objects of every thread, for a reader that races their
	 * deletion (guarded by mu) */
	struct st_obj recent[256];
	unsigned nrecent;
	int log_fd; /* crash test: acknowledged events go here (-1: none) */
};

/* A crash test event: 'P' put acknowledged, 'D' delete about to be sent,
 * 'X' that delete acknowledged, 'G' a GC pass done. */
struct st_event {
	char type;
	uint64_t seed;
	struct cs_mid mid;
};

static void st_log(struct st_shared *sh, char type, const struct st_obj *o)
{
	if (sh->log_fd < 0)
		return;
	struct st_event e = {.type = type};
	if (o) {
		e.seed = o->seed;
		e.mid = o->mid;
	}
	/* one write of less than PIPE_BUF: atomic among the threads */
	if (write(sh->log_fd, &e, sizeof(e)) != (ssize_t)sizeof(e))
		_exit(9);
}

struct st_thread {
	struct st_shared *sh;
	unsigned id;
	struct st_obj objs[ST_MAX_OBJ];
	unsigned nobjs;
	uint64_t rng;
	pthread_t th;
};

static uint64_t st_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* An object's bytes from its recipe: shared blocks (deduplicated across
 * threads), sometimes a block of its own, sometimes a zero block, and an
 * odd tail; small ones are inline. */
static uint8_t *st_make(const struct st_shared *sh, uint64_t seed, size_t *size)
{
	uint64_t x = seed | 1;
	unsigned nb = 1 + (unsigned)(st_rand(&x) % 8);
	bool tiny = st_rand(&x) % 10 == 0;
	size_t sz = tiny ? 1 + st_rand(&x) % 3000 : nb * CHUNK + st_rand(&x) % 5000;
	uint8_t *b = malloc(sz + 1);
	for (size_t off = 0; off < sz; off += CHUNK) {
		size_t n = sz - off < CHUNK ? sz - off : CHUNK;
		unsigned kind = (unsigned)(st_rand(&x) % 10);
		if (kind == 0)
			fill_random(b + off, n, st_rand(&x));
		else if (kind == 1)
			memset(b + off, 0, n);
		else
			memcpy(b + off, sh->blocks + (st_rand(&x) % ST_BLOCKS) * CHUNK, n);
	}
	*size = sz;
	return b;
}

static void st_fail(struct st_shared *sh, const char *fmt, ...)
{
	pthread_mutex_lock(&sh->mu);
	if (!atomic_load(&sh->failures)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(sh->first_fail, sizeof(sh->first_fail), fmt, ap);
		va_end(ap);
	}
	atomic_fetch_add(&sh->failures, 1);
	pthread_mutex_unlock(&sh->mu);
}

static int st_verify(struct st_shared *sh, const struct st_obj *o)
{
	size_t sz;
	uint8_t *b = st_make(sh, o->seed, &sz);
	int rc = read_all(sh->p, &o->mid, b, sz);
	free(b);
	return rc;
}

static void *st_main(void *arg)
{
	struct st_thread *t = arg;
	struct st_shared *sh = t->sh;
	while (!atomic_load(&sh->stop) && !atomic_load(&sh->failures)) {
		unsigned op = (unsigned)(st_rand(&t->rng) % 10);
		if ((op < 5 && t->nobjs < ST_MAX_OBJ) || t->nobjs == 0) {
			struct st_obj *o = &t->objs[t->nobjs];
			o->seed = st_rand(&t->rng);
			uint8_t *b = st_make(sh, o->seed, &o->size);
			int rc = put(sh->p, b, o->size, &o->mid);
			free(b);
			if (rc < 0) {
				st_fail(sh, "thread %u: put: %s", t->id, cairn_strerror(rc));
				break;
			}
			st_log(sh, 'P', o);
			pthread_mutex_lock(&sh->mu);
			sh->recent[sh->nrecent++ % 256] = *o;
			pthread_mutex_unlock(&sh->mu);
			t->nobjs++;
			atomic_fetch_add(&sh->puts, 1);
		} else if (op < 8) {
			unsigned i = (unsigned)(st_rand(&t->rng) % t->nobjs);
			st_log(sh, 'D', &t->objs[i]);
			int rc = cs_commit(sh->p, NULL, unref_fn, &t->objs[i].mid);
			if (rc < 0) {
				st_fail(sh, "thread %u: delete: %s", t->id, cairn_strerror(rc));
				break;
			}
			st_log(sh, 'X', &t->objs[i]);
			t->objs[i] = t->objs[--t->nobjs];
			atomic_fetch_add(&sh->dels, 1);
		} else {
			unsigned i = (unsigned)(st_rand(&t->rng) % t->nobjs);
			int rc = st_verify(sh, &t->objs[i]);
			if (rc < 0) {
				st_fail(sh, "thread %u: read of a live object: %d %s", t->id, rc,
					rc < -1000 ? "" : cairn_strerror(rc));
				break;
			}
			atomic_fetch_add(&sh->reads, 1);
		}
	}
	return NULL;
}

/* Reads other threads' objects while they may be deleted and collected: a
 * reader that opened must read byte-exact to the end; only opening may
 * fail, with CAIRN_ENOTFOUND, once the manifest is doomed. */
static void *st_reader_main(void *arg)
{
	struct st_shared *sh = arg;
	uint64_t x = 0xabcdef;
	while (!atomic_load(&sh->stop) && !atomic_load(&sh->failures)) {
		struct st_obj o;
		pthread_mutex_lock(&sh->mu);
		unsigned n = sh->nrecent < 256 ? sh->nrecent : 256;
		if (n)
			o = sh->recent[st_rand(&x) % n];
		pthread_mutex_unlock(&sh->mu);
		if (!n) {
			usleep(1000);
			continue;
		}
		size_t sz;
		uint8_t *b = st_make(sh, o.seed, &sz);
		struct cs_reader *r;
		int rc = cs_reader_open(sh->p, &o.mid, &r);
		if (rc == CAIRN_ENOTFOUND) {
			atomic_fetch_add(&sh->xgone, 1);
			free(b);
			continue;
		}
		if (rc < 0) {
			st_fail(sh, "reader: open: %s", cairn_strerror(rc));
			free(b);
			break;
		}
		uint8_t *buf = malloc(sz + 1);
		for (size_t off = 0; off < sz;) {
			long got = cs_reader_read(r, off, buf + off, 40000);
			if (got <= 0) {
				st_fail(sh, "reader: read at %zu of %zu: %s", off, sz,
					got < 0 ? cairn_strerror((int)got) : "short");
				break;
			}
			off += (size_t)got;
			usleep(200); /* hold the reader open across commits */
		}
		if (!atomic_load(&sh->failures) && memcmp(buf, b, sz))
			st_fail(sh, "reader: bytes differ");
		cs_reader_free(r);
		free(buf);
		free(b);
		atomic_fetch_add(&sh->xreads, 1);
	}
	return NULL;
}

static void *st_gc_main(void *arg)
{
	struct st_shared *sh = arg;
	while (!atomic_load(&sh->stop) && !atomic_load(&sh->failures)) {
		struct cs_check_report rep;
		int rc = cs_gc(sh->p, &rep, NULL, NULL);
		if (rc < 0) {
			st_fail(sh, "gc: %s", cairn_strerror(rc));
			break;
		}
		atomic_fetch_add(&sh->passes, 1);
		st_log(sh, 'G', NULL);
		/* compaction moves live chunks under everyone's feet */
		rc = cs_compact(sh->p, 60, &rep, NULL, NULL);
		if (rc < 0) {
			st_fail(sh, "compact: %s", cairn_strerror(rc));
			break;
		}
		atomic_fetch_add(&sh->compacted, (unsigned)(rep.bytes / CHUNK));
	}
	return NULL;
}

static void stress_run(bool cdc)
{
	struct st_shared sh = {.log_fd = -1};
	pthread_mutex_init(&sh.mu, NULL);
	g_chunking = cdc ? CS_CHUNK_FASTCDC : CS_CHUNK_FIXED;
	g_seal = true;
	sh.p = open_pool();
	sh.blocks = malloc(ST_BLOCKS * CHUNK);
	fill_random(sh.blocks, ST_BLOCKS * CHUNK, 99);
	if (cdc) /* half of every 4 KiB compresses: zstd chunks in the race too */
		for (size_t b = 0; b < ST_BLOCKS * CHUNK; b += 4096)
			memset(sh.blocks + b, (int)(b >> 12), 2048);
	struct st_thread *th = calloc(ST_THREADS, sizeof(*th));
	pthread_t gct;
	for (unsigned i = 0; i < ST_THREADS; i++) {
		th[i].sh = &sh;
		th[i].id = i;
		th[i].rng = 0x1234567ull * (i + 1);
		assert_int_equal(pthread_create(&th[i].th, NULL, st_main, &th[i]), 0);
	}
	assert_int_equal(pthread_create(&gct, NULL, st_gc_main, &sh), 0);
	pthread_t rdt;
	assert_int_equal(pthread_create(&rdt, NULL, st_reader_main, &sh), 0);
	const char *secs = getenv("CAIRN_GC_STRESS_SECS");
	unsigned ms = (secs ? (unsigned)atoi(secs) : 3) * 1000;
	for (unsigned waited = 0; waited < ms && !atomic_load(&sh.failures); waited += 50)
		usleep(50000);
	/* at least a few passes ran while the load went on (no timing: wait
	 * for them if the machine is slow) */
	while (atomic_load(&sh.passes) < 3 && !atomic_load(&sh.failures))
		usleep(10000);
	atomic_store(&sh.stop, true);
	for (unsigned i = 0; i < ST_THREADS; i++)
		pthread_join(th[i].th, NULL);
	pthread_join(gct, NULL);
	pthread_join(rdt, NULL);
	if (atomic_load(&sh.failures))
		fail_msg("%d failures; first: %s", atomic_load(&sh.failures), sh.first_fail);
	print_message("stress: %u puts, %u deletes, %u reads, %u gc passes (%u chunks "
		      "compacted); racing reader: %u reads, %u found gone\n",
		      atomic_load(&sh.puts), atomic_load(&sh.dels), atomic_load(&sh.reads),
		      atomic_load(&sh.passes), atomic_load(&sh.compacted), atomic_load(&sh.xreads),
		      atomic_load(&sh.xgone));
	assert_true(atomic_load(&sh.dels) > 0);

	/* every live object exact, fsck clean, also after one more pass */
	unsigned live = 0;
	for (unsigned i = 0; i < ST_THREADS; i++)
		for (unsigned j = 0; j < th[i].nobjs; j++, live++)
			assert_int_equal(st_verify(&sh, &th[i].objs[j]), 0);
	fsck_clean(sh.p);
	gc_now(sh.p, NULL);
	for (unsigned i = 0; i < ST_THREADS; i++)
		for (unsigned j = 0; j < th[i].nobjs; j++)
			assert_int_equal(st_verify(&sh, &th[i].objs[j]), 0);
	fsck_clean(sh.p);
	struct cs_stats s;
	assert_int_equal(cs_pool_stats(sh.p, &s), 0);
	assert_int_equal(s.manifests, live);
	if (cdc && live) /* compressed chunks were in the race */
		assert_true(s.stored_bytes < s.unique_bytes);

	/* delete everything: no chunk, no manifest, no byte left */
	for (unsigned i = 0; i < ST_THREADS; i++)
		for (unsigned j = 0; j < th[i].nobjs; j++)
			del(sh.p, &th[i].objs[j].mid);
	gc_now(sh.p, NULL);
	assert_int_equal(count_table(sh.p, META_T_CHUNKS), 0);
	assert_int_equal(count_table(sh.p, META_T_MHDR), 0);
	assert_int_equal(count_table(sh.p, META_T_MANIFESTS), 0);
	assert_int_equal(cs_pool_stats(sh.p, &s), 0);
	assert_int_equal(s.chunks, 0);
	assert_int_equal(s.manifests, 0);
	assert_int_equal(s.unique_bytes, 0);
	/* only the workers' open stripes may remain */
	assert_true(s.stripes <= 2);
	fsck_clean(sh.p);
	cs_pool_close(sh.p);
	sh.p = open_pool();
	gc_now(sh.p, NULL);
	assert_int_equal(cs_pool_stats(sh.p, &s), 0);
	assert_int_equal(s.physical_bytes, 0);
	assert_int_equal(s.stripes, 0);
	assert_int_equal(count_unit_files(), 0);
	fsck_clean(sh.p);
	cs_pool_close(sh.p);
	free(th);
	free(sh.blocks);
	pthread_mutex_destroy(&sh.mu);
	g_chunking = CS_CHUNK_FIXED;
	g_seal = false;
}

static void test_gc_stress_puts_deletes_gc(void **state)
{
	(void)state;
	stress_run(false);
}

/* The same race on the default pool: FastCDC chunks, half of them zstd. */
static void test_gc_stress_cdc_zstd(void **state)
{
	(void)state;
	stress_run(true);
}

/* Deletes every live manifest, collects, restarts (so no stripe is a
 * worker's), collects again: nothing may be left. */
static void empty_pool_leaves_nothing(struct cs_pool **pp)
{
	struct cs_pool *p = *pp;
	struct meta_txn *t;
	struct meta_cursor *c;
	const void *k, *v;
	size_t kl, vl;
	struct cs_mid *live = NULL;
	size_t n = 0, cap = 0;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &t), 0);
	assert_int_equal(meta_cursor_open(t, META_T_MHDR, &c), 0);
	for (int rc = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl); rc == 0;
	     rc = meta_cursor_next(c, &k, &kl, &v, &vl)) {
		struct cs_mhdr_rec h;
		memcpy(&h, v, sizeof(h));
		for (uint64_t r = 0; r < h.refcount; r++) {
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				live = realloc(live, cap * sizeof(*live));
			}
			memcpy(live[n++].b, (const uint8_t *)k + 4, CS_MID_LEN);
		}
	}
	meta_cursor_close(c);
	meta_txn_abort(t);
	for (size_t i = 0; i < n; i++)
		del(p, &live[i]);
	free(live);
	gc_now(p, NULL);
	cs_pool_close(p);
	p = open_pool();
	gc_now(p, NULL);
	struct cs_stats s;
	assert_int_equal(cs_pool_stats(p, &s), 0);
	assert_int_equal(s.physical_bytes, 0);
	assert_int_equal(s.stripes, 0);
	assert_int_equal(s.chunks, 0);
	assert_int_equal(s.manifests, 0);
	assert_int_equal(count_table(p, META_T_CHUNKS), 0);
	assert_int_equal(count_table(p, META_T_MHDR), 0);
	assert_int_equal(count_table(p, META_T_MANIFESTS), 0);
	assert_int_equal(count_unit_files(), 0);
	fsck_clean(p);
	*pp = p;
}

/* kill -9 (with power loss simulated) at a random moment while PUTs,
 * DELETEs, GC passes and compaction race: after restart every acknowledged
 * object that was not being deleted reads exact, fsck is clean, and once
 * everything is deleted no space is leaked. */
static void test_gc_crash_during_puts_deletes_gc(void **state)
{
	(void)state;
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		struct st_shared sh = {.log_fd = pfd[1]};
		pthread_mutex_init(&sh.mu, NULL);
		struct cs_pool_opts o = {.data_dir = g_dir,
					 .chunking = CS_CHUNK_FIXED,
					 .unit_size = 256 * KIB,
					 .gc_interval = -1,
					 .powerloss_sim = true};
		if (cs_pool_open(&o, &sh.p) < 0)
			_exit(2);
		sh.blocks = malloc(ST_BLOCKS * CHUNK);
		fill_random(sh.blocks, ST_BLOCKS * CHUNK, 99);
		static struct st_thread th[ST_THREADS];
		pthread_t gct;
		for (unsigned i = 0; i < ST_THREADS; i++) {
			th[i].sh = &sh;
			th[i].id = i;
			th[i].rng = 0x7654321ull * (i + 1);
			if (pthread_create(&th[i].th, NULL, st_main, &th[i]))
				_exit(3);
		}
		if (pthread_create(&gct, NULL, st_gc_main, &sh))
			_exit(3);
		for (;;)
			pause(); /* until the parent pulls the plug */
	}
	close(pfd[1]);
	struct st_event *ev = NULL;
	size_t nev = 0, cap = 0;
	unsigned puts = 0, passes = 0;
	bool killed = false;
	/* a different moment each run (printed, to replay a failure) */
	const char *env = getenv("CAIRN_GC_KILL_AT");
	unsigned kill_at = env ? (unsigned)atoi(env) : 100 + (unsigned)getpid() % 200;
	for (;;) {
		if (nev == cap) {
			cap = cap ? 2 * cap : 1024;
			ev = realloc(ev, cap * sizeof(*ev));
		}
		ssize_t n = read(pfd[0], &ev[nev], sizeof(*ev));
		if (n == 0)
			break;
		assert_int_equal(n, (ssize_t)sizeof(*ev));
		puts += ev[nev].type == 'P';
		passes += ev[nev].type == 'G';
		nev++;
		if (!killed && puts >= kill_at && passes >= 4) {
			kill(pid, SIGKILL);
			killed = true;
		}
	}
	close(pfd[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	char log[512];
	snprintf(log, sizeof(log), "%s/powerloss.log", g_dir);
	assert_true(io_powerloss_replay(log) >= 0);

	struct st_shared sh = {.log_fd = -1};
	sh.blocks = malloc(ST_BLOCKS * CHUNK);
	fill_random(sh.blocks, ST_BLOCKS * CHUNK, 99);
	sh.p = open_pool();
	unsigned checked = 0;
	for (size_t i = 0; i < nev; i++) {
		if (ev[i].type != 'P')
			continue;
		bool deleting = false;
		for (size_t j = i + 1; j < nev && !deleting; j++)
			deleting = ev[j].type == 'D' && !memcmp(&ev[j].mid, &ev[i].mid, CS_MID_LEN);
		if (deleting)
			continue;
		struct st_obj o = {.mid = ev[i].mid, .seed = ev[i].seed};
		assert_int_equal(st_verify(&sh, &o), 0);
		checked++;
	}
	/* every acknowledged delete stays done: the manifest is dead or gone */
	unsigned gone = 0;
	struct meta_txn *rt;
	assert_int_equal(meta_txn_begin(cs_pool_meta(sh.p), false, &rt), 0);
	for (size_t i = 0; i < nev; i++) {
		if (ev[i].type != 'X')
			continue;
		uint8_t key[4 + CS_MID_LEN];
		size_t kl = cs_key_mhdr(key, cs_mid_part(sh.p, &ev[i].mid), &ev[i].mid);
		const void *v;
		size_t vl;
		int rc = meta_get(rt, META_T_MHDR, key, kl, &v, &vl);
		if (rc == 0) {
			struct cs_mhdr_rec h;
			memcpy(&h, v, sizeof(h));
			assert_int_equal(h.refcount, 0);
		} else {
			assert_int_equal(rc, CAIRN_ENOTFOUND);
		}
		gone++;
	}
	meta_txn_abort(rt);
	print_message("crash (CAIRN_GC_KILL_AT=%u): %zu events, %u puts, %u gc passes before the "
		      "kill; %u objects verified and %u acknowledged deletes still done after "
		      "restart\n",
		      kill_at, nev, puts, passes, checked, gone);
	assert_true(checked > 0);
	fsck_clean(sh.p);
	empty_pool_leaves_nothing(&sh.p);
	cs_pool_close(sh.p);
	free(sh.blocks);
	free(ev);
}

/* The background thread runs passes by itself. */
static void test_gc_background_thread_frees(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.data_dir = g_dir,
				 .seal_off = true,
				 .chunking = CS_CHUNK_FIXED,
				 .unit_size = 256 * KIB,
				 .gc_interval = 1};
	struct cs_pool *p = NULL;
	assert_int_equal(cs_pool_open(&o, &p), 0);
	size_t size = 5 * CHUNK;
	uint8_t *d = malloc(size);
	fill_random(d, size, 31);
	struct cs_mid mid;
	assert_int_equal(put(p, d, size, &mid), 0);
	del(p, &mid);
	/* no timing assumption beyond "eventually": poll */
	for (int i = 0; i < 6000 && chunk_rec(p, d, CHUNK, NULL) == 0; i++)
		usleep(10000);
	assert_int_equal(chunk_rec(p, d, CHUNK, NULL), -1);
	assert_int_equal(count_table(p, META_T_MHDR), 0);
	cs_pool_close(p);
	free(d);
}

struct burst {
	struct cs_pool *p;
	struct cs_mid mids[256];
};

static void *burst_put(void *arg)
{
	struct burst *b = arg;
	for (unsigned i = 0; i < 256; i++) {
		uint8_t small[100];
		fill_random(small, sizeof(small), (uint64_t)(uintptr_t)b + i);
		if (put(b->p, small, sizeof(small), &b->mids[i]) < 0)
			return b;
	}
	return NULL;
}

static int unref_many_fn(struct cs_txn *t, void *arg)
{
	struct burst *b = arg;
	for (unsigned i = 0; i < 256; i++) {
		int rc = cs_manifest_unref(t, &b->mids[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* 1024 deaths start a pass long before the (hour-long) interval. */
static void test_gc_burst_of_deletes_starts_a_pass(void **state)
{
	(void)state;
	struct cs_pool_opts o = {
	    .data_dir = g_dir, .seal_off = true, .chunking = CS_CHUNK_FIXED, .gc_interval = 3600};
	struct cs_pool *p = NULL;
	assert_int_equal(cs_pool_open(&o, &p), 0);
	struct burst *b = calloc(4, sizeof(*b));
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		b[i].p = p;
		assert_int_equal(pthread_create(&th[i], NULL, burst_put, &b[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	assert_int_equal(count_table(p, META_T_MHDR), 1024);
	for (int i = 0; i < 4; i++)
		assert_int_equal(cs_commit(p, NULL, unref_many_fn, &b[i]), 0);
	for (int i = 0; i < 6000 && count_table(p, META_T_MHDR) > 0; i++)
		usleep(10000);
	assert_int_equal(count_table(p, META_T_MHDR), 0);
	cs_pool_close(p);
	free(b);
}

int main(void)
{
	log_set_level(LOG_WARN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_gc_frees_manifests_chunks_stripes_and_space, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_gc_reader_open_across_gc_reads_exact, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_gc_dedup_writer_racing_delete_commits_live, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_gc_revived_then_dead_again_keeps_chunk, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_gc_stripe_revived_in_grace_period_survives, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_gc_keeps_stripe_a_worker_appends_to, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_gc_keeps_uncommitted_writer_data, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc_removes_orphan_unit_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_compact_moves_live_chunks_and_gc_frees_old_stripe,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fsck_detects_and_fixes_refcount_live_and_stats,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc_stress_puts_deletes_gc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc_stress_cdc_zstd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc_crash_during_puts_deletes_gc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc_background_thread_frees, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc_burst_of_deletes_starts_a_pass, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
