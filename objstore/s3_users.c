/* objstore/s3_users.c - users and access keys in META_T_USERS / META_T_KEYS.
 *
 * Writes go through cs_commit with no writer (the committer is the only
 * LMDB writer); reads open their own short read transaction. Secrets are
 * generated with RAND_bytes and never logged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "chunkstore/chunkstore.h"
#include "core/log.h"
#include "objstore/s3.h"
#include "objstore/s3_format.h"
#include "objstore/s3_server_internal.h"

#define TAG "s3users"

bool s3_user_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > S3_USER_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("_.@+=,-", c)))
			return false;
	}
	return true;
}

static bool key_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n < 3 || n > S3_KEY_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (id[i] <= ' ' || id[i] == '/' || (unsigned char)id[i] >= 0x7f)
			return false;
	return true;
}

/* Random characters from an alphabet, without modulo bias. */
static int rand_chars(char *out, size_t n, const char *alphabet)
{
	size_t alen = strlen(alphabet), got = 0;
	unsigned limit = 256 - 256 % alen;
	uint8_t buf[64];

	while (got < n) {
		if (RAND_bytes(buf, sizeof(buf)) != 1)
			return -EIO;
		for (size_t i = 0; i < sizeof(buf) && got < n; i++)
			if (buf[i] < limit)
				out[got++] = alphabet[buf[i] % alen];
	}
	out[n] = 0;
	return 0;
}

/* ---- record decoding ---- */

int s3_user_decode(const void *v, size_t vl, struct s3_user_rec *rec)
{
	if (vl < sizeof(*rec))
		return CAIRN_ECORRUPT;
	memcpy(rec, v, sizeof(*rec));
	if (rec->version == 0)
		return CAIRN_ECORRUPT;
	if (rec->version > S3_USER_VERSION)
		return CAIRN_EFORMAT;
	return 0;
}

static int key_decode(const char *id, size_t idlen, const void *v, size_t vl, struct s3_key *out,
		      uint8_t *flags)
{
	struct s3_key_rec rec;

	if (vl < sizeof(rec))
		return CAIRN_ECORRUPT;
	memcpy(&rec, v, sizeof(rec));
	if (rec.version == 0)
		return CAIRN_ECORRUPT;
	if (rec.version > S3_KEY_VERSION)
		return CAIRN_EFORMAT;
	if (vl < sizeof(rec) + rec.user_len + rec.secret_len || rec.user_len > S3_USER_MAX ||
	    rec.secret_len > S3_SECRET_MAX || idlen > S3_KEY_ID_MAX)
		return CAIRN_ECORRUPT;
	memset(out, 0, sizeof(*out));
	memcpy(out->id, id, idlen);
	memcpy(out->user, (const uint8_t *)v + sizeof(rec), rec.user_len);
	memcpy(out->secret, (const uint8_t *)v + sizeof(rec) + rec.user_len, rec.secret_len);
	out->created = rec.created;
	if (flags)
		*flags = rec.flags;
	return 0;
}

static int key_put(struct meta_txn *t, const struct s3_key *k, uint8_t flags, unsigned putflags)
{
	uint8_t buf[sizeof(struct s3_key_rec) + S3_USER_MAX + S3_SECRET_MAX];
	struct s3_key_rec rec = {
	    .version = S3_KEY_VERSION,
	    .flags = flags,
	    .user_len = (uint8_t)strlen(k->user),
	    .secret_len = (uint8_t)strlen(k->secret),
	    .created = k->created,
	};

	memcpy(buf, &rec, sizeof(rec));
	memcpy(buf + sizeof(rec), k->user, rec.user_len);
	memcpy(buf + sizeof(rec) + rec.user_len, k->secret, rec.secret_len);
	return meta_put(t, META_T_KEYS, k->id, strlen(k->id), buf,
			sizeof(rec) + rec.user_len + rec.secret_len, putflags);
}

static int user_put(struct meta_txn *t, const char *name, uint8_t flags, uint64_t created)
{
	struct s3_user_rec rec = {
	    .version = S3_USER_VERSION,
	    .flags = flags,
	    .created = created,
	};
	return meta_put(t, META_T_USERS, name, strlen(name), &rec, sizeof(rec), 0);
}

/* Deletes every key of a user (or, with bootstrap_except, every bootstrap
 * key of it but that one). O(all keys): keys are few. */
static int keys_delete(struct meta_txn *t, const char *user, const char *bootstrap_except)
{
	struct meta_cursor *c = NULL;
	const void *k, *v;
	size_t kl, vl;
	int rc = meta_cursor_open(t, META_T_KEYS, &c);

	if (rc < 0)
		return rc;
	rc = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
	while (rc == 0) {
		struct s3_key key;
		uint8_t flags = 0;
		bool del;

		rc = key_decode(k, kl, v, vl, &key, &flags);
		if (rc < 0)
			goto out;
		del = strcmp(key.user, user) == 0;
		if (bootstrap_except)
			del = del && (flags & S3_KEYF_BOOTSTRAP) &&
			      strcmp(key.id, bootstrap_except) != 0;
		if (del) {
			rc = meta_cursor_del(c);
			if (rc < 0)
				goto out;
			/* LMDB leaves the cursor on the next record after a delete;
			 * re-seek to read it back portably. */
			rc = meta_cursor_seek(c, key.id, strlen(key.id), &k, &kl, &v, &vl);
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

/* ---- bootstrap ---- */

struct boot_arg {
	const char *key_id, *secret;
};

static int boot_fn(struct cs_txn *txn, void *arg)
{
	struct boot_arg *a = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct s3_key key = {.created = (uint64_t)time(NULL)};
	const void *v;
	size_t vl;
	int rc;

	rc = meta_get(t, META_T_USERS, S3_ROOT_USER, strlen(S3_ROOT_USER), &v, &vl);
	if (rc == CAIRN_ENOTFOUND)
		rc = user_put(t, S3_ROOT_USER, S3_USERF_ROOT, (uint64_t)time(NULL));
	if (rc < 0)
		return rc;
	rc = meta_get(t, META_T_KEYS, a->key_id, strlen(a->key_id), &v, &vl);
	if (rc == 0) {
		struct s3_key old;
		rc = key_decode(a->key_id, strlen(a->key_id), v, vl, &old, NULL);
		if (rc < 0)
			return rc;
		if (strcmp(old.user, S3_ROOT_USER) != 0)
			return CAIRN_EEXISTS; /* another user's key id */
		key.created = old.created;
	} else if (rc != CAIRN_ENOTFOUND) {
		return rc;
	}
	snprintf(key.id, sizeof(key.id), "%s", a->key_id);
	snprintf(key.user, sizeof(key.user), "%s", S3_ROOT_USER);
	snprintf(key.secret, sizeof(key.secret), "%s", a->secret);
	rc = key_put(t, &key, S3_KEYF_BOOTSTRAP, 0);
	if (rc < 0)
		return rc;
	/* A root key set from an earlier environment stops working. */
	return keys_delete(t, S3_ROOT_USER, a->key_id);
}

int s3_users_bootstrap(struct cs_pool *pool, const char *root_key_id, const char *root_secret)
{
	struct boot_arg a = {root_key_id, root_secret};

	if (!key_id_valid(root_key_id) || !root_secret || strlen(root_secret) < 8 ||
	    strlen(root_secret) > S3_SECRET_MAX)
		return CAIRN_EINVAL;
	return cs_commit(pool, NULL, boot_fn, &a);
}

/* ---- users ---- */

static int user_create_fn(struct cs_txn *txn, void *arg)
{
	struct meta_txn *t = cs_txn_meta(txn);
	const char *name = arg;
	const void *v;
	size_t vl;
	int rc = meta_get(t, META_T_USERS, name, strlen(name), &v, &vl);

	if (rc == 0)
		return CAIRN_EEXISTS;
	if (rc != CAIRN_ENOTFOUND)
		return rc;
	return user_put(t, name, 0, (uint64_t)time(NULL));
}

int s3_user_create(struct cs_pool *pool, const char *name)
{
	if (!s3_user_name_valid(name))
		return CAIRN_EINVAL;
	return cs_commit(pool, NULL, user_create_fn, (void *)name);
}

static int user_delete_fn(struct cs_txn *txn, void *arg)
{
	struct meta_txn *t = cs_txn_meta(txn);
	const char *name = arg;
	size_t n = strlen(name);
	struct s3_user_rec rec;
	struct meta_cursor *c = NULL;
	uint8_t prefix[S3_USER_MAX + 1];
	const void *k, *v;
	size_t kl, vl;
	int rc = meta_get(t, META_T_USERS, name, n, &v, &vl);

	if (rc < 0)
		return rc;
	rc = s3_user_decode(v, vl, &rec);
	if (rc < 0)
		return rc;
	if (rec.flags & S3_USERF_ROOT)
		return CAIRN_EDENIED;
	/* Owner index: any [name][0]... entry means the user owns buckets. */
	memcpy(prefix, name, n);
	prefix[n] = 0;
	rc = meta_cursor_open(t, META_T_USERS, &c);
	if (rc < 0)
		return rc;
	rc = meta_cursor_seek(c, prefix, n + 1, &k, &kl, &v, &vl);
	meta_cursor_close(c);
	if (rc == 0 && kl > n + 1 && memcmp(k, prefix, n + 1) == 0)
		return CAIRN_ENOTEMPTY;
	if (rc < 0 && rc != CAIRN_ENOTFOUND)
		return rc;
	rc = meta_del(t, META_T_USERS, name, n);
	if (rc < 0)
		return rc;
	rc = keys_delete(t, name, NULL);
	if (rc < 0)
		return rc;
	return s3_tokens_drop_user(t, name);
}

int s3_user_delete(struct cs_pool *pool, const char *name)
{
	if (!s3_user_name_valid(name))
		return CAIRN_ENOTFOUND;
	return cs_commit(pool, NULL, user_delete_fn, (void *)name);
}

long s3_user_list(struct cs_pool *pool, struct s3_user *out, size_t max)
{
	struct meta_txn *t = NULL;
	struct meta_cursor *c = NULL;
	const void *k, *v;
	size_t kl, vl, n = 0;
	long rc = meta_txn_begin(cs_pool_meta(pool), false, &t);

	if (rc < 0)
		return rc;
	rc = meta_cursor_open(t, META_T_USERS, &c);
	if (rc < 0)
		goto out;
	rc = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
	while (rc == 0 && n < max) {
		struct s3_user_rec rec;
		if (kl == 0 || kl > S3_USER_MAX || memchr(k, 0, kl)) /* owner index entry */
			goto next;
		rc = s3_user_decode(v, vl, &rec);
		if (rc < 0)
			goto out;
		memset(&out[n], 0, sizeof(out[n]));
		memcpy(out[n].name, k, kl);
		out[n].created = rec.created;
		out[n].root = rec.flags & S3_USERF_ROOT;
		n++;
	next:
		rc = meta_cursor_next(c, &k, &kl, &v, &vl);
	}
	if (rc == 0 || rc == CAIRN_ENOTFOUND)
		rc = (long)n;
out:
	meta_cursor_close(c);
	meta_txn_abort(t);
	return rc;
}

int s3_user_get(struct cs_pool *pool, const char *name, struct s3_user *out)
{
	struct meta_txn *t = NULL;
	struct s3_user_rec rec;
	const void *v;
	size_t vl;
	int rc;

	if (!s3_user_name_valid(name))
		return CAIRN_ENOTFOUND;
	rc = meta_txn_begin(cs_pool_meta(pool), false, &t);
	if (rc < 0)
		return rc;
	rc = meta_get(t, META_T_USERS, name, strlen(name), &v, &vl);
	if (rc == 0)
		rc = s3_user_decode(v, vl, &rec);
	if (rc == 0 && out) {
		memset(out, 0, sizeof(*out));
		snprintf(out->name, sizeof(out->name), "%s", name);
		out->created = rec.created;
		out->root = rec.flags & S3_USERF_ROOT;
	}
	meta_txn_abort(t);
	return rc;
}

/* ---- keys ---- */

static int key_create_fn(struct cs_txn *txn, void *arg)
{
	struct meta_txn *t = cs_txn_meta(txn);
	struct s3_key *k = arg;
	const void *v;
	size_t vl;
	int rc = meta_get(t, META_T_USERS, k->user, strlen(k->user), &v, &vl);

	if (rc < 0)
		return rc;
	return key_put(t, k, 0, META_NOOVERWRITE);
}

int s3_key_create(struct cs_pool *pool, const char *user, struct s3_key *out)
{
	struct s3_key k = {.created = (uint64_t)time(NULL)};
	int rc;

	if (!s3_user_name_valid(user))
		return CAIRN_ENOTFOUND;
	snprintf(k.user, sizeof(k.user), "%s", user);
	for (int attempt = 0; attempt < 4; attempt++) {
		rc = rand_chars(k.id, 20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
		if (rc == 0)
			rc = rand_chars(
			    k.secret, 40,
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
		if (rc == 0)
			rc = cs_commit(pool, NULL, key_create_fn, &k);
		if (rc != CAIRN_EEXISTS) /* id collision: 36^20, but cheap to retry */
			break;
	}
	if (rc == 0) {
		*out = k;
		log_info(TAG, "created access key %s for user %s", k.id, k.user);
	}
	explicit_bzero(k.secret, sizeof(k.secret));
	return rc;
}

static int key_delete_fn(struct cs_txn *txn, void *arg)
{
	const char *id = arg;
	return meta_del(cs_txn_meta(txn), META_T_KEYS, id, strlen(id));
}

int s3_key_delete(struct cs_pool *pool, const char *key_id)
{
	if (!key_id_valid(key_id))
		return CAIRN_ENOTFOUND;
	return cs_commit(pool, NULL, key_delete_fn, (void *)key_id);
}

long s3_key_list(struct cs_pool *pool, const char *user, struct s3_key *out, size_t max)
{
	struct meta_txn *t = NULL;
	struct meta_cursor *c = NULL;
	const void *k, *v;
	size_t kl, vl, n = 0;
	long rc = meta_txn_begin(cs_pool_meta(pool), false, &t);

	if (rc < 0)
		return rc;
	rc = meta_cursor_open(t, META_T_KEYS, &c);
	if (rc < 0)
		goto out;
	rc = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
	while (rc == 0 && n < max) {
		rc = key_decode(k, kl, v, vl, &out[n], NULL);
		if (rc < 0)
			goto out;
		explicit_bzero(out[n].secret, sizeof(out[n].secret));
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

int s3_key_lookup(struct cs_pool *pool, const char *key_id, struct s3_key *out)
{
	struct meta_txn *t = NULL;
	const void *v;
	size_t vl;
	int rc;

	if (!key_id_valid(key_id))
		return CAIRN_ENOTFOUND;
	rc = meta_txn_begin(cs_pool_meta(pool), false, &t);
	if (rc < 0)
		return rc;
	rc = meta_get(t, META_T_KEYS, key_id, strlen(key_id), &v, &vl);
	if (rc == 0)
		rc = key_decode(key_id, strlen(key_id), v, vl, out, NULL);
	meta_txn_abort(t);
	return rc;
}
