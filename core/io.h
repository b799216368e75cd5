/* core/io.h - file I/O through io_uring, with a power-loss test mode.
 *
 * Every device write in cairn goes through this module. An io_ctx owns one
 * io_uring and belongs to one thread; io_batch submits many reads or writes
 * at once and waits for all of them (several in flight per call).
 * Buffers for O_DIRECT files must be CS-aligned: io_alloc() gives 4 KiB
 * aligned memory.
 *
 * Power-loss test mode (io_powerloss_enable, before any file is opened): every
 * write first appends an undo record (path, offset, old bytes, old size) to a
 * log under the data directory; a completed fdatasync/fsync of a file
 * retires that file's records, and creating a file is retired by fsyncing its
 * directory. After the process is killed, io_powerloss_replay() puts back the
 * old bytes of every write not covered by a sync, tears the newest one (only
 * part of it reverted) and removes files whose creation was not made durable:
 * exactly what a power cut could leave, which kill -9 alone (the page cache
 * survives) cannot show. LMDB's own writes are not simulated; LMDB's
 * durability rests on its fsync at commit.
 *
 * Threads: io_ctx is single-thread; io_open/io_close/io_fsync_dir and the
 * power-loss log are thread-safe.
 */
#ifndef CAIRN_CORE_IO_H
#define CAIRN_CORE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

#define IO_ALIGN 4096u

struct io_ctx;

/* Probes io_uring at start and logs the features found; returns 0 or -errno
 * (no io_uring: cairn refuses to start and says why). */
int io_probe(void) CAIRN_WUR;

int io_ctx_create(unsigned depth, struct io_ctx **out) CAIRN_WUR;
void io_ctx_free(struct io_ctx *ctx);

/* open(2) that registers the path for the power-loss log; returns fd or
 * -errno. O_DIRECT falls back to buffered I/O (logged once) on file systems
 * that refuse it (tmpfs). */
int io_open(const char *path, int flags, mode_t mode) CAIRN_WUR;
int io_close(int fd);
/* ftruncate(2) that the power-loss log knows about (use it instead of
 * ftruncate on files written through this module). Returns 0 or -errno. */
int io_ftruncate(int fd, uint64_t size) CAIRN_WUR;

enum io_op { IO_READ = 0, IO_WRITE = 1 };
struct io_req {
	enum io_op op;
	int fd;
	void *buf;
	size_t len;
	uint64_t off;
	long result; /* out: bytes done or -errno */
};
/* Submits n requests (any mix) and waits for all (at most the ctx depth in
 * flight; short reads are resubmitted). Returns 0 when every request
 * completed in full, else the error of the lowest-numbered failed request:
 * -EIO for a short write, -ENODATA for a read that met end of file (its
 * result then holds the bytes read), -EINVAL for a misaligned O_DIRECT
 * request. Every request's result is set either way. */
int io_batch(struct io_ctx *ctx, struct io_req *reqs, size_t n) CAIRN_WUR;
int io_pwrite(struct io_ctx *ctx, int fd, const void *buf, size_t len, uint64_t off) CAIRN_WUR;
/* Returns bytes read (short at end of file) or -errno. */
long io_pread(struct io_ctx *ctx, int fd, void *buf, size_t len, uint64_t off) CAIRN_WUR;
/* fdatasync through the ring; n fds are synced concurrently. A directory fd
 * gets a full fsync (and retires file creations in power-loss mode, as
 * io_fsync_dir does), so data and directory syncs share one batch. */
int io_fdatasync(struct io_ctx *ctx, const int *fds, size_t n) CAIRN_WUR;
/* Bytes written and read by every io_batch of the process so far (device
 * data; LMDB's own writes are not included). */
uint64_t io_bytes_written(void);
uint64_t io_bytes_read(void);
/* fsync of a directory (after creating or renaming files in it). */
int io_fsync_dir(const char *dir) CAIRN_WUR;
/* mkdir -p with a durable parent chain. */
int io_mkdirs(const char *dir, mode_t mode) CAIRN_WUR;

void *io_alloc(size_t len); /* IO_ALIGN-aligned, zeroed; NULL on ENOMEM */
void io_free(void *p);

/* Power-loss test mode. log_path is where undo records go. */
int io_powerloss_enable(const char *log_path) CAIRN_WUR;
bool io_powerloss_enabled(void);
/* Stops logging and closes the log (tests; the log stays for replay). */
void io_powerloss_disable(void);
/* Applies a log left by a killed process (see above) and removes it.
 * Returns the number of writes reverted (0 when there is no log), or a
 * negative code. The torn write keeps CAIRN_POWERLOSS_KEEP percent (default
 * 50) of its 512-byte sectors, rounded down. Record format: io_powerloss.c. */
long io_powerloss_replay(const char *log_path) CAIRN_WUR;

#endif
