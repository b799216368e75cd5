/* chunkstore/cs_cdc.h - FastCDC content-defined chunking (gear hash,
 * normalised chunking), the cut rule of CS_CHUNK_FASTCDC pools.
 *
 * The gear table and the cut rule are part of a pool's frozen format
 * (format.h, next to CS_CHUNK_FASTCDC): a changed boundary would break dedup
 * against everything stored before. tests/unit/test_cdc.c pins boundaries.
 *
 * The rule, for a chunk starting at stream byte p[0]:
 *  - bytes below min - 64 are skipped (never hashed); from index min - 64 on,
 *    h = (h << 1) + G[p[i]] (mod 2^64), h starting at 0. Because h shifts one
 *    bit per byte, from index min - 1 on h is exactly a function of the 64
 *    bytes p[i-63..i]: a boundary depends on local content only.
 *  - a chunk may end after byte i (length L = i + 1) for L in [min, max]:
 *    when L < avg if the top log2(avg)+2 bits of h are zero (harder), when
 *    L >= avg if the top log2(avg)-2 bits are zero (easier): normalised
 *    chunking, level 2. A chunk that reaches max ends there.
 *  - G[i] is the i-th output of splitmix64 seeded with CS_CDC_SEED.
 *
 * A struct cs_cdc is immutable after cs_cdc_init and may be shared by any
 * number of threads; a struct cs_cdc_state belongs to one stream. Depends on
 * nothing but libc, so the offline tools in bench/ build it directly.
 */
#ifndef CAIRN_CHUNKSTORE_CS_CDC_H
#define CAIRN_CHUNKSTORE_CS_CDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_CDC_SEED 0x636169726e434443ull /* "cairnCDC" */
#define CS_CDC_WINDOW 64u		  /* bytes a boundary depends on */
#define CS_CDC_MIN_AVG 256u
#define CS_CDC_MAX_MAX (16u << 20)

struct cs_cdc {
	uint32_t min, avg, max;
	uint64_t mask_s, mask_l; /* below avg, from avg on */
	uint64_t gear[256];
};

/* Where a stream is inside its current chunk. Zero it to start a stream. */
struct cs_cdc_state {
	uint64_t h;
	uint32_t len; /* bytes of the current chunk seen so far */
};

/* Fills c for the given bounds. avg must be a power of two in
 * [CS_CDC_MIN_AVG, 2^24], CS_CDC_WINDOW <= min < avg < max <= CS_CDC_MAX_MAX.
 * Returns 0 or -EINVAL. */
int cs_cdc_init(struct cs_cdc *c, uint32_t min, uint32_t avg, uint32_t max)
    __attribute__((warn_unused_result));

/* Streaming: p[0..n) are the next bytes of the stream. Sets *used to how many
 * of them belong to the current chunk and returns true when the chunk ends
 * after them (st is then reset for the next chunk), false when all n were
 * taken and the chunk goes on. Cost: ~1 table lookup per byte past min-64. */
bool cs_cdc_feed(const struct cs_cdc *c, struct cs_cdc_state *st, const uint8_t *p, size_t n,
		 size_t *used);

/* One shot: the length of the first chunk of p[0..n) (p starts a chunk):
 * a boundary if there is one, else max if n >= max, else n (the stream's
 * last chunk, when p[0..n) is all that is left). */
size_t cs_cdc_cut(const struct cs_cdc *c, const uint8_t *p, size_t n);

#endif
