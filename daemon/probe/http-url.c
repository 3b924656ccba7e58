/*
 * Plain http:// URLs without libcurl (http-url.h). Deliberately a strict
 * subset of RFC 3986, chosen so that libcurl's URL API returns the very
 * same host, port, path and query for every URL it accepts: no escapes,
 * no normalisation to do. fuzz/fuzz-http-url.c checks that against
 * libcurl itself.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http-url.h"
#include "util.h"

/* RFC 3986 unreserved and sub-delims, and ':' '@' (pchar without '%') */
static int
pchar(unsigned char c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("-._~!$&'()*+,;=:@", c) != NULL);
}

/*
 * A host libcurl keeps as written: lower-case letters, digits, '-' and
 * '.', with a label that starts with a letter (libcurl rewrites every
 * numeric form of an IPv4 address, 127.1 or 0x7f.1, to dotted quad), or a
 * dotted quad or bracketed IPv6 address already in the form inet_ntop()
 * gives, which is the form libcurl normalises to.
 */
static int
host_ok(const char *h, size_t n)
{
	char		 buf[64], back[INET6_ADDRSTRLEN];
	unsigned char	 addr[16];
	size_t		 i;
	int		 letter = 0, start = 1;

	if (n == 0 || n >= sizeof buf)
		return (0);
	if (h[0] == '[') {
		if (n < 3 || h[n - 1] != ']')
			return (0);
		memcpy(buf, h + 1, n - 2);
		buf[n - 2] = '\0';
		return (inet_pton(AF_INET6, buf, addr) == 1 &&
		    inet_ntop(AF_INET6, addr, back, sizeof back) != NULL &&
		    strcmp(buf, back) == 0);
	}
	if (h[0] == '.' || h[0] == '-' || h[n - 1] == '.' || h[n - 1] == '-')
		return (0);
	for (i = 0; i < n; i++) {
		if (h[i] >= 'a' && h[i] <= 'z')
			letter |= start;
		else if (h[i] == '.' && start)
			return (0);	/* an empty label */
		else if (!(h[i] >= '0' && h[i] <= '9') && h[i] != '-' &&
		    h[i] != '.')
			return (0);
		start = h[i] == '.';
	}
	if (letter)
		return (1);
	memcpy(buf, h, n);
	buf[n] = '\0';
	return (inet_pton(AF_INET, buf, addr) == 1 &&
	    inet_ntop(AF_INET, addr, back, sizeof back) != NULL &&
	    strcmp(buf, back) == 0);
}

/* A path of pchar and '/', no "." or ".." segment (libcurl removes them). */
static int
path_ok(const char *p, size_t n)
{
	size_t	i, seg = 0;

	for (i = 0; i <= n; i++) {
		if (i == n || p[i] == '/') {
			if ((i - seg == 1 && p[seg] == '.') ||
			    (i - seg == 2 && p[seg] == '.' && p[seg + 1] == '.'))
				return (0);
			seg = i + 1;
		} else if (!pchar((unsigned char)p[i]))
			return (0);
	}
	return (1);
}

int
http_url_split(const char *url, struct http_url *u)
{
	const char	*auth, *aend, *colon, *path, *q;
	size_t		 hostlen, i;
	long		 port = 80;

	memset(u, 0, sizeof *u);
	if (strncmp(url, "http://", 7) != 0)
		return (0);
	auth = url + 7;
	aend = auth + strcspn(auth, "/?#");
	if (*aend == '?' || strchr(aend, '#') != NULL)
		return (0);	/* no path before the query; a fragment */
	/* the port's colon: after a bracketed address, else the only one */
	colon = NULL;
	if (auth[0] == '[') {
		const char *rb = memchr(auth, ']', (size_t)(aend - auth));

		if (rb == NULL || (rb + 1 != aend && rb[1] != ':'))
			return (0);
		if (rb + 1 != aend)
			colon = rb + 1;
	} else
		colon = memchr(auth, ':', (size_t)(aend - auth));
	hostlen = (size_t)((colon != NULL ? colon : aend) - auth);
	if (!host_ok(auth, hostlen))
		return (0);
	if (colon != NULL) {
		/* 1 to 65535, no leading zero, no empty port */
		if (colon + 1 == aend || colon[1] == '0' || aend - colon > 6)
			return (0);
		port = 0;
		for (q = colon + 1; q < aend; q++) {
			if (*q < '0' || *q > '9')
				return (0);
			port = port * 10 + (*q - '0');
		}
		if (port > 65535)
			return (0);
	}
	path = aend;
	q = strchr(path, '?');
	if (!path_ok(path, q != NULL ? (size_t)(q - path) : strlen(path)))
		return (0);
	if (q != NULL) {
		if (q[1] == '\0')
			return (0);	/* an empty query */
		for (i = 1; q[i] != '\0'; i++)
			if (!pchar((unsigned char)q[i]) && q[i] != '/' &&
			    q[i] != '?')
				return (0);
	}
	u->host = xstrndup(auth, hostlen);
	u->port = (int)port;
	u->target = xstrdup(*path == '\0' ? "/" : path);
	return (1);
}

void
http_url_free(struct http_url *u)
{
	free(u->host);
	free(u->target);
	u->host = u->target = NULL;
}

/*
 * The check of the promise above, for the unit test and the fuzz target:
 * 0 when http_url_split() declines url or libcurl splits it the same
 * way; -1 with why filled when they differ.
 */
int
http_url_check(const char *url, char *why, size_t len)
{
	struct http_url	 u;
	CURLU		*c;
	char		*host = NULL, *port = NULL, *path = NULL, *query = NULL;
	char		*scheme = NULL, *target = NULL;
	int		 rc = -1;

	if (!http_url_split(url, &u))
		return (0);
	if ((c = curl_url()) == NULL) {
		snprintf(why, len, "libcurl is not there to compare");
		goto out;
	}
	if (curl_url_set(c, CURLUPART_URL, url, 0) != CURLUE_OK) {
		snprintf(why, len, "libcurl rejects it");
		goto out;
	}
	if (curl_url_get(c, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(c, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(c, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK ||
	    curl_url_get(c, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		snprintf(why, len, "libcurl has no scheme, host, port or path");
		goto out;
	}
	curl_url_get(c, CURLUPART_QUERY, &query, 0);
	xasprintf(&target, "%s%s%s", path, query ? "?" : "",
	    query ? query : "");
	if (strcmp(scheme, "http") != 0)
		snprintf(why, len, "libcurl's scheme is %s", scheme);
	else if (strcmp(host, u.host) != 0)
		snprintf(why, len, "host: libcurl %s, opsd %s", host, u.host);
	else if (atoi(port) != u.port)
		snprintf(why, len, "port: libcurl %s, opsd %d", port, u.port);
	else if (strcmp(target, u.target) != 0)
		snprintf(why, len, "target: libcurl %s, opsd %s", target,
		    u.target);
	else
		rc = 0;
out:
	free(target);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(c);
	http_url_free(&u);
	return (rc);
}
