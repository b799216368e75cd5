/* core/metrics.h - process-wide counters and histograms in Prometheus form.
 *
 * Front ends record each request once it is answered; gauges (store bytes,
 * map usage) are read through callbacks when /metrics is scraped. Every
 * function is thread-safe and allocation-free on the recording path.
 */
#ifndef CAIRN_CORE_METRICS_H
#define CAIRN_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Records one answered request of a front end ("s3", "admin", later "nbd",
 * "registry"): its operation name (S3 action, e.g. "PutObject"; a static
 * string), HTTP status, body bytes in and out, and latency in microseconds. */
void metrics_request(const char *frontend, const char *op, int status, uint64_t bytes_in,
		     uint64_t bytes_out, uint64_t usec);

/* A gauge read at scrape time: fn fills *value; return non-zero to skip. */
typedef int (*metrics_gauge_fn)(void *arg, double *value);
/* name and help are static strings; up to 64 gauges. */
int metrics_gauge(const char *name, const char *help, metrics_gauge_fn fn, void *arg) CAIRN_WUR;

/* Renders every metric in Prometheus text format 0.0.4 into a malloc'd
 * buffer (*out, caller frees). */
int metrics_render(char **out, size_t *len) CAIRN_WUR;

#endif
