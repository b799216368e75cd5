/* registry/img_fetch.c - web-download: an http(s) URL streamed into an
 * upload (img_upload_from_url in registry/img_data.h).
 *
 * The node fetches on behalf of a user, so what it may reach is the
 * operator's allow-list, checked on every hop: the URL's scheme (http,
 * https), its host or host:port against the list, and the address actually
 * connected to (libcurl's open-socket callback sees it after resolution,
 * right before connect, so a DNS answer that changes between a check and
 * the connect cannot slip through): a local address (loopback, unspecified
 * or one of this host's interfaces) on one of the node's own ports is
 * refused. Redirects are followed here, not by libcurl, so each target is
 * checked the same way (at most IMG_FETCH_MAX_REDIRS). Proxies from the
 * environment are ignored (the connected address must be the server's).
 * Only a 2xx response's body reaches the upload.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "registry/img_data.h"
#include "registry/img_internal.h"

#define IMG_FETCH_MAX_REDIRS 5
#define IMG_FETCH_CONNECT_S 10L
#define IMG_FETCH_LOW_SPEED 1024L /* bytes/s, below which for ... */
#define IMG_FETCH_LOW_TIME 30L	  /* ... this many seconds aborts */

static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static CURLcode fetch_init_rc;

static void fetch_init(void)
{
	fetch_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct fetch {
	struct img_upload *u;
	const uint16_t *own_ports;
	struct ifaddrs *ifs;
	CURL *curl;
	int write_err; /* img_upload_write's error */
	bool denied;   /* the open-socket check refused the address */
	char deny[160];
};

/* "[::1]" -> "::1" into out. */
static void strip_brackets(const char *in, size_t n, char *out, size_t outlen)
{
	if (n >= 2 && in[0] == '[' && in[n - 1] == ']') {
		in++;
		n -= 2;
	}
	snprintf(out, outlen, "%.*s", (int)n, in);
}

/* Is host:port in the comma-separated allow-list? Entries: "host",
 * "host:port", "[v6]" or "[v6]:port"; a bare IPv6 literal (several colons,
 * no brackets) is a host. Names compare case-insensitively. */
static bool allowed(const char *allow, const char *host, unsigned port)
{
	char h[256];
	strip_brackets(host, strlen(host), h, sizeof(h));
	for (const char *p = allow; p && *p;) {
		const char *end = strchrnul(p, ',');
		const char *s = p, *e = end;
		p = *end ? end + 1 : end;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (s == e)
			continue;
		/* split off ":port" (not inside an IPv6 literal) */
		const char *colon = NULL;
		if (*s == '[') {
			const char *rb = memchr(s, ']', (size_t)(e - s));
			if (rb && rb + 1 < e && rb[1] == ':')
				colon = rb + 1;
		} else {
			const char *c1 = memchr(s, ':', (size_t)(e - s));
			if (c1 && !memchr(c1 + 1, ':', (size_t)(e - c1 - 1)))
				colon = c1;
		}
		const char *he = colon ? colon : e;
		if (colon) {
			char num[8];
			size_t nl = (size_t)(e - colon - 1);
			if (!nl || nl >= sizeof(num))
				continue;
			memcpy(num, colon + 1, nl);
			num[nl] = '\0';
			char *x;
			unsigned long v = strtoul(num, &x, 10);
			if (*x || v != port)
				continue;
		}
		char eh[256];
		strip_brackets(s, (size_t)(he - s), eh, sizeof(eh));
		if (strcasecmp(eh, h) == 0)
			return true;
	}
	return false;
}

/* Loopback, unspecified, or an address of one of this host's interfaces. */
static bool local_addr(const struct fetch *f, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct in_addr *a = &((const struct sockaddr_in *)sa)->sin_addr;
		uint32_t h = ntohl(a->s_addr);
		if ((h >> 24) == 127 || h == 0)
			return true;
		for (const struct ifaddrs *i = f->ifs; i; i = i->ifa_next)
			if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
			    ((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == a->s_addr)
				return true;
		return false;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a))
			return true;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			struct sockaddr_in v4 = {.sin_family = AF_INET};
			memcpy(&v4.sin_addr, a->s6_addr + 12, 4);
			return local_addr(f, (const struct sockaddr *)&v4);
		}
		for (const struct ifaddrs *i = f->ifs; i; i = i->ifa_next)
			if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET6 &&
			    memcmp(&((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, a,
				   sizeof(*a)) == 0)
				return true;
		return false;
	}
	return true; /* no other families: treat as local (refused) */
}

/* libcurl calls this with the address it is about to connect to (after
 * resolution): the one place the check cannot be raced by DNS. */
static curl_socket_t fetch_opensocket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct fetch *f = arg;
	const struct sockaddr *sa = &a->addr;
	unsigned port = 0;
	char ip[INET6_ADDRSTRLEN] = "?";

	if (purpose != CURLSOCKTYPE_IPCXN ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
		f->denied = true;
		snprintf(f->deny, sizeof(f->deny), "not an IP connection");
		return CURL_SOCKET_BAD;
	}
	if (sa->sa_family == AF_INET) {
		port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	} else {
		port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	}
	if (local_addr(f, sa)) {
		for (const uint16_t *p = f->own_ports; p && *p; p++) {
			if (*p == port) {
				f->denied = true;
				snprintf(f->deny, sizeof(f->deny),
					 "%s port %u is this node's own service", ip, port);
				return CURL_SOCKET_BAD;
			}
		}
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t fetch_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct fetch *f = arg;
	size_t len = size * nmemb;
	long code = 0;

	curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299)
		return len; /* a redirect's or an error's body: not the image */
	int rc = img_upload_write(f->u, ptr, len);
	if (rc < 0) {
		f->write_err = rc;
		return 0; /* aborts the transfer */
	}
	return len;
}

/* Checks one hop's URL; fills host/port. 0, or CAIRN_EDENIED with why. */
static int check_url(const char *url, const char *allow, char *host, size_t hostlen, unsigned *port,
		     char *why, size_t whylen)
{
	CURLU *h = curl_url();
	char *scheme = NULL, *hn = NULL, *pn = NULL;
	int rc = CAIRN_EDENIED;

	if (!h)
		return -ENOMEM;
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK) {
		snprintf(why, whylen, "not a valid URL");
		rc = CAIRN_EINVAL;
		goto out;
	}
	if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))) {
		snprintf(why, whylen, "only http and https URLs may be fetched");
		goto out;
	}
	if (curl_url_get(h, CURLUPART_HOST, &hn, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_PORT, &pn, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		snprintf(why, whylen, "the URL names no host");
		goto out;
	}
	snprintf(host, hostlen, "%s", hn);
	*port = (unsigned)strtoul(pn, NULL, 10);
	if (!allowed(allow, hn, *port)) {
		snprintf(why, whylen, "host %.100s port %u is not in the web-download allow-list",
			 hn, *port);
		goto out;
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(hn);
	curl_free(pn);
	curl_url_cleanup(h);
	return rc;
}

int img_upload_from_url(struct img_upload *u, const char *url, const char *allow,
			const uint16_t *own_ports, char *why, size_t whylen)
{
	struct fetch f = {.u = u, .own_ports = own_ports};
	char errbuf[CURL_ERROR_SIZE];
	char *cur = NULL;
	int rc;

	if (whylen)
		why[0] = '\0';
	pthread_once(&fetch_once, fetch_init);
	if (fetch_init_rc != CURLE_OK) {
		snprintf(why, whylen, "libcurl failed to start");
		rc = -EIO;
		goto out;
	}
	if (!url || !allow || !*allow) {
		snprintf(why, whylen, "web-download is not enabled");
		rc = CAIRN_EDENIED;
		goto out;
	}
	if (getifaddrs(&f.ifs) < 0)
		f.ifs = NULL; /* loopback and unspecified are still caught */
	if (!(cur = strdup(url))) {
		rc = -ENOMEM;
		goto out;
	}
	for (int hop = 0;; hop++) {
		char host[256];
		unsigned port;
		long code = 0;
		if ((rc = check_url(cur, allow, host, sizeof(host), &port, why, whylen)) < 0)
			goto out;
		if (!(f.curl = curl_easy_init())) {
			rc = -ENOMEM;
			goto out;
		}
		errbuf[0] = '\0';
		CURL *c = f.curl;
		curl_easy_setopt(c, CURLOPT_URL, cur);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(c, CURLOPT_PROXY, "");
		curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, IMG_FETCH_CONNECT_S);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, IMG_FETCH_LOW_SPEED);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, IMG_FETCH_LOW_TIME);
		curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, fetch_opensocket);
		curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &f);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(c, CURLOPT_USERAGENT, "cairn-registry/1");
		curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
		CURLcode cc = curl_easy_perform(c);
		if (f.write_err) {
			rc = f.write_err;
			if (rc == CAIRN_EINVAL)
				snprintf(why, whylen, "%s", img_upload_why(u));
			else if (rc == -EFBIG)
				snprintf(why, whylen, "the image is larger than the size limit");
			else
				snprintf(why, whylen, "storing the image failed: %s",
					 cairn_strerror(rc));
			goto out;
		}
		if (f.denied) {
			snprintf(why, whylen, "%s", f.deny);
			rc = CAIRN_EDENIED;
			goto out;
		}
		if (cc != CURLE_OK) {
			snprintf(why, whylen, "fetching from %.100s port %u failed: %s", host, port,
				 errbuf[0] ? errbuf : curl_easy_strerror(cc));
			rc = -EIO;
			goto out;
		}
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 200 && code <= 299) {
			rc = 0;
			goto out;
		}
		if (code >= 400 || code < 300) {
			snprintf(why, whylen, "%.100s port %u answered HTTP status %ld", host, port,
				 code);
			rc = -EIO;
			goto out;
		}
		char *loc = NULL;
		curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
		if (!loc) {
			snprintf(why, whylen, "HTTP status %ld without a Location", code);
			rc = -EIO;
			goto out;
		}
		if (hop == IMG_FETCH_MAX_REDIRS) {
			snprintf(why, whylen, "more than %d redirects", IMG_FETCH_MAX_REDIRS);
			rc = -EIO;
			goto out;
		}
		char *next = strdup(loc); /* loc lives with the handle */
		if (!next) {
			rc = -ENOMEM;
			goto out;
		}
		free(cur);
		cur = next;
		curl_easy_cleanup(c);
		f.curl = NULL;
	}
out:
	if (rc < 0)
		img_upload_fail(u, rc);
	if (rc < 0 && rc != CAIRN_EINVAL && rc != CAIRN_EDENIED && !f.write_err)
		log_info("img", "web-download refused or failed: %s", why);
	curl_easy_cleanup(f.curl);
	free(cur);
	if (f.ifs)
		freeifaddrs(f.ifs);
	return rc;
}
