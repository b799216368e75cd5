/* tests/fuzz/fuzz_nbd.c - the NBD handshake and request parser.
 *
 * Input: byte 0 picks the feed size (1..64 bytes per nbd_hs_feed call, so options are
 * split everywhere); the rest is what a client sends from its first byte: client flags,
 * options, then (after GO or EXPORT_NAME) 28-byte requests with their WRITE payloads.
 * Lookups find an export when the name has even length ("b..." names advertise a 4 KiB
 * minimum block); LIST answers three names. Properties checked, not just "no crash":
 * feed never takes more than it was given; every option reply carries the reply magic;
 * an accepted request lies inside the export, respects the payload limit and the
 * alignment; replies encode to the documented lengths. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blockstore/nbd/nbd_proto.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

static struct nbd_hs hs;

static const struct nbd_export *lookup(const char *name, size_t len)
{
	static struct nbd_export e;
	if (len % 2)
		return NULL;
	memset(&e, 0, sizeof(e));
	e.size = len ? ((uint64_t)(unsigned char)name[0] << 24) + 4096 * len : 1ULL << 40;
	e.tflags = (uint16_t)(len ? (unsigned char)name[len - 1] * 0x101U : 0xffff);
	e.min_block = len && name[0] == 'b' ? 4096 : 512;
	e.description = len > 2 ? name + 1 : NULL;
	return &e;
}

/* Walks the unsent output's option replies (the greeting and EXPORT_NAME's answer are
 * not option replies, so only the part after the greeting while haggling is walked). */
static void drain(bool haggling)
{
	size_t n;
	const uint8_t *p = nbd_hs_out(&hs, &n);
	CHECK(n <= NBD_HS_OUT_CAP);
	if (haggling) {
		size_t off = 0;
		while (off < n) {
			CHECK(n - off >= NBD_OPT_REPLY_HDR_LEN);
			static const uint8_t magic[8] = {0, 3, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9};
			CHECK(memcmp(p + off, magic, 8) == 0);
			uint32_t len = (uint32_t)p[off + 16] << 24 | (uint32_t)p[off + 17] << 16 |
				       (uint32_t)p[off + 18] << 8 | p[off + 19];
			CHECK(len <= n - off - NBD_OPT_REPLY_HDR_LEN);
			off += NBD_OPT_REPLY_HDR_LEN + len;
		}
	}
	nbd_hs_out_done(&hs, n);
}

static void transmission(const struct nbd_session *s, const uint8_t *p, size_t len)
{
	static uint8_t out[4096];
	while (len >= NBD_REQ_LEN) {
		struct nbd_req r;
		int rc = nbd_req_parse(s, p, &r);
		p += NBD_REQ_LEN;
		len -= NBD_REQ_LEN;
		if (rc < 0) {
			CHECK(rc == -EPROTO);
			return;
		}
		if (rc == 0 && r.type != NBD_CMD_DISC && r.type != NBD_CMD_FLUSH) {
			CHECK(r.length > 0 && r.offset <= s->size &&
			      r.length <= s->size - r.offset);
			CHECK(((r.offset | r.length) & (s->min_block - 1)) == 0);
			if (r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE)
				CHECK(r.length <= s->max_payload);
			if (r.type == NBD_CMD_WRITE || r.type == NBD_CMD_TRIM ||
			    r.type == NBD_CMD_WRITE_ZEROES)
				CHECK(!(s->tflags & NBD_FLAG_READ_ONLY));
			if (r.type == NBD_CMD_BLOCK_STATUS)
				CHECK(s->structured && s->base_allocation);
		}
		CHECK(rc != 0 || r.skip == 0 || r.type == NBD_CMD_WRITE);
		if (r.type == NBD_CMD_WRITE) {
			CHECK(r.skip == r.length);
			size_t skip = r.skip < len ? r.skip : len;
			p += skip;
			len -= skip;
		}
		/* Replies from the fuzzed fields. */
		CHECK(nbd_reply_simple(out, (uint32_t)rc, r.cookie) == NBD_SIMPLE_REPLY_LEN);
		struct nbd_extent e[3] = {{r.length, r.flags}, {(uint32_t)r.offset, 3}, {1, 0}};
		size_t ne = r.flags % 4;
		long n =
		    nbd_sreply_block_status(out, sizeof(out), r.flags, r.cookie, r.length, e, ne);
		CHECK(ne ? n == (long)(24 + 8 * ne) : n == -EINVAL);
		char msg[64];
		size_t ml = r.length % sizeof(msg);
		memset(msg, 'm', ml);
		msg[ml] = '\0';
		n = nbd_sreply_error_offset(out, sizeof(out), r.flags, r.cookie, nbd_errno(-rc - 1),
					    msg, r.offset);
		CHECK(n == (long)(34 + ml));
		CHECK(nbd_sreply_data(out, r.flags, r.cookie, r.offset, r.length) == 28);
		CHECK(nbd_sreply_hole(out, r.flags, r.cookie, r.offset, r.length) == 32);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = 1 + data[0] % 64, pos = 1;
	int ev = NBD_HS_EV_NONE;

	nbd_hs_init(&hs);
	drain(false);
	while (pos < size) {
		size_t want = nbd_hs_want(&hs), used, n = size - pos < step ? size - pos : step;
		CHECK(want > 0);
		ev = nbd_hs_feed(&hs, data + pos, n, &used);
		CHECK(used <= n);
		pos += used;
		if (ev == -EAGAIN) {
			drain(true);
			continue;
		}
		CHECK(ev >= 0);
		if (ev == NBD_HS_EV_LOOKUP) {
			size_t len;
			const char *name = nbd_hs_name(&hs, &len);
			CHECK(strlen(name) == len && len <= NBD_NAME_MAX);
			bool export_name = hs.opt == NBD_OPT_EXPORT_NAME;
			ev = nbd_hs_answer(&hs, lookup(name, len));
			CHECK(ev >= 0);
			if (export_name && ev == NBD_HS_EV_GO) {
				drain(false);
				break;
			}
		} else if (ev == NBD_HS_EV_LIST) {
			CHECK(nbd_hs_list_add(&hs, "a") == 0);
			CHECK(nbd_hs_list_add(&hs, "") == 0);
			CHECK(nbd_hs_list_add(&hs, "volume@token") == 0);
			CHECK(nbd_hs_list_end(&hs, 0) == NBD_HS_EV_NONE);
		}
		drain(true);
		if (ev == NBD_HS_EV_GO || ev == NBD_HS_EV_CLOSE)
			break;
		CHECK(used > 0 || n == 0);
	}
	if (ev == NBD_HS_EV_GO)
		transmission(nbd_hs_session(&hs), data + pos, size - pos);
	return 0;
}
