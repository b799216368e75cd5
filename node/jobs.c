/* node/jobs.c - maintenance jobs of the admin API: fsck, gc, scrub, repair.
 *
 * One job at a time runs on a thread of its own, so it goes on when the
 * CLI that started it disconnects; the admin handlers only start it and read
 * its state. The state (phase, done/total, report) is guarded by one mutex
 * that the job's progress callback takes for a few stores: cheap next to
 * the work between two calls. Shutdown (node_jobs_free) WAITS for a running
 * job: the chunk store's maintenance calls have no cancellation point, and
 * the pool must not close under them. An fsck (and a repair, with fix) also
 * runs bs_fsck over the block volumes when a block store is set
 * (node_jobs_set_bs): its report goes under "volumes" and counts towards
 * "clean".
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "blockstore/bs.h"
#include "chunkstore/chunkstore.h"
#include "core/fault.h"
#include "core/log.h"
#include "node/node.h"

#define TAG "job"

enum job_state { JOB_NONE = 0, JOB_RUNNING, JOB_DONE, JOB_FAILED };
static const char *const state_names[] = {"none", "running", "done", "failed"};

struct node_jobs {
	struct cs_pool *pool;
	pthread_mutex_t mu;
	pthread_t thread;
	bool joinable; /* a thread was started and not joined yet */
	/* the current or last job (guarded by mu) */
	enum job_state state;
	uint64_t id;
	char op[8];
	bool fix;
	char phase[64];
	uint64_t done, total;
	struct timespec t0, phase_t0; /* monotonic: job start, phase start */
	double elapsed;		      /* seconds, frozen when the job ends */
	time_t started, finished;     /* wall clock */
	int rc;
	struct cs_check_report rep;
	struct bs_store *bs;	     /* set once before any job: fsck checks volumes too */
	bool has_vrep;		     /* the last job checked volumes */
	struct bs_check_report vrep; /* its block store report */
	/* background scrub (node_jobs_scrub_every): guarded by mu */
	pthread_t sched;
	bool sched_on, sched_stop;
	pthread_cond_t sched_cv;
	uint64_t scrub_every; /* seconds */
	char stamp[4096];     /* DATA/scrub-last: unix time of the last started scrub */
};

static const char *const ops[] = {"fsck", "gc", "scrub", "repair"};

bool node_job_op_valid(const char *op)
{
	for (size_t i = 0; op && i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(op, ops[i]) == 0)
			return true;
	return false;
}

static double secs_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Test builds: CAIRN_FAULTS=node.job_slow holds every job 1.5 s before it
 * starts and 0.1 s per progress report, so tests can meet a running job. */
static void job_slow(long ms)
{
	if (FAULT("node.job_slow")) {
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static void job_progress(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	struct node_jobs *j = arg;
	pthread_mutex_lock(&j->mu);
	if (strncmp(j->phase, phase ? phase : "", sizeof(j->phase) - 1) != 0) {
		snprintf(j->phase, sizeof(j->phase), "%s", phase ? phase : "");
		clock_gettime(CLOCK_MONOTONIC, &j->phase_t0);
	}
	j->done = done;
	j->total = total;
	pthread_mutex_unlock(&j->mu);
	job_slow(100);
}

/* gc: free what is dead, move the live chunks out of stripes at most half
 * live, then free those stripes too. */
static int job_gc(struct node_jobs *j, struct cs_check_report *rep)
{
	struct cs_check_report c, g;
	int rc = cs_gc(j->pool, rep, job_progress, j);
	if (rc < 0)
		return rc;
	memset(&c, 0, sizeof(c));
	rc = cs_compact(j->pool, 50, &c, job_progress, j);
	if (rc < 0 || c.bytes == 0)
		return rc;
	rep->bytes += c.bytes;
	memset(&g, 0, sizeof(g));
	rc = cs_gc(j->pool, &g, job_progress, j);
	rep->freed_bytes += g.freed_bytes;
	rep->checked += g.checked;
	return rc;
}

/* Problems in a block store report: what is wrong, not the write intents
 * that writes in flight keep outstanding. */
static uint64_t vrep_problems(const struct bs_check_report *v)
{
	return v->missing_files + v->bad_records + v->orphan_dirs;
}

static void *job_main(void *arg)
{
	struct node_jobs *j = arg;
	struct cs_check_report rep;
	struct bs_check_report vrep;
	bool has_vrep = false;
	char op[8];
	bool fix;
	uint64_t id;
	double elapsed;
	int rc;

	memset(&rep, 0, sizeof(rep));
	pthread_mutex_lock(&j->mu);
	memcpy(op, j->op, sizeof(op));
	fix = j->fix;
	struct bs_store *bs = j->bs;
	id = j->id;
	pthread_mutex_unlock(&j->mu);
	job_slow(1500);
	memset(&vrep, 0, sizeof(vrep));
	if (strcmp(op, "fsck") == 0) {
		rc = cs_fsck(j->pool, fix, &rep, job_progress, j);
		if (rc == 0 && bs) {
			job_progress(j, "check volumes", 0, 0);
			rc = bs_fsck(bs, fix, &vrep);
			has_vrep = true;
			if (rc == 0 && vrep_problems(&vrep))
				log_warn(TAG,
					 "fsck: volumes: %llu missing replica files, %llu bad "
					 "records, %llu orphan folders, %llu fixed",
					 (unsigned long long)vrep.missing_files,
					 (unsigned long long)vrep.bad_records,
					 (unsigned long long)vrep.orphan_dirs,
					 (unsigned long long)vrep.fixed);
		}
	} else if (strcmp(op, "gc") == 0)
		rc = job_gc(j, &rep);
	else if (strcmp(op, "scrub") == 0)
		rc = cs_scrub(j->pool, &rep, job_progress, j);
	else {
		rc = cs_repair(j->pool, &rep, job_progress, j);
		/* A lost device also held volume replicas: rebuild them from the
		 * other copies (bs_fsck with fix copies every missing replica). */
		if (rc == 0 && bs) {
			job_progress(j, "repair volumes", 0, 0);
			rc = bs_fsck(bs, true, &vrep);
			has_vrep = true;
			if (rc == 0 && vrep.fixed)
				log_info(TAG, "repair: volumes: %llu replica files rebuilt",
					 (unsigned long long)vrep.fixed);
		}
	}
	rep.first_problem[sizeof(rep.first_problem) - 1] = '\0';

	pthread_mutex_lock(&j->mu);
	j->rc = rc;
	j->rep = rep;
	j->vrep = vrep;
	j->has_vrep = has_vrep;
	j->state = rc < 0 ? JOB_FAILED : JOB_DONE;
	j->finished = time(NULL);
	j->elapsed = elapsed = secs_since(&j->t0);
	pthread_mutex_unlock(&j->mu);
	if (rc < 0)
		log_err(TAG, "%s job %llu failed after %.1fs: %s", op, (unsigned long long)id,
			elapsed, cairn_strerror(rc));
	else
		log_info(TAG,
			 "%s job %llu done in %.1fs: %llu checked, %llu bytes, %llu problems, "
			 "%llu fixed, %llu unrecoverable, %llu bytes freed%s%s",
			 op, (unsigned long long)id, elapsed, (unsigned long long)rep.checked,
			 (unsigned long long)rep.bytes, (unsigned long long)rep.problems,
			 (unsigned long long)rep.fixed, (unsigned long long)rep.unrecoverable,
			 (unsigned long long)rep.freed_bytes,
			 rep.first_problem[0] ? "; first: " : "", rep.first_problem);
	return NULL;
}

int node_jobs_create(struct cs_pool *pool, struct node_jobs **out)
{
	struct node_jobs *j = calloc(1, sizeof(*j));
	*out = NULL;
	if (!j)
		return -ENOMEM;
	j->pool = pool;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->sched_cv, NULL);
	*out = j;
	return 0;
}

static time_t scrub_last(const char *path)
{
	FILE *f = fopen(path, "r");
	long long t = 0;
	if (f) {
		if (fscanf(f, "%lld", &t) != 1)
			t = 0;
		fclose(f);
	}
	return (time_t)t;
}

/* Starts a scrub whenever scrub_every seconds have passed since the last one
 * began (the stamp file survives restarts), unless another job is running
 * (then it tries again a minute later). */
static void *sched_main(void *arg)
{
	struct node_jobs *j = arg;
	pthread_mutex_lock(&j->mu);
	while (!j->sched_stop) {
		time_t now = time(NULL), last = scrub_last(j->stamp);
		if (last == 0 || last > now) {
			/* first start: the first scrub is one interval away */
			FILE *f = fopen(j->stamp, "w");
			if (f) {
				fprintf(f, "%lld\n", (long long)now);
				fclose(f);
			}
			last = now;
		}
		time_t due = last + (time_t)j->scrub_every;
		if (now >= due) {
			uint64_t id;
			char running[16];
			pthread_mutex_unlock(&j->mu);
			int rc = node_job_start(j, "scrub", false, &id, running, sizeof(running));
			pthread_mutex_lock(&j->mu);
			if (rc == 0) {
				log_info(TAG, "background scrub: job %llu (every %llu s)",
					 (unsigned long long)id,
					 (unsigned long long)j->scrub_every);
				FILE *f = fopen(j->stamp, "w");
				if (f) {
					fprintf(f, "%lld\n", (long long)now);
					fclose(f);
				}
				continue;
			}
			due = now + 60; /* another job runs: later */
		}
		struct timespec ts = {.tv_sec = (due - now > 60 ? now + 60 : due)};
		pthread_cond_timedwait(&j->sched_cv, &j->mu, &ts);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

int node_jobs_scrub_every(struct node_jobs *j, const char *data_dir, uint64_t seconds)
{
	if (!seconds)
		return 0;
	if ((size_t)snprintf(j->stamp, sizeof(j->stamp), "%s/scrub-last", data_dir) >=
	    sizeof(j->stamp))
		return -ENAMETOOLONG;
	j->scrub_every = seconds;
	int e = pthread_create(&j->sched, NULL, sched_main, j);
	if (e != 0)
		return -e;
	j->sched_on = true;
	return 0;
}

int node_job_start(struct node_jobs *j, const char *op, bool fix, uint64_t *id, char *running,
		   size_t runlen)
{
	int ret = 0;
	if (!node_job_op_valid(op))
		return CAIRN_EINVAL;
	pthread_mutex_lock(&j->mu);
	if (j->state == JOB_RUNNING) {
		snprintf(running, runlen, "%s", j->op);
		ret = CAIRN_EEXISTS;
		goto out;
	}
	if (j->joinable) {
		/* The last job's thread has ended (its state says so); reap it. */
		pthread_join(j->thread, NULL);
		j->joinable = false;
	}
	j->id++;
	snprintf(j->op, sizeof(j->op), "%s", op);
	j->fix = fix;
	j->phase[0] = '\0';
	j->done = j->total = 0;
	j->rc = 0;
	memset(&j->rep, 0, sizeof(j->rep));
	memset(&j->vrep, 0, sizeof(j->vrep));
	j->has_vrep = false;
	clock_gettime(CLOCK_MONOTONIC, &j->t0);
	j->phase_t0 = j->t0;
	j->started = time(NULL);
	j->finished = 0;
	j->elapsed = 0;
	j->state = JOB_RUNNING;
	int e = pthread_create(&j->thread, NULL, job_main, j);
	if (e != 0) {
		j->state = JOB_FAILED;
		j->rc = -e;
		j->finished = j->started;
		ret = -e;
		goto out;
	}
	j->joinable = true;
	*id = j->id;
	log_info(TAG, "%s job %llu started%s", op, (unsigned long long)j->id, fix ? " (fix)" : "");
out:
	pthread_mutex_unlock(&j->mu);
	return ret;
}

/* Bytes per second for the jobs that read or write data; items otherwise. */
static const char *rate_unit(const char *op)
{
	return strcmp(op, "scrub") == 0 || strcmp(op, "repair") == 0 ? "bytes" : "items";
}

struct json_t *node_job_json(struct node_jobs *j)
{
	json_t *o = NULL;
	pthread_mutex_lock(&j->mu);
	if (j->state == JOB_NONE)
		goto out;
	bool running = j->state == JOB_RUNNING;
	double elapsed = running ? secs_since(&j->t0) : j->elapsed;
	double pel = running ? secs_since(&j->phase_t0) : 0;
	double rate = running && pel > 0.05 ? (double)j->done / pel : 0;
	json_t *pct = j->total ? json_real(100.0 * (double)j->done / (double)j->total)
			       : (j->state == JOB_DONE ? json_real(100.0) : json_null());
	json_t *eta = running && j->total && rate > 0 && j->done <= j->total
			  ? json_integer((json_int_t)((double)(j->total - j->done) / rate + 0.5))
			  : (running ? json_null() : json_integer(0));
	o = json_pack("{s:I, s:s, s:b, s:s, s:s, s:I, s:I, s:o, s:f, s:s, s:o, s:I, s:o, s:f}",
		      "id", (json_int_t)j->id, "op", j->op, "fix", j->fix, "state",
		      state_names[j->state], "phase", j->phase, "done", (json_int_t)j->done,
		      "total", (json_int_t)j->total, "percent", pct, "rate", rate, "rate_unit",
		      rate_unit(j->op), "eta_seconds", eta, "started", (json_int_t)j->started,
		      "finished", j->finished ? json_integer((json_int_t)j->finished) : json_null(),
		      "elapsed_seconds", elapsed);
	if (!o)
		goto out;
	if (!running) {
		json_object_set_new(
		    o, "report",
		    json_pack(
			"{s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "checked",
			(json_int_t)j->rep.checked, "bytes", (json_int_t)j->rep.bytes, "problems",
			(json_int_t)j->rep.problems, "fixed", (json_int_t)j->rep.fixed,
			"unrecoverable", (json_int_t)j->rep.unrecoverable, "freed_bytes",
			(json_int_t)j->rep.freed_bytes, "first_problem", j->rep.first_problem));
		const struct bs_check_report *v = &j->vrep;
		if (j->has_vrep)
			json_object_set_new(
			    json_object_get(o, "report"), "volumes",
			    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "volumes",
				      (json_int_t)v->volumes, "extents", (json_int_t)v->extents,
				      "files_checked", (json_int_t)v->files_checked,
				      "missing_files", (json_int_t)v->missing_files, "bad_records",
				      (json_int_t)v->bad_records, "orphan_dirs",
				      (json_int_t)v->orphan_dirs, "intents", (json_int_t)v->intents,
				      "problems", (json_int_t)vrep_problems(v), "fixed",
				      (json_int_t)v->fixed));
		/* Clean: nothing found, or everything found was fixed. */
		json_object_set_new(
		    o, "clean",
		    json_boolean(j->state == JOB_DONE && j->rep.problems <= j->rep.fixed &&
				 j->rep.unrecoverable == 0 && vrep_problems(v) <= v->fixed));
	}
	if (j->state == JOB_FAILED)
		json_object_set_new(o, "error", json_string(cairn_strerror(j->rc)));
out:
	pthread_mutex_unlock(&j->mu);
	return o;
}

int node_job_progress(struct node_jobs *j, bool *running, double *ratio, uint64_t *done,
		      uint64_t *total, char *op, size_t oplen)
{
	pthread_mutex_lock(&j->mu);
	snprintf(op, oplen, "%s", j->op);
	*running = j->state == JOB_RUNNING;
	*done = j->done;
	*total = j->total;
	*ratio = j->total ? (double)j->done / (double)j->total : (j->state == JOB_DONE ? 1.0 : 0.0);
	int last = (int)j->state;
	pthread_mutex_unlock(&j->mu);
	return last;
}

void node_jobs_set_bs(struct node_jobs *j, struct bs_store *bs)
{
	pthread_mutex_lock(&j->mu);
	j->bs = bs;
	pthread_mutex_unlock(&j->mu);
}

void node_jobs_free(struct node_jobs *j)
{
	if (!j)
		return;
	if (j->sched_on) {
		pthread_mutex_lock(&j->mu);
		j->sched_stop = true;
		pthread_cond_broadcast(&j->sched_cv);
		pthread_mutex_unlock(&j->mu);
		pthread_join(j->sched, NULL);
	}
	pthread_mutex_lock(&j->mu);
	bool running = j->state == JOB_RUNNING, joinable = j->joinable;
	if (running)
		log_warn(TAG, "waiting for the running %s job (%s, %.0f%%) to finish", j->op,
			 j->phase, j->total ? 100.0 * (double)j->done / (double)j->total : 0.0);
	pthread_mutex_unlock(&j->mu);
	if (joinable)
		pthread_join(j->thread, NULL);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->sched_cv);
	free(j);
}
