/* chunkstore/cs_comp.h - when and how a new chunk is compressed (zstd).
 *
 * One policy for the pool's workers and for the offline tool in bench/dedup,
 * so the tool measures what the pool stores. A chunk is kept compressed only
 * when that saves at least 1/CS_COMP_MIN_SAVE of it; chunks of at least
 * 2 x CS_COMP_SAMPLE bytes first compress their first CS_COMP_SAMPLE bytes
 * and give up when those do not shrink by 1/8 (incompressible data then costs
 * a 4 KiB probe instead of a whole-chunk attempt: measured 4.8 vs 2.0 GiB/s
 * per core on 16 KiB random chunks at level 1).
 *
 * A ZSTD_CCtx belongs to one thread; the functions keep no state of their
 * own. Depends on libzstd only.
 */
#ifndef CAIRN_CHUNKSTORE_CS_COMP_H
#define CAIRN_CHUNKSTORE_CS_COMP_H

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#define CS_COMP_SAMPLE 4096u
#define CS_COMP_MIN_SAVE 16u /* keep when stored <= raw - raw/16 */
#define CS_COMP_MIN_LEN 512u /* smaller chunks are stored as they are */

/* Compresses src[0..n) into dst (capacity at least n) at level; returns the
 * compressed size when it is worth keeping, else 0 (store raw). */
size_t cs_comp_chunk(ZSTD_CCtx *cctx, int level, const uint8_t *src, size_t n, uint8_t *dst);

/* Decompresses exactly raw_len bytes; returns 0 or -1 when src does not
 * decompress to exactly raw_len bytes. */
int cs_comp_expand(ZSTD_DCtx *dctx, const uint8_t *src, size_t n, uint8_t *dst, size_t raw_len);

#endif
