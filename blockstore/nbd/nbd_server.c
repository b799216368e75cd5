/* blockstore/nbd/nbd_server.c - the NBD server (see nbd_server.h).
 *
 * Threads and ownership:
 * - the listener thread accepts, refuses past max_conns, starts one reader
 *   thread per connection and reaps (joins, frees) finished ones;
 * - a connection's reader runs the handshake (blocking I/O, 1 s receive
 *   ticks, a deadline of handshake_timeout), then reads request headers and
 *   WRITE payloads, charges the volume's QoS bucket (sleeping in the reader,
 *   so a throttled volume never holds a worker) and queues the request,
 *   or runs it itself when it is the only one in flight (queue depth 1:
 *   no hand-off to a worker, see conn_inline);
 * - `workers` threads, each with its own io_ctx, pop requests, call bs_*,
 *   and hand the reply to the connection's reply queue.
 * Replies: whichever worker finds the connection's reply queue idle sends
 * it, without blocking (MSG_DONTWAIT); when the client's socket is full the
 * rest stays queued and the connection's reader, which waits in poll(2) on
 * the socket and an eventfd, sends it as the socket drains. So no worker
 * ever waits for a client, and a client that stops reading for
 * CONN_SEND_TIMEOUT_S is dropped.
 * A connection (struct nbd_conn) lives until its reader has seen every
 * request it queued answered (inflight == 0 and no sender) and exited; the
 * listener (or nbd_server_stop) then joins and frees it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "blockstore/bs.h"
#include "blockstore/nbd/nbd_proto.h"
#include "blockstore/nbd/nbd_server.h"
#include "core/fault.h"
#include "core/io.h"
#include "core/log.h"
#include "core/metrics.h"

#define TAG "nbd"

#define CONN_MAX_INFLIGHT 64	      /* requests queued or running per connection */
#define CONN_MAX_BYTES (64u << 20)    /* buffer bytes held by them */
#define CONN_RBUF 65536		      /* receive buffer: headers and small payloads */
#define CONN_TICK_MS 1000	      /* idle wait: revocation and stop polls */
#define STOP_GRACE_MS 5000	      /* stop: how long replies in flight may take */
#define CONN_STALL_S 30		      /* a request may stall this long mid-way */
#define CONN_SEND_TIMEOUT_S 30	      /* a reply that makes no progress this long: drop */
#define CONN_CACHE_MAX 8	      /* request objects kept for reuse per connection */
#define CONN_CACHE_BUF (256u << 10)   /* ... with buffers up to this size */
#define BS_EXTENTS_MAX 1024	      /* extents in one BLOCK_STATUS reply */
#define WORKER_IO_DEPTH 64	      /* io_uring entries per worker */
#define REPLY_HDR_MAX (26 + 64)	      /* longest reply header: error chunk with message */
#define QOS_MAX_SLEEP_NS 100000000ull /* throttle waits recheck stop/revocation this often */

/* Process-wide counters behind the gauges (one set for every server). */
static atomic_ullong g_conns, g_errors, g_read_bytes, g_written_bytes, g_requests;
static pthread_once_t g_metrics_once = PTHREAD_ONCE_INIT;

struct nbd_server;
struct nbd_conn;

/* A per-volume token bucket shared by every connection of the volume. */
struct nbd_qos {
	struct nbd_qos *next; /* srv->qos, under srv->lock */
	unsigned refs;	      /* under srv->lock */
	char name[VOL_NAME_MAX + 1];
	pthread_mutex_t lock;
	double io_tokens, byte_tokens;
	uint64_t last_ns;
};

/* One request from header to reply. */
struct nreq {
	struct nreq *next; /* work queue, reply queue or free cache */
	struct nbd_conn *c;
	struct nbd_req r;
	uint32_t err; /* NBD_E* answer (0: success) */
	uint8_t *buf; /* READ/WRITE data, BLOCK_STATUS reply (io_alloc) */
	size_t cap;   /* buf's size */
	uint8_t hdr[REPLY_HDR_MAX];
	size_t hdrlen;
	const void *data; /* reply payload after hdr */
	size_t datalen;
	size_t sent; /* bytes of hdr + data sent so far */
	uint64_t t0_ns;
};

struct nbd_conn {
	struct nbd_conn *next; /* srv->conns, under srv->lock */
	struct nbd_server *srv;
	int fd;
	int efd; /* eventfd: wakes the reader when output is blocked */
	pthread_t thread;
	atomic_bool done; /* the reader has finished: join and free */
	char peer[64];
	struct bs_handle *h;
	struct nbd_qos *qos;
	struct nbd_session sess;
	struct io_ctx *ioctx; /* the reader's, for requests it runs itself */
	bool no_ioctx;	      /* creating it failed: never again */
	/* receive buffer, reader only */
	uint8_t *rbuf;
	size_t rpos, rlen;
	/* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* inflight dropped, sender finished, blocked, dead */
	unsigned inflight;
	size_t inflight_bytes;
	bool sending;	      /* a thread is sending the reply queue */
	bool blocked;	      /* the socket is full: the reader sends on POLLOUT */
	uint64_t progress_ns; /* last time a blocked send moved */
	int last_outq;	      /* bytes the socket held then (SIOCOUTQ) */
	bool dead;	      /* a send failed: nothing more goes out */
	struct nreq *rq_head, *rq_tail;
	struct nreq *cache;
	unsigned ncache;
	struct nbd_hs hs; /* handshake state (~37 KiB), reader only */
};

struct nbd_server {
	struct bs_store *bs;
	unsigned nworkers, max_conns, hs_timeout;
	int lfd;
	uint16_t port;
	atomic_bool stopping;
	pthread_t listener;
	bool listener_started;
	pthread_mutex_t lock; /* conns, nconns, qos */
	struct nbd_conn *conns;
	unsigned nconns;
	struct nbd_qos *qos;
	/* work queue */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct nreq *qhead, *qtail;
	bool wstop;
	pthread_t *workers;
	unsigned nstarted;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- metrics ---- */

static int gauge_read(void *arg, double *value)
{
	*value = (double)atomic_load((atomic_ullong *)arg);
	return 0;
}

static void metrics_init(void)
{
	/* Gauges are process-wide and never unregistered: register them once. */
	if (metrics_gauge("cairn_nbd_connections", "Open NBD connections.", gauge_read, &g_conns) <
		0 ||
	    metrics_gauge("cairn_nbd_requests_total", "NBD requests answered.", gauge_read,
			  &g_requests) < 0 ||
	    metrics_gauge("cairn_nbd_errors_total", "NBD requests answered with an error.",
			  gauge_read, &g_errors) < 0 ||
	    metrics_gauge("cairn_nbd_read_bytes_total", "Bytes read by NBD clients.", gauge_read,
			  &g_read_bytes) < 0 ||
	    metrics_gauge("cairn_nbd_written_bytes_total", "Bytes written by NBD clients.",
			  gauge_read, &g_written_bytes) < 0)
		log_warn(TAG, "cannot register the NBD gauges");
}

static const char *op_name(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ:
		return "read";
	case NBD_CMD_WRITE:
		return "write";
	case NBD_CMD_DISC:
		return "disc";
	case NBD_CMD_FLUSH:
		return "flush";
	case NBD_CMD_TRIM:
		return "trim";
	case NBD_CMD_CACHE:
		return "cache";
	case NBD_CMD_WRITE_ZEROES:
		return "write_zeroes";
	case NBD_CMD_BLOCK_STATUS:
		return "block_status";
	default:
		return "unknown";
	}
}

/* ---- QoS ---- */

static int conn_poll(struct nbd_conn *c, bool want_in, int ms);

static struct nbd_qos *qos_get(struct nbd_server *srv, const char *name)
{
	struct nbd_qos *q;
	pthread_mutex_lock(&srv->lock);
	for (q = srv->qos; q; q = q->next)
		if (strcmp(q->name, name) == 0) {
			q->refs++;
			goto out;
		}
	q = calloc(1, sizeof(*q));
	if (!q)
		goto out;
	snprintf(q->name, sizeof(q->name), "%s", name);
	pthread_mutex_init(&q->lock, NULL);
	q->refs = 1;
	q->last_ns = mono_ns();
	q->next = srv->qos;
	srv->qos = q;
out:
	pthread_mutex_unlock(&srv->lock);
	return q;
}

static void qos_put(struct nbd_server *srv, struct nbd_qos *q)
{
	struct nbd_qos **pp;
	if (!q)
		return;
	pthread_mutex_lock(&srv->lock);
	if (--q->refs == 0) {
		for (pp = &srv->qos; *pp; pp = &(*pp)->next)
			if (*pp == q) {
				*pp = q->next;
				break;
			}
		pthread_mutex_destroy(&q->lock);
		free(q);
	}
	pthread_mutex_unlock(&srv->lock);
}

/* Takes one I/O and `bytes` bytes from the volume's buckets, sleeping until
 * they hold enough. The limits are re-read on every refill so a change
 * applies at once. Burst: a tenth of a second of the rate, or one request if
 * that is more. Returns 0, or -ESHUTDOWN when the server stops or the
 * attachment is revoked while waiting. */
static int qos_charge(struct nbd_conn *c, uint64_t bytes)
{
	struct nbd_qos *q = c->qos;
	for (;;) {
		uint64_t iops, bps;
		double wait = 0;
		bs_handle_qos(c->h, &iops, &bps);
		if (!q || (!iops && !bps))
			return 0;
		pthread_mutex_lock(&q->lock);
		uint64_t now = mono_ns();
		double dt = (double)(now - q->last_ns) / 1e9;
		q->last_ns = now;
		if (iops) {
			double cap = (double)iops / 10 > 1 ? (double)iops / 10 : 1;
			q->io_tokens += dt * (double)iops;
			if (q->io_tokens > cap)
				q->io_tokens = cap;
			if (q->io_tokens < 1)
				wait = (1 - q->io_tokens) / (double)iops;
		}
		if (bps) {
			double cap =
			    (double)bps / 10 > (double)bytes ? (double)bps / 10 : (double)bytes;
			q->byte_tokens += dt * (double)bps;
			if (q->byte_tokens > cap)
				q->byte_tokens = cap;
			if (q->byte_tokens < (double)bytes) {
				double w = ((double)bytes - q->byte_tokens) / (double)bps;
				wait = w > wait ? w : wait;
			}
		}
		if (wait <= 0) {
			if (iops)
				q->io_tokens -= 1;
			if (bps)
				q->byte_tokens -= (double)bytes;
			pthread_mutex_unlock(&q->lock);
			return 0;
		}
		pthread_mutex_unlock(&q->lock);
		uint64_t ns = (uint64_t)(wait * 1e9) + 1;
		if (ns > QOS_MAX_SLEEP_NS)
			ns = QOS_MAX_SLEEP_NS;
		if (ns < 1000000) {
			struct timespec ts = {.tv_nsec = (long)ns};
			nanosleep(&ts, NULL);
		} else {
			/* Sleeps, but keeps sending replies the socket held back. */
			conn_poll(c, false, (int)(ns / 1000000));
		}
		if (atomic_load(&c->srv->stopping) || bs_handle_revoked(c->h))
			return -ESHUTDOWN;
	}
}

/* ---- socket I/O ---- */

/* Sends every byte of iov[0, n) (modified), blocking (the handshake's
 * replies: small, and the socket has SO_SNDTIMEO). 0 or -errno. */
static int send_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		}
		size_t left = (size_t)w;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

/* Sends what is left of q's reply without blocking: 0 when all of it went,
 * 1 when the socket is full (q->sent says how far it got), or -errno. */
static int send_nb(int fd, struct nreq *q)
{
	size_t total = q->hdrlen + q->datalen;
	while (q->sent < total) {
		struct iovec iov[2];
		int n = 0;
		if (q->sent < q->hdrlen)
			iov[n++] = (struct iovec){q->hdr + q->sent, q->hdrlen - q->sent};
		if (q->datalen) {
			size_t d = q->sent > q->hdrlen ? q->sent - q->hdrlen : 0;
			iov[n++] = (struct iovec){(uint8_t *)q->data + d, q->datalen - d};
		}
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t w = FAULT("nbd.send") ? (errno = EPIPE, -1)
					      : sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			return -errno;
		}
		q->sent += (size_t)w;
	}
	return 0;
}

static void nreq_done_locked(struct nbd_conn *c, struct nreq *q, bool sent);

static void conn_wake(struct nbd_conn *c)
{
	uint64_t one = 1;
	ssize_t w = write(c->efd, &one, sizeof(one));
	(void)w; /* a full counter already means "wake up" */
}

/* Sends the reply queue in order until it is empty or the socket is full.
 * Called with c->lock held and c->sending claimed; returns with the lock
 * held and sending released. A request leaves the queue only once all of
 * its reply went (or the connection died). */
static void conn_drain_locked(struct nbd_conn *c)
{
	struct nreq *p;
	while ((p = c->rq_head) != NULL && !c->blocked) {
		bool dead = c->dead;
		size_t before = p->sent;
		pthread_mutex_unlock(&c->lock);
		int ret = dead ? -EPIPE : send_nb(c->fd, p);
		pthread_mutex_lock(&c->lock);
		if (p->sent != before)
			c->progress_ns = mono_ns();
		if (ret == 1) {
			/* The reader takes over when the socket drains. */
			if (p->sent == before)
				c->progress_ns = mono_ns(); /* the stall starts now */
			c->blocked = true;
			conn_wake(c);
			break;
		}
		if (ret < 0 && !c->dead) {
			log_info(TAG, "%s: sending a reply: %s; closing", c->peer,
				 cairn_strerror(ret));
			c->dead = true;
			/* Wakes the reader, which closes the connection. */
			shutdown(c->fd, SHUT_RDWR);
		}
		c->rq_head = p->next;
		if (!c->rq_head)
			c->rq_tail = NULL;
		nreq_done_locked(c, p, ret == 0);
	}
	c->sending = false;
	pthread_cond_broadcast(&c->cond);
}

/* Why a connection stops waiting for bytes: the server stops, a send
 * failed, the attachment was revoked. */
static bool conn_should_close(struct nbd_conn *c)
{
	bool dead;
	if (atomic_load(&c->srv->stopping))
		return true;
	pthread_mutex_lock(&c->lock);
	dead = c->dead;
	pthread_mutex_unlock(&c->lock);
	return dead || (c->h && bs_handle_revoked(c->h));
}

/* The reader's one way to wait: up to ms for input (when want_in), sending
 * blocked output as the socket drains, waking early for a worker's
 * eventfd. Returns 1 when input (or EOF) is ready, else 0. */
static int conn_poll(struct nbd_conn *c, bool want_in, int ms)
{
	pthread_mutex_lock(&c->lock);
	bool blocked = c->blocked && !c->dead;
	if (blocked) {
		/* Progress is the client taking bytes out of the socket, even
		 * when too slowly for POLLOUT to come. */
		int outq = 0;
		if (ioctl(c->fd, SIOCOUTQ, &outq) == 0 && outq != c->last_outq) {
			c->last_outq = outq;
			c->progress_ns = mono_ns();
		}
	}
	uint64_t since = c->progress_ns;
	pthread_mutex_unlock(&c->lock);
	if (blocked && mono_ns() - since > CONN_SEND_TIMEOUT_S * 1000000000ull) {
		log_info(TAG, "%s: the client read nothing for %d s; closing", c->peer,
			 CONN_SEND_TIMEOUT_S);
		pthread_mutex_lock(&c->lock);
		c->dead = true;
		shutdown(c->fd, SHUT_RDWR);
		pthread_mutex_unlock(&c->lock);
		blocked = false;
		want_in = false;
		ms = 0;
	}
	short ev = (short)((want_in ? POLLIN : 0) | (blocked ? POLLOUT : 0));
	struct pollfd p[2] = {{.fd = ev ? c->fd : -1, .events = ev},
			      {.fd = c->efd, .events = POLLIN}};
	int n = poll(p, 2, ms);
	if (n <= 0)
		return 0;
	if (p[1].revents & POLLIN) {
		uint64_t v;
		ssize_t r = read(c->efd, &v, sizeof(v));
		(void)r;
	}
	pthread_mutex_lock(&c->lock);
	if (c->blocked && (p[0].revents & (POLLOUT | POLLERR | POLLHUP) || c->dead) &&
	    !c->sending) {
		c->blocked = false;
		c->sending = true;
		conn_drain_locked(c);
	}
	pthread_mutex_unlock(&c->lock);
	return want_in && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : 0;
}

/* Receives what the socket has into dst (up to n bytes, at least one),
 * waiting as conn_poll does. deadline_ns (0: none) ends the wait; an idle
 * client may wait forever when idle_ok, else CONN_STALL_S. Returns the
 * byte count, or -ECONNRESET (the client closed), -ETIMEDOUT, -ESHUTDOWN
 * (see conn_should_close) or -errno. */
static long conn_recv(struct nbd_conn *c, void *dst, size_t n, uint64_t deadline_ns, bool idle_ok)
{
	uint64_t stall = mono_ns() + CONN_STALL_S * 1000000000ull;
	for (;;) {
		ssize_t r = recv(c->fd, dst, n, MSG_DONTWAIT);
		if (r > 0)
			return r;
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (conn_should_close(c))
			return -ESHUTDOWN;
		uint64_t now = mono_ns();
		if ((deadline_ns && now >= deadline_ns) || (!idle_ok && now >= stall))
			return -ETIMEDOUT;
		conn_poll(c, true, CONN_TICK_MS);
	}
}

/* Refills the receive buffer (at least one byte). */
static int conn_fill(struct nbd_conn *c, uint64_t deadline_ns, bool idle_ok)
{
	if (c->rpos == c->rlen)
		c->rpos = c->rlen = 0;
	long n = conn_recv(c, c->rbuf + c->rlen, CONN_RBUF - c->rlen, deadline_ns, idle_ok);
	if (n < 0)
		return (int)n;
	c->rlen += (size_t)n;
	return 0;
}

/* Reads exactly n bytes into dst (NULL: drop them). idle_ok applies until
 * the first byte arrives. */
static int conn_read(struct nbd_conn *c, void *dst, size_t n, bool idle_ok)
{
	uint8_t *d = dst;
	while (n > 0) {
		size_t have = c->rlen - c->rpos;
		if (have) {
			size_t k = have < n ? have : n;
			if (d) {
				memcpy(d, c->rbuf + c->rpos, k);
				d += k;
			}
			c->rpos += k;
			n -= k;
			idle_ok = false;
			continue;
		}
		if (d && n >= CONN_RBUF / 2) {
			/* Big payloads go straight to their buffer. */
			long r = conn_recv(c, d, n, 0, false);
			if (r < 0)
				return (int)r;
			d += r;
			n -= (size_t)r;
			continue;
		}
		int ret = conn_fill(c, 0, idle_ok);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static void set_timeout(int fd, int opt, unsigned s)
{
	struct timeval tv = {.tv_sec = (time_t)s};
	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* ---- requests and replies ---- */

static void nreq_free(struct nreq *q)
{
	if (!q)
		return;
	io_free(q->buf);
	free(q);
}

/* A request object with at least need buffer bytes: from the cache, or
 * new. NULL on ENOMEM. Reader only. */
static struct nreq *nreq_get(struct nbd_conn *c, size_t need)
{
	struct nreq *q = NULL, **pp;
	pthread_mutex_lock(&c->lock);
	for (pp = &c->cache; *pp; pp = &(*pp)->next)
		if ((*pp)->cap >= need) {
			q = *pp;
			*pp = q->next;
			c->ncache--;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	if (!q) {
		if (FAULT("nbd.alloc"))
			return NULL;
		q = calloc(1, sizeof(*q));
		if (!q)
			return NULL;
		if (need) {
			/* Round small buffers up so they are reusable. */
			size_t cap = need < 65536 ? 65536 : need;
			q->buf = io_alloc(cap);
			if (!q->buf) {
				free(q);
				return NULL;
			}
			q->cap = cap;
		}
	}
	uint8_t *buf = q->buf;
	size_t cap = q->cap;
	memset(q, 0, offsetof(struct nreq, hdr));
	q->buf = buf;
	q->cap = cap;
	q->c = c;
	q->t0_ns = mono_ns();
	return q;
}

/* Request done (answered or dropped): metrics, accounting, cache. Under
 * c->lock. */
static void nreq_done_locked(struct nbd_conn *c, struct nreq *q, bool sent)
{
	uint64_t us = (mono_ns() - q->t0_ns) / 1000;
	uint64_t in = q->r.type == NBD_CMD_WRITE ? q->r.length : 0;
	uint64_t out = q->r.type == NBD_CMD_READ && !q->err && sent ? q->r.length : 0;
	metrics_request("nbd", op_name(q->r.type), (int)q->err, in, out, us);
	atomic_fetch_add(&g_requests, 1);
	if (q->err)
		atomic_fetch_add(&g_errors, 1);
	else if (q->r.type == NBD_CMD_WRITE)
		atomic_fetch_add(&g_written_bytes, in);
	else
		atomic_fetch_add(&g_read_bytes, out);
	c->inflight--;
	c->inflight_bytes -= q->cap;
	if (c->ncache < CONN_CACHE_MAX && q->cap <= CONN_CACHE_BUF) {
		q->next = c->cache;
		c->cache = q;
		c->ncache++;
	} else {
		nreq_free(q);
	}
}

/* Queues q's reply on its connection and, unless another thread is sending
 * there or the socket is full (then the reader sends it), sends the queue.
 * Never blocks on the client. */
static void conn_reply(struct nbd_conn *c, struct nreq *q)
{
	q->next = NULL;
	q->sent = 0;
	pthread_mutex_lock(&c->lock);
	if (c->rq_tail)
		c->rq_tail->next = q;
	else
		c->rq_head = q;
	c->rq_tail = q;
	if (!c->sending && !c->blocked) {
		c->sending = true;
		conn_drain_locked(c);
	}
	/* After this unlock the reader may free c: touch nothing more. */
	pthread_mutex_unlock(&c->lock);
}

/* Builds an error reply (structured or simple) into q. */
static void reply_error(struct nreq *q, uint32_t err, const char *msg)
{
	q->err = err;
	q->data = NULL;
	q->datalen = 0;
	if (q->c->sess.structured) {
		long n = nbd_sreply_error(q->hdr, sizeof(q->hdr), NBD_REPLY_FLAG_DONE, q->r.cookie,
					  err, msg);
		if (n < 0)
			n = nbd_sreply_error(q->hdr, sizeof(q->hdr), NBD_REPLY_FLAG_DONE,
					     q->r.cookie, err, NULL);
		q->hdrlen = (size_t)n;
	} else {
		q->hdrlen = nbd_reply_simple(q->hdr, err, q->r.cookie);
	}
}

static void reply_ok(struct nreq *q)
{
	q->err = 0;
	q->data = NULL;
	q->datalen = 0;
	if (q->c->sess.structured)
		q->hdrlen = nbd_sreply_none(q->hdr, q->r.cookie);
	else
		q->hdrlen = nbd_reply_simple(q->hdr, 0, q->r.cookie);
}

/* BLOCK_STATUS: bs ranges clipped to the request, merged, at most max. */
struct bstat {
	uint64_t start, end;
	struct nbd_extent *e;
	size_t n, max;
};

static int bstat_cb(uint64_t off, uint64_t len, unsigned flags, void *arg)
{
	struct bstat *b = arg;
	uint64_t s = off > b->start ? off : b->start;
	uint64_t e = off + len < b->end ? off + len : b->end;
	uint32_t f = ((flags & BS_STATE_HOLE) ? NBD_STATE_HOLE : 0) |
		     ((flags & BS_STATE_ZERO) ? NBD_STATE_ZERO : 0);
	if (e <= s)
		return 0;
	if (b->n && b->e[b->n - 1].flags == f) {
		b->e[b->n - 1].length += (uint32_t)(e - s); /* stays within the request */
	} else {
		if (b->n == b->max)
			return 1;
		b->e[b->n].length = (uint32_t)(e - s);
		b->e[b->n].flags = f;
		b->n++;
	}
	return 0;
}

static int do_block_status(struct nreq *q)
{
	struct nbd_extent *ext = (struct nbd_extent *)(q->buf + 24 + 8 * BS_EXTENTS_MAX);
	struct bstat b = {.start = q->r.offset,
			  .end = q->r.offset + q->r.length,
			  .e = ext,
			  .max = (q->r.flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : BS_EXTENTS_MAX};
	int ret = bs_block_status(q->c->h, q->r.offset, q->r.length, bstat_cb, &b);
	if (ret > 0)
		ret = 0;
	if (ret < 0)
		return ret;
	if (b.n == 0)
		return -EIO;
	long n = nbd_sreply_block_status(q->buf, 24 + 8 * BS_EXTENTS_MAX, NBD_REPLY_FLAG_DONE,
					 q->r.cookie, NBD_META_ID_BASE_ALLOCATION, ext, b.n);
	if (n < 0)
		return (int)n;
	/* The chunk header goes in hdr; its payload stays in buf. */
	memcpy(q->hdr, q->buf, NBD_SREPLY_HDR_LEN);
	q->hdrlen = NBD_SREPLY_HDR_LEN;
	q->data = q->buf + NBD_SREPLY_HDR_LEN;
	q->datalen = (size_t)n - NBD_SREPLY_HDR_LEN;
	return 0;
}

/* Runs one request on a worker and fills its reply. */
static void nreq_run(struct nreq *q, struct io_ctx *ctx)
{
	struct nbd_conn *c = q->c;
	const struct nbd_req *r = &q->r;
	unsigned fua = (r->flags & NBD_CMD_FLAG_FUA) ? BS_FUA : 0;
	int ret = 0;

	switch (r->type) {
	case NBD_CMD_READ:
		ret = bs_read(c->h, ctx, q->buf, r->offset, r->length);
		if (ret == 0) {
			q->err = 0;
			if (c->sess.structured)
				q->hdrlen = nbd_sreply_data(q->hdr, NBD_REPLY_FLAG_DONE, r->cookie,
							    r->offset, r->length);
			else
				q->hdrlen = nbd_reply_simple(q->hdr, 0, r->cookie);
			q->data = q->buf;
			q->datalen = r->length;
			return;
		}
		break;
	case NBD_CMD_WRITE:
		ret = bs_write(c->h, ctx, q->buf, r->offset, r->length, fua);
		break;
	case NBD_CMD_FLUSH:
		ret = bs_flush(c->h, ctx);
		break;
	case NBD_CMD_TRIM:
		ret = bs_zero(c->h, ctx, r->offset, r->length, BS_TRIM);
		/* A discard with FUA: make it durable like any write. */
		if (ret == 0 && fua)
			ret = bs_flush(c->h, ctx);
		break;
	case NBD_CMD_WRITE_ZEROES:
		/* NO_HOLE: the range must stay provisioned (zero bytes written). */
		ret = bs_zero(c->h, ctx, r->offset, r->length,
			      fua | ((r->flags & NBD_CMD_FLAG_FAST_ZERO) ? BS_FAST_ZERO : 0) |
				  ((r->flags & NBD_CMD_FLAG_NO_HOLE) ? BS_NO_HOLE : 0));
		break;
	case NBD_CMD_BLOCK_STATUS:
		ret = do_block_status(q);
		if (ret == 0) {
			q->err = 0;
			return;
		}
		break;
	case NBD_CMD_CACHE:
		break;
	default:
		ret = -ENOTSUP;
		break;
	}
	if (ret == 0) {
		reply_ok(q);
		return;
	}
	uint32_t e = nbd_errno(ret);
	if (e == NBD_EIO || e == NBD_ESHUTDOWN)
		log_info(TAG, "%s: %s of %u bytes at %llu: %s", c->peer, op_name(r->type),
			 r->length, (unsigned long long)r->offset, cairn_strerror(ret));
	reply_error(q, e, cairn_strerror(ret));
}

static void *worker_main(void *arg)
{
	struct nbd_server *srv = arg;
	struct io_ctx *ctx = NULL;
	int ret = io_ctx_create(WORKER_IO_DEPTH, &ctx);
	if (ret < 0)
		log_err(TAG, "worker: io_ctx_create: %s (requests fail with EIO)",
			cairn_strerror(ret));
	for (;;) {
		pthread_mutex_lock(&srv->qlock);
		while (!srv->qhead && !srv->wstop)
			pthread_cond_wait(&srv->qcond, &srv->qlock);
		struct nreq *q = srv->qhead;
		if (!q) {
			pthread_mutex_unlock(&srv->qlock);
			break;
		}
		srv->qhead = q->next;
		if (!srv->qhead)
			srv->qtail = NULL;
		pthread_mutex_unlock(&srv->qlock);
		if (ctx)
			nreq_run(q, ctx);
		else
			reply_error(q, NBD_EIO, NULL);
		conn_reply(q->c, q);
	}
	io_ctx_free(ctx);
	return NULL;
}

static void work_push(struct nbd_server *srv, struct nreq *q)
{
	q->next = NULL;
	pthread_mutex_lock(&srv->qlock);
	if (srv->qtail)
		srv->qtail->next = q;
	else
		srv->qhead = q;
	srv->qtail = q;
	pthread_cond_signal(&srv->qcond);
	pthread_mutex_unlock(&srv->qlock);
}

/* ---- the handshake ---- */

static int hs_flush(struct nbd_conn *c)
{
	size_t n;
	const void *p = nbd_hs_out(&c->hs, &n);
	if (!n)
		return 0;
	struct iovec iov = {(void *)p, n};
	int ret = send_all(c->fd, &iov, 1);
	if (ret == 0)
		nbd_hs_out_done(&c->hs, n);
	return ret;
}

/* NBD_HS_EV_LOOKUP: opens the named export. A GO keeps the handle for the
 * connection; INFO closes it again. */
static int hs_lookup(struct nbd_conn *c)
{
	struct nbd_server *srv = c->srv;
	struct bs_handle *h = NULL;
	const char *name = nbd_hs_name(&c->hs, NULL);
	const char *at = strrchr(name, '@');
	int vlen = at ? (int)(at - name) : (int)strnlen(name, 200);
	int ev, ret = bs_handle_open(srv->bs, name, &h);

	/* The token is a secret: only the volume part of the name is logged. */
	if (ret < 0) {
		/* A bad token answers as an unknown export does, so probing
		 * names without a token tells nothing (LIST is empty for the
		 * same reason); the log says which it was. */
		uint32_t rep = NBD_REP_ERR_UNKNOWN;
		if (ret == -EACCES || ret == -ESHUTDOWN) {
			log_warn(TAG, "%s: export %.*s: bad or missing attachment token", c->peer,
				 vlen, name);
		} else if (ret == CAIRN_ENOTFOUND) {
			log_info(TAG, "%s: export %.*s: no such volume", c->peer, vlen, name);
		} else {
			log_warn(TAG, "%s: export %.*s: %s", c->peer, vlen, name,
				 cairn_strerror(ret));
		}
		return nbd_hs_refuse(&c->hs, rep);
	}
	struct nbd_export e = {
	    .size = bs_handle_size(h),
	    .tflags = NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
		      NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO |
		      NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_DF,
	    .min_block = 1,
	    .pref_block = 4096,
	    .max_block = NBD_MAX_PAYLOAD,
	};
	ev = nbd_hs_answer(&c->hs, &e);
	if (ev == NBD_HS_EV_GO) {
		c->h = h;
		c->sess = *nbd_hs_session(&c->hs);
		log_info(TAG, "%s: serving %s (%llu bytes, %s replies%s)", c->peer,
			 bs_handle_volume(h), (unsigned long long)c->sess.size,
			 c->sess.structured ? "structured" : "simple",
			 c->sess.base_allocation ? ", base:allocation" : "");
	} else {
		bs_handle_close(h);
	}
	return ev;
}

/* Runs the negotiation. 0 with c->h set (transmission), 1 when the client
 * ended it (ABORT, a bad option, a refused EXPORT_NAME), or an error. */
static int conn_handshake(struct nbd_conn *c)
{
	uint64_t deadline = mono_ns() + (uint64_t)c->srv->hs_timeout * 1000000000ull;
	int ret;

	nbd_hs_init(&c->hs);
	for (;;) {
		ret = hs_flush(c);
		if (ret < 0)
			return ret;
		if (c->rpos == c->rlen) {
			ret = conn_fill(c, deadline, true);
			if (ret < 0)
				return ret;
		}
		size_t used = 0;
		int ev = nbd_hs_feed(&c->hs, c->rbuf + c->rpos, c->rlen - c->rpos, &used);
		c->rpos += used;
		if (ev == -EAGAIN)
			continue; /* output full: flushed at the top */
		if (ev < 0)
			return ev;
		if (ev == NBD_HS_EV_LOOKUP)
			ev = hs_lookup(c);
		else if (ev == NBD_HS_EV_LIST)
			ev = nbd_hs_list_end(&c->hs, 0); /* names are not shown to anyone */
		if (ev < 0)
			return ev;
		if (ev == NBD_HS_EV_GO || ev == NBD_HS_EV_CLOSE) {
			ret = hs_flush(c);
			if (ret < 0)
				return ret;
			return ev == NBD_HS_EV_GO ? 0 : 1;
		}
	}
}

/* ---- transmission ---- */

/* Waits until one more request of need buffer bytes fits the connection's
 * bounds. false when the connection died meanwhile. */
static bool conn_admit(struct nbd_conn *c, size_t need)
{
	bool ok;
	pthread_mutex_lock(&c->lock);
	while (!c->dead && (c->inflight >= CONN_MAX_INFLIGHT ||
			    (c->inflight && c->inflight_bytes + need > CONN_MAX_BYTES))) {
		if (c->blocked) {
			/* The replies that would free room wait for the socket. */
			pthread_mutex_unlock(&c->lock);
			conn_poll(c, false, CONN_TICK_MS);
			pthread_mutex_lock(&c->lock);
		} else {
			pthread_cond_wait(&c->cond, &c->lock);
		}
	}
	ok = !c->dead;
	if (ok) {
		c->inflight++;
		c->inflight_bytes += need;
	}
	pthread_mutex_unlock(&c->lock);
	return ok;
}

/* Whether the reader should run the request it holds itself: when it is
 * the only one in flight and no other is buffered behind it (a client at
 * queue depth 1). That saves the hand-off to a worker and back, about a
 * third of a loopback round trip; a client that pipelines goes to the
 * workers. The reader's io_ctx is made on first use. */
static bool conn_inline(struct nbd_conn *c)
{
	bool alone;
	if (c->rpos != c->rlen)
		return false;
	pthread_mutex_lock(&c->lock);
	alone = c->inflight == 1;
	pthread_mutex_unlock(&c->lock);
	if (!alone)
		return false;
	if (!c->ioctx && !c->no_ioctx && io_ctx_create(WORKER_IO_DEPTH, &c->ioctx) < 0) {
		c->ioctx = NULL;
		c->no_ioctx = true; /* the workers do it all */
	}
	return c->ioctx != NULL;
}

/* Gives back what conn_admit took for a request that never got queued. */
static void conn_unadmit(struct nbd_conn *c, struct nreq *q, size_t need)
{
	pthread_mutex_lock(&c->lock);
	c->inflight--;
	c->inflight_bytes -= need;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	nreq_free(q);
}

/* Buffer bytes a request needs. */
static size_t req_need(const struct nbd_req *r)
{
	switch (r->type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		return r->length;
	case NBD_CMD_BLOCK_STATUS:
		return (24 + 8 * BS_EXTENTS_MAX) + 8 * BS_EXTENTS_MAX;
	default:
		return 0;
	}
}

/* Reads and queues requests until the client disconnects, errs or the
 * connection must close. */
static void conn_serve(struct nbd_conn *c)
{
	uint8_t hdr[NBD_REQ_LEN];
	struct nbd_req r;
	int ret;

	for (;;) {
		ret = conn_read(c, hdr, sizeof(hdr), true);
		if (ret < 0)
			break;
		int pr = nbd_req_parse(&c->sess, hdr, &r);
		if (pr == -EPROTO || pr < 0) {
			log_info(TAG,
				 "%s: malformed request (magic %02x%02x%02x%02x, %s %u "
				 "bytes); closing",
				 c->peer, hdr[0], hdr[1], hdr[2], hdr[3], op_name(r.type),
				 r.length);
			ret = -EPROTO;
			break;
		}
		if (pr == 0 && r.type == NBD_CMD_DISC) {
			ret = 0;
			break;
		}
		if (conn_should_close(c)) {
			ret = -ESHUTDOWN;
			break;
		}
		size_t need = pr == 0 ? req_need(&r) : 0, admitted = need;
		if (!conn_admit(c, need)) {
			ret = -EPIPE;
			break;
		}
		struct nreq *q = nreq_get(c, need);
		if (!q) {
			/* Out of memory fails this request, not the connection. */
			if (pr == 0 && r.type == NBD_CMD_WRITE)
				r.skip = r.length;
			pr = NBD_ENOMEM;
			q = calloc(1, sizeof(*q)); /* tiny; a reply needs one */
			if (!q) {
				conn_unadmit(c, NULL, need);
				ret = -ENOMEM;
				break;
			}
			q->c = c;
			q->t0_ns = mono_ns();
		}
		q->r = r;
		/* The admission counted need; account the object's real size. */
		pthread_mutex_lock(&c->lock);
		c->inflight_bytes = c->inflight_bytes - admitted + q->cap;
		pthread_mutex_unlock(&c->lock);
		if (pr > 0) {
			/* An error answered without running: drop any payload first. */
			ret = r.skip ? conn_read(c, NULL, r.skip, false) : 0;
			if (ret < 0) {
				conn_unadmit(c, q, q->cap);
				break;
			}
			reply_error(q, (uint32_t)pr, NULL);
			conn_reply(c, q);
			continue;
		}
		ret =
		    qos_charge(c, r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE ? r.length : 0);
		if (ret == 0 && r.type == NBD_CMD_WRITE)
			ret = conn_read(c, q->buf, r.length, false);
		if (ret < 0) {
			if (ret == -ECONNRESET || ret == -ETIMEDOUT)
				log_info(TAG, "%s: client gone in the middle of a %s", c->peer,
					 op_name(r.type));
			conn_unadmit(c, q, q->cap);
			break;
		}
		if (conn_inline(c)) {
			nreq_run(q, c->ioctx);
			conn_reply(c, q);
		} else {
			work_push(c->srv, q);
		}
	}
	if (ret == -ESHUTDOWN && c->h && bs_handle_revoked(c->h))
		log_info(TAG, "%s: attachment revoked; closing", c->peer);
	else if (ret < 0 && ret != -ECONNRESET && ret != -EPROTO && ret != -ESHUTDOWN)
		log_info(TAG, "%s: closing: %s", c->peer, cairn_strerror(ret));
}

static void *conn_main(void *arg)
{
	struct nbd_conn *c = arg;
	int ret;

	/* Only the handshake sends blocking (small replies); its deadline. */
	set_timeout(c->fd, SO_SNDTIMEO, c->srv->hs_timeout);
	ret = conn_handshake(c);
	if (ret == 0) {
		c->qos = qos_get(c->srv, bs_handle_volume(c->h));
		conn_serve(c);
	} else if (ret < 0 && ret != -ECONNRESET) {
		log_info(TAG, "%s: handshake: %s", c->peer, cairn_strerror(ret));
	}
	/* Let every request in flight finish and its reply go (or drop). */
	shutdown(c->fd, SHUT_RD);
	pthread_mutex_lock(&c->lock);
	while (c->inflight || c->sending || c->rq_head) {
		if (c->blocked) {
			pthread_mutex_unlock(&c->lock);
			conn_poll(c, false, CONN_TICK_MS);
			pthread_mutex_lock(&c->lock);
		} else {
			pthread_cond_wait(&c->cond, &c->lock);
		}
	}
	pthread_mutex_unlock(&c->lock);
	qos_put(c->srv, c->qos);
	c->qos = NULL;
	io_ctx_free(c->ioctx);
	c->ioctx = NULL;
	bs_handle_close(c->h);
	c->h = NULL;
	/* The client sees the end now; the fd itself closes in conn_free, so
	 * nbd_server_stop never shuts down a reused descriptor. */
	shutdown(c->fd, SHUT_RDWR);
	atomic_fetch_sub(&g_conns, 1);
	atomic_store(&c->done, true);
	return NULL;
}

static void conn_free(struct nbd_conn *c)
{
	struct nreq *q;
	if (!c)
		return;
	while ((q = c->cache) != NULL) {
		c->cache = q->next;
		nreq_free(q);
	}
	free(c->rbuf);
	if (c->fd >= 0)
		close(c->fd);
	if (c->efd >= 0)
		close(c->efd);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* ---- the listener ---- */

/* Joins and frees connections whose reader finished (all when all). */
static void reap(struct nbd_server *srv, bool all)
{
	struct nbd_conn *dead = NULL, **pp, *c;
	pthread_mutex_lock(&srv->lock);
	for (pp = &srv->conns; (c = *pp) != NULL;) {
		if (all || atomic_load(&c->done)) {
			*pp = c->next;
			c->next = dead;
			dead = c;
			srv->nconns--;
		} else {
			pp = &c->next;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	while ((c = dead) != NULL) {
		dead = c->next;
		pthread_join(c->thread, NULL);
		conn_free(c);
	}
}

static void peer_name(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(out, len, "%s:%s", host, port);
}

static void accept_one(struct nbd_server *srv, int fd)
{
	struct nbd_conn *c = NULL;
	int one = 1;

	pthread_mutex_lock(&srv->lock);
	bool full = srv->nconns >= srv->max_conns;
	pthread_mutex_unlock(&srv->lock);
	if (full) {
		char peer[64];
		peer_name(fd, peer, sizeof(peer));
		log_warn(TAG, "%s: refused: %u connections open already", peer, srv->max_conns);
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = FAULT("nbd.alloc") ? NULL : calloc(1, sizeof(*c));
	if (!c || !(c->rbuf = malloc(CONN_RBUF))) {
		log_warn(TAG, "no memory for a new connection");
		free(c);
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->efd < 0) {
		log_warn(TAG, "eventfd: %s", strerror(errno));
		free(c->rbuf);
		free(c);
		close(fd);
		return;
	}
	peer_name(fd, c->peer, sizeof(c->peer));
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	atomic_fetch_add(&g_conns, 1);
	int ret = pthread_create(&c->thread, NULL, conn_main, c);
	if (ret != 0) {
		log_warn(TAG, "%s: cannot start a thread: %s", c->peer, strerror(ret));
		atomic_fetch_sub(&g_conns, 1);
		conn_free(c);
		return;
	}
	pthread_mutex_lock(&srv->lock);
	c->next = srv->conns;
	srv->conns = c;
	srv->nconns++;
	pthread_mutex_unlock(&srv->lock);
}

static void *listener_main(void *arg)
{
	struct nbd_server *srv = arg;
	while (!atomic_load(&srv->stopping)) {
		struct pollfd pfd = {.fd = srv->lfd, .events = POLLIN};
		int n = poll(&pfd, 1, 500);
		reap(srv, false);
		if (n <= 0 || atomic_load(&srv->stopping))
			continue;
		int fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
			    errno == ENOBUFS) {
				log_warn(TAG, "accept: %s", strerror(errno));
				poll(NULL, 0, 100); /* let connections close first */
			}
			continue;
		}
		accept_one(srv, fd);
	}
	return NULL;
}

/* HOST:PORT, [V6]:PORT or :PORT (any address). */
static int listen_socket(const char *addr, int *fd_out, uint16_t *port_out, char *err,
			 size_t errlen)
{
	char host[256];
	const char *port;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, one = 1, ret;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof(host))
			goto bad;
		memcpy(host, addr + 1, (size_t)(end - addr - 1));
		host[end - addr - 1] = 0;
		port = end + 2;
	} else {
		const char *colon = strrchr(addr, ':');
		if (!colon || (size_t)(colon - addr) >= sizeof(host))
			goto bad;
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = 0;
		port = colon + 1;
	}
	if (!*port)
		goto bad;
	ret = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (ret != 0) {
		snprintf(err, errlen, "NBD listen address %s: %s", addr, gai_strerror(ret));
		return CAIRN_EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6) {
		/* "::" serves IPv4 too; a specific v6 address only v6. */
		int v6only = !IN6_IS_ADDR_UNSPECIFIED(
		    &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr);
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	}
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 256) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		ret = -errno;
		goto fail;
	}
	*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&ss)->sin6_port
						   : ((struct sockaddr_in *)(void *)&ss)->sin_port);
	*fd_out = fd;
	freeaddrinfo(ai);
	return 0;
fail:
	snprintf(err, errlen, "NBD listen on %s: %s", addr, strerror(-ret));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return ret;
bad:
	snprintf(err, errlen, "NBD listen address %s: want HOST:PORT", addr);
	return CAIRN_EINVAL;
}

/* ---- start and stop ---- */

int nbd_server_start(const struct nbd_server_config *cfg, struct bs_store *bs,
		     struct nbd_server **out, char *err, size_t errlen)
{
	struct nbd_server *srv = NULL;
	int ret;

	*out = NULL;
	if (errlen)
		err[0] = 0;
	if (!cfg || !bs || !cfg->listen) {
		snprintf(err, errlen, "NBD server: no configuration");
		return CAIRN_EINVAL;
	}
	pthread_once(&g_metrics_once, metrics_init);
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(err, errlen, "NBD server: out of memory");
		return -ENOMEM;
	}
	srv->bs = bs;
	srv->lfd = -1;
	srv->nworkers = cfg->workers ? cfg->workers : 16;
	srv->max_conns = cfg->max_conns ? cfg->max_conns : 256;
	srv->hs_timeout = cfg->handshake_timeout ? cfg->handshake_timeout : 30;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->qlock, NULL);
	pthread_cond_init(&srv->qcond, NULL);
	ret = listen_socket(cfg->listen, &srv->lfd, &srv->port, err, errlen);
	if (ret < 0)
		goto fail;
	srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
	if (!srv->workers) {
		ret = -ENOMEM;
		goto fail;
	}
	for (; srv->nstarted < srv->nworkers; srv->nstarted++) {
		ret = pthread_create(&srv->workers[srv->nstarted], NULL, worker_main, srv);
		if (ret != 0) {
			ret = -ret;
			goto fail;
		}
	}
	ret = pthread_create(&srv->listener, NULL, listener_main, srv);
	if (ret != 0) {
		ret = -ret;
		goto fail;
	}
	srv->listener_started = true;
	log_info(TAG, "listening on %s (port %u, %u workers, up to %u connections)", cfg->listen,
		 srv->port, srv->nworkers, srv->max_conns);
	*out = srv;
	return 0;
fail:
	if (!err[0])
		snprintf(err, errlen, "NBD server: %s", cairn_strerror(ret));
	nbd_server_stop(srv);
	return ret;
}

uint16_t nbd_server_port(const struct nbd_server *srv)
{
	return srv ? srv->port : 0;
}

void nbd_server_stop(struct nbd_server *srv)
{
	struct nbd_conn *c;
	if (!srv)
		return;
	atomic_store(&srv->stopping, true);
	if (srv->listener_started)
		pthread_join(srv->listener, NULL);
	if (srv->lfd >= 0)
		close(srv->lfd);
	/* No more requests are read; those in flight finish and are answered
	 * (each reader waits for them), then the readers exit. */
	pthread_mutex_lock(&srv->lock);
	for (c = srv->conns; c; c = c->next)
		if (!atomic_load(&c->done))
			shutdown(c->fd, SHUT_RD);
	pthread_mutex_unlock(&srv->lock);
	/* Replies a client does not read must not hold the stop for long:
	 * after a grace period their sockets are shut down too. */
	for (int waited = 0;; waited += 50) {
		bool all = true;
		pthread_mutex_lock(&srv->lock);
		for (c = srv->conns; c; c = c->next)
			if (!atomic_load(&c->done)) {
				all = false;
				if (waited >= STOP_GRACE_MS)
					shutdown(c->fd, SHUT_RDWR);
			}
		pthread_mutex_unlock(&srv->lock);
		if (all || waited >= STOP_GRACE_MS)
			break;
		poll(NULL, 0, 50);
	}
	reap(srv, true);
	pthread_mutex_lock(&srv->qlock);
	srv->wstop = true;
	pthread_cond_broadcast(&srv->qcond);
	pthread_mutex_unlock(&srv->qlock);
	for (unsigned i = 0; i < srv->nstarted; i++)
		pthread_join(srv->workers[i], NULL);
	free(srv->workers);
	pthread_cond_destroy(&srv->qcond);
	pthread_mutex_destroy(&srv->qlock);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}
