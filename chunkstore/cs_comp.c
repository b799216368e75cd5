/* chunkstore/cs_comp.c - the chunk compression policy (see cs_comp.h). */
#include <string.h>

#include "chunkstore/cs_comp.h"

size_t cs_comp_chunk(ZSTD_CCtx *cctx, int level, const uint8_t *src, size_t n, uint8_t *dst)
{
	if (n < CS_COMP_MIN_LEN)
		return 0;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)))
		return 0;
	/* The probe and the real attempt both get a capacity just under what
	 * would pay, so zstd itself stops as soon as the output is too big. */
	if (n >= 2 * CS_COMP_SAMPLE) {
		uint8_t probe[CS_COMP_SAMPLE];
		const size_t slice = CS_COMP_SAMPLE / CS_COMP_PROBES;
		for (unsigned i = 0; i < CS_COMP_PROBES; i++)
			memcpy(probe + i * slice, src + cs_comp_probe_at(n, i), slice);
		size_t r = ZSTD_compress2(cctx, dst, CS_COMP_SAMPLE - 1, probe, CS_COMP_SAMPLE);
		if (ZSTD_isError(r))
			return 0;
	}
	size_t cap = n - n / CS_COMP_MIN_SAVE;
	size_t r = ZSTD_compress2(cctx, dst, cap, src, n);
	if (ZSTD_isError(r) || r == 0 || r > cap)
		return 0;
	return r;
}

int cs_comp_expand(ZSTD_DCtx *dctx, const uint8_t *src, size_t n, uint8_t *dst, size_t raw_len)
{
	unsigned long long fs = ZSTD_getFrameContentSize(src, n);
	if (fs != raw_len)
		return -1;
	size_t r = ZSTD_decompressDCtx(dctx, dst, raw_len, src, n);
	return ZSTD_isError(r) || r != raw_len ? -1 : 0;
}
