/* objstore/s3_xml.c - XML response writer and request body parsers (expat). */
#include "objstore/s3_xml.h"

#include <errno.h>
#include <expat.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fault.h"
#include "objstore/s3_parse.h"

/* ---- writer ---- */

static const char xml_decl[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

static void xml_reserve(struct s3_xml *x, size_t more)
{
	if (x->err)
		return;
	if (x->len + more + 1 <= x->cap)
		return;
	size_t cap = x->cap ? x->cap : 512;
	while (cap < x->len + more + 1) {
		if (cap > SIZE_MAX / 2) {
			x->err = -ENOMEM;
			return;
		}
		cap *= 2;
	}
	char *nb = FAULT("s3_xml_alloc") ? NULL : realloc(x->buf, cap);
	if (!nb) {
		x->err = -ENOMEM;
		return;
	}
	x->buf = nb;
	x->cap = cap;
}

static void xml_put(struct s3_xml *x, const char *s, size_t n)
{
	xml_reserve(x, n);
	if (x->err)
		return;
	memcpy(x->buf + x->len, s, n);
	x->len += n;
	x->buf[x->len] = '\0';
}

static void xml_puts(struct s3_xml *x, const char *s)
{
	xml_put(x, s, strlen(s));
}

void s3_xml_init(struct s3_xml *x)
{
	memset(x, 0, sizeof(*x));
	xml_put(x, xml_decl, sizeof(xml_decl) - 1);
}

void s3_xml_free(struct s3_xml *x)
{
	free(x->buf);
	memset(x, 0, sizeof(*x));
}

void s3_xml_text(struct s3_xml *x, const char *text, size_t len)
{
	/* Escaped runs are copied in one go; only special bytes cost a branch. */
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		const char *rep = NULL;
		char num[8];
		switch (c) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&apos;";
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				/* Numeric references keep \t \r \n and other control
				 * bytes visible to the client, as S3 does. */
				snprintf(num, sizeof(num), "&#x%X;", c);
				rep = num;
			}
			break;
		}
		if (!rep)
			continue;
		xml_put(x, text + run, i - run);
		xml_puts(x, rep);
		run = i + 1;
	}
	xml_put(x, text + run, len - run);
}

void s3_xml_open(struct s3_xml *x, const char *name, const char *xmlns)
{
	if (x->err)
		return;
	if (x->depth >= S3_XML_DEPTH_MAX) {
		x->err = CAIRN_EINVAL;
		return;
	}
	xml_puts(x, "<");
	xml_puts(x, name);
	if (xmlns) {
		xml_puts(x, " xmlns=\"");
		s3_xml_text(x, xmlns, strlen(xmlns));
		xml_puts(x, "\"");
	}
	xml_puts(x, ">");
	x->stack[x->depth++] = name;
}

void s3_xml_close(struct s3_xml *x)
{
	if (x->err)
		return;
	if (x->depth <= 0) {
		x->err = CAIRN_EINVAL;
		return;
	}
	const char *name = x->stack[--x->depth];
	xml_puts(x, "</");
	xml_puts(x, name);
	xml_puts(x, ">");
}

void s3_xml_elemn(struct s3_xml *x, const char *name, const char *text, size_t len)
{
	xml_puts(x, "<");
	xml_puts(x, name);
	xml_puts(x, ">");
	if (text)
		s3_xml_text(x, text, len);
	xml_puts(x, "</");
	xml_puts(x, name);
	xml_puts(x, ">");
}

void s3_xml_elem(struct s3_xml *x, const char *name, const char *text)
{
	s3_xml_elemn(x, name, text, text ? strlen(text) : 0);
}

void s3_xml_elem_u64(struct s3_xml *x, const char *name, uint64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRIu64, v);
	s3_xml_elemn(x, name, num, (size_t)n);
}

void s3_xml_elem_bool(struct s3_xml *x, const char *name, bool v)
{
	s3_xml_elem(x, name, v ? "true" : "false");
}

int s3_xml_finish(struct s3_xml *x, char **out, size_t *len)
{
	while (!x->err && x->depth > 0)
		s3_xml_close(x);
	int err = x->err;
	if (err) {
		s3_xml_free(x);
		return err;
	}
	*out = x->buf;
	*len = x->len;
	memset(x, 0, sizeof(*x));
	return 0;
}

/* ---- parsers ---- */

/* Collected character data of the element being parsed, capped so a body
 * of bounded size cannot make us hold more than it. */
struct text_buf {
	char *p;
	size_t len, cap;
};

static int text_add(struct text_buf *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 64;
		while (cap < t->len + n + 1)
			cap *= 2;
		char *np = FAULT("s3_xml_alloc") ? NULL : realloc(t->p, cap);
		if (!np)
			return -ENOMEM;
		t->p = np;
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
	return 0;
}

/* Strips the namespace part that expat puts before the separator. */
static const char *local_name(const char *name)
{
	const char *sep = strrchr(name, '\x01');
	return sep ? sep + 1 : name;
}

#define NS_SEP '\x01'

enum {
	DEL_DOC = 0, /* before <Delete> */
	DEL_ROOT,    /* inside <Delete> */
	DEL_QUIET,   /* inside <Quiet> */
	DEL_OBJECT,  /* inside <Object> */
	DEL_KEY,     /* inside <Object><Key> */
	DEL_VERSION, /* inside <Object><VersionId> */
	DEL_SKIP,    /* inside an element we do not know (ignored) */
	DEL_DONE,    /* after </Delete> */
};

struct del_ctx {
	XML_Parser p;
	int state;
	int skip_depth;	 /* nesting inside DEL_SKIP */
	int skip_return; /* state to return to after the skipped element */
	int err;
	bool have_key;
	bool building; /* objs[req->n] is initialised, not yet counted */
	bool quiet_seen;
	size_t cap;
	struct s3_delete_req *req;
	struct text_buf text;
	struct text_buf version;
};

static void del_fail(struct del_ctx *c, int err)
{
	if (!c->err)
		c->err = err;
	XML_StopParser(c->p, XML_FALSE);
}

static void XMLCALL del_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct del_ctx *c = ud;
	const char *ln = local_name(name);
	(void)attrs;

	if (c->err)
		return;
	switch (c->state) {
	case DEL_DOC:
		if (strcmp(ln, "Delete") != 0)
			return del_fail(c, CAIRN_EINVAL);
		c->state = DEL_ROOT;
		return;
	case DEL_ROOT:
		if (strcmp(ln, "Quiet") == 0) {
			if (c->quiet_seen)
				return del_fail(c, CAIRN_EINVAL);
			c->quiet_seen = true;
			c->text.len = 0;
			c->state = DEL_QUIET;
			return;
		}
		if (strcmp(ln, "Object") == 0) {
			struct s3_delete_req *r = c->req;
			if (r->n >= S3_DELETE_MAX_OBJECTS)
				return del_fail(c, CAIRN_EINVAL);
			if (r->n == c->cap) {
				size_t ncap = c->cap ? c->cap * 2 : 16;
				void *np = FAULT("s3_xml_alloc")
					       ? NULL
					       : realloc(r->objs, ncap * sizeof(*r->objs));
				if (!np)
					return del_fail(c, -ENOMEM);
				r->objs = np;
				c->cap = ncap;
			}
			memset(&r->objs[r->n], 0, sizeof(r->objs[r->n]));
			c->have_key = false;
			c->building = true;
			c->version.len = 0;
			c->state = DEL_OBJECT;
			return;
		}
		break;
	case DEL_OBJECT:
		if (strcmp(ln, "Key") == 0) {
			if (c->have_key)
				return del_fail(c, CAIRN_EINVAL);
			c->text.len = 0;
			if (text_add(&c->text, "", 0))
				return del_fail(c, -ENOMEM);
			c->state = DEL_KEY;
			return;
		}
		if (strcmp(ln, "VersionId") == 0) {
			c->version.len = 0;
			if (text_add(&c->version, "", 0))
				return del_fail(c, -ENOMEM);
			c->state = DEL_VERSION;
			return;
		}
		break;
	case DEL_QUIET:
	case DEL_KEY:
	case DEL_VERSION:
		/* Elements inside text-only elements are malformed. */
		return del_fail(c, CAIRN_EINVAL);
	case DEL_SKIP:
		c->skip_depth++;
		return;
	default:
		return del_fail(c, CAIRN_EINVAL);
	}
	/* Unknown element under Delete or Object: ignored, like S3 ignores
	 * elements it does not know (ETag, LastModifiedTime, Size...). */
	c->skip_return = c->state;
	c->skip_depth = 1;
	c->state = DEL_SKIP;
}

static void XMLCALL del_end(void *ud, const XML_Char *name)
{
	struct del_ctx *c = ud;
	(void)name;

	if (c->err)
		return;
	switch (c->state) {
	case DEL_ROOT:
		c->state = DEL_DONE;
		return;
	case DEL_QUIET: {
		/* xsd:boolean: true/false/1/0, surrounding whitespace allowed. */
		const char *s = c->text.p ? c->text.p : "";
		size_t n = c->text.len;
		while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
			s++, n--;
		while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' ||
			     s[n - 1] == '\r'))
			n--;
		if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 1 && s[0] == '1'))
			c->req->quiet = true;
		else if ((n == 5 && memcmp(s, "false", 5) == 0) || (n == 1 && s[0] == '0'))
			c->req->quiet = false;
		else
			return del_fail(c, CAIRN_EINVAL);
		c->state = DEL_ROOT;
		return;
	}
	case DEL_KEY: {
		struct s3_delete_obj *o = &c->req->objs[c->req->n];
		o->key = c->text.p;
		o->key_len = c->text.len;
		memset(&c->text, 0, sizeof(c->text));
		c->have_key = true;
		c->state = DEL_OBJECT;
		return;
	}
	case DEL_VERSION: {
		struct s3_delete_obj *o = &c->req->objs[c->req->n];
		free(o->version_id);
		o->version_id = c->version.p;
		memset(&c->version, 0, sizeof(c->version));
		c->state = DEL_OBJECT;
		return;
	}
	case DEL_OBJECT: {
		if (!c->have_key)
			return del_fail(c, CAIRN_EINVAL);
		c->building = false;
		c->req->n++;
		c->state = DEL_ROOT;
		return;
	}
	case DEL_SKIP:
		if (--c->skip_depth == 0)
			c->state = c->skip_return;
		return;
	default:
		return del_fail(c, CAIRN_EINVAL);
	}
}

static void XMLCALL del_chars(void *ud, const XML_Char *s, int len)
{
	struct del_ctx *c = ud;
	int err = 0;

	if (c->err)
		return;
	switch (c->state) {
	case DEL_QUIET:
		/* A Quiet value is a handful of bytes; more is not a boolean. */
		if (c->text.len + (size_t)len > 64)
			return del_fail(c, CAIRN_EINVAL);
		err = text_add(&c->text, s, (size_t)len);
		break;
	case DEL_KEY:
		err = text_add(&c->text, s, (size_t)len);
		break;
	case DEL_VERSION:
		if (c->version.len + (size_t)len > 1024)
			return del_fail(c, CAIRN_EINVAL);
		err = text_add(&c->version, s, (size_t)len);
		break;
	default:
		break; /* whitespace between elements, skipped content */
	}
	if (err)
		del_fail(c, err);
}

/* Any DOCTYPE (and so any entity declaration) is refused before expat
 * could expand anything: no billion laughs, no external entities. Both
 * parser contexts start with their XML_Parser, which is how these shared
 * handlers find it. */
static void XMLCALL doctype_start(void *ud, const XML_Char *name, const XML_Char *sysid,
				  const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	XML_StopParser(*(XML_Parser *)ud, XML_FALSE);
}

static void XMLCALL entity_decl(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
				int value_len, const XML_Char *base, const XML_Char *sysid,
				const XML_Char *pubid, const XML_Char *notation)
{
	(void)name;
	(void)is_param;
	(void)value;
	(void)value_len;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	XML_StopParser(*(XML_Parser *)ud, XML_FALSE);
}

/* A namespace-aware parser that refuses DTDs; ud's first member must be
 * the XML_Parser (set by the caller right after). */
static XML_Parser xml_new_parser(void *ud)
{
	if (FAULT("s3_xml_alloc"))
		return NULL;
	XML_Parser p = XML_ParserCreateNS("UTF-8", NS_SEP);
	if (!p)
		return NULL;
	XML_SetUserData(p, ud);
	XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
	XML_SetStartDoctypeDeclHandler(p, doctype_start);
	XML_SetEntityDeclHandler(p, entity_decl);
	return p;
}

int s3_xml_parse_delete(const char *body, size_t len, struct s3_delete_req *out)
{
	struct del_ctx c;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.req = out;
	if (len > S3_DELETE_BODY_MAX || len > INT32_MAX)
		return CAIRN_EINVAL;
	c.p = xml_new_parser(&c);
	if (!c.p)
		return -ENOMEM;
	XML_SetElementHandler(c.p, del_start, del_end);
	XML_SetCharacterDataHandler(c.p, del_chars);
	if (XML_Parse(c.p, body ? body : "", (int)len, XML_TRUE) != XML_STATUS_OK) {
		ret = c.err ? c.err : CAIRN_EINVAL;
		if (XML_GetErrorCode(c.p) == XML_ERROR_NO_MEMORY)
			ret = -ENOMEM;
		goto out;
	}
	if (c.err) {
		ret = c.err;
		goto out;
	}
	/* S3 requires at least one Object. */
	if (c.state != DEL_DONE || out->n == 0)
		ret = CAIRN_EINVAL;
out:
	if (ret) {
		/* The object under construction (not yet counted) may own a
		 * version id. */
		if (c.building) {
			free(out->objs[out->n].version_id);
			free(out->objs[out->n].key);
		}
		s3_delete_req_free(out);
	}
	free(c.text.p);
	free(c.version.p);
	XML_ParserFree(c.p);
	return ret;
}

void s3_delete_req_free(struct s3_delete_req *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->objs[i].key);
		free(r->objs[i].version_id);
	}
	free(r->objs);
	memset(r, 0, sizeof(*r));
}

struct cb_ctx {
	XML_Parser p;
	int state; /* 0 doc, 1 root, 2 LocationConstraint, 3 skip, 4 done */
	int skip_depth;
	int err;
	bool seen;
	struct text_buf text;
};

static void cb_fail(struct cb_ctx *c, int err)
{
	if (!c->err)
		c->err = err;
	XML_StopParser(c->p, XML_FALSE);
}

static void XMLCALL cb_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct cb_ctx *c = ud;
	const char *ln = local_name(name);
	(void)attrs;

	if (c->err)
		return;
	switch (c->state) {
	case 0:
		if (strcmp(ln, "CreateBucketConfiguration") != 0)
			return cb_fail(c, CAIRN_EINVAL);
		c->state = 1;
		return;
	case 1:
		if (strcmp(ln, "LocationConstraint") == 0) {
			if (c->seen)
				return cb_fail(c, CAIRN_EINVAL);
			c->seen = true;
			c->state = 2;
			return;
		}
		/* Bucket, Location (directory buckets) and friends: ignored. */
		c->state = 3;
		c->skip_depth = 1;
		return;
	case 3:
		c->skip_depth++;
		return;
	default:
		return cb_fail(c, CAIRN_EINVAL);
	}
}

static void XMLCALL cb_end(void *ud, const XML_Char *name)
{
	struct cb_ctx *c = ud;
	(void)name;

	if (c->err)
		return;
	switch (c->state) {
	case 1:
		c->state = 4;
		return;
	case 2:
		c->state = 1;
		return;
	case 3:
		if (--c->skip_depth == 0)
			c->state = 1;
		return;
	default:
		return cb_fail(c, CAIRN_EINVAL);
	}
}

static void XMLCALL cb_chars(void *ud, const XML_Char *s, int len)
{
	struct cb_ctx *c = ud;
	if (c->err || c->state != 2)
		return;
	if (c->text.len + (size_t)len > 256)
		return cb_fail(c, CAIRN_EINVAL);
	int err = text_add(&c->text, s, (size_t)len);
	if (err)
		cb_fail(c, err);
}

int s3_xml_parse_create_bucket(const char *body, size_t len, char *location, size_t cap)
{
	struct cb_ctx c;
	int ret = 0;

	if (cap == 0)
		return CAIRN_EINVAL;
	location[0] = '\0';
	if (len == 0)
		return 0;
	if (len > S3_CREATE_BUCKET_BODY_MAX)
		return CAIRN_EINVAL;
	memset(&c, 0, sizeof(c));
	c.p = xml_new_parser(&c);
	if (!c.p)
		return -ENOMEM;
	XML_SetElementHandler(c.p, cb_start, cb_end);
	XML_SetCharacterDataHandler(c.p, cb_chars);
	if (XML_Parse(c.p, body, (int)len, XML_TRUE) != XML_STATUS_OK) {
		ret = c.err ? c.err : CAIRN_EINVAL;
		if (XML_GetErrorCode(c.p) == XML_ERROR_NO_MEMORY)
			ret = -ENOMEM;
		goto out;
	}
	if (c.err || c.state != 4) {
		ret = c.err ? c.err : CAIRN_EINVAL;
		goto out;
	}
	/* Surrounding whitespace is not part of a region name. */
	const char *s = c.text.p ? c.text.p : "";
	size_t n = c.text.len;
	while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	if (n + 1 > cap) {
		ret = CAIRN_EINVAL;
		goto out;
	}
	memcpy(location, s, n);
	location[n] = '\0';
out:
	free(c.text.p);
	XML_ParserFree(c.p);
	return ret;
}

/* ---- CompleteMultipartUpload ---- */

enum { CMP_DOC = 0, CMP_ROOT, CMP_PART, CMP_FIELD, CMP_SKIP, CMP_DONE };
enum { CMPF_NUMBER = 1, CMPF_ETAG, CMPF_CKSUM };

struct cmp_ctx {
	XML_Parser p;
	int state, field, skip_depth, skip_return, err;
	bool have_number;
	size_t cap;
	struct s3_complete_req *req;
	struct s3_complete_part cur;
	struct text_buf text;
};

static void cmp_fail(struct cmp_ctx *c, int err)
{
	if (!c->err)
		c->err = err;
	XML_StopParser(c->p, XML_FALSE);
}

static void XMLCALL cmp_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct cmp_ctx *c = ud;
	const char *ln = local_name(name);
	(void)attrs;

	if (c->err)
		return;
	switch (c->state) {
	case CMP_DOC:
		if (strcmp(ln, "CompleteMultipartUpload") != 0)
			return cmp_fail(c, CAIRN_EINVAL);
		c->state = CMP_ROOT;
		return;
	case CMP_ROOT:
		if (strcmp(ln, "Part") == 0) {
			if (c->req->n >= S3_COMPLETE_MAX_PARTS)
				return cmp_fail(c, CAIRN_EINVAL);
			memset(&c->cur, 0, sizeof(c->cur));
			c->have_number = false;
			c->state = CMP_PART;
			return;
		}
		break;
	case CMP_PART:
		c->field = 0;
		if (strcmp(ln, "PartNumber") == 0)
			c->field = CMPF_NUMBER;
		else if (strcmp(ln, "ETag") == 0)
			c->field = CMPF_ETAG;
		else if (strncmp(ln, "Checksum", 8) == 0 && ln[8] &&
			 strlen(ln + 8) < sizeof(c->cur.cksum_algo))
			c->field = CMPF_CKSUM;
		if (!c->field)
			break;
		if (c->field == CMPF_CKSUM)
			strcpy(c->cur.cksum_algo, ln + 8);
		c->text.len = 0;
		if (text_add(&c->text, "", 0))
			return cmp_fail(c, -ENOMEM);
		c->state = CMP_FIELD;
		return;
	case CMP_SKIP:
		c->skip_depth++;
		return;
	default:
		return cmp_fail(c, CAIRN_EINVAL);
	}
	/* unknown elements are ignored, as S3 does */
	c->skip_return = c->state;
	c->skip_depth = 1;
	c->state = CMP_SKIP;
}

static bool cmp_trim(const struct text_buf *t, const char **s, size_t *n)
{
	*s = t->p ? t->p : "";
	*n = t->len;
	while (*n && strchr(" \t\r\n", **s))
		(*s)++, (*n)--;
	while (*n && strchr(" \t\r\n", (*s)[*n - 1]))
		(*n)--;
	return *n > 0;
}

static void XMLCALL cmp_end(void *ud, const XML_Char *name)
{
	struct cmp_ctx *c = ud;
	struct s3_complete_req *r = c->req;
	const char *s;
	size_t n;
	(void)name;

	if (c->err)
		return;
	switch (c->state) {
	case CMP_ROOT:
		c->state = CMP_DONE;
		return;
	case CMP_FIELD:
		c->state = CMP_PART;
		if (!cmp_trim(&c->text, &s, &n))
			return cmp_fail(c, CAIRN_EINVAL);
		if (c->field == CMPF_NUMBER) {
			uint64_t v = 0;
			if (n > 6)
				return cmp_fail(c, CAIRN_EINVAL);
			for (size_t i = 0; i < n; i++) {
				if (s[i] < '0' || s[i] > '9')
					return cmp_fail(c, CAIRN_EINVAL);
				v = v * 10 + (uint64_t)(s[i] - '0');
			}
			c->cur.number = (uint32_t)v;
			c->have_number = true;
		} else if (c->field == CMPF_ETAG) {
			const char *t;
			size_t tl;
			s3_etag_unquote(s, n, &t, &tl);
			if (tl >= sizeof(c->cur.etag))
				return cmp_fail(c, CAIRN_EINVAL);
			memcpy(c->cur.etag, t, tl);
			c->cur.etag[tl] = 0;
		} else {
			if (n >= sizeof(c->cur.cksum))
				return cmp_fail(c, CAIRN_EINVAL);
			memcpy(c->cur.cksum, s, n);
			c->cur.cksum[n] = 0;
		}
		return;
	case CMP_PART:
		if (!c->have_number || !c->cur.etag[0])
			return cmp_fail(c, CAIRN_EINVAL);
		if (r->n == c->cap) {
			size_t ncap = c->cap ? c->cap * 2 : 64;
			void *np = realloc(r->parts, ncap * sizeof(*r->parts));
			if (!np)
				return cmp_fail(c, -ENOMEM);
			r->parts = np;
			c->cap = ncap;
		}
		r->parts[r->n++] = c->cur;
		c->state = CMP_ROOT;
		return;
	case CMP_SKIP:
		if (--c->skip_depth == 0)
			c->state = c->skip_return;
		return;
	default:
		return cmp_fail(c, CAIRN_EINVAL);
	}
}

static void XMLCALL cmp_chars(void *ud, const XML_Char *s, int len)
{
	struct cmp_ctx *c = ud;

	if (c->err || c->state != CMP_FIELD)
		return;
	if (c->text.len + (size_t)len > 256)
		return cmp_fail(c, CAIRN_EINVAL);
	if (text_add(&c->text, s, (size_t)len))
		cmp_fail(c, -ENOMEM);
}

int s3_xml_parse_complete(const char *body, size_t len, struct s3_complete_req *out)
{
	struct cmp_ctx c;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.req = out;
	if (len > S3_COMPLETE_BODY_MAX || len > INT32_MAX)
		return CAIRN_EINVAL;
	c.p = xml_new_parser(&c);
	if (!c.p)
		return -ENOMEM;
	XML_SetElementHandler(c.p, cmp_start, cmp_end);
	XML_SetCharacterDataHandler(c.p, cmp_chars);
	if (XML_Parse(c.p, body ? body : "", (int)len, XML_TRUE) != XML_STATUS_OK) {
		ret = c.err ? c.err : CAIRN_EINVAL;
		if (XML_GetErrorCode(c.p) == XML_ERROR_NO_MEMORY)
			ret = -ENOMEM;
	} else if (c.err) {
		ret = c.err;
	} else if (c.state != CMP_DONE || out->n == 0) {
		ret = CAIRN_EINVAL;
	}
	if (ret)
		s3_complete_req_free(out);
	free(c.text.p);
	XML_ParserFree(c.p);
	return ret;
}

void s3_complete_req_free(struct s3_complete_req *r)
{
	if (!r)
		return;
	free(r->parts);
	memset(r, 0, sizeof(*r));
}
