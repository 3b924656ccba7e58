/*
 * The plain-http probe's HTTP/1.1 response parser (see http-parse.h).
 *
 * Why our own and not a library: measured with bench/probes (1,000
 * plain-http probes at 1 s against nginx, 2 CPUs shared with other
 * load), this client costs 57 to 60 us of opsd CPU per probe, about 21
 * to 24 us user and 35 us system (the loopback writes and reads). That
 * is over the 50 us a library would have had to stay under before any
 * library is added, and the system part is the same whoever parses;
 * libevent's evhttp client (a request object and header queues per run)
 * and libhttp-parser were not measured against it. The parser itself
 * is a small share of the user time. What the probe needs is small and
 * strict: one response, its framing, a few headers, clear errors.
 *
 * Strict where a lenient reading would hide a broken server (two
 * different Content-Lengths, Content-Length with Transfer-Encoding,
 * negative or non-numeric sizes, folded headers), lenient where every
 * client is (a bare LF ends a line, chunk extensions and trailers are
 * skipped).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http-parse.h"

#define CHUNK_LINE_MAX	4096

enum {
	ST_STATUS,
	ST_HEADERS,
	ST_BODY_LENGTH,
	ST_CHUNK_SIZE,
	ST_CHUNK_DATA,
	ST_CHUNK_CRLF,
	ST_TRAILER,
	ST_BODY_CLOSE,
	ST_DONE,
	ST_ERROR,
};

void
http_resp_init(struct http_resp *r)
{
	memset(r, 0, sizeof *r);
	r->content_length = -1;
}

const char *
http_parse_where(const struct http_resp *r)
{
	switch (r->state) {
	case ST_STATUS:
		return ("status line");
	case ST_HEADERS:
		return ("headers");
	case ST_BODY_LENGTH:
	case ST_BODY_CLOSE:
		return ("body");
	case ST_CHUNK_SIZE:
	case ST_CHUNK_DATA:
	case ST_CHUNK_CRLF:
		return ("chunked body");
	case ST_TRAILER:
		return ("trailer");
	case ST_DONE:
		return ("end");
	}
	return ("error");
}

/* A size for a message: "64 KiB", "16 MiB" or bytes. */
static void
fmt_size(uint64_t n, char *buf, size_t len)
{
	if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(n >> 20));
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(buf, len, "%llu KiB", (unsigned long long)(n >> 10));
	else
		snprintf(buf, len, "%llu bytes", (unsigned long long)n);
}

/*
 * Bytes from the wire for a reason: printable ASCII only (reasons go
 * into JSON and the journal, which want text), at most max of them.
 */
static const char *
quote(char *dst, size_t dlen, const char *s, size_t n)
{
	size_t	i, j = 0;

	for (i = 0; i < n && j + 4 < dlen; i++)
		dst[j++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (i < n && j + 4 <= dlen) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	dst[j] = '\0';
	return (dst);
}

static int
fail(struct http_resp *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct http_resp *r, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(r->error, sizeof r->error, fmt, ap);
	va_end(ap);
	r->state = ST_ERROR;
	return (HTTP_PARSE_ERROR);
}

static uint64_t
header_max(const struct http_resp *r)
{
	return (r->header_max ? r->header_max : HTTP_HEADER_MAX);
}

static uint64_t
body_max(const struct http_resp *r)
{
	return (r->body_max ? r->body_max : HTTP_BODY_MAX);
}

static int
fail_body_max(struct http_resp *r)
{
	char	sz[32];

	fmt_size(body_max(r), sz, sizeof sz);
	return (fail(r, "response body over %s", sz));
}

static int
is_tchar(unsigned char c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-.^_`|~",
	    c) != NULL));
}

static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* Does the comma-separated list v[0..n) hold token tok? */
static int
list_has(const char *v, size_t n, const char *tok)
{
	const char	*e, *item;
	size_t		 len, ilen, tlen = strlen(tok);

	for (;;) {
		e = memchr(v, ',', n);
		len = e ? (size_t)(e - v) : n;
		item = v;
		ilen = len;
		trim(&item, &ilen);
		if (ilen == tlen && strncasecmp(item, tok, tlen) == 0)
			return (1);
		if (e == NULL)
			return (0);
		n -= len + 1;
		v = e + 1;
	}
}

/* The last element of a comma-separated list, trimmed. */
static void
list_last(const char **v, size_t *n)
{
	const char	*e;

	while ((e = memchr(*v, ',', *n)) != NULL) {
		*n -= (size_t)(e + 1 - *v);
		*v = e + 1;
	}
	trim(v, n);
}

static int
parse_length(struct http_resp *r, const char *v, size_t n)
{
	const char	*e, *item;
	size_t		 len, i;
	int64_t		 x;
	char		 q[48];

	for (;;) {
		e = memchr(v, ',', n);
		len = e ? (size_t)(e - v) : n;
		item = v;
		trim(&item, &len);
		if (len == 0 || len > 18)
			goto bad;
		for (x = 0, i = 0; i < len; i++) {
			if (item[i] < '0' || item[i] > '9')
				goto bad;
			x = x * 10 + (item[i] - '0');
		}
		if (r->content_length >= 0 && r->content_length != x)
			return (fail(r, "malformed response: two different "
			    "Content-Lengths (%lld and %lld)",
			    (long long)r->content_length, (long long)x));
		r->content_length = x;
		if (e == NULL)
			return (0);
		n -= (size_t)(e + 1 - v);
		v = e + 1;
	}
bad:
	return (fail(r, "malformed response: Content-Length '%s'",
	    quote(q, sizeof q, item, len)));
}

static int
status_line(struct http_resp *r, const char *s, size_t n)
{
	char	q[80];

	if (n < 12 || memcmp(s, "HTTP/", 5) != 0 || s[5] < '0' ||
	    s[5] > '9' || s[6] != '.' || s[7] < '0' || s[7] > '9' ||
	    s[8] != ' ' || s[9] < '1' || s[9] > '9' || s[10] < '0' ||
	    s[10] > '9' || s[11] < '0' || s[11] > '9' ||
	    (n > 12 && s[12] != ' '))
		return (fail(r, "malformed response: status line '%s'",
		    quote(q, sizeof q, s, n)));
	if (s[5] != '1')
		return (fail(r, "unsupported response version HTTP/%c.%c",
		    s[5], s[7]));
	r->major = 1;
	r->minor = s[7] - '0';
	r->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	return (0);
}

static int
header_line(struct http_resp *r, const char *s, size_t n)
{
	const char	*colon, *v;
	size_t		 nlen, vlen, i;
	char		 q[80];

	if (s[0] == ' ' || s[0] == '\t')
		return (fail(r, "malformed response: a folded header line "
		    "'%s'", quote(q, sizeof q, s, n)));
	if ((colon = memchr(s, ':', n)) == NULL)
		return (fail(r, "malformed response: header line without a "
		    "colon '%s'", quote(q, sizeof q, s, n)));
	nlen = (size_t)(colon - s);
	for (i = 0; i < nlen; i++)
		if (!is_tchar((unsigned char)s[i]))
			break;
	if (nlen == 0 || i < nlen)
		return (fail(r, "malformed response: header name '%s'",
		    quote(q, sizeof q, s, nlen)));
	v = colon + 1;
	vlen = n - nlen - 1;
	trim(&v, &vlen);
	if (nlen == 14 && strncasecmp(s, "Content-Length", 14) == 0) {
		if (parse_length(r, v, vlen) < 0)
			return (-1);
	} else if (nlen == 17 && strncasecmp(s, "Transfer-Encoding", 17) ==
	    0) {
		const char	*last = v;
		size_t		 llen = vlen;

		r->te = 1;
		list_last(&last, &llen);
		r->chunked = llen == 7 && strncasecmp(last, "chunked", 7) == 0;
	} else if (nlen == 10 && strncasecmp(s, "Connection", 10) == 0) {
		if (list_has(v, vlen, "close"))
			r->conn_close = 1;
		if (list_has(v, vlen, "keep-alive"))
			r->conn_keep = 1;
	}
	if (r->status >= 200 && r->on_header != NULL)
		r->on_header(r->arg, s, nlen, v, vlen);
	return (0);
}

/* The empty line after the headers: how is the body framed? */
static int
headers_end(struct http_resp *r)
{
	char	sz[32];

	if (r->status < 200) {
		if (r->status == 101)
			return (fail(r, "unexpected 101 Switching Protocols"));
		/* 100 Continue, 103 Early Hints: the real one follows */
		r->content_length = -1;
		r->te = r->chunked = r->conn_close = r->conn_keep = 0;
		r->state = ST_STATUS;
		if (r->on_status != NULL)
			r->on_status(r->arg);
		return (0);
	}
	r->keep_alive = r->minor >= 1 ? !r->conn_close :
	    r->conn_keep && !r->conn_close;
	if (r->te && r->content_length >= 0)
		return (fail(r, "malformed response: both Content-Length and "
		    "Transfer-Encoding"));
	if (r->head || r->status == 204 || r->status == 304) {
		r->framing = HTTP_FRAME_NONE;
		r->state = ST_DONE;
	} else if (r->chunked) {
		r->framing = HTTP_FRAME_CHUNKED;
		r->state = ST_CHUNK_SIZE;
	} else if (r->te || r->content_length < 0) {
		/* a coding we do not know, or no length: up to the close */
		r->framing = HTTP_FRAME_CLOSE;
		r->keep_alive = 0;
		r->state = ST_BODY_CLOSE;
	} else if ((uint64_t)r->content_length > body_max(r)) {
		fmt_size(body_max(r), sz, sizeof sz);
		return (fail(r, "response body over %s (Content-Length %lld)",
		    sz, (long long)r->content_length));
	} else if (r->content_length == 0) {
		r->framing = HTTP_FRAME_NONE;
		r->state = ST_DONE;
	} else {
		r->framing = HTTP_FRAME_LENGTH;
		r->remain = (uint64_t)r->content_length;
		r->state = ST_BODY_LENGTH;
	}
	return (0);
}

static int
chunk_size(struct http_resp *r, const char *s, size_t n)
{
	uint64_t	 x = 0;
	size_t		 i, digits = 0;
	int		 d;
	char		 q[48];

	for (i = 0; i < n; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			break;
		if (x >> 56 != 0)
			return (fail(r, "malformed response: chunk size '%s' "
			    "too large", quote(q, sizeof q, s, n)));
		x = x << 4 | (uint64_t)d;
		digits++;
	}
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (digits == 0 || (i < n && s[i] != ';'))
		return (fail(r, "malformed response: chunk size '%s'",
		    quote(q, sizeof q, s, n)));
	/* what follows ';' are chunk extensions: nothing for us */
	if (x == 0) {
		r->state = ST_TRAILER;
		r->hdr_bytes = 0;
		return (0);
	}
	if (x > body_max(r) - r->body_bytes)
		return (fail_body_max(r));
	r->remain = x;
	r->state = ST_CHUNK_DATA;
	return (0);
}

static void
body(struct http_resp *r, const char *s, size_t n)
{
	r->body_bytes += n;
	if (r->on_body != NULL && n > 0)
		r->on_body(r->arg, s, n);
}

int
http_parse_response(struct http_resp *r, const char *buf, size_t len,
    size_t *used)
{
	const char	*nl, *line;
	size_t		 pos = 0, n, take, linelen;
	uint64_t	 limit;
	char		 sz[32];
	int		 rc = HTTP_PARSE_MORE;

	while (rc == HTTP_PARSE_MORE && r->state != ST_DONE &&
	    r->state != ST_ERROR) {
		n = len - pos;
		switch (r->state) {
		case ST_BODY_LENGTH:
		case ST_CHUNK_DATA:
			if (n == 0)
				goto out;
			take = r->remain < n ? (size_t)r->remain : n;
			body(r, buf + pos, take);
			pos += take;
			r->remain -= take;
			if (r->remain == 0)
				r->state = r->state == ST_BODY_LENGTH ?
				    ST_DONE : ST_CHUNK_CRLF;
			continue;
		case ST_BODY_CLOSE:
			if (n == 0)
				goto out;
			if (n > body_max(r) - r->body_bytes)
				rc = fail_body_max(r);
			else {
				body(r, buf + pos, n);
				pos += n;
			}
			continue;
		case ST_CHUNK_CRLF:
			if (n == 0 || (buf[pos] == '\r' && n < 2))
				goto out;
			if (buf[pos] == '\n')
				pos++;
			else if (buf[pos] == '\r' && buf[pos + 1] == '\n')
				pos += 2;
			else {
				rc = fail(r, "malformed response: no CRLF "
				    "after a chunk");
				continue;
			}
			r->state = ST_CHUNK_SIZE;
			continue;
		}

		/* the line states */
		limit = r->state == ST_CHUNK_SIZE ? CHUNK_LINE_MAX :
		    header_max(r);
		nl = memchr(buf + pos, '\n', n);
		linelen = nl ? (size_t)(nl - (buf + pos)) + 1 : n;
		if ((r->state == ST_CHUNK_SIZE ? 0 : r->hdr_bytes) + linelen >
		    limit) {
			fmt_size(limit, sz, sizeof sz);
			if (r->state == ST_CHUNK_SIZE)
				rc = fail(r, "malformed response: chunk size "
				    "line over %s", sz);
			else
				rc = fail(r, "response %s over %s",
				    r->state == ST_TRAILER ? "trailer" :
				    "header", sz);
			continue;
		}
		if (nl == NULL)
			goto out;
		line = buf + pos;
		pos += linelen;
		if (r->state != ST_CHUNK_SIZE)
			r->hdr_bytes += linelen;
		linelen--;
		if (linelen > 0 && line[linelen - 1] == '\r')
			linelen--;
		switch (r->state) {
		case ST_STATUS:
			if (status_line(r, line, linelen) == 0)
				r->state = ST_HEADERS;
			break;
		case ST_HEADERS:
			if (linelen == 0)
				headers_end(r);
			else
				header_line(r, line, linelen);
			break;
		case ST_CHUNK_SIZE:
			chunk_size(r, line, linelen);
			break;
		case ST_TRAILER:
			if (linelen == 0)
				r->state = ST_DONE;
			break;
		}
		if (r->state == ST_ERROR)
			rc = HTTP_PARSE_ERROR;
	}
out:
	r->nread += pos;
	*used = pos;
	if (r->state == ST_ERROR)
		return (HTTP_PARSE_ERROR);
	return (r->state == ST_DONE ? HTTP_PARSE_DONE : HTTP_PARSE_MORE);
}

int
http_parse_eof(struct http_resp *r, size_t pending)
{
	uint64_t	 got = r->nread + pending;
	const char	*where;

	if (r->state == ST_DONE || (r->state == ST_BODY_CLOSE &&
	    pending == 0))
		return (HTTP_PARSE_DONE);
	if (r->state == ST_ERROR)
		return (HTTP_PARSE_ERROR);
	if (got == 0)
		return (fail(r, "connection closed before the response began"));
	/* where: before fail() sets the state to ST_ERROR */
	where = http_parse_where(r);
	return (fail(r, "connection closed after %llu bytes of the response "
	    "(in the %s)", (unsigned long long)got, where));
}
