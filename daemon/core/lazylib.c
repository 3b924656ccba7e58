/*
 * libcurl and libpq, loaded when first used.
 *
 * opsd is not linked against either library: it is compiled against their
 * headers, and the functions it calls are defined here, each loading the
 * library with dlopen() at the first call and forwarding to the real
 * symbol. A daemon whose configuration has only plain-http, tcp and
 * command probes never maps them.
 *
 * Why by hand: Debian's libcurl4 and libpq5 bring 27 more shared objects
 * (gnutls through librtmp and libldap, p11-kit, kerberos, sasl, nettle,
 * gmp, ...). Mapped and relocated they were 3.9 MB of opsd's resident
 * memory before main() (10.0 MB at start without a probe, 6.0 MB without
 * them), and the 44 libraries a linked opsd loads become 17. The linker
 * cannot do this (--as-needed drops only what is not referenced), glibc's
 * lazy binding still maps every DT_NEEDED object, and Debian packages no
 * generator of such forwarders (Implib.so would write the same ones).
 *
 * The definitions are hidden: an executable exports none of them, so the
 * loaded library can never bind its own calls to these forwarders.
 *
 * The load is a blocking call (about 2 ms of file mapping, once); it
 * happens at the first https probe, webhook, S3 copy or PostgreSQL
 * connection, usually at start, and opsd calls lazylib_curl() and
 * lazylib_pq() at configure time when the configuration needs them, so
 * the loop does not pay it later. If a library cannot be loaded the
 * constructors fail (NULL, CURLE_FAILED_INIT), the error is logged once
 * and the feature reports it; nothing else is affected.
 */
#define CURL_DISABLE_TYPECHECK	/* the macros would rename the definitions */

#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "evt.h"
#include "lazylib.h"

#define HIDDEN	__attribute__((visibility("hidden")))

/* The soname the headers were built for, as the linked daemon used. */
#define CURL_SONAME	"libcurl.so.4"
#define PQ_SONAME	"libpq.so.5"

/*
 * name, return type, (parameters), (arguments), and what the function
 * returns when its library cannot be loaded. Only the functions that make
 * or parse something can be the first call; the others take an object
 * only a loaded library could have made (or NULL, which they accept).
 */
#define CURL_FUNCS(X)							\
	X(curl_global_init, CURLcode,					\
	    (long f), (f),	\
	    return (CURLE_FAILED_INIT)) \
	X(curl_global_cleanup, void,					\
	    (void), (),	\
	    return) \
	X(curl_easy_init, CURL *,					\
	    (void), (),	\
	    return (NULL)) \
	X(curl_easy_cleanup, void,					\
	    (CURL *e), (e),	\
	    return) \
	X(curl_easy_strerror, const char *,					\
	    (CURLcode c), (c),	\
	    return (curl_lib.error)) \
	X(curl_easy_escape, char *,					\
	    (CURL *e, const char *s, int n), (e, s, n),	\
	    return (NULL)) \
	X(curl_free, void,					\
	    (void *p), (p),	\
	    return) \
	X(curl_slist_append, struct curl_slist *,					\
	    (struct curl_slist *l, const char *s), (l, s),	\
	    return (NULL)) \
	X(curl_slist_free_all, void,					\
	    (struct curl_slist *l), (l),	\
	    return) \
	X(curl_multi_init, CURLM *,					\
	    (void), (),	\
	    return (NULL)) \
	X(curl_multi_cleanup, CURLMcode,					\
	    (CURLM *m), (m),	\
	    return (CURLM_BAD_HANDLE)) \
	X(curl_multi_add_handle, CURLMcode,					\
	    (CURLM *m, CURL *e), (m, e),	\
	    return (CURLM_BAD_HANDLE)) \
	X(curl_multi_remove_handle, CURLMcode,					\
	    (CURLM *m, CURL *e), (m, e),	\
	    return (CURLM_BAD_HANDLE)) \
	X(curl_multi_socket_action, CURLMcode,					\
	    (CURLM *m, curl_socket_t s, int ev, int *running), (m, s, ev, running),	\
	    return (CURLM_BAD_HANDLE)) \
	X(curl_multi_info_read, CURLMsg *,					\
	    (CURLM *m, int *left), (m, left),	\
	    return (NULL)) \
	X(curl_multi_assign, CURLMcode,					\
	    (CURLM *m, curl_socket_t s, void *p), (m, s, p),	\
	    return (CURLM_BAD_HANDLE)) \
	X(curl_url, CURLU *,					\
	    (void), (),	\
	    return (NULL)) \
	X(curl_url_cleanup, void,					\
	    (CURLU *u), (u),	\
	    return) \
	X(curl_url_set, CURLUcode,					\
	    (CURLU *u, CURLUPart w, const char *s, unsigned int f), (u, w, s, f),	\
	    return (CURLUE_BAD_HANDLE)) \
	X(curl_url_get, CURLUcode,					\
	    (CURLU *u, CURLUPart w, char **s, unsigned int f), (u, w, s, f),	\
	    return (CURLUE_BAD_HANDLE))

#define PQ_FUNCS(X)							\
	X(PQclear, void,					\
	    (PGresult *r), (r),	\
	    return) \
	X(PQcmdStatus, char *,					\
	    (PGresult *r), (r),	\
	    return (NULL)) \
	X(PQconnectPoll, PostgresPollingStatusType,					\
	    (PGconn *c), (c),	\
	    return (PGRES_POLLING_FAILED)) \
	X(PQconnectStartParams, PGconn *,					\
	    (const char *const *k, const char *const *v, int x), (k, v, x),	\
	    return (NULL)) \
	X(PQconninfoFree, void,					\
	    (PQconninfoOption *o), (o),	\
	    return) \
	X(PQconninfoParse, PQconninfoOption *,					\
	    (const char *s, char **err), (s, err),	\
	    return (pq_parse_fail(err))) \
	X(PQconsumeInput, int,					\
	    (PGconn *c), (c),	\
	    return (0)) \
	X(PQcopyResult, PGresult *,					\
	    (const PGresult *r, int f), (r, f),	\
	    return (NULL)) \
	X(PQencryptPasswordConn, char *,					\
	    (PGconn *c, const char *p, const char *u, const char *a), (c, p, u, a),	\
	    return (NULL)) \
	X(PQerrorMessage, char *,					\
	    (const PGconn *c), (c),	\
	    return (pq_lib.error)) \
	X(PQfinish, void,					\
	    (PGconn *c), (c),	\
	    return) \
	X(PQflush, int,					\
	    (PGconn *c), (c),	\
	    return (-1)) \
	X(PQfreemem, void,					\
	    (void *p), (p),	\
	    return) \
	X(PQgetResult, PGresult *,					\
	    (PGconn *c), (c),	\
	    return (NULL)) \
	X(PQgetisnull, int,					\
	    (const PGresult *r, int t, int f), (r, t, f),	\
	    return (1)) \
	X(PQgetvalue, char *,					\
	    (const PGresult *r, int t, int f), (r, t, f),	\
	    return (NULL)) \
	X(PQisBusy, int,					\
	    (PGconn *c), (c),	\
	    return (0)) \
	X(PQnfields, int,					\
	    (const PGresult *r), (r),	\
	    return (0)) \
	X(PQntuples, int,					\
	    (const PGresult *r), (r),	\
	    return (0)) \
	X(PQresultErrorMessage, char *,					\
	    (const PGresult *r), (r),	\
	    return (pq_lib.error)) \
	X(PQresultStatus, ExecStatusType,					\
	    (const PGresult *r), (r),	\
	    return (PGRES_FATAL_ERROR)) \
	X(PQsendQuery, int,					\
	    (PGconn *c, const char *q), (c, q),	\
	    return (0)) \
	X(PQserverVersion, int,					\
	    (const PGconn *c), (c),	\
	    return (0)) \
	X(PQsetnonblocking, int,					\
	    (PGconn *c, int a), (c, a),	\
	    return (-1)) \
	X(PQsocket, int,					\
	    (const PGconn *c), (c),	\
	    return (-1)) \
	X(PQstatus, ConnStatusType,					\
	    (const PGconn *c), (c),	\
	    return (CONNECTION_BAD)) \
	X(PQtransactionStatus, PGTransactionStatusType,					\
	    (const PGconn *c), (c),	\
	    return (PQTRANS_UNKNOWN))

#define PTR(name, ret, params, args, fail)	ret (*name) params;
#define NAME(name, ...)				#name,

static struct {
	CURL_FUNCS(PTR)
	CURLcode	(*curl_easy_setopt)(CURL *, CURLoption, ...);
	CURLcode	(*curl_easy_getinfo)(CURL *, CURLINFO, ...);
	CURLMcode	(*curl_multi_setopt)(CURLM *, CURLMoption, ...);
} curl_fn;

static struct {
	PQ_FUNCS(PTR)
} pq_fn;

static const char *const curl_names[] = {
	CURL_FUNCS(NAME)
	"curl_easy_setopt", "curl_easy_getinfo", "curl_multi_setopt",
};
static const char *const pq_names[] = { PQ_FUNCS(NAME) };

_Static_assert(sizeof curl_fn == sizeof curl_names, "a slot per curl name");
_Static_assert(sizeof pq_fn == sizeof pq_names, "a slot per libpq name");

struct lib {
	const char		*soname;
	const char		*package;	/* to install when missing */
	const char *const	*names;
	void			**slots;
	size_t			 n;
	int			 state;		/* 0 not yet, 1 loaded, -1 failed */
	char			 error[256];
};

static struct lib curl_lib = {
	CURL_SONAME, "libcurl4", curl_names, (void **)&curl_fn,
	sizeof curl_names / sizeof curl_names[0], 0, ""
};
static struct lib pq_lib = {
	PQ_SONAME, "libpq5", pq_names, (void **)&pq_fn,
	sizeof pq_names / sizeof pq_names[0], 0, ""
};

static int
lib_load(struct lib *l)
{
	const char	*soname = l->soname;
	void		*h;
	size_t		 i;

	if (l->state != 0)
		return (l->state > 0 ? 0 : -1);
#ifdef OPSD_FAULT_INJECTION
	/* the tests' way to a host without the library */
	if (getenv(l == &curl_lib ? "OPSD_TEST_NO_LIBCURL" :
	    "OPSD_TEST_NO_LIBPQ") != NULL)
		soname = "libopsd-test-missing.so.0";
#endif
	if ((h = dlopen(soname, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		snprintf(l->error, sizeof l->error, "%s could not be loaded "
		    "(%s); install %s", l->soname, dlerror(), l->package);
		goto fail;
	}
	for (i = 0; i < l->n; i++)
		if ((l->slots[i] = dlsym(h, l->names[i])) == NULL) {
			snprintf(l->error, sizeof l->error, "%s has no %s: "
			    "opsd was built for another version of it",
			    l->soname, l->names[i]);
			dlclose(h);
			goto fail;
		}
	l->state = 1;
	return (0);
fail:
	l->state = -1;
	log_err("daemon.library", "%s", l->error);
	return (-1);
}

int
lazylib_curl(void)
{
	return (lib_load(&curl_lib));
}

int
lazylib_pq(void)
{
	return (lib_load(&pq_lib));
}

int
lazylib_loaded(enum lazylib which)
{
	return ((which == LAZYLIB_CURL ? &curl_lib : &pq_lib)->state > 0);
}

const char *
lazylib_error(enum lazylib which)
{
	return ((which == LAZYLIB_CURL ? &curl_lib : &pq_lib)->error);
}

/*
 * PQconninfoParse's error message is freed with PQfreemem, which does
 * nothing while libpq is not loaded: the static message can go there.
 */
static PQconninfoOption *
pq_parse_fail(char **err)
{
	if (err != NULL)
		*err = pq_lib.error;
	return (NULL);
}

#define FWD(lib, name, ret, params, args, fail)				\
	HIDDEN ret							\
	name params							\
	{								\
		if (lib##_lib.state <= 0 && lib_load(&lib##_lib) != 0)	\
			fail;						\
		return (lib##_fn.name args);				\
	}
#define CURL_FWD(...)	FWD(curl, __VA_ARGS__)
#define PQ_FWD(...)	FWD(pq, __VA_ARGS__)

CURL_FUNCS(CURL_FWD)
PQ_FUNCS(PQ_FWD)

/*
 * The variadic three take one argument, whose type the option's number
 * encodes (curl.h's CURLOPTTYPE_* and CURLINFO_* bases; every getinfo
 * argument is a pointer); libcurl reads it the same way.
 */
typedef void	(*anyfn)(void);

/* fn(h, o, the argument read as the type o's number says); returned */
#define SETOPT_BY_TYPE(fn, h, o, ap)					\
	do {								\
		if ((o) < CURLOPTTYPE_OBJECTPOINT)			\
			return (fn(h, o, va_arg(ap, long)));		\
		if ((o) < CURLOPTTYPE_FUNCTIONPOINT ||			\
		    (o) >= CURLOPTTYPE_BLOB)				\
			return (fn(h, o, va_arg(ap, void *)));		\
		if ((o) < CURLOPTTYPE_OFF_T)				\
			return (fn(h, o, va_arg(ap, anyfn)));		\
		return (fn(h, o, va_arg(ap, curl_off_t)));		\
	} while (0)

static CURLcode
setopt_va(CURL *e, CURLoption o, va_list ap)
{
	SETOPT_BY_TYPE(curl_fn.curl_easy_setopt, e, o, ap);
}

static CURLMcode
multi_setopt_va(CURLM *m, CURLMoption o, va_list ap)
{
	SETOPT_BY_TYPE(curl_fn.curl_multi_setopt, m, o, ap);
}

HIDDEN CURLcode
curl_easy_setopt(CURL *e, CURLoption o, ...)
{
	va_list		ap;
	CURLcode	rc;

	if (curl_lib.state <= 0 && lib_load(&curl_lib) != 0)
		return (CURLE_FAILED_INIT);
	va_start(ap, o);
	rc = setopt_va(e, o, ap);
	va_end(ap);
	return (rc);
}

HIDDEN CURLcode
curl_easy_getinfo(CURL *e, CURLINFO i, ...)
{
	va_list		ap;
	void		*p;

	if (curl_lib.state <= 0 && lib_load(&curl_lib) != 0)
		return (CURLE_FAILED_INIT);
	va_start(ap, i);
	p = va_arg(ap, void *);
	va_end(ap);
	return (curl_fn.curl_easy_getinfo(e, i, p));
}

HIDDEN CURLMcode
curl_multi_setopt(CURLM *m, CURLMoption o, ...)
{
	va_list		ap;
	CURLMcode	rc;

	if (curl_lib.state <= 0 && lib_load(&curl_lib) != 0)
		return (CURLM_BAD_HANDLE);
	va_start(ap, o);
	rc = multi_setopt_va(m, o, ap);
	va_end(ap);
	return (rc);
}
