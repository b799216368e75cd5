/* registry/img_api_members.c - /v2/images/{id}/members: sharing an image
 * with other users, who accept or reject it.
 *
 * Members live in the record's doc ("members": {user: {"status",
 * "created_at", "updated_at"}}, times in unix nanoseconds). Rules as
 * Glance's defaults: only shared images have members; the owner (or an
 * admin) adds and removes them; only the member (or an admin) changes its
 * status; a member sees only its own entry, the owner all of them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "registry/img_api.h"

static json_t *member_json(const char *image_id, const char *member, const json_t *m)
{
	char c[32], u[32];
	img_isotime((uint64_t)json_integer_value(json_object_get(m, "created_at")), c);
	img_isotime((uint64_t)json_integer_value(json_object_get(m, "updated_at")), u);
	const char *st = json_string_value(json_object_get(m, "status"));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "created_at", c, "image_id", image_id,
			 "member_id", member, "schema", "/v2/schemas/member", "status",
			 st ? st : "pending", "updated_at", u);
}

enum mop { M_ADD, M_STATUS, M_DEL };

struct mem_arg {
	const struct img_who *who;
	enum mop op;
	const char *member;
	const char *status;
	unsigned err_status;
	json_t *out; /* the member after the change */
};

static int mem_fn(struct cs_txn *txn, struct img_mut *m)
{
	(void)txn;
	struct mem_arg *ma = m->arg;
	char id[37];
	img_id_fmt(m->id, id);
	const char *owner = json_string_value(json_object_get(m->doc, "owner"));
	bool is_owner = owner && strcmp(owner, ma->who->user) == 0;
	if (m->rec.visibility != IMG_VIS_SHARED) {
		ma->err_status = 403;
		snprintf(m->why, sizeof(m->why), "Only shared images have members.");
		return CAIRN_EDENIED;
	}
	json_t *mem = json_object_get(m->doc, "members");
	if (!json_is_object(mem)) {
		mem = json_object();
		json_object_set_new(m->doc, "members", mem);
	}
	json_t *cur = json_object_get(mem, ma->member);
	int64_t now = img_now_ns();
	switch (ma->op) {
	case M_ADD:
		if (!ma->who->admin && !is_owner) {
			ma->err_status = 403;
			snprintf(m->why, sizeof(m->why),
				 "You are not permitted to create image members for the image.");
			return CAIRN_EDENIED;
		}
		if (cur) {
			ma->err_status = 409;
			snprintf(m->why, sizeof(m->why), "Member %s is duplicated for image %s",
				 ma->member, id);
			return CAIRN_EEXISTS;
		}
		if (json_object_size(mem) >= 128) {
			ma->err_status = 413;
			snprintf(m->why, sizeof(m->why),
				 "Image member limit exceeded for image %s: 128:", id);
			return CAIRN_ETOOBIG;
		}
		cur = json_pack("{s:s, s:I, s:I}", "status", "pending", "created_at",
				(json_int_t)now, "updated_at", (json_int_t)now);
		json_object_set_new(mem, ma->member, cur);
		break;
	case M_STATUS:
		if (!cur) {
			ma->err_status = 404;
			snprintf(m->why, sizeof(m->why),
				 "%s not found in the member list of the image %s.", ma->member,
				 id);
			return CAIRN_ENOTFOUND;
		}
		if (!ma->who->admin && strcmp(ma->who->user, ma->member) != 0) {
			ma->err_status = 403;
			snprintf(m->why, sizeof(m->why),
				 "You are not permitted to modify 'status' on this image member.");
			return CAIRN_EDENIED;
		}
		json_object_set_new(cur, "status", json_string(ma->status));
		json_object_set_new(cur, "updated_at", json_integer((json_int_t)now));
		break;
	case M_DEL:
		if (!cur) {
			ma->err_status = 404;
			snprintf(m->why, sizeof(m->why),
				 "%s not found in the member list of the image %s.", ma->member,
				 id);
			return CAIRN_ENOTFOUND;
		}
		if (!ma->who->admin && !is_owner) {
			ma->err_status = 403;
			snprintf(m->why, sizeof(m->why), "You cannot delete image member.");
			return CAIRN_EDENIED;
		}
		json_object_del(mem, ma->member);
		return 0;
	}
	ma->out = member_json(id, ma->member, cur);
	return ma->out ? 0 : -ENOMEM;
}

static void mem_write(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN],
		      struct mem_arg *ma)
{
	struct img_mut m = {.fn = mem_fn, .arg = ma};
	memcpy(m.id, id, IMG_ID_LEN);
	int ret = img_store_write(rq->reg->st, &m);
	if (ret < 0) {
		if (ma->err_status)
			img_err(rs, ma->err_status, "%s", m.why);
		else
			img_err_code(rs, ret, "members");
	} else if (ma->op == M_DEL) {
		rs->status = 204;
	} else {
		rs->status = 200;
		rs->json = ma->out;
		ma->out = NULL;
	}
	json_decref(ma->out);
	img_mut_clear(&m);
}

/* Parses a member request (POST a member, PUT a status, DELETE) into ma:
 * 0, or -1 with rs filled. *bodyp: the parsed body (ma borrows from it). */
static int mem_parse(const char *method, const char *member, const char *text, size_t len,
		     json_t **bodyp, struct mem_arg *ma, struct img_resp *rs)
{
	json_error_t jerr;

	if (strcmp(method, "POST") == 0) {
		if (member) {
			img_err(rs, 405, "The method is not allowed for this resource.");
			return -1;
		}
		if (!len) {
			img_err(rs, 400, "Body expected in request.");
			return -1;
		}
		*bodyp = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
		if (!*bodyp) {
			img_err(rs, 400, "Malformed JSON in request body.");
			return -1;
		}
		json_t *mv = json_is_object(*bodyp) ? json_object_get(*bodyp, "member") : NULL;
		if (!json_is_object(*bodyp)) {
			img_err(rs, 400,
				"Expected a member in the form: {\"member\": \"image_id\"}");
			return -1;
		}
		if (!mv) {
			img_err(rs, 400, "Member to be added not specified");
			return -1;
		}
		if (!json_is_string(mv) || json_string_length(mv) == 0) {
			img_err(rs, 400, "Member can't be empty");
			return -1;
		}
		if (json_string_length(mv) > 255) {
			img_err(rs, 400, "Member is too long");
			return -1;
		}
		ma->op = M_ADD;
		ma->member = json_string_value(mv);
	} else if (strcmp(method, "PUT") == 0) {
		if (!member) {
			img_err(rs, 405, "The method is not allowed for this resource.");
			return -1;
		}
		if (!len) {
			img_err(rs, 400, "Body expected in request.");
			return -1;
		}
		*bodyp = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
		if (!*bodyp) {
			img_err(rs, 400, "Malformed JSON in request body.");
			return -1;
		}
		if (!json_is_object(*bodyp)) {
			img_err(rs, 400, "Expected a status in the form: {\"status\": \"status\"}");
			return -1;
		}
		json_t *sv = json_object_get(*bodyp, "status");
		if (!sv) {
			img_err(rs, 400, "Status not specified");
			return -1;
		}
		const char *st = json_string_value(sv);
		if (!st ||
		    (strcmp(st, "pending") && strcmp(st, "accepted") && strcmp(st, "rejected"))) {
			char *t = json_dumps(sv, JSON_ENCODE_ANY);
			img_err(rs, 400,
				"Provided object does not match schema 'member': %s is not one of "
				"['pending', 'accepted', 'rejected']",
				t ? t : "?");
			free(t);
			return -1;
		}
		ma->op = M_STATUS;
		ma->member = member;
		ma->status = st;
	} else {
		if (!member) {
			img_err(rs, 405, "The method is not allowed for this resource.");
			return -1;
		}
		ma->op = M_DEL;
		ma->member = member;
	}
	return 0;
}

void img_api_members(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN])
{
	struct img_entry *e = NULL;
	json_t *body = NULL;
	char sid[37];
	const char *member = rq->nsegs == 5 ? rq->segs[4] : NULL;
	img_id_fmt(id, sid);
	if (img_lookup(rq->reg, &rq->who, id, &e) < 0) {
		img_err(rs, 404, "Image %s not found.", sid);
		return;
	}
	bool owner_or_admin = img_can_write(&rq->who, e);
	if (strcmp(rq->method, "POST") != 0 && strcmp(rq->method, "DELETE") != 0 &&
	    strcmp(rq->method, "PUT") != 0) {
		/* GET (HEAD) */
		if (e->rec.visibility != IMG_VIS_SHARED) {
			img_err(rs, 403, "Only shared images have members.");
			goto out;
		}
		json_t *mem = json_object_get(e->doc, "members");
		if (member) {
			json_t *m = json_object_get(mem, member);
			if (!m || (!owner_or_admin && strcmp(member, rq->who.user) != 0)) {
				img_err(rs, 404, "%s not found in the member list of the image %s.",
					member, sid);
				goto out;
			}
			rs->status = 200;
			rs->json = member_json(sid, member, m);
			goto out;
		}
		json_t *arr = json_array();
		const char *k;
		json_t *v;
		json_object_foreach(mem, k, v)
		{
			if (owner_or_admin || strcmp(k, rq->who.user) == 0)
				json_array_append_new(arr, member_json(sid, k, v));
		}
		rs->status = 200;
		rs->json = json_pack("{s:o, s:s}", "members", arr, "schema", "/v2/schemas/members");
		goto out;
	}
	struct mem_arg ma = {.who = &rq->who};
	if (mem_parse(rq->method, member, rq->body, rq->body_len, &body, &ma, rs) < 0)
		goto out;
	mem_write(rq, rs, id, &ma);
out:
	json_decref(body);
	img_entry_put(e);
}

int img_member_try(const struct img_who *w, const char *method, const char *member,
		   const char *body, size_t len, struct img_rec *rec, json_t *doc,
		   struct img_resp *rs)
{
	json_t *bj = NULL;
	struct mem_arg ma = {.who = w};
	struct img_mut m = {.rec = *rec, .doc = doc, .arg = &ma};
	int ret = -1;
	memcpy(m.id, rec->id, IMG_ID_LEN);
	if (mem_parse(method, member, body, len, &bj, &ma, rs) < 0)
		goto out;
	ret = mem_fn(NULL, &m);
	if (ret < 0) {
		img_err(rs, ma.err_status ? ma.err_status : 500, "%s", m.why);
		ret = -1;
	} else {
		rs->status = ma.op == M_DEL ? 204 : 200;
		rs->json = ma.out;
	}
	*rec = m.rec;
out:
	json_decref(bj);
	return ret;
}
