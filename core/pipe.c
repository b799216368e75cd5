/* core/pipe.c - the segment pipeline (core/pipe.h).
 *
 * The segments form a ring: [head, head + count) are full and queued, the
 * one at (head + count) % nsegs is being filled by the producer (cur_len
 * bytes so far). The producer copies outside the lock: the segment being
 * filled is its alone, and the consumer reads a queued one outside the lock
 * for the same reason. One condition variable serves both directions
 * (broadcast), which is plenty for one producer and one consumer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/pipe.h"

struct seg_pipe {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	seg_pipe_fn fn;
	void *arg;
	size_t seg_size;
	unsigned nsegs;
	unsigned head, count; /* full segments: [head, head + count) */
	size_t cur_len;	      /* bytes in the segment being filled: (head + count) % N */
	bool eof, abort, joined;
	int err;
	uint8_t **seg;
	size_t *seglen;
};

static void *seg_pipe_main(void *arg)
{
	struct seg_pipe *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		if (p->abort)
			break;
		if (!p->count) {
			if (p->eof)
				break;
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		const uint8_t *data = p->seg[p->head];
		size_t len = p->seglen[p->head];
		pthread_mutex_unlock(&p->mu);
		int rc = p->fn(p->arg, data, len);
		pthread_mutex_lock(&p->mu);
		if (rc < 0) {
			p->err = rc;
			break;
		}
		p->head = (p->head + 1) % p->nsegs;
		p->count--;
		pthread_cond_broadcast(&p->cv);
	}
	/* wake a producer waiting for room or a finish waiting for the drain */
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void seg_pipe_release(struct seg_pipe *p)
{
	if (p->seg)
		for (unsigned i = 0; i < p->nsegs; i++)
			free(p->seg[i]);
	free(p->seg);
	free(p->seglen);
	free(p);
}

int seg_pipe_new(size_t seg_size, unsigned nsegs, seg_pipe_fn fn, void *arg, struct seg_pipe **out)
{
	struct seg_pipe *p;
	int rc;

	*out = NULL;
	if (!seg_size || !nsegs || !fn)
		return -EINVAL;
	if (!(p = calloc(1, sizeof(*p))))
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	p->seg_size = seg_size;
	p->nsegs = nsegs;
	p->seg = calloc(nsegs, sizeof(*p->seg));
	p->seglen = calloc(nsegs, sizeof(*p->seglen));
	if (!p->seg || !p->seglen) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < nsegs; i++) {
		if (!(p->seg[i] = malloc(seg_size))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if ((rc = pthread_create(&p->thread, NULL, seg_pipe_main, p)) != 0) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		rc = -rc;
		goto out;
	}
	*out = p;
	p = NULL;
	rc = 0;
out:
	if (p)
		seg_pipe_release(p);
	return rc;
}

int seg_pipe_push(struct seg_pipe *p, const void *data, size_t len)
{
	const uint8_t *src = data;
	int rc;

	pthread_mutex_lock(&p->mu);
	while (len && !p->err) {
		if (p->count == p->nsegs) {
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		unsigned idx = (p->head + p->count) % p->nsegs;
		size_t n = p->seg_size - p->cur_len;
		if (n > len)
			n = len;
		/* the segment being filled is the producer's alone */
		pthread_mutex_unlock(&p->mu);
		memcpy(p->seg[idx] + p->cur_len, src, n);
		pthread_mutex_lock(&p->mu);
		p->cur_len += n;
		src += n;
		len -= n;
		if (p->cur_len == p->seg_size) {
			p->seglen[idx] = p->cur_len;
			p->cur_len = 0;
			p->count++;
			pthread_cond_broadcast(&p->cv);
		}
	}
	rc = p->err;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static void seg_pipe_join(struct seg_pipe *p)
{
	if (!p->joined) {
		pthread_join(p->thread, NULL);
		p->joined = true;
	}
}

int seg_pipe_finish(struct seg_pipe *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->cur_len && p->count == p->nsegs && !p->err)
		pthread_cond_wait(&p->cv, &p->mu);
	if (p->cur_len && !p->err) {
		unsigned idx = (p->head + p->count) % p->nsegs;
		p->seglen[idx] = p->cur_len;
		p->cur_len = 0;
		p->count++;
	}
	p->eof = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	seg_pipe_join(p);
	/* joined: the consumer no longer writes err */
	return p->err;
}

void seg_pipe_free(struct seg_pipe *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->abort = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	seg_pipe_join(p);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	seg_pipe_release(p);
}
