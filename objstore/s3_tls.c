/* objstore/s3_tls.c - see s3_tls.h. */
#include "objstore/s3_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/log.h"
#include "objstore/s3.h"

#define TAG "s3"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The whole file, NUL-terminated, in a new buffer; what names it in
 * messages ("certificate", "key"). */
static int read_pem(const char *path, const char *what, char **out, size_t *len_out, char *err,
		    size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		seterr(err, errlen, "cannot read the TLS %s %s: %s", what, path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		seterr(err, errlen, "cannot read the TLS %s %s: %s", what, path, strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > S3_TLS_FILE_MAX) {
		rc = CAIRN_EINVAL;
		seterr(err, errlen, "the TLS %s %s is %s", what, path,
		       !S_ISREG(st.st_mode) ? "not a regular file"
		       : st.st_size <= 0    ? "empty"
					    : "too large for a PEM file (over 1 MiB)");
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		seterr(err, errlen, "out of memory reading %s", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			seterr(err, errlen, "cannot read the TLS %s %s: %s", what, path,
			       strerror(-rc));
			goto out;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (strcmp(what, "key") == 0 && (st.st_mode & S_IROTH))
		log_warn(TAG, "the TLS key %s is readable by every user (chmod 600 or 640 it)",
			 path);
	*out = buf;
	*len_out = got;
	buf = NULL;
	rc = 0;
out:
	if (buf) {
		OPENSSL_cleanse(buf, got);
		free(buf);
	}
	close(fd);
	return rc;
}

/* An encrypted key must fail, not prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int s3_tls_load(const char *cert_path, const char *key_path, struct s3_tls_pem *out, char *err,
		size_t errlen)
{
	struct s3_tls_pem p = {0};
	size_t cert_len = 0;
	BIO *bio = NULL;
	X509 *x = NULL;
	EVP_PKEY *pk = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		seterr(err, errlen, "this libmicrohttpd was built without TLS support");
		return -ENOTSUP;
	}
	rc = read_pem(cert_path, "certificate", &p.cert, &cert_len, err, errlen);
	if (rc < 0)
		goto out;
	rc = read_pem(key_path, "key", &p.key, &p.key_len, err, errlen);
	if (rc < 0)
		goto out;

	rc = CAIRN_EINVAL;
	bio = BIO_new_mem_buf(p.cert, (int)cert_len);
	x = bio ? PEM_read_bio_X509(bio, NULL, no_passphrase, NULL) : NULL;
	BIO_free(bio);
	if (!x) {
		seterr(err, errlen,
		       "the TLS certificate %s holds no PEM certificate "
		       "(expected -----BEGIN CERTIFICATE-----)",
		       cert_path);
		goto out;
	}
	bio = BIO_new_mem_buf(p.key, (int)p.key_len);
	pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
	BIO_free(bio);
	if (!pk) {
		if (strstr(p.key, "ENCRYPTED"))
			seterr(err, errlen,
			       "the TLS key %s is encrypted; cairn needs an unencrypted key file "
			       "(protect it with file permissions)",
			       key_path);
		else
			seterr(err, errlen,
			       "the TLS key %s holds no PEM private key "
			       "(expected -----BEGIN PRIVATE KEY-----)",
			       key_path);
		goto out;
	}
	if (X509_check_private_key(x, pk) != 1) {
		seterr(err, errlen, "the TLS key %s does not match the certificate %s", key_path,
		       cert_path);
		goto out;
	}
	/* Expiry is the operator's to fix; clients will refuse, cairn serves. */
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
		log_warn(TAG, "the TLS certificate %s has expired: clients will refuse it",
			 cert_path);
	else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
		log_warn(TAG, "the TLS certificate %s is not valid yet: clients will refuse it",
			 cert_path);
	*out = p;
	memset(&p, 0, sizeof(p));
	rc = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(pk);
	X509_free(x);
	s3_tls_pem_free(&p);
	return rc;
}

void s3_tls_pem_free(struct s3_tls_pem *p)
{
	if (!p)
		return;
	if (p->key)
		OPENSSL_cleanse(p->key, p->key_len);
	free(p->key);
	free(p->cert);
	memset(p, 0, sizeof(*p));
}

int s3_tls_check(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	struct s3_tls_pem p;
	int rc = s3_tls_load(cert_path, key_path, &p, err, errlen);

	s3_tls_pem_free(&p);
	return rc;
}
