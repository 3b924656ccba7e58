/*
 * libcurl and libpq are loaded at their first use (lazylib.c says why).
 * Calling any of their functions loads them; these load them ahead, at
 * configure time, so that the loop does not map files later.
 */
#ifndef OPSD_LAZYLIB_H
#define OPSD_LAZYLIB_H

enum lazylib {
	LAZYLIB_CURL,
	LAZYLIB_PQ,
};

/* 0 when loaded; -1, logged once as daemon.library, when it cannot be. */
int	lazylib_curl(void);
int	lazylib_pq(void);
/* 1 once loaded (for tests and `opsd --version`). */
int	lazylib_loaded(enum lazylib);
/* Why it could not be loaded ("" while it has not failed). */
const char *lazylib_error(enum lazylib);

#endif
