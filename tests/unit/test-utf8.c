/*
 * The UTF-8 helpers (daemon/core/util.c) that text from outside passes
 * through before it reaches an event, a JSON document or a mail: cuts
 * that must not split a character, and the sequences RFC 3629 forbids
 * (overlong forms, surrogates, code points past U+10FFFF, lone
 * continuation bytes, NUL), each of which becomes one U+FFFD.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tap.h"
#include "util.h"

#define FFFD	"\xef\xbf\xbd"

/* sanitize(s) with a buffer large enough; static, reused */
static const char *
clean(const char *s, size_t len)
{
	static char	buf[256];

	util_utf8_sanitize(buf, sizeof buf, s, len);
	return (buf);
}

#define CLEAN(lit)	clean(lit, sizeof lit - 1)
#define VALID(lit)	util_utf8_valid(lit, sizeof lit - 1)

static void
test_valid_text(void)
{
	CHECK_INT(VALID(""), 1);
	CHECK_INT(VALID("plain ascii\r\n\t"), 1);
	CHECK_INT(VALID("\xc3\xa9"), 1);			/* é */
	CHECK_INT(VALID("\xe2\x82\xac"), 1);			/* € */
	CHECK_INT(VALID("\xf0\x9f\x98\x80"), 1);		/* 😀 */
	CHECK_INT(VALID("\xf4\x8f\xbf\xbf"), 1);		/* U+10FFFF */
	CHECK_INT(VALID("\xed\x9f\xbf"), 1);			/* U+D7FF */
	CHECK_INT(VALID("\xee\x80\x80"), 1);			/* U+E000 */
	CHECK_STR(CLEAN("d\xc3\xa9j\xc3\xa0 \xe2\x82\xac\xf0\x9f\x98\x80"),
	    "d\xc3\xa9j\xc3\xa0 \xe2\x82\xac\xf0\x9f\x98\x80");
}

static void
test_cut_inside_characters(void)
{
	const char	*s = "ab\xc3\xa9" "\xe2\x82\xac" "\xf0\x9f\x98\x80";
	size_t		 len = strlen(s);	/* 2 + 2 + 3 + 4 = 11 */

	CHECK_UINT(util_utf8_cut(s, len, 20), len);
	CHECK_UINT(util_utf8_cut(s, len, 11), 11);
	CHECK_UINT(util_utf8_cut(s, len, 2), 2);
	CHECK_UINT(util_utf8_cut(s, len, 3), 2);	/* inside é */
	CHECK_UINT(util_utf8_cut(s, len, 4), 4);
	CHECK_UINT(util_utf8_cut(s, len, 5), 4);	/* inside € */
	CHECK_UINT(util_utf8_cut(s, len, 6), 4);
	CHECK_UINT(util_utf8_cut(s, len, 7), 7);
	CHECK_UINT(util_utf8_cut(s, len, 8), 7);	/* inside 😀 */
	CHECK_UINT(util_utf8_cut(s, len, 9), 7);
	CHECK_UINT(util_utf8_cut(s, len, 10), 7);
	CHECK_UINT(util_utf8_cut(s, len, 0), 0);
	/* invalid bytes are cut where asked: they are not a character */
	CHECK_UINT(util_utf8_cut("a\x80\x80\x80\x80", 5, 3), 3);
	CHECK_UINT(util_utf8_cut("a\xc3z", 3, 2), 2);
}

static void
test_sanitize_cuts_to_fit(void)
{
	char	buf[8];
	size_t	n;

	/* 😀 needs 4 bytes, 3 are left after "abc": none of it */
	n = util_utf8_sanitize(buf, 7, "abc\xf0\x9f\x98\x80", 7);
	CHECK_UINT(n, 3);
	CHECK_STR(buf, "abc");
	n = util_utf8_sanitize(buf, sizeof buf, "abc\xf0\x9f\x98\x80", 7);
	CHECK_UINT(n, 7);
	CHECK_STR(buf, "abc\xf0\x9f\x98\x80");
	/* a replacement that does not fit is left out, not split */
	n = util_utf8_sanitize(buf, 4, "ab\xff", 3);
	CHECK_UINT(n, 2);
	CHECK_STR(buf, "ab");
	n = util_utf8_sanitize(buf, 1, "abc", 3);
	CHECK_UINT(n, 0);
	CHECK_STR(buf, "");
	/* an input cut inside a character: its start becomes one U+FFFD */
	CHECK_STR(clean("x\xe2\x82", 3), "x" FFFD);
	CHECK_STR(clean("x\xf0\x9f\x98", 4), "x" FFFD);
	CHECK_STR(clean("x\xc3", 2), "x" FFFD);
}

static void
test_overlong(void)
{
	CHECK_INT(VALID("\xc0\xaf"), 0);			/* '/' */
	CHECK_INT(VALID("\xc1\xbf"), 0);
	CHECK_INT(VALID("\xe0\x80\xaf"), 0);
	CHECK_INT(VALID("\xe0\x9f\xbf"), 0);
	CHECK_INT(VALID("\xf0\x80\x80\xaf"), 0);
	CHECK_INT(VALID("\xf0\x8f\xbf\xbf"), 0);
	CHECK_INT(VALID("\xc0\x80"), 0);			/* "modified" NUL */
	/* C0 and C1 can never start anything: one U+FFFD per byte */
	CHECK_STR(CLEAN("a\xc0\xafz"), "a" FFFD FFFD "z");
	/* E0 80: E0 is a start, 80 is not its second byte */
	CHECK_STR(CLEAN("a\xe0\x80\xafz"), "a" FFFD FFFD FFFD "z");
	CHECK_INT(util_utf8_valid(clean("\xf0\x80\x80\xaf", 4),
	    strlen(clean("\xf0\x80\x80\xaf", 4))), 1);
}

static void
test_surrogates_and_range(void)
{
	CHECK_INT(VALID("\xed\xa0\x80"), 0);			/* U+D800 */
	CHECK_INT(VALID("\xed\xbf\xbf"), 0);			/* U+DFFF */
	CHECK_INT(VALID("\xed\xa0\xbd\xed\xb8\x80"), 0);	/* CESU pair */
	CHECK_INT(VALID("\xf4\x90\x80\x80"), 0);		/* U+110000 */
	CHECK_INT(VALID("\xf5\x80\x80\x80"), 0);
	CHECK_INT(VALID("\xff"), 0);
	CHECK_INT(VALID("\xfe"), 0);
	CHECK_STR(CLEAN("<\xed\xa0\x80>"), "<" FFFD FFFD FFFD ">");
	CHECK_STR(CLEAN("<\xf4\x90\x80\x80>"), "<" FFFD FFFD FFFD FFFD ">");
	CHECK_STR(CLEAN("<\xff\xfe>"), "<" FFFD FFFD ">");
}

static void
test_lone_continuation(void)
{
	CHECK_INT(VALID("\x80"), 0);
	CHECK_INT(VALID("a\xbf"), 0);
	CHECK_INT(VALID("\xc3\xa9\xa9"), 0);
	CHECK_STR(CLEAN("\x80\x81z"), FFFD FFFD "z");
	CHECK_STR(CLEAN("\xc3\xa9\xa9"), "\xc3\xa9" FFFD);
	/* a start followed by a new start: the first is cut short */
	CHECK_STR(CLEAN("\xe2\x82\xc3\xa9"), FFFD "\xc3\xa9");
	CHECK_STR(CLEAN("\xe2" "A"), FFFD "A");
}

static void
test_nul(void)
{
	CHECK_INT(util_utf8_valid("a\0b", 3), 0);
	CHECK_STR(clean("a\0b", 3), "a" FFFD "b");
	CHECK_UINT(strlen(clean("\0\0", 2)), 6);
}

static void
test_dup(void)
{
	char	*s;

	s = util_utf8_dup("\xff\xff\xff", 3);
	CHECK_STR(s, FFFD FFFD FFFD);
	free(s);
	s = util_utf8_dup("", 0);
	CHECK_STR(s, "");
	free(s);
	s = util_utf8_dup("ok \xc3\xa9", 5);
	CHECK_STR(s, "ok \xc3\xa9");
	free(s);
}

/* util_jstring(): the JSON string of any text, as jansson takes it. */
static void
test_jstring(void)
{
	json_t	*j;

	j = util_jstring("HTTP 200 \xc3\xa9");
	CHECK(json_is_string(j) &&
	    strcmp(json_string_value(j), "HTTP 200 \xc3\xa9") == 0);
	json_decref(j);
	/* jansson refuses this one: made valid, the readable part kept */
	j = util_jstring("bad \xff byte");
	CHECK(json_is_string(j));
	CHECK(j != NULL && strncmp(json_string_value(j), "bad ", 4) == 0 &&
	    strstr(json_string_value(j), "byte") != NULL);
	json_decref(j);
	j = util_jstring(NULL);
	CHECK(json_is_string(j) && json_string_length(j) == 0);
	json_decref(j);
}

int
main(void)
{
	RUN(test_valid_text);
	RUN(test_cut_inside_characters);
	RUN(test_sanitize_cuts_to_fit);
	RUN(test_overlong);
	RUN(test_surrogates_and_range);
	RUN(test_lone_continuation);
	RUN(test_nul);
	RUN(test_dup);
	RUN(test_jstring);
	return (tap_done());
}
