/*
 * One PostgreSQL query on the event loop with libpq's non-blocking API:
 * PQconnectStartParams/PQconnectPoll, PQsendQuery, PQconsumeInput, with a
 * libevent event on PQsocket() (which may change while connecting) and a
 * timer for the whole exchange. The password is handed to libpq as a
 * connection parameter, never put in a conninfo string that could be
 * logged.
 *
 * Host names in host= are resolved with evdns before libpq sees them
 * (libpq's own lookup is a blocking getaddrinfo()), and libpq is given
 * hostaddr= beside host=, which it still uses for the password file and
 * sslmode=verify-full. A conninfo with hostaddr= is passed as it is. A name
 * that does not resolve fails with "cannot resolve NAME: why"; in a host
 * list it is skipped like libpq skips it, unless no host is left.
 */
#ifndef OPSD_PG_H
#define OPSD_PG_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct event_base;
struct evdns_base;
struct pgq;

struct pg_spec {
	const char	*conninfo;	/* without the password */
	const char	*password;	/* NULL: none or from ~/.pgpass */
	const char	*query;
	uint64_t	 timeout_ms;
	/* NULL: libpq resolves host names itself, blocking (tools, tests) */
	struct evdns_base *dns;
};

/*
 * res is the query's first result (owned by the caller of the callback
 * only for the duration of the call), error a message or NULL.
 */
typedef void (*pg_done_cb)(struct pgq *, const PGresult *res,
    const char *error, void *arg);

struct pgq *pg_query(struct event_base *, const struct pg_spec *,
	    pg_done_cb, void *arg);
void	 pg_cancel(struct pgq *);	/* no callback */
int	 pg_server_version(const struct pgq *);

/*
 * A session that stays open for several statements (an advisory lock is
 * held by its session). pg_open calls back once connected (res NULL);
 * pg_exec runs one statement on an idle session; pg_cancel closes it.
 * spec->query is ignored by pg_open.
 */
struct pgq *pg_open(struct event_base *, const struct pg_spec *,
	    pg_done_cb, void *arg);
int	 pg_exec(struct pgq *, const char *sql, uint64_t timeout_ms,
	    pg_done_cb, void *arg);
/* NULL if s is a conninfo without a password, else a message in buf. */
const char *pg_conninfo_check(const char *s, char *buf, size_t len);
/* Quotes an identifier for SQL ("name"); free() the result. */
char	*pg_quote_ident(const char *);
/*
 * The SCRAM-SHA-256 verifier of password for user, computed client-side
 * (for ALTER ROLE ... PASSWORD 'verifier', so the plaintext never reaches
 * the server's statement log). conn only carries libpq's settings and
 * error message: nothing is sent. PQfreemem() the result; NULL on error.
 */
char	*pg_scram_verifier(PGconn *, const char *user, const char *password);
/* A session's connection, for pg_scram_verifier (NULL if not connected). */
PGconn	*pg_conn(struct pgq *);

#endif
