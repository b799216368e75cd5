/* chunkstore/cs_cdc.c - FastCDC (see cs_cdc.h for the frozen rule).
 *
 * The hot loop is the plain byte-at-a-time loop (one lea on the carried
 * chain, one well-predicted branch): measured on this machine, two-byte
 * steps with the gear terms off the chain and four-byte steps with one
 * combined branch were both slower (bench/chunker).
 */
#include <errno.h>
#include <string.h>

#include "chunkstore/cs_cdc.h"

static uint64_t cs_cdc_splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

int cs_cdc_init(struct cs_cdc *c, uint32_t min, uint32_t avg, uint32_t max)
{
	if (avg < CS_CDC_MIN_AVG || avg > (1u << 24) || (avg & (avg - 1)) || min < CS_CDC_WINDOW ||
	    min >= avg || avg >= max || max > CS_CDC_MAX_MAX)
		return -EINVAL;
	unsigned bits = (unsigned)__builtin_ctz(avg);
	memset(c, 0, sizeof(*c));
	c->min = min;
	c->avg = avg;
	c->max = max;
	c->mask_s = ~0ull << (64 - (bits + 2));
	c->mask_l = ~0ull << (64 - (bits - 2));
	uint64_t x = CS_CDC_SEED;
	for (unsigned i = 0; i < 256; i++)
		c->gear[i] = cs_cdc_splitmix(&x);
	return 0;
}

/* Hashes p[0..n) into *hp; returns j + 1 for the first j after which
 * (h & mask) == 0, or 0 when there is none (then *hp covers all n). */
static inline size_t cs_cdc_scan(const uint64_t *g, uint64_t mask, const uint8_t *p, size_t n,
				 uint64_t *hp)
{
	uint64_t h = *hp;
	for (size_t j = 0; j < n; j++) {
		h = (h << 1) + g[p[j]];
		if (__builtin_expect(!(h & mask), 0)) {
			*hp = h;
			return j + 1;
		}
	}
	*hp = h;
	return 0;
}

bool cs_cdc_feed(const struct cs_cdc *c, struct cs_cdc_state *st, const uint8_t *p, size_t n,
		 size_t *used)
{
	uint32_t len = st->len;
	uint64_t h = st->h;
	size_t pos = 0;
	const uint32_t w0 = c->min - CS_CDC_WINDOW;

	/* bytes never hashed */
	if (len < w0) {
		size_t k = n < (size_t)(w0 - len) ? n : (size_t)(w0 - len);
		len += (uint32_t)k;
		pos += k;
	}
	/* warm-up: hashed, no boundary possible before length min */
	while (pos < n && len < c->min - 1) {
		h = (h << 1) + c->gear[p[pos++]];
		len++;
	}
	/* lengths below avg: the harder mask; then the easier one up to max */
	for (int phase = 0; phase < 2 && pos < n; phase++) {
		uint32_t end = phase == 0 ? c->avg - 1 : c->max;
		if (len >= end)
			continue;
		size_t k = n - pos < (size_t)(end - len) ? n - pos : (size_t)(end - len);
		size_t r = cs_cdc_scan(c->gear, phase == 0 ? c->mask_s : c->mask_l, p + pos, k, &h);
		if (r) {
			*used = pos + r;
			st->h = 0;
			st->len = 0;
			return true;
		}
		pos += k;
		len += (uint32_t)k;
	}
	*used = pos;
	if (len >= c->max) {
		st->h = 0;
		st->len = 0;
		return true;
	}
	st->h = h;
	st->len = len;
	return false;
}

size_t cs_cdc_cut(const struct cs_cdc *c, const uint8_t *p, size_t n)
{
	struct cs_cdc_state st = {0};
	size_t used = 0;
	if (cs_cdc_feed(c, &st, p, n, &used))
		return used;
	return n;
}
