/*
 * A few assertion macros that print TAP, which meson's test() reads with
 * protocol 'tap': one "ok N - case" or "not ok N - case" line per case on
 * stdout, the plan at the end. Failed checks are "#" diagnostics on stderr,
 * which meson --print-errorlogs shows. A case
 * is a function; a failed check marks the case failed and carries on, so
 * one run shows every broken expectation. The exit status is 1 if any
 * case failed.
 *
 *	static void
 *	test_something(void)
 *	{
 *		CHECK_INT(parse(...), 0);
 *	}
 *
 *	int
 *	main(void)
 *	{
 *		RUN(test_something);
 *		return (tap_done());
 *	}
 */
#ifndef OPSD_TAP_H
#define OPSD_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	 tap_n;		/* cases run */
static int	 tap_nfailed;	/* cases failed */
static int	 tap_case_failed;
static char	*tap_case_skip;	/* reason, when the case skipped itself */

static void tap_diag(const char *, ...) __attribute__((format(printf, 1, 2),
    unused));

static void
tap_diag(const char *fmt, ...)
{
	va_list	ap;

	fflush(stdout);
	fputs("# ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

static __attribute__((unused)) void
tap_fail(const char *file, int line, const char *what)
{
	tap_diag("%s:%d: %s", file, line, what);
	tap_case_failed = 1;
}

/* Marks the running case skipped; the caller returns right after. */
static __attribute__((unused)) void
tap_skip(const char *why)
{
	free(tap_case_skip);
	tap_case_skip = strdup(why);
}

static __attribute__((unused)) void
tap_run(const char *name, void (*fn)(void))
{
	tap_case_failed = 0;
	free(tap_case_skip);
	tap_case_skip = NULL;
	fn();
	tap_n++;
	if (tap_case_failed) {
		tap_nfailed++;
		tap_diag("^ in %s", name);
		printf("not ok %d - %s\n", tap_n, name);
	} else if (tap_case_skip != NULL)
		printf("ok %d - %s # SKIP %s\n", tap_n, name, tap_case_skip);
	else
		printf("ok %d - %s\n", tap_n, name);
	fflush(stdout);
}

static __attribute__((unused)) int
tap_done(void)
{
	free(tap_case_skip);
	tap_case_skip = NULL;
	printf("1..%d\n", tap_n);
	if (tap_nfailed > 0)
		tap_diag("%d of %d cases failed", tap_nfailed, tap_n);
	fflush(stdout);
	return (tap_nfailed > 0 ? 1 : 0);
}

#define RUN(fn)		tap_run(#fn, fn)

#define CHECK(cond) do {						\
	if (!(cond))							\
		tap_fail(__FILE__, __LINE__, "check failed: " #cond);	\
} while (0)

/* Both sides once, as intmax_t. */
#define CHECK_INT(got, want) do {					\
	intmax_t tap_g = (intmax_t)(got), tap_w = (intmax_t)(want);	\
	if (tap_g != tap_w) {						\
		tap_diag("%s:%d: %s is %jd, expected %jd", __FILE__,	\
		    __LINE__, #got, tap_g, tap_w);			\
		tap_case_failed = 1;					\
	}								\
} while (0)

#define CHECK_UINT(got, want) do {					\
	uintmax_t tap_g = (uintmax_t)(got), tap_w = (uintmax_t)(want);	\
	if (tap_g != tap_w) {						\
		tap_diag("%s:%d: %s is %ju, expected %ju", __FILE__,	\
		    __LINE__, #got, tap_g, tap_w);			\
		tap_case_failed = 1;					\
	}								\
} while (0)

/* Modes, in octal. */
#define CHECK_MODE(got, want) do {					\
	unsigned int tap_g = (unsigned int)(got);			\
	unsigned int tap_w = (unsigned int)(want);			\
	if (tap_g != tap_w) {						\
		tap_diag("%s:%d: %s is %04o, expected %04o", __FILE__,	\
		    __LINE__, #got, tap_g, tap_w);			\
		tap_case_failed = 1;					\
	}								\
} while (0)

#define CHECK_STR(got, want) do {					\
	const char *tap_g = (got), *tap_w = (want);			\
	if (tap_g == NULL || tap_w == NULL ? tap_g != tap_w :		\
	    strcmp(tap_g, tap_w) != 0) {				\
		tap_diag("%s:%d: %s is \"%s\", expected \"%s\"",	\
		    __FILE__, __LINE__, #got, tap_g ? tap_g : "(null)",	\
		    tap_w ? tap_w : "(null)");				\
		tap_case_failed = 1;					\
	}								\
} while (0)

/* got contains want as a substring. */
#define CHECK_CONTAINS(got, want) do {					\
	const char *tap_g = (got), *tap_w = (want);			\
	if (tap_g == NULL || strstr(tap_g, tap_w) == NULL) {		\
		tap_diag("%s:%d: %s is \"%s\", expected it to contain "	\
		    "\"%s\"", __FILE__, __LINE__, #got,			\
		    tap_g ? tap_g : "(null)", tap_w);			\
		tap_case_failed = 1;					\
	}								\
} while (0)

#endif
