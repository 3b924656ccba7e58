/*
 * http-parse: opsd's HTTP/1.1 response parser (daemon/probe/http-parse.c)
 * against nodejs's http_parser 2.9 (Debian's libhttp-parser), on the
 * responses a plain-http probe reads: nginx's 200 with 8 headers and a
 * small body, and a chunked 200 of the same size.
 *
 * Both parsers get the whole response in one buffer (as probe-http.c
 * hands over what the bufferevent holds), are set up fresh for each
 * response, and report each header and each piece of the body to a
 * callback that does the same small work for both (adds up lengths), so
 * the figure is the parser's own cost plus a call per item. Before timing,
 * both are checked to agree on the status, keep-alive and the body.
 *
 * usage: http-parse [-n MILLIONS] [-r ROUNDS] [-p ours|http_parser]
 *                   [-c plain|chunked]
 *   -n  responses per round per parser and case, in millions (2)
 *   -r  rounds; the best is reported (3)
 *   -p, -c  only that parser or case (for callgrind: see bench/http-parse)
 *
 * Prints one line per parser and case:
 *   RESULT parser=ours case=plain n=2000000 ns=123.4 bytes=...
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <http_parser.h>

#include "http-parse.h"

static const char plain[] =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Tue, 01 Dec 2026 13:30:00 GMT\r\n"
    "Content-Type: text/html\r\n"
    "Content-Length: 49\r\n"
    "Last-Modified: Mon, 30 Nov 2026 09:12:41 GMT\r\n"
    "Connection: keep-alive\r\n"
    "ETag: \"692c0a19-31\"\r\n"
    "Accept-Ranges: bytes\r\n"
    "\r\n"
    "<html><body><h1>service ok</h1></body></html>\r\n\r\n";

static const char chunked[] =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Tue, 01 Dec 2026 13:30:00 GMT\r\n"
    "Content-Type: application/json\r\n"
    "Transfer-Encoding: chunked\r\n"
    "Connection: keep-alive\r\n"
    "Vary: Accept-Encoding\r\n"
    "Cache-Control: no-cache\r\n"
    "X-Request-Id: 3f9c2a7e1b8d4c60\r\n"
    "\r\n"
    "1f\r\n"
    "{\"status\":\"ok\",\"checks\":{\"db\":\"\r\n"
    "13\r\n"
    "up\",\"queue\":\"up\"}}\n\r\n"
    "0\r\n"
    "\r\n";

struct tally {
	uint64_t	 hdr;	/* header bytes seen, names and values */
	uint64_t	 nhdr;
	uint64_t	 body;
	int		 done;
};

/* ---- opsd's parser ----------------------------------------------------- */

static void
ours_header(void *arg, const char *n, size_t nl, const char *v, size_t vl)
{
	struct tally	*t = arg;

	(void)n;
	(void)v;
	t->hdr += nl + vl;
	t->nhdr++;
}

static void
ours_body(void *arg, const char *d, size_t len)
{
	struct tally	*t = arg;

	(void)d;
	t->body += len;
}

/* one response; returns the status, -1 on an error */
static int
ours_one(const char *buf, size_t len, struct tally *t, int *keep)
{
	struct http_resp	 r;
	size_t			 used;

	http_resp_init(&r);
	r.on_header = ours_header;
	r.on_body = ours_body;
	r.arg = t;
	if (http_parse_response(&r, buf, len, &used) != HTTP_PARSE_DONE ||
	    used != len)
		return (-1);
	*keep = r.keep_alive;
	t->done++;
	return (r.status);
}

/* ---- nodejs's http_parser ---------------------------------------------- */

static int
hp_field(http_parser *p, const char *at, size_t len)
{
	struct tally	*t = p->data;

	(void)at;
	t->hdr += len;
	t->nhdr++;
	return (0);
}

static int
hp_value(http_parser *p, const char *at, size_t len)
{
	struct tally	*t = p->data;

	(void)at;
	t->hdr += len;
	return (0);
}

static int
hp_body(http_parser *p, const char *at, size_t len)
{
	struct tally	*t = p->data;

	(void)at;
	t->body += len;
	return (0);
}

static int
hp_complete(http_parser *p)
{
	struct tally	*t = p->data;

	t->done++;
	return (0);
}

static http_parser_settings hp_settings;

static int
hp_one(const char *buf, size_t len, struct tally *t, int *keep)
{
	http_parser	 p;

	http_parser_init(&p, HTTP_RESPONSE);
	p.data = t;
	if (http_parser_execute(&p, &hp_settings, buf, len) != len ||
	    HTTP_PARSER_ERRNO(&p) != HPE_OK)
		return (-1);
	*keep = http_should_keep_alive(&p);
	return ((int)p.status_code);
}

/* ---- the loops ---------------------------------------------------------- */

typedef int (*one_fn)(const char *, size_t, struct tally *, int *);

static double
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec * 1e9 + (double)ts.tv_nsec);
}

/*
 * Not inlined, and named: callgrind counts what runs inside it
 * (--toggle-collect=parse_loop).
 */
__attribute__((noinline)) static uint64_t
parse_loop(one_fn one, const char *buf, size_t len, long n)
{
	struct tally	 t = { 0 };
	int		 keep = 0;
	long		 i;
	uint64_t	 bad = 0;

	for (i = 0; i < n; i++) {
		if (one(buf, len, &t, &keep) != 200)
			bad++;
		/* what is read stays read: the compiler keeps the work */
		__asm__ volatile("" : : "r"(buf), "m"(t) : "memory");
	}
	return (bad + (t.done == n ? 0 : 1));
}

static void
check(const char *name, one_fn one, const char *cname, const char *buf,
    size_t len, uint64_t body)
{
	struct tally	 t = { 0 };
	int		 keep = 0, st;

	st = one(buf, len, &t, &keep);
	if (st != 200 || !keep || t.body != body || t.done != 1) {
		fprintf(stderr, "http-parse: %s on %s: status %d keep-alive %d "
		    "body %llu (want 200, 1, %llu)\n", name, cname, st, keep,
		    (unsigned long long)t.body, (unsigned long long)body);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	static const struct {
		const char	*name;
		one_fn		 one;
	} parsers[] = { { "ours", ours_one }, { "http_parser", hp_one } };
	static const struct {
		const char	*name;
		const char	*buf;
		size_t		 len;
		uint64_t	 body;
	} cases[] = {
		{ "plain", plain, sizeof plain - 1, 49 },
		{ "chunked", chunked, sizeof chunked - 1, 0x1f + 0x13 },
	};
	double		 millions = 2, best, ns;
	const char	*only_p = NULL, *only_c = NULL;
	long		 n;
	int		 rounds = 3, i, pi, ci, r;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			millions = atof(argv[++i]);
		else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
			only_p = argv[++i];
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			only_c = argv[++i];
		else {
			fprintf(stderr, "usage: http-parse [-n MILLIONS] "
			    "[-r ROUNDS] [-p ours|http_parser] "
			    "[-c plain|chunked]\n");
			return (2);
		}
	}
	n = (long)(millions * 1e6);
	if (n < 1 || rounds < 1) {
		fprintf(stderr, "http-parse: -n and -r must be positive\n");
		return (2);
	}
	http_parser_settings_init(&hp_settings);
	hp_settings.on_header_field = hp_field;
	hp_settings.on_header_value = hp_value;
	hp_settings.on_body = hp_body;
	hp_settings.on_message_complete = hp_complete;

	for (ci = 0; ci < 2; ci++)
		for (pi = 0; pi < 2; pi++)
			check(parsers[pi].name, parsers[pi].one, cases[ci].name,
			    cases[ci].buf, cases[ci].len, cases[ci].body);

	printf("# http_parser %lu.%lu.%lu; %ld responses per round, best of "
	    "%d\n", http_parser_version() >> 16,
	    (http_parser_version() >> 8) & 255, http_parser_version() & 255,
	    n, rounds);
	for (ci = 0; ci < 2; ci++) {
		if (only_c != NULL && strcmp(only_c, cases[ci].name) != 0)
			continue;
		for (pi = 0; pi < 2; pi++) {
			if (only_p != NULL && strcmp(only_p, parsers[pi].name))
				continue;
			best = 0;
			for (r = 0; r < rounds; r++) {
				double	t0 = now_ns();

				if (parse_loop(parsers[pi].one, cases[ci].buf,
				    cases[ci].len, n) != 0) {
					fprintf(stderr, "http-parse: %s failed "
					    "on %s\n", parsers[pi].name,
					    cases[ci].name);
					return (1);
				}
				ns = (now_ns() - t0) / (double)n;
				if (r == 0 || ns < best)
					best = ns;
			}
			printf("RESULT parser=%s case=%s n=%ld bytes=%zu "
			    "ns=%.1f\n", parsers[pi].name, cases[ci].name, n,
			    cases[ci].len, best);
			fflush(stdout);
		}
	}
	return (0);
}
