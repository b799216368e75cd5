/* tests/unit/test_seal.c - erasure-coded sealing, degraded reads, scrub and
 * repair. Each test makes its own pool (4+2, 6 devices, 256 KiB units so a
 * few MiB make many stripes) under a fresh temporary dir, writes a set of
 * objects (random, deduplicated, partly zero, small), lets the sealer seal
 * them, then loses or damages m devices and checks every object byte by
 * byte; after repair or scrub it loses m OTHER devices and checks again,
 * which proves full redundancy was restored.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cs_test.h"
#include "chunkstore/chunkstore.h"
#include "chunkstore/cs_internal.h"
#include "core/fault.h"
#include "core/io.h"
#include "meta/meta.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define NDEV 6
#define UNIT (256u * KIB)

static char g_dir[256];

static int setup(void **state)
{
	(void)state;
	return cs_test_tmpdir(g_dir, sizeof(g_dir), "seal");
}
static int teardown(void **state)
{
	(void)state;
	fault_arm("cs.seal_parity", 0);
	fault_arm("cs.seal_unlink", 0);
	rm_rf(g_dir);
	return 0;
}

static struct cs_pool *open_pool(void)
{
	struct cs_pool_opts o = {
	    .data_dir = g_dir, .devices = NDEV, .k = 4, .m = 2, .unit_size = UNIT, .workers = 2};
	struct cs_pool *p = NULL;
	assert_int_equal(cs_pool_open(&o, &p), 0);
	return p;
}

static uint64_t g_rng = 88172645463325252ull;
static uint64_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

static int create_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_create(t, arg);
}

struct obj {
	uint8_t *data;
	size_t size;
	struct cs_mid mid;
};

#define NOBJ 24
static struct obj g_obj[NOBJ];

static void put_object(struct cs_pool *p, struct obj *o)
{
	struct cs_writer *w;
	assert_int_equal(cs_writer_open(p, &w), 0);
	for (size_t off = 0; off < o->size; off += 100000) {
		size_t n = o->size - off < 100000 ? o->size - off : 100000;
		assert_int_equal(cs_writer_write(w, o->data + off, n), 0);
	}
	assert_int_equal(cs_writer_finish(w), 0);
	assert_int_equal(cs_commit(p, w, create_fn, &o->mid), 0);
	cs_writer_free(w);
}

/* Objects: random sizes up to 1.5 MiB, every fourth a copy of an earlier
 * one (dedup), some with zero chunks, a few small or inline. ~12 MiB. */
static void make_objects(struct cs_pool *p)
{
	for (int i = 0; i < NOBJ; i++) {
		struct obj *o = &g_obj[i];
		o->size = i % 7 == 3 ? 100 + rnd() % 9000 : 64 * KIB + rnd() % (3 * MIB / 2);
		o->data = malloc(o->size);
		assert_non_null(o->data);
		if (i % 4 == 3 && g_obj[i - 2].size >= o->size) {
			memcpy(o->data, g_obj[i - 2].data, o->size); /* dedup */
		} else {
			fill_random(o->data, o->size, (uint64_t)i + 1);
			if (i % 5 == 1 && o->size > 3 * 64 * KIB)
				memset(o->data + 64 * KIB, 0, 2 * 64 * KIB); /* zero chunks */
		}
		put_object(p, o);
	}
}

static void free_objects(void)
{
	for (int i = 0; i < NOBJ; i++) {
		free(g_obj[i].data);
		g_obj[i].data = NULL;
	}
}

static void check_objects(struct cs_pool *p)
{
	uint8_t *buf = malloc(2 * MIB);
	assert_non_null(buf);
	for (int i = 0; i < NOBJ; i++) {
		struct obj *o = &g_obj[i];
		struct cs_reader *r;
		assert_int_equal(cs_reader_open(p, &o->mid, &r), 0);
		assert_int_equal(cs_reader_size(r), o->size);
		/* sequential in odd steps, then a few random ranges */
		size_t step = 50000 + (size_t)(rnd() % 200000);
		for (size_t off = 0; off < o->size;) {
			long n = cs_reader_read(r, off, buf, step);
			assert_true(n > 0);
			assert_memory_equal(buf, o->data + off, (size_t)n);
			off += (size_t)n;
		}
		for (int q = 0; q < 3; q++) {
			size_t off = (size_t)(rnd() % o->size);
			size_t len = 1 + (size_t)(rnd() % 200000);
			long n = cs_reader_read(r, off, buf, len);
			size_t want = o->size - off < len ? o->size - off : len;
			assert_int_equal(n, (long)want);
			assert_memory_equal(buf, o->data + off, want);
		}
		cs_reader_free(r);
	}
	free(buf);
}

/* Every stripe record: counts by state; sums physical bytes. */
static void stripe_census(struct cs_pool *p, unsigned *nopen, unsigned *nsealed, uint64_t *phys)
{
	struct meta_txn *t;
	struct meta_cursor *c;
	const void *k, *v;
	size_t kl, vl;
	*nopen = *nsealed = 0;
	*phys = 0;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &t), 0);
	assert_int_equal(meta_cursor_open(t, META_T_STRIPES, &c), 0);
	for (int rc = meta_cursor_seek(c, "", 0, &k, &kl, &v, &vl); rc == 0;
	     rc = meta_cursor_next(c, &k, &kl, &v, &vl)) {
		struct cs_stripe_rec s;
		memcpy(&s, v, sizeof(s));
		if (s.state == CS_STRIPE_SEALED)
			(*nsealed)++;
		else
			(*nopen)++;
		*phys += cs_stripe_physical(&s);
	}
	meta_cursor_close(c);
	meta_txn_abort(t);
}

/* Unit files on a device whose name ends in suffix ('u' or 'p'). */
struct flist {
	char (*path)[CS_PATH_MAX];
	size_t n;
};
static struct flist *g_fl;
static char g_kind;
static int list_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)f;
	const char *dot = strrchr(p, '.');
	if (flag == FTW_F && dot && dot[1] == g_kind && dot[2] >= '0' && dot[2] <= '9') {
		g_fl->path = realloc(g_fl->path, (g_fl->n + 1) * sizeof(*g_fl->path));
		snprintf(g_fl->path[g_fl->n++], CS_PATH_MAX, "%s", p);
	}
	return 0;
}
static size_t count_files(int dev, char kind)
{
	char d[CS_PATH_MAX];
	struct flist fl = {0};
	snprintf(d, sizeof(d), "%s/devices/d%d", g_dir, dev);
	g_fl = &fl;
	g_kind = kind;
	nftw(d, list_cb, 16, FTW_PHYS);
	free(fl.path);
	return fl.n;
}

static void lose_device(int dev)
{
	char d[CS_PATH_MAX];
	snprintf(d, sizeof(d), "%s/devices/d%d", g_dir, dev);
	rm_rf(d);
}

static void pick_devices(int *a, int n, const int *avoid, int navoid)
{
	for (int i = 0; i < n; i++) {
		for (;;) {
			int d = (int)(rnd() % NDEV);
			bool bad = false;
			for (int j = 0; j < i; j++)
				bad |= a[j] == d;
			for (int j = 0; j < navoid; j++)
				bad |= avoid[j] == d;
			if (!bad) {
				a[i] = d;
				break;
			}
		}
	}
}

/* ---- tests ---- */

/* Sealing: every stripe sealed, parity on D[k..k+m), replicas gone,
 * physical bytes counted as the stripe records say, reads healthy. */
static void test_seal_writes_parity_drops_replicas(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	make_objects(p);
	unsigned nopen, nsealed;
	uint64_t phys;
	struct cs_stats st0, st1;
	assert_int_equal(cs_pool_stats(p, &st0), 0);
	assert_int_equal(cs_seal_drain(p, true), 0);
	stripe_census(p, &nopen, &nsealed, &phys);
	assert_int_equal(nopen, 0);
	assert_true(nsealed >= 6);
	assert_int_equal(cs_pool_stats(p, &st1), 0);
	assert_int_equal(st1.physical_bytes, phys);
	/* about 1.5 copies once sealed (3 while open); partial stripes more */
	assert_true(st1.physical_bytes < 2 * st1.stored_bytes);
	assert_true(st1.physical_bytes >= st1.stored_bytes + st1.stored_bytes / 2);
	assert_true(st1.physical_bytes < st0.physical_bytes);
	size_t parity = 0, units = 0;
	for (int d = 0; d < NDEV; d++) {
		parity += count_files(d, 'p');
		units += count_files(d, 'u');
	}
	assert_int_equal(parity, 2 * nsealed);
	assert_true(units <= 4 * nsealed); /* data units only: replicas gone */
	check_objects(p);
	assert_int_equal(cs_pool_stats(p, &st1), 0);
	assert_int_equal(st1.read_fallbacks, 0);
	assert_int_equal(st1.reconstructs, 0);
	cs_pool_close(p);
	/* reopen: still sealed, still exact */
	p = open_pool();
	check_objects(p);
	cs_pool_close(p);
	free_objects();
}

/* A partial stripe left open at close is sealed at the next open, with
 * parity only as long as its longest data area. */
static void test_partial_stripe_sealed_at_open(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	struct obj o = {.size = 100 * KIB};
	o.data = malloc(o.size);
	fill_random(o.data, o.size, 7);
	put_object(p, &o);
	unsigned nopen, nsealed;
	uint64_t phys;
	stripe_census(p, &nopen, &nsealed, &phys);
	assert_true(nopen >= 1); /* one per worker that took a chunk */
	assert_int_equal(nsealed, 0);
	unsigned was_open = nopen;
	cs_pool_close(p);
	p = open_pool();
	assert_int_equal(cs_seal_drain(p, false), 0);
	stripe_census(p, &nopen, &nsealed, &phys);
	assert_int_equal(nopen, 0);
	assert_int_equal(nsealed, was_open);
	size_t parity = 0;
	for (int d = 0; d < NDEV; d++)
		parity += count_files(d, 'p');
	assert_int_equal(parity, 2 * nsealed);
	/* parity is as long as the longest data area (rounded to 4 KiB),
	 * not a whole unit: about 3x the data, not 2 units per stripe */
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(p, &st), 0);
	assert_int_equal(st.physical_bytes, phys);
	assert_true(phys <= 3 * (nsealed * (CS_UNIT_HDR_SIZE + 4 * KIB + 64) + o.size));
	assert_true(phys < nsealed * 2 * (CS_UNIT_HDR_SIZE + UNIT));
	for (int d = 0; d < NDEV; d += 3)
		lose_device(d); /* lose 2 devices: one of them may hold the data unit */
	uint8_t *buf = malloc(o.size);
	struct cs_reader *r;
	assert_int_equal(cs_reader_open(p, &o.mid, &r), 0);
	assert_int_equal(cs_reader_read(r, 0, buf, o.size), (long)o.size);
	assert_memory_equal(buf, o.data, o.size);
	cs_reader_free(r);
	free(buf);
	cs_pool_close(p);
	free(o.data);
}

/* A quiet pool does not keep its last stripes as m+1 copies: once no chunk
 * came in for a whole GC interval, the workers' open stripes are sealed. */
static void test_idle_pool_seals_open_stripes(void **state)
{
	(void)state;
	struct cs_pool_opts o = {.data_dir = g_dir,
				 .devices = NDEV,
				 .k = 4,
				 .m = 2,
				 .unit_size = UNIT,
				 .workers = 2,
				 .gc_interval = 1};
	struct cs_pool *p = NULL;
	assert_int_equal(cs_pool_open(&o, &p), 0);
	struct obj ob = {.size = 300 * KIB};
	ob.data = malloc(ob.size);
	fill_random(ob.data, ob.size, 9);
	put_object(p, &ob);
	unsigned nopen = 0, nsealed = 0;
	uint64_t phys;
	/* no timing goal: wait as long as a slow machine needs (4 min cap) */
	for (int i = 0; i < 2400; i++) {
		stripe_census(p, &nopen, &nsealed, &phys);
		if (nopen == 0 && nsealed > 0)
			break;
		usleep(100000);
	}
	assert_int_equal(nopen, 0);
	assert_true(nsealed > 0);
	struct cs_reader *r;
	uint8_t *buf = malloc(ob.size);
	assert_int_equal(cs_reader_open(p, &ob.mid, &r), 0);
	assert_int_equal(cs_reader_read(r, 0, buf, ob.size), (long)ob.size);
	assert_memory_equal(buf, ob.data, ob.size);
	cs_reader_free(r);
	free(buf);
	cs_pool_close(p);
	free(ob.data);
}

/* Lose m devices (several random choices): every object reads back via
 * rebuilds; repair restores them; then lose m OTHER devices and read all. */
static void test_lose_m_devices_read_repair_lose_others(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	make_objects(p);
	assert_int_equal(cs_seal_drain(p, true), 0);
	cs_pool_close(p);
	for (int round = 0; round < 3; round++) {
		int lost[2], other[2];
		pick_devices(lost, 2, NULL, 0);
		pick_devices(other, 2, lost, 2);
		lose_device(lost[0]);
		lose_device(lost[1]);
		p = open_pool(); /* missing device folders do not stop it */
		check_objects(p);
		struct cs_stats st;
		assert_int_equal(cs_pool_stats(p, &st), 0);
		assert_true(st.reconstructs > 0);
		struct cs_check_report rep;
		assert_int_equal(cs_repair(p, &rep, NULL, NULL), 0);
		assert_true(rep.problems > 0);
		assert_int_equal(rep.fixed, rep.problems);
		assert_int_equal(rep.unrecoverable, 0);
		assert_true(count_files(lost[0], 'p') + count_files(lost[0], 'u') > 0);
		cs_pool_close(p);

		p = open_pool();
		assert_int_equal(cs_repair(p, &rep, NULL, NULL), 0);
		assert_int_equal(rep.problems, 0); /* nothing left to do */
		cs_pool_close(p);

		lose_device(other[0]);
		lose_device(other[1]);
		p = open_pool();
		check_objects(p);
		assert_int_equal(cs_repair(p, &rep, NULL, NULL), 0);
		assert_int_equal(rep.unrecoverable, 0);
		cs_pool_close(p);
	}
	free_objects();
}

static void corrupt_file(const char *path, int how)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	if (how == 0) { /* random bytes in the first record / parity block */
		uint8_t b[16];
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (uint8_t)rnd();
		off_t off = CS_UNIT_HDR_SIZE + (off_t)(rnd() % 48);
		assert_int_equal(pwrite(fd, b, sizeof(b), off), (ssize_t)sizeof(b));
	} else if (how == 1) { /* truncated */
		assert_int_equal(ftruncate(fd, (off_t)(rnd() % (CS_UNIT_HDR_SIZE + 4096))), 0);
	} else { /* gone */
		assert_int_equal(unlink(path), 0);
	}
	close(fd);
}

/* Damage every unit file on m devices (random bytes, truncation, missing
 * files): reads are exact; scrub repairs all of it; a second scrub finds
 * nothing; then m other devices are lost and everything still reads. */
static void test_corrupt_m_devices_scrub_restores(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	make_objects(p);
	assert_int_equal(cs_seal_drain(p, true), 0);
	cs_pool_close(p);
	int bad[2], other[2];
	pick_devices(bad, 2, NULL, 0);
	pick_devices(other, 2, bad, 2);
	size_t damaged = 0;
	for (int b = 0; b < 2; b++) {
		char d[CS_PATH_MAX];
		struct flist fl = {0};
		snprintf(d, sizeof(d), "%s/devices/d%d", g_dir, bad[b]);
		g_fl = &fl;
		for (const char *kinds = "up"; *kinds; kinds++) {
			g_kind = *kinds;
			nftw(d, list_cb, 16, FTW_PHYS);
		}
		for (size_t i = 0; i < fl.n; i++, damaged++)
			corrupt_file(fl.path[i], (int)(i % 3));
		free(fl.path);
	}
	assert_true(damaged >= 4);
	p = open_pool();
	check_objects(p);
	struct cs_check_report rep;
	assert_int_equal(cs_scrub(p, &rep, NULL, NULL), 0);
	assert_true(rep.problems >= damaged / 2);
	assert_int_equal(rep.unrecoverable, 0);
	assert_int_equal(rep.fixed, rep.problems);
	assert_true(rep.first_problem[0] != 0);
	assert_int_equal(cs_scrub(p, &rep, NULL, NULL), 0);
	assert_int_equal(rep.problems, 0);
	assert_true(rep.bytes > 0);
	cs_pool_close(p);
	lose_device(other[0]);
	lose_device(other[1]);
	p = open_pool();
	check_objects(p);
	cs_pool_close(p);
	free_objects();
}

/* Scrub finds a parity unit that does not match its data (silent
 * corruption in a parity area) and rewrites it. */
static void test_scrub_fixes_parity_mismatch(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	make_objects(p);
	assert_int_equal(cs_seal_drain(p, true), 0);
	cs_pool_close(p);
	char d[CS_PATH_MAX];
	struct flist fl = {0};
	snprintf(d, sizeof(d), "%s/devices/d%d", g_dir, 0);
	g_fl = &fl;
	g_kind = 'p';
	for (int dev = 0; dev < NDEV && fl.n == 0; dev++) {
		snprintf(d, sizeof(d), "%s/devices/d%d", g_dir, dev);
		nftw(d, list_cb, 16, FTW_PHYS);
	}
	assert_true(fl.n > 0);
	corrupt_file(fl.path[0], 0);
	p = open_pool();
	struct cs_check_report rep;
	assert_int_equal(cs_scrub(p, &rep, NULL, NULL), 0);
	assert_int_equal(rep.problems, 1);
	assert_int_equal(rep.fixed, 1);
	assert_non_null(strstr(rep.first_problem, "parity"));
	assert_int_equal(cs_scrub(p, &rep, NULL, NULL), 0);
	assert_int_equal(rep.problems, 0);
	cs_pool_close(p);
	free(fl.path);
	free_objects();
}

/* Crash windows of sealing. After parity is written but before the commit:
 * the stripe is OPEN (junk parity), reads use replicas; the next open seals
 * it again. After the commit but before the unlink: SEALED with replicas
 * left; the next open removes them. */
static void test_seal_crash_windows(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	fault_arm("cs.seal_parity", 1);
	make_objects(p);
	assert_int_equal(cs_seal_drain(p, true), 0);
	unsigned nopen, nsealed;
	uint64_t phys;
	stripe_census(p, &nopen, &nsealed, &phys);
	assert_int_equal(nsealed, 0);
	assert_true(nopen > 0);
	size_t parity = 0;
	for (int d = 0; d < NDEV; d++)
		parity += count_files(d, 'p');
	assert_true(parity > 0); /* written, not committed */
	check_objects(p);
	cs_pool_close(p);
	fault_arm("cs.seal_parity", 0);
	/* junk it further: an OPEN stripe's parity is rewritten, not trusted */
	for (int d = 0; d < NDEV; d++) {
		char dir[CS_PATH_MAX];
		struct flist fl = {0};
		snprintf(dir, sizeof(dir), "%s/devices/d%d", g_dir, d);
		g_fl = &fl;
		g_kind = 'p';
		nftw(dir, list_cb, 16, FTW_PHYS);
		for (size_t i = 0; i < fl.n; i++)
			corrupt_file(fl.path[i], 0);
		free(fl.path);
	}

	fault_arm("cs.seal_unlink", 1);
	p = open_pool();
	assert_int_equal(cs_seal_drain(p, false), 0);
	stripe_census(p, &nopen, &nsealed, &phys);
	assert_int_equal(nopen, 0);
	size_t units = 0;
	for (int d = 0; d < NDEV; d++)
		units += count_files(d, 'u');
	assert_true(units > 4 * nsealed); /* replicas still there */
	check_objects(p);
	cs_pool_close(p);
	fault_arm("cs.seal_unlink", 0);

	p = open_pool();
	assert_int_equal(cs_seal_drain(p, false), 0);
	units = 0;
	for (int d = 0; d < NDEV; d++)
		units += count_files(d, 'u');
	assert_true(units <= 4 * nsealed); /* cleaned up at open */
	/* parity is right: lose two data devices' worth and read */
	lose_device(0);
	lose_device(1);
	check_objects(p);
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(p, &st), 0);
	assert_int_equal(st.physical_bytes, phys);
	cs_pool_close(p);
	free_objects();
}

/* A degraded sequential read rebuilds a whole stripe range from the first
 * set of survivors that verifies the chunk it needs; when a survivor is
 * bad further on (silently corrupt parity), the chunks there fail their
 * check and are rebuilt alone from another set. */
static void test_degraded_read_with_silently_bad_parity(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	make_objects(p);
	assert_int_equal(cs_seal_drain(p, true), 0);
	/* a sealed stripe with several chunks in data unit 0 */
	struct meta_txn *t;
	struct meta_cursor *c;
	const void *k, *v;
	size_t kl, vl;
	struct cs_stripe_rec s = {0};
	uint64_t id = 0;
	assert_int_equal(meta_txn_begin(cs_pool_meta(p), false, &t), 0);
	assert_int_equal(meta_cursor_open(t, META_T_STRIPES, &c), 0);
	for (int rc = meta_cursor_seek(c, "", 0, &k, &kl, &v, &vl); rc == 0 && !id;
	     rc = meta_cursor_next(c, &k, &kl, &v, &vl)) {
		memcpy(&s, v, sizeof(s));
		if (s.state == CS_STRIPE_SEALED && s.fill[0] >= 200 * KIB)
			id = meta_get_be64((const uint8_t *)k + 4);
	}
	meta_cursor_close(c);
	meta_txn_abort(t);
	assert_true(id != 0);
	char dir[CS_PATH_MAX], path[CS_PATH_MAX];
	assert_int_equal(cs_sunit_path(p, &s, id, 0, dir, sizeof(dir), path, sizeof(path)), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(cs_sunit_path(p, &s, id, 4, dir, sizeof(dir), path, sizeof(path)), 0);
	cs_pool_close(p);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rnd();
	/* near the end of unit 0's area: the first rebuild of the stripe (for
	 * an early chunk) verifies with this parity, the cached rest does not */
	off_t bad = CS_UNIT_HDR_SIZE + (off_t)cs_align_down(s.fill[0] - 4096, 4096);
	assert_int_equal(pwrite(fd, junk, sizeof(junk), bad), (ssize_t)sizeof(junk));
	close(fd);
	p = open_pool();
	uint8_t *buf = malloc(64 * KIB);
	for (int i = 0; i < NOBJ; i++) { /* sequential, 64 KiB at a time */
		struct cs_reader *r;
		assert_int_equal(cs_reader_open(p, &g_obj[i].mid, &r), 0);
		for (size_t off = 0; off < g_obj[i].size;) {
			long n = cs_reader_read(r, off, buf, 64 * KIB);
			assert_true(n > 0);
			assert_memory_equal(buf, g_obj[i].data + off, (size_t)n);
			off += (size_t)n;
		}
		cs_reader_free(r);
	}
	free(buf);
	check_objects(p);
	struct cs_stats st;
	assert_int_equal(cs_pool_stats(p, &st), 0);
	assert_true(st.reconstructs >= 3);
	struct cs_check_report rep;
	assert_int_equal(cs_scrub(p, &rep, NULL, NULL), 0);
	assert_int_equal(rep.problems, 2); /* the lost data unit, the bad parity */
	assert_int_equal(rep.fixed, 2);
	cs_pool_close(p);
	free_objects();
}

struct prog {
	uint64_t total, last_done, calls;
	bool total_first, monotonic;
};
static void prog_cb(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	struct prog *pg = arg;
	if (strcmp(phase, "rebuild"))
		return;
	if (pg->calls == 0) {
		pg->total = total;
		pg->total_first = total > 0 && done == 0;
		pg->monotonic = true;
	}
	if (total != pg->total || done < pg->last_done)
		pg->monotonic = false;
	pg->last_done = done;
	pg->calls++;
}

/* Repair reports progress in bytes with the total known from the start,
 * and reads no data of healthy stripes. */
static void test_repair_progress_total_up_front(void **state)
{
	(void)state;
	struct cs_pool *p = open_pool();
	make_objects(p);
	assert_int_equal(cs_seal_drain(p, true), 0);
	cs_pool_close(p);
	lose_device(2);
	p = open_pool();
	struct prog pg = {0};
	struct cs_check_report rep;
	assert_int_equal(cs_repair(p, &rep, prog_cb, &pg), 0);
	assert_true(pg.calls >= 2);
	assert_true(pg.total_first);
	assert_true(pg.monotonic);
	assert_int_equal(pg.last_done, pg.total);
	assert_true(rep.fixed > 0);
	cs_pool_close(p);
	/* nothing missing: only header blocks are read */
	p = open_pool();
	assert_int_equal(cs_repair(p, &rep, NULL, NULL), 0);
	assert_int_equal(rep.problems, 0);
	assert_int_equal(rep.bytes, rep.checked * CS_UNIT_HDR_SIZE);
	cs_pool_close(p);
	free_objects();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_seal_writes_parity_drops_replicas, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_partial_stripe_sealed_at_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_pool_seals_open_stripes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lose_m_devices_read_repair_lose_others, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_m_devices_scrub_restores, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scrub_fixes_parity_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_degraded_read_with_silently_bad_parity, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_seal_crash_windows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_repair_progress_total_up_front, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
