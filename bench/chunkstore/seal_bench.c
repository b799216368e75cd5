/* bench/chunkstore/seal_bench.c - sealing, degraded reads and repair, each
 * as a ratio to a limit measured in the same run.
 *
 * usage: seal_bench DIR [MiB]
 * Writes MiB of unique data through one writer into a fresh pool (4+2, six
 * device folders under DIR), seals every stripe, then:
 *   - healthy GET: one reader, 1 MiB calls, O_DIRECT (not the page cache);
 *   - degraded GET: two device folders holding data units removed (m = 2),
 *     the same read, every chunk on them rebuilt from parity;
 *   - repair: cs_repair rebuilds the two folders; its rate is the bytes it
 *     wrote over its wall time;
 *   - the device limit: O_DIRECT sequential write of the same byte count in
 *     1 MiB writes plus one fdatasync, into a file in DIR.
 * Prints the figures and the two ratios (goals: degraded >= 0.5 of healthy,
 * repair >= 0.5 of the sequential write limit).
 */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chunkstore/chunkstore.h"
#include "chunkstore/cs_internal.h"
#include "core/log.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int create_fn(struct cs_txn *t, void *arg)
{
	return cs_manifest_create(t, arg);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(p);
}

static void block(uint8_t *b, const uint8_t *rnd, uint64_t i)
{
	memcpy(b, rnd + (i % 16) * 4096, 1 << 20);
	for (size_t o = 0; o < (1 << 20); o += 4096)
		memcpy(b + o, &i, sizeof(i)), memcpy(b + o + 8, &o, sizeof(o));
}

static void prog(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	if (!strcmp(phase, "rebuild"))
		*(uint64_t *)arg = total;
	(void)done;
}

static double read_all(struct cs_pool *p, const struct cs_mid *mid, uint64_t mib, uint8_t *buf,
		       const uint8_t *rnd, uint8_t *want)
{
	struct cs_reader *r;
	if (cs_reader_open(p, mid, &r) < 0)
		return -1;
	double t0 = now();
	for (uint64_t i = 0; i < mib; i++) {
		if (cs_reader_read(r, i << 20, buf, 1 << 20) != 1 << 20) {
			cs_reader_free(r);
			return -1;
		}
		block(want, rnd, i);
		if (memcmp(buf, want, 1 << 20)) {
			fprintf(stderr, "mismatch at MiB %llu\n", (unsigned long long)i);
			cs_reader_free(r);
			return -1;
		}
	}
	double t = now() - t0;
	cs_reader_free(r);
	return (double)mib / 1024 / t;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR [MiB]\n", argv[0]);
		return 2;
	}
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 512;
	log_set_level(LOG_ERR);
	struct cs_pool_opts o = {.data_dir = argv[1]};
	struct cs_pool *p;
	struct cs_writer *w;
	struct cs_mid mid;
	uint8_t *rnd = malloc(17 << 20), *buf = malloc(1 << 20), *want = malloc(1 << 20);
	FILE *ur = fopen("/dev/urandom", "rb");
	if (!rnd || !buf || !want || !ur || fread(rnd, 1, 17 << 20, ur) != 17 << 20)
		return 1;
	fclose(ur);
	if (cs_pool_open(&o, &p) < 0 || cs_writer_open(p, &w) < 0)
		return 1;
	for (uint64_t i = 0; i < mib; i++) {
		block(buf, rnd, i);
		if (cs_writer_write(w, buf, 1 << 20) < 0)
			return 1;
	}
	if (cs_writer_finish(w) < 0 || cs_commit(p, w, create_fn, &mid) < 0)
		return 1;
	cs_writer_free(w);
	double t0 = now();
	if (cs_seal_drain(p, true) < 0)
		return 1;
	printf("seal drain after the PUT: %.2f s\n", now() - t0);
	struct cs_stats st;
	if (cs_pool_stats(p, &st) < 0)
		return 1;
	printf("stored %.1f MiB, physical %.1f MiB (%.2fx)\n", st.stored_bytes / 1048576.0,
	       st.physical_bytes / 1048576.0, (double)st.physical_bytes / (double)st.stored_bytes);
	double healthy = read_all(p, &mid, mib, buf, rnd, want);
	cs_pool_close(p);

	/* lose two devices that hold data units (every stripe of the default
	 * ring has the same order: unit 0 and 1 devices) */
	if (cs_pool_open(&o, &p) < 0)
		return 1;
	char path[600];
	uint32_t lost[2];
	{
		struct meta_txn *txn;
		struct meta_cursor *c;
		const void *k, *v;
		size_t kl, vl;
		if (meta_txn_begin(cs_pool_meta(p), false, &txn) < 0 ||
		    meta_cursor_open(txn, META_T_STRIPES, &c) < 0 ||
		    meta_cursor_seek(c, "", 0, &k, &kl, &v, &vl) < 0)
			return 1;
		struct cs_stripe_rec s;
		memcpy(&s, v, sizeof(s));
		lost[0] = s.devs[0];
		lost[1] = s.devs[1];
		meta_cursor_close(c);
		meta_txn_abort(txn);
	}
	cs_pool_close(p);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/devices/d%u", argv[1], lost[i]);
		nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	}
	if (cs_pool_open(&o, &p) < 0)
		return 1;
	double degraded = read_all(p, &mid, mib, buf, rnd, want);
	if (cs_pool_stats(p, &st) < 0)
		return 1;
	printf("GET healthy %.2f GiB/s, degraded (devices d%u d%u gone) %.2f GiB/s: ratio %.2f "
	       "(%llu chunks rebuilt)\n",
	       healthy, lost[0], lost[1], degraded, degraded / healthy,
	       (unsigned long long)st.reconstructs);
	struct cs_check_report rep;
	t0 = now();
	uint64_t written = 0;
	if (cs_repair(p, &rep, prog, &written) < 0)
		return 1;
	double rt = now() - t0;
	double repair = (double)written / rt / (1 << 30);
	cs_pool_close(p);

	/* the device's sequential O_DIRECT write bandwidth, same byte count */
	uint64_t wbytes = written;
	snprintf(path, sizeof(path), "%s/seqwrite.tmp", argv[1]);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0644);
	uint8_t *ab = aligned_alloc(4096, 1 << 20);
	if (fd < 0 || !ab)
		return 1;
	memcpy(ab, rnd, 1 << 20);
	t0 = now();
	for (uint64_t off = 0; off < wbytes; off += 1 << 20)
		if (pwrite(fd, ab, 1 << 20, (off_t)off) != 1 << 20)
			return 1;
	if (fdatasync(fd) < 0)
		return 1;
	double seq = (double)wbytes / (now() - t0) / (1 << 30);
	close(fd);
	unlink(path);
	printf("repair: %.1f MiB written (read+written %.1f MiB) in %.2f s = %.2f GiB/s; "
	       "sequential O_DIRECT write %.2f GiB/s: ratio %.2f\n",
	       written / 1048576.0, rep.bytes / 1048576.0, rt, repair, seq, repair / seq);
	free(ab);
	free(rnd);
	free(buf);
	free(want);
	return 0;
}
