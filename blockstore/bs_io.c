/* blockstore/bs_io.c - PLACEHOLDER so the management code links while the
 * volume I/O layer is being written: every I/O call fails with -ENOSYS.
 * Replaced wholesale by the real bs_io.c (issue 6). */
#include <errno.h>
#include <stdlib.h>

#include "blockstore/bs_internal.h"

int bs_io_vol_init(struct bs_vol *vol)
{
	(void)vol;
	return 0;
}
void bs_io_vol_free(struct bs_vol *vol)
{
	(void)vol;
}
int bs_io_resync(struct bs_store *bs)
{
	(void)bs;
	return 0;
}
int bs_io_sync_vol(struct bs_store *bs, struct bs_vol *vol, struct io_ctx *ctx)
{
	(void)bs, (void)vol, (void)ctx;
	return -ENOSYS;
}
int bs_io_copy_blocks(struct bs_store *bs, struct io_ctx *ctx, const uint8_t src_id[VOL_ID_LEN],
		      uint32_t src_gen, unsigned src_replicas, const uint8_t dst_id[VOL_ID_LEN],
		      uint32_t dst_gen, unsigned dst_replicas, uint64_t index, uint64_t mask)
{
	(void)bs, (void)ctx, (void)src_id, (void)src_gen, (void)src_replicas, (void)dst_id;
	(void)dst_gen, (void)dst_replicas, (void)index, (void)mask;
	return -ENOSYS;
}
int bs_handle_open(struct bs_store *bs, const char *export_name, struct bs_handle **out)
{
	(void)bs, (void)export_name;
	*out = NULL;
	return -ENOSYS;
}
void bs_handle_close(struct bs_handle *h)
{
	(void)h;
}
uint64_t bs_handle_size(struct bs_handle *h)
{
	(void)h;
	return 0;
}
const char *bs_handle_volume(const struct bs_handle *h)
{
	(void)h;
	return "";
}
void bs_handle_qos(struct bs_handle *h, uint64_t *iops_limit, uint64_t *bps_limit)
{
	(void)h;
	*iops_limit = *bps_limit = 0;
}
bool bs_handle_revoked(struct bs_handle *h)
{
	(void)h;
	return true;
}
int bs_read(struct bs_handle *h, struct io_ctx *ctx, void *buf, uint64_t off, uint32_t len)
{
	(void)h, (void)ctx, (void)buf, (void)off, (void)len;
	return -ENOSYS;
}
int bs_write(struct bs_handle *h, struct io_ctx *ctx, const void *buf, uint64_t off, uint32_t len,
	     unsigned flags)
{
	(void)h, (void)ctx, (void)buf, (void)off, (void)len, (void)flags;
	return -ENOSYS;
}
int bs_zero(struct bs_handle *h, struct io_ctx *ctx, uint64_t off, uint64_t len, unsigned flags)
{
	(void)h, (void)ctx, (void)off, (void)len, (void)flags;
	return -ENOSYS;
}
int bs_flush(struct bs_handle *h, struct io_ctx *ctx)
{
	(void)h, (void)ctx;
	return -ENOSYS;
}
int bs_block_status(struct bs_handle *h, uint64_t off, uint64_t len,
		    int (*fn)(uint64_t off, uint64_t len, unsigned flags, void *arg), void *arg)
{
	(void)h, (void)off, (void)len, (void)fn, (void)arg;
	return -ENOSYS;
}
