/* objstore/s3_tls.h - the S3 listener's certificate and key, read and
 * checked for libmicrohttpd's HTTPS mode (internal to objstore/).
 *
 * libmicrohttpd takes PEM text in memory (MHD_OPTION_HTTPS_MEM_CERT/KEY)
 * and hands it to GnuTLS; errors from there are one opaque "daemon did not
 * start". So the files are checked first with OpenSSL (parse, key not
 * encrypted, key matches certificate) to fail with a message that names the
 * file. Messages never contain key material.
 *
 * Threads: start-up only. The buffers are owned by struct s3_tls_pem and
 * kept for the daemon's life; s3_tls_pem_free() wipes the key before it
 * frees it.
 */
#ifndef CAIRN_OBJSTORE_S3_TLS_H
#define CAIRN_OBJSTORE_S3_TLS_H

#include <stddef.h>

#include "core/err.h"

#define S3_TLS_FILE_MAX (1u << 20) /* a certificate chain or key is far smaller */
/* TLS 1.2 and 1.3 only: 1.0 and 1.1 are deprecated (RFC 8996). */
#define S3_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct s3_tls_pem {
	char *cert; /* NUL-terminated PEM */
	char *key;  /* NUL-terminated PEM; wiped on free */
	size_t key_len;
};

/* Reads and checks both files (see s3_tls_check in s3.h). On success out
 * owns two buffers; on failure out is empty and err says why. */
int s3_tls_load(const char *cert_path, const char *key_path, struct s3_tls_pem *out, char *err,
		size_t errlen) CAIRN_WUR;
/* Safe on an empty or already freed struct. */
void s3_tls_pem_free(struct s3_tls_pem *p);

#endif
