/* tests/unit/test_qcow2.c - the qcow2 header checker (registry/qcow2.c).
 *
 * Real images come from qemu-img at run time (v2, v3, backing file, external data file,
 * LUKS, snapshots, bitmaps, extended L2, zstd, cluster sizes); the tests that need them
 * skip with a message when qemu-img is missing. Every refusal is also provoked by
 * patching one field of a good header, and each case asserts the result and the reason,
 * so removing a check fails its test. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "registry/qcow2.h"

#define MAX_READ (1U << 20) /* what the registry gives the checker */

static char tmpdir[256];
static int have_qemu_img;

struct img {
	uint8_t *buf;
	size_t len;    /* bytes read: min(file size, MAX_READ) */
	uint64_t size; /* file size */
};

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

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void load(const char *name, struct img *im)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	struct stat st;
	assert_int_equal(fstat(fileno(f), &st), 0);
	im->size = (uint64_t)st.st_size;
	im->len = im->size < MAX_READ ? (size_t)im->size : MAX_READ;
	im->buf = malloc(im->len ? im->len : 1);
	assert_non_null(im->buf);
	assert_int_equal(fread(im->buf, 1, im->len, f), im->len);
	fclose(f);
}

/* Runs qemu-img create ARGS in tmpdir (ARGS names the file and its size) and loads name. */
static void make(struct img *im, const char *name, const char *args)
{
	if (!have_qemu_img)
		skip();
	int rc = run("cd %s && qemu-img create -q %s >/dev/null", tmpdir, args);
	assert_int_equal(rc, 0);
	load(name, im);
}

static int probe(const struct img *im, char *why, struct qcow2_info *info)
{
	return qcow2_probe(im->buf, im->len, im->size, info, why, 256);
}

/* Asserts a refusal whose reason contains want. */
static void refused(const struct img *im, const char *want)
{
	char why[256];
	struct qcow2_info info;
	int rc = probe(im, why, &info);
	if (rc != CAIRN_EINVAL || !strstr(why, want))
		fail_msg("rc %d why \"%s\", wanted refusal with \"%s\"", rc, why, want);
}

static void accepted(const struct img *im)
{
	char why[256];
	struct qcow2_info info;
	int rc = probe(im, why, &info);
	if (rc != 1)
		fail_msg("rc %d why \"%s\", wanted acceptance", rc, why);
}

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cairn-qcow2-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	have_qemu_img = system("qemu-img --version >/dev/null 2>&1") == 0;
	if (!have_qemu_img)
		printf("# qemu-img not found: skipping the tests that need real images\n");
	return 0;
}

static int group_teardown(void **state)
{
	return run("rm -rf %s", tmpdir) == 0 ? 0 : -1;
}

static int free_img(void **state)
{
	struct img *im = *state;
	if (im)
		free(im->buf);
	free(im);
	return 0;
}

static int new_img(void **state)
{
	*state = calloc(1, sizeof(struct img));
	return *state ? 0 : -1;
}

/* A good v3 image, 64 MiB, 64 KiB clusters. */
static void good_v3(struct img *im)
{
	make(im, "v3.qcow2", "-f qcow2 -o compat=1.1 v3.qcow2 64M");
}

/* ---- real images ---- */

static void test_v3_accepted(void **state)
{
	struct img *im = *state;
	struct qcow2_info info;
	char why[256];
	make(im, "a.qcow2", "-f qcow2 -o compat=1.1 a.qcow2 1G");
	assert_int_equal(probe(im, why, &info), 1);
	assert_int_equal(info.version, 3);
	assert_int_equal(info.virtual_size, 1ULL << 30);
	assert_int_equal(info.cluster_bits, 16);
	assert_true(info.header_length >= QCOW2_V3_HEADER_LEN);
	assert_int_equal(info.header_length % 8, 0);
	assert_int_equal(info.refcount_order, 4);
	assert_int_equal(info.incompatible, 0);
	assert_string_equal(why, "");
}

static void test_v2_accepted(void **state)
{
	struct img *im = *state;
	struct qcow2_info info;
	char why[256];
	make(im, "b.qcow2", "-f qcow2 -o compat=0.10 b.qcow2 100M");
	assert_int_equal(probe(im, why, &info), 1);
	assert_int_equal(info.version, 2);
	assert_int_equal(info.header_length, QCOW2_V2_HEADER_LEN);
	assert_int_equal(info.virtual_size, 100ULL << 20);
	assert_int_equal(info.incompatible, 0);
}

/* Variants qemu-img makes that must all pass: cluster sizes at both ends, extended L2,
 * zstd, lazy refcounts, an internal snapshot, a persistent bitmap. */
static void test_variants_accepted(void **state)
{
	struct img *im = *state;
	struct qcow2_info info;
	char why[256];
	static const char *const args[] = {
	    "-o cluster_size=512 v.qcow2 10M", "-o cluster_size=2M v.qcow2 10G",
	    "-o extended_l2=on v.qcow2 1G",    "-o compression_type=zstd v.qcow2 1G",
	    "-o lazy_refcounts=on v.qcow2 1G", "-o preallocation=metadata v.qcow2 64M",
	};
	for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
		char a[256];
		snprintf(a, sizeof(a), "-f qcow2 %s", args[i]);
		free(im->buf);
		make(im, "v.qcow2", a);
		int rc = probe(im, why, &info);
		if (rc != 1)
			fail_msg("%s: rc %d why %s", args[i], rc, why);
		if (i == 0)
			assert_int_equal(info.cluster_bits, 9);
		if (i == 1)
			assert_int_equal(info.cluster_bits, 21);
		if (i == 2)
			assert_int_equal(info.incompatible, QCOW2_INCOMPAT_EXTL2);
		if (i == 3)
			assert_int_equal(info.compression_type, 1);
		if (i == 4)
			assert_int_equal(info.compatible, QCOW2_COMPAT_LAZY_REFCOUNTS);
	}
	free(im->buf);
	make(im, "s.qcow2", "-f qcow2 s.qcow2 64M");
	assert_int_equal(run("qemu-img snapshot -c snap1 %s/s.qcow2", tmpdir), 0);
	free(im->buf);
	load("s.qcow2", im);
	assert_int_equal(probe(im, why, &info), 1);
	assert_int_equal(info.nb_snapshots, 1);
	assert_int_equal(run("qemu-img bitmap --add %s/s.qcow2 b0", tmpdir), 0);
	free(im->buf);
	load("s.qcow2", im);
	assert_int_equal(probe(im, why, &info), 1);
	assert_true(info.autoclear & QCOW2_AUTOCLEAR_BITMAPS);
}

static void test_backing_file_refused(void **state)
{
	struct img *im = *state;
	if (!have_qemu_img)
		skip();
	assert_int_equal(run("cd %s && qemu-img create -q -f raw base.raw 64M", tmpdir), 0);
	make(im, "c.qcow2", "-f qcow2 -b base.raw -F raw c.qcow2");
	refused(im, "backing file");
	free(im->buf);
	make(im, "c2.qcow2", "-f qcow2 -o compat=0.10 -b base.raw -F raw c2.qcow2");
	refused(im, "backing file");
}

static void test_external_data_file_refused_cve_2024_32498(void **state)
{
	struct img *im = *state;
	make(im, "d.qcow2", "-f qcow2 -o data_file=d.data d.qcow2 64M");
	refused(im, "external data file");
	free(im->buf);
	make(im, "e.qcow2", "-f qcow2 -o data_file=e.data,data_file_raw=on e.qcow2 64M");
	refused(im, "external data file");
}

/* LUKS creation times PBKDF2 with the thread's CPU clock, and qemu-img gives up when the
 * clock did not move ("Unable to get accurate CPU usage"): a timing failure, so it is
 * retried and, failing that, skipped rather than failed. AES needs no PBKDF timing. */
static void test_encrypted_refused(void **state)
{
	struct img *im = *state;
	make(im, "aes.qcow2",
	     "-f qcow2 --object secret,id=s0,data=x -o encrypt.format=aes,encrypt.key-secret=s0 "
	     "aes.qcow2 64M");
	refused(im, "encrypted (AES)");
	free(im->buf);
	im->buf = NULL;
	int rc = -1;
	for (int i = 0; i < 5 && rc != 0; i++)
		rc = run("cd %s && qemu-img create -q -f qcow2 --object secret,id=s0,data=x "
			 "-o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 "
			 "l.qcow2 64M >/dev/null 2>&1",
			 tmpdir);
	if (rc != 0) {
		printf("# qemu-img could not time LUKS PBKDF2 here: LUKS case skipped\n");
		skip();
	}
	load("l.qcow2", im);
	refused(im, "encrypted (LUKS)");
}

static void test_raw_is_not_qcow2(void **state)
{
	struct img *im = *state;
	struct qcow2_info info;
	char why[256];
	make(im, "r.raw", "-f raw r.raw 1M");
	assert_int_equal(probe(im, why, &info), 0);
	uint8_t mbr[512] = {0xeb, 0x63, 0x90};
	assert_int_equal(qcow2_probe(mbr, sizeof(mbr), 0, &info, why, sizeof(why)), 0);
	assert_int_equal(qcow2_probe("QFI", 3, 3, &info, why, sizeof(why)), 0);
	assert_int_equal(qcow2_probe("QFX", 3, 0, &info, why, sizeof(why)), 0);
}

/* ---- patched headers (each check, one field at a time) ---- */

#define PATCH32(off, v) put32(im->buf + (off), (v))
#define PATCH64(off, v) put64(im->buf + (off), (v))

/* Runs a patch on a fresh good v3 image and expects a refusal naming want. */
#define CASE(want, ...)                                                                            \
	do {                                                                                       \
		free(im->buf);                                                                     \
		good_v3(im);                                                                       \
		__VA_ARGS__;                                                                       \
		refused(im, want);                                                                 \
	} while (0)

static void test_fixed_header_lies_refused(void **state)
{
	struct img *im = *state;
	good_v3(im);
	accepted(im);
	CASE("version 1", PATCH32(4, 1));
	CASE("version 4", PATCH32(4, 4));
	CASE("backing file", PATCH64(8, 0x10000));
	CASE("backing file", PATCH32(16, 10));
	CASE("cluster_bits 8", PATCH32(20, 8));
	CASE("cluster_bits 22", PATCH32(20, 22));
	CASE("encrypted (AES)", PATCH32(32, 1));
	CASE("encrypted (unknown", PATCH32(32, 7));
	CASE("header_length 96", PATCH32(100, 96));
	CASE("header_length 108", PATCH32(100, 108));
	CASE("header_length 65544", PATCH32(100, 65544));
	CASE("refcount_order 7", PATCH32(96, 7));
	CASE("virtual size 0", PATCH64(24, 0));
	CASE("virtual size 1000 ", PATCH64(24, 1000));
	CASE("is not sane", PATCH64(24, (1ULL << 61) + 512));
	CASE("cannot map the virtual size", PATCH64(24, 1ULL << 40));
	/* 2^61 with 512-byte clusters needs 2^46 L1 entries: past qemu's L1 limit. */
	CASE("too large for 512-byte clusters", PATCH64(24, 1ULL << 61), PATCH32(20, 9),
	     PATCH32(100, 104));
	CASE("L1 table of 4194305 entries is too large", PATCH32(36, 4194305));
	CASE("L1 table is not cluster-aligned", PATCH64(40, 0x30200));
	CASE("L1 table overlaps the header cluster", PATCH64(40, 0));
	CASE("L1 table lies past the end of the file", PATCH64(40, 0x100000));
	CASE("L1 table lies past any possible file", PATCH64(40, 0xffffffffffff0000ULL));
	CASE("L1 table lies past the end of the file", PATCH32(36, 100000));
	CASE("refcount table is not cluster-aligned", PATCH64(48, 0x10008));
	CASE("refcount table overlaps", PATCH64(48, 0));
	CASE("refcount table lies past the end", PATCH64(48, 0x40000));
	CASE("refcount table of 0 clusters", PATCH32(56, 0));
	CASE("refcount table of 129 clusters", PATCH32(56, 129));
	CASE("claims 65537 snapshots", PATCH32(60, 65537));
	CASE("snapshot table overlaps", PATCH32(60, 1));
	CASE("snapshot table is not cluster-aligned", PATCH32(60, 1), PATCH64(64, 0x20100));
	CASE("snapshot table lies past the end", PATCH32(60, 2000), PATCH64(64, 0x20000));
}

static void test_past_end_only_when_size_known(void **state)
{
	struct img *im = *state;
	struct qcow2_info info;
	char why[256];
	good_v3(im);
	PATCH64(40, 0x100000);
	assert_int_equal(qcow2_probe(im->buf, im->len, 0, &info, why, sizeof(why)), 1);
	assert_int_equal(qcow2_probe(im->buf, im->len, im->size, &info, why, sizeof(why)),
			 CAIRN_EINVAL);
}

static void test_feature_bits_refused(void **state)
{
	struct img *im = *state;
	CASE("dirty", PATCH64(72, QCOW2_INCOMPAT_DIRTY));
	CASE("marked corrupt", PATCH64(72, QCOW2_INCOMPAT_CORRUPT));
	CASE("uses an external data file", PATCH64(72, QCOW2_INCOMPAT_DATA_FILE));
	CASE("raw external data bit", PATCH64(88, QCOW2_AUTOCLEAR_DATA_FILE_RAW));
	CASE("unknown incompatible feature bit 5", PATCH64(72, 1ULL << 5));
	CASE("unknown incompatible feature bit 63", PATCH64(72, 1ULL << 63));
	CASE("extended L2 entries need cluster_bits >= 14", PATCH64(72, QCOW2_INCOMPAT_EXTL2),
	     PATCH32(20, 13));
	/* qemu 7.2 writes header_length 112, so compression_type (byte 104) is present. */
	CASE("compression type 0 is not supported", PATCH64(72, QCOW2_INCOMPAT_COMPRESSION));
	CASE("compression type 2 is not supported", PATCH64(72, QCOW2_INCOMPAT_COMPRESSION),
	     im->buf[104] = 2);
	CASE("compression type 1 set without its feature bit", im->buf[104] = 1);
	/* Compatible and unknown autoclear bits are harmless. */
	free(im->buf);
	good_v3(im);
	PATCH64(80, ~0ULL);
	PATCH64(88, 1ULL << 40);
	accepted(im);
}

/* Writes an extension at off; returns the offset after it (padded). */
static uint32_t put_ext(uint8_t *p, uint32_t off, uint32_t type, uint32_t len, const void *data)
{
	put32(p + off, type);
	put32(p + off + 4, len);
	memset(p + off + 8, 0, (len + 7) & ~7U);
	if (data)
		memcpy(p + off + 8, data, len);
	return off + 8 + ((len + 7) & ~7U);
}

/* Replaces qemu's extensions with one of type/len/data, then the end marker. */
#define EXT(type, len, data)                                                                       \
	put32(im->buf + put_ext(im->buf, get32(im->buf + 100), (type), (len), (data)), 0)

static void test_extensions_refused(void **state)
{
	struct img *im = *state;
	uint8_t bm[24] = {0};
	CASE("names an external data file", EXT(QCOW2_EXT_DATA_FILE, 6, "x.data"));
	CASE("encryption header extension", EXT(QCOW2_EXT_CRYPTO, 16, NULL));
	CASE("backing format extension too long", EXT(QCOW2_EXT_BACKING_FORMAT, 16, NULL));
	CASE("not a multiple of 48", EXT(QCOW2_EXT_FEATURE_TABLE, 47, NULL));
	CASE("runs past the header cluster", EXT(0x12345678, 65536 - 112 - 8 + 1, NULL));
	CASE("runs past the header cluster", EXT(0x12345678, 0xfffffff9U, NULL));
	CASE("bitmaps extension has length 16", EXT(QCOW2_EXT_BITMAPS, 16, NULL));
	/* nb_bitmaps 0, then 65536, then reserved != 0, then a directory of 0 bytes */
	put32(bm, 0);
	put64(bm + 8, 64);
	put64(bm + 16, 0x20000);
	CASE("malformed (0 bitmaps)", EXT(QCOW2_EXT_BITMAPS, 24, bm));
	put32(bm, 65536);
	CASE("malformed (65536 bitmaps)", EXT(QCOW2_EXT_BITMAPS, 24, bm));
	put32(bm, 1);
	put32(bm + 4, 1);
	CASE("malformed (1 bitmaps)", EXT(QCOW2_EXT_BITMAPS, 24, bm));
	put32(bm + 4, 0);
	put64(bm + 8, 0);
	CASE("malformed (1 bitmaps)", EXT(QCOW2_EXT_BITMAPS, 24, bm));
	put64(bm + 8, 64);
	put64(bm + 16, 0x20008);
	CASE("bitmap directory is not cluster-aligned", EXT(QCOW2_EXT_BITMAPS, 24, bm));
	put64(bm + 16, 0x100000);
	CASE("bitmap directory lies past the end", EXT(QCOW2_EXT_BITMAPS, 24, bm));
	/* A well-formed bitmaps extension passes (the data is not checked here). */
	put64(bm + 16, 0x20000);
	free(im->buf);
	good_v3(im);
	EXT(QCOW2_EXT_BITMAPS, 24, bm);
	accepted(im);
	/* An unknown extension is ignored. */
	free(im->buf);
	good_v3(im);
	EXT(0x12345678, 100, NULL);
	accepted(im);
}

static void test_duplicate_and_named_features(void **state)
{
	struct img *im = *state;
	uint8_t ft[48] = {0, 5};
	memcpy(ft + 2, "frobnicate", 10);
	CASE("appears twice", {
		uint32_t off =
		    put_ext(im->buf, get32(im->buf + 100), QCOW2_EXT_FEATURE_TABLE, 48, ft);
		off = put_ext(im->buf, off, QCOW2_EXT_FEATURE_TABLE, 48, ft);
		put32(im->buf + off, 0);
	});
	/* The image's own feature table names an unknown bit in the reason. */
	CASE("unknown incompatible feature bit 5 (frobnicate)", PATCH64(72, 1ULL << 5),
	     EXT(QCOW2_EXT_FEATURE_TABLE, 48, ft));
}

/* ---- short input ---- */

static void test_need_more_bytes(void **state)
{
	struct img *im = *state;
	struct qcow2_info info;
	char why[256];
	assert_int_equal(qcow2_probe(NULL, 0, 0, &info, why, sizeof(why)), -ENODATA);
	assert_int_equal(info.need, 4);
	assert_int_equal(qcow2_probe("QF", 2, 0, &info, why, sizeof(why)), -ENODATA);
	assert_int_equal(info.need, 4);
	good_v3(im);
	assert_int_equal(qcow2_probe(im->buf, 4, 0, &info, why, sizeof(why)), -ENODATA);
	assert_int_equal(info.need, 8);
	assert_int_equal(qcow2_probe(im->buf, 50, 0, &info, why, sizeof(why)), -ENODATA);
	assert_int_equal(info.need, QCOW2_V3_HEADER_LEN);
	/* Feeding what it asks for converges, and each request is for more than it had. */
	size_t len = 0;
	int rc, steps = 0;
	while ((rc = qcow2_probe(im->buf, len, 0, &info, why, sizeof(why))) == -ENODATA) {
		assert_true(info.need > len && info.need <= im->len);
		len = (size_t)info.need;
		assert_true(++steps < 20);
	}
	assert_int_equal(rc, 1);
	assert_true(len < 4096); /* the header and a feature table, not the whole cluster */
	/* Known to be short: refused, not "give me more". */
	assert_int_equal(qcow2_probe(im->buf, 50, 50, &info, why, sizeof(why)), CAIRN_EINVAL);
	assert_non_null(strstr(why, "past the end of the file"));
	/* A v2 header cut short. */
	free(im->buf);
	make(im, "b.qcow2", "-f qcow2 -o compat=0.10 b.qcow2 100M");
	assert_int_equal(qcow2_probe(im->buf, 71, 0, &info, why, sizeof(why)), -ENODATA);
	assert_int_equal(info.need, QCOW2_V2_HEADER_LEN);
	/* why may be NULL. */
	assert_int_equal(qcow2_probe(im->buf, im->len, 0, &info, NULL, 0), 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, new_img, free_img)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_v3_accepted),
	    T(test_v2_accepted),
	    T(test_variants_accepted),
	    T(test_backing_file_refused),
	    T(test_external_data_file_refused_cve_2024_32498),
	    T(test_encrypted_refused),
	    T(test_raw_is_not_qcow2),
	    T(test_fixed_header_lies_refused),
	    T(test_past_end_only_when_size_known),
	    T(test_feature_bits_refused),
	    T(test_extensions_refused),
	    T(test_duplicate_and_named_features),
	    T(test_need_more_bytes),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
