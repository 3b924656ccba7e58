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

uint64_t now_usec(void);	/* CLOCK_MONOTONIC */
uint64_t now_realtime_usec(void);
/* UTC "2026-01-02T03:04:05Z" of t (seconds); "-" for t <= 0 (never). */
void	 util_iso_time(int64_t t, char *buf, size_t len);

#endif
