/*
 * Small helpers every file uses: the aborting allocators (call sites carry
 * no NULL checks: running out of memory is not an error opsd can handle),
 * clocks and string bits.
 */
#ifndef OPSD_UTIL_H
#define OPSD_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define nitems(a)	(sizeof (a) / sizeof (a)[0])

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	 xvasprintf(char **, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
void	 fatalx(const char *, ...) __attribute__((format(printf, 1, 2),
	    noreturn));

/* len bytes for jitter and names (getrandom); not for secrets */
void	 util_random(void *, size_t);
uint64_t now_usec(void);	/* CLOCK_MONOTONIC */
uint64_t now_realtime_usec(void);
/* UTC "2026-01-02T03:04:05Z" of t (seconds); "-" for t <= 0 (never). */
void	 util_iso_time(int64_t t, char *buf, size_t len);

/*
 * UTF-8 for text from outside (command output, server replies, banners):
 * RFC 3629 only, so no overlong forms, no surrogates, nothing past
 * U+10FFFF. jansson refuses anything else, and a cut in the middle of a
 * character makes an otherwise good string invalid.
 */
/* Whether s[0..len) is valid UTF-8 with no NUL byte. */
int	 util_utf8_valid(const char *s, size_t len);
/*
 * How many bytes of s[0..len) to keep for at most max bytes without
 * ending inside a character.
 */
size_t	 util_utf8_cut(const char *s, size_t len, size_t max);
/*
 * Copies s[0..len) into dst (size bytes, always NUL-terminated when size
 * > 0), each invalid sequence and each NUL byte as U+FFFD, cut at a
 * character boundary when it does not fit. Returns the length written.
 */
size_t	 util_utf8_sanitize(char *dst, size_t size, const char *s,
	    size_t len);
/* The same into a new string (xmalloc). */
char	*util_utf8_dup(const char *s, size_t len);
/* A JSON string of text from outside, made UTF-8 if it is not; never NULL. */
struct json_t	*util_jstring(const char *);

/* "> 0", ">= 10", "= 5", "!= 0", "< 3", "<= 3", "any": 1 match, 0 not */
int	 util_expect_match(const char *expect, const char *value);
int	 util_expect_valid(const char *expect);

#endif
