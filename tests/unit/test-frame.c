/*
 * Line framing (proto/frame.c): how bytes arriving in arbitrary chunks
 * become lines, the per-line limit, and the contract of the used
 * out-parameter when a callback asks the reader to stop.
 */
#include <stdlib.h>
#include <string.h>

#include "jsonrpc.h"
#include "opsd-proto.h"
#include "tap.h"

#define MAXREC	64

struct rec {
	enum frame_kind	 kind[MAXREC];
	char		*line[MAXREC];	/* NUL-terminated copies */
	size_t		 len[MAXREC];
	int		 n;
	int		 stop_at;	/* return stop_value on this record */
	int		 stop_value;
};

static void
rec_init(struct rec *r)
{
	memset(r, 0, sizeof *r);
	r->stop_at = -1;
}

static void
rec_free(struct rec *r)
{
	int	i;

	for (i = 0; i < r->n; i++)
		free(r->line[i]);
	rec_init(r);
}

static int
rec_cb(void *arg, enum frame_kind kind, const char *line, size_t len)
{
	struct rec	*r = arg;
	int		 i;

	if (r->n == MAXREC)
		return (-100);
	i = r->n++;
	r->kind[i] = kind;
	r->len[i] = len;
	r->line[i] = malloc(len + 1);
	if (len > 0)
		memcpy(r->line[i], line, len);
	r->line[i][len] = '\0';
	if (kind == FRAME_TOO_LONG && line != NULL)
		r->len[i] = (size_t)-1;		/* flagged below */
	return (i == r->stop_at ? r->stop_value : 0);
}

/* Feeds s in chunks of step bytes; returns the last non-zero result. */
static int
feed_chunks(struct frame_reader *fr, const char *s, size_t len, size_t step,
    struct rec *r)
{
	size_t	off, n, used;
	int	rv, last = 0;

	for (off = 0; off < len; off += n) {
		n = len - off < step ? len - off : step;
		rv = frame_feed(fr, s + off, n, rec_cb, r, &used);
		if (rv != 0)
			last = rv;
		if (rv == 0 && used != n)
			tap_diag("feed returned 0 but used %zu of %zu", used, n);
	}
	return (last);
}

static void
test_one_line(void)
{
	struct frame_reader	fr;
	struct rec		r;
	size_t			used = 99;

	rec_init(&r);
	frame_init(&fr, 64);
	CHECK_INT(frame_feed(&fr, "hello\n", 6, rec_cb, &r, &used), 0);
	CHECK_UINT(used, 6);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.kind[0], FRAME_LINE);
	CHECK_STR(r.line[0], "hello");
	CHECK_UINT(r.len[0], 5);
	CHECK_UINT(fr.len, 0);
	frame_free(&fr);
	rec_free(&r);
}

static void
test_no_newline_yet(void)
{
	struct frame_reader	fr;
	struct rec		r;
	size_t			used = 99;

	rec_init(&r);
	frame_init(&fr, 64);
	CHECK_INT(frame_feed(&fr, "partial", 7, rec_cb, &r, &used), 0);
	CHECK_UINT(used, 7);
	CHECK_INT(r.n, 0);
	CHECK_INT(frame_feed(&fr, "", 0, rec_cb, &r, &used), 0);
	CHECK_UINT(used, 0);
	CHECK_INT(r.n, 0);
	CHECK_INT(frame_feed(&fr, " line\n", 6, rec_cb, &r, &used), 0);
	CHECK_INT(r.n, 1);
	CHECK_STR(r.line[0], "partial line");
	frame_free(&fr);
	rec_free(&r);
}

static void
test_split_every_byte(void)
{
	static const char	 in[] = "{\"jsonrpc\":\"2.0\"}\nsecond line\n";
	struct frame_reader	 fr;
	struct rec		 r;

	rec_init(&r);
	frame_init(&fr, 64);
	CHECK_INT(feed_chunks(&fr, in, strlen(in), 1, &r), 0);
	CHECK_INT(r.n, 2);
	CHECK_STR(r.line[0], "{\"jsonrpc\":\"2.0\"}");
	CHECK_STR(r.line[1], "second line");
	frame_free(&fr);
	rec_free(&r);
}

static void
test_split_at_every_offset(void)
{
	static const char	 in[] = "alpha\nbeta\ngamma\n";
	struct frame_reader	 fr;
	struct rec		 r;
	size_t			 cut, used;
	int			 bad = 0;

	for (cut = 0; cut <= strlen(in); cut++) {
		rec_init(&r);
		frame_init(&fr, 64);
		frame_feed(&fr, in, cut, rec_cb, &r, &used);
		frame_feed(&fr, in + cut, strlen(in) - cut, rec_cb, &r, &used);
		if (r.n != 3 || strcmp(r.line[0], "alpha") != 0 ||
		    strcmp(r.line[1], "beta") != 0 ||
		    strcmp(r.line[2], "gamma") != 0) {
			tap_diag("split at %zu: %d lines", cut, r.n);
			bad++;
		}
		frame_free(&fr);
		rec_free(&r);
	}
	CHECK_INT(bad, 0);
}

static void
test_many_lines_per_chunk(void)
{
	struct frame_reader	 fr;
	struct rec		 r;
	char			 in[512], want[16];
	size_t			 len = 0, used;
	int			 i;

	for (i = 0; i < 40; i++)
		len += (size_t)snprintf(in + len, sizeof in - len, "l%d\n", i);
	rec_init(&r);
	frame_init(&fr, 64);
	CHECK_INT(frame_feed(&fr, in, len, rec_cb, &r, &used), 0);
	CHECK_UINT(used, len);
	CHECK_INT(r.n, 40);
	for (i = 0; i < r.n; i++) {
		snprintf(want, sizeof want, "l%d", i);
		CHECK_STR(r.line[i], want);
	}
	frame_free(&fr);
	rec_free(&r);
}

static void
test_tail_then_lines(void)
{
	struct frame_reader	fr;
	struct rec		r;
	size_t			used;

	/* a buffered partial line followed by a chunk holding several */
	rec_init(&r);
	frame_init(&fr, 64);
	frame_feed(&fr, "a\nbc", 4, rec_cb, &r, &used);
	CHECK_INT(r.n, 1);
	frame_feed(&fr, "d\ne\nf", 5, rec_cb, &r, &used);
	CHECK_INT(r.n, 3);
	CHECK_STR(r.line[0], "a");
	CHECK_STR(r.line[1], "bcd");
	CHECK_STR(r.line[2], "e");
	CHECK_UINT(fr.len, 1);
	frame_free(&fr);
	rec_free(&r);
}

static void
test_long_line_grows_buffer(void)
{
	struct frame_reader	 fr;
	struct rec		 r;
	char			*in;
	size_t			 i, n = 10000;

	in = malloc(n + 1);
	for (i = 0; i < n; i++)
		in[i] = (char)('a' + i % 26);
	in[n] = '\n';
	rec_init(&r);
	frame_init(&fr, n);
	CHECK_INT(feed_chunks(&fr, in, n + 1, 7, &r), 0);
	CHECK_INT(r.n, 1);
	CHECK_UINT(r.len[0], n);
	CHECK(r.n == 1 && memcmp(r.line[0], in, n) == 0);
	frame_free(&fr);
	rec_free(&r);
	free(in);
}

static void
test_empty_lines(void)
{
	struct frame_reader	fr;
	struct rec		r;
	size_t			used;

	rec_init(&r);
	frame_init(&fr, 64);
	CHECK_INT(frame_feed(&fr, "\n\nx\n\n", 5, rec_cb, &r, &used), 0);
	CHECK_INT(r.n, 4);
	CHECK_INT(r.kind[0], FRAME_LINE);
	CHECK_UINT(r.len[0], 0);
	CHECK_UINT(r.len[1], 0);
	CHECK_STR(r.line[2], "x");
	CHECK_UINT(r.len[3], 0);
	frame_free(&fr);
	rec_free(&r);
}

static void
test_crlf(void)
{
	struct frame_reader	 fr;
	struct rec		 r;
	json_t			*msg;
	char			 err[256];
	const char		*in = "{\"jsonrpc\":\"2.0\",\"method\":\"m\"}\r\n"
	    "two\r\n";

	/* framing splits on '\n' only; the '\r' stays with the line */
	rec_init(&r);
	frame_init(&fr, 64);
	CHECK_INT(feed_chunks(&fr, in, strlen(in), 31, &r), 0);
	CHECK_INT(r.n, 2);
	CHECK_STR(r.line[1], "two\r");
	/* and the JSON decoder takes the '\r' as trailing whitespace */
	msg = jsonrpc_load(r.line[0], r.len[0], err, sizeof err);
	CHECK(msg != NULL);
	CHECK_STR(json_string_value(json_object_get(msg, "method")), "m");
	json_decref(msg);
	frame_free(&fr);
	rec_free(&r);
}

static char *
make_line(size_t n)
{
	char	*s;

	s = malloc(n + 1);
	memset(s, 'x', n);
	s[0] = '"';
	s[n - 1] = '"';
	s[n] = '\n';
	return (s);
}

static void
test_limit_exact(void)
{
	struct frame_reader	 fr;
	struct rec		 r;
	char			*in;
	size_t			 used, max = OPSD_MAX_MESSAGE;

	in = make_line(max);
	rec_init(&r);
	frame_init(&fr, max);
	CHECK_INT(frame_feed(&fr, in, max + 1, rec_cb, &r, &used), 0);
	CHECK_UINT(used, max + 1);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.kind[0], FRAME_LINE);
	CHECK_UINT(r.len[0], max);
	frame_free(&fr);
	rec_free(&r);

	/* the same line in 4 KiB reads goes through the buffer */
	rec_init(&r);
	frame_init(&fr, max);
	CHECK_INT(feed_chunks(&fr, in, max + 1, 4096, &r), 0);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.kind[0], FRAME_LINE);
	CHECK_UINT(r.len[0], max);
	CHECK(r.n == 1 && memcmp(r.line[0], in, max) == 0);
	CHECK(fr.cap <= max);
	frame_free(&fr);
	rec_free(&r);

	/* the newline alone in the next read */
	rec_init(&r);
	frame_init(&fr, max);
	frame_feed(&fr, in, max, rec_cb, &r, &used);
	CHECK_INT(r.n, 0);
	frame_feed(&fr, "\n", 1, rec_cb, &r, &used);
	CHECK_INT(r.n, 1);
	CHECK_UINT(r.len[0], max);
	frame_free(&fr);
	rec_free(&r);
	free(in);
}

static void
check_too_long_then_ok(struct rec *r)
{
	CHECK_INT(r->n, 2);
	CHECK_INT(r->kind[0], FRAME_TOO_LONG);
	CHECK_UINT(r->len[0], 0);
	CHECK_INT(r->kind[1], FRAME_LINE);
	CHECK_STR(r->line[1], "{\"next\":1}");
}

static void
test_limit_plus_one(void)
{
	struct frame_reader	 fr;
	struct rec		 r;
	char			*in;
	size_t			 max = OPSD_MAX_MESSAGE, len, used;
	static const char	 next[] = "{\"next\":1}\n";
	size_t			 steps[] = { max + 100, 4096, 65536, max, 1000003 };
	size_t			 i;

	len = max + 1 + 1 + strlen(next);
	in = malloc(len);
	memset(in, 'y', max + 1);
	in[max + 1] = '\n';
	memcpy(in + max + 2, next, strlen(next));

	for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		rec_init(&r);
		frame_init(&fr, max);
		feed_chunks(&fr, in, len, steps[i], &r);
		if (r.n != 2)
			tap_diag("chunks of %zu bytes", steps[i]);
		check_too_long_then_ok(&r);
		CHECK(fr.cap <= max);
		frame_free(&fr);
		rec_free(&r);
	}

	/* reported once even when the line goes on for several reads */
	rec_init(&r);
	frame_init(&fr, 16);
	for (i = 0; i < 10; i++)
		frame_feed(&fr, "0123456789", 10, rec_cb, &r, &used);
	frame_feed(&fr, "\n{\"next\":1}\n", 12, rec_cb, &r, &used);
	check_too_long_then_ok(&r);
	frame_free(&fr);
	rec_free(&r);
	free(in);
}

static void
test_used_on_stop(void)
{
	struct frame_reader	 fr;
	struct rec		 r;
	size_t			 used = 0;
	const char		*in = "a\nbb\nccc\n";

	/* stop on the second line: used covers "a\nbb\n" */
	rec_init(&r);
	r.stop_at = 1;
	r.stop_value = 7;
	frame_init(&fr, 64);
	CHECK_INT(frame_feed(&fr, in, strlen(in), rec_cb, &r, &used), 7);
	CHECK_UINT(used, 5);
	CHECK_INT(r.n, 2);
	/* the caller feeds the rest later */
	r.stop_at = -1;
	CHECK_INT(frame_feed(&fr, in + used, strlen(in) - used, rec_cb, &r,
	    &used), 0);
	CHECK_INT(r.n, 3);
	CHECK_STR(r.line[2], "ccc");
	frame_free(&fr);
	rec_free(&r);

	/* stop on a line completed from the buffer */
	rec_init(&r);
	r.stop_at = 0;
	r.stop_value = 1;
	frame_init(&fr, 64);
	frame_feed(&fr, "ab", 2, rec_cb, &r, &used);
	CHECK_INT(frame_feed(&fr, "c\nd\n", 4, rec_cb, &r, &used), 1);
	CHECK_UINT(used, 2);
	CHECK_STR(r.line[0], "abc");
	CHECK_UINT(fr.len, 0);
	frame_free(&fr);
	rec_free(&r);

	/* stop on the last line: everything used */
	rec_init(&r);
	r.stop_at = 2;
	r.stop_value = -3;
	frame_init(&fr, 64);
	CHECK_INT(frame_feed(&fr, in, strlen(in), rec_cb, &r, &used), -3);
	CHECK_UINT(used, strlen(in));
	frame_free(&fr);
	rec_free(&r);

	/* stop on an empty line */
	rec_init(&r);
	r.stop_at = 0;
	r.stop_value = 1;
	frame_init(&fr, 64);
	CHECK_INT(frame_feed(&fr, "\nx\n", 3, rec_cb, &r, &used), 1);
	CHECK_UINT(used, 1);
	frame_free(&fr);
	rec_free(&r);
}

static void
test_used_on_stop_too_long(void)
{
	struct frame_reader	fr;
	struct rec		r;
	size_t			used = 0;

	/* the oversized line ends in this chunk: used goes past its '\n' */
	rec_init(&r);
	r.stop_at = 0;
	r.stop_value = 5;
	frame_init(&fr, 4);
	CHECK_INT(frame_feed(&fr, "toolong\nok\n", 11, rec_cb, &r, &used), 5);
	CHECK_UINT(used, 8);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.kind[0], FRAME_TOO_LONG);
	frame_free(&fr);
	rec_free(&r);

	/*
	 * The oversized line goes on past this chunk. Every byte is used
	 * (skipped), but the callback's value must still come back: the
	 * header promises "the first non-zero value a callback returned".
	 */
	rec_init(&r);
	r.stop_at = 0;
	r.stop_value = 5;
	frame_init(&fr, 4);
	CHECK_INT(frame_feed(&fr, "toolong", 7, rec_cb, &r, &used), 5);
	CHECK_UINT(used, 7);
	CHECK_INT(r.n, 1);
	frame_free(&fr);
	rec_free(&r);
}

static void
test_reuse_after_free(void)
{
	struct frame_reader	fr;
	struct rec		r;
	size_t			used;

	rec_init(&r);
	frame_init(&fr, 64);
	frame_feed(&fr, "stale partial", 13, rec_cb, &r, &used);
	frame_free(&fr);
	CHECK(fr.buf == NULL);
	CHECK_UINT(fr.len, 0);
	frame_init(&fr, 64);
	frame_feed(&fr, "fresh\n", 6, rec_cb, &r, &used);
	CHECK_INT(r.n, 1);
	CHECK_STR(r.line[0], "fresh");
	frame_free(&fr);
	rec_free(&r);
}

int
main(void)
{
	RUN(test_one_line);
	RUN(test_no_newline_yet);
	RUN(test_split_every_byte);
	RUN(test_split_at_every_offset);
	RUN(test_many_lines_per_chunk);
	RUN(test_tail_then_lines);
	RUN(test_long_line_grows_buffer);
	RUN(test_empty_lines);
	RUN(test_crlf);
	RUN(test_limit_exact);
	RUN(test_limit_plus_one);
	RUN(test_used_on_stop);
	RUN(test_used_on_stop_too_long);
	RUN(test_reuse_after_free);
	return (tap_done());
}
