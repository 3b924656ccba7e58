#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>

#include <jansson.h>

#include "util.h"

void *
xmalloc(size_t n)
{
	void	*p;

	if (n == 0)
		n = 1;
	if ((p = malloc(n)) == NULL)
		fatalx("out of memory allocating %zu bytes", n);
	return (p);
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void	*p;

	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	if ((p = calloc(nmemb, size)) == NULL)
		fatalx("out of memory allocating %zu x %zu bytes", nmemb, size);
	return (p);
}

void *
xreallocarray(void *old, size_t nmemb, size_t size)
{
	void	*p;

	if (size != 0 && nmemb > SIZE_MAX / size)
		fatalx("xreallocarray: %zu x %zu overflows", nmemb, size);
	if ((p = realloc(old, nmemb * size != 0 ? nmemb * size : 1)) == NULL)
		fatalx("out of memory allocating %zu x %zu bytes", nmemb, size);
	return (p);
}

char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		fatalx("out of memory copying a string");
	return (p);
}

char *
xstrndup(const char *s, size_t n)
{
	char	*p;

	if ((p = strndup(s, n)) == NULL)
		fatalx("out of memory copying a string");
	return (p);
}

int
xvasprintf(char **ret, const char *fmt, va_list ap)
{
	int	n;

	if ((n = vasprintf(ret, fmt, ap)) < 0)
		fatalx("out of memory formatting a string");
	return (n);
}

int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = xvasprintf(ret, fmt, ap);
	va_end(ap);
	return (n);
}

/* For broken invariants only (STYLE: never for bad input). */
void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "opsd: fatal: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static uint64_t
clock_usec(clockid_t id)
{
	struct timespec	ts;

	clock_gettime(id, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
}

/*
 * Bytes for spreading schedules and naming things: getrandom(2), not
 * OpenSSL's RAND_bytes(), whose first call sets up its DRBG and providers
 * and costs about 2 MB of resident pages (measured: 10.4 MB resident for
 * an opsd with 20 plain-http probes this way, 12.6 MB with RAND_bytes). Not
 * for secrets: those come from RAND_bytes. Before the kernel's pool is
 * ready (early boot), the clock and the pid stand in.
 */
void
util_random(void *buf, size_t len)
{
	unsigned char	*p = buf;
	uint64_t	 x;
	ssize_t		 n;
	size_t		 i;

	while (len > 0) {
		n = getrandom(p, len, GRND_NONBLOCK);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		x = now_usec() ^ ((uint64_t)getpid() << 32);
		for (i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[i] = (unsigned char)x;
		}
		return;
	}
}

uint64_t
now_usec(void)
{
	return (clock_usec(CLOCK_MONOTONIC));
}

uint64_t
now_realtime_usec(void)
{
	return (clock_usec(CLOCK_REALTIME));
}

void
util_iso_time(int64_t t, char *buf, size_t len)
{
	struct tm	tm;
	time_t		tt = (time_t)t;

	if (t <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * The length of the character at s (1 to 4) if it is valid, else minus
 * the length of the longest start of one (at least 1): Unicode's "maximal
 * subpart", which becomes one U+FFFD. A NUL is invalid too: it cannot
 * travel in a C string or a journal field.
 */
static int
utf8_char(const unsigned char *s, size_t len)
{
	unsigned char	lo = 0x80, hi = 0xbf;
	size_t		n, i;

	if (s[0] == 0)
		return (-1);
	if (s[0] < 0x80)
		return (1);
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;		/* overlong */
		else if (s[0] == 0xed)
			hi = 0x9f;		/* surrogates */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		if (s[0] == 0xf0)
			lo = 0x90;		/* overlong */
		else if (s[0] == 0xf4)
			hi = 0x8f;		/* past U+10FFFF */
	} else
		return (-1);	/* continuation, C0, C1, F5-FF */
	for (i = 1; i < n; i++) {
		if (i >= len || s[i] < lo || s[i] > hi)
			return (-(int)i);
		lo = 0x80;
		hi = 0xbf;
	}
	return ((int)n);
}

int
util_utf8_valid(const char *s, size_t len)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i = 0;
	int			 n;

	while (i < len) {
		if ((n = utf8_char(u + i, len - i)) < 0)
			return (0);
		i += (size_t)n;
	}
	return (1);
}

size_t
util_utf8_cut(const char *s, size_t len, size_t max)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i;
	int			 n;

	if (len <= max)
		return (len);
	/* back to the lead byte of the character that max falls in */
	for (i = max; i > 0 && max - i < 3 && (u[i] & 0xc0) == 0x80; i--)
		;
	if ((u[i] & 0xc0) == 0x80)
		return (max);		/* not in a character: bytes alone */
	n = utf8_char(u + i, len - i);
	if (n > 0 && i + (size_t)n > max)
		return (i);
	return (max);
}

size_t
util_utf8_sanitize(char *dst, size_t size, const char *s, size_t len)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i = 0, o = 0, w;
	int			 n;

	if (size == 0)
		return (0);
	while (i < len) {
		n = utf8_char(u + i, len - i);
		w = n > 0 ? (size_t)n : 3;
		if (o + w > size - 1)
			break;
		if (n > 0) {
			memcpy(dst + o, s + i, w);
			i += w;
		} else {
			memcpy(dst + o, "\xef\xbf\xbd", 3);	/* U+FFFD */
			i += (size_t)-n;
		}
		o += w;
	}
	dst[o] = '\0';
	return (o);
}

char *
util_utf8_dup(const char *s, size_t len)
{
	char	*d;
	size_t	 size;

	if (len > (SIZE_MAX - 1) / 3)
		fatalx("util_utf8_dup: %zu bytes", len);
	size = 3 * len + 1;	/* each byte may become U+FFFD */
	d = xmalloc(size);
	util_utf8_sanitize(d, size, s, len);
	return (d);
}

/*
 * "> 0", ">= 10", "= 5", "!= 0", "< 3", "<= 3", "any": what a backup's
 * check or a postgres probe expects of a value. Numbers compare as
 * numbers, anything else as text (ISO dates sort as text).
 */
static int
util_expect_split(const char *e, char op[3], const char **rhs)
{
	while (isspace((unsigned char)*e))
		e++;
	if (strcmp(e, "any") == 0) {
		strcpy(op, "*");
		return (0);
	}
	if (strncmp(e, ">=", 2) == 0 || strncmp(e, "<=", 2) == 0 ||
	    strncmp(e, "!=", 2) == 0 || strncmp(e, "==", 2) == 0) {
		memcpy(op, e, 2);
		op[2] = '\0';
		e += 2;
	} else if (*e == '>' || *e == '<' || *e == '=') {
		op[0] = *e++;
		op[1] = '\0';
	} else
		return (-EINVAL);
	while (isspace((unsigned char)*e))
		e++;
	/* one operator: "> > 3" or ">> 3" is a typo, not a comparison */
	if (*e == '\0' || strchr("<>=!", *e) != NULL)
		return (-EINVAL);
	*rhs = e;
	return (0);
}

int
util_expect_valid(const char *expect)
{
	char		 op[3];
	const char	*rhs = NULL;

	return (util_expect_split(expect, op, &rhs) == 0);
}

int
util_expect_match(const char *expect, const char *value)
{
	char		 op[3], *end1, *end2;
	const char	*rhs = NULL;
	double		 a, b;
	int		 c;

	if (util_expect_split(expect, op, &rhs) != 0)
		return (0);
	if (op[0] == '*')
		return (value != NULL);
	if (value == NULL)
		return (0);
	a = strtod(value, &end1);
	b = strtod(rhs, &end2);
	if (*end2 == '\0' && !isnan(b)) {
		/* a number expected: text, "" or NaN never satisfies it */
		if (*value == '\0' || *end1 != '\0' || isnan(a))
			return (strcmp(op, "!=") == 0);
		c = (a > b) - (a < b);
	} else
		c = strcmp(value, rhs);	/* text, e.g. ISO dates */
	if (strcmp(op, ">") == 0)
		return (c > 0);
	if (strcmp(op, ">=") == 0)
		return (c >= 0);
	if (strcmp(op, "<") == 0)
		return (c < 0);
	if (strcmp(op, "<=") == 0)
		return (c <= 0);
	if (strcmp(op, "!=") == 0)
		return (c != 0);
	return (c == 0);
}

/*
 * A JSON string of text that may come from outside (a server's reason,
 * a host name, an older state file): made UTF-8 if it is not, never NULL.
 */
json_t *
util_jstring(const char *s)
{
	json_t	*j;
	char	*t;

	if (s == NULL)
		s = "";
	if ((j = json_string(s)) != NULL)
		return (j);
	t = util_utf8_dup(s, strlen(s));
	j = json_string(t);
	free(t);
	if (j == NULL)
		fatalx("out of memory making a JSON string");
	return (j);
}
