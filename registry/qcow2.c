/* registry/qcow2.c - the qcow2 header checker (see qcow2.h).
 *
 * One pass over the header cluster, in the order that gives the most useful reason:
 * magic, version and the fixed header; what makes a tool open other files or need a
 * secret; the feature bits; the virtual size and the tables it implies; then the header
 * extensions. Every offset sum is checked for overflow before it is used. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "registry/qcow2.h"

/* Fixed header field offsets (qcow2.txt "Header"). */
#define OFF_VERSION 4
#define OFF_BACKING_OFFSET 8
#define OFF_BACKING_SIZE 16
#define OFF_CLUSTER_BITS 20
#define OFF_SIZE 24
#define OFF_CRYPT 32
#define OFF_L1_SIZE 36
#define OFF_L1_OFFSET 40
#define OFF_REFTABLE_OFFSET 48
#define OFF_REFTABLE_CLUSTERS 56
#define OFF_NB_SNAPSHOTS 60
#define OFF_SNAPSHOTS_OFFSET 64
#define OFF_INCOMPAT 72
#define OFF_COMPAT 80
#define OFF_AUTOCLEAR 88
#define OFF_REFCOUNT_ORDER 96
#define OFF_HEADER_LENGTH 100
#define OFF_COMPRESSION_TYPE 104

#define INCOMPAT_KNOWN                                                                             \
	(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DATA_FILE |                \
	 QCOW2_INCOMPAT_COMPRESSION | QCOW2_INCOMPAT_EXTL2)
#define FEATURE_ENTRY_LEN 48
#define FEATURE_NAME_LEN 46
#define BITMAPS_EXT_LEN 24
#define BACKING_FORMAT_MAX 15 /* qemu keeps it in a 16-byte buffer */
#define MAX_BITMAPS 65535
#define SNAPSHOT_ENTRY_V2_MIN 40 /* fixed part of a snapshot table entry */
#define SNAPSHOT_ENTRY_V3_MIN 56 /* version 3 carries extra data up to byte 55 */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

__attribute__((format(printf, 3, 4))) static int refuse(char *why, size_t whylen, const char *fmt,
							...)
{
	if (why && whylen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return CAIRN_EINVAL;
}

/* More bytes are needed: -ENODATA, unless the file is known to be too short to hold them
 * (then waiting cannot help and the header lies about its own extent). */
static int need(struct qcow2_info *out, uint64_t n, uint64_t file_size, char *why, size_t whylen)
{
	if (file_size && n > file_size)
		return refuse(why, whylen,
			      "qcow2 header runs past the end of the file (%llu > %llu bytes)",
			      (unsigned long long)n, (unsigned long long)file_size);
	out->need = n;
	return -ENODATA;
}

/* A table of len bytes at off: cluster-aligned, after the header cluster, inside the file
 * when its size is known. Returns NULL if fine, else what is wrong. */
static const char *check_table(uint64_t off, uint64_t len, uint32_t cluster_bits,
			       uint64_t file_size)
{
	uint64_t csize = 1ULL << cluster_bits;
	if (off & (csize - 1))
		return "is not cluster-aligned";
	if (off < csize)
		return "overlaps the header cluster";
	if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
		return "lies past any possible file";
	if (file_size && off + len > file_size)
		return "lies past the end of the file";
	return NULL;
}

/* The name the image's feature name table gives incompatible bit `bit`, copied into
 * name (NUL-terminated, printable ASCII only), or "" when there is none. */
static void feature_name(const uint8_t *tab, uint32_t tablen, unsigned bit, char *name,
			 size_t namelen)
{
	name[0] = '\0';
	for (uint32_t i = 0; tab && i + FEATURE_ENTRY_LEN <= tablen; i += FEATURE_ENTRY_LEN) {
		if (tab[i] != 0 || tab[i + 1] != bit)
			continue;
		size_t n = 0;
		for (size_t k = 0; k < FEATURE_NAME_LEN && n + 1 < namelen; k++) {
			uint8_t c = tab[i + 2 + k];
			if (c == 0)
				break;
			name[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
		name[n] = '\0';
		return;
	}
}

/* Walks the header extensions from off to the end of the header cluster. Returns 1
 * when the walk completed, else CAIRN_EINVAL or -ENODATA (like qcow2_probe). */
static int check_extensions(const uint8_t *p, size_t len, uint64_t file_size, uint32_t off,
			    struct qcow2_info *out, const uint8_t **ftab, uint32_t *ftablen,
			    char *why, size_t whylen)
{
	uint64_t csize = 1ULL << out->cluster_bits;
	uint32_t seen = 0; /* one bit per known type: each may appear once */

	while (off < csize) {
		/* off and csize are multiples of 8, so an extension header always fits. */
		if (len < (size_t)off + 8)
			return need(out, (uint64_t)off + 8, file_size, why, whylen);
		uint32_t type = be32(p + off), elen = be32(p + off + 4);
		if (type == QCOW2_EXT_END)
			return 1;
		uint64_t padded = ((uint64_t)elen + 7) & ~7ULL;
		if (padded > csize - off - 8)
			return refuse(why, whylen,
				      "qcow2 header extension 0x%08x at %u (length %u) runs past "
				      "the header cluster",
				      type, off, elen);
		if (len < (size_t)(off + 8 + padded))
			return need(out, off + 8 + padded, file_size, why, whylen);
		const uint8_t *d = p + off + 8;
		uint32_t bit = 0;
		switch (type) {
		case QCOW2_EXT_DATA_FILE:
			return refuse(why, whylen, "qcow2 image names an external data file");
		case QCOW2_EXT_CRYPTO:
			return refuse(why, whylen,
				      "qcow2 image carries an encryption header extension");
		case QCOW2_EXT_BACKING_FORMAT:
			bit = 1;
			if (elen > BACKING_FORMAT_MAX)
				return refuse(why, whylen,
					      "qcow2 backing format extension too long (%u bytes)",
					      elen);
			break;
		case QCOW2_EXT_FEATURE_TABLE:
			bit = 2;
			if (elen % FEATURE_ENTRY_LEN)
				return refuse(why, whylen,
					      "qcow2 feature name table length %u is not a "
					      "multiple of %d",
					      elen, FEATURE_ENTRY_LEN);
			*ftab = d;
			*ftablen = elen;
			break;
		case QCOW2_EXT_BITMAPS: {
			bit = 4;
			if (elen != BITMAPS_EXT_LEN)
				return refuse(why, whylen,
					      "qcow2 bitmaps extension has length %u, not %d", elen,
					      BITMAPS_EXT_LEN);
			uint32_t nb = be32(d), reserved = be32(d + 4);
			uint64_t dsize = be64(d + 8), doff = be64(d + 16);
			if (nb == 0 || nb > MAX_BITMAPS || reserved != 0 || dsize == 0)
				return refuse(why, whylen,
					      "qcow2 bitmaps extension is malformed (%u bitmaps)",
					      nb);
			const char *bad = check_table(doff, dsize, out->cluster_bits, file_size);
			if (bad)
				return refuse(why, whylen, "qcow2 bitmap directory %s", bad);
			break;
		}
		default:
			break; /* unknown extensions can be safely ignored (qcow2.txt) */
		}
		if (bit) {
			if (seen & bit)
				return refuse(why, whylen,
					      "qcow2 header extension 0x%08x appears twice", type);
			seen |= bit;
		}
		off += 8 + (uint32_t)padded;
	}
	return 1;
}

int qcow2_probe(const void *buf, size_t len, uint64_t file_size, struct qcow2_info *out, char *why,
		size_t whylen)
{
	static const uint8_t magic[4] = {'Q', 'F', 'I', 0xfb};
	const uint8_t *p = buf;
	const uint8_t *ftab = NULL;
	uint32_t ftablen = 0;

	memset(out, 0, sizeof(*out));
	if (why && whylen)
		why[0] = '\0';
	if (file_size && len > file_size)
		len = (size_t)file_size; /* bytes past the end are not the image's */
	for (size_t i = 0; i < len && i < 4; i++)
		if (p[i] != magic[i])
			return 0;
	if (len < 4) {
		if (file_size && file_size < 4)
			return 0; /* too short to be anything but a tiny raw file */
		out->need = 4;
		return -ENODATA;
	}
	if (len < 8)
		return need(out, 8, file_size, why, whylen);
	out->version = be32(p + OFF_VERSION);
	if (out->version != 2 && out->version != 3)
		return refuse(why, whylen, "qcow2 version %u is not supported (only 2 and 3)",
			      out->version);
	uint32_t fixed = out->version == 2 ? QCOW2_V2_HEADER_LEN : QCOW2_V3_HEADER_LEN;
	if (len < fixed)
		return need(out, fixed, file_size, why, whylen);

	/* What would make qemu-img open another file, or need a key. */
	uint64_t backing_off = be64(p + OFF_BACKING_OFFSET);
	uint32_t backing_len = be32(p + OFF_BACKING_SIZE);
	if (backing_off || backing_len)
		return refuse(why, whylen, "qcow2 image names a backing file");
	uint32_t crypt = be32(p + OFF_CRYPT);
	if (crypt)
		return refuse(why, whylen, "qcow2 image is encrypted (%s)",
			      crypt == 1   ? "AES"
			      : crypt == 2 ? "LUKS"
					   : "unknown method");

	out->cluster_bits = be32(p + OFF_CLUSTER_BITS);
	if (out->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
	    out->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return refuse(why, whylen, "qcow2 cluster_bits %u outside %d..%d",
			      out->cluster_bits, QCOW2_MIN_CLUSTER_BITS, QCOW2_MAX_CLUSTER_BITS);
	uint64_t csize = 1ULL << out->cluster_bits;

	out->header_length = QCOW2_V2_HEADER_LEN;
	out->refcount_order = 4; /* implied for version 2 */
	if (out->version == 3) {
		out->incompatible = be64(p + OFF_INCOMPAT);
		out->compatible = be64(p + OFF_COMPAT);
		out->autoclear = be64(p + OFF_AUTOCLEAR);
		out->refcount_order = be32(p + OFF_REFCOUNT_ORDER);
		out->header_length = be32(p + OFF_HEADER_LENGTH);
		if (out->header_length < QCOW2_V3_HEADER_LEN || out->header_length % 8 ||
		    out->header_length > csize)
			return refuse(why, whylen,
				      "qcow2 v3 header_length %u is wrong (>= %d, a multiple of "
				      "8, within the %llu-byte cluster)",
				      out->header_length, QCOW2_V3_HEADER_LEN,
				      (unsigned long long)csize);
		if (out->refcount_order > 6)
			return refuse(why, whylen, "qcow2 refcount_order %u above 6",
				      out->refcount_order);
	}
	uint64_t inc = out->incompatible;
	if (inc & QCOW2_INCOMPAT_DATA_FILE)
		return refuse(why, whylen, "qcow2 image uses an external data file");
	if (out->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW)
		return refuse(why, whylen, "qcow2 image has the raw external data bit set");
	if (inc & QCOW2_INCOMPAT_DIRTY)
		return refuse(why, whylen, "qcow2 image is dirty (refcounts need a repair)");
	if (inc & QCOW2_INCOMPAT_CORRUPT)
		return refuse(why, whylen, "qcow2 image is marked corrupt");
	if ((inc & QCOW2_INCOMPAT_EXTL2) && out->cluster_bits < 14)
		return refuse(why, whylen, "qcow2 extended L2 entries need cluster_bits >= 14");

	/* The additional fields need the whole header. */
	if (len < out->header_length)
		return need(out, out->header_length, file_size, why, whylen);
	if (out->header_length > OFF_COMPRESSION_TYPE)
		out->compression_type = p[OFF_COMPRESSION_TYPE];
	if (inc & QCOW2_INCOMPAT_COMPRESSION) {
		if (out->compression_type != 1)
			return refuse(why, whylen, "qcow2 compression type %u is not supported",
				      out->compression_type);
	} else if (out->compression_type != 0) {
		return refuse(why, whylen, "qcow2 compression type %u set without its feature bit",
			      out->compression_type);
	}

	/* The virtual size and the L1 table that must map it. */
	out->virtual_size = be64(p + OFF_SIZE);
	if (out->virtual_size == 0 || out->virtual_size > QCOW2_MAX_VIRTUAL_SIZE ||
	    out->virtual_size % 512)
		return refuse(why, whylen,
			      "qcow2 virtual size %llu is not sane (> 0, <= 2^61, a multiple "
			      "of 512)",
			      (unsigned long long)out->virtual_size);
	/* One L1 entry maps one L2 table of cluster/8 (extended: cluster/16) entries. */
	unsigned l2_bits = out->cluster_bits - ((inc & QCOW2_INCOMPAT_EXTL2) ? 4 : 3);
	unsigned shift = out->cluster_bits + l2_bits; /* <= 39; virtual_size <= 2^61 */
	uint64_t l1_needed = (out->virtual_size + (1ULL << shift) - 1) >> shift;
	uint32_t l1_size = be32(p + OFF_L1_SIZE);
	if (l1_needed > QCOW2_MAX_L1_BYTES / 8)
		return refuse(why, whylen,
			      "qcow2 virtual size %llu is too large for %llu-byte clusters",
			      (unsigned long long)out->virtual_size, (unsigned long long)csize);
	if (l1_size > QCOW2_MAX_L1_BYTES / 8)
		return refuse(why, whylen, "qcow2 L1 table of %u entries is too large", l1_size);
	if (l1_size < l1_needed)
		return refuse(why, whylen,
			      "qcow2 L1 table of %u entries cannot map the virtual size (needs "
			      "%llu)",
			      l1_size, (unsigned long long)l1_needed);
	const char *bad = check_table(be64(p + OFF_L1_OFFSET), (uint64_t)l1_size * 8,
				      out->cluster_bits, file_size);
	if (bad)
		return refuse(why, whylen, "qcow2 L1 table %s", bad);

	uint32_t rt_clusters = be32(p + OFF_REFTABLE_CLUSTERS);
	if (rt_clusters == 0 || rt_clusters > QCOW2_MAX_REFTABLE_BYTES >> out->cluster_bits)
		return refuse(why, whylen, "qcow2 refcount table of %u clusters is not sane",
			      rt_clusters);
	bad = check_table(be64(p + OFF_REFTABLE_OFFSET), (uint64_t)rt_clusters << out->cluster_bits,
			  out->cluster_bits, file_size);
	if (bad)
		return refuse(why, whylen, "qcow2 refcount table %s", bad);

	out->nb_snapshots = be32(p + OFF_NB_SNAPSHOTS);
	if (out->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
		return refuse(why, whylen, "qcow2 image claims %u snapshots (limit %d)",
			      out->nb_snapshots, QCOW2_MAX_SNAPSHOTS);
	if (out->nb_snapshots) {
		uint64_t min_entry =
		    out->version == 2 ? SNAPSHOT_ENTRY_V2_MIN : SNAPSHOT_ENTRY_V3_MIN;
		bad = check_table(be64(p + OFF_SNAPSHOTS_OFFSET), out->nb_snapshots * min_entry,
				  out->cluster_bits, file_size);
		if (bad)
			return refuse(why, whylen, "qcow2 snapshot table %s", bad);
	}

	int rc = check_extensions(p, len, file_size, out->header_length, out, &ftab, &ftablen, why,
				  whylen);
	if (rc != 1)
		return rc;

	/* Unknown incompatible bits last, so the image's own feature table can name them. */
	if (inc & ~INCOMPAT_KNOWN) {
		unsigned bit = (unsigned)__builtin_ctzll(inc & ~INCOMPAT_KNOWN);
		char name[FEATURE_NAME_LEN + 1];
		feature_name(ftab, ftablen, bit, name, sizeof(name));
		return refuse(why, whylen,
			      "qcow2 image uses unknown incompatible feature bit %u%s%s%s", bit,
			      name[0] ? " (" : "", name, name[0] ? ")" : "");
	}
	out->need = 0;
	return 1;
}
