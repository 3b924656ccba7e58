/*
 * libFuzzer target for the plain-http probe's response parser
 * (daemon/probe/http-parse.c). The first two bytes of the input pick the
 * request (HEAD or not) and a seed for the sizes of the pieces the rest
 * is fed in, as reads would cut it. Besides crashes it checks what the
 * caller relies on: the parser never consumes more than it was given,
 * consumes nothing more once done or failed, leaves only an incomplete
 * line unconsumed (never more than the header limit), and every error
 * has a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
on_header(void *arg, const char *n, size_t nl, const char *v, size_t vl)
{
	/* touch every byte: ASan sees a read out of bounds */
	volatile char	 c = 0;
	size_t		 i;

	(void)arg;
	if (nl == 0)
		abort();
	for (i = 0; i < nl; i++)
		c ^= n[i];
	for (i = 0; i < vl; i++)
		c ^= v[i];
}

static void
on_body(void *arg, const char *d, size_t n)
{
	uint64_t	*total = arg;
	volatile char	 c = 0;

	if (n == 0)
		abort();
	c = d[0];
	c = d[n - 1];
	(void)c;
	*total += n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_resp	 r;
	uint64_t		 body = 0;
	uint32_t		 seed;
	size_t			 off = 2, have = 0, n, used;
	char			*buf;
	int			 rc = HTTP_PARSE_MORE, prev;

	if (size < 2)
		return (0);
	http_resp_init(&r);
	r.head = data[0] & 1;
	if (data[0] & 2)
		r.header_max = 256;
	if (data[0] & 4)
		r.body_max = 64;
	r.on_header = on_header;
	r.on_body = on_body;
	r.arg = &body;
	seed = data[1] | 1;
	buf = malloc(size);
	while (off < size) {
		seed = seed * 1103515245 + 12345;
		n = 1 + (seed >> 16) % 97;
		if (n > size - off)
			n = size - off;
		memcpy(buf + have, data + off, n);
		have += n;
		off += n;
		prev = rc;
		rc = http_parse_response(&r, buf, have, &used);
		if (used > have)
			abort();
		if (prev != HTTP_PARSE_MORE && used != 0)
			abort();
		memmove(buf, buf + used, have - used);
		have -= used;
		if (rc == HTTP_PARSE_ERROR && r.error[0] == '\0')
			abort();
		if (rc == HTTP_PARSE_MORE && have > HTTP_HEADER_MAX + 4096)
			abort();
		if (rc != HTTP_PARSE_MORE)
			break;
	}
	if (rc == HTTP_PARSE_MORE) {
		rc = http_parse_eof(&r, have);
		if (rc == HTTP_PARSE_ERROR && r.error[0] == '\0')
			abort();
		if (rc == HTTP_PARSE_MORE)
			abort();
	}
	if (rc == HTTP_PARSE_DONE && (r.status < 100 || r.status > 999 ||
	    body != r.body_bytes))
		abort();
	if (body > (r.body_max ? r.body_max : HTTP_BODY_MAX))
		abort();
	free(buf);
	return (0);
}
