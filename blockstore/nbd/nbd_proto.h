/* blockstore/nbd/nbd_proto.h - the NBD wire protocol, server side, as pure code.
 *
 * Owns the byte layouts of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md):
 * fixed newstyle negotiation, option haggling, the 28-byte request header and the simple
 * and structured replies. No sockets, threads, storage or allocation: the caller moves
 * bytes and answers the questions the handshake asks (does export NAME exist, which
 * exports are there). Everything on the wire is big-endian.
 *
 * Handshake: nbd_hs_init() puts the server greeting in the output buffer. The caller then
 * loops: write out nbd_hs_out() (and nbd_hs_out_done()), read at most nbd_hs_want() bytes,
 * give them to nbd_hs_feed(), act on the event it returns. nbd_hs_feed() never consumes a
 * byte past the option that ends negotiation, so requests a client pipelines behind
 * NBD_OPT_GO stay with the caller. Events:
 *   NBD_HS_EV_NONE   nothing to do but send output and read more;
 *   NBD_HS_EV_LOOKUP answer with nbd_hs_answer(): the name is in nbd_hs_name();
 *   NBD_HS_EV_LIST   call nbd_hs_list_add() per export, then nbd_hs_list_end();
 *   NBD_HS_EV_GO     negotiation is over: send the output, then serve requests with the
 *                    session from nbd_hs_session();
 *   NBD_HS_EV_CLOSE  send the output (if any) and close the connection.
 * A struct nbd_hs belongs to one connection and one thread at a time; it is ~37 KiB, so
 * embed it in the connection rather than on a small stack.
 *
 * Transmission: nbd_req_parse() decodes and validates one request header against the
 * session; the nbd_reply_* and nbd_sreply_* encoders write reply headers into caller
 * buffers. nbd_errno() is the one table mapping cairn codes to NBD error values.
 */
#ifndef CAIRN_BLOCKSTORE_NBD_PROTO_H
#define CAIRN_BLOCKSTORE_NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Magic numbers. */
#define NBD_MAGIC_INIT 0x4e42444d41474943ULL /* "NBDMAGIC" */
#define NBD_MAGIC_OPT 0x49484156454f5054ULL  /* "IHAVEOPT" */
#define NBD_MAGIC_OPT_REPLY 0x0003e889045565a9ULL
#define NBD_MAGIC_REQUEST 0x25609513U
#define NBD_MAGIC_SIMPLE_REPLY 0x67446698U
#define NBD_MAGIC_STRUCTURED_REPLY 0x668e33efU

/* Handshake flags (server, 16 bits) and client flags (32 bits). */
#define NBD_FLAG_FIXED_NEWSTYLE (1U << 0)
#define NBD_FLAG_NO_ZEROES (1U << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1U << 0)
#define NBD_FLAG_C_NO_ZEROES (1U << 1)

/* Transmission flags (16 bits). */
#define NBD_FLAG_HAS_FLAGS (1U << 0)
#define NBD_FLAG_READ_ONLY (1U << 1)
#define NBD_FLAG_SEND_FLUSH (1U << 2)
#define NBD_FLAG_SEND_FUA (1U << 3)
#define NBD_FLAG_ROTATIONAL (1U << 4)
#define NBD_FLAG_SEND_TRIM (1U << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1U << 6)
#define NBD_FLAG_SEND_DF (1U << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1U << 8)
#define NBD_FLAG_SEND_RESIZE (1U << 9)
#define NBD_FLAG_SEND_CACHE (1U << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1U << 11)

/* Options. */
#define NBD_OPT_EXPORT_NAME 1
#define NBD_OPT_ABORT 2
#define NBD_OPT_LIST 3
#define NBD_OPT_STARTTLS 5
#define NBD_OPT_INFO 6
#define NBD_OPT_GO 7
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT 10

/* Option reply types; errors have bit 31 set. */
#define NBD_REP_ACK 1U
#define NBD_REP_SERVER 2U
#define NBD_REP_INFO 3U
#define NBD_REP_META_CONTEXT 4U
#define NBD_REP_ERR_UNSUP 0x80000001U
#define NBD_REP_ERR_POLICY 0x80000002U
#define NBD_REP_ERR_INVALID 0x80000003U
#define NBD_REP_ERR_PLATFORM 0x80000004U
#define NBD_REP_ERR_TLS_REQD 0x80000005U
#define NBD_REP_ERR_UNKNOWN 0x80000006U
#define NBD_REP_ERR_SHUTDOWN 0x80000007U
#define NBD_REP_ERR_BLOCK_SIZE_REQD 0x80000008U
#define NBD_REP_ERR_TOO_BIG 0x80000009U

/* NBD_REP_INFO types. */
#define NBD_INFO_EXPORT 0
#define NBD_INFO_NAME 1
#define NBD_INFO_DESCRIPTION 2
#define NBD_INFO_BLOCK_SIZE 3

/* Commands and command flags. */
#define NBD_CMD_READ 0
#define NBD_CMD_WRITE 1
#define NBD_CMD_DISC 2
#define NBD_CMD_FLUSH 3
#define NBD_CMD_TRIM 4
#define NBD_CMD_CACHE 5
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_BLOCK_STATUS 7
#define NBD_CMD_FLAG_FUA (1U << 0)
#define NBD_CMD_FLAG_NO_HOLE (1U << 1)
#define NBD_CMD_FLAG_DF (1U << 2)
#define NBD_CMD_FLAG_REQ_ONE (1U << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1U << 4)

/* Structured reply flags and types. */
#define NBD_REPLY_FLAG_DONE (1U << 0)
#define NBD_REPLY_TYPE_NONE 0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR 32769
#define NBD_REPLY_TYPE_ERROR_OFFSET 32770

/* base:allocation extent flags. */
#define NBD_STATE_HOLE (1U << 0)
#define NBD_STATE_ZERO (1U << 1)

/* Error values on the wire (Linux errno numbers, fixed by the protocol). */
#define NBD_EPERM 1U
#define NBD_EIO 5U
#define NBD_ENOMEM 12U
#define NBD_EINVAL 22U
#define NBD_ENOSPC 28U
#define NBD_EOVERFLOW 75U
#define NBD_ENOTSUP 95U
#define NBD_ESHUTDOWN 108U

/* Sizes and limits. */
#define NBD_GREETING_LEN 18 /* NBDMAGIC, IHAVEOPT, handshake flags */
#define NBD_OPT_HDR_LEN 16  /* IHAVEOPT, option, length */
#define NBD_OPT_REPLY_HDR_LEN 20
#define NBD_REQ_LEN 28
#define NBD_SIMPLE_REPLY_LEN 16
#define NBD_SREPLY_HDR_LEN 20
#define NBD_NAME_MAX 4096 /* export names and other strings, per the spec */
/* Option data we buffer: a GO with a maximal name and a few info requests fits. */
#define NBD_OPT_MAX_LEN (NBD_NAME_MAX + 256)
/* Longer option data is read and thrown away (then NBD_REP_ERR_TOO_BIG) up to this; past
 * it the client is not worth reading and the connection closes. */
#define NBD_OPT_DISCARD_MAX (1U << 20)
#define NBD_MAX_PAYLOAD (32U << 20) /* largest READ/WRITE we serve */
#define NBD_META_ID_BASE_ALLOCATION 1U
#define NBD_HS_OUT_CAP (24 * 1024)

/* Returns tflags normalised for the wire: HAS_FLAGS set; write-type features
 * (TRIM, WRITE_ZEROES, FAST_ZERO) dropped on READ_ONLY exports; FAST_ZERO only with
 * WRITE_ZEROES; unknown bits dropped. SEND_DF is kept here; the handshake drops it when
 * the client did not negotiate structured replies. */
uint16_t nbd_tflags(uint16_t want);

/* What the caller knows about an export, given to nbd_hs_answer(). */
struct nbd_export {
	uint64_t size;
	uint16_t tflags;	 /* NBD_FLAG_*; passed through nbd_tflags() */
	uint32_t min_block;	 /* 1 or a power of two up to 64 KiB; 0 means 1 */
	uint32_t pref_block;	 /* power of two >= max(min, 512); 0 means max(4096, min) */
	uint32_t max_block;	 /* multiple of min; 0 means NBD_MAX_PAYLOAD (also the cap) */
	const char *description; /* NUL-terminated or NULL; copied during the call */
};

/* The negotiated result, for nbd_req_parse(). */
struct nbd_session {
	uint64_t size;
	uint16_t tflags;      /* as sent to the client */
	uint32_t min_block;   /* alignment enforced; 1 unless NBD_INFO_BLOCK_SIZE was sent */
	uint32_t max_payload; /* largest READ/WRITE */
	bool structured;      /* NBD_OPT_STRUCTURED_REPLY acknowledged */
	bool base_allocation; /* base:allocation selected for this export */
	bool no_zeroes;
};

enum nbd_hs_event {
	NBD_HS_EV_NONE = 0,
	NBD_HS_EV_LOOKUP,
	NBD_HS_EV_LIST,
	NBD_HS_EV_GO,
	NBD_HS_EV_CLOSE,
};

enum nbd_hs_state {
	NBD_HS_CFLAGS,	 /* reading the 4 client flag bytes */
	NBD_HS_OPT_HDR,	 /* reading a 16-byte option header */
	NBD_HS_OPT_DATA, /* reading option data into buf */
	NBD_HS_DISCARD,	 /* skipping oversized option data */
	NBD_HS_WAIT,	 /* an event awaits the caller's answer */
	NBD_HS_DONE,	 /* transmission (or closing); feed takes no more bytes */
};

struct nbd_hs {
	enum nbd_hs_state state;
	uint32_t cflags;
	uint32_t opt;	  /* current option */
	uint32_t optlen;  /* its data length */
	uint32_t have;	  /* bytes of the current header or data buffered */
	uint32_t discard; /* oversized data still to skip */
	bool fixed;	  /* client set NBD_FLAG_C_FIXED_NEWSTYLE */
	bool structured;
	bool meta_set;			  /* base:allocation selected ... */
	char meta_name[NBD_NAME_MAX + 1]; /* ... for this export */
	/* The pending option's export name (NUL-terminated) and info requests. */
	char name[NBD_NAME_MAX + 1];
	uint32_t namelen;
	uint16_t info_mask; /* bit per NBD_INFO_* requested */
	struct nbd_session sess;
	uint8_t hdr[NBD_OPT_HDR_LEN];
	uint8_t buf[NBD_OPT_MAX_LEN];
	uint8_t out[NBD_HS_OUT_CAP];
	size_t out_off, out_len; /* unsent output is out[out_off, out_len) */
};

/* Resets hs for a new connection and queues the 18-byte greeting. */
void nbd_hs_init(struct nbd_hs *hs);

/* Bytes nbd_hs_feed() needs before it can take its next step; 0 while an event waits
 * for an answer or negotiation is over. Reading more than this is fine, the caller
 * just keeps what feed does not consume. */
size_t nbd_hs_want(const struct nbd_hs *hs);

/* Consumes up to len bytes (*used says how many) and returns an enum nbd_hs_event, or
 * -EAGAIN (nothing consumed) when the unsent output leaves no room for the next reply,
 * -EBUSY when an event still waits for its answer or negotiation is over. */
int nbd_hs_feed(struct nbd_hs *hs, const void *buf, size_t len, size_t *used) CAIRN_WUR;

/* The export name of a NBD_HS_EV_LOOKUP (NUL-terminated; no NUL inside), valid until the
 * next call on hs; *len its length. */
const char *nbd_hs_name(const struct nbd_hs *hs, size_t *len);

/* Answers NBD_HS_EV_LOOKUP: e is the export or NULL if there is none. Returns the next
 * event: NBD_HS_EV_NONE (INFO, or GO of a missing export), NBD_HS_EV_GO (GO or EXPORT_NAME
 * of an existing export), NBD_HS_EV_CLOSE (EXPORT_NAME of a missing one), or -EBUSY when no
 * lookup is pending, -EINVAL for a bad e (block sizes outside the spec's rules, see
 * struct nbd_export). */
int nbd_hs_answer(struct nbd_hs *hs, const struct nbd_export *e) CAIRN_WUR;

/* Answers NBD_HS_EV_LOOKUP with a specific refusal: err is an NBD_REP_ERR_* value (bit 31
 * set), e.g. NBD_REP_ERR_POLICY for a name whose credentials are wrong. INFO and GO get
 * that error reply and negotiation goes on (NBD_HS_EV_NONE); EXPORT_NAME cannot carry an
 * error, so it closes (NBD_HS_EV_CLOSE). -EBUSY when no lookup is pending, -EINVAL when
 * err is not an error type. */
int nbd_hs_refuse(struct nbd_hs *hs, uint32_t err) CAIRN_WUR;

/* NBD_HS_EV_LIST: queues one NBD_REP_SERVER. Returns 0, -EAGAIN when the output is too
 * full (send some and retry), -EINVAL for a name over NBD_NAME_MAX, -EBUSY when no list is
 * pending. */
int nbd_hs_list_add(struct nbd_hs *hs, const char *name) CAIRN_WUR;
/* Ends the list with NBD_REP_ACK (or err, an NBD_REP_ERR_* value, if not 0). Returns
 * NBD_HS_EV_NONE, -EAGAIN or -EBUSY as above. */
int nbd_hs_list_end(struct nbd_hs *hs, uint32_t err) CAIRN_WUR;

/* Unsent output: returns a pointer to *len bytes (valid until the next call on hs). */
const void *nbd_hs_out(const struct nbd_hs *hs, size_t *len);
/* Marks n bytes of that output sent. */
void nbd_hs_out_done(struct nbd_hs *hs, size_t n);

/* After NBD_HS_EV_GO: the negotiated session. */
const struct nbd_session *nbd_hs_session(const struct nbd_hs *hs);

/* A decoded request. */
struct nbd_req {
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint32_t length;
	uint32_t skip; /* on an error, WRITE payload bytes the caller must read and drop */
};

/* Decodes and validates the 28-byte header in hdr against s. Returns 0 (serve it; DISC
 * means close after in-flight replies), a positive NBD_E* value (answer with that error
 * and read r->skip payload bytes; the connection stays), or -EPROTO (bad magic, or a
 * WRITE over NBD_MAX_PAYLOAD whose payload we will not read: close). r is always
 * filled from the header as far as it goes. Errors: EINVAL for bad flags, commands not
 * negotiated, zero lengths, reads past the end, misalignment and READ/WRITE over
 * max_payload (EOVERFLOW instead for such a READ with DF); ENOSPC for writes, trims and
 * write-zeroes past the end; EPERM for those on a read-only export; ENOTSUP for unknown
 * commands. TRIM, WRITE_ZEROES, CACHE and BLOCK_STATUS carry no payload and have no
 * length limit but the export's end. */
int nbd_req_parse(const struct nbd_session *s, const uint8_t hdr[NBD_REQ_LEN],
		  struct nbd_req *r) CAIRN_WUR;

/* Reply encoders. Each writes into out and returns the bytes written. Payloads that
 * follow (read data) are the caller's to send. */
/* Simple reply: magic, error (0 or NBD_E*), cookie. 16 bytes. */
size_t nbd_reply_simple(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t err, uint64_t cookie);
/* Structured chunk header: magic, flags, type, cookie, payload length. 20 bytes. */
size_t nbd_sreply_hdr(uint8_t out[NBD_SREPLY_HDR_LEN], uint16_t flags, uint16_t type,
		      uint64_t cookie, uint32_t len);
/* NBD_REPLY_TYPE_NONE with DONE. 20 bytes. */
size_t nbd_sreply_none(uint8_t out[NBD_SREPLY_HDR_LEN], uint64_t cookie);
/* NBD_REPLY_TYPE_OFFSET_DATA header and offset; datalen bytes follow. 28 bytes. */
size_t nbd_sreply_data(uint8_t out[28], uint16_t flags, uint64_t cookie, uint64_t offset,
		       uint32_t datalen);
/* NBD_REPLY_TYPE_OFFSET_HOLE. 32 bytes. */
size_t nbd_sreply_hole(uint8_t out[32], uint16_t flags, uint64_t cookie, uint64_t offset,
		       uint32_t holelen);

struct nbd_extent {
	uint32_t length;
	uint32_t flags; /* NBD_STATE_* */
};
/* NBD_REPLY_TYPE_BLOCK_STATUS for one context: 24 + 8 * n bytes. Returns that, or
 * -ENOBUFS if cap is smaller, -EINVAL for n == 0. */
long nbd_sreply_block_status(uint8_t *out, size_t cap, uint16_t flags, uint64_t cookie,
			     uint32_t ctx_id, const struct nbd_extent *e, size_t n) CAIRN_WUR;
/* NBD_REPLY_TYPE_ERROR (err != 0) with msg (may be NULL; cut at NBD_NAME_MAX bytes):
 * 26 + strlen(msg) bytes; -ENOBUFS if cap is smaller. */
long nbd_sreply_error(uint8_t *out, size_t cap, uint16_t flags, uint64_t cookie, uint32_t err,
		      const char *msg) CAIRN_WUR;
/* NBD_REPLY_TYPE_ERROR_OFFSET: as above plus the 8-byte offset: 34 + strlen(msg). */
long nbd_sreply_error_offset(uint8_t *out, size_t cap, uint16_t flags, uint64_t cookie,
			     uint32_t err, const char *msg, uint64_t offset) CAIRN_WUR;

/* The NBD front end's one error table: 0 → 0, -errno or CAIRN_E* → NBD_E* (EIO for
 * anything without a closer match). */
uint32_t nbd_errno(int err);

#endif
