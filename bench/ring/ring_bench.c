/* bench/ring/ring_bench.c - ring build time and lookup rate.
 *
 *   ring_bench build PART_POWER REPLICAS DEVICES [RING_OUT]   time a rebalance
 *   ring_bench lookup RING_FILE                    lookups per second, 1 core
 *
 * The build shape: DEVICES over 10 zones, 10 devices per node, weights
 * 100/200/400 in a fixed pattern. Results go to stdout as key=value lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "ring/ring.h"

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int bench_build(uint32_t pp, uint32_t R, uint32_t nd, const char *out)
{
	struct ring_builder *b;
	struct ring_stats st;
	uint64_t moved;
	static const double w[] = {100, 100, 200, 100, 400, 100, 200};
	if (ring_builder_create(pp, R, 1, &b))
		return 1;
	ring_builder_set_seed(b, 1);
	for (uint32_t i = 0; i < nd; i++) {
		struct ring_dev d = {.id = UINT32_MAX,
				     .region = 1,
				     .zone = i % 10,
				     .port = 6200,
				     .weight = w[i % 7]};
		snprintf(d.ip, sizeof(d.ip), "10.%u.%u.%u", i % 10, (i / 100) % 256, (i / 10) % 10);
		snprintf(d.name, sizeof(d.name), "sd%u", i);
		if (ring_builder_add(b, &d, NULL))
			return 1;
	}
	double t0 = now_s(), c0 = cpu_s();
	if (ring_builder_rebalance(b, 1000, &moved))
		return 1;
	double t1 = now_s(), c1 = cpu_s();
	if (ring_builder_stats(b, &st, NULL))
		return 1;
	printf("build_part_power=%u\nbuild_replicas=%u\nbuild_devices=%u\n", pp, R, nd);
	printf("build_wall_s=%.3f\nbuild_cpu_s=%.3f\n", t1 - t0, c1 - c0);
	printf("build_balance_pct=%.4f\nbuild_dispersion_pct=%.4f\n", st.balance, st.dispersion);
	/* and one more device: time and movement of the incremental rebalance */
	struct ring_dev d = {.id = UINT32_MAX, .region = 1, .zone = 3, .port = 6200, .weight = 100};
	snprintf(d.ip, sizeof(d.ip), "10.3.250.1");
	snprintf(d.name, sizeof(d.name), "new");
	uint32_t id;
	if (ring_builder_add(b, &d, &id))
		return 1;
	t0 = now_s();
	c0 = cpu_s();
	if (ring_builder_rebalance(b, 1000 + 3601, &moved))
		return 1;
	t1 = now_s();
	c1 = cpu_s();
	struct ring_dev_stat *ds = calloc(nd + 1, sizeof(*ds));
	if (!ds || ring_builder_stats(b, &st, ds))
		return 1;
	printf("add1_wall_s=%.3f\nadd1_cpu_s=%.3f\nadd1_moved=%llu\nadd1_ideal=%.1f\n", t1 - t0,
	       c1 - c0, (unsigned long long)moved, ds[nd].weight_share);
	printf("add1_balance_pct=%.4f\n", st.balance);
	if (out && ring_builder_write_ring(b, out))
		return 1;
	free(ds);
	ring_builder_free(b);
	return 0;
}

static int bench_lookup(const char *path)
{
	struct ring *r;
	uint32_t N = 1u << 24;
	volatile uint32_t sink = 0;
	if (ring_load(path, &r))
		return 1;
	/* 32-byte fingerprints (distinct, as a chunk store would pass them) */
	uint64_t *fps = malloc((size_t)4096 * 32);
	for (uint32_t i = 0; i < 4096 * 4; i++)
		fps[i] = (uint64_t)i * 0x9e3779b97f4a7c15ull;
	double c0 = cpu_s();
	for (uint32_t i = 0; i < N; i++) {
		const uint64_t *fp = fps + (i & 4095) * 4;
		uint32_t p = ring_partition(r, fp, 32);
		sink += ring_part_devs(r, p)[0];
	}
	double c1 = cpu_s();
	printf("lookup_fp32_per_s=%.0f\n", N / (c1 - c0));
	char names[256][24];
	for (int i = 0; i < 256; i++)
		snprintf(names[i], sizeof(names[i]), "bucket-%d", i * 7919);
	c0 = cpu_s();
	for (uint32_t i = 0; i < N; i++) {
		const char *n = names[i & 255];
		uint32_t p = ring_partition(r, n, strlen(n));
		sink += ring_part_devs(r, p)[0];
	}
	c1 = cpu_s();
	printf("lookup_name_per_s=%.0f\n", N / (c1 - c0));
	double t0 = now_s();
	for (int i = 0; i < 20; i++) {
		struct ring *x;
		if (ring_load(path, &x))
			return 1;
		ring_free(x);
	}
	printf("load_ms=%.2f\n", (now_s() - t0) / 20 * 1000);
	(void)sink;
	free(fps);
	ring_free(r);
	return 0;
}

int main(int argc, char **argv)
{
	log_set_level(LOG_WARN);
	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "build"))
		return bench_build((uint32_t)atoi(argv[2]), (uint32_t)atoi(argv[3]),
				   (uint32_t)atoi(argv[4]), argc == 6 ? argv[5] : NULL);
	if (argc == 3 && !strcmp(argv[1], "lookup"))
		return bench_lookup(argv[2]);
	fprintf(
	    stderr,
	    "usage: ring_bench build PART_POWER REPLICAS DEVICES [RING_OUT] | lookup RING_FILE\n");
	return 2;
}
