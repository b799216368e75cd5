/* tests/unit/test_ring.c - the ring: builder properties over random cluster
 * shapes, file formats, bad input, lookup and handoffs. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/fault.h"
#include "core/log.h"
#include "ring/ring.h"
#include "ring/ring_format.h"
#include "ring/ring_int.h"

static char tmpdir[256];

static void path_in(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", tmpdir, name);
}

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)rng_state;
}

static void seed_rng(uint64_t s)
{
	rng_state = s * 0x9e3779b97f4a7c15ull + 1;
	for (int i = 0; i < 4; i++)
		rnd();
}

static struct ring_dev mkdev(uint32_t id, uint32_t region, uint32_t zone, const char *ip,
			     uint16_t port, const char *name, double weight)
{
	struct ring_dev d = {
	    .id = id, .region = region, .zone = zone, .port = port, .weight = weight};
	snprintf(d.ip, sizeof(d.ip), "%s", ip);
	snprintf(d.name, sizeof(d.name), "%s", name);
	return d;
}

static const uint8_t secret_a[RING_SECRET_LEN] = "0123456789abcdef0123456789abcdef";

/* The embedded default: 6 devices, each its own zone, on one node. */
static struct ring_builder *embedded(uint32_t replicas, uint32_t m)
{
	struct ring_builder *b;
	assert_int_equal(ring_builder_create(10, replicas, 1, &b), 0);
	ring_builder_set_secret(b, secret_a);
	ring_builder_set_ec_m(b, m);
	for (uint32_t i = 0; i < 6; i++) {
		char name[8];
		snprintf(name, sizeof(name), "d%u", i);
		struct ring_dev d = mkdev(UINT32_MAX, 1, i, "127.0.0.1", 6200, name, 1.0);
		assert_int_equal(ring_builder_add(b, &d, NULL), 0);
	}
	return b;
}

static const struct ring_dev *dev_by_id(const struct ring_builder *b, uint32_t id)
{
	for (uint32_t i = 0; i < ring_builder_dev_count(b); i++)
		if (ring_builder_dev_at(b, i, NULL)->id == id)
			return ring_builder_dev_at(b, i, NULL);
	return NULL;
}

/* Independent checks of an assignment: R distinct existing devices per
 * partition; no two replicas in one zone when there are >= R zones; with
 * ec_m, no zone over m when zones * m >= R. */
static void check_assignment_x(const struct ring_builder *b, bool strict)
{
	uint32_t R = ring_builder_replicas(b), parts = 1u << ring_builder_part_power(b);
	uint32_t nd = ring_builder_dev_count(b), zones = 0, m = ring_builder_ec_m(b);
	uint32_t m_room = 0; /* sum over zones of min(m, devices in the zone) */
	for (uint32_t i = 0; i < nd; i++) {
		const struct ring_dev *d = ring_builder_dev_at(b, i, NULL);
		uint32_t before = 0;
		for (uint32_t j = 0; j < i; j++) {
			const struct ring_dev *e = ring_builder_dev_at(b, j, NULL);
			before += e->region == d->region && e->zone == d->zone;
		}
		zones += before == 0;
		m_room += before < m;
	}
	if (!strict)
		zones = m_room = 0;
	for (uint32_t p = 0; p < parts; p++) {
		const uint32_t *row = ring_builder_part_devs(b, p);
		assert_non_null(row);
		for (uint32_t r = 0; r < R; r++) {
			const struct ring_dev *d = dev_by_id(b, row[r]);
			assert_non_null(d);
			uint32_t same_zone = 0;
			for (uint32_t q = 0; q < R; q++) {
				const struct ring_dev *e = dev_by_id(b, row[q]);
				if (q != r)
					assert_int_not_equal(row[q], row[r]);
				same_zone += e->region == d->region && e->zone == d->zone;
			}
			if (zones >= R)
				assert_int_equal(same_zone, 1);
			if (m && m_room >= R)
				assert_true(same_zone <= m);
		}
	}
}

#define check_assignment(b) check_assignment_x(b, true)

/* Every device within one partition-replica of its target (rounding). */
static double max_dev_error(const struct ring_builder *b)
{
	uint32_t nd = ring_builder_dev_count(b);
	struct ring_dev_stat *ds = calloc(nd, sizeof(*ds));
	struct ring_stats st;
	double worst = 0;
	assert_non_null(ds);
	assert_int_equal(ring_builder_stats(b, &st, ds), 0);
	for (uint32_t i = 0; i < nd; i++) {
		double e = fabs((double)ds[i].parts - ds[i].wanted);
		worst = e > worst ? e : worst;
		if (e >= 1.0 && getenv("RING_TEST_VERBOSE")) {
			const struct ring_dev *d = ring_builder_dev_at(b, i, NULL);
			print_message("    d%u r%u z%u %s:%u w %.0f: parts %llu wanted %.3f\n",
				      d->id, d->region, d->zone, d->ip, d->port, d->weight,
				      (unsigned long long)ds[i].parts, ds[i].wanted);
		}
	}
	free(ds);
	return worst;
}

static void test_embedded_default_shape(void **state)
{
	struct ring_builder *b = embedded(6, 2);
	uint64_t moved = 99;
	assert_int_equal(ring_builder_rebalance(b, 1000, &moved), 0);
	assert_int_equal(moved, 0); /* placing a fresh ring moves nothing */
	check_assignment(b);
	struct ring_dev_stat ds[6];
	struct ring_stats st;
	assert_int_equal(ring_builder_stats(b, &st, ds), 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(ds[i].parts, 1024); /* every partition on all 6 */
	assert_true(st.balance < 1e-9);
	assert_int_equal(st.max_in_zone, 1);
	assert_int_equal(st.parts_over_m, 0);
	ring_builder_free(b);

	b = embedded(3, 0);
	assert_int_equal(ring_builder_rebalance(b, 1000, &moved), 0);
	check_assignment(b);
	assert_int_equal(ring_builder_stats(b, &st, ds), 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(ds[i].parts, 512);
	assert_int_equal(st.max_in_zone, 1);
	ring_builder_free(b);
}

/* EC with fewer zones than fragments: 3 zones, k+m = 6, m = 2. */
static void test_ec_at_most_m_per_zone(void **state)
{
	struct ring_builder *b;
	struct ring_stats st;
	assert_int_equal(ring_builder_create(8, 6, 1, &b), 0);
	ring_builder_set_ec_m(b, 2);
	for (uint32_t i = 0; i < 9; i++) {
		char name[8];
		snprintf(name, sizeof(name), "d%u", i);
		/* zone 0 is heavy: weight alone would put 3+ fragments there */
		struct ring_dev d =
		    mkdev(UINT32_MAX, 1, i % 3, "10.0.0.1", 6200, name, i % 3 == 0 ? 500 : 100);
		assert_int_equal(ring_builder_add(b, &d, NULL), 0);
	}
	assert_int_equal(ring_builder_rebalance(b, 1000, NULL), 0);
	check_assignment(b);
	assert_int_equal(ring_builder_stats(b, &st, NULL), 0);
	assert_int_equal(st.max_in_zone, 2);
	assert_int_equal(st.parts_over_m, 0);
	assert_true(st.dispersion == 0);
	ring_builder_free(b);
}

struct shape {
	uint32_t pp, R, nz, nn, nd, m;
};

static struct ring_builder *random_shape(uint64_t seed, struct shape *sh)
{
	struct ring_builder *b;
	seed_rng(seed);
	sh->pp = 6 + rnd() % 6;
	sh->R = 1 + rnd() % 6;
	sh->nz = 1 + rnd() % 8;
	sh->nn = 1 + rnd() % 5;
	sh->nd = sh->R + rnd() % 30;
	sh->m = sh->R >= 3 && rnd() % 3 == 0 ? 1 + rnd() % (sh->R / 2) : 0;
	assert_int_equal(ring_builder_create(sh->pp, sh->R, 1, &b), 0);
	ring_builder_set_secret(b, secret_a);
	ring_builder_set_seed(b, seed);
	ring_builder_set_ec_m(b, sh->m);
	for (uint32_t i = 0; i < sh->nd; i++) {
		char ip[32], name[16];
		snprintf(ip, sizeof(ip), "10.0.%u.%u", rnd() % sh->nz, rnd() % sh->nn);
		snprintf(name, sizeof(name), "sd%u", i);
		double w = rnd() % 4 == 0 ? 1 + rnd() % 400 : 100;
		struct ring_dev d = mkdev(UINT32_MAX, 1 + (rnd() % 6 == 0), rnd() % sh->nz, ip,
					  (uint16_t)(6200 + rnd() % 2), name, w);
		assert_int_equal(ring_builder_add(b, &d, NULL), 0);
	}
	return b;
}

/* min_part_hours: within one rebalance at most one replica of a partition
 * moves, except replicas of devices that are gone. */
static void check_one_move_per_part(const struct ring_builder *b, const uint32_t *gone,
				    size_t ngone)
{
	size_t n;
	const struct ring_move *mv = ring_builder_moves(b, &n);
	uint32_t parts = 1u << ring_builder_part_power(b);
	uint8_t *seen = calloc(parts, 1);
	assert_non_null(seen);
	for (size_t k = 0; k < n; k++) {
		bool forced = false;
		for (size_t g = 0; g < ngone; g++)
			forced |= mv[k].from == gone[g];
		if (forced)
			continue;
		assert_true(mv[k].part < parts);
		assert_int_equal(seen[mv[k].part], 0);
		seen[mv[k].part] = 1;
	}
	free(seen);
}

/* Rebalances until balanced (each after min_part_hours), at most 6 times. */
static uint64_t converge(struct ring_builder *b, uint64_t *now)
{
	uint64_t total = 0, moved;
	struct ring_stats st = {0};
	for (int i = 0; i < 8 && (i == 0 || max_dev_error(b) >= 1.0 || st.dispersion > 0); i++) {
		*now += 3601;
		assert_int_equal(ring_builder_rebalance(b, *now, &moved), 0);
		check_one_move_per_part(b, NULL, 0);
		total += moved;
		assert_int_equal(ring_builder_stats(b, &st, NULL), 0);
		if (getenv("RING_TEST_VERBOSE"))
			print_message(
			    "  converge %d: moved %llu, max error %.2f, dispersion %.2f\n", i,
			    (unsigned long long)moved, max_dev_error(b), st.dispersion);
	}
	return total;
}

/* After changes, every device is within one partition-replica of its
 * integer target; returns 1 when some device is not within rounding of its
 * share (a tiny ring can need two moves of one partition to get there). */
static int check_converged(const struct ring_builder *b)
{
	double e = max_dev_error(b);
	assert_true(e < 2.0);
	return e >= 1.0;
}

static void test_property_random_shapes(void **state)
{
	uint64_t sum_moved = 0;
	int inexact = 0;
	double sum_ideal = 0;
	for (uint64_t seed = 1; seed <= 120; seed++) {
		struct shape sh;
		struct ring_builder *b = random_shape(seed, &sh);
		uint64_t now = 1000000, moved;
		if (getenv("RING_TEST_VERBOSE"))
			print_message("seed %llu: pp %u R %u zones<=%u nodes<=%u devs %u m %u\n",
				      (unsigned long long)seed, sh.pp, sh.R, sh.nz, sh.nn, sh.nd,
				      sh.m);
		struct ring_stats st;

		assert_int_equal(ring_builder_rebalance(b, now, &moved), 0);
		assert_int_equal(moved, 0);
		check_assignment(b);
		assert_true(max_dev_error(b) < 1.0); /* balance: within rounding */
		assert_int_equal(ring_builder_stats(b, &st, NULL), 0);
		assert_true(st.dispersion == 0);
		assert_int_equal(ring_builder_validate(b, NULL, 0), 0);

		/* add one device to an existing zone: moves close to its target */
		struct ring_dev d =
		    mkdev(UINT32_MAX, 1, rnd() % sh.nz, "10.9.9.9", 6200, "new", 100);
		uint32_t nid;
		assert_int_equal(ring_builder_add(b, &d, &nid), 0);
		now += 3601;
		assert_int_equal(ring_builder_rebalance(b, now, &moved), 0);
		check_one_move_per_part(b, NULL, 0);
		check_assignment_x(b, false);
		struct ring_dev_stat *ds = calloc(sh.nd + 1, sizeof(*ds));
		assert_int_equal(ring_builder_stats(b, &st, ds), 0);
		double ideal = ds[sh.nd].wanted; /* the new device sorts last by id */
		assert_true((double)moved >= floor(ideal) - 1 || max_dev_error(b) >= 1.0);
		assert_true((double)moved <= 1.5 * ideal + 4);
		sum_moved += moved;
		sum_ideal += ideal;
		free(ds);
		moved += converge(b, &now);
		check_assignment(b);
		inexact += check_converged(b);

		/* remove a device: its replicas all move, nothing else is broken */
		uint32_t victim =
		    ring_builder_dev_at(b, rnd() % ring_builder_dev_count(b), NULL)->id;
		if (ring_builder_dev_count(b) > sh.R) {
			size_t held = 0;
			for (uint32_t p = 0; p < (1u << sh.pp); p++)
				for (uint32_t r = 0; r < sh.R; r++)
					held += ring_builder_part_devs(b, p)[r] == victim;
			assert_int_equal(ring_builder_remove(b, victim), 0);
			now += 60; /* inside min_part_hours: a gone device still moves */
			assert_int_equal(ring_builder_rebalance(b, now, &moved), 0);
			check_one_move_per_part(b, &victim, 1);
			check_assignment_x(b, false);
			size_t n;
			const struct ring_move *mv = ring_builder_moves(b, &n);
			for (uint32_t p = 0; p < (1u << sh.pp); p++)
				for (uint32_t r = 0; r < sh.R; r++)
					assert_int_not_equal(ring_builder_part_devs(b, p)[r],
							     victim);
			size_t from_victim = 0;
			for (size_t k = 0; k < n; k++)
				from_victim += mv[k].from == victim;
			assert_int_equal(from_victim, held);
			assert_null(dev_by_id(b, victim));
			converge(b, &now);
			check_assignment(b);
			inexact += check_converged(b);
		}
		/* re-weight */
		uint32_t rw = ring_builder_dev_at(b, 0, NULL)->id;
		assert_int_equal(ring_builder_set_weight(b, rw, 333), 0);
		converge(b, &now);
		check_assignment(b);
		inexact += check_converged(b);
		assert_int_equal(ring_builder_stats(b, &st, NULL), 0);
		assert_true(st.dispersion == 0);
		ring_builder_free(b);
	}
	/* over all shapes, adding one device moves close to the ideal */
	print_message("add-one-device: moved %llu partition-replicas, ideal %.0f (%.3fx); "
		      "%d of 360 changes left a device one part off its share\n",
		      (unsigned long long)sum_moved, sum_ideal, (double)sum_moved / sum_ideal,
		      inexact);
	assert_true(inexact <= 12);
	assert_true((double)sum_moved <= 1.10 * sum_ideal);
}

/* Large enough that every device has ~100 parts: adding one device of the
 * same kind moves at most 1.05x its target, as the issue asks. */
static void test_add_one_device_movement_bound(void **state)
{
	struct ring_builder *b;
	uint64_t moved;
	assert_int_equal(ring_builder_create(14, 3, 1, &b), 0);
	ring_builder_set_secret(b, secret_a);
	for (uint32_t i = 0; i < 120; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.0.%u.%u", i % 6, i / 24);
		struct ring_dev d = mkdev(UINT32_MAX, 1, i % 6, ip, 6200, "sdb", i % 5 ? 100 : 200);
		snprintf(d.name, sizeof(d.name), "sd%u", i);
		assert_int_equal(ring_builder_add(b, &d, NULL), 0);
	}
	assert_int_equal(ring_builder_rebalance(b, 1000, NULL), 0);
	struct ring_dev d = mkdev(UINT32_MAX, 1, 2, "10.0.2.99", 6200, "sdx", 150);
	assert_int_equal(ring_builder_add(b, &d, NULL), 0);
	assert_int_equal(ring_builder_rebalance(b, 1000 + 3601, &moved), 0);
	struct ring_dev_stat ds[121];
	struct ring_stats st;
	assert_int_equal(ring_builder_stats(b, &st, ds), 0);
	print_message("add one of 121: moved %llu, ideal %.1f, balance %.3f%%\n",
		      (unsigned long long)moved, ds[120].wanted, st.balance);
	assert_true((double)moved <= 1.05 * ds[120].wanted);
	assert_true(st.balance < 1.0);
	assert_true(st.dispersion == 0);
	ring_builder_free(b);
}

/* Two quick rebalances cannot move two replicas of one partition. */
static void test_min_part_hours_time_based(void **state)
{
	struct ring_builder *b;
	uint64_t moved1, moved2;
	assert_int_equal(ring_builder_create(8, 3, 2, &b), 0);
	for (uint32_t i = 0; i < 6; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.0.0.%u", i);
		struct ring_dev d = mkdev(UINT32_MAX, 1, i % 3, ip, 6200, "sdb", 100);
		assert_int_equal(ring_builder_add(b, &d, NULL), 0);
	}
	assert_int_equal(ring_builder_rebalance(b, 100000, NULL), 0);
	/* a big new device pulls many parts; then another right after */
	struct ring_dev d = mkdev(UINT32_MAX, 1, 0, "10.0.0.9", 6200, "sdb", 400);
	assert_int_equal(ring_builder_add(b, &d, NULL), 0);
	assert_int_equal(ring_builder_rebalance(b, 200000, &moved1), 0);
	uint8_t moved_parts[256] = {0};
	size_t n;
	const struct ring_move *mv = ring_builder_moves(b, &n);
	for (size_t k = 0; k < n; k++)
		moved_parts[mv[k].part] = 1;
	d = mkdev(UINT32_MAX, 1, 1, "10.0.0.10", 6200, "sdb", 400);
	assert_int_equal(ring_builder_add(b, &d, NULL), 0);
	/* one hour later, inside the 2-hour window */
	assert_int_equal(ring_builder_rebalance(b, 200000 + 3600, &moved2), 0);
	mv = ring_builder_moves(b, &n);
	assert_true(n > 0);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(moved_parts[mv[k].part], 0);
	/* after the window, the ring converges */
	uint64_t now = 200000 + 3 * 3600;
	converge(b, &now);
	assert_true(max_dev_error(b) < 1.0);
	ring_builder_free(b);
}

static int slurp(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	*buf = malloc(*len + 1);
	size_t got = fread(*buf, 1, *len, f);
	fclose(f);
	return got == *len ? 0 : -1;
}

static void spit(const char *path, const uint8_t *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
}

static void build_files(uint64_t seed, const char *ring_name, const char *builder_name,
			bool reverse)
{
	struct shape sh;
	struct ring_builder *b = random_shape(seed, &sh), *c;
	char rp[512], bp[512];
	path_in(rp, sizeof(rp), ring_name);
	path_in(bp, sizeof(bp), builder_name);
	if (reverse) {
		/* same devices, added in the opposite order with the same ids */
		assert_int_equal(ring_builder_create(sh.pp, sh.R, 1, &c), 0);
		ring_builder_set_secret(c, secret_a);
		ring_builder_set_seed(c, seed);
		ring_builder_set_ec_m(c, sh.m);
		for (uint32_t i = ring_builder_dev_count(b); i-- > 0;)
			assert_int_equal(ring_builder_add(c, ring_builder_dev_at(b, i, NULL), NULL),
					 0);
		ring_builder_free(b);
		b = c;
	}
	assert_int_equal(ring_builder_rebalance(b, 5000, NULL), 0);
	assert_int_equal(ring_builder_write_ring(b, rp), 0);
	assert_int_equal(ring_builder_save(b, bp), 0);
	ring_builder_free(b);
}

static void assert_same_file(const char *a, const char *b)
{
	char pa[512], pb[512];
	uint8_t *x, *y;
	size_t lx, ly;
	path_in(pa, sizeof(pa), a);
	path_in(pb, sizeof(pb), b);
	assert_int_equal(slurp(pa, &x, &lx), 0);
	assert_int_equal(slurp(pb, &y, &ly), 0);
	assert_int_equal(lx, ly);
	assert_memory_equal(x, y, lx);
	free(x);
	free(y);
}

static void test_determinism(void **state)
{
	for (uint64_t seed = 200; seed < 230; seed++) {
		build_files(seed, "a.ring", "a.builder", false);
		build_files(seed, "b.ring", "b.builder", false);
		build_files(seed, "c.ring", "c.builder", true);
		assert_same_file("a.ring", "b.ring");
		assert_same_file("a.builder", "b.builder");
		assert_same_file("a.ring", "c.ring");
	}
	/* a different seed or secret gives a different ring */
	char pa[512], pb[512];
	uint8_t *x, *y;
	size_t lx, ly;
	struct shape sh;
	struct ring_builder *b = random_shape(7, &sh);
	path_in(pa, sizeof(pa), "s1.ring");
	path_in(pb, sizeof(pb), "s2.ring");
	assert_int_equal(ring_builder_rebalance(b, 1, NULL), 0);
	assert_int_equal(ring_builder_write_ring(b, pa), 0);
	uint8_t other[RING_SECRET_LEN] = {1};
	ring_builder_set_secret(b, other);
	assert_int_equal(ring_builder_write_ring(b, pb), 0);
	assert_int_equal(slurp(pa, &x, &lx), 0);
	assert_int_equal(slurp(pb, &y, &ly), 0);
	assert_int_equal(lx, ly);
	assert_memory_not_equal(x, y, lx);
	free(x);
	free(y);
	ring_builder_free(b);
}

static void test_file_round_trip(void **state)
{
	struct shape sh;
	struct ring_builder *b = random_shape(42, &sh), *b2;
	struct ring *r, *r2;
	char rp[512], bp[512], bp2[512];
	path_in(rp, sizeof(rp), "rt.ring");
	path_in(bp, sizeof(bp), "rt.builder");
	path_in(bp2, sizeof(bp2), "rt2.builder");

	/* an unrebalanced builder round-trips too */
	assert_int_equal(ring_builder_save(b, bp), 0);
	assert_int_equal(ring_builder_load(bp, &b2), 0);
	assert_int_equal(ring_builder_dev_count(b2), sh.nd);
	assert_null(ring_builder_part_devs(b2, 0));
	assert_int_equal(ring_builder_write_ring(b2, rp), CAIRN_EINVAL);
	ring_builder_free(b2);

	assert_int_equal(ring_builder_rebalance(b, 77, NULL), 0);
	assert_int_equal(ring_builder_remove(b, 0), 0); /* pending removal is kept */
	assert_int_equal(ring_builder_write_ring(b, rp), 0);
	assert_int_equal(ring_builder_save(b, bp), 0);
	assert_int_equal(ring_builder_load(bp, &b2), 0);
	assert_int_equal(ring_builder_save(b2, bp2), 0);
	assert_same_file("rt.builder", "rt2.builder");
	bool rm = false;
	assert_non_null(ring_builder_dev_at(b2, 0, &rm));
	assert_true(rm);

	assert_int_equal(ring_load(rp, &r), 0);
	assert_int_equal(ring_builder_to_ring(b, &r2), 0);
	assert_int_equal(ring_part_power(r), sh.pp);
	assert_int_equal(ring_replicas(r), sh.R);
	assert_int_equal(ring_dev_count(r), sh.nd);
	assert_int_equal(ring_generation(r), ring_builder_generation(b));
	for (uint32_t i = 0; i < sh.nd; i++) {
		const struct ring_dev *x = ring_builder_dev_at(b, i, NULL);
		const struct ring_dev *y = ring_dev(r, x->id);
		assert_non_null(y);
		assert_string_equal(x->ip, y->ip);
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->port, y->port);
		assert_int_equal(x->zone, y->zone);
		assert_true(x->weight == y->weight);
	}
	assert_null(ring_dev(r, 99999));
	for (uint32_t p = 0; p < (1u << sh.pp); p++)
		assert_memory_equal(ring_part_devs(r, p), ring_builder_part_devs(b, p),
				    sh.R * sizeof(uint32_t));
	for (int k = 0; k < 1000; k++) {
		char key[32];
		snprintf(key, sizeof(key), "bucket-%d", k);
		uint32_t p = ring_partition(r, key, strlen(key));
		assert_true(p < (1u << sh.pp));
		assert_int_equal(p, ring_partition(r2, key, strlen(key)));
	}
	ring_free(r);
	ring_free(r2);
	ring_builder_free(b);
	ring_builder_free(b2);
}

/* Rewrites a file's header field and reseals it with a valid CRC. */
static void reseal(uint8_t *buf, size_t len)
{
	memset(buf + offsetof(struct ring_disk_header, crc), 0, 4);
	uint32_t crc = ring_crc32c(0, buf, len);
	memcpy(buf + offsetof(struct ring_disk_header, crc), &crc, 4);
}

static void test_corrupt_truncated_newer(void **state)
{
	struct shape sh;
	struct ring_builder *b = random_shape(9, &sh), *b2 = NULL;
	struct ring *r = NULL;
	char rp[512], bp[512], xp[512];
	uint8_t *buf;
	size_t len;
	path_in(rp, sizeof(rp), "c.ring");
	path_in(bp, sizeof(bp), "c.builder");
	path_in(xp, sizeof(xp), "x.bin");
	assert_int_equal(ring_builder_rebalance(b, 1, NULL), 0);
	assert_int_equal(ring_builder_write_ring(b, rp), 0);
	assert_int_equal(ring_builder_save(b, bp), 0);

	const char *files[2] = {rp, bp};
	for (int f = 0; f < 2; f++) {
		bool is_ring = f == 0;
		assert_int_equal(slurp(files[f], &buf, &len), 0);
#define LOAD_X() (is_ring ? ring_load(xp, &r) : ring_builder_load(xp, &b2))
		/* every single-byte flip at a spread of offsets */
		for (size_t off = 0; off < len; off += 1 + len / 97) {
			buf[off] ^= 0x40;
			spit(xp, buf, len);
			assert_int_equal(LOAD_X(), CAIRN_ECORRUPT);
			buf[off] ^= 0x40;
		}
		/* truncation, including inside the header and to zero */
		size_t cuts[] = {0, 1, 64, 127, 128, 129, len / 2, len - 1};
		for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
			spit(xp, buf, cuts[k]);
			assert_int_equal(LOAD_X(), CAIRN_ECORRUPT);
		}
		/* appended garbage */
		uint8_t *longer = calloc(1, len + 8);
		memcpy(longer, buf, len);
		spit(xp, longer, len + 8);
		assert_int_equal(LOAD_X(), CAIRN_ECORRUPT);
		free(longer);
		/* a newer version, validly sealed */
		uint32_t v = RING_FORMAT_VERSION + 1;
		memcpy(buf + offsetof(struct ring_disk_header, version), &v, 4);
		reseal(buf, len);
		spit(xp, buf, len);
		assert_int_equal(LOAD_X(), CAIRN_EFORMAT);
		/* a sealed file whose shape lies (replicas) */
		v = RING_FORMAT_VERSION;
		memcpy(buf + offsetof(struct ring_disk_header, version), &v, 4);
		uint32_t reps = sh.R + 1;
		memcpy(buf + offsetof(struct ring_disk_header, replicas), &reps, 4);
		reseal(buf, len);
		spit(xp, buf, len);
		assert_int_equal(LOAD_X(), CAIRN_ECORRUPT);
		/* the wrong kind of file */
		assert_int_equal(is_ring ? ring_load(bp, &r) : ring_builder_load(rp, &b2),
				 CAIRN_ECORRUPT);
		free(buf);
		assert_null(r);
		assert_null(b2);
	}
	assert_int_equal(ring_load("/nonexistent/x.ring", &r), -ENOENT);
	ring_builder_free(b);
}

static void test_bad_input(void **state)
{
	struct ring_builder *b;
	assert_int_equal(ring_builder_create(25, 3, 1, &b), CAIRN_EINVAL);
	assert_null(b);
	assert_int_equal(ring_builder_create(10, 0, 1, &b), CAIRN_EINVAL);
	assert_int_equal(ring_builder_create(10, 3, 1, &b), 0);
	double bad_w[] = {0, -1, NAN, INFINITY, -0.0};
	for (size_t i = 0; i < sizeof(bad_w) / sizeof(bad_w[0]); i++) {
		struct ring_dev d = mkdev(UINT32_MAX, 1, 1, "10.0.0.1", 6200, "sdb", bad_w[i]);
		assert_int_equal(ring_builder_add(b, &d, NULL), CAIRN_EINVAL);
	}
	struct ring_dev d = mkdev(5, 1, 1, "10.0.0.1", 6200, "sdb", 100);
	assert_int_equal(ring_builder_add(b, &d, NULL), 0);
	assert_int_equal(ring_builder_add(b, &d, NULL), CAIRN_EEXISTS);
	d.ip[0] = '\0';
	d.id = 6;
	assert_int_equal(ring_builder_add(b, &d, NULL), CAIRN_EINVAL);
	assert_int_equal(ring_builder_set_weight(b, 5, 0), CAIRN_EINVAL);
	assert_int_equal(ring_builder_set_weight(b, 5, -3), CAIRN_EINVAL);
	assert_int_equal(ring_builder_set_weight(b, 77, 3), CAIRN_ENOTFOUND);
	assert_int_equal(ring_builder_remove(b, 77), CAIRN_ENOTFOUND);
	uint32_t id;
	d = mkdev(UINT32_MAX, 1, 2, "10.0.0.2", 6200, "sdb", 100);
	assert_int_equal(ring_builder_add(b, &d, &id), 0);
	assert_int_equal(id, 6); /* next free id */
	/* 3 replicas, 2 devices: refused, builder untouched */
	assert_int_equal(ring_builder_rebalance(b, 1, NULL), CAIRN_EINVAL);
	assert_null(ring_builder_part_devs(b, 0));
	assert_int_equal(ring_builder_validate(b, NULL, 0), CAIRN_EINVAL);
	/* after a good rebalance, removing below R is refused at rebalance and
	 * the old assignment stays */
	d = mkdev(UINT32_MAX, 1, 3, "10.0.0.3", 6200, "sdb", 100);
	assert_int_equal(ring_builder_add(b, &d, &id), 0);
	assert_int_equal(ring_builder_rebalance(b, 1, NULL), 0);
	uint32_t before[3];
	memcpy(before, ring_builder_part_devs(b, 0), sizeof(before));
	assert_int_equal(ring_builder_remove(b, id), 0);
	assert_int_equal(ring_builder_rebalance(b, 1, NULL), CAIRN_EINVAL);
	assert_memory_equal(before, ring_builder_part_devs(b, 0), sizeof(before));
	assert_int_equal(ring_builder_dev_count(b), 3);
	ring_builder_free(b);
}

static void test_atomic_write_keeps_old_file(void **state)
{
	struct ring_builder *b = embedded(3, 0);
	char rp[512];
	uint8_t *x, *y;
	size_t lx, ly;
	path_in(rp, sizeof(rp), "atomic.ring");
	assert_int_equal(ring_builder_rebalance(b, 1, NULL), 0);
	assert_int_equal(ring_builder_write_ring(b, rp), 0);
	assert_int_equal(slurp(rp, &x, &lx), 0);
	struct ring_dev d = mkdev(UINT32_MAX, 1, 9, "127.0.0.1", 6200, "d9", 1.0);
	assert_int_equal(ring_builder_add(b, &d, NULL), 0);
	assert_int_equal(ring_builder_rebalance(b, 10 * 3600, NULL), 0);
#ifdef CAIRN_FAULTS
	fault_arm("ring.fsync", 1);
	assert_int_equal(ring_builder_write_ring(b, rp), -EIO);
	fault_arm("ring.fsync", 0);
	assert_int_equal(slurp(rp, &y, &ly), 0);
	assert_int_equal(lx, ly);
	assert_memory_equal(x, y, lx); /* the old ring is intact */
	free(y);
	/* and no temp file is left behind */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "ls %s | grep -q tmp", tmpdir);
	assert_int_not_equal(system(cmd), 0);
#endif
	assert_int_equal(ring_builder_write_ring(b, rp), 0);
	assert_int_equal(slurp(rp, &y, &ly), 0);
	assert_true(lx != ly || memcmp(x, y, lx) != 0);
	struct stat st;
	assert_int_equal(stat(rp, &st), 0);
	assert_int_equal(st.st_mode & 077, 0); /* holds the secret */
	free(x);
	free(y);
	ring_builder_free(b);
}

static void test_handoffs(void **state)
{
	struct ring_builder *b;
	struct ring *r;
	assert_int_equal(ring_builder_create(8, 3, 1, &b), 0);
	for (uint32_t i = 0; i < 24; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.0.%u.%u", i % 4, (i / 4) % 2);
		struct ring_dev d = mkdev(UINT32_MAX, 1, i % 4, ip, 6200, "sdb", 100);
		snprintf(d.name, sizeof(d.name), "sd%u", i);
		assert_int_equal(ring_builder_add(b, &d, NULL), 0);
	}
	assert_int_equal(ring_builder_rebalance(b, 1, NULL), 0);
	assert_int_equal(ring_builder_to_ring(b, &r), 0);
	for (uint32_t p = 0; p < 256; p++) {
		uint32_t ho[32], ho2[32];
		const uint32_t *prim = ring_part_devs(r, p);
		size_t n = ring_handoffs(r, p, ho, 32);
		assert_int_equal(n, 21); /* every other device, once */
		assert_int_equal(ring_handoffs(r, p, ho2, 32), n);
		assert_memory_equal(ho, ho2, n * sizeof(uint32_t)); /* deterministic */
		for (size_t i = 0; i < n; i++) {
			for (uint32_t q = 0; q < 3; q++)
				assert_int_not_equal(ho[i], prim[q]);
			for (size_t j = 0; j < i; j++)
				assert_int_not_equal(ho[i], ho[j]);
		}
		/* 4 zones, 3 primaries in 3 of them: the first handoff is in the 4th */
		uint32_t z = ring_dev(r, ho[0])->zone;
		for (uint32_t q = 0; q < 3; q++)
			assert_int_not_equal(z, ring_dev(r, prim[q])->zone);
		/* the next ones are on nodes the partition does not use yet */
		for (size_t i = 1; i < 3; i++)
			for (uint32_t q = 0; q < 3; q++)
				assert_true(
				    strcmp(ring_dev(r, ho[i])->ip, ring_dev(r, prim[q])->ip) != 0);
		assert_int_equal(ring_handoffs(r, p, ho, 2), 2);
	}
	ring_free(r);
	ring_builder_free(b);
}

static void test_partition_spread_and_keying(void **state)
{
	struct ring_builder *b = embedded(3, 0);
	struct ring *r, *r2;
	static uint32_t hist[1024];
	assert_int_equal(ring_builder_rebalance(b, 1, NULL), 0);
	assert_int_equal(ring_builder_to_ring(b, &r), 0);
	uint8_t other[RING_SECRET_LEN] = {9};
	ring_builder_set_secret(b, other);
	assert_int_equal(ring_builder_to_ring(b, &r2), 0);
	uint32_t same = 0, N = 1 << 20;
	for (uint32_t i = 0; i < N; i++) {
		uint8_t fp[32] = {0};
		memcpy(fp, &i, sizeof(i));
		uint32_t p = ring_partition(r, fp, 32);
		assert_true(p < 1024);
		hist[p]++;
		same += p == ring_partition(r2, fp, 32);
	}
	/* uniform: each partition near 1024 hits (6 sigma = 192) */
	for (int p = 0; p < 1024; p++)
		assert_true(hist[p] > 1024 - 200 && hist[p] < 1024 + 200);
	/* another secret, another mapping (chance agreement ~1/1024) */
	assert_true(same < N / 256);
	struct timespec t0, t1;
	volatile uint32_t sink = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t i = 0; i < N * 4; i++) {
		uint64_t fp[4] = {i, i * 31, 7, 9};
		sink += ring_partition(r, fp, 32);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("ring_partition(32-byte key): %.1f M/s (not asserted)\n", N * 4 / s / 1e6);
	ring_free(r);
	ring_free(r2);
	ring_builder_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_embedded_default_shape),
	    cmocka_unit_test(test_ec_at_most_m_per_zone),
	    cmocka_unit_test(test_property_random_shapes),
	    cmocka_unit_test(test_add_one_device_movement_bound),
	    cmocka_unit_test(test_min_part_hours_time_based),
	    cmocka_unit_test(test_determinism),
	    cmocka_unit_test(test_file_round_trip),
	    cmocka_unit_test(test_corrupt_truncated_newer),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_atomic_write_keeps_old_file),
	    cmocka_unit_test(test_handoffs),
	    cmocka_unit_test(test_partition_spread_and_keying),
	};
	int ret;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_ring.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	log_set_level(LOG_ERR);
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		ret = ret ? ret : 1;
	return ret;
}
