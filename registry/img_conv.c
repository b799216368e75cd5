/* registry/img_conv.c - the raw view of an uploaded qcow2 image.
 *
 * qemu-img does the qcow2 reading, as Glance's image-conversion plugin
 * does: `qemu-img check -f qcow2` then `qemu-img convert -f qcow2 -O raw`,
 * with the format always given (never probed) and only after
 * registry/qcow2.c passed the header (no backing or data file can be
 * named). Each child runs without a shell, with an empty environment, stdin
 * from /dev/null, only its two files open (as fds 3 and 4, named
 * /proc/self/fd/N: the scratch files have no names) and resource limits
 * (CPU seconds, address space, file size) so a crafted image cannot make
 * it run forever or eat the node's memory. The raw file is sparse
 * (`--target-is-zero` into a pre-sized file): its data is read with
 * SEEK_DATA/SEEK_HOLE, and holes go to the writer as zero bytes (the writer
 * keeps zero chunks as entries only, and never reads the disk for them).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chunkstore/chunkstore.h"
#include "core/fault.h"
#include "core/log.h"
#include "registry/img_data.h"
#include "registry/img_internal.h"

#define CONV_CPU_SEC 60
#define CONV_AS_BYTES (1ULL << 30)
#define CONV_BUF (1u << 20)
#define CONV_OUT_MAX 512 /* bytes of the tool's output kept for the reason */

static const uint8_t conv_zero[CONV_BUF];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Finds prog on PATH (as execvp would) before fork, so the child only
 * calls async-signal-safe functions. */
static int find_prog(const char *prog, char *path, size_t len)
{
	if (strchr(prog, '/')) {
		if ((size_t)snprintf(path, len, "%s", prog) >= len)
			return -ENAMETOOLONG;
		return access(path, X_OK) == 0 ? 0 : -errno;
	}
	const char *env = getenv("PATH");
	if (!env || !*env)
		env = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = env; *p;) {
		const char *e = strchrnul(p, ':');
		int n = snprintf(path, len, "%.*s/%s", (int)(e - p), p, prog);
		if (n > 0 && (size_t)n < len && e > p && access(path, X_OK) == 0)
			return 0;
		p = *e ? e + 1 : e;
	}
	return -ENOENT;
}

/* Runs path argv with fd_a as fd 3 and fd_b as fd 4 (either may be -1),
 * stdout and stderr into out (NUL-terminated, trimmed). Returns the exit
 * status (0..255), 128 + signal when killed, or -errno when it could not
 * run. */
static int run_tool(const char *path, char *const argv[], int fd_a, int fd_b, uint64_t fsize,
		    char *out, size_t outlen)
{
	int pfd[2];
	int status, rc;
	pid_t pid;

	out[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return rc;
	}
	if (pid == 0) {
		/* the child: async-signal-safe calls only */
		int a = fd_a >= 0 ? fcntl(fd_a, F_DUPFD, 10) : -1;
		int b = fd_b >= 0 ? fcntl(fd_b, F_DUPFD, 10) : -1;
		int nul = open("/dev/null", O_RDONLY);
		if ((fd_a >= 0 && a < 0) || (fd_b >= 0 && b < 0) || nul < 0)
			_exit(126);
		if (dup2(nul, 0) < 0 || dup2(pfd[1], 1) < 0 || dup2(pfd[1], 2) < 0)
			_exit(126);
		if ((a >= 0 && dup2(a, 3) < 0) || (b >= 0 && dup2(b, 4) < 0))
			_exit(126);
		/* every other fd of the node (LMDB, devices, sockets) */
		if (close_range(5, ~0U, 0) < 0)
			for (int fd = 5; fd < 65536; fd++)
				close(fd);
		struct rlimit cpu = {CONV_CPU_SEC, CONV_CPU_SEC + 1};
		struct rlimit as = {CONV_AS_BYTES, CONV_AS_BYTES};
		struct rlimit fs = {fsize, fsize};
		struct rlimit core = {0, 0};
		if (setrlimit(RLIMIT_CPU, &cpu) < 0 || setrlimit(RLIMIT_AS, &as) < 0 ||
		    setrlimit(RLIMIT_FSIZE, &fs) < 0 || setrlimit(RLIMIT_CORE, &core) < 0)
			_exit(126);
		signal(SIGXFSZ, SIG_DFL);
		char *const envp[] = {NULL};
		execve(path, argv, envp);
		_exit(127);
	}
	close(pfd[1]);
	size_t got = 0;
	for (;;) {
		char tmp[1024];
		ssize_t n = read(pfd[0], tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t keep = outlen - 1 - got;
		if (keep > (size_t)n)
			keep = (size_t)n;
		memcpy(out + got, tmp, keep);
		got += keep;
	}
	out[got] = '\0';
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	/* one line for the reason: newlines become "; " */
	while (got && (out[got - 1] == '\n' || out[got - 1] == ' '))
		out[--got] = '\0';
	for (size_t i = 0; i < got; i++)
		if (out[i] == '\n' || out[i] == '\r')
			out[i] = ' ';
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* Streams the sparse raw file fd (size bytes) into a new writer. */
static int conv_stream(struct cs_pool *pool, int fd, uint64_t size, const char *owner,
		       struct cs_writer **out)
{
	struct cs_writer *w = NULL;
	uint8_t *buf = NULL;
	int rc;

	if ((rc = cs_writer_open(pool, &w)) < 0)
		goto out;
	img_writer_domain(w, owner); /* the raw view dedups within its owner's domain */
	if (!(buf = malloc(CONV_BUF))) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint64_t off = 0; off < size;) {
		off_t d = lseek(fd, (off_t)off, SEEK_DATA);
		uint64_t data, hole;
		if (d < 0) {
			if (errno != ENXIO) {
				rc = -errno;
				goto out;
			}
			data = size; /* a hole to the end */
		} else {
			data = (uint64_t)d;
		}
		if (data > size)
			data = size;
		for (; off < data;) {
			size_t n = data - off > CONV_BUF ? CONV_BUF : (size_t)(data - off);
			if ((rc = cs_writer_write(w, conv_zero, n)) < 0)
				goto out;
			off += n;
		}
		if (off >= size)
			break;
		off_t h = lseek(fd, (off_t)off, SEEK_HOLE);
		if (h < 0) {
			rc = -errno;
			goto out;
		}
		hole = (uint64_t)h > size ? size : (uint64_t)h;
		while (off < hole) {
			size_t want = hole - off > CONV_BUF ? CONV_BUF : (size_t)(hole - off);
			ssize_t n = pread(fd, buf, want, (off_t)off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				rc = n < 0 ? -errno : -EIO;
				goto out;
			}
			if ((rc = cs_writer_write(w, buf, (size_t)n)) < 0)
				goto out;
			off += (uint64_t)n;
		}
	}
	if ((rc = cs_writer_finish(w)) < 0)
		goto out;
	*out = w;
	w = NULL;
out:
	free(buf);
	cs_writer_free(w);
	return rc;
}

int img_conv_raw(struct cs_pool *pool, const struct img_data_opts *opts, int spool_fd,
		 uint64_t virtual_size, struct cs_writer **out, char *why, size_t whylen)
{
	char path[4096], msg[CONV_OUT_MAX];
	struct stat st;
	int raw = -1;
	int rc;

	*out = NULL;
	if ((rc = find_prog(opts->qemu_img ? opts->qemu_img : "qemu-img", path, sizeof(path))) <
	    0) {
		snprintf(why, whylen, "qemu-img not found");
		log_err("img", "qemu-img not found: %s", cairn_strerror(rc));
		rc = -EIO;
		goto out;
	}
	if (fstat(spool_fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	double t0 = now_s();
	char *const check[] = {path, "check", "-f", "qcow2", "/proc/self/fd/3", NULL};
	rc = run_tool(path, check, spool_fd, -1, 0, msg, sizeof(msg));
	if (rc < 0 || rc == 126 || rc == 127 || FAULT("img_conv_exec")) {
		snprintf(why, whylen, "cannot run qemu-img");
		log_err("img", "cannot run %s (%d)", path, rc);
		rc = -EIO;
		goto out;
	}
	/* 0: clean; 3: leaked clusters only (harmless, as qemu-img says) */
	if (rc != 0 && rc != 3) {
		snprintf(why, whylen, "qemu-img check refused the image (%s%d): %.300s",
			 rc > 128 ? "signal " : "exit ", rc > 128 ? rc - 128 : rc, msg);
		rc = CAIRN_EINVAL;
		goto out;
	}
	if ((raw = img_scratch_open(opts->tmp_dir)) < 0) {
		rc = raw;
		snprintf(why, whylen, "cannot make a scratch file");
		goto out;
	}
	if (ftruncate(raw, (off_t)virtual_size) < 0) {
		rc = -errno;
		goto out;
	}
	char *const conv[] = {path,
			      "convert",
			      "-q",
			      "-f",
			      "qcow2",
			      "-O",
			      "raw",
			      "-n",
			      "--target-is-zero",
			      "/proc/self/fd/3",
			      "/proc/self/fd/4",
			      NULL};
	rc = run_tool(path, conv, spool_fd, raw, virtual_size, msg, sizeof(msg));
	if (rc < 0 || rc == 126 || rc == 127) {
		snprintf(why, whylen, "cannot run qemu-img");
		rc = -EIO;
		goto out;
	}
	if (rc != 0) {
		snprintf(why, whylen, "qemu-img convert refused the image (%s%d): %.300s",
			 rc > 128 ? "signal " : "exit ", rc > 128 ? rc - 128 : rc, msg);
		rc = CAIRN_EINVAL;
		goto out;
	}
	if (fstat(raw, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size != virtual_size) {
		snprintf(why, whylen, "qemu-img convert wrote %llu bytes, not %llu",
			 (unsigned long long)st.st_size, (unsigned long long)virtual_size);
		rc = CAIRN_EINVAL;
		goto out;
	}
	double t1 = now_s();
	rc = conv_stream(pool, raw, virtual_size, opts->owner, out);
	if (rc == 0)
		log_info("img", "qcow2 raw view of %llu bytes: qemu-img %.1f s, stored in %.1f s",
			 (unsigned long long)virtual_size, t1 - t0, now_s() - t1);
out:
	if (raw >= 0)
		close(raw);
	return rc;
}
