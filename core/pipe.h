/* core/pipe.h - a segment pipeline: one stream split over two threads.
 *
 * A bounded queue of nsegs fixed-size segments (seg_size bytes each), filled
 * by one producer thread and drained in order by one consumer thread that
 * seg_pipe_new starts. The producer copies bytes in with seg_pipe_push; each
 * full segment is handed to the consumer, which runs fn(arg, data, len) on
 * it. The producer blocks while all segments are full, so memory stays at
 * nsegs * seg_size. The first error fn returns sticks: the consumer stops,
 * and that error is returned by every later seg_pipe_push/seg_pipe_finish.
 * seg_pipe_finish queues the last partial segment (if any), waits for the
 * drain and joins the consumer. seg_pipe_free aborts a consumer still running
 * (queued segments are dropped), joins it and frees everything.
 *
 * fn runs only on the consumer thread, one segment at a time, in order; the
 * state it touches is the consumer's alone until seg_pipe_finish or
 * seg_pipe_free returned. Queueing a segment and taking it go through the
 * pipeline's lock, so whatever the producer wrote before a push is visible
 * to fn for that push's segments. Exactly one producer thread per pipeline.
 */
#ifndef CAIRN_CORE_PIPE_H
#define CAIRN_CORE_PIPE_H

#include <stddef.h>
#include <stdint.h>

struct seg_pipe;

/* Runs on the consumer thread for each segment; 0 or a negative code. */
typedef int (*seg_pipe_fn)(void *arg, const uint8_t *data, size_t len);

/* Allocates the segments and starts the consumer. 0, -ENOMEM or the
 * negated pthread_create error; *out is NULL on failure. */
int seg_pipe_new(size_t seg_size, unsigned nsegs, seg_pipe_fn fn, void *arg, struct seg_pipe **out);

/* Queues len bytes (copied); blocks while the queue is full. Returns 0, or
 * the consumer's first error once it failed (the rest is not queued). */
int seg_pipe_push(struct seg_pipe *p, const void *data, size_t len);

/* Queues the last partial segment, waits for the consumer to drain and
 * joins it; returns its first error or 0. Call once; then only free. */
int seg_pipe_finish(struct seg_pipe *p);

/* Aborts the consumer if still running, joins it, frees. NULL is a no-op. */
void seg_pipe_free(struct seg_pipe *p);

#endif
