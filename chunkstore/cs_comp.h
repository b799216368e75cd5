/* chunkstore/cs_comp.h - when and how a new chunk is compressed (zstd).
 *
 * One policy for the pool's workers and for the offline tool in bench/dedup,
 * so the tool measures what the pool stores. A chunk is kept compressed only
 * when that saves at least 1/CS_COMP_MIN_SAVE of it. Chunks of at least
 * 2 x CS_COMP_SAMPLE bytes are probed first: CS_COMP_PROBES slices of 1 KiB
 * spread over the chunk (start, thirds, end) are compressed together, and
 * the chunk is stored raw when the probe does not shrink at all. Measured
 * (bench/dedup, VM image set, CDC 16K, level 1): no probe 284.6 MiB in
 * 2.9 s; this probe 284.8 MiB in 2.5 s; a probe of the first 4 KiB needing
 * 1/8 saved 290.3 MiB (chunks that start with packed data but go on
 * compressible); on random 16 KiB chunks the probe runs at 4.7 GiB/s per
 * core against 2.0 for a whole-chunk attempt.
 *
 * A ZSTD_CCtx belongs to one thread; the functions keep no state of their
 * own. Depends on libzstd only.
 */
#ifndef CAIRN_CHUNKSTORE_CS_COMP_H
#define CAIRN_CHUNKSTORE_CS_COMP_H

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

/* The default level for new chunks. Only dedup misses pay it. On the VM
 * image set (CDC 16K, bench/dedup/cs_ingest), level 3 stores 277.4 MiB, the
 * best per-chunk figure offline (17.7% of the non-zero bytes), and level 1
 * 284.8 MiB (18.2%); ingest went 521 vs 552 MiB/s there, as most bytes
 * dedup. Level 1 compresses ~1.5x faster (DESIGN.md: 0.44 vs 0.29 GiB/s
 * per core) for streams of all-new compressible data: cs_pool_opts
 * zstd_level chooses. */
#define CS_ZSTD_LEVEL 3

#define CS_COMP_SAMPLE 4096u
#define CS_COMP_PROBES 4u
#define CS_COMP_MIN_SAVE 16u /* keep when stored <= raw - raw/16 */
#define CS_COMP_MIN_LEN 512u /* smaller chunks are stored as they are */

/* Offset of probe slice i (of CS_COMP_PROBES) in a chunk of n bytes. */
static inline size_t cs_comp_probe_at(size_t n, unsigned i)
{
	return (n - CS_COMP_SAMPLE / CS_COMP_PROBES) * i / (CS_COMP_PROBES - 1);
}

/* Compresses src[0..n) into dst (capacity at least n) at level; returns the
 * compressed size when it is worth keeping, else 0 (store raw). */
size_t cs_comp_chunk(ZSTD_CCtx *cctx, int level, const uint8_t *src, size_t n, uint8_t *dst);

/* Decompresses exactly raw_len bytes; returns 0 or -1 when src does not
 * decompress to exactly raw_len bytes. */
int cs_comp_expand(ZSTD_DCtx *dctx, const uint8_t *src, size_t n, uint8_t *dst, size_t raw_len);

#endif
