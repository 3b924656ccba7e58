/*
 * Newline framing with a hard limit per line. The reader never holds more
 * than max bytes of one line: past that it reports the line as too long
 * once and drops bytes until the next newline, which keeps the stream in
 * step so a client that sent one oversized request can go on.
 */
#include <stdlib.h>
#include <string.h>

#include "opsd-proto.h"

void
frame_init(struct frame_reader *fr, size_t max)
{
	memset(fr, 0, sizeof *fr);
	fr->max = max;
}

void
frame_free(struct frame_reader *fr)
{
	free(fr->buf);
	memset(fr, 0, sizeof *fr);
}

static int
frame_append(struct frame_reader *fr, const char *data, size_t len)
{
	size_t	 ncap;
	char	*nbuf;

	if (fr->len + len <= fr->cap) {
		memcpy(fr->buf + fr->len, data, len);
		fr->len += len;
		return (0);
	}
	ncap = fr->cap ? fr->cap : 256;
	while (ncap < fr->len + len)
		ncap *= 2;
	if (ncap > fr->max)
		ncap = fr->max;
	if ((nbuf = realloc(fr->buf, ncap)) == NULL)
		return (-1);
	fr->buf = nbuf;
	fr->cap = ncap;
	memcpy(fr->buf + fr->len, data, len);
	fr->len += len;
	return (0);
}

int
frame_feed(struct frame_reader *fr, const char *data, size_t len,
    frame_cb cb, void *arg, size_t *used)
{
	const char	*start = data, *nl;
	size_t		 n;
	int		 r = 0;

	*used = len;
	while (len > 0) {
		nl = memchr(data, '\n', len);
		n = nl != NULL ? (size_t)(nl - data) : len;

		if (fr->skipping) {
			/* rest of an oversized line: drop it */
		} else if (fr->len + n > fr->max) {
			fr->len = 0;
			fr->skipping = 1;
			r = cb(arg, FRAME_TOO_LONG, NULL, 0);
		} else if (nl != NULL && fr->len == 0) {
			/* whole line in this chunk: no copy */
			r = cb(arg, FRAME_LINE, data, n);
		} else {
			if (frame_append(fr, data, n) != 0)
				abort();	/* out of memory */
			if (nl != NULL) {
				n = fr->len;
				fr->len = 0;
				r = cb(arg, FRAME_LINE, fr->buf, n);
				n = (size_t)(nl - data);
			}
		}
		if (nl == NULL)
			return (r);	/* all of data consumed */
		fr->skipping = 0;
		data = nl + 1;
		len -= n + 1;
		if (r != 0) {
			*used = (size_t)(data - start);
			return (r);
		}
	}
	return (0);
}
