/* tests/unit/test_metrics.c - core/metrics: recording and Prometheus text.
 *
 * The metrics state is process-wide and has no reset, so every test uses
 * its own frontend/op labels. Values are read back by parsing the rendered
 * text, as a scraper would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/metrics.h"

static char *render(void)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(metrics_render(&text, &len), 0);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	return text;
}

/* Finds the sample line whose series (name{labels}) is exactly `series` and
 * returns its value; NAN when absent. */
static double sample(const char *text, const char *series)
{
	size_t sl = strlen(series);
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		if (line[0] != '#' && strncmp(line, series, sl) == 0 && line[sl] == ' ')
			return strtod(line + sl + 1, NULL);
		line = nl ? nl + 1 : NULL;
	}
	return NAN;
}

static int count_lines_starting(const char *text, const char *prefix)
{
	int n = 0;
	size_t pl = strlen(prefix);
	for (const char *line = text; line && *line;) {
		if (strncmp(line, prefix, pl) == 0)
			n++;
		const char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
	return n;
}

static void test_metrics_counts_by_frontend_op_status(void **state)
{
	(void)state;
	metrics_request("t1", "PutObject", 200, 100, 0, 1000);
	metrics_request("t1", "PutObject", 200, 50, 0, 1000);
	metrics_request("t1", "PutObject", 403, 0, 300, 10);
	metrics_request("t1", "GetObject", 200, 0, 4096, 10);
	char *t = render();
	assert_true(
	    sample(t, "cairn_requests_total{frontend=\"t1\",op=\"PutObject\",status=\"200\"}") ==
	    2);
	assert_true(
	    sample(t, "cairn_requests_total{frontend=\"t1\",op=\"PutObject\",status=\"403\"}") ==
	    1);
	assert_true(
	    sample(t, "cairn_requests_total{frontend=\"t1\",op=\"GetObject\",status=\"200\"}") ==
	    1);
	assert_true(isnan(
	    sample(t, "cairn_requests_total{frontend=\"t1\",op=\"GetObject\",status=\"404\"}")));
	assert_true(sample(t, "cairn_request_bytes_total{frontend=\"t1\",op=\"PutObject\"}") ==
		    150);
	assert_true(sample(t, "cairn_response_bytes_total{frontend=\"t1\",op=\"PutObject\"}") ==
		    300);
	assert_true(sample(t, "cairn_response_bytes_total{frontend=\"t1\",op=\"GetObject\"}") ==
		    4096);
	free(t);
}

static void test_metrics_label_strings_compared_by_value(void **state)
{
	(void)state;
	/* Same labels from different buffers must land in one series. */
	char fe[8], op[16];
	strcpy(fe, "t2");
	strcpy(op, "HeadObject");
	metrics_request("t2", "HeadObject", 200, 0, 0, 1);
	metrics_request(fe, op, 200, 0, 0, 1);
	char *t = render();
	assert_true(
	    sample(t, "cairn_requests_total{frontend=\"t2\",op=\"HeadObject\",status=\"200\"}") ==
	    2);
	free(t);
}

static void test_metrics_histogram_buckets_boundaries(void **state)
{
	(void)state;
	/* 500 us is <= 0.0005 s; 501 us goes to 0.001; 30 s is <= 30;
	 * over 30 s only +Inf. */
	metrics_request("t3", "Op", 200, 0, 0, 0);
	metrics_request("t3", "Op", 200, 0, 0, 500);
	metrics_request("t3", "Op", 200, 0, 0, 501);
	metrics_request("t3", "Op", 200, 0, 0, 30000000);
	metrics_request("t3", "Op", 500, 0, 0, 30000001);
	char *t = render();
	const char *b = "cairn_request_duration_seconds_bucket{frontend=\"t3\",op=\"Op\",le=";
	char s[256];
	snprintf(s, sizeof(s), "%s\"0.0005\"}", b);
	assert_true(sample(t, s) == 2);
	snprintf(s, sizeof(s), "%s\"0.001\"}", b);
	assert_true(sample(t, s) == 3);
	snprintf(s, sizeof(s), "%s\"10\"}", b);
	assert_true(sample(t, s) == 3);
	snprintf(s, sizeof(s), "%s\"30\"}", b);
	assert_true(sample(t, s) == 4);
	snprintf(s, sizeof(s), "%s\"+Inf\"}", b);
	assert_true(sample(t, s) == 5);
	assert_true(sample(t, "cairn_request_duration_seconds_count{frontend=\"t3\",op=\"Op\"}") ==
		    5);
	double sum = sample(t, "cairn_request_duration_seconds_sum{frontend=\"t3\",op=\"Op\"}");
	assert_true(fabs(sum - 60.001002) < 1e-9);
	/* 15 bounded buckets + Inf, each once. */
	assert_int_equal(count_lines_starting(t, b), 16);
	free(t);
}

static void test_metrics_buckets_cumulative_and_ordered(void **state)
{
	(void)state;
	for (uint64_t us = 1; us < 40000000; us *= 3)
		metrics_request("t4", "Op", 200, 0, 0, us);
	char *t = render();
	const char *b = "cairn_request_duration_seconds_bucket{frontend=\"t4\",op=\"Op\",le=\"";
	double prev = -1, prev_le = 0;
	int n = 0;
	for (const char *p = strstr(t, b); p; p = strstr(p + 1, b)) {
		double le =
		    strncmp(p + strlen(b), "+Inf", 4) == 0 ? INFINITY : strtod(p + strlen(b), NULL);
		double v = strtod(strchr(p, '}') + 2, NULL);
		assert_true(le > prev_le);
		assert_true(v >= prev);
		prev = v;
		prev_le = le;
		n++;
	}
	assert_int_equal(n, 16);
	assert_true(prev ==
		    sample(t, "cairn_request_duration_seconds_count{frontend=\"t4\",op=\"Op\"}"));
	free(t);
}

static void test_metrics_help_and_type_once_per_family(void **state)
{
	(void)state;
	metrics_request("t5", "A", 200, 0, 0, 1);
	metrics_request("t5", "B", 200, 0, 0, 1);
	char *t = render();
	assert_int_equal(count_lines_starting(t, "# TYPE cairn_requests_total counter"), 1);
	assert_int_equal(count_lines_starting(t, "# HELP cairn_requests_total "), 1);
	assert_int_equal(count_lines_starting(t, "# TYPE cairn_request_duration_seconds histogram"),
			 1);
	assert_int_equal(count_lines_starting(t, "# TYPE cairn_request_bytes_total counter"), 1);
	assert_int_equal(count_lines_starting(t, "# TYPE cairn_response_bytes_total counter"), 1);
	/* The text ends with a newline and every sample line has a value. */
	assert_int_equal(t[strlen(t) - 1], '\n');
	free(t);
}

static void test_metrics_label_escaping(void **state)
{
	(void)state;
	metrics_request("t6", "we\"ird\\op\nx", 200, 0, 0, 1);
	char *t = render();
	assert_true(sample(t, "cairn_requests_total{frontend=\"t6\",op=\"we\\\"ird\\\\op\\nx\","
			      "status=\"200\"}") == 1);
	free(t);
}

static int gauge_val(void *arg, double *v)
{
	*v = *(double *)arg;
	return 0;
}

static int gauge_skip(void *arg, double *v)
{
	(void)arg;
	*v = 1;
	return -1;
}

static void test_metrics_gauges_read_at_scrape(void **state)
{
	(void)state;
	static double val = 42;
	assert_int_equal(metrics_gauge("cairn_test_gauge_bytes", "A test gauge.", gauge_val, &val),
			 0);
	assert_int_equal(metrics_gauge("cairn_test_gauge_skipped", "Skipped.", gauge_skip, NULL),
			 0);
	char *t = render();
	assert_true(sample(t, "cairn_test_gauge_bytes") == 42);
	assert_non_null(strstr(t, "# HELP cairn_test_gauge_bytes A test gauge.\n"
				  "# TYPE cairn_test_gauge_bytes gauge\n"));
	/* A callback returning non-zero leaves the gauge out entirely. */
	assert_null(strstr(t, "cairn_test_gauge_skipped"));
	free(t);
	val = 1e15 + 1; /* exact integers survive formatting */
	t = render();
	assert_true(sample(t, "cairn_test_gauge_bytes") == 1e15 + 1);
	free(t);
}

static void test_metrics_gauge_rejects_bad_and_duplicate(void **state)
{
	(void)state;
	static double v = 0;
	assert_int_equal(metrics_gauge("9starts_with_digit", "x", gauge_val, &v), CAIRN_EINVAL);
	assert_int_equal(metrics_gauge("has-dash", "x", gauge_val, &v), CAIRN_EINVAL);
	assert_int_equal(metrics_gauge("", "x", gauge_val, &v), CAIRN_EINVAL);
	assert_int_equal(metrics_gauge("cairn_ok_name", "x", NULL, &v), CAIRN_EINVAL);
	assert_int_equal(metrics_gauge("cairn_dup_gauge", "x", gauge_val, &v), 0);
	assert_int_equal(metrics_gauge("cairn_dup_gauge", "x", gauge_val, &v), CAIRN_EEXISTS);
}

static void test_metrics_gauge_limit_64(void **state)
{
	(void)state;
	static double v = 0;
	static char names[80][32];
	int ok = 0, full = 0;
	for (int i = 0; i < 80; i++) {
		snprintf(names[i], sizeof(names[i]), "cairn_fill_%d", i);
		int r = metrics_gauge(names[i], "fill", gauge_val, &v);
		if (r == 0)
			ok++;
		else if (r == -ENOSPC)
			full++;
	}
	/* Earlier tests registered 3 gauges; the table holds 64 in all. */
	assert_int_equal(ok, 64 - 3);
	assert_int_equal(full, 80 - ok);
}

#define THREADS 4
#define PER_THREAD 20000

static void *hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < PER_THREAD; i++)
		metrics_request("t7", (i & 1) ? "Odd" : "Even", 200, 1, 2, (uint64_t)i);
	return NULL;
}

static void test_metrics_concurrent_recording_exact(void **state)
{
	(void)state;
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, NULL), 0);
	/* Render concurrently too: it must not tear or deadlock. */
	for (int i = 0; i < 5; i++)
		free(render());
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	char *t = render();
	assert_true(sample(t, "cairn_requests_total{frontend=\"t7\",op=\"Odd\",status=\"200\"}") ==
		    THREADS * PER_THREAD / 2);
	assert_true(sample(t, "cairn_requests_total{frontend=\"t7\",op=\"Even\",status=\"200\"}") ==
		    THREADS * PER_THREAD / 2);
	assert_true(sample(t, "cairn_request_bytes_total{frontend=\"t7\",op=\"Odd\"}") ==
		    THREADS * PER_THREAD / 2);
	assert_true(sample(t, "cairn_response_bytes_total{frontend=\"t7\",op=\"Even\"}") ==
		    THREADS * PER_THREAD);
	assert_true(sample(t, "cairn_metrics_dropped_total") == 0);
	free(t);
}

static void test_metrics_full_table_drops_and_counts(void **state)
{
	(void)state;
	/* 600 distinct ops overflow the 512-slot (frontend, op) table. */
	static char ops[600][16];
	for (int i = 0; i < 600; i++) {
		snprintf(ops[i], sizeof(ops[i]), "op%d", i);
		metrics_request("t8", ops[i], 200, 0, 0, 1);
	}
	char *t = render();
	double d = sample(t, "cairn_metrics_dropped_total");
	assert_true(d > 0);
	assert_true(d <= 600);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_metrics_counts_by_frontend_op_status),
	    cmocka_unit_test(test_metrics_label_strings_compared_by_value),
	    cmocka_unit_test(test_metrics_histogram_buckets_boundaries),
	    cmocka_unit_test(test_metrics_buckets_cumulative_and_ordered),
	    cmocka_unit_test(test_metrics_help_and_type_once_per_family),
	    cmocka_unit_test(test_metrics_label_escaping),
	    cmocka_unit_test(test_metrics_gauges_read_at_scrape),
	    cmocka_unit_test(test_metrics_gauge_rejects_bad_and_duplicate),
	    cmocka_unit_test(test_metrics_gauge_limit_64),
	    cmocka_unit_test(test_metrics_concurrent_recording_exact),
	    cmocka_unit_test(test_metrics_full_table_drops_and_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
