/* tests/unit/test_config.c - node/config.c and node/creds.c: defaults, INI
 * files, flags and their precedence, error messages, root credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "node/config.h"
#include "node/node.h"

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cairn-test-config-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_config_defaults_are_embedded_single_node(void **state)
{
	(void)state;
	struct node_config c;
	char err[256] = "";
	assert_int_equal(node_config_defaults(&c), 0);
	assert_string_equal(c.data_dir, "./data");
	assert_string_equal(c.log_level, "info");
	assert_true(c.access_log);
	assert_string_equal(c.s3_listen, "127.0.0.1:9000");
	assert_string_equal(c.s3_region, "us-east-1");
	assert_string_equal(c.s3_domain, "");
	assert_int_equal(c.s3_max_connections, 1024);
	assert_int_equal(c.s3_timeout, 60);
	assert_string_equal(c.api_listen, "127.0.0.1:9100");
	assert_int_equal(c.devices, 6);
	assert_int_equal(c.k, 4);
	assert_int_equal(c.m, 2);
	assert_int_equal(c.replicas, 3);
	assert_int_equal(c.chunk_size, 64 * 1024);
	assert_int_equal(c.unit_size, 1024 * 1024);
	assert_int_equal(c.inline_max, 4096);
	assert_int_equal(c.part_power, 10);
	assert_true(c.map_size == 64ull << 30);
	assert_int_equal(c.workers, 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), 0);
	node_config_free(&c);
}

static void test_config_file_sets_every_type(void **state)
{
	(void)state;
	struct node_config c;
	char err[256] = "";
	const char *p = write_file("all.ini", "; comment\n"
					      "# another comment\n"
					      "[node]\n"
					      "data_dir = /srv/cairn\n"
					      "log_level = debug\n"
					      "access_log = off\n"
					      "[s3]\n"
					      "listen = 0.0.0.0:9009\n"
					      "domain = s3.example.com\n"
					      "max_connections = 10\n"
					      "[api]\n"
					      "listen = [::1]:9109\n"
					      "[pool]\n"
					      "devices = 12\n"
					      "k = 8 ; inline comment\n"
					      "m = 3\n"
					      "chunk_size = 16KiB\n"
					      "unit_size = 4M\n"
					      "map_size = 1T\n"
					      "inline_max = 1\n");
	assert_int_equal(node_config_defaults(&c), 0);
	assert_int_equal(node_config_load(&c, p, err, sizeof(err)), 0);
	assert_string_equal(c.data_dir, "/srv/cairn");
	assert_string_equal(c.log_level, "debug");
	assert_false(c.access_log);
	assert_string_equal(c.s3_listen, "0.0.0.0:9009");
	assert_string_equal(c.s3_domain, "s3.example.com");
	assert_int_equal(c.s3_max_connections, 10);
	assert_string_equal(c.api_listen, "[::1]:9109");
	assert_int_equal(c.devices, 12);
	assert_int_equal(c.k, 8);
	assert_int_equal(c.m, 3);
	assert_int_equal(c.chunk_size, 16384);
	assert_int_equal(c.unit_size, 4 << 20);
	assert_true(c.map_size == 1ull << 40);
	assert_int_equal(c.inline_max, 1);
	/* untouched keys keep their defaults */
	assert_string_equal(c.s3_region, "us-east-1");
	assert_int_equal(c.replicas, 3);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), 0);
	node_config_free(&c);
}

static void test_config_unknown_key_names_file_line_key(void **state)
{
	(void)state;
	struct node_config c;
	char err[512] = "";
	const char *p = write_file("typo.ini", "[node]\n"
					       "data_dir = /x\n"
					       "\n"
					       "[s3]\n"
					       "listn = 1.2.3.4:5\n"
					       "bogus = 1\n");
	assert_int_equal(node_config_defaults(&c), 0);
	assert_int_equal(node_config_load(&c, p, err, sizeof(err)), CAIRN_EINVAL);
	char want[600];
	snprintf(want, sizeof(want), "%s:5: unknown key 'listn' in section [s3]", p);
	assert_string_equal(err, want);
	node_config_free(&c);
}

static void test_config_unknown_section_and_keyless_section(void **state)
{
	(void)state;
	struct node_config c;
	char err[512] = "";
	const char *p = write_file("sect.ini", "[pool]\ndevices = 6\n[iscsi]\nlisten = x:1\n");
	assert_int_equal(node_config_defaults(&c), 0);
	assert_int_equal(node_config_load(&c, p, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, ":4: unknown section [iscsi]"));
	p = write_file("nosect.ini", "data_dir = /x\n");
	assert_int_equal(node_config_load(&c, p, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, ":1: key 'data_dir' outside any [section]"));
	node_config_free(&c);
}

static void test_config_bad_values_rejected(void **state)
{
	(void)state;
	struct node_config c;
	char err[512];
	assert_int_equal(node_config_defaults(&c), 0);
	static const char *const bad[][3] = {
	    {"pool", "devices", "0"},
	    {"pool", "devices", "-1"},
	    {"pool", "devices", "six"},
	    {"pool", "devices", "6x"},
	    {"pool", "devices", "257"},
	    {"pool", "chunk_size", "1Q"},
	    {"pool", "map_size", "1K"},
	    {"node", "access_log", "maybe"},
	    {"node", "log_level", "loud"},
	    {"s3", "listen", "9000"},
	    {"s3", "listen", "host:99999"},
	    {"s3", "listen", "::1:9000"},
	    {"s3", "listen", ":9000"},
	    {"s3", "region", ""},
	    {"api", "listen", "[::1]9100"},
	    {"s3", "timeout", "0"},
	    /* 0 would silently mean "the chunk store's default" */
	    {"pool", "m", "0"},
	    {"pool", "inline_max", "0"},
	    {"pool", "part_power", "0"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		int r = node_config_set(&c, bad[i][0], bad[i][1], bad[i][2], err, sizeof(err));
		if (r != CAIRN_EINVAL)
			fail_msg("[%s] %s = '%s' accepted", bad[i][0], bad[i][1], bad[i][2]);
		/* The message names the key. */
		assert_non_null(strstr(err, bad[i][1]));
	}
	/* Failed sets leave the previous values. */
	assert_int_equal(c.devices, 6);
	assert_string_equal(c.s3_listen, "127.0.0.1:9000");
	node_config_free(&c);
}

static void test_config_validate_cross_field(void **state)
{
	(void)state;
	struct node_config c;
	char err[512];
	assert_int_equal(node_config_defaults(&c), 0);
	assert_int_equal(node_config_set(&c, "pool", "devices", "5", err, sizeof(err)), 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "k + m = 6"));
	assert_int_equal(node_config_set(&c, "pool", "devices", "6", err, sizeof(err)), 0);
	assert_int_equal(node_config_set(&c, "pool", "chunking", "rabin", err, sizeof(err)), 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "fastcdc or fixed"));
	assert_int_equal(node_config_set(&c, "pool", "chunking", "fastcdc", err, sizeof(err)), 0);
	assert_int_equal(node_config_set(&c, "pool", "chunk_avg", "12K", err, sizeof(err)), 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "power of 2"));
	assert_int_equal(node_config_set(&c, "pool", "chunk_avg", "16K", err, sizeof(err)), 0);
	assert_int_equal(node_config_set(&c, "pool", "compression", "lz4", err, sizeof(err)), 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "zstd or none"));
	assert_int_equal(node_config_set(&c, "pool", "compression", "none", err, sizeof(err)), 0);
	assert_int_equal(node_config_set(&c, "pool", "dedup_domain", "user", err, sizeof(err)), 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "global or tenant"));
	assert_int_equal(node_config_set(&c, "pool", "dedup_domain", "tenant", err, sizeof(err)),
			 0);
	/* the fixed chunk size's own rules */
	assert_int_equal(node_config_set(&c, "pool", "chunking", "fixed", err, sizeof(err)), 0);
	assert_int_equal(node_config_set(&c, "pool", "chunk_size", "2M", err, sizeof(err)), 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "chunk_size"));
	assert_int_equal(node_config_set(&c, "pool", "chunk_size", "1M", err, sizeof(err)), 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), CAIRN_EINVAL); /* == unit */
	assert_non_null(strstr(err, "smaller than unit_size"));
	assert_int_equal(node_config_set(&c, "pool", "chunk_size", "4K", err, sizeof(err)), 0);
	assert_int_equal(node_config_set(&c, "pool", "inline_max", "8K", err, sizeof(err)), 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "inline_max"));
	assert_int_equal(node_config_set(&c, "pool", "inline_max", "4K", err, sizeof(err)), 0);
	assert_int_equal(node_config_set(&c, "pool", "chunk_size", "6000", err, sizeof(err)), 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), CAIRN_EINVAL);
	assert_int_equal(node_config_set(&c, "pool", "chunk_size", "64K", err, sizeof(err)), 0);
	assert_int_equal(node_config_set(&c, "api", "listen", "127.0.0.1:9000", err, sizeof(err)),
			 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "both"));
	/* Port 0 (any free port) on both is fine: they get different ports. */
	assert_int_equal(node_config_set(&c, "api", "listen", "127.0.0.1:0", err, sizeof(err)), 0);
	assert_int_equal(node_config_set(&c, "s3", "listen", "127.0.0.1:0", err, sizeof(err)), 0);
	assert_int_equal(node_config_validate(&c, err, sizeof(err)), 0);
	node_config_free(&c);
}

static void test_serve_args_flags_override_file(void **state)
{
	(void)state;
	struct node_config c;
	struct node_serve_opts o;
	char err[512] = "";
	const char *p = write_file("ov.ini", "[node]\ndata_dir = /from/file\nlog_level = warn\n"
					     "[s3]\nlisten = 127.0.0.1:7000\n"
					     "[pool]\ndevices = 8\n");
	char *argv[] = {"serve",	"--config",    (char *)p,	  "--data", "/from/flag",
			"--api-listen", "127.0.0.1:0", "--powerloss-sim", NULL};
	assert_int_equal(node_serve_args(8, argv, &c, &o, err, sizeof(err)), 0);
	assert_false(o.help);
	assert_true(o.powerloss_sim);
	assert_string_equal(o.config_path, p);
	assert_string_equal(c.data_dir, "/from/flag");	    /* flag beats file */
	assert_string_equal(c.s3_listen, "127.0.0.1:7000"); /* file beats default */
	assert_string_equal(c.api_listen, "127.0.0.1:0");
	assert_string_equal(c.log_level, "warn");
	assert_int_equal(c.devices, 8);
	node_config_free(&c);

	/* Flags with '=' and no config file at all. */
	char *argv2[] = {"serve", "--devices=7", "--log-level=debug", "--s3-listen=[::]:0", NULL};
	assert_int_equal(node_serve_args(4, argv2, &c, &o, err, sizeof(err)), 0);
	assert_null(o.config_path);
	assert_false(o.powerloss_sim);
	assert_int_equal(c.devices, 7);
	assert_string_equal(c.log_level, "debug");
	assert_string_equal(c.s3_listen, "[::]:0");
	assert_string_equal(c.data_dir, "./data");
	node_config_free(&c);
}

/* Issue 6: [nbd] listen/workers, --nbd-listen over the file, and an NBD
 * address that collides with S3's or the API's is refused. */
static void test_serve_args_nbd_issue6(void **state)
{
	(void)state;
	struct node_config c;
	struct node_serve_opts o;
	char err[512] = "";
	char *argv0[] = {"serve", NULL};
	assert_int_equal(node_serve_args(1, argv0, &c, &o, err, sizeof(err)), 0);
	assert_string_equal(c.nbd_listen, "0.0.0.0:10809");
	assert_int_equal(c.nbd_workers, 16);
	node_config_free(&c);

	const char *p = write_file("nbd.ini", "[nbd]\nlisten = 127.0.0.1:7001\nworkers = 4\n");
	char *argv[] = {"serve", "--config", (char *)p, NULL};
	assert_int_equal(node_serve_args(3, argv, &c, &o, err, sizeof(err)), 0);
	assert_string_equal(c.nbd_listen, "127.0.0.1:7001");
	assert_int_equal(c.nbd_workers, 4);
	node_config_free(&c);

	char *argv2[] = {"serve", "--config", (char *)p, "--nbd-listen", "[::1]:0", NULL};
	assert_int_equal(node_serve_args(5, argv2, &c, &o, err, sizeof(err)), 0);
	assert_string_equal(c.nbd_listen, "[::1]:0"); /* flag beats file */
	node_config_free(&c);

	char *argv3[] = {"serve", "--nbd-listen", "127.0.0.1:9000", NULL};
	assert_int_equal(node_serve_args(3, argv3, &c, &o, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "[nbd] listen and [s3] listen"));
	node_config_free(&c);

	char *argv4[] = {"serve", "--nbd-listen", "nohost", NULL};
	assert_int_equal(node_serve_args(3, argv4, &c, &o, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "--nbd-listen"));
	node_config_free(&c);

	p = write_file("nbdw.ini", "[nbd]\nworkers = 0\n");
	assert_int_equal(node_config_defaults(&c), 0);
	assert_int_equal(node_config_load(&c, p, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "workers"));
	node_config_free(&c);
}

static void test_serve_args_errors(void **state)
{
	(void)state;
	struct node_config c;
	struct node_serve_opts o;
	char err[512];

	char *a1[] = {"serve", "--bogus", NULL};
	assert_int_equal(node_serve_args(2, a1, &c, &o, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "unknown option '--bogus'"));
	node_config_free(&c);

	char *a2[] = {"serve", "--data", NULL};
	assert_int_equal(node_serve_args(2, a2, &c, &o, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "'--data' needs a value"));
	node_config_free(&c);

	char *a3[] = {"serve", "--devices", "lots", NULL};
	assert_int_equal(node_serve_args(3, a3, &c, &o, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "--devices: [pool] devices = 'lots'"));
	node_config_free(&c);

	char *a4[] = {"serve", "--config", "/nonexistent/cairn.ini", NULL};
	assert_int_equal(node_serve_args(3, a4, &c, &o, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/cairn.ini"));
	node_config_free(&c);

	char *a5[] = {"serve", "extra", NULL};
	assert_int_equal(node_serve_args(2, a5, &c, &o, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "unexpected argument 'extra'"));
	node_config_free(&c);

	char *a6[] = {"serve", "--devices", "3", NULL}; /* k+m = 6 > 3 */
	assert_int_equal(node_serve_args(3, a6, &c, &o, err, sizeof(err)), CAIRN_EINVAL);
	node_config_free(&c);

	char *a7[] = {"serve", "--data", "/x", "--help", NULL};
	assert_int_equal(node_serve_args(4, a7, &c, &o, err, sizeof(err)), 0);
	assert_true(o.help);
	node_config_free(&c);
}

/* [s3] tls_cert/tls_key: default off, set from the file or the flags, and
 * one without the other is an error naming both keys (issue 4). */
static void test_config_tls_both_or_neither_issue4(void **state)
{
	(void)state;
	struct node_config c;
	struct node_serve_opts o;
	char err[512] = "";

	char *a0[] = {"serve", NULL};
	assert_int_equal(node_serve_args(1, a0, &c, &o, err, sizeof(err)), 0);
	assert_string_equal(c.s3_tls_cert, "");
	assert_string_equal(c.s3_tls_key, "");
	node_config_free(&c);

	const char *p =
	    write_file("tls.ini", "[s3]\ntls_cert = /etc/c.pem\ntls_key = /etc/k.pem\n");
	char *a1[] = {"serve", "--config", (char *)p, "--tls-key", "/flag/k.pem", NULL};
	assert_int_equal(node_serve_args(5, a1, &c, &o, err, sizeof(err)), 0);
	assert_string_equal(c.s3_tls_cert, "/etc/c.pem");
	assert_string_equal(c.s3_tls_key, "/flag/k.pem"); /* flag beats file */
	node_config_free(&c);

	char *a2[] = {"serve", "--tls-cert", "/c.pem", NULL};
	assert_int_equal(node_serve_args(3, a2, &c, &o, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "tls_cert is set, tls_key is not"));
	node_config_free(&c);

	p = write_file("tls2.ini", "[s3]\ntls_key = /k.pem\n");
	char *a3[] = {"serve", "--config", (char *)p, NULL};
	assert_int_equal(node_serve_args(3, a3, &c, &o, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "tls_key is set, tls_cert is not"));
	node_config_free(&c);

	char *a4[] = {"serve", "--tls-cert", NULL};
	assert_int_equal(node_serve_args(2, a4, &c, &o, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "'--tls-cert' needs a value"));
	node_config_free(&c);
}

static void test_serve_help_lists_every_key_and_flag(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	node_serve_help(f);
	fclose(f);
	static const char *const want[] = {
	    "--config FILE",
	    "--data DIR",
	    "--s3-listen",
	    "--api-listen",
	    "--devices",
	    "--log-level",
	    "--powerloss-sim",
	    "--tls-cert FILE",
	    "--tls-key FILE",
	    "tls_cert = ",
	    "tls_key = ",
	    "CAIRN_ROOT_USER",
	    "CAIRN_ROOT_PASSWORD",
	    "[node]",
	    "data_dir = ./data",
	    "log_level = info",
	    "access_log = true",
	    "[s3]",
	    "listen = 127.0.0.1:9000",
	    "region = us-east-1",
	    "domain = ",
	    "max_connections = 1024",
	    "timeout = 60",
	    "[api]",
	    "listen = 127.0.0.1:9100",
	    "[pool]",
	    "devices = 6",
	    "k = 4",
	    "m = 2",
	    "replicas = 3",
	    "chunk_size = 64K",
	    "unit_size = 1M",
	    "inline_max = 4096",
	    "part_power = 10",
	    "map_size = 64G",
	    "workers = 0",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(text, want[i]))
			fail_msg("help lacks '%s'", want[i]);
	free(text);
}

static void test_split_listen(void **state)
{
	(void)state;
	char host[64];
	uint16_t port;
	assert_int_equal(node_split_listen("127.0.0.1:9000", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 9000);
	assert_int_equal(node_split_listen("[::1]:0", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_int_equal(node_split_listen("localhost:65535", host, sizeof(host), &port), 0);
	assert_int_equal(port, 65535);
	assert_int_equal(node_split_listen("localhost:65536", host, sizeof(host), &port),
			 CAIRN_EINVAL);
	assert_int_equal(node_split_listen("localhost:", host, sizeof(host), &port), CAIRN_EINVAL);
	assert_int_equal(node_split_listen("localhost:+1", host, sizeof(host), &port),
			 CAIRN_EINVAL);
	assert_int_equal(node_split_listen("", host, sizeof(host), &port), CAIRN_EINVAL);
}

/* The example configs in conf/ must load and validate; conf/cairn.ini
 * must say exactly what the built-in defaults are. */
static void test_config_examples_load_and_cairn_ini_is_default(void **state)
{
	(void)state;
	static const char *const files[] = {"cairn.ini", "single-node-disks.ini",
					    "cluster-node.ini"};
	char path[512], err[512];
	for (size_t i = 0; i < 3; i++) {
		struct node_config c;
		snprintf(path, sizeof(path), "%s/conf/%s", CAIRN_SOURCE_DIR, files[i]);
		assert_int_equal(node_config_defaults(&c), 0);
		if (node_config_load(&c, path, err, sizeof(err)) != 0)
			fail_msg("%s", err);
		if (node_config_validate(&c, err, sizeof(err)) != 0)
			fail_msg("%s: %s", path, err);
		if (i == 0) {
			struct node_config d;
			assert_int_equal(node_config_defaults(&d), 0);
			assert_string_equal(c.data_dir, d.data_dir);
			assert_string_equal(c.log_level, d.log_level);
			assert_int_equal(c.access_log, d.access_log);
			assert_string_equal(c.s3_listen, d.s3_listen);
			assert_string_equal(c.s3_region, d.s3_region);
			assert_string_equal(c.s3_domain, d.s3_domain);
			assert_int_equal(c.s3_max_connections, d.s3_max_connections);
			assert_int_equal(c.s3_timeout, d.s3_timeout);
			assert_string_equal(c.api_listen, d.api_listen);
			assert_string_equal(c.reg_listen, d.reg_listen);
			assert_string_equal(c.reg_admin_token, d.reg_admin_token);
			assert_string_equal(c.reg_web_allow, d.reg_web_allow);
			assert_string_equal(c.reg_public_url, d.reg_public_url);
			assert_string_equal(c.chunking, d.chunking);
			assert_string_equal(c.compression, d.compression);
			assert_string_equal(c.dedup_domain, d.dedup_domain);
			assert_true(memcmp(&c.devices, &d.devices,
					   sizeof(c) - offsetof(struct node_config, devices)) == 0);
			node_config_free(&d);
		}
		node_config_free(&c);
	}
}

/* ---- root credentials ---- */

static void test_creds_env_both_or_neither(void **state)
{
	(void)state;
	struct node_creds c;
	char err[256];
	unsetenv("CAIRN_ROOT_USER");
	unsetenv("CAIRN_ROOT_PASSWORD");
	assert_int_equal(node_creds_from_env(&c, err, sizeof(err)), 1);
	setenv("CAIRN_ROOT_USER", "admin", 1);
	assert_int_equal(node_creds_from_env(&c, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "both"));
	setenv("CAIRN_ROOT_PASSWORD", "short7!", 1); /* 7 characters */
	assert_int_equal(node_creds_from_env(&c, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "8"));
	setenv("CAIRN_ROOT_PASSWORD", "exactly8", 1);
	assert_int_equal(node_creds_from_env(&c, err, sizeof(err)), 0);
	assert_string_equal(c.user, "admin");
	assert_string_equal(c.password, "exactly8");
	setenv("CAIRN_ROOT_USER", "ad/min", 1); /* '/' would break the credential scope */
	assert_int_equal(node_creds_from_env(&c, err, sizeof(err)), CAIRN_EINVAL);
	setenv("CAIRN_ROOT_USER", "admin", 1);
	setenv("CAIRN_ROOT_PASSWORD", "has space in it", 1);
	assert_int_equal(node_creds_from_env(&c, err, sizeof(err)), CAIRN_EINVAL);
	unsetenv("CAIRN_ROOT_USER");
	unsetenv("CAIRN_ROOT_PASSWORD");
}

static void test_creds_generate_write_read_0600(void **state)
{
	(void)state;
	struct node_creds a, b, r;
	char path[512], err[256];
	assert_int_equal(node_creds_generate(&a), 0);
	assert_int_equal(node_creds_generate(&b), 0);
	assert_int_equal(strlen(a.user), 20);
	assert_int_equal(strlen(a.password), 40);
	assert_int_equal(strncmp(a.user, "CAIRN", 5), 0);
	assert_string_not_equal(a.password, b.password);
	assert_int_equal(node_creds_validate(&a, err, sizeof(err)), 0);

	snprintf(path, sizeof(path), "%s/root-credentials", tmpdir);
	unlink(path);
	assert_int_equal(node_creds_write(path, &a), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Written once: a second write refuses to replace it. */
	assert_int_equal(node_creds_write(path, &b), -EEXIST);
	assert_int_equal(node_creds_read(path, &r, err, sizeof(err)), 0);
	assert_string_equal(r.user, a.user);
	assert_string_equal(r.password, a.password);
	/* No temporary file left behind. */
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1);
}

static void test_creds_read_formats_and_errors(void **state)
{
	(void)state;
	struct node_creds r;
	char err[512];
	const char *p = write_file("aws.env", "# sourced by a shell\n"
					      "export AWS_ACCESS_KEY_ID=\"AKIDEXAMPLE\"\n"
					      "OTHER=ignored\n"
					      "AWS_SECRET_ACCESS_KEY='wJalrXUtnFEMI/K7MDENG'\n");
	assert_int_equal(node_creds_read(p, &r, err, sizeof(err)), 0);
	assert_string_equal(r.user, "AKIDEXAMPLE");
	assert_string_equal(r.password, "wJalrXUtnFEMI/K7MDENG");

	p = write_file("half.env", "CAIRN_ROOT_USER=admin\n");
	assert_int_equal(node_creds_read(p, &r, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, "CAIRN_ROOT_PASSWORD"));

	p = write_file("junk.env", "CAIRN_ROOT_USER=admin\nnot a pair\n");
	assert_int_equal(node_creds_read(p, &r, err, sizeof(err)), CAIRN_EINVAL);
	assert_non_null(strstr(err, ":2:"));

	p = write_file("weak.env", "CAIRN_ROOT_USER=admin\nCAIRN_ROOT_PASSWORD=1234567\n");
	assert_int_equal(node_creds_read(p, &r, err, sizeof(err)), CAIRN_EINVAL);

	assert_int_equal(node_creds_read("/nonexistent/creds", &r, err, sizeof(err)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_defaults_are_embedded_single_node),
	    cmocka_unit_test(test_config_file_sets_every_type),
	    cmocka_unit_test(test_config_unknown_key_names_file_line_key),
	    cmocka_unit_test(test_config_unknown_section_and_keyless_section),
	    cmocka_unit_test(test_config_bad_values_rejected),
	    cmocka_unit_test(test_config_validate_cross_field),
	    cmocka_unit_test(test_serve_args_flags_override_file),
	    cmocka_unit_test(test_serve_args_nbd_issue6),
	    cmocka_unit_test(test_serve_args_errors),
	    cmocka_unit_test(test_config_tls_both_or_neither_issue4),
	    cmocka_unit_test(test_serve_help_lists_every_key_and_flag),
	    cmocka_unit_test(test_split_listen),
	    cmocka_unit_test(test_config_examples_load_and_cairn_ini_is_default),
	    cmocka_unit_test(test_creds_env_both_or_neither),
	    cmocka_unit_test(test_creds_generate_write_read_0600),
	    cmocka_unit_test(test_creds_read_formats_and_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
