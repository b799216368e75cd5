/* objstore/s3_tokens.c - bearer tokens in META_T_TOKENS (objstore/s3.h).
 *
 * A token is 32 random bytes (RAND_bytes) shown once as 64 hex digits; the
 * table keeps only SHA-256(token string) as the key, so a copy of the
 * metadata gives nobody a usable token. Its id is the first hex digits of
 * that hash: listing and deletion never need the token itself.
 *
 * Lookup is on every Glance request: one short read transaction, one
 * meta_get of the hash and one of the user (a deleted user's tokens stop
 * working at once, even before s3_user_delete's sweep removes them). No
 * constant-time compare is needed: the lookup is by a hash of the secret,
 * not a comparison against it.
 *
 * Writes go through cs_commit with no writer. Expired records are swept by
 * s3_token_create and s3_token_delete (O(tokens): tokens are few, a
 * handful per user).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "chunkstore/chunkstore.h"
#include "core/hash.h"
#include "core/log.h"
#include "objstore/s3.h"
#include "objstore/s3_format.h"
#include "objstore/s3_server_internal.h"

#define TAG "s3tokens"
#define TOKEN_HASH_LEN 32
#define TOKEN_RAW_LEN 32
static_assert(TOKEN_RAW_LEN * 2 == S3_TOKEN_HEX, "a token is its random bytes in hex");
static_assert(S3_USER_MAX <= 255, "user_len is one byte");

static int token_hash(const char *token, size_t len, uint8_t out[TOKEN_HASH_LEN])
{
	unsigned n = 0;

	if (EVP_Digest(token, len, out, &n, EVP_sha256(), NULL) != 1 || n != TOKEN_HASH_LEN)
		return -EIO;
	return 0;
}

/* Decodes a record; key is the 32-byte hash it is stored under. */
static int token_decode(const void *k, size_t kl, const void *v, size_t vl, struct s3_token *out)
{
	struct s3_token_rec rec;
	char hex[2 * TOKEN_HASH_LEN + 1];

	if (kl != TOKEN_HASH_LEN || vl < sizeof(rec))
		return CAIRN_ECORRUPT;
	memcpy(&rec, v, sizeof(rec));
	if (rec.version == 0)
		return CAIRN_ECORRUPT;
	if (rec.version > S3_TOKEN_VERSION)
		return CAIRN_EFORMAT;
	if (rec.user_len == 0 || rec.user_len > S3_USER_MAX || vl < sizeof(rec) + rec.user_len)
		return CAIRN_ECORRUPT;
	memset(out, 0, sizeof(*out));
	hash_hex(k, TOKEN_HASH_LEN, hex);
	memcpy(out->id, hex, S3_TOKEN_ID_HEX);
	memcpy(out->user, (const uint8_t *)v + sizeof(rec), rec.user_len);
	out->created_ns = rec.created_ns;
	out->expires_ns = rec.expires_ns;
	return 0;
}

static bool token_expired(const struct s3_token *t, uint64_t now_ns)
{
	return t->expires_ns != 0 && now_ns >= t->expires_ns;
}

/* Removes every record drop() accepts (write txn). O(tokens). */
static int tokens_delete_if(struct meta_txn *t, bool (*drop)(const struct s3_token *, const void *),
			    const void *arg)
{
	struct meta_cursor *c = NULL;
	const void *k, *v;
	size_t kl, vl;
	int rc = meta_cursor_open(t, META_T_TOKENS, &c);

	if (rc < 0)
		return rc;
	rc = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
	while (rc == 0) {
		struct s3_token tok;
		uint8_t key[TOKEN_HASH_LEN];

		rc = token_decode(k, kl, v, vl, &tok);
		if (rc < 0)
			goto out;
		if (drop(&tok, arg)) {
			memcpy(key, k, sizeof(key));
			rc = meta_cursor_del(c);
			if (rc < 0)
				goto out;
			/* Re-seek past the deleted key, as keys_delete does. */
			rc = meta_cursor_seek(c, key, sizeof(key), &k, &kl, &v, &vl);
			continue;
		}
		rc = meta_cursor_next(c, &k, &kl, &v, &vl);
	}
	if (rc == CAIRN_ENOTFOUND)
		rc = 0;
out:
	meta_cursor_close(c);
	return rc;
}

static bool drop_expired(const struct s3_token *tok, const void *now_ns)
{
	return token_expired(tok, *(const uint64_t *)now_ns);
}

/* Removes every expired record (write txn). */
static int tokens_sweep(struct meta_txn *t, uint64_t now_ns)
{
	return tokens_delete_if(t, drop_expired, &now_ns);
}

/* ---- create ---- */

struct create_arg {
	uint8_t hash[TOKEN_HASH_LEN];
	const char *user;
	uint64_t created_ns, expires_ns;
};

static int create_fn(struct cs_txn *txn, void *arg)
{
	struct create_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	uint8_t buf[sizeof(struct s3_token_rec) + S3_USER_MAX];
	struct s3_token_rec rec = {
	    .version = S3_TOKEN_VERSION,
	    .user_len = (uint8_t)strlen(a->user),
	    .created_ns = a->created_ns,
	    .expires_ns = a->expires_ns,
	};
	const void *v;
	size_t vl;
	int rc = meta_get(t, META_T_USERS, a->user, strlen(a->user), &v, &vl);

	if (rc < 0)
		return rc; /* CAIRN_ENOTFOUND: no such user */
	rc = tokens_sweep(t, a->created_ns);
	if (rc < 0)
		return rc;
	memcpy(buf, &rec, sizeof(rec));
	memcpy(buf + sizeof(rec), a->user, rec.user_len);
	return meta_put(t, META_T_TOKENS, a->hash, sizeof(a->hash), buf, sizeof(rec) + rec.user_len,
			META_NOOVERWRITE);
}

int s3_token_create(struct cs_pool *pool, const char *user, uint64_t ttl_sec,
		    char token_out[S3_TOKEN_HEX + 1], struct s3_token *out)
{
	uint8_t raw[TOKEN_RAW_LEN];
	char tok[S3_TOKEN_HEX + 1];
	char hex[2 * TOKEN_HASH_LEN + 1];
	struct create_arg a = {.user = user};
	int rc;

	if (!s3_user_name_valid(user))
		return CAIRN_ENOTFOUND;
	/* ttl in ns must not wrap: 2^64 ns is ~584 years. */
	if (ttl_sec > UINT64_MAX / 1000000000u / 2)
		return CAIRN_EINVAL;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	hash_hex(raw, sizeof(raw), tok);
	OPENSSL_cleanse(raw, sizeof(raw));
	rc = token_hash(tok, S3_TOKEN_HEX, a.hash);
	if (rc < 0)
		goto out;
	a.created_ns = s3_now_ns();
	a.expires_ns = ttl_sec ? a.created_ns + ttl_sec * 1000000000u : 0;
	rc = cs_commit(pool, NULL, create_fn, &a);
	if (rc < 0)
		goto out;
	hash_hex(a.hash, sizeof(a.hash), hex);
	if (out) {
		memset(out, 0, sizeof(*out));
		memcpy(out->id, hex, S3_TOKEN_ID_HEX);
		snprintf(out->user, sizeof(out->user), "%s", user);
		out->created_ns = a.created_ns;
		out->expires_ns = a.expires_ns;
	}
	memcpy(token_out, tok, sizeof(tok));
	log_info(TAG, "created token %.*s for user %s", S3_TOKEN_ID_HEX, hex, user);
out:
	OPENSSL_cleanse(tok, sizeof(tok));
	return rc;
}

/* ---- lookup ---- */

int s3_token_lookup(struct cs_pool *pool, const char *token, struct s3_token *out)
{
	struct meta_txn *t = NULL;
	uint8_t h[TOKEN_HASH_LEN];
	struct s3_token tok;
	const void *v;
	size_t vl;
	int rc;

	/* Anything that is not what s3_token_create makes is unknown: no
	 * hash, no transaction. */
	if (!token || strlen(token) != S3_TOKEN_HEX)
		return CAIRN_ENOTFOUND;
	rc = token_hash(token, S3_TOKEN_HEX, h);
	if (rc < 0)
		return rc;
	rc = meta_txn_begin(cs_pool_meta(pool), false, &t);
	if (rc < 0)
		return rc;
	rc = meta_get(t, META_T_TOKENS, h, sizeof(h), &v, &vl);
	if (rc == 0)
		rc = token_decode(h, sizeof(h), v, vl, &tok);
	/* The user may be gone (deleted after the token was made). */
	if (rc == 0)
		rc = meta_get(t, META_T_USERS, tok.user, strlen(tok.user), &v, &vl);
	meta_txn_abort(t);
	if (rc < 0)
		return rc;
	if (token_expired(&tok, s3_now_ns()))
		return -EKEYEXPIRED;
	if (out)
		*out = tok;
	return 0;
}

/* ---- list ---- */

long s3_token_list(struct cs_pool *pool, const char *user, struct s3_token *out, size_t max)
{
	struct meta_txn *t = NULL;
	struct meta_cursor *c = NULL;
	const void *k, *v;
	size_t kl, vl, n = 0;
	long rc = meta_txn_begin(cs_pool_meta(pool), false, &t);

	if (rc < 0)
		return rc;
	rc = meta_cursor_open(t, META_T_TOKENS, &c);
	if (rc < 0)
		goto out;
	/* Keys are the hashes, so the walk is already in id order. */
	rc = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
	while (rc == 0 && n < max) {
		rc = token_decode(k, kl, v, vl, &out[n]);
		if (rc < 0)
			goto out;
		if (!user || strcmp(out[n].user, user) == 0)
			n++;
		rc = meta_cursor_next(c, &k, &kl, &v, &vl);
	}
	if (rc == 0 || rc == CAIRN_ENOTFOUND)
		rc = (long)n;
out:
	meta_cursor_close(c);
	meta_txn_abort(t);
	return rc;
}

/* ---- delete ---- */

struct delete_arg {
	const char *id; /* lowercase hex prefix of the hash */
	size_t idlen;
};

static int delete_fn(struct cs_txn *txn, void *arg)
{
	struct delete_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct meta_cursor *c = NULL;
	uint8_t seek[TOKEN_HASH_LEN] = {0}, found[TOKEN_HASH_LEN];
	size_t nbytes = a->idlen / 2;
	unsigned matches = 0;
	const void *k, *v;
	size_t kl, vl;
	int rc;

	/* The even part of the prefix in bytes is where matches start. */
	rc = hash_unhex(a->id, nbytes * 2, seek, nbytes);
	if (rc < 0)
		return CAIRN_ENOTFOUND;
	rc = meta_cursor_open(t, META_T_TOKENS, &c);
	if (rc < 0)
		return rc;
	rc = meta_cursor_seek(c, seek, sizeof(seek), &k, &kl, &v, &vl);
	while (rc == 0 && kl == TOKEN_HASH_LEN && memcmp(k, seek, nbytes) == 0) {
		char hex[2 * TOKEN_HASH_LEN + 1];
		hash_hex(k, TOKEN_HASH_LEN, hex);
		if (strncmp(hex, a->id, a->idlen) == 0) {
			if (matches++ == 0)
				memcpy(found, k, sizeof(found));
		} else if (a->idlen % 2 == 0) {
			break;
		}
		rc = meta_cursor_next(c, &k, &kl, &v, &vl);
	}
	meta_cursor_close(c);
	if (rc < 0 && rc != CAIRN_ENOTFOUND)
		return rc;
	if (matches == 0)
		return CAIRN_ENOTFOUND;
	/* Two tokens sharing the prefix: delete neither, ask for more digits. */
	if (matches > 1)
		return CAIRN_EINVAL;
	rc = meta_del(t, META_T_TOKENS, found, sizeof(found));
	if (rc < 0)
		return rc;
	return tokens_sweep(t, s3_now_ns());
}

int s3_token_delete(struct cs_pool *pool, const char *id)
{
	char lower[2 * TOKEN_HASH_LEN + 1];
	struct delete_arg a = {lower, id ? strlen(id) : 0};

	if (a.idlen < S3_TOKEN_ID_HEX || a.idlen > 2 * TOKEN_HASH_LEN)
		return CAIRN_ENOTFOUND;
	for (size_t i = 0; i < a.idlen; i++) {
		char ch = id[i];
		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return CAIRN_ENOTFOUND;
		lower[i] = ch;
	}
	lower[a.idlen] = 0;
	return cs_commit(pool, NULL, delete_fn, &a);
}

/* ---- for s3_user_delete ---- */

static bool drop_user(const struct s3_token *tok, const void *user)
{
	return strcmp(tok->user, user) == 0;
}

int s3_tokens_drop_user(struct meta_txn *t, const char *user)
{
	return tokens_delete_if(t, drop_user, user);
}
