/* tests/fuzz/fuzz_util.h - split a fuzz input into NUL-terminated lines. */
#ifndef CAIRN_FUZZ_UTIL_H
#define CAIRN_FUZZ_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_LINES 64

struct fuzz_lines {
	char *buf;		    /* a NUL-terminated copy of the input */
	char *line[FUZZ_MAX_LINES]; /* pointers into buf; '\n' replaced by NUL */
	size_t len[FUZZ_MAX_LINES];
	size_t n;
	char *rest; /* after the last split line ("" if none) */
	size_t rest_len;
};

/* Splits at most max lines off the front; the remainder stays in rest. */
static inline int fuzz_split(const uint8_t *data, size_t size, size_t max, struct fuzz_lines *l)
{
	memset(l, 0, sizeof(*l));
	l->buf = malloc(size + 1);
	if (!l->buf)
		return -1;
	memcpy(l->buf, data, size);
	l->buf[size] = '\0';
	char *p = l->buf, *end = l->buf + size;
	if (max > FUZZ_MAX_LINES)
		max = FUZZ_MAX_LINES;
	while (l->n < max && p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		*nl = '\0';
		l->line[l->n] = p;
		l->len[l->n] = (size_t)(nl - p);
		l->n++;
		p = nl + 1;
	}
	l->rest = p;
	l->rest_len = (size_t)(end - p);
	return 0;
}

static inline const char *fuzz_line(const struct fuzz_lines *l, size_t i)
{
	return i < l->n ? l->line[i] : "";
}

#endif
