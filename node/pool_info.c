/* node/pool_info.c - pool and device figures for `cairn df`, the admin API
 * (/admin/v1/pool/stats) and /metrics.
 *
 * Pool totals come from cs_pool_stats (O(1): counters kept by the
 * committer). Devices are the "ec" ring's, each a folder DATA/devices/NAME:
 * present when the folder is there, used = bytes allocated under it (a walk
 * of its files: O(unit files), so /metrics reuses a walk for
 * NODE_DEV_CACHE_SEC), free and size from statvfs of the file system it is
 * on (folders sharing one file system report the same free bytes).
 * Any thread; the cache is guarded by one mutex.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "chunkstore/chunkstore.h"
#include "meta/meta.h"
#include "node/node.h"
#include "ring/ring.h"

#define NODE_DEV_CACHE_SEC 10
#define NODE_WALK_DEPTH 8 /* stripes/PART/files is 3 deep; more is not ours */

/* Allocated bytes of everything under dirfd (which it closes). */
static uint64_t du_fd(int dirfd, int depth)
{
	uint64_t sum = 0;
	DIR *d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return 0;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue; /* removed under us */
		sum += (uint64_t)st.st_blocks * 512u;
		if (S_ISDIR(st.st_mode) && depth < NODE_WALK_DEPTH) {
			int fd = openat(dirfd, e->d_name,
					O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0)
				sum += du_fd(fd, depth + 1);
		}
	}
	closedir(d);
	return sum;
}

static void dev_fill(struct node_dev_info *di)
{
	struct stat st;
	struct statvfs vfs;
	di->present = stat(di->path, &st) == 0 && S_ISDIR(st.st_mode);
	di->used_bytes = di->free_bytes = di->size_bytes = 0;
	if (!di->present)
		return;
	int fd = open(di->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		di->used_bytes = du_fd(fd, 0);
	if (statvfs(di->path, &vfs) == 0) {
		di->free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		di->size_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	}
}

long node_pool_devices(struct cs_pool *pool, const char *data_dir, struct node_dev_info *out,
		       size_t max)
{
	const struct ring *r = cs_pool_ring(pool, CS_POLICY_EC);
	uint32_t n = r ? ring_dev_count(r) : 0, found = 0;
	size_t k = 0;
	for (uint32_t id = 0; found < n && id < 65536; id++) {
		const struct ring_dev *d = ring_dev(r, id);
		if (!d)
			continue;
		found++;
		if (k >= max)
			continue; /* counted, not filled */
		struct node_dev_info *di = &out[k];
		memset(di, 0, sizeof(*di));
		di->id = id;
		snprintf(di->name, sizeof(di->name), "%s", d->name);
		snprintf(di->path, sizeof(di->path), "%s/devices/%s", data_dir, d->name);
		dev_fill(di);
		k++;
	}
	return (long)found;
}

/* The device walk of the last scrape, for the next ones. */
static struct {
	pthread_mutex_t mu;
	struct cs_pool *pool;
	time_t at;
	long n;
	struct node_dev_info devs[NODE_DEV_MAX];
} dcache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static long devices_cached(struct cs_pool *pool, const char *data_dir, struct node_dev_info *out)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&dcache.mu);
	if (dcache.pool != pool || now.tv_sec - dcache.at >= NODE_DEV_CACHE_SEC || dcache.n <= 0) {
		dcache.n = node_pool_devices(pool, data_dir, dcache.devs, NODE_DEV_MAX);
		dcache.pool = pool;
		dcache.at = now.tv_sec;
	}
	long n = dcache.n > NODE_DEV_MAX ? NODE_DEV_MAX : dcache.n;
	if (n > 0)
		memcpy(out, dcache.devs, (size_t)n * sizeof(*out));
	pthread_mutex_unlock(&dcache.mu);
	return n;
}

double node_ratio(uint64_t a, uint64_t b)
{
	if (b == 0)
		return a == 0 ? 1.0 : NAN;
	return (double)a / (double)b;
}

static json_t *ratio_json(uint64_t a, uint64_t b)
{
	double r = node_ratio(a, b);
	return isnan(r) ? json_null() : json_real(r);
}

struct json_t *node_pool_stats_json(struct cs_pool *pool, const char *data_dir, int *err)
{
	struct cs_stats st;
	struct node_dev_info *devs = NULL;
	json_t *o = NULL, *arr = NULL;
	uint64_t mused = 0, msize = 0;
	*err = cs_pool_stats(pool, &st);
	if (*err < 0)
		return NULL;
	*err = -ENOMEM;
	devs = calloc(NODE_DEV_MAX, sizeof(*devs));
	if (!devs)
		return NULL;
	long n = node_pool_devices(pool, data_dir, devs, NODE_DEV_MAX);
	if (n > NODE_DEV_MAX)
		n = NODE_DEV_MAX;
	if (meta_usage(cs_pool_meta(pool), &mused, &msize) < 0)
		mused = msize = 0;
	const struct cs_pool_rec *pr = cs_pool_format(pool);
	arr = json_array();
	for (long i = 0; arr && i < n; i++)
		json_array_append_new(
		    arr, json_pack("{s:s, s:I, s:s, s:b, s:I, s:I, s:I}", "name", devs[i].name,
				   "id", (json_int_t)devs[i].id, "path", devs[i].path, "present",
				   devs[i].present, "used_bytes", (json_int_t)devs[i].used_bytes,
				   "free_bytes", (json_int_t)devs[i].free_bytes, "size_bytes",
				   (json_int_t)devs[i].size_bytes));
	json_t *p = json_pack(
	    "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:I, s:i, s:i, s:I, s:I}",
	    "logical_bytes", (json_int_t)st.logical_bytes, "unique_bytes",
	    (json_int_t)st.unique_bytes, "stored_bytes", (json_int_t)st.stored_bytes,
	    "physical_bytes", (json_int_t)st.physical_bytes, "chunks", (json_int_t)st.chunks,
	    "manifests", (json_int_t)st.manifests, "stripes", (json_int_t)st.stripes, "dedup_ratio",
	    ratio_json(st.logical_bytes, st.unique_bytes), "compression_ratio",
	    ratio_json(st.unique_bytes, st.stored_bytes), "space_amplification",
	    ratio_json(st.physical_bytes, st.stored_bytes), "read_fallbacks",
	    (json_int_t)st.read_fallbacks, "reconstructs", (json_int_t)st.reconstructs, "k",
	    (int)pr->k, "m", (int)pr->m, "meta_used_bytes", (json_int_t)mused, "meta_map_bytes",
	    (json_int_t)msize);
	if (arr && p)
		o = json_pack("{s:o, s:o}", "pool", p, "devices", arr);
	else {
		json_decref(arr);
		json_decref(p);
	}
	free(devs);
	if (o)
		*err = 0;
	return o;
}

/* Device names come from the ring file; escape them as Prometheus label
 * values need (backslash, quote, newline). */
static void put_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*s, f);
	}
}

static void put_val(FILE *f, double v)
{
	if (isnan(v))
		fputs("NaN", f);
	else if (v == floor(v) && fabs(v) < 1e15)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.6g", v);
}

static void put_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int node_pool_metrics(struct cs_pool *pool, const char *data_dir, struct node_jobs *jobs,
		      char **out, size_t *len)
{
	struct cs_stats st;
	struct node_dev_info *devs = NULL;
	char *buf = NULL;
	size_t blen = 0;
	int ret = cs_pool_stats(pool, &st);
	if (ret < 0)
		return ret;
	devs = calloc(NODE_DEV_MAX, sizeof(*devs));
	FILE *f = devs ? open_memstream(&buf, &blen) : NULL;
	if (!f) {
		free(devs);
		return -ENOMEM;
	}
	put_head(f, "cairn_pool_dedup_ratio", "gauge",
		 "Logical bytes per unique byte (deduplication).");
	fputs("cairn_pool_dedup_ratio ", f);
	put_val(f, node_ratio(st.logical_bytes, st.unique_bytes));
	fputc('\n', f);
	put_head(f, "cairn_pool_compression_ratio", "gauge",
		 "Unique bytes per stored byte (compression).");
	fputs("cairn_pool_compression_ratio ", f);
	put_val(f, node_ratio(st.unique_bytes, st.stored_bytes));
	fputc('\n', f);
	put_head(f, "cairn_pool_space_amplification", "gauge",
		 "Physical bytes per stored byte (redundancy and overhead).");
	fputs("cairn_pool_space_amplification ", f);
	put_val(f, node_ratio(st.physical_bytes, st.stored_bytes));
	fputc('\n', f);
	put_head(f, "cairn_pool_read_fallbacks_total", "counter",
		 "Chunk copies that failed to read or verify and were replaced by another "
		 "copy, since start.");
	fprintf(f, "cairn_pool_read_fallbacks_total %llu\n", (unsigned long long)st.read_fallbacks);
	put_head(f, "cairn_pool_reconstructs_total", "counter",
		 "Chunks of sealed stripes rebuilt from the other units on read, since start.");
	fprintf(f, "cairn_pool_reconstructs_total %llu\n", (unsigned long long)st.reconstructs);

	long n = devices_cached(pool, data_dir, devs);
	static const struct {
		const char *name, *help;
	} dm[] = {
	    {"cairn_device_present", "1 when the device folder is there, 0 when it is missing."},
	    {"cairn_device_used_bytes", "Bytes allocated under the device folder."},
	    {"cairn_device_free_bytes",
	     "Bytes free for cairn on the file system of the device folder."},
	    {"cairn_device_size_bytes", "Size of the file system of the device folder."},
	};
	for (size_t m = 0; n > 0 && m < sizeof(dm) / sizeof(dm[0]); m++) {
		put_head(f, dm[m].name, "gauge", dm[m].help);
		for (long i = 0; i < n; i++) {
			uint64_t v = m == 0   ? devs[i].present
				     : m == 1 ? devs[i].used_bytes
				     : m == 2 ? devs[i].free_bytes
					      : devs[i].size_bytes;
			fprintf(f, "%s{device=\"", dm[m].name);
			put_label(f, devs[i].name);
			fprintf(f, "\"} %llu\n", (unsigned long long)v);
		}
	}

	if (jobs) {
		bool running;
		double ratio;
		uint64_t done, total;
		char op[8] = "";
		int state =
		    node_job_progress(jobs, &running, &ratio, &done, &total, op, sizeof(op));
		put_head(f, "cairn_job_running", "gauge",
			 "1 while a maintenance job (fsck, gc, scrub, repair) runs.");
		fprintf(f, "cairn_job_running %d\n", running ? 1 : 0);
		if (state != 0) {
			put_head(f, "cairn_job_progress_ratio", "gauge",
				 "Progress of the current or last job's phase, 0 to 1.");
			fprintf(f, "cairn_job_progress_ratio{op=\"%s\"} ", op);
			put_val(f, ratio);
			fputc('\n', f);
			put_head(f, "cairn_job_done", "gauge",
				 "Work done in the current or last job's phase (bytes or items).");
			fprintf(f, "cairn_job_done{op=\"%s\"} %llu\n", op,
				(unsigned long long)done);
			put_head(f, "cairn_job_total", "gauge",
				 "Work of the current or last job's phase (0: not known yet).");
			fprintf(f, "cairn_job_total{op=\"%s\"} %llu\n", op,
				(unsigned long long)total);
		}
	}
	free(devs);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*len = blen;
	return 0;
}
