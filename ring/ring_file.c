/* ring/ring_file.c - ring and builder files (layout in ring_format.h).
 *
 * Invariant: a file on disk is either the old one or the complete new one
 * (temp file in the same directory, fsync, rename, directory fsync), and a
 * reader trusts no field before the size and the CRC32C are checked.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <isa-l/crc.h>

#include "core/fault.h"
#include "core/log.h"
#include "ring/ring_format.h"
#include "ring/ring_int.h"

#define TAG "ring"

uint32_t ring_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	crc = ~crc;
	while (len) {
		int n = len > (1u << 30) ? (1 << 30) : (int)len;
		crc = crc32_iscsi((unsigned char *)p, n, crc);
		p += n;
		len -= (size_t)n;
	}
	return ~crc;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int ring_write_atomic(const char *path, const void *buf, size_t len)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int fd = -1, dfd = -1, ret;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp) ||
	    snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	fd = mkstemp(tmp); /* mode 0600: the file holds the cluster secret */
	if (fd < 0)
		return -errno;
	ret = write_all(fd, buf, len);
	if (!ret && FAULT("ring.write"))
		ret = -EIO;
	if (!ret && fsync(fd) != 0)
		ret = -errno;
	if (!ret && FAULT("ring.fsync"))
		ret = -EIO;
	if (close(fd) != 0 && !ret)
		ret = -errno;
	fd = -1;
	if (!ret && rename(tmp, path) != 0)
		ret = -errno;
	if (ret) {
		unlink(tmp);
		return ret;
	}
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	if (fsync(dfd) != 0)
		ret = -errno;
	close(dfd);
	return ret;
}

/* Reads a whole file; checks magic, version, size and CRC. */
static int read_checked(const char *path, const char *magic, uint8_t **out, size_t *len_out)
{
	struct stat st;
	struct ring_disk_header h;
	uint8_t *buf = NULL;
	int fd, ret = 0;
	size_t len, got = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		ret = -errno;
		goto out;
	}
	len = (size_t)st.st_size;
	if (len < sizeof(h)) {
		ret = CAIRN_ECORRUPT;
		goto out;
	}
	if (len > ((size_t)1 << 36)) {
		ret = CAIRN_ECORRUPT;
		goto out;
	}
	buf = malloc(len);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != len) {
		ret = CAIRN_ECORRUPT;
		goto out;
	}
	memcpy(&h, buf, sizeof(h));
	if (memcmp(h.magic, magic, 8) != 0) {
		ret = CAIRN_ECORRUPT;
		goto out;
	}
	if (le32toh(h.version) > RING_FORMAT_VERSION) {
		ret = CAIRN_EFORMAT;
		goto out;
	}
	if (le32toh(h.version) == 0 || le32toh(h.header_size) != sizeof(h) ||
	    le64toh(h.file_size) != len) {
		ret = CAIRN_ECORRUPT;
		goto out;
	}
	uint32_t want = le32toh(h.crc);
	memset(buf + offsetof(struct ring_disk_header, crc), 0, 4);
	if (ring_crc32c(0, buf, len) != want) {
		ret = CAIRN_ECORRUPT;
		goto out;
	}
	*out = buf;
	*len_out = len;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return ret;
}

static void put_dev(struct ring_disk_dev *o, const struct ring_dev *d, uint16_t flags)
{
	uint64_t bits;
	memset(o, 0, sizeof(*o));
	o->id = htole32(d->id);
	o->region = htole32(d->region);
	o->zone = htole32(d->zone);
	o->port = htole16(d->port);
	o->flags = htole16(flags);
	memcpy(&bits, &d->weight, 8);
	o->weight_bits = htole64(bits);
	snprintf(o->ip, sizeof(o->ip), "%s", d->ip);
	snprintf(o->name, sizeof(o->name), "%s", d->name);
}

static int get_dev(const struct ring_disk_dev *o, struct ring_dev *d, uint16_t *flags)
{
	uint64_t bits = le64toh(o->weight_bits);
	memset(d, 0, sizeof(*d));
	if (!memchr(o->ip, '\0', sizeof(o->ip)) || !memchr(o->name, '\0', sizeof(o->name)))
		return CAIRN_ECORRUPT;
	d->id = le32toh(o->id);
	d->region = le32toh(o->region);
	d->zone = le32toh(o->zone);
	d->port = le16toh(o->port);
	*flags = le16toh(o->flags);
	memcpy(&d->weight, &bits, 8);
	memcpy(d->ip, o->ip, sizeof(o->ip));
	memcpy(d->name, o->name, sizeof(o->name));
	if (d->id >= RING_DEV_ID_MAX || !(d->weight >= 0) || d->weight > 1e12)
		return CAIRN_ECORRUPT;
	return 0;
}

static void put_header(struct ring_disk_header *h, const char *magic, uint32_t pp, uint32_t R,
		       uint32_t ndev, uint32_t mph, uint32_t ec_m, uint32_t flags, uint64_t size,
		       uint64_t gen, uint64_t seed, const uint8_t *secret)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, magic, 8);
	h->version = htole32(RING_FORMAT_VERSION);
	h->header_size = htole32(sizeof(*h));
	h->part_power = htole32(pp);
	h->replicas = htole32(R);
	h->dev_count = htole32(ndev);
	h->dev_size = htole32(sizeof(struct ring_disk_dev));
	h->min_part_hours = htole32(mph);
	h->ec_m = htole32(ec_m);
	h->flags = htole32(flags);
	h->file_size = htole64(size);
	h->generation = htole64(gen);
	h->seed = htole64(seed);
	memcpy(h->secret, secret, RING_SECRET_LEN);
}

static void seal(uint8_t *buf, size_t len)
{
	uint32_t crc = htole32(ring_crc32c(0, buf, len));
	memcpy(buf + offsetof(struct ring_disk_header, crc), &crc, 4);
}

/* Header fields every reader checks the same way. */
static int check_shape(const struct ring_disk_header *h, size_t len, bool with_table, size_t extra)
{
	uint32_t pp = le32toh(h->part_power), R = le32toh(h->replicas);
	uint32_t nd = le32toh(h->dev_count);
	if (pp > RING_PART_POWER_MAX || R < 1 || R > RING_REPLICAS_MAX ||
	    le32toh(h->dev_size) != sizeof(struct ring_disk_dev) || nd > RING_DEV_ID_MAX)
		return CAIRN_ECORRUPT;
	size_t want = sizeof(*h) + (size_t)nd * sizeof(struct ring_disk_dev);
	if (with_table)
		want += ((size_t)R << pp) * 4 + extra;
	return want == len ? 0 : CAIRN_ECORRUPT;
}

/* ------------------------------------------------------------ ring file */

static int ring_serialize(const struct ring_builder *b, uint8_t **out, size_t *len_out)
{
	uint32_t R = b->replicas, nd = 0;
	size_t nslots = (size_t)R << b->part_power, len;
	uint8_t *buf;

	for (uint32_t i = 0; i < b->ndevs; i++)
		nd++; /* pending removals still hold data: they stay in the ring */
	len = sizeof(struct ring_disk_header) + nd * sizeof(struct ring_disk_dev) + nslots * 4;
	buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	put_header((struct ring_disk_header *)buf, RING_FILE_MAGIC, b->part_power, R, nd,
		   b->min_part_hours, b->ec_m, 0, len, b->generation, 0, b->secret);
	struct ring_disk_dev *dd = (struct ring_disk_dev *)(buf + sizeof(struct ring_disk_header));
	for (uint32_t i = 0; i < b->ndevs; i++)
		put_dev(&dd[i], &b->devs[i].d, 0);
	uint8_t *t = (uint8_t *)(dd + nd);
	for (size_t s = 0; s < nslots; s++) {
		uint32_t v = htole32(b->table[s]);
		memcpy(t + s * 4, &v, 4);
	}
	seal(buf, len);
	*out = buf;
	*len_out = len;
	return 0;
}

int ring_builder_write_ring(struct ring_builder *b, const char *path)
{
	uint8_t *buf = NULL;
	size_t len;
	char why[128];
	int ret;

	ret = ring_builder_validate(b, why, sizeof(why));
	if (ret == CAIRN_EINVAL && b->table)
		ret = 0; /* a dispersion shortfall (min_part_hours) still makes a usable ring */
	if (ret) {
		log_err(TAG, "not writing ring %s: %s", path, why);
		return ret;
	}
	ret = ring_serialize(b, &buf, &len);
	if (!ret)
		ret = ring_write_atomic(path, buf, len);
	free(buf);
	return ret;
}

static int ring_parse(uint8_t *buf, size_t len, struct ring **out)
{
	const struct ring_disk_header *h = (const struct ring_disk_header *)buf;
	struct ring_dev *devs = NULL;
	uint32_t *table = NULL;
	int ret = check_shape(h, len, true, 0);
	if (ret)
		return ret;
	uint32_t pp = le32toh(h->part_power), R = le32toh(h->replicas), nd = le32toh(h->dev_count);
	size_t nslots = (size_t)R << pp;
	if (nd < R)
		return CAIRN_ECORRUPT;
	devs = malloc((nd + 1) * sizeof(*devs));
	table = malloc(nslots * 4);
	if (!devs || !table) {
		ret = -ENOMEM;
		goto out;
	}
	const struct ring_disk_dev *dd = (const struct ring_disk_dev *)(buf + sizeof(*h));
	for (uint32_t i = 0; i < nd; i++) {
		uint16_t fl;
		ret = get_dev(&dd[i], &devs[i], &fl);
		if (ret)
			goto out;
	}
	memcpy(table, dd + nd, nslots * 4);
	for (size_t s = 0; s < nslots; s++)
		table[s] = le32toh(table[s]);
	ret = ring_from_parts(pp, R, le32toh(h->ec_m), le64toh(h->generation), h->secret, devs, nd,
			      table, out);
	table = NULL; /* owned by the ring (or freed) now */
out:
	free(devs);
	free(table);
	return ret;
}

int ring_load(const char *path, struct ring **out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	*out = NULL;
	ret = read_checked(path, RING_FILE_MAGIC, &buf, &len);
	if (!ret)
		ret = ring_parse(buf, len, out);
	if (buf)
		explicit_bzero(buf, sizeof(struct ring_disk_header));
	free(buf);
	if (ret)
		log_err(TAG, "cannot load ring %s: %s", path, cairn_strerror(ret));
	return ret;
}

int ring_builder_to_ring(const struct ring_builder *b, struct ring **out)
{
	uint8_t *buf = NULL;
	size_t len;
	int ret;

	*out = NULL;
	if (!b->table)
		return CAIRN_EINVAL;
	ret = ring_serialize(b, &buf, &len);
	if (!ret)
		ret = ring_parse(buf, len, out);
	free(buf);
	return ret;
}

/* --------------------------------------------------------- builder file */

int ring_builder_save(struct ring_builder *b, const char *path)
{
	uint32_t R = b->replicas, parts = 1u << b->part_power;
	size_t nslots = (size_t)R * parts, len;
	uint8_t *buf;
	int ret;

	len = sizeof(struct ring_disk_header) + (size_t)b->ndevs * sizeof(struct ring_disk_dev);
	if (b->table)
		len += nslots * 4 + (size_t)parts * 8;
	buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	put_header((struct ring_disk_header *)buf, RING_BUILDER_MAGIC, b->part_power, R, b->ndevs,
		   b->min_part_hours, b->ec_m, b->table ? RING_DISK_F_ASSIGNED : 0, len,
		   b->generation, b->seed, b->secret);
	struct ring_disk_dev *dd = (struct ring_disk_dev *)(buf + sizeof(struct ring_disk_header));
	for (uint32_t i = 0; i < b->ndevs; i++)
		put_dev(&dd[i], &b->devs[i].d, b->devs[i].removed ? RING_DISK_DEV_REMOVED : 0);
	if (b->table) {
		uint8_t *t = (uint8_t *)(dd + b->ndevs);
		for (size_t s = 0; s < nslots; s++) {
			uint32_t v = htole32(b->table[s]);
			memcpy(t + s * 4, &v, 4);
		}
		t += nslots * 4;
		for (uint32_t p = 0; p < parts; p++) {
			uint64_t v = htole64(b->last_moved[p]);
			memcpy(t + (size_t)p * 8, &v, 8);
		}
	}
	seal(buf, len);
	ret = ring_write_atomic(path, buf, len);
	explicit_bzero(buf, sizeof(struct ring_disk_header));
	free(buf);
	return ret;
}

int ring_builder_load(const char *path, struct ring_builder **out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct ring_builder *b = NULL;
	int ret;

	*out = NULL;
	ret = read_checked(path, RING_BUILDER_MAGIC, &buf, &len);
	if (ret)
		goto out;
	const struct ring_disk_header *h = (const struct ring_disk_header *)buf;
	bool assigned = le32toh(h->flags) & RING_DISK_F_ASSIGNED;
	uint32_t pp = le32toh(h->part_power), R = le32toh(h->replicas), nd = le32toh(h->dev_count);
	ret = check_shape(h, len, assigned, ((size_t)1 << pp) * 8);
	if (ret)
		goto out;
	ret = -ENOMEM;
	b = calloc(1, sizeof(*b));
	if (!b)
		goto out;
	b->part_power = pp;
	b->replicas = R;
	b->min_part_hours = le32toh(h->min_part_hours);
	b->ec_m = le32toh(h->ec_m);
	b->generation = le64toh(h->generation);
	b->seed = le64toh(h->seed);
	memcpy(b->secret, h->secret, RING_SECRET_LEN);
	b->cap = nd ? nd : 1;
	b->devs = calloc(b->cap, sizeof(*b->devs));
	if (!b->devs)
		goto out;
	const struct ring_disk_dev *dd = (const struct ring_disk_dev *)(buf + sizeof(*h));
	for (uint32_t i = 0; i < nd; i++) {
		uint16_t fl;
		ret = get_dev(&dd[i], &b->devs[i].d, &fl);
		if (!ret && (!(b->devs[i].d.weight > 0) ||
			     (i > 0 && b->devs[i].d.id <= b->devs[i - 1].d.id)))
			ret = CAIRN_ECORRUPT; /* ids are kept sorted and unique */
		if (ret)
			goto out;
		b->devs[i].removed = fl & RING_DISK_DEV_REMOVED;
	}
	b->ndevs = nd;
	if (assigned) {
		size_t nslots = (size_t)R << pp, parts = (size_t)1 << pp;
		ret = -ENOMEM;
		b->table = malloc(nslots * 4);
		b->last_moved = malloc(parts * 8);
		if (!b->table || !b->last_moved)
			goto out;
		const uint8_t *t = (const uint8_t *)(dd + nd);
		memcpy(b->table, t, nslots * 4);
		memcpy(b->last_moved, t + nslots * 4, parts * 8);
		for (size_t s = 0; s < nslots; s++)
			b->table[s] = le32toh(b->table[s]);
		for (size_t p = 0; p < parts; p++)
			b->last_moved[p] = le64toh(b->last_moved[p]);
	}
	ret = 0;
out:
	if (buf)
		explicit_bzero(buf, sizeof(struct ring_disk_header));
	free(buf);
	if (ret) {
		ring_builder_free(b);
		log_err(TAG, "cannot load builder %s: %s", path, cairn_strerror(ret));
		return ret;
	}
	*out = b;
	return 0;
}
