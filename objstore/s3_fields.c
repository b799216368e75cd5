/* objstore/s3_fields.c - an object record's variable fields, built from a
 * write request's headers (PutObject, CreateMultipartUpload, CopyObject
 * with REPLACE). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "objstore/s3_server_internal.h"

void s3_fbuf_add(struct s3_fbuf *f, uint8_t tag, const char *name, size_t nlen, const char *val,
		 size_t vlen)
{
	struct s3_field_hdr h = {.tag = tag, .nlen = (uint16_t)nlen, .vlen = (uint16_t)vlen};
	size_t need = sizeof(h) + nlen + vlen;

	if (f->err)
		return;
	if (nlen > UINT16_MAX || vlen > UINT16_MAX || f->n == UINT16_MAX) {
		f->err = CAIRN_ETOOBIG;
		return;
	}
	if (f->len + need > f->cap) {
		size_t cap = (f->cap ? f->cap * 2 : 256) + need;
		uint8_t *np = realloc(f->p, cap);
		if (!np) {
			f->err = -ENOMEM;
			return;
		}
		f->p = np;
		f->cap = cap;
	}
	memcpy(f->p + f->len, &h, sizeof(h));
	memcpy(f->p + f->len + sizeof(h), name, nlen);
	memcpy(f->p + f->len + sizeof(h) + nlen, val, vlen);
	f->len += need;
	f->n++;
}

static const struct {
	const char *header;
	uint8_t tag;
} std_fields[] = {
    {"Content-Type", S3_F_CONTENT_TYPE},
    {"Content-Encoding", S3_F_CONTENT_ENCODING},
    {"Content-Disposition", S3_F_CONTENT_DISPOSITION},
    {"Content-Language", S3_F_CONTENT_LANGUAGE},
    {"Cache-Control", S3_F_CACHE_CONTROL},
    {"Expires", S3_F_EXPIRES},
};

/* Content-Encoding without its "aws-chunked" token: that one describes the
 * request's framing, not the object ("aws-chunked" alone: nothing stored;
 * "aws-chunked,gzip": "gzip"). Returns the length written to out. */
static size_t content_encoding_stored(const char *v, char *out, size_t cap)
{
	size_t n = 0;

	while (*v) {
		const char *end = strchr(v, ',');
		size_t len = end ? (size_t)(end - v) : strlen(v);
		const char *t = v;
		size_t tl = len;
		while (tl && (*t == ' ' || *t == '\t'))
			t++, tl--;
		while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
			tl--;
		if (tl && !(tl == 11 && strncasecmp(t, "aws-chunked", 11) == 0) &&
		    n + tl + 1 < cap) {
			if (n)
				out[n++] = ',';
			memcpy(out + n, t, tl);
			n += tl;
		}
		v += len;
		if (*v == ',')
			v++;
	}
	out[n] = 0;
	return n;
}

/* A user metadata value goes back out as a response header, where control
 * characters (other than HTAB) are not valid field content (RFC 9110 5.5);
 * such a value is refused at write time rather than stored unreturnable. */
static bool meta_value_ok(const char *v)
{
	for (const unsigned char *c = (const unsigned char *)v; *c; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return false;
	return true;
}

int s3_fields_from_request(struct s3_req *r, struct s3_fbuf *f)
{
	size_t meta = 0;

	for (size_t i = 0; i < sizeof(std_fields) / sizeof(std_fields[0]); i++) {
		const char *v = s3_req_header(r, std_fields[i].header);
		if (v && std_fields[i].tag == S3_F_CONTENT_ENCODING) {
			char ce[1024];
			size_t n = content_encoding_stored(v, ce, sizeof(ce));
			if (n)
				s3_fbuf_add(f, S3_F_CONTENT_ENCODING, "", 0, ce, n);
			continue;
		}
		if (v)
			s3_fbuf_add(f, std_fields[i].tag, "", 0, v, strlen(v));
	}
	if (!s3_req_header(r, "Content-Type"))
		s3_fbuf_add(f, S3_F_CONTENT_TYPE, "", 0, "binary/octet-stream", 19);
	for (size_t i = 0; i < r->nhdrs; i++) {
		const char *name = r->hdrs[i].name, *v = r->hdrs[i].value;
		char lower[256];
		size_t nl;
		if (!s3_meta_is_user(name))
			continue;
		if (s3_meta_name_check(name) < 0) {
			s3_reply_error(r, S3E_INVALID_ARGUMENT, "Invalid x-amz-meta- header name");
			return 1;
		}
		if (!meta_value_ok(v)) {
			s3_reply_error(r, S3E_INVALID_ARGUMENT, "Invalid x-amz-meta- header value");
			return 1;
		}
		meta += s3_meta_size(name, v);
		nl = strlen(name) - strlen(S3_META_PREFIX);
		if (meta > S3_META_MAX || nl >= sizeof(lower)) {
			s3_reply_error(r, S3E_METADATA_TOO_LARGE, NULL);
			return 1;
		}
		for (size_t j = 0; j < nl; j++) {
			char c = name[strlen(S3_META_PREFIX) + j];
			lower[j] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		s3_fbuf_add(f, S3_F_USER_META, lower, nl, v, strlen(v));
	}
	s3_fbuf_add(f, S3_F_OWNER, "", 0, r->key.user, strlen(r->key.user));
	if (f->err) {
		s3_reply_error(r, f->err == -ENOMEM ? S3E_SLOW_DOWN : S3E_METADATA_TOO_LARGE, NULL);
		return 1;
	}
	return 0;
}
