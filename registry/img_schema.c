/* registry/img_schema.c - the JSON schemas glanceclient fetches, and the
 * checks of base property values against them.
 *
 * glanceclient validates every image body against /v2/schemas/image and
 * builds its CLI options from it, so types and enums follow Glance's
 * exactly. Two deliberate differences: no "stores" property (Debian's
 * glance CLI crashes on it once the schema is cached) and no "locations"
 * (images live in the pool, not at URLs); cairn_unique_bytes and
 * cairn_shared_bytes are added as read-only integers. Extra properties are
 * strings (additionalProperties).
 */
#include <stdio.h>
#include <string.h>

#include "registry/img_api.h"

#define UUID_PATTERN                                                                               \
	"^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"

static const char *const disk_formats[] = {"ami", "ari",   "aki", "vhd", "vhdx",  "vmdk",
					   "raw", "qcow2", "vdi", "iso", "ploop", NULL};
static const char *const container_formats[] = {"ami", "ari",	 "aki",	       "bare", "ovf",
						"ova", "docker", "compressed", NULL};
static const char *const statuses[] = {"queued",      "saving",	   "active",	"killed",
				       "deleted",     "uploading", "importing", "pending_delete",
				       "deactivated", NULL};
static const char *const visibilities[] = {"community", "public", "private", "shared", NULL};

enum ptype { P_STR, P_NSTR, P_BOOL, P_INT, P_NINT, P_TAGS };

struct prop {
	const char *name;
	enum ptype type;
	bool ro;
	int maxlen; /* 0: none */
	const char *const *enumv;
	bool null_in_enum;
	const char *desc;
	const char *pattern;
};

static const struct prop props[] = {
    {"id", P_STR, false, 0, NULL, false, "An identifier for the image", UUID_PATTERN},
    {"name", P_NSTR, false, 255, NULL, false, "Descriptive name for the image", NULL},
    {"status", P_STR, true, 0, statuses, false, "Status of the image", NULL},
    {"visibility", P_STR, false, 0, visibilities, false, "Scope of image accessibility", NULL},
    {"protected", P_BOOL, false, 0, NULL, false, "If true, image will not be deletable.", NULL},
    {"os_hidden", P_BOOL, false, 0, NULL, false,
     "If true, image will not appear in default image list response.", NULL},
    {"checksum", P_NSTR, true, 32, NULL, false, "md5 hash of image contents.", NULL},
    {"os_hash_algo", P_NSTR, true, 64, NULL, false, "Algorithm to calculate the os_hash_value",
     NULL},
    {"os_hash_value", P_NSTR, true, 128, NULL, false,
     "Hexdigest of the image contents using the algorithm specified by the os_hash_algo", NULL},
    {"owner", P_NSTR, false, 255, NULL, false, "Owner of the image", NULL},
    {"size", P_NINT, true, 0, NULL, false, "Size of image file in bytes", NULL},
    {"virtual_size", P_NINT, true, 0, NULL, false, "Virtual size of image in bytes", NULL},
    {"container_format", P_NSTR, false, 0, container_formats, true, "Format of the container",
     NULL},
    {"disk_format", P_NSTR, false, 0, disk_formats, true, "Format of the disk", NULL},
    {"created_at", P_STR, true, 0, NULL, false, "Date and time of image registration", NULL},
    {"updated_at", P_STR, true, 0, NULL, false, "Date and time of the last image modification",
     NULL},
    {"tags", P_TAGS, false, 255, NULL, false, "List of strings related to the image", NULL},
    {"direct_url", P_STR, true, 0, NULL, false,
     "URL to access the image file kept in external store", NULL},
    {"min_ram", P_INT, false, 0, NULL, false, "Amount of ram (in MB) required to boot image.",
     NULL},
    {"min_disk", P_INT, false, 0, NULL, false,
     "Amount of disk space (in GB) required to boot image.", NULL},
    {"self", P_STR, true, 0, NULL, false, "An image self url", NULL},
    {"file", P_STR, true, 0, NULL, false, "An image file url", NULL},
    {"schema", P_STR, true, 0, NULL, false, "An image schema url", NULL},
    {"cairn_unique_bytes", P_INT, true, 0, NULL, false,
     "Bytes of the image's chunks that no other data in the pool holds (cairn)", NULL},
    {"cairn_shared_bytes", P_INT, true, 0, NULL, false,
     "Bytes of the image's chunks shared with other images or objects (cairn)", NULL},
};
#define NPROPS (sizeof(props) / sizeof(props[0]))

static const struct prop *prop_find(const char *name)
{
	for (size_t i = 0; i < NPROPS; i++)
		if (strcmp(props[i].name, name) == 0)
			return &props[i];
	return NULL;
}

bool img_schema_is_base(const char *prop)
{
	/* Glance's base properties plus what the view always shows; "stores"
	 * and "locations" are Glance's too and never extra properties here. */
	return prop_find(prop) || strcmp(prop, "stores") == 0 || strcmp(prop, "locations") == 0;
}

bool img_schema_is_readonly(const char *prop)
{
	const struct prop *p = prop_find(prop);
	return (p && p->ro) || strcmp(prop, "stores") == 0 || strcmp(prop, "id") == 0;
}

static json_t *type_of(enum ptype t)
{
	switch (t) {
	case P_STR:
		return json_string("string");
	case P_NSTR:
		return json_pack("[s,s]", "null", "string");
	case P_BOOL:
		return json_string("boolean");
	case P_INT:
		return json_string("integer");
	case P_NINT:
		return json_pack("[s,s]", "null", "integer");
	case P_TAGS:
		return json_string("array");
	}
	return NULL;
}

static json_t *prop_json(const struct prop *p)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "type", type_of(p->type));
	if (p->ro)
		json_object_set_new(o, "readOnly", json_true());
	json_object_set_new(o, "description", json_string(p->desc));
	if (p->pattern)
		json_object_set_new(o, "pattern", json_string(p->pattern));
	if (p->type == P_TAGS) {
		json_object_set_new(
		    o, "items", json_pack("{s:s, s:i}", "type", "string", "maxLength", p->maxlen));
	} else if (p->maxlen) {
		json_object_set_new(o, "maxLength", json_integer(p->maxlen));
	}
	if (p->enumv) {
		json_t *a = json_array();
		if (p->null_in_enum)
			json_array_append_new(a, json_null());
		for (const char *const *e = p->enumv; *e; e++)
			json_array_append_new(a, json_string(*e));
		json_object_set_new(o, "enum", a);
	}
	return o;
}

json_t *img_schema_image(void)
{
	json_t *pr = json_object();
	for (size_t i = 0; i < NPROPS; i++)
		json_object_set_new(pr, props[i].name, prop_json(&props[i]));
	return json_pack("{s:s, s:o, s:{s:s}, s:[{s:s,s:s},{s:s,s:s},{s:s,s:s}]}", "name", "image",
			 "properties", pr, "additionalProperties", "type", "string", "links", "rel",
			 "self", "href", "{self}", "rel", "enclosure", "href", "{file}", "rel",
			 "describedby", "href", "{schema}");
}

static json_t *collection(const char *name, const char *item_key, json_t *item)
{
	return json_pack("{s:s, s:{s:{s:s, s:o}, s:{s:s}, s:{s:s}, s:{s:s}}, "
			 "s:[{s:s,s:s},{s:s,s:s},{s:s,s:s}]}",
			 "name", name, "properties", item_key, "type", "array", "items", item,
			 "first", "type", "string", "next", "type", "string", "schema", "type",
			 "string", "links", "rel", "first", "href", "{first}", "rel", "next",
			 "href", "{next}", "rel", "describedby", "href", "{schema}");
}

json_t *img_schema_images(void)
{
	return collection("images", "images", img_schema_image());
}

json_t *img_schema_member(void)
{
	return json_pack(
	    "{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, "
	    "s:{s:s, s:s, s:[s,s,s]}, s:{s:b, s:s}}, s:b}",
	    "name", "member", "properties", "member_id", "type", "string", "description",
	    "An identifier for the image member (tenantId)", "image_id", "type", "string",
	    "description", "An identifier for the image", "pattern", UUID_PATTERN, "created_at",
	    "type", "string", "description", "Date and time of image member creation", "updated_at",
	    "type", "string", "description", "Date and time of last modification of image member",
	    "status", "type", "string", "description", "The status of this image member", "enum",
	    "pending", "accepted", "rejected", "schema", "readOnly", 1, "type", "string",
	    "additionalProperties", 0);
}

json_t *img_schema_members(void)
{
	return collection("members", "members", img_schema_member());
}

json_t *img_schema_task(void)
{
	return json_pack(
	    "{s:s, s:{s:{s:s, s:s}, s:{s:s, s:[s,s]}, s:{s:s, s:[s,s,s,s]}, s:{s:[s,s]}, "
	    "s:{s:[s,s]}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:[s,s]}, s:{s:s}, "
	    "s:{s:s}, s:{s:b, s:s}, s:{s:b, s:s}}, s:b}",
	    "name", "task", "properties", "id", "type", "string", "pattern", UUID_PATTERN, "type",
	    "type", "string", "enum", "import", "api_image_import", "status", "type", "string",
	    "enum", "pending", "processing", "success", "failure", "input", "type", "null",
	    "object", "result", "type", "null", "object", "owner", "type", "string", "message",
	    "type", "string", "image_id", "type", "string", "request_id", "type", "string",
	    "user_id", "type", "string", "expires_at", "type", "null", "string", "created_at",
	    "type", "string", "updated_at", "type", "string", "self", "readOnly", 1, "type",
	    "string", "schema", "readOnly", 1, "type", "string", "additionalProperties", 0);
}

json_t *img_schema_tasks(void)
{
	return collection("tasks", "tasks", img_schema_task());
}

/* jsonschema's words for a type list. */
static const char *type_words(enum ptype t)
{
	switch (t) {
	case P_STR:
		return "'string'";
	case P_NSTR:
		return "'null', 'string'";
	case P_BOOL:
		return "'boolean'";
	case P_INT:
		return "'integer'";
	case P_NINT:
		return "'null', 'integer'";
	case P_TAGS:
		return "'array'";
	}
	return "";
}

static void repr(const json_t *v, char *out, size_t len)
{
	char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	snprintf(out, len, "%s", t ? t : "?");
	free(t);
}

int img_schema_check(const char *prop, const json_t *v, char *why, size_t whylen)
{
	const struct prop *p = prop_find(prop);
	char r[128];
	if (!p) {
		/* An extra property: additionalProperties {"type": "string"}. */
		if (json_is_string(v))
			return 0;
		repr(v, r, sizeof(r));
		snprintf(why, whylen,
			 "Provided object does not match schema 'image': %s is not of "
			 "type 'string'",
			 r);
		return CAIRN_EINVAL;
	}
	bool ok;
	switch (p->type) {
	case P_STR:
		ok = json_is_string(v);
		break;
	case P_NSTR:
		ok = json_is_string(v) || json_is_null(v);
		break;
	case P_BOOL:
		ok = json_is_boolean(v);
		break;
	case P_INT:
		ok = json_is_integer(v);
		break;
	case P_NINT:
		ok = json_is_integer(v) || json_is_null(v);
		break;
	case P_TAGS:
		ok = json_is_array(v);
		break;
	default:
		ok = false;
	}
	if (!ok) {
		repr(v, r, sizeof(r));
		snprintf(why, whylen,
			 "Provided object does not match schema 'image': %s is not of type %s", r,
			 type_words(p->type));
		return CAIRN_EINVAL;
	}
	if (p->type == P_TAGS) {
		size_t i;
		json_t *t;
		json_array_foreach(v, i, t)
		{
			if (!json_is_string(t)) {
				repr(t, r, sizeof(r));
				snprintf(why, whylen,
					 "Provided object does not match schema 'image': %s is not "
					 "of type 'string'",
					 r);
				return CAIRN_EINVAL;
			}
			if (json_string_length(t) > 255) {
				snprintf(
				    why, whylen,
				    "Provided object does not match schema 'image': '%.40s...' "
				    "is too long",
				    json_string_value(t));
				return CAIRN_EINVAL;
			}
		}
		return 0;
	}
	if (json_is_string(v) && p->maxlen && json_string_length(v) > (size_t)p->maxlen) {
		snprintf(why, whylen,
			 "Provided object does not match schema 'image': '%.40s...' is too long",
			 json_string_value(v));
		return CAIRN_EINVAL;
	}
	if (json_is_string(v) && p->pattern) {
		uint8_t id[IMG_ID_LEN];
		if (img_id_parse(json_string_value(v), id) < 0) {
			repr(v, r, sizeof(r));
			snprintf(why, whylen,
				 "Provided object does not match schema 'image': %s does not match "
				 "'%s'",
				 r, p->pattern);
			return CAIRN_EINVAL;
		}
	}
	if (p->enumv && !(json_is_null(v) && p->null_in_enum)) {
		const char *s = json_string_value(v);
		for (const char *const *e = p->enumv; *e; e++)
			if (s && strcmp(*e, s) == 0)
				return 0;
		repr(v, r, sizeof(r));
		char list[256] = "";
		size_t off = 0;
		if (p->null_in_enum)
			off += (size_t)snprintf(list, sizeof(list), "None");
		for (const char *const *e = p->enumv; *e && off < sizeof(list); e++)
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s'%s'",
						off ? ", " : "", *e);
		snprintf(why, whylen,
			 "Provided object does not match schema 'image': %s is not one of [%s]", r,
			 list);
		return CAIRN_EINVAL;
	}
	return 0;
}
