/* blockstore/nbd/nbd_server.h - the NBD server: volumes over the network.
 *
 * Listens on one TCP address (`--nbd-listen`, default :10809). Each
 * connection has a reader thread that runs the handshake (nbd_proto) and then
 * reads requests and their payloads; requests go to a shared pool of worker
 * threads, each with its own io_ctx, which call bs_read/bs_write/... and send
 * the reply (one send lock per connection, so replies never interleave and
 * may go out of order, as NBD allows). Export names are "VOLUME@TOKEN"
 * (bs_handle_open); NBD_OPT_LIST answers an empty list (names are not
 * given to anonymous clients). Per-volume QoS (bs_handle_qos) is a token
 * bucket shared by every connection of the volume on this node, charged
 * before a request runs. A malformed request gets its NBD error or the
 * connection closes; no client can stop another's.
 *
 * Threads: start/stop on the main thread.
 */
#ifndef CAIRN_BLOCKSTORE_NBD_SERVER_H
#define CAIRN_BLOCKSTORE_NBD_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct bs_store;
struct nbd_server;

struct nbd_server_config {
	const char *listen;	    /* HOST:PORT (port 0: any) */
	unsigned workers;	    /* I/O worker threads; 0: 16 */
	unsigned max_conns;	    /* 0: 256 */
	unsigned handshake_timeout; /* seconds a client may take to negotiate; 0: 30 */
};

/* Binds and starts accepting. Errors: -EADDRINUSE etc. (message names the
 * address in err). */
int nbd_server_start(const struct nbd_server_config *cfg, struct bs_store *bs,
		     struct nbd_server **out, char *err, size_t errlen) CAIRN_WUR;
uint16_t nbd_server_port(const struct nbd_server *srv);
/* Stops accepting, closes every connection (requests in flight finish
 * first), joins the threads, frees; NULL is fine. */
void nbd_server_stop(struct nbd_server *srv);

#endif
