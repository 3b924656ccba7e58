/*
 * The plain http:// URL splitter (daemon/probe/http-url.c) that lets a
 * daemon with plain-http probes run without loading libcurl: what it
 * takes, the parts it gives, what it leaves to libcurl, and, for every
 * URL here, that libcurl's own URL API splits it the same way (the real
 * libcurl, loaded as the daemon loads it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http-url.h"
#include "lazylib.h"
#include "tap.h"

/* split(url) into "host|port|target", or "-" when declined */
static const char *
split(const char *url)
{
	static char	buf[512];
	struct http_url	u;

	if (!http_url_split(url, &u))
		return ("-");
	snprintf(buf, sizeof buf, "%s|%d|%s", u.host, u.port, u.target);
	http_url_free(&u);
	return (buf);
}

static void
test_taken(void)
{
	CHECK_STR(split("http://127.0.0.1:8080/health"),
	    "127.0.0.1|8080|/health");
	CHECK_STR(split("http://localhost/"), "localhost|80|/");
	CHECK_STR(split("http://localhost"), "localhost|80|/");
	CHECK_STR(split("http://api.internal:9000/v1/ready?deep=1&x=y"),
	    "api.internal|9000|/v1/ready?deep=1&x=y");
	CHECK_STR(split("http://[::1]:81/h"), "[::1]|81|/h");
	CHECK_STR(split("http://[2001:db8::1]/"), "[2001:db8::1]|80|/");
	CHECK_STR(split("http://h1.example/a/b/"), "h1.example|80|/a/b/");
	CHECK_STR(split("http://x:65535/"), "x|65535|/");
	CHECK_STR(split("http://web-1/~user/a;b=c:d@e"),
	    "web-1|80|/~user/a;b=c:d@e");
	CHECK_STR(split("http://10.0.0.1/?a/b?c"), "10.0.0.1|80|/?a/b?c");
}

/* Valid URLs that are libcurl's to split: it rewrites or decodes them. */
static void
test_left_to_libcurl(void)
{
	static const char *const urls[] = {
		"https://example.org/",		/* TLS */
		"HTTP://example.org/",		/* the scheme's case */
		"http://Example.org/",		/* the host's case */
		"http://127.1/",		/* a short IPv4 form */
		"http://0x7f000001/",		/* a hex IPv4 form */
		"http://127.000.000.001/",	/* leading zeros */
		"http://[0:0::1]/",		/* IPv6 not in short form */
		"http://[::1%25lo]/",		/* a zone */
		"http://user:pw@host/",		/* user info */
		"http://host:/",		/* an empty port */
		"http://host:080/",		/* a leading zero */
		"http://host:0/",		/* port 0 */
		"http://host:65536/",		/* too large */
		"http://host/a%20b",		/* an escape */
		"http://host/a/../b",		/* dot segments */
		"http://host/./b",
		"http://host/a/..",
		"http://host/#frag",		/* a fragment */
		"http://host?x",		/* a query without a path */
		"http://host/?",		/* an empty query */
		"http://host/a b",		/* a space */
		"http://host/\xc3\xa9",		/* non-ASCII */
		"http://ho_st/",		/* '_' */
		"http://.host/", "http://host./", "http://a..b/",
		"http://-host/",
		"http://",
		"http:///path",
		"ftp://host/",
	};
	size_t	i;

	for (i = 0; i < sizeof urls / sizeof urls[0]; i++)
		if (strcmp(split(urls[i]), "-") != 0) {
			tap_diag("taken: %s", urls[i]);
			CHECK(0);
		}
}

/* Every URL of both lists, and some more, against libcurl itself. */
static void
test_agrees_with_libcurl(void)
{
	static const char *const urls[] = {
		"http://127.0.0.1:8080/health", "http://localhost",
		"http://api.internal:9000/v1/ready?deep=1&x=y",
		"http://[::1]:81/h", "http://[2001:db8::1]/",
		"http://[::ffff:1.2.3.4]/", "http://h1.example/a/b/",
		"http://x:65535/", "http://web-1/~user/a;b=c:d@e",
		"http://10.0.0.1/?a/b?c", "http://a-b.c-d.e/", "http://1a/",
		"http://a1.2.3/", "http://host//double//slash",
		"http://host/..a/.b/a./", "http://host/!$&'()*+,;=",
		"http://255.255.255.255/", "http://0.0.0.0/", "http://xn--a/",
		"http://host/p?q=%", "http://host/p?q=#",
	};
	char	why[256];
	size_t	i;

	if (lazylib_curl() != 0) {
		tap_skip("libcurl cannot be loaded here");
		return;
	}
	for (i = 0; i < sizeof urls / sizeof urls[0]; i++)
		if (http_url_check(urls[i], why, sizeof why) != 0) {
			tap_diag("%s: %s", urls[i], why);
			CHECK(0);
		}
	/* what libcurl would reject is declined, not passed on */
	CHECK_STR(split("http://host/p?q=%"), "-");
}

int
main(void)
{
	RUN(test_taken);
	RUN(test_left_to_libcurl);
	RUN(test_agrees_with_libcurl);
	return (tap_done());
}
