/* blockstore/nbd/nbd_proto.c - NBD handshake state machine, request parser, reply encoders.
 * See nbd_proto.h for the contract; the layouts follow the NBD protocol document. */
#include <errno.h>
#include <string.h>

#include "blockstore/nbd/nbd_proto.h"

/* The most output one option can produce: GO with NAME, DESCRIPTION (each up to
 * NBD_NAME_MAX), EXPORT and BLOCK_SIZE infos, then ACK. Every other option produces less
 * (meta-context queries are de-duplicated to one NBD_REP_META_CONTEXT). */
#define HS_REPLY_MAX                                                                               \
	(2 * (NBD_OPT_REPLY_HDR_LEN + 2 + NBD_NAME_MAX) + (NBD_OPT_REPLY_HDR_LEN + 12) +           \
	 (NBD_OPT_REPLY_HDR_LEN + 14) + NBD_OPT_REPLY_HDR_LEN)
_Static_assert(HS_REPLY_MAX + 128 + NBD_OPT_REPLY_HDR_LEN + 4 + NBD_NAME_MAX <= NBD_HS_OUT_CAP,
	       "handshake output buffer too small");

static const char base_alloc[] = "base:allocation";

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get64(const uint8_t *p)
{
	return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

uint16_t nbd_tflags(uint16_t want)
{
	const uint16_t known =
	    NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_ROTATIONAL |
	    NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_DF |
	    NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE | NBD_FLAG_SEND_FAST_ZERO;
	uint16_t f = (uint16_t)((want & known) | NBD_FLAG_HAS_FLAGS);

	if (f & NBD_FLAG_READ_ONLY)
		f &= (uint16_t) ~(NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
				  NBD_FLAG_SEND_FAST_ZERO);
	if (!(f & NBD_FLAG_SEND_WRITE_ZEROES))
		f &= (uint16_t)~NBD_FLAG_SEND_FAST_ZERO;
	return f;
}

/* ---- handshake output ---- */

static size_t out_room(const struct nbd_hs *hs)
{
	return NBD_HS_OUT_CAP - (hs->out_len - hs->out_off);
}

/* Returns n bytes at the end of the output, compacting first if needed; NULL if the
 * unsent output leaves less than n. */
static uint8_t *out_reserve(struct nbd_hs *hs, size_t n)
{
	if (out_room(hs) < n)
		return NULL;
	if (NBD_HS_OUT_CAP - hs->out_len < n) {
		memmove(hs->out, hs->out + hs->out_off, hs->out_len - hs->out_off);
		hs->out_len -= hs->out_off;
		hs->out_off = 0;
	}
	uint8_t *p = hs->out + hs->out_len;
	hs->out_len += n;
	return p;
}

/* Queues an option reply header for the current option; returns where its len bytes of
 * data go. Callers have checked the room (HS_REPLY_MAX before processing an option). */
static uint8_t *opt_reply(struct nbd_hs *hs, uint32_t type, uint32_t len)
{
	uint8_t *p = out_reserve(hs, NBD_OPT_REPLY_HDR_LEN + (size_t)len);

	if (!p)
		return NULL;
	put64(p, NBD_MAGIC_OPT_REPLY);
	put32(p + 8, hs->opt);
	put32(p + 12, type);
	put32(p + 16, len);
	return p + NBD_OPT_REPLY_HDR_LEN;
}

static void opt_ack(struct nbd_hs *hs, uint32_t type)
{
	(void)opt_reply(hs, type, 0);
}

const void *nbd_hs_out(const struct nbd_hs *hs, size_t *len)
{
	*len = hs->out_len - hs->out_off;
	return hs->out + hs->out_off;
}

void nbd_hs_out_done(struct nbd_hs *hs, size_t n)
{
	size_t pending = hs->out_len - hs->out_off;

	hs->out_off += n < pending ? n : pending;
	if (hs->out_off == hs->out_len)
		hs->out_off = hs->out_len = 0;
}

/* ---- handshake input ---- */

void nbd_hs_init(struct nbd_hs *hs)
{
	memset(hs, 0, offsetof(struct nbd_hs, hdr));
	hs->out_off = hs->out_len = 0;
	uint8_t *p = out_reserve(hs, NBD_GREETING_LEN);
	put64(p, NBD_MAGIC_INIT);
	put64(p + 8, NBD_MAGIC_OPT);
	put16(p + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	hs->state = NBD_HS_CFLAGS;
}

size_t nbd_hs_want(const struct nbd_hs *hs)
{
	switch (hs->state) {
	case NBD_HS_CFLAGS:
		return 4 - hs->have;
	case NBD_HS_OPT_HDR:
		return NBD_OPT_HDR_LEN - hs->have;
	case NBD_HS_OPT_DATA:
		return hs->optlen - hs->have;
	case NBD_HS_DISCARD:
		return hs->discard;
	default:
		return 0;
	}
}

const char *nbd_hs_name(const struct nbd_hs *hs, size_t *len)
{
	if (len)
		*len = hs->namelen;
	return hs->name;
}

const struct nbd_session *nbd_hs_session(const struct nbd_hs *hs)
{
	return &hs->sess;
}

/* Copies a wire string into a NUL-terminated buffer; false if it is too long or holds a
 * NUL (names become C strings for the caller, and the spec forbids NUL in strings). */
static bool take_name(char *dst, const uint8_t *src, uint32_t len)
{
	if (len > NBD_NAME_MAX || memchr(src, 0, len))
		return false;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return true;
}

/* NBD_OPT_INFO / NBD_OPT_GO data: name length, name, count, count info types. */
static int opt_info(struct nbd_hs *hs)
{
	const uint8_t *d = hs->buf;
	uint32_t len = hs->optlen, nlen;

	if (len < 6)
		goto invalid;
	nlen = get32(d);
	if (nlen > len - 6 || !take_name(hs->name, d + 4, nlen))
		goto invalid;
	uint32_t nreq = get16(d + 4 + nlen);
	if ((uint64_t)4 + nlen + 2 + 2ULL * nreq != len)
		goto invalid;
	hs->namelen = nlen;
	hs->info_mask = 0;
	for (uint32_t i = 0; i < nreq; i++) {
		uint16_t t = get16(d + 6 + nlen + 2 * i);
		if (t < 16)
			hs->info_mask |= (uint16_t)(1U << t);
	}
	hs->state = NBD_HS_WAIT;
	return NBD_HS_EV_LOOKUP;
invalid:
	opt_ack(hs, NBD_REP_ERR_INVALID);
	return NBD_HS_EV_NONE;
}

/* Which of our one context a query selects. LIST takes an empty query list, "base:" (the
 * whole namespace) and "base:allocation"; SET takes only the exact name. */
static bool query_matches(const uint8_t *q, uint32_t len, bool list)
{
	if (len == sizeof(base_alloc) - 1 && memcmp(q, base_alloc, len) == 0)
		return true;
	return list && len == 5 && memcmp(q, "base:", 5) == 0;
}

/* NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT data: name length, name, query
 * count, then per query its length and bytes. */
static int opt_meta(struct nbd_hs *hs)
{
	const uint8_t *d = hs->buf;
	uint32_t len = hs->optlen, off, nq;
	bool list = hs->opt == NBD_OPT_LIST_META_CONTEXT, match = false;

	if (!hs->structured || len < 8)
		goto invalid;
	uint32_t nlen = get32(d);
	if (nlen > len - 8 || !take_name(hs->name, d + 4, nlen))
		goto invalid;
	off = 4 + nlen;
	nq = get32(d + off);
	off += 4;
	if (nq == 0 && list)
		match = true;
	for (uint32_t i = 0; i < nq; i++) {
		if (len - off < 4)
			goto invalid;
		uint32_t qlen = get32(d + off);
		off += 4;
		if (qlen > len - off)
			goto invalid;
		if (query_matches(d + off, qlen, list))
			match = true;
		off += qlen;
	}
	if (off != len)
		goto invalid;
	if (match) {
		uint8_t *p = opt_reply(hs, NBD_REP_META_CONTEXT, 4 + sizeof(base_alloc) - 1);
		put32(p, list ? 0 : NBD_META_ID_BASE_ALLOCATION);
		memcpy(p + 4, base_alloc, sizeof(base_alloc) - 1);
	}
	if (!list) {
		/* SET replaces the previous selection, whatever it was. */
		hs->meta_set = match;
		memcpy(hs->meta_name, hs->name, nlen + 1);
	}
	opt_ack(hs, NBD_REP_ACK);
	return NBD_HS_EV_NONE;
invalid:
	/* A failed SET still replaces the selection (with nothing). */
	if (!list)
		hs->meta_set = false;
	opt_ack(hs, NBD_REP_ERR_INVALID);
	return NBD_HS_EV_NONE;
}

/* Acts on a complete option (header in hs->opt/optlen, data in hs->buf). */
static int opt_process(struct nbd_hs *hs)
{
	hs->state = NBD_HS_OPT_HDR;
	hs->have = 0;
	switch (hs->opt) {
	case NBD_OPT_EXPORT_NAME:
		/* This option cannot be answered with an error: a bad name closes. */
		if (!take_name(hs->name, hs->buf, hs->optlen)) {
			hs->state = NBD_HS_DONE;
			return NBD_HS_EV_CLOSE;
		}
		hs->namelen = hs->optlen;
		hs->state = NBD_HS_WAIT;
		return NBD_HS_EV_LOOKUP;
	case NBD_OPT_ABORT:
		/* The client is leaving whatever it sent with the option. */
		opt_ack(hs, NBD_REP_ACK);
		hs->state = NBD_HS_DONE;
		return NBD_HS_EV_CLOSE;
	case NBD_OPT_LIST:
		if (hs->optlen) {
			opt_ack(hs, NBD_REP_ERR_INVALID);
			return NBD_HS_EV_NONE;
		}
		hs->state = NBD_HS_WAIT;
		return NBD_HS_EV_LIST;
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info(hs);
	case NBD_OPT_STRUCTURED_REPLY:
		if (hs->optlen) {
			opt_ack(hs, NBD_REP_ERR_INVALID);
			return NBD_HS_EV_NONE;
		}
		hs->structured = true;
		opt_ack(hs, NBD_REP_ACK);
		return NBD_HS_EV_NONE;
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		return opt_meta(hs);
	default:
		/* Includes STARTTLS: we run without TLS, and UNSUP is allowed for it. */
		opt_ack(hs, NBD_REP_ERR_UNSUP);
		return NBD_HS_EV_NONE;
	}
}

/* A complete option header: decide where its data goes. */
static int opt_header(struct nbd_hs *hs)
{
	hs->have = 0;
	if (get64(hs->hdr) != NBD_MAGIC_OPT)
		goto close;
	hs->opt = get32(hs->hdr + 8);
	hs->optlen = get32(hs->hdr + 12);
	/* Without fixed newstyle the client can only send EXPORT_NAME, and anything else
	 * must close the connection. */
	if (!hs->fixed && hs->opt != NBD_OPT_EXPORT_NAME)
		goto close;
	if (hs->optlen > NBD_OPT_MAX_LEN) {
		if (hs->opt == NBD_OPT_EXPORT_NAME || hs->optlen > NBD_OPT_DISCARD_MAX)
			goto close;
		hs->discard = hs->optlen;
		hs->state = NBD_HS_DISCARD;
		return NBD_HS_EV_NONE;
	}
	hs->state = NBD_HS_OPT_DATA;
	if (hs->optlen == 0)
		return opt_process(hs);
	return NBD_HS_EV_NONE;
close:
	hs->state = NBD_HS_DONE;
	return NBD_HS_EV_CLOSE;
}

int nbd_hs_feed(struct nbd_hs *hs, const void *buf, size_t len, size_t *used)
{
	const uint8_t *in = buf;
	size_t pos = 0;
	int ev = NBD_HS_EV_NONE;

	*used = 0;
	if (hs->state == NBD_HS_WAIT || hs->state == NBD_HS_DONE)
		return -EBUSY;
	while (pos < len && ev == NBD_HS_EV_NONE) {
		size_t n = len - pos, want;

		switch (hs->state) {
		case NBD_HS_CFLAGS:
			want = 4 - hs->have;
			n = n < want ? n : want;
			memcpy(hs->hdr + hs->have, in + pos, n);
			hs->have += (uint32_t)n;
			pos += n;
			if (hs->have < 4)
				break;
			hs->cflags = get32(hs->hdr);
			hs->have = 0;
			/* Unknown client flags must drop the connection. */
			if (hs->cflags &
			    ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
				hs->state = NBD_HS_DONE;
				ev = NBD_HS_EV_CLOSE;
				break;
			}
			hs->fixed = hs->cflags & NBD_FLAG_C_FIXED_NEWSTYLE;
			hs->sess.no_zeroes = hs->cflags & NBD_FLAG_C_NO_ZEROES;
			hs->state = NBD_HS_OPT_HDR;
			break;
		case NBD_HS_OPT_HDR:
			/* Take a new option only when its replies surely fit. */
			if (hs->have == 0 && out_room(hs) < HS_REPLY_MAX)
				goto out;
			want = NBD_OPT_HDR_LEN - hs->have;
			n = n < want ? n : want;
			memcpy(hs->hdr + hs->have, in + pos, n);
			hs->have += (uint32_t)n;
			pos += n;
			if (hs->have == NBD_OPT_HDR_LEN)
				ev = opt_header(hs);
			break;
		case NBD_HS_OPT_DATA:
			want = hs->optlen - hs->have;
			n = n < want ? n : want;
			memcpy(hs->buf + hs->have, in + pos, n);
			hs->have += (uint32_t)n;
			pos += n;
			if (hs->have == hs->optlen)
				ev = opt_process(hs);
			break;
		case NBD_HS_DISCARD:
			n = n < hs->discard ? n : hs->discard;
			hs->discard -= (uint32_t)n;
			pos += n;
			if (hs->discard == 0) {
				opt_ack(hs, NBD_REP_ERR_TOO_BIG);
				hs->state = NBD_HS_OPT_HDR;
				hs->have = 0;
			}
			break;
		default:
			goto out;
		}
	}
out:
	*used = pos;
	if (pos == 0 && len > 0 && ev == NBD_HS_EV_NONE)
		return -EAGAIN;
	return ev;
}

/* Fills the session from the caller's export for the pending name. */
static int fill_session(struct nbd_hs *hs, const struct nbd_export *e, bool block_size_sent)
{
	uint32_t min = e->min_block ? e->min_block : 1;
	uint32_t pref = e->pref_block ? e->pref_block : (min > 4096 ? min : 4096);
	uint32_t max = e->max_block ? e->max_block : NBD_MAX_PAYLOAD;

	/* The spec's rules for advertised sizes: min a power of two up to 64 KiB; pref a
	 * power of two at least max(min, 512); max a multiple of min, at least the smaller
	 * of pref and the export size. */
	if (!is_pow2(min) || min > 65536 || !is_pow2(pref) || pref < min || pref < 512 ||
	    pref > NBD_MAX_PAYLOAD || max < min || max % min || (max < pref && max < e->size))
		return -EINVAL;
	struct nbd_session *s = &hs->sess;
	s->size = e->size;
	s->tflags = nbd_tflags(e->tflags);
	if (!hs->structured)
		s->tflags &= (uint16_t)~NBD_FLAG_SEND_DF;
	/* Without NBD_INFO_BLOCK_SIZE the client knows of no constraint: the spec's
	 * default minimum is 1, so nothing beyond that may be enforced. */
	s->min_block = block_size_sent ? min : 1;
	s->max_payload = max < NBD_MAX_PAYLOAD ? max : NBD_MAX_PAYLOAD;
	s->structured = hs->structured;
	s->base_allocation = hs->structured && hs->meta_set && strcmp(hs->meta_name, hs->name) == 0;
	return 0;
}

static void info_string(struct nbd_hs *hs, uint16_t type, const char *s, size_t len)
{
	if (len > NBD_NAME_MAX)
		len = NBD_NAME_MAX;
	uint8_t *p = opt_reply(hs, NBD_REP_INFO, 2 + (uint32_t)len);
	put16(p, type);
	memcpy(p + 2, s, len);
}

int nbd_hs_answer(struct nbd_hs *hs, const struct nbd_export *e)
{
	bool bs = hs->info_mask & (1U << NBD_INFO_BLOCK_SIZE);
	uint8_t *p;
	int r;

	if (hs->state != NBD_HS_WAIT ||
	    (hs->opt != NBD_OPT_EXPORT_NAME && hs->opt != NBD_OPT_INFO && hs->opt != NBD_OPT_GO))
		return -EBUSY;
	if (hs->opt == NBD_OPT_EXPORT_NAME) {
		if (!e) {
			hs->state = NBD_HS_DONE;
			return NBD_HS_EV_CLOSE;
		}
		r = fill_session(hs, e, false);
		if (r < 0)
			return r;
		size_t n = 10 + (hs->sess.no_zeroes ? 0 : 124);
		p = out_reserve(hs, n);
		memset(p, 0, n);
		put64(p, hs->sess.size);
		put16(p + 8, hs->sess.tflags);
		hs->state = NBD_HS_DONE;
		return NBD_HS_EV_GO;
	}
	if (!e) {
		opt_ack(hs, NBD_REP_ERR_UNKNOWN);
		hs->state = NBD_HS_OPT_HDR;
		return NBD_HS_EV_NONE;
	}
	r = fill_session(hs, e, bs);
	if (r < 0)
		return r;
	if (hs->info_mask & (1U << NBD_INFO_NAME))
		info_string(hs, NBD_INFO_NAME, hs->name, hs->namelen);
	if ((hs->info_mask & (1U << NBD_INFO_DESCRIPTION)) && e->description)
		info_string(hs, NBD_INFO_DESCRIPTION, e->description,
			    strnlen(e->description, NBD_NAME_MAX));
	if (bs) {
		uint32_t min = e->min_block ? e->min_block : 1;
		p = opt_reply(hs, NBD_REP_INFO, 14);
		put16(p, NBD_INFO_BLOCK_SIZE);
		put32(p + 2, min);
		put32(p + 6, e->pref_block ? e->pref_block : (min > 4096 ? min : 4096));
		put32(p + 10, hs->sess.max_payload);
	}
	p = opt_reply(hs, NBD_REP_INFO, 12);
	put16(p, NBD_INFO_EXPORT);
	put64(p + 2, hs->sess.size);
	put16(p + 10, hs->sess.tflags);
	opt_ack(hs, NBD_REP_ACK);
	if (hs->opt == NBD_OPT_GO) {
		hs->state = NBD_HS_DONE;
		return NBD_HS_EV_GO;
	}
	hs->state = NBD_HS_OPT_HDR;
	return NBD_HS_EV_NONE;
}

int nbd_hs_refuse(struct nbd_hs *hs, uint32_t err)
{
	if (hs->state != NBD_HS_WAIT ||
	    (hs->opt != NBD_OPT_EXPORT_NAME && hs->opt != NBD_OPT_INFO && hs->opt != NBD_OPT_GO))
		return -EBUSY;
	if (!(err & 0x80000000U))
		return -EINVAL;
	if (hs->opt == NBD_OPT_EXPORT_NAME) {
		hs->state = NBD_HS_DONE;
		return NBD_HS_EV_CLOSE;
	}
	opt_ack(hs, err);
	hs->state = NBD_HS_OPT_HDR;
	return NBD_HS_EV_NONE;
}

int nbd_hs_list_add(struct nbd_hs *hs, const char *name)
{
	if (hs->state != NBD_HS_WAIT || hs->opt != NBD_OPT_LIST)
		return -EBUSY;
	size_t len = strnlen(name, NBD_NAME_MAX + 1);
	if (len > NBD_NAME_MAX)
		return -EINVAL;
	/* Keep room for the final ACK so list_end never fails for space. */
	if (out_room(hs) < NBD_OPT_REPLY_HDR_LEN * 2 + 4 + len)
		return -EAGAIN;
	uint8_t *p = opt_reply(hs, NBD_REP_SERVER, 4 + (uint32_t)len);
	put32(p, (uint32_t)len);
	memcpy(p + 4, name, len);
	return 0;
}

int nbd_hs_list_end(struct nbd_hs *hs, uint32_t err)
{
	if (hs->state != NBD_HS_WAIT || hs->opt != NBD_OPT_LIST)
		return -EBUSY;
	if (out_room(hs) < NBD_OPT_REPLY_HDR_LEN)
		return -EAGAIN;
	opt_ack(hs, err ? err : NBD_REP_ACK);
	hs->state = NBD_HS_OPT_HDR;
	hs->have = 0;
	return NBD_HS_EV_NONE;
}

/* ---- transmission ---- */

/* Range check without overflow: offset + length <= size. */
static bool in_range(const struct nbd_session *s, uint64_t off, uint32_t len)
{
	return off <= s->size && len <= s->size - off;
}

int nbd_req_parse(const struct nbd_session *s, const uint8_t hdr[NBD_REQ_LEN], struct nbd_req *r)
{
	const uint16_t known = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF |
			       NBD_CMD_FLAG_REQ_ONE | NBD_CMD_FLAG_FAST_ZERO;
	bool ro = s->tflags & NBD_FLAG_READ_ONLY;
	uint16_t allowed; /* command flags this command may carry */
	uint32_t err = 0;

	r->flags = get16(hdr + 4);
	r->type = get16(hdr + 6);
	r->cookie = get64(hdr + 8);
	r->offset = get64(hdr + 16);
	r->length = get32(hdr + 24);
	r->skip = 0;
	if (get32(hdr) != NBD_MAGIC_REQUEST)
		return -EPROTO;
	if (r->type == NBD_CMD_WRITE) {
		/* The spec lets a server hang up on a write payload of more than 2^25 bytes
		 * rather than read it; anything smaller is read and dropped on error. */
		if (r->length > NBD_MAX_PAYLOAD)
			return -EPROTO;
		r->skip = r->length;
	}
	if (r->flags & ~known)
		return NBD_EINVAL;
	/* FUA is valid on any command once advertised. */
	if ((r->flags & NBD_CMD_FLAG_FUA) && !(s->tflags & NBD_FLAG_SEND_FUA))
		return NBD_EINVAL;

	switch (r->type) {
	case NBD_CMD_READ:
		allowed = (s->tflags & NBD_FLAG_SEND_DF) ? NBD_CMD_FLAG_DF : 0;
		/* Over the maximum block size the spec asks for EINVAL; EOVERFLOW is its
		 * answer to a DF read that cannot go in one chunk. */
		if (r->length > s->max_payload)
			err = (r->flags & allowed & NBD_CMD_FLAG_DF) ? NBD_EOVERFLOW : NBD_EINVAL;
		else if (r->length == 0 || !in_range(s, r->offset, r->length))
			err = NBD_EINVAL;
		break;
	case NBD_CMD_WRITE:
		allowed = 0;
		if (r->length == 0 || r->length > s->max_payload)
			err = NBD_EINVAL;
		else if (ro)
			err = NBD_EPERM;
		else if (!in_range(s, r->offset, r->length))
			err = NBD_ENOSPC;
		break;
	case NBD_CMD_DISC:
		/* The spec leaves offset and length unspecified here: ignore them. */
		return (r->flags & ~NBD_CMD_FLAG_FUA) ? NBD_EINVAL : 0;
	case NBD_CMD_FLUSH:
		allowed = 0;
		if (!(s->tflags & NBD_FLAG_SEND_FLUSH) || r->offset || r->length)
			err = NBD_EINVAL;
		break;
	case NBD_CMD_TRIM:
		allowed = 0;
		if (ro)
			err = NBD_EPERM;
		else if (!(s->tflags & NBD_FLAG_SEND_TRIM) || r->length == 0)
			err = NBD_EINVAL;
		else if (!in_range(s, r->offset, r->length))
			err = NBD_ENOSPC;
		break;
	case NBD_CMD_CACHE:
		allowed = 0;
		if (!(s->tflags & NBD_FLAG_SEND_CACHE) || r->length == 0 ||
		    !in_range(s, r->offset, r->length))
			err = NBD_EINVAL;
		break;
	case NBD_CMD_WRITE_ZEROES:
		allowed = NBD_CMD_FLAG_NO_HOLE;
		if (s->tflags & NBD_FLAG_SEND_FAST_ZERO)
			allowed |= NBD_CMD_FLAG_FAST_ZERO;
		if (ro)
			err = NBD_EPERM;
		else if (!(s->tflags & NBD_FLAG_SEND_WRITE_ZEROES) || r->length == 0)
			err = NBD_EINVAL;
		else if (!in_range(s, r->offset, r->length))
			err = NBD_ENOSPC;
		break;
	case NBD_CMD_BLOCK_STATUS:
		allowed = NBD_CMD_FLAG_REQ_ONE;
		if (!s->structured || !s->base_allocation || r->length == 0 ||
		    !in_range(s, r->offset, r->length))
			err = NBD_EINVAL;
		break;
	default:
		return NBD_ENOTSUP;
	}
	if (r->flags & ~(allowed | NBD_CMD_FLAG_FUA))
		return NBD_EINVAL;
	if (err)
		return (int)err;
	/* The client was told the minimum block size (else min_block is 1): hold it to it. */
	if (s->min_block > 1 && r->type != NBD_CMD_FLUSH &&
	    ((r->offset | r->length) & (s->min_block - 1)))
		return NBD_EINVAL;
	return 0;
}

/* ---- replies ---- */

size_t nbd_reply_simple(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t err, uint64_t cookie)
{
	put32(out, NBD_MAGIC_SIMPLE_REPLY);
	put32(out + 4, err);
	put64(out + 8, cookie);
	return NBD_SIMPLE_REPLY_LEN;
}

size_t nbd_sreply_hdr(uint8_t out[NBD_SREPLY_HDR_LEN], uint16_t flags, uint16_t type,
		      uint64_t cookie, uint32_t len)
{
	put32(out, NBD_MAGIC_STRUCTURED_REPLY);
	put16(out + 4, flags);
	put16(out + 6, type);
	put64(out + 8, cookie);
	put32(out + 16, len);
	return NBD_SREPLY_HDR_LEN;
}

size_t nbd_sreply_none(uint8_t out[NBD_SREPLY_HDR_LEN], uint64_t cookie)
{
	return nbd_sreply_hdr(out, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, cookie, 0);
}

size_t nbd_sreply_data(uint8_t out[28], uint16_t flags, uint64_t cookie, uint64_t offset,
		       uint32_t datalen)
{
	/* The caller keeps datalen within the 32 MiB payload limit, so 8 + datalen fits. */
	nbd_sreply_hdr(out, flags, NBD_REPLY_TYPE_OFFSET_DATA, cookie, 8 + datalen);
	put64(out + 20, offset);
	return 28;
}

size_t nbd_sreply_hole(uint8_t out[32], uint16_t flags, uint64_t cookie, uint64_t offset,
		       uint32_t holelen)
{
	nbd_sreply_hdr(out, flags, NBD_REPLY_TYPE_OFFSET_HOLE, cookie, 12);
	put64(out + 20, offset);
	put32(out + 28, holelen);
	return 32;
}

long nbd_sreply_block_status(uint8_t *out, size_t cap, uint16_t flags, uint64_t cookie,
			     uint32_t ctx_id, const struct nbd_extent *e, size_t n)
{
	if (n == 0 || n > (UINT32_MAX - 4) / 8)
		return -EINVAL;
	size_t len = 4 + 8 * n;
	if (cap < NBD_SREPLY_HDR_LEN + len)
		return -ENOBUFS;
	nbd_sreply_hdr(out, flags, NBD_REPLY_TYPE_BLOCK_STATUS, cookie, (uint32_t)len);
	put32(out + 20, ctx_id);
	for (size_t i = 0; i < n; i++) {
		put32(out + 24 + 8 * i, e[i].length);
		put32(out + 28 + 8 * i, e[i].flags);
	}
	return (long)(NBD_SREPLY_HDR_LEN + len);
}

static long sreply_err(uint8_t *out, size_t cap, uint16_t flags, uint16_t type, uint64_t cookie,
		       uint32_t err, const char *msg, const uint64_t *offset)
{
	size_t mlen = msg ? strnlen(msg, NBD_NAME_MAX) : 0;
	size_t len = 6 + mlen + (offset ? 8 : 0);

	if (err == 0)
		return -EINVAL;
	if (cap < NBD_SREPLY_HDR_LEN + len)
		return -ENOBUFS;
	nbd_sreply_hdr(out, flags, type, cookie, (uint32_t)len);
	put32(out + 20, err);
	put16(out + 24, (uint16_t)mlen);
	if (mlen)
		memcpy(out + 26, msg, mlen);
	if (offset)
		put64(out + 26 + mlen, *offset);
	return (long)(NBD_SREPLY_HDR_LEN + len);
}

long nbd_sreply_error(uint8_t *out, size_t cap, uint16_t flags, uint64_t cookie, uint32_t err,
		      const char *msg)
{
	return sreply_err(out, cap, flags, NBD_REPLY_TYPE_ERROR, cookie, err, msg, NULL);
}

long nbd_sreply_error_offset(uint8_t *out, size_t cap, uint16_t flags, uint64_t cookie,
			     uint32_t err, const char *msg, uint64_t offset)
{
	return sreply_err(out, cap, flags, NBD_REPLY_TYPE_ERROR_OFFSET, cookie, err, msg, &offset);
}

uint32_t nbd_errno(int err)
{
	switch (err) {
	case 0:
		return 0;
	case -EPERM:
	case -EACCES:
	case -EROFS:
	case CAIRN_EDENIED:
		return NBD_EPERM;
	case -ENOMEM:
		return NBD_ENOMEM;
	case -EINVAL:
	case CAIRN_EINVAL:
	case CAIRN_ERANGE:
		return NBD_EINVAL;
	case -ENOSPC:
	case -EDQUOT:
	case CAIRN_ENOSPACE:
		return NBD_ENOSPC;
	case -EOVERFLOW:
	case -EFBIG:
	case CAIRN_ETOOBIG:
		return NBD_EOVERFLOW;
	case -ENOTSUP:
		return NBD_ENOTSUP;
	case -ESHUTDOWN:
	case CAIRN_ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}
