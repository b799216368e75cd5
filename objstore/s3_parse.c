/* objstore/s3_parse.c - S3 request parsing (targets, names, ranges, dates). */
#include "objstore/s3_parse.h"
#include "objstore/s3.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int s3_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool s3_is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

/* ---- request target ---- */

int s3_target_split(const char *target, struct s3_target *out)
{
	if (!target || target[0] != '/')
		return CAIRN_EINVAL;
	const char *q = NULL;
	const char *p = target;
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c == 0x7f || c == '#')
			return CAIRN_EINVAL;
		if (c == '?' && !q)
			q = p;
	}
	out->path = target;
	if (q) {
		out->path_len = (size_t)(q - target);
		out->query = q + 1;
		out->query_len = (size_t)(p - q - 1);
	} else {
		out->path_len = (size_t)(p - target);
		out->query = p; /* "" */
		out->query_len = 0;
	}
	return 0;
}

long s3_pct_decode(const char *in, size_t len, bool plus_space, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '%') {
			if (i + 2 >= len)
				return CAIRN_EINVAL;
			int h = s3_hexval((unsigned char)in[i + 1]);
			int l = s3_hexval((unsigned char)in[i + 2]);
			if (h < 0 || l < 0)
				return CAIRN_EINVAL;
			c = (unsigned char)(h << 4 | l);
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		if (c == 0)
			return CAIRN_EINVAL;
		if (o + 1 >= cap)
			return CAIRN_ETOOBIG;
		out[o++] = (char)c;
	}
	if (o >= cap)
		return CAIRN_ETOOBIG;
	out[o] = '\0';
	return (long)o;
}

long s3_uri_encode(const char *in, size_t len, bool keep_slash, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (s3_is_unreserved(c) || (keep_slash && c == '/')) {
			if (o + 1 >= cap)
				return CAIRN_ETOOBIG;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= cap)
				return CAIRN_ETOOBIG;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= cap)
		return CAIRN_ETOOBIG;
	out[o] = '\0';
	return (long)o;
}

/* ---- query ---- */

void s3_query_iter_init(struct s3_query_iter *it, const char *query, size_t len)
{
	it->p = query;
	it->end = query + len;
}

int s3_query_next(struct s3_query_iter *it, struct s3_qraw *out)
{
	while (it->p < it->end) {
		const char *start = it->p;
		const char *amp = memchr(start, '&', (size_t)(it->end - start));
		const char *stop = amp ? amp : it->end;
		it->p = amp ? amp + 1 : it->end;
		if (stop == start)
			continue;
		const char *eq = memchr(start, '=', (size_t)(stop - start));
		out->name = start;
		if (eq) {
			out->name_len = (size_t)(eq - start);
			out->value = eq + 1;
			out->value_len = (size_t)(stop - eq - 1);
		} else {
			out->name_len = (size_t)(stop - start);
			out->value = NULL;
			out->value_len = 0;
		}
		return 1;
	}
	return 0;
}

int s3_query_parse(const char *query, size_t len, struct s3_query *out)
{
	struct s3_query_iter it;
	struct s3_qraw raw;
	size_t n = 0;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	s3_query_iter_init(&it, query, len);
	while (s3_query_next(&it, &raw))
		n++;
	if (n == 0)
		return 0;
	/* Decoded strings are never longer than the raw ones; two NULs per
	 * pair at most. */
	out->buf = malloc(len + 2 * n + 1);
	out->p = calloc(n, sizeof(*out->p));
	if (!out->buf || !out->p) {
		ret = -ENOMEM;
		goto out;
	}
	char *w = out->buf;
	size_t left = len + 2 * n + 1;
	s3_query_iter_init(&it, query, len);
	while (s3_query_next(&it, &raw)) {
		struct s3_qparam *qp = &out->p[out->n];
		long l = s3_pct_decode(raw.name, raw.name_len, true, w, left);
		if (l < 0) {
			ret = (int)l;
			goto out;
		}
		qp->name = w;
		w += l + 1;
		left -= (size_t)l + 1;
		qp->has_value = raw.value != NULL;
		l = s3_pct_decode(raw.value ? raw.value : "", raw.value_len, true, w, left);
		if (l < 0) {
			ret = (int)l;
			goto out;
		}
		qp->value = w;
		w += l + 1;
		left -= (size_t)l + 1;
		out->n++;
	}
out:
	if (ret)
		s3_query_free(out);
	return ret;
}

void s3_query_free(struct s3_query *q)
{
	if (!q)
		return;
	free(q->p);
	free(q->buf);
	memset(q, 0, sizeof(*q));
}

const char *s3_query_get(const struct s3_query *q, const char *name)
{
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->p[i].name, name) == 0)
			return q->p[i].value;
	return NULL;
}

/* ---- bucket and key ---- */

/* Host without its port: "[v6]:p" -> "[v6]", "h:p" -> "h". */
static size_t host_len_noport(const char *host)
{
	size_t len = strlen(host);
	if (host[0] == '[') {
		const char *rb = memchr(host, ']', len);
		return rb ? (size_t)(rb - host) + 1 : len;
	}
	const char *colon = memchr(host, ':', len);
	if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - host) - 1))
		return (size_t)(colon - host);
	return len;
}

int s3_addr_parse(const char *path, size_t path_len, const char *host, const char *domain,
		  char *buf, size_t cap, struct s3_addr *out)
{
	size_t hlen = 0, dlen = domain ? strlen(domain) : 0;
	long l;

	memset(out, 0, sizeof(*out));
	if (path_len == 0 || path[0] != '/')
		return CAIRN_EINVAL;
	if (host)
		hlen = host_len_noport(host);
	/* Trailing dot of a fully qualified host name is not part of it. */
	if (hlen && host[hlen - 1] == '.')
		hlen--;
	if (dlen && hlen > dlen + 1 && host[hlen - dlen - 1] == '.' &&
	    strncasecmp(host + hlen - dlen, domain, dlen) == 0) {
		size_t blen = hlen - dlen - 1;
		if (blen + 1 > cap)
			return CAIRN_ETOOBIG;
		memcpy(buf, host, blen);
		buf[blen] = '\0';
		out->bucket = buf;
		out->virtual_host = true;
		l = s3_pct_decode(path + 1, path_len - 1, false, buf + blen + 1, cap - blen - 1);
		if (l < 0)
			return (int)l;
		out->key = buf + blen + 1;
		out->key_len = (size_t)l;
		return 0;
	}
	const char *seg = path + 1;
	const char *end = path + path_len;
	const char *slash = memchr(seg, '/', (size_t)(end - seg));
	const char *bend = slash ? slash : end;
	l = s3_pct_decode(seg, (size_t)(bend - seg), false, buf, cap);
	if (l < 0)
		return (int)l;
	out->bucket = buf;
	char *k = buf + l + 1;
	size_t kcap = cap - (size_t)l - 1;
	const char *kstart = slash ? slash + 1 : end;
	if (kcap == 0)
		return CAIRN_ETOOBIG;
	l = s3_pct_decode(kstart, (size_t)(end - kstart), false, k, kcap);
	if (l < 0)
		return (int)l;
	out->key = k;
	out->key_len = (size_t)l;
	return 0;
}

bool s3_bucket_name_reserved(const char *name)
{
	return strncmp(name, "cairn-", 6) == 0 || strncmp(name, ".cairn", 6) == 0;
}

static bool is_ipv4(const char *s)
{
	int parts = 0;
	while (*s) {
		int digits = 0;
		unsigned v = 0;
		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (unsigned)(*s - '0');
			if (++digits > 3)
				return false;
			s++;
		}
		if (digits == 0 || v > 255)
			return false;
		parts++;
		if (*s == '.')
			s++;
		else if (*s)
			return false;
		else
			break;
	}
	return parts == 4;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t sl = strlen(suffix);
	return len >= sl && memcmp(s + len - sl, suffix, sl) == 0;
}

int s3_bucket_name_check(const char *name)
{
	size_t len = strlen(name);
	if (len < S3_BUCKET_MIN || len > S3_BUCKET_MAX)
		return CAIRN_EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && c != '.' && c != '-')
			return CAIRN_EINVAL;
		if ((i == 0 || i == len - 1) && !alnum)
			return CAIRN_EINVAL;
		if (c == '.' && name[i + 1] == '.')
			return CAIRN_EINVAL;
	}
	if (is_ipv4(name))
		return CAIRN_EINVAL;
	if (strncmp(name, "xn--", 4) == 0 || strncmp(name, "sthree-", 7) == 0 ||
	    strncmp(name, "amzn-s3-demo-", 13) == 0)
		return CAIRN_EINVAL;
	if (ends_with(name, len, "-s3alias") || ends_with(name, len, "--ol-s3") ||
	    ends_with(name, len, ".mrap") || ends_with(name, len, "--x-s3") ||
	    ends_with(name, len, "--table-s3"))
		return CAIRN_EINVAL;
	/* Reserved, except the one reserved bucket that exists: the system
	 * bucket is named in requests (its own rules answer them). */
	if (s3_bucket_name_reserved(name) && strcmp(name, S3_SYSTEM_BUCKET) != 0)
		return CAIRN_EINVAL;
	return 0;
}

bool s3_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

int s3_key_check(const char *key, size_t len)
{
	if (len == 0)
		return CAIRN_EINVAL;
	if (len > S3_KEY_MAX)
		return CAIRN_ETOOBIG;
	if (memchr(key, '\0', len))
		return CAIRN_EINVAL;
	if (!s3_utf8_valid(key, len))
		return CAIRN_EINVAL;
	return 0;
}

/* ---- Range ---- */

/* Parses decimal digits; saturates at UINT64_MAX (a start that large is
 * beyond any object, an end that large is clipped). Returns the count of
 * digits read. */
static size_t parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			v = UINT64_MAX;
		else
			v = v * 10 + d;
	}
	*out = v;
	return i;
}

static const char *skip_ows(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

int s3_range_parse(const char *hdr, uint64_t size, struct s3_range *out)
{
	uint64_t a = 0, b = 0;
	size_t na, nb;

	if (!hdr)
		return 1;
	const char *s = skip_ows(hdr);
	if (strncasecmp(s, "bytes", 5) != 0)
		return 1;
	s = skip_ows(s + 5);
	if (*s != '=')
		return 1;
	s = skip_ows(s + 1);
	if (strchr(s, ','))
		return 1; /* several ranges: S3 serves the whole object */
	if (*s == '-') {
		nb = parse_u64(s + 1, &b);
		if (nb == 0 || *skip_ows(s + 1 + nb) != '\0')
			return 1;
		if (b == 0 || size == 0)
			return CAIRN_ERANGE;
		out->start = b >= size ? 0 : size - b;
		out->end = size - 1;
		return 0;
	}
	na = parse_u64(s, &a);
	if (na == 0 || s[na] != '-')
		return 1;
	s += na + 1;
	nb = parse_u64(s, &b);
	if (*skip_ows(s + nb) != '\0')
		return 1;
	if (nb && b < a)
		return 1; /* syntactically invalid: ignored */
	if (a >= size)
		return CAIRN_ERANGE;
	out->start = a;
	out->end = (nb == 0 || b >= size) ? size - 1 : b;
	return 0;
}

/* ---- dates ---- */

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const wdays_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
					  "Thursday", "Friday", "Saturday"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int parse_month(const char *s)
{
	for (int i = 0; i < 12; i++)
		if (strncmp(s, months[i], 3) == 0)
			return i;
	return -1;
}

/* Reads exactly n digits. */
static bool digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static bool parse_hms(const char *s, struct tm *tm)
{
	return digits(s, 2, &tm->tm_hour) && s[2] == ':' && digits(s + 3, 2, &tm->tm_min) &&
	       s[5] == ':' && digits(s + 6, 2, &tm->tm_sec);
}

static int tm_finish(struct tm *tm, time_t *out)
{
	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y = tm->tm_year + 1900;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (tm->tm_mon < 0 || tm->tm_mon > 11 || tm->tm_mday < 1 ||
	    tm->tm_mday > mdays[tm->tm_mon] || (tm->tm_mon == 1 && !leap && tm->tm_mday > 28) ||
	    tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 60)
		return CAIRN_EINVAL;
	*out = timegm(tm);
	return 0;
}

int s3_http_date_parse(const char *s, time_t *out)
{
	struct tm tm;
	int year;

	memset(&tm, 0, sizeof(tm));
	s = skip_ows(s);
	size_t len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	if (len == 29 && s[3] == ',') {
		if (s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[25] != ' ' ||
		    strncmp(s + 26, "GMT", 3) != 0)
			return CAIRN_EINVAL;
		if (!digits(s + 5, 2, &tm.tm_mday) || (tm.tm_mon = parse_month(s + 8)) < 0 ||
		    !digits(s + 12, 4, &year) || !parse_hms(s + 17, &tm))
			return CAIRN_EINVAL;
		tm.tm_year = year - 1900;
		return tm_finish(&tm, out);
	}
	/* asctime: "Sun Nov  6 08:49:37 1994" */
	if (len == 24 && s[3] == ' ') {
		if ((tm.tm_mon = parse_month(s + 4)) < 0 || s[7] != ' ' || s[10] != ' ' ||
		    s[19] != ' ')
			return CAIRN_EINVAL;
		char d[3] = {s[8] == ' ' ? '0' : s[8], s[9], 0};
		if (!digits(d, 2, &tm.tm_mday) || !parse_hms(s + 11, &tm) ||
		    !digits(s + 20, 4, &year))
			return CAIRN_EINVAL;
		tm.tm_year = year - 1900;
		return tm_finish(&tm, out);
	}
	/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
	const char *comma = memchr(s, ',', len);
	if (comma) {
		bool ok = false;
		size_t wl = (size_t)(comma - s);
		for (int i = 0; i < 7; i++)
			if (strlen(wdays_long[i]) == wl && strncmp(s, wdays_long[i], wl) == 0)
				ok = true;
		const char *p = comma + 1;
		if (!ok || (size_t)(s + len - p) != 23 || p[0] != ' ' || p[3] != '-' ||
		    p[7] != '-' || p[10] != ' ' || p[19] != ' ' || strncmp(p + 20, "GMT", 3) != 0)
			return CAIRN_EINVAL;
		if (!digits(p + 1, 2, &tm.tm_mday) || (tm.tm_mon = parse_month(p + 4)) < 0 ||
		    !digits(p + 8, 2, &year) || !parse_hms(p + 11, &tm))
			return CAIRN_EINVAL;
		/* RFC 7231: a two-digit year more than 50 years in the future
		 * is in the past century; a fixed pivot is close enough. */
		tm.tm_year = year < 70 ? year + 100 : year;
		return tm_finish(&tm, out);
	}
	return CAIRN_EINVAL;
}

/* Writes v as exactly n decimal digits (v < 10^n). */
static char *put_num(char *p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + n;
}

/* Broken-down UTC time with the year kept in 0..9999 so every format has
 * a fixed width. */
static void utc(time_t t, struct tm *tm)
{
	if (!gmtime_r(&t, tm) || tm->tm_year + 1900 < 0 || tm->tm_year + 1900 > 9999) {
		memset(tm, 0, sizeof(*tm));
		tm->tm_year = 70;
		tm->tm_mday = 1;
		tm->tm_wday = 4;
	}
}

void s3_http_date_format(time_t t, char *out)
{
	struct tm tm;
	char *p = out;
	utc(t, &tm);
	memcpy(p, wdays[tm.tm_wday], 3);
	p += 3;
	*p++ = ',';
	*p++ = ' ';
	p = put_num(p, (unsigned)tm.tm_mday, 2);
	*p++ = ' ';
	memcpy(p, months[tm.tm_mon], 3);
	p += 3;
	*p++ = ' ';
	p = put_num(p, (unsigned)(tm.tm_year + 1900), 4);
	*p++ = ' ';
	p = put_num(p, (unsigned)tm.tm_hour, 2);
	*p++ = ':';
	p = put_num(p, (unsigned)tm.tm_min, 2);
	*p++ = ':';
	p = put_num(p, (unsigned)tm.tm_sec, 2);
	memcpy(p, " GMT", 5);
}

void s3_iso_basic_format(time_t t, char *out)
{
	struct tm tm;
	char *p = out;
	utc(t, &tm);
	p = put_num(p, (unsigned)(tm.tm_year + 1900), 4);
	p = put_num(p, (unsigned)tm.tm_mon + 1, 2);
	p = put_num(p, (unsigned)tm.tm_mday, 2);
	*p++ = 'T';
	p = put_num(p, (unsigned)tm.tm_hour, 2);
	p = put_num(p, (unsigned)tm.tm_min, 2);
	p = put_num(p, (unsigned)tm.tm_sec, 2);
	*p++ = 'Z';
	*p = '\0';
}

int s3_iso_basic_parse(const char *s, time_t *out)
{
	struct tm tm;
	int year, mon;

	memset(&tm, 0, sizeof(tm));
	if (strlen(s) != S3_ISO_BASIC_LEN || s[8] != 'T' || s[15] != 'Z')
		return CAIRN_EINVAL;
	if (!digits(s, 4, &year) || !digits(s + 4, 2, &mon) || !digits(s + 6, 2, &tm.tm_mday) ||
	    !digits(s + 9, 2, &tm.tm_hour) || !digits(s + 11, 2, &tm.tm_min) ||
	    !digits(s + 13, 2, &tm.tm_sec))
		return CAIRN_EINVAL;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	return tm_finish(&tm, out);
}

void s3_iso_ext_format(time_t t, unsigned ms, char *out)
{
	struct tm tm;
	char *p = out;
	utc(t, &tm);
	p = put_num(p, (unsigned)(tm.tm_year + 1900), 4);
	*p++ = '-';
	p = put_num(p, (unsigned)tm.tm_mon + 1, 2);
	*p++ = '-';
	p = put_num(p, (unsigned)tm.tm_mday, 2);
	*p++ = 'T';
	p = put_num(p, (unsigned)tm.tm_hour, 2);
	*p++ = ':';
	p = put_num(p, (unsigned)tm.tm_min, 2);
	*p++ = ':';
	p = put_num(p, (unsigned)tm.tm_sec, 2);
	*p++ = '.';
	p = put_num(p, ms % 1000, 3);
	*p++ = 'Z';
	*p = '\0';
}

/* ---- ETags and conditions ---- */

long s3_etag_quote(const char *etag, char *out, size_t cap)
{
	size_t n = strlen(etag);
	if (n + 3 > cap)
		return CAIRN_ETOOBIG;
	out[0] = '"';
	memcpy(out + 1, etag, n);
	out[n + 1] = '"';
	out[n + 2] = '\0';
	return (long)(n + 2);
}

void s3_etag_unquote(const char *s, size_t len, const char **out, size_t *out_len)
{
	while (len && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len >= 2 && s[0] == 'W' && s[1] == '/')
		s += 2, len -= 2;
	if (len >= 2 && s[0] == '"' && s[len - 1] == '"')
		s++, len -= 2;
	*out = s;
	*out_len = len;
}

bool s3_etag_list_match(const char *list, const char *etag)
{
	size_t elen = strlen(etag);
	const char *p = list;
	/* Tags cannot contain ',' (RFC 7232 etagc excludes nothing but '"'
	 * and controls, yet no S3 ETag has a comma), so a split is exact. */
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		const char *t;
		size_t tl;
		s3_etag_unquote(p, n, &t, &tl);
		if (tl == 1 && t[0] == '*')
			return true;
		if (tl == elen && memcmp(t, etag, elen) == 0)
			return true;
		if (!comma)
			break;
		p = comma + 1;
	}
	return false;
}

int s3_cond_eval(const struct s3_cond *c, const char *etag, time_t mtime)
{
	time_t t;

	if (c->if_match) {
		if (!s3_etag_list_match(c->if_match, etag))
			return CAIRN_EPRECOND;
	} else if (c->if_unmodified_since && s3_http_date_parse(c->if_unmodified_since, &t) == 0) {
		if (mtime > t)
			return CAIRN_EPRECOND;
	}
	if (c->if_none_match) {
		if (s3_etag_list_match(c->if_none_match, etag))
			return CAIRN_ENOTMODIFIED;
	} else if (c->if_modified_since && s3_http_date_parse(c->if_modified_since, &t) == 0) {
		if (mtime <= t)
			return CAIRN_ENOTMODIFIED;
	}
	return 0;
}

/* ---- user metadata ---- */

bool s3_meta_is_user(const char *name)
{
	return strncasecmp(name, S3_META_PREFIX, sizeof(S3_META_PREFIX) - 1) == 0 &&
	       name[sizeof(S3_META_PREFIX) - 1] != '\0';
}

size_t s3_meta_size(const char *name, const char *value)
{
	size_t n = strlen(name);
	if (s3_meta_is_user(name))
		n -= sizeof(S3_META_PREFIX) - 1;
	return n + (value ? strlen(value) : 0);
}

static bool is_tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

int s3_meta_name_check(const char *name)
{
	if (!s3_meta_is_user(name))
		return CAIRN_EINVAL;
	for (const char *p = name; *p; p++)
		if (!is_tchar((unsigned char)*p))
			return CAIRN_EINVAL;
	return 0;
}
