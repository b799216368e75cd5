/* node/serve.c - `cairn serve`: start-up, the ready line, graceful stop.
 *
 * Order matters: the power-loss log of a killed test run is replayed before
 * anything opens a device file; the pool opens before the users table is
 * touched; the block store opens on the pool (resyncing replicas that a
 * crash left with write intents) before the NBD server serves it; the
 * image registry opens on both (recovering uploads a stop interrupted); the
 * listeners come last (NBD, S3 with its system bucket, Glance, admin), so
 * no request meets a half-open node. Stopping goes the other way.
 * SIGINT and SIGTERM are blocked in every thread and taken by sigwait() on
 * the main thread, which then stops the listeners (finishing requests in
 * flight) before it closes the pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "blockstore/bs.h"
#ifdef CAIRN_HAVE_NBD
#include "blockstore/nbd/nbd_server.h"
#endif
#include "chunkstore/chunkstore.h"
#include "core/io.h"
#include "core/log.h"
#include "core/metrics.h"
#include "meta/meta.h"
#include "node/config.h"
#include "node/node.h"
#include "objstore/s3.h"
#include "registry/registry.h"

#define TAG "node"

/* ---- gauges ---- */

/* One cs_pool_stats() call serves every pool gauge of a scrape: the stats
 * are cached for a second so a scrape costs one read, not eight. */
static struct {
	pthread_mutex_t lock;
	struct cs_pool *pool;
	struct timespec at;
	bool valid;
	struct cs_stats st;
} gstate = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct pool_gauge {
	const char *name;
	const char *help;
	size_t off;
};

static const struct pool_gauge pool_gauges[] = {
    {"cairn_pool_logical_bytes",
     "Bytes of all objects as clients see them (manifest size x references).",
     offsetof(struct cs_stats, logical_bytes)},
    {"cairn_pool_unique_bytes", "Raw bytes of live chunks after deduplication.",
     offsetof(struct cs_stats, unique_bytes)},
    {"cairn_pool_stored_bytes", "Stored payload bytes of live chunks (after compression).",
     offsetof(struct cs_stats, stored_bytes)},
    {"cairn_pool_physical_bytes", "Bytes in stripe unit files on all devices.",
     offsetof(struct cs_stats, physical_bytes)},
    {"cairn_pool_chunks", "Live chunks.", offsetof(struct cs_stats, chunks)},
    {"cairn_pool_manifests", "Manifests (objects and other holders of chunk lists).",
     offsetof(struct cs_stats, manifests)},
    {"cairn_pool_stripes", "Stripes.", offsetof(struct cs_stats, stripes)},
    {"cairn_pool_commits", "Group transactions committed since start.",
     offsetof(struct cs_stats, commits)},
    {"cairn_pool_commit_requests", "Requests carried by those group transactions.",
     offsetof(struct cs_stats, commit_requests)},
};

static int pool_gauge_fn(void *arg, double *value)
{
	const struct pool_gauge *g = arg;
	struct timespec now;
	int ret = 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&gstate.lock);
	if (!gstate.pool) {
		ret = -1;
		goto out;
	}
	if (!gstate.valid || now.tv_sec - gstate.at.tv_sec >= 1) {
		ret = cs_pool_stats(gstate.pool, &gstate.st);
		gstate.valid = ret == 0;
		gstate.at = now;
		if (ret)
			goto out;
	}
	*value = (double)*(const uint64_t *)((const char *)&gstate.st + g->off);
out:
	pthread_mutex_unlock(&gstate.lock);
	return ret;
}

static int meta_gauge_fn(void *arg, double *value)
{
	bool want_used = arg != NULL;
	uint64_t used, size;
	int ret = -1;
	pthread_mutex_lock(&gstate.lock);
	if (gstate.pool && meta_usage(cs_pool_meta(gstate.pool), &used, &size) == 0) {
		*value = (double)(want_used ? used : size);
		ret = 0;
	}
	pthread_mutex_unlock(&gstate.lock);
	return ret;
}

static time_t start_time;

static int start_time_fn(void *arg, double *value)
{
	(void)arg;
	*value = (double)start_time;
	return 0;
}

static int io_bytes_fn(void *arg, double *value)
{
	*value = (double)(arg ? io_bytes_written() : io_bytes_read());
	return 0;
}

static void register_gauges(struct cs_pool *pool)
{
	pthread_mutex_lock(&gstate.lock);
	gstate.pool = pool;
	gstate.valid = false;
	pthread_mutex_unlock(&gstate.lock);
	static bool done;
	if (done)
		return;
	done = true;
	for (size_t i = 0; i < sizeof(pool_gauges) / sizeof(pool_gauges[0]); i++)
		if (metrics_gauge(pool_gauges[i].name, pool_gauges[i].help, pool_gauge_fn,
				  (void *)&pool_gauges[i]) != 0)
			log_warn(TAG, "gauge %s not registered", pool_gauges[i].name);
	if (metrics_gauge("cairn_meta_map_used_bytes", "LMDB map bytes in use.", meta_gauge_fn,
			  (void *)1) != 0 ||
	    metrics_gauge("cairn_meta_map_size_bytes", "LMDB map size (the metadata limit).",
			  meta_gauge_fn, NULL) != 0 ||
	    metrics_gauge("cairn_start_time_seconds", "Unix time the node started.", start_time_fn,
			  NULL) != 0 ||
	    metrics_gauge("cairn_device_written_bytes",
			  "Bytes written to device files (data, parity, headers) since start.",
			  io_bytes_fn, (void *)1) != 0 ||
	    metrics_gauge("cairn_device_read_bytes", "Bytes read from device files since start.",
			  io_bytes_fn, NULL) != 0)
		log_warn(TAG, "metadata gauges not registered");
}

static void unregister_pool(void)
{
	pthread_mutex_lock(&gstate.lock);
	gstate.pool = NULL;
	gstate.valid = false;
	pthread_mutex_unlock(&gstate.lock);
}

/* ---- helpers ---- */

/* "http://HOST:PORT" (or https) with the bound port (the configured one
 * may be 0). */
static void url_of(const char *scheme, const char *listen, uint16_t port, char *out, size_t len)
{
	char host[256];
	uint16_t p;
	if (node_split_listen(listen, host, sizeof(host), &p) != 0)
		snprintf(host, sizeof(host), "?");
	if (strchr(host, ':'))
		snprintf(out, len, "%s://[%s]:%u", scheme, host, port);
	else
		snprintf(out, len, "%s://%s:%u", scheme, host, port);
}

static int check_data_dir(const char *dir)
{
	struct stat st;
	int ret = io_mkdirs(dir, 0755);
	if (ret < 0) {
		fprintf(stderr, "cairn: data directory '%s' is not usable: %s\n", dir,
			cairn_strerror(ret));
		return ret;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "cairn: data directory '%s' is not a directory\n", dir);
		return -ENOTDIR;
	}
	if (access(dir, R_OK | W_OK | X_OK) != 0) {
		ret = -errno;
		fprintf(stderr, "cairn: data directory '%s' is not usable: %s\n", dir,
			strerror(errno));
		return ret;
	}
	return 0;
}

/* Env wins; else the file in DATA; else new ones. *first is set when they
 * are new: the caller writes the file (node_creds_write) only once the node
 * is up, so a start that fails never leaves credentials nobody was shown. */
static int load_root_creds(const char *data_dir, struct node_creds *c, bool *first, bool *from_env,
			   char *path, size_t pathlen)
{
	char err[512];
	int ret;
	*first = false;
	*from_env = false;
	snprintf(path, pathlen, "%s/%s", data_dir, NODE_CREDS_FILE);
	ret = node_creds_from_env(c, err, sizeof(err));
	if (ret == 0) {
		*from_env = true;
		return 0;
	}
	if (ret < 0) {
		fprintf(stderr, "cairn: %s\n", err);
		return ret;
	}
	ret = node_creds_read(path, c, err, sizeof(err));
	if (ret == 0)
		return 0;
	if (ret != -ENOENT) {
		fprintf(stderr, "cairn: cannot read the root credentials: %s\n", err);
		return ret;
	}
	ret = node_creds_generate(c);
	if (ret < 0) {
		fprintf(stderr, "cairn: cannot generate root credentials: %s\n",
			cairn_strerror(ret));
		return ret;
	}
	*first = true;
	return 0;
}

int node_data_lock(const char *data_dir, char *err, size_t errlen)
{
	char path[4096], pid[32] = "";
	snprintf(path, sizeof(path), "%s/cairn.lock", data_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
		return -e;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (e == EWOULDBLOCK)
			snprintf(err, errlen, "data directory %s is in use by another cairn%s%s%s",
				 data_dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
		else
			snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn(TAG, "cannot write the pid to %s", path); /* the lock still holds */
	return fd;
}

/* The host of nbd:// URLs: the NBD listen host, or loopback for a
 * wildcard listen (a client cannot connect to 0.0.0.0). */
static void nbd_url_host(const char *listen, char *out, size_t len)
{
	uint16_t p;
	if (node_split_listen(listen, out, len, &p) != 0 || !out[0] ||
	    strcmp(out, "0.0.0.0") == 0 || strcmp(out, "::") == 0 || strcmp(out, "*") == 0)
		snprintf(out, len, "127.0.0.1");
}

/* ---- main ---- */

int node_serve_main(int argc, char **argv)
{
	struct node_config cfg;
	struct node_serve_opts opts;
	struct node_creds creds;
	struct cs_pool *pool = NULL;
	struct s3_server *s3 = NULL;
	struct admin_server *admin = NULL;
	struct bs_store *bs = NULL;
	struct registry *reg = NULL;
	struct reg_server *glance = NULL;
	/* the ports web-download must never fetch: filled in as they bind,
	 * without gaps (the list ends at its first 0) */
	uint16_t own_ports[5] = {0};
	size_t n_own = 0;
	char tmp_dir[4096];
	const char *admin_token = NULL;
#ifdef CAIRN_HAVE_NBD
	struct nbd_server *nbd = NULL;
#endif
	uint16_t nbd_port = 0;
	char nbd_host[256] = "127.0.0.1";
	char err[600], path[4096], credpath[4096];
	bool first = false, from_env = false;
	int exit_code = 1, ret, lock_fd = -1;
	sigset_t sigs;

	memset(&cfg, 0, sizeof(cfg));
	memset(&creds, 0, sizeof(creds));
	ret = node_serve_args(argc, argv, &cfg, &opts, err, sizeof(err));
	if (opts.help) {
		node_serve_help(stdout);
		exit_code = 0;
		goto out;
	}
	if (ret < 0) {
		fprintf(stderr, "cairn serve: %s\n", err);
		exit_code = 2;
		goto out;
	}
	enum log_level lvl = LOG_INFO;
	if (log_parse_level(cfg.log_level, &lvl) == 0)
		log_set_level(lvl);
	start_time = time(NULL);

	/* Validate the environment's credentials before touching the disk. */
	ret = node_creds_from_env(&creds, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "cairn serve: %s\n", err);
		exit_code = 2;
		goto out;
	}
	/* A bad certificate or key fails here, named, before the disk is touched. */
	if (cfg.s3_tls_cert[0] &&
	    s3_tls_check(cfg.s3_tls_cert, cfg.s3_tls_key, err, sizeof(err)) < 0) {
		fprintf(stderr, "cairn: cannot serve S3 over HTTPS: %s\n", err);
		goto out;
	}
	if (check_data_dir(cfg.data_dir) < 0)
		goto out;
	lock_fd = node_data_lock(cfg.data_dir, err, sizeof(err));
	if (lock_fd < 0) {
		fprintf(stderr, "cairn: %s\n", err);
		goto out;
	}

	snprintf(path, sizeof(path), "%s/%s", cfg.data_dir, NODE_POWERLOSS_LOG);
	if (access(path, F_OK) == 0) {
		long n = io_powerloss_replay(path);
		if (n < 0) {
			fprintf(stderr, "cairn: cannot replay the power-loss log %s: %s\n", path,
				cairn_strerror((int)n));
			goto out;
		}
		log_warn(TAG, "replayed power-loss log %s: %ld unsynced writes reverted", path, n);
	}

	/* Block the stop signals before any thread starts, so every thread
	 * inherits the mask and only sigwait() below sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct cs_pool_opts popts = {
	    .data_dir = cfg.data_dir,
	    .devices = (uint32_t)cfg.devices,
	    .k = (uint32_t)cfg.k,
	    .m = (uint32_t)cfg.m,
	    .replicas = (uint32_t)cfg.replicas,
	    .unit_size = (uint32_t)cfg.unit_size,
	    .chunking = strcmp(cfg.chunking, "fixed") == 0 ? CS_CHUNK_FIXED : CS_CHUNK_FASTCDC,
	    .chunk_size = (uint32_t)cfg.chunk_size,
	    .chunk_avg = (uint32_t)cfg.chunk_avg,
	    .chunk_min = (uint32_t)cfg.chunk_min,
	    .chunk_max = (uint32_t)cfg.chunk_max,
	    .no_compress = strcmp(cfg.compression, "none") == 0,
	    .dedup_domain =
		strcmp(cfg.dedup_domain, "tenant") == 0 ? CS_DEDUP_TENANT : CS_DEDUP_GLOBAL,
	    .zstd_level = (int)cfg.zstd_level,
	    .gc_interval = cfg.gc_interval ? (int)cfg.gc_interval : -1,
	    .inline_max = (uint32_t)cfg.inline_max,
	    .part_power = (uint32_t)cfg.part_power,
	    .map_size = (size_t)cfg.map_size,
	    .workers = (unsigned)cfg.workers,
	    .powerloss_sim = opts.powerloss_sim,
	};
	ret = cs_pool_open(&popts, &pool);
	if (ret < 0) {
		fprintf(stderr, "cairn: cannot open the pool in %s: %s%s\n", cfg.data_dir,
			cairn_strerror(ret),
			ret == -ENOSYS || ret == -EPERM
			    ? " (is io_uring available? cairn needs Linux 5.10+ with io_uring)"
			    : "");
		goto out;
	}
	if (opts.powerloss_sim)
		log_warn(TAG, "power-loss simulation on: undo records go to %s", path);

	struct bs_opts bopts = {.data_dir = cfg.data_dir};
	ret = bs_open(pool, &bopts, &bs);
	if (ret < 0) {
		fprintf(stderr, "cairn: cannot open the block volume store in %s: %s\n",
			cfg.data_dir, cairn_strerror(ret));
		goto out;
	}
	snprintf(tmp_dir, sizeof(tmp_dir), "%s/tmp", cfg.data_dir);
	struct reg_opts ropts = {.max_image_size = cfg.reg_max_image_size,
				 .tmp_dir = tmp_dir,
				 .web_allow = cfg.reg_web_allow,
				 .own_ports = own_ports};
	ret = reg_open(pool, bs, &ropts, &reg);
	if (ret < 0) {
		fprintf(stderr, "cairn: cannot open the image registry in %s: %s\n", cfg.data_dir,
			cairn_strerror(ret));
		goto out;
	}
	nbd_url_host(cfg.nbd_listen, nbd_host, sizeof(nbd_host));
#ifdef CAIRN_HAVE_NBD
	struct nbd_server_config ncfg = {.listen = cfg.nbd_listen,
					 .workers = (unsigned)cfg.nbd_workers};
	ret = nbd_server_start(&ncfg, bs, &nbd, err, sizeof(err));
	if (ret < 0) {
		if (ret == -EADDRINUSE)
			fprintf(stderr,
				"cairn: cannot listen on %s for NBD: the address is already in "
				"use (another cairn or nbd server? use --nbd-listen)\n",
				cfg.nbd_listen);
		else
			fprintf(stderr, "cairn: cannot start the NBD server: %s\n", err);
		goto out;
	}
	nbd_port = nbd_server_port(nbd);
	if (nbd_port)
		own_ports[n_own++] = nbd_port;
#else
	log_warn(TAG, "this build has no NBD server: volumes are managed but not served");
#endif

	if (load_root_creds(cfg.data_dir, &creds, &first, &from_env, credpath, sizeof(credpath)) <
	    0)
		goto out;
	ret = s3_users_bootstrap(pool, creds.user, creds.password);
	if (ret < 0) {
		fprintf(stderr, "cairn: cannot set up the root user: %s%s\n", cairn_strerror(ret),
			ret == CAIRN_EEXISTS ? " (that access key id belongs to another user)"
					     : "");
		goto out;
	}

	struct s3_config s3cfg = {
	    .listen = cfg.s3_listen,
	    .region = cfg.s3_region,
	    .domain = cfg.s3_domain[0] ? cfg.s3_domain : NULL,
	    .max_connections = (unsigned)cfg.s3_max_connections,
	    .timeout_sec = (unsigned)cfg.s3_timeout,
	    .multipart_expiry_sec = (unsigned)cfg.s3_multipart_expiry,
	    .access_log = cfg.access_log,
	    .tls_cert = cfg.s3_tls_cert,
	    .tls_key = cfg.s3_tls_key,
	};
	ret = s3_server_start(&s3cfg, pool, &s3);
	if (ret < 0) {
		if (ret == -EADDRINUSE)
			fprintf(stderr,
				"cairn: cannot listen on %s for S3: the address is already "
				"in use (another cairn? use --s3-listen)\n",
				cfg.s3_listen);
		else
			fprintf(stderr, "cairn: cannot start the S3 server on %s: %s\n",
				cfg.s3_listen, cairn_strerror(ret));
		goto out;
	}
	own_ports[n_own++] = s3_server_port(s3);
	ret = s3_system_bucket_ensure(pool);
	if (ret < 0) {
		fprintf(stderr, "cairn: cannot create the system bucket %s: %s\n", S3_SYSTEM_BUCKET,
			cairn_strerror(ret));
		goto out;
	}

	/* The environment wins over the file: tests and operators keep the
	 * token out of config files. */
	admin_token = getenv("CAIRN_ADMIN_TOKEN");
	if (!admin_token || !admin_token[0])
		admin_token = cfg.reg_admin_token[0] ? cfg.reg_admin_token : NULL;
	struct reg_config rcfg = {.listen = cfg.reg_listen,
				  .admin_token = admin_token,
				  .public_url = cfg.reg_public_url[0] ? cfg.reg_public_url : NULL,
				  .max_connections = (unsigned)cfg.reg_max_connections,
				  .timeout_sec = (unsigned)cfg.reg_timeout,
				  .access_log = cfg.access_log};
	ret = reg_server_start(reg, &rcfg, &glance);
	if (ret < 0) {
		if (ret == -EADDRINUSE)
			fprintf(stderr,
				"cairn: cannot listen on %s for the Glance API: the address is "
				"already in use (another cairn or glance-api? use "
				"--registry-listen)\n",
				cfg.reg_listen);
		else
			fprintf(stderr, "cairn: cannot start the Glance API on %s: %s\n",
				cfg.reg_listen, cairn_strerror(ret));
		goto out;
	}
	own_ports[n_own++] = reg_server_port(glance);

	struct admin_config acfg = {.listen = cfg.api_listen,
				    .data_dir = cfg.data_dir,
				    .root_key = creds.user,
				    .access_log = cfg.access_log,
				    .scrub_interval = cfg.scrub_interval,
				    .bs = bs,
				    .nbd_host = nbd_host,
				    .nbd_port = nbd_port,
				    .reg = reg,
				    .admin_token = admin_token};
	ret = admin_start(&acfg, pool, &admin, err, sizeof(err));
	if (ret < 0) {
		if (ret == -EADDRINUSE)
			fprintf(stderr,
				"cairn: cannot listen on %s for the admin API: the address "
				"is already in use (another cairn? use --api-listen)\n",
				cfg.api_listen);
		else
			fprintf(stderr, "cairn: %s\n", err);
		goto out;
	}
	own_ports[n_own++] = admin_port(admin);
	register_gauges(pool);

	if (first) {
		ret = node_creds_write(credpath, &creds);
		if (ret < 0) {
			fprintf(stderr, "cairn: cannot write the root credentials to %s: %s\n",
				credpath, cairn_strerror(ret));
			goto out;
		}
	}
	if (first)
		printf(
		    "cairn: root credentials generated (shown only now; kept in %s, mode 0600):\n"
		    "  CAIRN_ROOT_USER=%s\n"
		    "  CAIRN_ROOT_PASSWORD=%s\n"
		    "  (use them as the S3 access key id and secret access key)\n",
		    credpath, creds.user, creds.password);
	else if (from_env)
		printf("cairn: root credentials from CAIRN_ROOT_USER/CAIRN_ROOT_PASSWORD\n");
	else
		printf("cairn: root credentials in %s\n", credpath);
	char s3url[300], apiurl[300], glanceurl[300];
	url_of(s3_server_tls(s3) ? "https" : "http", cfg.s3_listen, s3_server_port(s3), s3url,
	       sizeof(s3url));
	url_of("http", cfg.api_listen, admin_port(admin), apiurl, sizeof(apiurl));
	url_of("http", cfg.reg_listen, reg_server_port(glance), glanceurl, sizeof(glanceurl));
	printf("cairn ready: S3 %s, API %s, NBD %s%s%s:%u, Glance %s\n", s3url, apiurl,
	       strchr(nbd_host, ':') ? "nbd://[" : "nbd://", nbd_host,
	       strchr(nbd_host, ':') ? "]" : "", nbd_port, glanceurl);
	fflush(stdout);
	OPENSSL_cleanse(creds.password, sizeof(creds.password));

	int sig = 0;
	while (sigwait(&sigs, &sig) != 0)
		;
	log_info(TAG, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	/* A second signal kills at once, for an operator who will not wait. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	exit_code = 0;
out:
	/* /health turns 503 while S3 drains its requests in flight; the admin
	 * API goes last but one, the pool last. */
	admin_set_stopping(admin);
	reg_server_stop(glance); /* finishes uploads in flight (or puts them back to queued) */
	s3_server_stop(s3);
	admin_stop(admin); /* waits for a running job: fsck uses the block store */
#ifdef CAIRN_HAVE_NBD
	nbd_server_stop(nbd); /* closes every handle before the block store goes */
#endif
	reg_close(reg); /* waits for background imports */
	bs_close(bs);
	unregister_pool();
	cs_pool_close(pool);
	if (lock_fd >= 0)
		close(lock_fd);
	if (exit_code == 0 && !opts.help)
		printf("cairn stopped\n");
	OPENSSL_cleanse(&creds, sizeof(creds));
	node_config_free(&cfg);
	return exit_code;
}
