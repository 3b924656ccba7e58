/*
 * The plain-http probe's response parser (daemon/probe/http-parse.c):
 * framing, limits and errors, on whole inputs and on the same inputs cut
 * into pieces the way reads cut them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http-parse.h"
#include "tap.h"

struct got {
	char	 body[256];
	size_t	 bodylen;
	int	 nheaders;
	char	 last_header[128];
	int	 nstatus;
};

static void
on_header(void *arg, const char *n, size_t nl, const char *v, size_t vl)
{
	struct got	*g = arg;

	g->nheaders++;
	snprintf(g->last_header, sizeof g->last_header, "%.*s=%.*s", (int)nl,
	    n, (int)vl, v);
}

static void
on_body(void *arg, const char *d, size_t n)
{
	struct got	*g = arg;
	size_t		 keep = sizeof g->body - 1 - g->bodylen;

	if (keep > n)
		keep = n;
	memcpy(g->body + g->bodylen, d, keep);
	g->bodylen += keep;
	g->body[g->bodylen] = '\0';
}

static void
on_status(void *arg)
{
	((struct got *)arg)->nstatus++;
}

/*
 * Feeds in[0..len) in pieces of step bytes (0: all at once), keeping
 * what the parser leaves, as probe-http.c does; then, if eof, the close.
 * Returns the last http_parse_rc; *left: bytes after a whole response.
 */
static int
feed(struct http_resp *r, struct got *g, const char *in, size_t len,
    size_t step, int eof, size_t *left)
{
	char	*buf = malloc(len + 1);
	size_t	 have = 0, off = 0, used, n;
	int	 rc = HTTP_PARSE_MORE;

	memset(g, 0, sizeof *g);
	r->on_header = on_header;
	r->on_body = on_body;
	r->on_status = on_status;
	r->arg = g;
	while (off < len) {
		n = step == 0 || step > len - off ? len - off : step;
		memcpy(buf + have, in + off, n);
		have += n;
		off += n;
		rc = http_parse_response(r, buf, have, &used);
		memmove(buf, buf + used, have - used);
		have -= used;
		if (rc != HTTP_PARSE_MORE)
			break;
	}
	if (rc == HTTP_PARSE_MORE && eof)
		rc = http_parse_eof(r, have);
	if (left != NULL)
		*left = have + (len - off);
	free(buf);
	return (rc);
}

/* Every step size from 1 to 7 and whole: the same verdict and error. */
static void
check_all_steps(const char *in, size_t len, int eof, int want,
    const char *want_err, const char *want_body)
{
	static const size_t	 steps[] = { 0, 1, 2, 3, 5, 7, 64 };
	struct http_resp	 r;
	struct got		 g;
	unsigned int		 i;
	int			 rc;

	for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		http_resp_init(&r);
		rc = feed(&r, &g, in, len, steps[i], eof, NULL);
		if (rc != want)
			tap_diag("step %zu: rc %d, error '%s'", steps[i], rc,
			    r.error);
		CHECK_INT(rc, want);
		if (want == HTTP_PARSE_ERROR && want_err != NULL)
			CHECK_STR(r.error, want_err);
		if (want == HTTP_PARSE_DONE && want_body != NULL)
			CHECK_STR(g.body, want_body);
	}
}

#define S(x)	x, sizeof(x) - 1

static void
test_content_length(void)
{
	struct http_resp	r;
	struct got		g;
	size_t			left;

	http_resp_init(&r);
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "X-Ready: yes\r\n\r\nhelloNEXT"), 0, 0, &left), HTTP_PARSE_DONE);
	CHECK_INT(r.status, 200);
	CHECK_INT(r.framing, HTTP_FRAME_LENGTH);
	CHECK_INT(r.keep_alive, 1);
	CHECK_STR(g.body, "hello");
	CHECK_STR(g.last_header, "X-Ready=yes");
	CHECK_INT(left, 4);	/* "NEXT" is not part of it */
	check_all_steps(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
	    0, HTTP_PARSE_DONE, NULL, "hello");
	/* a bare LF ends a line too; "5, 5" is one length */
	check_all_steps(S("HTTP/1.1 200 OK\nContent-Length: 5, 5\n\nhello"),
	    0, HTTP_PARSE_DONE, NULL, "hello");
}

static void
test_content_length_bad(void)
{
	check_all_steps(S("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), 0,
	    HTTP_PARSE_ERROR, "malformed response: Content-Length '-1'", NULL);
	check_all_steps(S("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n"), 0,
	    HTTP_PARSE_ERROR, "malformed response: Content-Length '12x'",
	    NULL);
	check_all_steps(S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Content-Length: 3\r\n\r\nok"), 0, HTTP_PARSE_ERROR,
	    "malformed response: two different Content-Lengths (2 and 3)",
	    NULL);
	check_all_steps(S("HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n"),
	    0, HTTP_PARSE_ERROR,
	    "malformed response: two different Content-Lengths (2 and 3)",
	    NULL);
	check_all_steps(S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"), 0,
	    HTTP_PARSE_ERROR, "malformed response: both Content-Length and "
	    "Transfer-Encoding", NULL);
	check_all_steps(S("HTTP/1.1 200 OK\r\nContent-Length: "
	    "99999999999999999999\r\n\r\n"), 0, HTTP_PARSE_ERROR,
	    "malformed response: Content-Length '99999999999999999999'", NULL);
}

static void
test_chunked(void)
{
	struct http_resp	r;
	struct got		g;

	check_all_steps(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n2\r\nok\r\n3;name=value;x\r\n!!!\r\nA \r\n0123456789\r\n"
	    "0\r\nX-Trailer: t\r\nY: 1\r\n\r\n"), 0, HTTP_PARSE_DONE, NULL,
	    "ok!!!0123456789");
	http_resp_init(&r);
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, "
	    "chunked\r\n\r\n0\r\n\r\n"), 0, 0, NULL), HTTP_PARSE_DONE);
	CHECK_INT(r.framing, HTTP_FRAME_CHUNKED);
	CHECK_INT(r.keep_alive, 1);
	/* trailers are not headers of the response */
	http_resp_init(&r);
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n0\r\nX-Ready: yes\r\n\r\n"), 0, 0, NULL),
	    HTTP_PARSE_DONE);
	CHECK_INT(g.nheaders, 1);
}

static void
test_chunk_size_bad(void)
{
#define CH	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	check_all_steps(S(CH "-5\r\nhello\r\n0\r\n\r\n"), 0, HTTP_PARSE_ERROR,
	    "malformed response: chunk size '-5'", NULL);
	check_all_steps(S(CH "zz\r\n"), 0, HTTP_PARSE_ERROR,
	    "malformed response: chunk size 'zz'", NULL);
	check_all_steps(S(CH "ffffffffffffffff\r\n"), 0, HTTP_PARSE_ERROR,
	    "malformed response: chunk size 'ffffffffffffffff' too large",
	    NULL);
	check_all_steps(S(CH "\r\n"), 0, HTTP_PARSE_ERROR,
	    "malformed response: chunk size ''", NULL);
	check_all_steps(S(CH "2\r\nokX\r\n"), 0, HTTP_PARSE_ERROR,
	    "malformed response: no CRLF after a chunk", NULL);
	check_all_steps(S(CH "2\r\nok\r\n"), 1, HTTP_PARSE_ERROR,
	    "connection closed after 54 bytes of the response (in the chunked "
	    "body)", NULL);
#undef CH
}

static void
test_close_delimited(void)
{
	struct http_resp	r;
	struct got		g;

	http_resp_init(&r);
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\n\r\nall of it"), 3, 0,
	    NULL), HTTP_PARSE_MORE);
	CHECK_INT(r.framing, HTTP_FRAME_CLOSE);
	CHECK_INT(r.keep_alive, 0);
	CHECK_INT(http_parse_eof(&r, 0), HTTP_PARSE_DONE);
	CHECK_STR(g.body, "all of it");
	check_all_steps(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"
	    "zz"), 1, HTTP_PARSE_DONE, NULL, "zz");
	/* the close in the headers is not the end of a body */
	check_all_steps(S("HTTP/1.1 200 OK\r\nX: y\r\n"), 1, HTTP_PARSE_ERROR,
	    "connection closed after 23 bytes of the response (in the "
	    "headers)", NULL);
	check_all_steps("", 0, 1, HTTP_PARSE_ERROR,
	    "connection closed before the response began", NULL);
}

static void
test_http10(void)
{
	struct http_resp	r;
	struct got		g;

	http_resp_init(&r);
	CHECK_INT(feed(&r, &g, S("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n"
	    "ok"), 0, 0, NULL), HTTP_PARSE_DONE);
	CHECK_INT(r.minor, 0);
	CHECK_INT(r.keep_alive, 0);
	http_resp_init(&r);
	CHECK_INT(feed(&r, &g, S("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"
	    "Content-Length: 2\r\n\r\nok"), 0, 0, NULL), HTTP_PARSE_DONE);
	CHECK_INT(r.keep_alive, 1);
	http_resp_init(&r);
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\nConnection: foo, close\r\n"
	    "Content-Length: 2\r\n\r\nok"), 0, 0, NULL), HTTP_PARSE_DONE);
	CHECK_INT(r.keep_alive, 0);
	check_all_steps(S("HTTP/1.0 200 OK\r\n\r\nbody"), 1, HTTP_PARSE_DONE,
	    NULL, "body");
	check_all_steps(S("HTTP/2.0 200 OK\r\n\r\n"), 0, HTTP_PARSE_ERROR,
	    "unsupported response version HTTP/2.0", NULL);
}

static void
test_status_line(void)
{
	struct http_resp	r;
	struct got		g;

	/* split across reads at every byte: check_all_steps; and no reason */
	check_all_steps(S("HTTP/1.1 204 No Content\r\n\r\n"), 0,
	    HTTP_PARSE_DONE, NULL, "");
	check_all_steps(S("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), 0,
	    HTTP_PARSE_DONE, NULL, "");
	http_resp_init(&r);
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 20"), 0, 0, NULL), HTTP_PARSE_MORE);
	CHECK_INT(r.nread, 0);	/* nothing consumed of a partial line */
	check_all_steps(S("HTTP/1.1 2000 OK\r\n\r\n"), 0, HTTP_PARSE_ERROR,
	    "malformed response: status line 'HTTP/1.1 2000 OK'", NULL);
	check_all_steps(S("ICY 200 OK\r\n\x01\xff\r\n"), 0, HTTP_PARSE_ERROR,
	    "malformed response: status line 'ICY 200 OK'", NULL);
	check_all_steps(S("garbage\x01\xff\r\n"), 0, HTTP_PARSE_ERROR,
	    "malformed response: status line 'garbage?" "?'", NULL);
	/* 100 Continue, then the real one; its headers are not reported */
	http_resp_init(&r);
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 1, 0, NULL),
	    HTTP_PARSE_DONE);
	CHECK_INT(r.status, 200);
	CHECK_INT(g.nheaders, 1);
	CHECK_INT(g.nstatus, 1);
	check_all_steps(S("HTTP/1.1 101 Switching\r\n\r\n"), 0,
	    HTTP_PARSE_ERROR, "unexpected 101 Switching Protocols", NULL);
	/* HEAD and 304: no body whatever the length says */
	http_resp_init(&r);
	r.head = 1;
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n"
	    "\r\n"), 0, 0, NULL), HTTP_PARSE_DONE);
	check_all_steps(S("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n"
	    "\r\n"), 0, HTTP_PARSE_DONE, NULL, "");
}

static void
test_header_bad(void)
{
	check_all_steps(S("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), 0,
	    HTTP_PARSE_ERROR, "malformed response: header line without a "
	    "colon 'no colon here'", NULL);
	check_all_steps(S("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"), 0,
	    HTTP_PARSE_ERROR, "malformed response: header name 'Bad Name'",
	    NULL);
	check_all_steps(S("HTTP/1.1 200 OK\r\nA: 1\r\n  folded\r\n\r\n"), 0,
	    HTTP_PARSE_ERROR, "malformed response: a folded header line "
	    "'  folded'", NULL);
}

static void
test_huge_header(void)
{
	size_t			 n = 1 << 20, len, step;
	char			*big = malloc(n + 64);
	struct http_resp	 r;
	struct got		 g;

	len = (size_t)snprintf(big, 64, "HTTP/1.1 200 OK\r\nX-Big: ");
	memset(big + len, 'a', n);
	len += n;
	memcpy(big + len, "\r\n\r\n", 4);
	len += 4;
	for (step = 4096; step <= len; step *= 16) {
		http_resp_init(&r);
		CHECK_INT(feed(&r, &g, big, len, step, 0, NULL),
		    HTTP_PARSE_ERROR);
		CHECK_STR(r.error, "response header over 64 KiB");
	}
	/* just under the limit is fine; many small headers add up */
	http_resp_init(&r);
	r.header_max = 100;
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\nA: 1234567890\r\n"
	    "B: 1234567890\r\nC: 1234567890\r\nD: 1234567890\r\n"
	    "E: 1234567890\r\nF: 1234567890\r\n\r\n"), 0, 0, NULL),
	    HTTP_PARSE_ERROR);
	CHECK_STR(r.error, "response header over 100 bytes");
	http_resp_init(&r);
	r.header_max = 100;
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\nA: 1234567890\r\n"
	    "Content-Length: 0\r\n\r\n"), 0, 0, NULL), HTTP_PARSE_DONE);
	free(big);
}

static void
test_body_limit(void)
{
	struct http_resp	r;
	struct got		g;

	http_resp_init(&r);
	r.body_max = 4;
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "\r\nhello"), 0, 0, NULL), HTTP_PARSE_ERROR);
	CHECK_STR(r.error, "response body over 4 bytes (Content-Length 5)");
	http_resp_init(&r);
	r.body_max = 4;
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), 0, 0, NULL),
	    HTTP_PARSE_ERROR);
	CHECK_STR(r.error, "response body over 4 bytes");
	http_resp_init(&r);
	r.body_max = 4;
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\n\r\nhello"), 2, 1, NULL),
	    HTTP_PARSE_ERROR);
	CHECK_STR(r.error, "response body over 4 bytes");
	http_resp_init(&r);
	r.body_max = 4;
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"
	    "\r\nhell"), 0, 0, NULL), HTTP_PARSE_DONE);
	/* the default: 16 MiB */
	http_resp_init(&r);
	CHECK_INT(feed(&r, &g, S("HTTP/1.1 200 OK\r\nContent-Length: "
	    "16777217\r\n\r\n"), 0, 0, NULL), HTTP_PARSE_ERROR);
	CHECK_STR(r.error, "response body over 16 MiB (Content-Length "
	    "16777217)");
}

int
main(void)
{
	RUN(test_content_length);
	RUN(test_content_length_bad);
	RUN(test_chunked);
	RUN(test_chunk_size_bad);
	RUN(test_close_delimited);
	RUN(test_http10);
	RUN(test_status_line);
	RUN(test_header_bad);
	RUN(test_huge_header);
	RUN(test_body_limit);
	return (tap_done());
}
