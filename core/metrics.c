/* core/metrics.c - request counters, latency histograms and gauges.
 *
 * Two fixed open-addressing tables hold the series: one keyed by (frontend,
 * op, status) for request counts, one keyed by (frontend, op) for bytes and
 * the latency histogram. Labels are static strings, so a slot keeps the
 * pointers. One small mutex guards both tables: recording is a hash, a few
 * string compares and some additions (well under a microsecond), which is
 * cheap next to an HTTP request; rendering copies the tables under the lock
 * and formats outside it, so a scrape never stalls requests for long.
 * Nothing on the recording path allocates. A full table drops the sample
 * and counts it in cairn_metrics_dropped_total (label sets are bounded by
 * the operations the code knows, so this only guards against a bug).
 */
#include "core/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_REQ_SLOTS 1024u /* (frontend, op, status) series; power of two */
#define METRICS_OP_SLOTS 512u	/* (frontend, op) series; power of two */
#define METRICS_GAUGES_MAX 64u

/* Upper bounds of the latency buckets in microseconds (0.5 ms .. 30 s),
 * with the "le" label Prometheus shows for each; +Inf is implicit. */
static const uint64_t bucket_us[] = {500,     1000,    2500,	5000,	  10000,
				     25000,   50000,   100000,	250000,	  500000,
				     1000000, 2500000, 5000000, 10000000, 30000000};
static const char *const bucket_le[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
					"0.025",  "0.05",  "0.1",    "0.25",  "0.5",
					"1",	  "2.5",   "5",	     "10",    "30"};
#define METRICS_BUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))
_Static_assert(sizeof(bucket_us) / sizeof(bucket_us[0]) == sizeof(bucket_le) / sizeof(bucket_le[0]),
	       "every bucket has its label");

struct req_slot {
	const char *frontend; /* NULL: free slot */
	const char *op;
	int status;
	uint64_t count;
};

struct op_slot {
	const char *frontend; /* NULL: free slot */
	const char *op;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t count;
	uint64_t sum_us;
	uint64_t buckets[METRICS_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
};

struct gauge {
	const char *name;
	const char *help;
	metrics_gauge_fn fn;
	void *arg;
};

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct req_slot req_tab[METRICS_REQ_SLOTS];
static struct op_slot op_tab[METRICS_OP_SLOTS];
static uint64_t dropped;
static struct gauge gauges[METRICS_GAUGES_MAX];
static unsigned ngauges;

static uint64_t hash_str(uint64_t h, const char *s)
{
	/* FNV-1a: the labels are short, so a simple hash is plenty. */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	h ^= 0xff; /* separator, so ("ab","c") and ("a","bc") differ */
	h *= 0x100000001b3ull;
	return h;
}

static bool same_label(const char *a, const char *b)
{
	return a == b || strcmp(a, b) == 0;
}

/* Finds or claims the slot of a series; NULL when the table is full.
 * Called with metrics_lock held. Linear probing: O(1) while sparse. */
static struct req_slot *req_find(const char *frontend, const char *op, int status)
{
	uint64_t h = hash_str(hash_str(0xcbf29ce484222325ull, frontend), op);
	h ^= (uint64_t)(unsigned)status * 0x9e3779b97f4a7c15ull;
	for (unsigned i = 0; i < METRICS_REQ_SLOTS; i++) {
		struct req_slot *s = &req_tab[(h + i) & (METRICS_REQ_SLOTS - 1)];
		if (!s->frontend) {
			s->frontend = frontend;
			s->op = op;
			s->status = status;
			return s;
		}
		if (s->status == status && same_label(s->frontend, frontend) &&
		    same_label(s->op, op))
			return s;
	}
	return NULL;
}

static struct op_slot *op_find(const char *frontend, const char *op)
{
	uint64_t h = hash_str(hash_str(0xcbf29ce484222325ull, frontend), op);
	for (unsigned i = 0; i < METRICS_OP_SLOTS; i++) {
		struct op_slot *s = &op_tab[(h + i) & (METRICS_OP_SLOTS - 1)];
		if (!s->frontend) {
			s->frontend = frontend;
			s->op = op;
			return s;
		}
		if (same_label(s->frontend, frontend) && same_label(s->op, op))
			return s;
	}
	return NULL;
}

void metrics_request(const char *frontend, const char *op, int status, uint64_t bytes_in,
		     uint64_t bytes_out, uint64_t usec)
{
	if (!frontend)
		frontend = "unknown";
	if (!op)
		op = "unknown";
	unsigned b = 0;
	while (b < METRICS_BUCKETS && usec > bucket_us[b])
		b++;

	pthread_mutex_lock(&metrics_lock);
	struct req_slot *rs = req_find(frontend, op, status);
	struct op_slot *os = op_find(frontend, op);
	if (rs)
		rs->count++;
	if (os) {
		os->count++;
		os->bytes_in += bytes_in;
		os->bytes_out += bytes_out;
		os->sum_us += usec;
		os->buckets[b]++;
	}
	if (!rs || !os)
		dropped++;
	pthread_mutex_unlock(&metrics_lock);
}

static bool valid_name(const char *name)
{
	if (!name || !*name)
		return false;
	for (const char *p = name; *p; p++) {
		char c = *p;
		bool alpha =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
		bool digit = c >= '0' && c <= '9';
		if (!alpha && !(digit && p != name))
			return false;
	}
	return true;
}

int metrics_gauge(const char *name, const char *help, metrics_gauge_fn fn, void *arg)
{
	int ret = 0;
	if (!valid_name(name) || !fn)
		return CAIRN_EINVAL;
	pthread_mutex_lock(&metrics_lock);
	for (unsigned i = 0; i < ngauges; i++) {
		if (strcmp(gauges[i].name, name) == 0) {
			ret = CAIRN_EEXISTS;
			goto out;
		}
	}
	if (ngauges >= METRICS_GAUGES_MAX) {
		ret = -ENOSPC;
		goto out;
	}
	gauges[ngauges++] =
	    (struct gauge){.name = name, .help = help ? help : "", .fn = fn, .arg = arg};
out:
	pthread_mutex_unlock(&metrics_lock);
	return ret;
}

/* Label values escape backslash, double quote and newline (format 0.0.4). */
static void put_label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			fputs("\\\\", f);
		else if (*v == '"')
			fputs("\\\"", f);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* HELP text escapes backslash and newline only. */
static void put_help(FILE *f, const char *name, const char *help, const char *type)
{
	fprintf(f, "# HELP %s ", name);
	for (; *help; help++) {
		if (*help == '\\')
			fputs("\\\\", f);
		else if (*help == '\n')
			fputs("\\n", f);
		else
			fputc(*help, f);
	}
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

static void put_fe_op(FILE *f, const char *frontend, const char *op)
{
	fputs("frontend=\"", f);
	put_label(f, frontend);
	fputs("\",op=\"", f);
	put_label(f, op);
	fputc('"', f);
}

static void put_double(FILE *f, double v)
{
	if (isnan(v))
		fputs("NaN", f);
	else if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", f);
	else
		fprintf(f, "%.17g", v);
}

static int cmp_req(const void *a, const void *b)
{
	const struct req_slot *x = a, *y = b;
	int c = strcmp(x->frontend, y->frontend);
	if (!c)
		c = strcmp(x->op, y->op);
	if (!c)
		c = (x->status > y->status) - (x->status < y->status);
	return c;
}

static int cmp_op(const void *a, const void *b)
{
	const struct op_slot *x = a, *y = b;
	int c = strcmp(x->frontend, y->frontend);
	return c ? c : strcmp(x->op, y->op);
}

int metrics_render(char **out, size_t *len)
{
	int ret = 0;
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = NULL;
	struct req_slot *reqs = malloc(sizeof(req_tab));
	struct op_slot *ops = malloc(sizeof(op_tab));
	struct gauge g[METRICS_GAUGES_MAX];
	size_t nreq = 0, nop = 0;
	unsigned ng;
	uint64_t drop;

	*out = NULL;
	*len = 0;
	if (!reqs || !ops) {
		ret = -ENOMEM;
		goto out;
	}
	/* Snapshot under the lock, compacting the used slots. */
	pthread_mutex_lock(&metrics_lock);
	for (unsigned i = 0; i < METRICS_REQ_SLOTS; i++)
		if (req_tab[i].frontend)
			reqs[nreq++] = req_tab[i];
	for (unsigned i = 0; i < METRICS_OP_SLOTS; i++)
		if (op_tab[i].frontend)
			ops[nop++] = op_tab[i];
	ng = ngauges;
	memcpy(g, gauges, sizeof(g[0]) * ng);
	drop = dropped;
	pthread_mutex_unlock(&metrics_lock);
	qsort(reqs, nreq, sizeof(*reqs), cmp_req);
	qsort(ops, nop, sizeof(*ops), cmp_op);

	f = open_memstream(&buf, &blen);
	if (!f) {
		ret = -errno;
		goto out;
	}

	put_help(f, "cairn_requests_total",
		 "Requests answered, by front end, operation and HTTP status.", "counter");
	for (size_t i = 0; i < nreq; i++) {
		fputs("cairn_requests_total{", f);
		put_fe_op(f, reqs[i].frontend, reqs[i].op);
		fprintf(f, ",status=\"%d\"} %llu\n", reqs[i].status,
			(unsigned long long)reqs[i].count);
	}

	put_help(f, "cairn_request_bytes_total",
		 "Request body bytes received, by front end and operation.", "counter");
	for (size_t i = 0; i < nop; i++) {
		fputs("cairn_request_bytes_total{", f);
		put_fe_op(f, ops[i].frontend, ops[i].op);
		fprintf(f, "} %llu\n", (unsigned long long)ops[i].bytes_in);
	}

	put_help(f, "cairn_response_bytes_total",
		 "Response body bytes sent, by front end and operation.", "counter");
	for (size_t i = 0; i < nop; i++) {
		fputs("cairn_response_bytes_total{", f);
		put_fe_op(f, ops[i].frontend, ops[i].op);
		fprintf(f, "} %llu\n", (unsigned long long)ops[i].bytes_out);
	}

	put_help(f, "cairn_request_duration_seconds",
		 "Time from request to answer, by front end and operation.", "histogram");
	for (size_t i = 0; i < nop; i++) {
		uint64_t cum = 0;
		for (unsigned b = 0; b <= METRICS_BUCKETS; b++) {
			cum += ops[i].buckets[b];
			fputs("cairn_request_duration_seconds_bucket{", f);
			put_fe_op(f, ops[i].frontend, ops[i].op);
			fprintf(f, ",le=\"%s\"} %llu\n",
				b < METRICS_BUCKETS ? bucket_le[b] : "+Inf",
				(unsigned long long)cum);
		}
		fputs("cairn_request_duration_seconds_sum{", f);
		put_fe_op(f, ops[i].frontend, ops[i].op);
		fprintf(f, "} %llu.%06llu\n", (unsigned long long)(ops[i].sum_us / 1000000),
			(unsigned long long)(ops[i].sum_us % 1000000));
		fputs("cairn_request_duration_seconds_count{", f);
		put_fe_op(f, ops[i].frontend, ops[i].op);
		fprintf(f, "} %llu\n", (unsigned long long)ops[i].count);
	}

	put_help(f, "cairn_metrics_dropped_total",
		 "Samples dropped because a metrics table was full.", "counter");
	fprintf(f, "cairn_metrics_dropped_total %llu\n", (unsigned long long)drop);

	/* Gauges are read outside the lock: a callback may take its own locks
	 * or read LMDB, and must not hold up request recording meanwhile. */
	for (unsigned i = 0; i < ng; i++) {
		double v = 0;
		if (g[i].fn(g[i].arg, &v) != 0)
			continue;
		put_help(f, g[i].name, g[i].help, "gauge");
		fprintf(f, "%s ", g[i].name);
		put_double(f, v);
		fputc('\n', f);
	}

	if (ferror(f)) {
		ret = -ENOMEM;
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		ret = -ENOMEM;
		goto out;
	}
	f = NULL;
	*out = buf;
	*len = blen;
	buf = NULL;
out:
	if (f)
		fclose(f);
	free(buf);
	free(reqs);
	free(ops);
	return ret;
}
