/* node/creds.c - root credentials: environment, file, generation. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "node/node.h"

int node_creds_validate(const struct node_creds *c, char *err, size_t errlen)
{
	size_t ul = strlen(c->user), pl = strlen(c->password);
	if (ul < 3 || ul > NODE_CRED_MAX) {
		node_seterr(err, errlen, "root user (access key id) must be 3 to %d characters",
			    NODE_CRED_MAX);
		return CAIRN_EINVAL;
	}
	/* The key id travels in "Credential=ID/date/region/s3/aws4_request":
	 * no '/', no spaces, nothing that needs quoting. */
	for (const char *p = c->user; *p; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr("._@+=-", ch))) {
			node_seterr(
			    err, errlen,
			    "root user (access key id) may hold only letters, digits and ._@+=-");
			return CAIRN_EINVAL;
		}
	}
	if (pl < NODE_PASSWORD_MIN || pl > NODE_CRED_MAX) {
		node_seterr(err, errlen, "root password must be %d to %d characters",
			    NODE_PASSWORD_MIN, NODE_CRED_MAX);
		return CAIRN_EINVAL;
	}
	for (const char *p = c->password; *p; p++) {
		if (*p <= ' ' || *p > '~') {
			node_seterr(
			    err, errlen,
			    "root password may hold only printable characters without spaces");
			return CAIRN_EINVAL;
		}
	}
	return 0;
}

int node_creds_from_env(struct node_creds *out, char *err, size_t errlen)
{
	const char *u = getenv("CAIRN_ROOT_USER");
	const char *p = getenv("CAIRN_ROOT_PASSWORD");
	if (u && !*u)
		u = NULL;
	if (p && !*p)
		p = NULL;
	if (!u && !p)
		return 1;
	if (!u || !p) {
		node_seterr(err, errlen,
			    "set both CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD, or neither");
		return CAIRN_EINVAL;
	}
	if (strlen(u) > NODE_CRED_MAX || strlen(p) > NODE_CRED_MAX) {
		node_seterr(err, errlen,
			    "CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD must be at most %d "
			    "characters",
			    NODE_CRED_MAX);
		return CAIRN_EINVAL;
	}
	memset(out, 0, sizeof(*out));
	strcpy(out->user, u);
	strcpy(out->password, p);
	char msg[200];
	if (node_creds_validate(out, msg, sizeof(msg)) != 0) {
		node_seterr(err, errlen, "CAIRN_ROOT_USER/CAIRN_ROOT_PASSWORD: %s", msg);
		return CAIRN_EINVAL;
	}
	return 0;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int node_creds_read(const char *path, struct node_creds *out, char *err, size_t errlen)
{
	int ret = 0;
	char line[512];
	int lineno = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		node_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	memset(out, 0, sizeof(*out));
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = trim(line);
		if (!*s || *s == '#')
			continue;
		if (strncmp(s, "export ", 7) == 0)
			s = trim(s + 7);
		char *eq = strchr(s, '=');
		if (!eq) {
			node_seterr(err, errlen, "%s:%d: expected KEY=VALUE", path, lineno);
			ret = CAIRN_EINVAL;
			goto out;
		}
		*eq = '\0';
		char *k = trim(s), *v = trim(eq + 1);
		size_t vl = strlen(v);
		if (vl >= 2 && (v[0] == '\'' || v[0] == '"') && v[vl - 1] == v[0]) {
			v[vl - 1] = '\0';
			v++;
		}
		char *dst = NULL;
		if (strcmp(k, "CAIRN_ROOT_USER") == 0 || strcmp(k, "AWS_ACCESS_KEY_ID") == 0)
			dst = out->user;
		else if (strcmp(k, "CAIRN_ROOT_PASSWORD") == 0 ||
			 strcmp(k, "AWS_SECRET_ACCESS_KEY") == 0)
			dst = out->password;
		if (!dst)
			continue; /* other variables are fine in a sourced file */
		if (strlen(v) > NODE_CRED_MAX) {
			node_seterr(err, errlen, "%s:%d: %s is too long", path, lineno, k);
			ret = CAIRN_EINVAL;
			goto out;
		}
		strcpy(dst, v);
	}
	if (ferror(f)) {
		ret = -EIO;
		node_seterr(err, errlen, "%s: read error", path);
		goto out;
	}
	if (!out->user[0] || !out->password[0]) {
		node_seterr(err, errlen,
			    "%s: needs CAIRN_ROOT_USER= and CAIRN_ROOT_PASSWORD= lines", path);
		ret = CAIRN_EINVAL;
		goto out;
	}
	char msg[200];
	if (node_creds_validate(out, msg, sizeof(msg)) != 0) {
		node_seterr(err, errlen, "%s: %s", path, msg);
		ret = CAIRN_EINVAL;
		goto out;
	}
out:
	fclose(f);
	if (ret)
		memset(out, 0, sizeof(*out));
	return ret;
}

/* Uniform characters from an alphabet: rejection sampling over random
 * bytes, so no character is more likely than another. */
static int random_string(char *out, size_t n, const char *alphabet)
{
	size_t al = strlen(alphabet);
	unsigned limit = 256 - (256 % (unsigned)al);
	size_t i = 0;
	while (i < n) {
		unsigned char buf[64];
		if (RAND_bytes(buf, sizeof(buf)) != 1)
			return -EIO;
		for (size_t j = 0; j < sizeof(buf) && i < n; j++)
			if (buf[j] < limit)
				out[i++] = alphabet[buf[j] % al];
	}
	out[n] = '\0';
	return 0;
}

int node_creds_generate(struct node_creds *out)
{
	static const char upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	static const char mixed[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	int ret;
	memset(out, 0, sizeof(*out));
	/* "CAIRN" + 15: 20 characters, the shape of an AWS access key id. */
	memcpy(out->user, "CAIRN", 5);
	ret = random_string(out->user + 5, 15, upper);
	if (ret == 0)
		ret = random_string(out->password, 40, mixed);
	if (ret)
		memset(out, 0, sizeof(*out));
	return ret;
}

int node_creds_write(const char *path, const struct node_creds *c)
{
	int ret = 0, fd = -1;
	char tmp[4096], dir[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	if (access(path, F_OK) == 0)
		return -EEXIST;
	unlink(tmp); /* a leftover of a start that died before the rename */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	char body[1024];
	int n = snprintf(body, sizeof(body),
			 "# cairn root credentials, generated at first start. Keep this file "
			 "private.\n"
			 "# They are the S3 access key id and secret of the root user; this file "
			 "can be\n"
			 "# sourced by a shell and read by `cairn user/key --credentials FILE`.\n"
			 "CAIRN_ROOT_USER=%s\n"
			 "CAIRN_ROOT_PASSWORD=%s\n",
			 c->user, c->password);
	if (write(fd, body, (size_t)n) != n) {
		ret = errno ? -errno : -EIO;
		goto out;
	}
	if (fsync(fd) != 0) {
		ret = -errno;
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		ret = -errno;
		goto out;
	}
	fd = -1;
	/* link(2) instead of rename(2): never replaces a file that appeared
	 * meanwhile. */
	if (link(tmp, path) != 0) {
		ret = -errno;
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		unlink(tmp);
		if (fsync(dfd) != 0)
			ret = -errno;
		close(dfd);
	} else {
		ret = -errno;
	}
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}
