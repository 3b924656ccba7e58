/*
 * The plain http:// URLs opsd splits itself, so that a daemon with only
 * plain-http probes never loads libcurl (core/lazylib.c). Anything this
 * does not take (https, user info, percent-escapes, dot segments, a
 * fragment, a host libcurl would rewrite) is left to libcurl's URL API.
 */
#ifndef OPSD_HTTP_URL_H
#define OPSD_HTTP_URL_H

#include <stddef.h>

struct http_url {
	char	*host;		/* as written: [::1] keeps its brackets */
	int	 port;		/* 80 when none is written */
	char	*target;	/* path and ?query, "/" at least */
};

/*
 * 1 and *u filled (free with http_url_free) when url is a plain http URL
 * that libcurl would split into exactly these parts; 0 when it is not
 * one, which does not mean it is invalid: ask libcurl.
 */
int	http_url_split(const char *url, struct http_url *u);
void	http_url_free(struct http_url *u);

/*
 * For the tests: 0 when http_url_split() declines url or agrees with
 * libcurl's URL API on every part; -1 and why when they differ.
 */
int	http_url_check(const char *url, char *why, size_t len);

#endif
