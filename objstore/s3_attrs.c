/* objstore/s3_attrs.c - GetObjectAttributes (GET /bucket/key?attributes).
 *
 * Reads the object record in one short read transaction and answers the
 * attributes x-amz-object-attributes asks for: ETag, Checksum, ObjectParts
 * (part sizes from the S3_F_PART_SIZES runs, paginated by x-amz-max-parts
 * and x-amz-part-number-marker), StorageClass, ObjectSize. Reads no data.
 * O(parts listed) after the record read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/hash.h"
#include "objstore/s3_server_internal.h"
#include "objstore/s3_xml.h"

enum {
	ATTR_ETAG = 1,
	ATTR_CHECKSUM = 2,
	ATTR_PARTS = 4,
	ATTR_CLASS = 8,
	ATTR_SIZE = 16,
};

/* Parses the comma-separated attribute list; 0 when empty or unknown. */
static int attrs_parse(const char *v, bool *bad)
{
	static const struct {
		const char *name;
		int bit;
	} names[] = {{"ETag", ATTR_ETAG},
		     {"Checksum", ATTR_CHECKSUM},
		     {"ObjectParts", ATTR_PARTS},
		     {"StorageClass", ATTR_CLASS},
		     {"ObjectSize", ATTR_SIZE}};
	int mask = 0;

	*bad = false;
	while (v && *v) {
		const char *end = strchr(v, ',');
		size_t len = end ? (size_t)(end - v) : strlen(v);
		const char *t = v;
		size_t tl = len;
		bool found = false;
		while (tl && (*t == ' ' || *t == '\t'))
			t++, tl--;
		while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
			tl--;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (tl == strlen(names[i].name) && strncmp(t, names[i].name, tl) == 0) {
				mask |= names[i].bit;
				found = true;
			}
		if (!found && tl)
			*bad = true;
		v += len;
		if (*v == ',')
			v++;
	}
	return mask;
}

static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

/* Lists parts [marker+1, ...] up to max from the size runs. */
static int parts_xml(struct s3_xml *x, const struct s3_objinfo *o, uint64_t max, uint64_t marker)
{
	struct s3_runs_iter it;
	uint64_t pn = 0, listed = 0, last = marker, size;
	uint32_t count;
	bool truncated = false;
	int rc;

	s3_part_runs_init(&it, o);
	s3_xml_open(x, "ObjectParts", NULL);
	while (!truncated && (rc = s3_part_runs_next(&it, &size, &count)) == 1) {
		if (pn + count <= marker) {
			pn += count; /* the whole run is before the marker */
			continue;
		}
		for (uint32_t i = 0; i < count; i++) {
			pn++;
			if (pn <= marker)
				continue;
			if (listed == max) {
				truncated = true;
				break;
			}
			s3_xml_open(x, "Part", NULL);
			s3_xml_elem_u64(x, "PartNumber", pn);
			s3_xml_elem_u64(x, "Size", size);
			s3_xml_close(x);
			listed++;
			last = pn;
		}
	}
	if (!truncated && rc < 0)
		return rc;
	s3_xml_elem_bool(x, "IsTruncated", truncated);
	s3_xml_elem_u64(x, "MaxParts", max);
	s3_xml_elem_u64(x, "NextPartNumberMarker", last);
	s3_xml_elem_u64(x, "PartNumberMarker", marker);
	s3_xml_elem_u64(x, "PartsCount", o->rec.parts);
	s3_xml_close(x);
	return 0;
}

void s3_op_get_object_attributes(struct s3_req *r)
{
	const char *want = s3_req_header(r, "x-amz-object-attributes");
	struct s3_bucket b;
	struct s3_objinfo o;
	struct s3_cksum ck;
	struct s3_xml x;
	struct MHD_Response *resp;
	size_t len;
	void *copy = NULL;
	char *body = NULL, hex[33], etag[48], date[S3_HTTP_DATE_LEN + 1];
	uint64_t max = 1000, marker = 0;
	bool bad;
	int mask = attrs_parse(want, &bad), rc;

	if (!want || bad || !mask) {
		s3_reply_error(r, S3E_INVALID_ARGUMENT,
			       want
				   ? "Invalid attribute name specified."
				   : "The x-amz-object-attributes header specifying the attributes "
				     "to be retrieved is either missing or empty");
		return;
	}
	if ((s3_req_header(r, "x-amz-max-parts") &&
	     !parse_uint(s3_req_header(r, "x-amz-max-parts"), 1000000, &max)) ||
	    (s3_req_header(r, "x-amz-part-number-marker") &&
	     !parse_uint(s3_req_header(r, "x-amz-part-number-marker"), 1000000, &marker))) {
		s3_reply_error(r, S3E_INVALID_ARGUMENT, "Invalid part number marker or max parts");
		return;
	}
	if (max > 1000)
		max = 1000;
	if (s3_bucket_check(r, &b))
		return;
	rc = s3_obj_load(r, &copy, &o);
	if (rc < 0) {
		if (rc == CAIRN_ENOTFOUND) {
			struct s3_err_extra ex = {"Key", r->addr.key};
			s3_reply_error_extra(r, S3E_NO_SUCH_KEY, NULL, &ex, 1);
		} else {
			s3_reply_code(r, rc, S3E_NO_SUCH_KEY);
		}
		goto out;
	}
	s3_xml_init(&x);
	s3_xml_open(&x, "GetObjectAttributesResponse", S3_XMLNS);
	if (mask & ATTR_ETAG) {
		hash_hex(o.rec.md5, 16, hex);
		if (o.rec.parts)
			snprintf(etag, sizeof(etag), "%s-%u", hex, o.rec.parts);
		else
			snprintf(etag, sizeof(etag), "%s", hex);
		s3_xml_elem(&x, "ETag", etag);
	}
	if ((mask & ATTR_CHECKSUM) && s3_obj_checksum(&o, &ck)) {
		char b64[S3_CKSUM_B64_MAX], elem[32];
		if (s3_cksum_b64(&ck, b64, sizeof(b64)) > 0) {
			snprintf(elem, sizeof(elem), "Checksum%s", s3_cksum_name(ck.algo));
			s3_xml_open(&x, "Checksum", NULL);
			s3_xml_elem(&x, elem, b64);
			s3_xml_elem(&x, "ChecksumType", s3_cksum_type_name(ck.type));
			s3_xml_close(&x);
		}
	}
	if ((mask & ATTR_PARTS) && o.rec.parts) {
		rc = parts_xml(&x, &o, max, marker);
		if (rc < 0) {
			s3_xml_free(&x);
			s3_reply_code(r, rc, S3E_NO_SUCH_KEY);
			goto out;
		}
	}
	if (mask & ATTR_CLASS)
		s3_xml_elem(&x, "StorageClass", "STANDARD");
	if (mask & ATTR_SIZE)
		s3_xml_elem_u64(&x, "ObjectSize", o.rec.size);
	s3_xml_close(&x);
	if (s3_xml_finish(&x, &body, &len) < 0) {
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		goto out;
	}
	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		s3_reply_error(r, S3E_SLOW_DOWN, "Out of memory");
		goto out;
	}
	s3_http_date_format((time_t)(o.rec.mtime_ns / 1000000000u), date);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/xml");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
	r->bytes_out = len;
	s3_reply_response(r, 200, resp);
out:
	free(copy);
}
