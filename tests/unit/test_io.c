/* tests/unit/test_io.c - core/io: io_uring batches, faults, dirs, power-loss mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fault.h"
#include "core/io.h"

static char tdir[256];

static int group_setup(void **state)
{
	(void)state;
	snprintf(tdir, sizeof(tdir), "/tmp/cairn-test-io-XXXXXX");
	return mkdtemp(tdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tdir, name);
}

static off_t file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? st.st_size : -1;
}

/* Reads the whole file (plain read(2)) into a malloc'd buffer. */
static uint8_t *slurp(const char *p, size_t *len)
{
	off_t sz = file_size(p);
	uint8_t *buf = malloc(sz > 0 ? (size_t)sz : 1);
	int fd = open(p, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, (size_t)sz, 0), sz);
	close(fd);
	*len = (size_t)sz;
	return buf;
}

static void test_io_probe_ok(void **state)
{
	(void)state;
	assert_int_equal(io_probe(), 0);
}

static void test_io_alloc_aligned_zeroed(void **state)
{
	(void)state;
	for (size_t len = 0; len < 20000; len += 4095) {
		uint8_t *p = io_alloc(len);

		assert_non_null(p);
		assert_int_equal((uintptr_t)p % IO_ALIGN, 0);
		for (size_t i = 0; i < len; i++)
			assert_int_equal(p[i], 0);
		io_free(p);
	}
	io_free(NULL);
}

/* More requests than the ring depth, O_DIRECT, mixed writes then reads. */
static void test_io_batch_more_than_depth_direct(void **state)
{
	struct io_ctx *ctx;
	char p[300];
	enum { N = 67, BS = 8192 };
	struct io_req reqs[N];
	uint8_t *wbuf = io_alloc(N * BS), *rbuf = io_alloc(N * BS);
	int fd;

	(void)state;
	path_of(p, sizeof(p), "batch");
	assert_int_equal(io_ctx_create(4, &ctx), 0);
	fd = io_open(p, O_RDWR | O_CREAT | O_DIRECT, 0600);
	assert_true(fd >= 0);
	for (size_t i = 0; i < N * BS; i++)
		wbuf[i] = (uint8_t)(i * 31 + i / BS);
	for (int i = 0; i < N; i++) {
		/* Out of order offsets. */
		int slot = (i * 7) % N;

		reqs[i] = (struct io_req){.op = IO_WRITE,
					  .fd = fd,
					  .buf = wbuf + slot * BS,
					  .len = BS,
					  .off = (uint64_t)slot * BS};
	}
	assert_int_equal(io_batch(ctx, reqs, N), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(reqs[i].result, BS);
	assert_int_equal(io_fdatasync(ctx, &fd, 1), 0);
	for (int i = 0; i < N; i++)
		reqs[i] = (struct io_req){.op = IO_READ,
					  .fd = fd,
					  .buf = rbuf + i * BS,
					  .len = BS,
					  .off = (uint64_t)i * BS};
	assert_int_equal(io_batch(ctx, reqs, N), 0);
	assert_memory_equal(rbuf, wbuf, N * BS);
	assert_int_equal(io_batch(ctx, reqs, 0), 0);

	/* Misaligned O_DIRECT buffer: -EINVAL in result and return. */
	struct io_req bad = {.op = IO_READ, .fd = fd, .buf = rbuf + 1, .len = 4096, .off = 0};
	assert_int_equal(io_batch(ctx, &bad, 1), -EINVAL);
	assert_int_equal(bad.result, -EINVAL);

	assert_int_equal(io_close(fd), 0);
	io_ctx_free(ctx);
	io_free(wbuf);
	io_free(rbuf);
}

static void test_io_short_read_at_eof(void **state)
{
	struct io_ctx *ctx;
	char p[300], buf[100] = {0};
	int fd;

	(void)state;
	path_of(p, sizeof(p), "short");
	assert_int_equal(io_ctx_create(0, &ctx), 0);
	fd = io_open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(io_pwrite(ctx, fd, "hello world", 11, 0), 0);
	assert_int_equal(io_pread(ctx, fd, buf, sizeof(buf), 6), 5);
	assert_memory_equal(buf, "world", 5);
	assert_int_equal(io_pread(ctx, fd, buf, sizeof(buf), 11), 0);
	assert_int_equal(io_pread(ctx, fd, buf, sizeof(buf), 1000), 0);

	struct io_req r[2] = {
	    {.op = IO_READ, .fd = fd, .buf = buf, .len = 5, .off = 0},
	    {.op = IO_READ, .fd = fd, .buf = buf + 10, .len = 20, .off = 6},
	};
	assert_int_equal(io_batch(ctx, r, 2), -ENODATA);
	assert_int_equal(r[0].result, 5);
	assert_int_equal(r[1].result, -ENODATA);
	/* Bad fd fails that request only. */
	r[1].fd = -1;
	assert_int_equal(io_batch(ctx, r, 2), -EINVAL);
	assert_int_equal(r[0].result, 5);
	assert_int_equal(io_close(fd), 0);
	io_ctx_free(ctx);
}

static void test_io_fault_points_give_eio(void **state)
{
	struct io_ctx *ctx;
	char p[300], buf[16];
	int fds[3];

	(void)state;
	assert_int_equal(io_ctx_create(8, &ctx), 0);
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "fault%d", i);
		path_of(p, sizeof(p), name);
		fds[i] = io_open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
		assert_true(fds[i] >= 0);
		assert_int_equal(io_pwrite(ctx, fds[i], "abcdef", 6, 0), 0);
	}
	assert_int_equal(io_fdatasync(ctx, fds, 3), 0);

	fault_arm("io.write", 1);
	assert_int_equal(io_pwrite(ctx, fds[0], "XXXXXX", 6, 0), -EIO);
	fault_arm("io.write", 0);
	fault_arm("io.read", 2); /* second read fails */
	assert_int_equal(io_pread(ctx, fds[0], buf, 6, 0), 6);
	assert_memory_equal(buf, "abcdef", 6); /* the faulted write did not happen */
	assert_int_equal(io_pread(ctx, fds[0], buf, 6, 0), -EIO);
	fault_arm("io.read", 0);
	fault_arm("io.fsync", 2); /* the second of three fds fails */
	assert_int_equal(io_fdatasync(ctx, fds, 3), -EIO);
	assert_int_equal(io_fsync_dir(tdir), -EIO);
	fault_arm("io.fsync", 0);
	assert_int_equal(io_fdatasync(ctx, fds, 3), 0);
	assert_int_equal(io_fsync_dir(tdir), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(io_close(fds[i]), 0);
	io_ctx_free(ctx);
}

static void test_io_mkdirs_nested_and_existing(void **state)
{
	char p[300], f[300];
	struct stat st;
	int fd;

	(void)state;
	path_of(p, sizeof(p), "a/b/c/d/");
	assert_int_equal(io_mkdirs(p, 0755), 0);
	path_of(p, sizeof(p), "a/b/c/d");
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(io_mkdirs(p, 0755), 0); /* existing: fine */
	path_of(f, sizeof(f), "a/file");
	fd = open(f, O_CREAT | O_WRONLY, 0600);
	close(fd);
	path_of(p, sizeof(p), "a/file/sub");
	assert_int_equal(io_mkdirs(p, 0755), -ENOTDIR);
	assert_int_equal(io_mkdirs("", 0755), -ENOENT);
	assert_int_equal(io_fsync_dir("/nonexistent-cairn-dir"), -ENOENT);
}

static void test_io_tmpfs_direct_works(void **state)
{
	struct io_ctx *ctx;
	char p[64];
	uint8_t *buf = io_alloc(4096), *rb = io_alloc(4096);
	int fd;

	(void)state;
	if (access("/dev/shm", W_OK) != 0)
		skip();
	snprintf(p, sizeof(p), "/dev/shm/cairn-test-io-%d", (int)getpid());
	/* Older kernels refuse O_DIRECT on tmpfs (EINVAL): io_open falls back. */
	fd = io_open(p, O_RDWR | O_CREAT | O_DIRECT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(io_ctx_create(2, &ctx), 0);
	memset(buf, 0x5a, 4096);
	assert_int_equal(io_pwrite(ctx, fd, buf, 4096, 0), 0);
	assert_int_equal(io_pread(ctx, fd, rb, 4096, 0), 4096);
	assert_memory_equal(buf, rb, 4096);
	assert_int_equal(io_close(fd), 0);
	unlink(p);
	io_ctx_free(ctx);
	io_free(buf);
	io_free(rb);
}

/* ---- power-loss mode ---------------------------------------------------- */

static void fill(uint8_t *b, size_t n, uint8_t v)
{
	memset(b, v, n);
}

/* Creates name with n bytes of v, synced, before power-loss mode is on. */
static void make_file(const char *p, size_t n, uint8_t v)
{
	uint8_t *b = malloc(n);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	fill(b, n, v);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, n), (ssize_t)n);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	free(b);
}

static void check_range(const uint8_t *b, size_t from, size_t to, uint8_t v)
{
	for (size_t i = from; i < to; i++)
		if (b[i] != v)
			fail_msg("byte %zu is 0x%02x, want 0x%02x", i, b[i], v);
}

static void test_powerloss_synced_write_survives(void **state)
{
	struct io_ctx *ctx;
	char p[300], log[300];
	uint8_t buf[8192];
	size_t len;
	int fd;

	(void)state;
	path_of(p, sizeof(p), "pl-synced");
	path_of(log, sizeof(log), "pl-synced.log");
	make_file(p, 8192, 'A');
	assert_int_equal(io_ctx_create(8, &ctx), 0);
	assert_int_equal(io_powerloss_enable(log), 0);
	assert_true(io_powerloss_enabled());
	/* Enabling twice, or over an unreplayed log, is refused. */
	assert_int_equal(io_powerloss_enable(log), -EBUSY);
	fd = io_open(p, O_RDWR, 0);
	assert_true(fd >= 0);
	fill(buf, sizeof(buf), 'B');
	assert_int_equal(io_pwrite(ctx, fd, buf, 8192, 0), 0);
	fill(buf, sizeof(buf), 'C');
	assert_int_equal(io_pwrite(ctx, fd, buf, 4096, 8192), 0); /* extends */
	assert_int_equal(io_fdatasync(ctx, &fd, 1), 0);
	assert_int_equal(io_close(fd), 0);
	io_powerloss_disable();
	assert_false(io_powerloss_enabled());
	assert_int_equal(io_powerloss_enable(log), -EEXIST);

	assert_int_equal(io_powerloss_replay(log), 0);
	assert_int_equal(access(log, F_OK), -1); /* the log is gone */
	uint8_t *b = slurp(p, &len);
	assert_int_equal(len, 12288);
	check_range(b, 0, 8192, 'B');
	check_range(b, 8192, 12288, 'C');
	free(b);
	/* No log: nothing to do. */
	assert_int_equal(io_powerloss_replay(log), 0);
	io_ctx_free(ctx);
}

static void test_powerloss_unsynced_write_reverted(void **state)
{
	struct io_ctx *ctx;
	char p[300], q[300], log[300];
	uint8_t buf[8192];
	size_t len;
	int fd, fq;

	(void)state;
	path_of(p, sizeof(p), "pl-unsynced");
	path_of(q, sizeof(q), "pl-unsynced-other");
	path_of(log, sizeof(log), "pl-unsynced.log");
	make_file(p, 6000, 'A');
	make_file(q, 512, 'Q');
	assert_int_equal(io_ctx_create(8, &ctx), 0);
	assert_int_equal(io_powerloss_enable(log), 0);
	fd = io_open(p, O_RDWR, 0);
	fq = io_open(q, O_WRONLY, 0); /* write-only fd: old bytes read another way */
	assert_true(fd >= 0 && fq >= 0);
	/* Synced first write, then two unsynced ones (overlapping, extending). */
	fill(buf, sizeof(buf), 'B');
	assert_int_equal(io_pwrite(ctx, fd, buf, 1000, 0), 0);
	assert_int_equal(io_fdatasync(ctx, &fd, 1), 0);
	fill(buf, sizeof(buf), 'C');
	assert_int_equal(io_pwrite(ctx, fd, buf, 4096, 4096), 0); /* 4096..8192, old size 6000 */
	fill(buf, sizeof(buf), 'D');
	assert_int_equal(io_pwrite(ctx, fd, buf, 2048, 500), 0);
	/* The newest unsynced write overall is in another file: one sector,
	 * so its tear keeps nothing. */
	fill(buf, sizeof(buf), 'R');
	assert_int_equal(io_pwrite(ctx, fq, buf, 512, 0), 0);
	io_powerloss_disable();
	assert_int_equal(io_close(fd), 0);
	assert_int_equal(io_close(fq), 0);

	assert_int_equal(io_powerloss_replay(log), 3);
	uint8_t *b = slurp(p, &len);
	assert_int_equal(len, 6000);
	check_range(b, 0, 1000, 'B');
	check_range(b, 1000, 6000, 'A');
	free(b);
	b = slurp(q, &len);
	assert_int_equal(len, 512);
	check_range(b, 0, 512, 'Q');
	free(b);
	io_ctx_free(ctx);
}

static void test_powerloss_torn_write_partly_reverted(void **state)
{
	struct io_ctx *ctx;
	char p[300], log[300];
	uint8_t *buf = io_alloc(16384);
	size_t len;
	int fd;

	(void)state;
	path_of(p, sizeof(p), "pl-torn");
	path_of(log, sizeof(log), "pl-torn.log");
	make_file(p, 8192, 'A');
	assert_int_equal(io_ctx_create(8, &ctx), 0);
	assert_int_equal(io_powerloss_enable(log), 0);
	fd = io_open(p, O_RDWR | O_DIRECT, 0);
	assert_true(fd >= 0);
	/* An older unsynced write under the torn one must not undo the kept
	 * half; the torn write (16 sectors, 8 kept) also extends the file. */
	fill(buf, 4096, 'X');
	assert_int_equal(io_pwrite(ctx, fd, buf, 4096, 4096), 0);
	fill(buf, 16384, 'T');
	assert_int_equal(io_pwrite(ctx, fd, buf, 8192, 4096), 0);
	io_powerloss_disable();
	assert_int_equal(io_close(fd), 0);

	assert_int_equal(io_powerloss_replay(log), 2);
	uint8_t *b = slurp(p, &len);
	assert_int_equal(len, 8192);
	check_range(b, 0, 4096, 'A');
	check_range(b, 4096, 8192, 'T');
	free(b);

	/* Tear of a write past the old end: the file keeps the new first half. */
	assert_int_equal(io_powerloss_enable(log), 0);
	fd = io_open(p, O_RDWR | O_DIRECT, 0);
	assert_true(fd >= 0);
	fill(buf, 16384, 'E');
	assert_int_equal(io_pwrite(ctx, fd, buf, 16384, 12288), 0); /* hole 8192..12288 */
	io_powerloss_disable();
	assert_int_equal(io_close(fd), 0);
	assert_int_equal(io_powerloss_replay(log), 1);
	b = slurp(p, &len);
	assert_int_equal(len, 12288 + 8192);
	check_range(b, 0, 4096, 'A');
	check_range(b, 4096, 8192, 'T');
	check_range(b, 8192, 12288, 0);
	check_range(b, 12288, 12288 + 8192, 'E');
	free(b);
	io_free(buf);
	io_ctx_free(ctx);
}

static void test_powerloss_unsynced_creation_vanishes(void **state)
{
	struct io_ctx *ctx;
	char d[300], kept[300], lost[300], lost2[300], log[300];
	int fd;

	(void)state;
	path_of(d, sizeof(d), "pl-create");
	assert_int_equal(io_mkdirs(d, 0755), 0);
	path_of(kept, sizeof(kept), "pl-create/kept");
	path_of(lost, sizeof(lost), "pl-create/lost");
	path_of(lost2, sizeof(lost2), "pl-create/lost-synced-data");
	path_of(log, sizeof(log), "pl-create.log");
	assert_int_equal(io_ctx_create(8, &ctx), 0);
	assert_int_equal(io_powerloss_enable(log), 0);
	fd = io_open(kept, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(io_pwrite(ctx, fd, "kept", 4, 0), 0);
	assert_int_equal(io_fdatasync(ctx, &fd, 1), 0);
	assert_int_equal(io_close(fd), 0);
	assert_int_equal(io_fsync_dir(d), 0);
	/* Created after the directory sync: gone, even with its data synced. */
	fd = io_open(lost, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(io_close(fd), 0);
	fd = io_open(lost2, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(io_pwrite(ctx, fd, "data", 4, 0), 0);
	assert_int_equal(io_fdatasync(ctx, &fd, 1), 0);
	assert_int_equal(io_close(fd), 0);
	/* Re-opening an existing file with O_CREAT is not a creation. */
	fd = io_open(kept, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(io_close(fd), 0);
	io_powerloss_disable();

	assert_true(io_powerloss_replay(log) >= 0);
	assert_int_equal(access(kept, F_OK), 0);
	assert_int_equal(file_size(kept), 4);
	assert_int_equal(access(lost, F_OK), -1);
	assert_int_equal(access(lost2, F_OK), -1);
	io_ctx_free(ctx);
}

static void test_powerloss_torn_log_record_tolerated(void **state)
{
	struct io_ctx *ctx;
	char p[300], log[300];
	uint8_t buf[4096];
	size_t len;
	int fd;

	(void)state;
	path_of(p, sizeof(p), "pl-tornlog");
	path_of(log, sizeof(log), "pl-tornlog.log");
	make_file(p, 4096, 'A');
	assert_int_equal(io_ctx_create(8, &ctx), 0);
	assert_int_equal(io_powerloss_enable(log), 0);
	fd = io_open(p, O_RDWR, 0);
	fill(buf, sizeof(buf), 'B');
	assert_int_equal(io_pwrite(ctx, fd, buf, 1024, 0), 0);
	fill(buf, sizeof(buf), 'C');
	assert_int_equal(io_pwrite(ctx, fd, buf, 1024, 1024), 0);
	io_powerloss_disable();
	assert_int_equal(io_close(fd), 0);
	/* Cut the last record (its old bytes) in half: as if the process died
	 * while appending it, so its write never happened. Put the bytes back
	 * to 'A' to match. */
	off_t sz = file_size(log);
	assert_int_equal(truncate(log, sz - 512), 0);
	fd = open(p, O_WRONLY);
	fill(buf, sizeof(buf), 'A');
	assert_int_equal(pwrite(fd, buf, 1024, 1024), 1024);
	close(fd);

	assert_int_equal(io_powerloss_replay(log), 1);
	uint8_t *b = slurp(p, &len);
	assert_int_equal(len, 4096);
	/* The one complete record is the newest: torn, 1 of 2 sectors kept. */
	check_range(b, 0, 512, 'B');
	check_range(b, 512, 4096, 'A');
	free(b);
	io_ctx_free(ctx);
}

/* io_batch writes to two files, only one synced: the other's are undone. */
static void test_powerloss_batch_only_synced_file_kept(void **state)
{
	struct io_ctx *ctx;
	char p[300], q[300], log[300];
	enum { N = 12 };
	struct io_req reqs[N];
	uint8_t *buf = io_alloc(N * 4096);
	size_t len;
	int fp, fq;

	(void)state;
	path_of(p, sizeof(p), "pl-batch-p");
	path_of(q, sizeof(q), "pl-batch-q");
	path_of(log, sizeof(log), "pl-batch.log");
	make_file(p, 4096, 'A');
	make_file(q, 4096, 'A');
	assert_int_equal(io_ctx_create(4, &ctx), 0);
	assert_int_equal(io_powerloss_enable(log), 0);
	fp = io_open(p, O_RDWR | O_DIRECT, 0);
	fq = io_open(q, O_RDWR | O_DIRECT, 0);
	assert_true(fp >= 0 && fq >= 0);
	fill(buf, N * 4096, 'N');
	for (int i = 0; i < N; i++)
		reqs[i] = (struct io_req){.op = IO_WRITE,
					  .fd = i % 2 ? fq : fp,
					  .buf = buf + i * 4096,
					  .len = 4096,
					  .off = (uint64_t)(i / 2) * 4096};
	assert_int_equal(io_batch(ctx, reqs, N), 0);
	assert_int_equal(io_fdatasync(ctx, &fp, 1), 0);
	io_powerloss_disable();
	assert_int_equal(io_close(fp), 0);
	assert_int_equal(io_close(fq), 0);

	assert_int_equal(io_powerloss_replay(log), N / 2);
	uint8_t *b = slurp(p, &len);
	assert_int_equal(len, N / 2 * 4096);
	check_range(b, 0, len, 'N');
	free(b);
	b = slurp(q, &len);
	/* All of q's writes undone, but the newest one (the batch's last
	 * request, at offset 20480) keeps its first half: the file ends there
	 * and the lost writes in between read as zeros. */
	assert_int_equal(len, 5 * 4096 + 2048);
	check_range(b, 0, 4096, 'A');
	check_range(b, 4096, 5 * 4096, 0);
	check_range(b, 5 * 4096, len, 'N');
	free(b);
	io_free(buf);
	io_ctx_free(ctx);
}

/* O_TRUNC and io_ftruncate are undone like writes when not synced. */
static void test_powerloss_truncate_reverted(void **state)
{
	struct io_ctx *ctx;
	char p[300], q[300], log[300];
	size_t len;
	int fd, fq;

	(void)state;
	path_of(p, sizeof(p), "pl-trunc-p");
	path_of(q, sizeof(q), "pl-trunc-q");
	path_of(log, sizeof(log), "pl-trunc.log");
	make_file(p, 5000, 'A');
	make_file(q, 3000, 'B');
	assert_int_equal(io_ctx_create(4, &ctx), 0);
	assert_int_equal(io_powerloss_enable(log), 0);
	fd = io_open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(file_size(p), 0);
	assert_int_equal(io_pwrite(ctx, fd, "new", 3, 0), 0);
	fq = io_open(q, O_RDWR, 0);
	assert_true(fq >= 0);
	assert_int_equal(io_ftruncate(fq, 1000), 0);
	assert_int_equal(io_ftruncate(fq, 1 << 20), 0);
	assert_int_equal(file_size(q), 1 << 20);
	/* Newest record: a 1-sector write, torn to nothing. */
	assert_int_equal(io_pwrite(ctx, fd, "x", 1, 0), 0);
	io_powerloss_disable();
	assert_int_equal(io_close(fd), 0);
	assert_int_equal(io_close(fq), 0);

	assert_int_equal(io_powerloss_replay(log), 5);
	uint8_t *b = slurp(p, &len);
	assert_int_equal(len, 5000);
	check_range(b, 0, 5000, 'A');
	free(b);
	b = slurp(q, &len);
	assert_int_equal(len, 3000);
	check_range(b, 0, 3000, 'B');
	free(b);
	io_ctx_free(ctx);
}

/* A child writes 4 KiB blocks (block i full of byte i+1), fdatasyncs after
 * every third and reports each synced count on a pipe; the parent kills it
 * with SIGKILL mid-stream. After replay (nothing of the torn write kept), the
 * file holds exactly the synced blocks. */
static void test_powerloss_sigkill_child_gives_synced_state(void **state)
{
	char p[300], log[300], d[300];
	int pipefd[2];
	pid_t pid;
	uint32_t reported = 0, r;

	(void)state;
	path_of(d, sizeof(d), "pl-kill");
	assert_int_equal(io_mkdirs(d, 0755), 0);
	path_of(p, sizeof(p), "pl-kill/data");
	path_of(log, sizeof(log), "pl-kill.log");
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct io_ctx *ctx;
		uint8_t *buf = io_alloc(4096);
		int fd;

		close(pipefd[0]);
		if (io_powerloss_enable(log) || io_ctx_create(16, &ctx))
			_exit(2);
		fd = io_open(p, O_RDWR | O_CREAT | O_DIRECT, 0600);
		if (fd < 0 || io_fsync_dir(d))
			_exit(3);
		for (uint32_t i = 0;; i++) {
			memset(buf, (int)(i % 255 + 1), 4096);
			if (io_pwrite(ctx, fd, buf, 4096, (uint64_t)i * 4096))
				_exit(4);
			if (i % 3 == 2) {
				uint32_t n = i + 1;

				if (io_fdatasync(ctx, &fd, 1))
					_exit(5);
				if (write(pipefd[1], &n, sizeof(n)) != sizeof(n))
					_exit(6);
			}
		}
	}
	close(pipefd[1]);
	/* Let it run a while (a varying amount), then cut the power while it
	 * keeps writing. */
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	uint32_t target = 30 + (uint32_t)(rand() % 600);
	while (reported < target && read(pipefd[0], &r, sizeof(r)) == sizeof(r))
		reported = r;
	usleep((useconds_t)(rand() % 3000));
	kill(pid, SIGKILL);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	/* Everything the child reported before it died was synced. */
	while (read(pipefd[0], &r, sizeof(r)) == sizeof(r))
		reported = r;
	close(pipefd[0]);

	setenv("CAIRN_POWERLOSS_KEEP", "0", 1);
	long rev = io_powerloss_replay(log);
	unsetenv("CAIRN_POWERLOSS_KEEP");
	assert_true(rev >= 0);
	size_t len;
	uint8_t *b = slurp(p, &len);
	/* Synced at least what was reported (the child ran on until killed);
	 * no unsynced block survives, so the size is a whole number of syncs. */
	assert_int_equal(len % (3 * 4096), 0);
	assert_true(len / 4096 >= reported);
	for (size_t i = 0; i < len / 4096; i++)
		check_range(b, i * 4096, (i + 1) * 4096, (uint8_t)(i % 255 + 1));
	free(b);
	printf("# child reported %u synced blocks; %zu survived, %ld writes reverted\n", reported,
	       len / 4096, rev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_io_probe_ok),
	    cmocka_unit_test(test_io_alloc_aligned_zeroed),
	    cmocka_unit_test(test_io_batch_more_than_depth_direct),
	    cmocka_unit_test(test_io_short_read_at_eof),
	    cmocka_unit_test(test_io_fault_points_give_eio),
	    cmocka_unit_test(test_io_mkdirs_nested_and_existing),
	    cmocka_unit_test(test_io_tmpfs_direct_works),
	    cmocka_unit_test(test_powerloss_synced_write_survives),
	    cmocka_unit_test(test_powerloss_unsynced_write_reverted),
	    cmocka_unit_test(test_powerloss_torn_write_partly_reverted),
	    cmocka_unit_test(test_powerloss_unsynced_creation_vanishes),
	    cmocka_unit_test(test_powerloss_torn_log_record_tolerated),
	    cmocka_unit_test(test_powerloss_batch_only_synced_file_kept),
	    cmocka_unit_test(test_powerloss_truncate_reverted),
	    cmocka_unit_test(test_powerloss_sigkill_child_gives_synced_state),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
