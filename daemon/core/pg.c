/*
 * Connections are started in two steps so that nothing on the way waits:
 * host names in host= are first resolved with evdns (libpq would call a
 * blocking getaddrinfo() inside PQconnectStartParams, for the resolver's
 * whole timeout when a DNS server does not answer), then libpq is given
 * hostaddr= next to host=. host= stays for what libpq matches on the name:
 * the password file and sslmode=verify-full. A name with several addresses
 * becomes as many host entries, so libpq still tries each in turn.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "lazylib.h"
#include "pg.h"
#include "util.h"

/* addresses of one name handed to libpq: enough for A and AAAA records */
#define PG_NAME_ADDRS	8

enum pg_step {
	PG_RESOLVING,
	PG_CONNECTING,
	PG_SENDING,
	PG_READING,
	PG_IDLE,
};

/*
 * One entry of host=. Allocated on its own: a cancelled evdns request
 * still calls back later (EVUTIL_EAI_CANCEL), after its pgq may be gone,
 * so the entry is let go (q = NULL) and freed by that last callback.
 */
struct pg_name {
	struct pgq				*q;
	char					*host;
	struct evdns_getaddrinfo_request	*req;
	struct evutil_addrinfo			*ai;
	int					 err;	/* EVUTIL_EAI_* */
	int					 resolve; /* a name */
	int					 done;
};

struct pgq {
	struct event_base	*base;
	struct evdns_base	*dns;
	PGconn			*conn;
	enum pg_step		 step;
	struct event		*ev;
	struct event		*timer;
	pg_done_cb		 done;
	void			*arg;
	PGresult		*res;
	int			 version;
	int			 sock;
	int			 failed_start;
	int			 session;	/* pg_open: stays open */
	char			*query;

	/* until the connection is started */
	PQconninfoOption	*opts;
	char			*password;	/* wiped */
	struct pg_name		**names;
	size_t			 nnames;
	size_t			 pending;	/* resolves in flight */
	char			 error[512];	/* failed_start's message */
};

static void	pg_io_cb(evutil_socket_t, short, void *);

static void
pg_name_free(struct pg_name *n)
{
	if (n->ai != NULL)
		evutil_freeaddrinfo(n->ai);
	free(n->host);
	free(n);
}

/* Drops what only the start of a connection needs. */
static void
pg_start_free(struct pgq *q)
{
	struct pg_name	*n;
	size_t		 i;

	for (i = 0; i < q->nnames; i++) {
		n = q->names[i];
		if (n->req != NULL) {
			/* freed by its EVUTIL_EAI_CANCEL callback */
			n->q = NULL;
			evdns_getaddrinfo_cancel(n->req);
		} else
			pg_name_free(n);
	}
	free(q->names);
	q->names = NULL;
	q->nnames = q->pending = 0;
	if (q->opts != NULL)
		PQconninfoFree(q->opts);
	q->opts = NULL;
	if (q->password != NULL) {
		explicit_bzero(q->password, strlen(q->password));
		free(q->password);
	}
	q->password = NULL;
}

static void
pg_free(struct pgq *q)
{
	pg_start_free(q);
	if (q->ev != NULL)
		event_free(q->ev);
	event_free(q->timer);
	if (q->res != NULL)
		PQclear(q->res);
	if (q->conn != NULL)
		PQfinish(q->conn);
	free(q->query);
	free(q);
}

static void
pg_finish(struct pgq *q, const char *error)
{
	char	buf[512];
	size_t	n;

	pg_start_free(q);
	if (error != NULL) {
		/* libpq messages end in a newline; one line is enough */
		snprintf(buf, sizeof buf, "%s", error);
		n = strcspn(buf, "\n");
		buf[n] = '\0';
		error = buf;
	}
	if (!q->session) {
		q->done(q, error == NULL ? q->res : NULL, error, q->arg);
		pg_free(q);
		return;
	}
	/* a session goes idle; the callback may start the next statement */
	if (q->ev != NULL)
		event_del(q->ev);
	evtimer_del(q->timer);
	q->step = PG_IDLE;
	{
		PGresult	*res = q->res;
		pg_done_cb	 done = q->done;

		q->res = NULL;
		done(q, error == NULL ? res : NULL, error, q->arg);
		if (res != NULL)
			PQclear(res);
	}
}

static void
pg_wait(struct pgq *q, short what)
{
	int	sock = PQsocket(q->conn);

	if (q->ev == NULL || sock != q->sock) {
		if (q->ev != NULL)
			event_free(q->ev);
		q->sock = sock;
		q->ev = event_new(q->base, sock, what, pg_io_cb, q);
	} else
		event_assign(q->ev, q->base, sock, what, pg_io_cb, q);
	event_add(q->ev, NULL);
}

static int
pg_res_ok(const PGresult *r)
{
	return (PQresultStatus(r) == PGRES_TUPLES_OK ||
	    PQresultStatus(r) == PGRES_COMMAND_OK);
}

static void
pg_read(struct pgq *q)
{
	PGresult	*r;

	if (!PQconsumeInput(q->conn)) {
		pg_finish(q, PQerrorMessage(q->conn));
		return;
	}
	while (!PQisBusy(q->conn)) {
		if ((r = PQgetResult(q->conn)) == NULL) {
			if (q->res == NULL) {
				pg_finish(q, "no result");
				return;
			}
			switch (PQresultStatus(q->res)) {
			case PGRES_TUPLES_OK:
			case PGRES_COMMAND_OK:
				pg_finish(q, NULL);
				break;
			default:
				pg_finish(q, PQresultErrorMessage(q->res));
				break;
			}
			return;
		}
		/*
		 * Several statements give several results: the first one is
		 * kept, unless a later one is an error, which then decides
		 * (an error in the second statement is an error).
		 */
		if (q->res == NULL)
			q->res = r;
		else if (pg_res_ok(q->res) && !pg_res_ok(r)) {
			PQclear(q->res);
			q->res = r;
		} else
			PQclear(r);
	}
	pg_wait(q, EV_READ);
}

static void
pg_send(struct pgq *q)
{
	int	r;

	if (q->step == PG_CONNECTING) {
		q->version = PQserverVersion(q->conn);
		PQsetnonblocking(q->conn, 1);
		if (q->session && q->query == NULL) {
			pg_finish(q, NULL);	/* connected: report it */
			return;
		}
	}
	if (q->step == PG_CONNECTING || q->step == PG_IDLE) {
		if (!PQsendQuery(q->conn, q->query)) {
			pg_finish(q, PQerrorMessage(q->conn));
			return;
		}
		q->step = PG_SENDING;
	}
	if ((r = PQflush(q->conn)) == -1) {
		pg_finish(q, PQerrorMessage(q->conn));
		return;
	}
	if (r == 1) {
		pg_wait(q, EV_WRITE | EV_READ);
		return;
	}
	q->step = PG_READING;
	pg_wait(q, EV_READ);
}

static void
pg_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgq	*q = arg;

	(void)fd;
	switch (q->step) {
	case PG_RESOLVING:
		return;
	case PG_CONNECTING:
		switch (PQconnectPoll(q->conn)) {
		case PGRES_POLLING_READING:
			pg_wait(q, EV_READ);
			return;
		case PGRES_POLLING_WRITING:
			pg_wait(q, EV_WRITE);
			return;
		case PGRES_POLLING_OK:
			pg_send(q);
			return;
		default:
			pg_finish(q, PQerrorMessage(q->conn));
			return;
		}
	case PG_SENDING:
		if (what & EV_READ && !PQconsumeInput(q->conn)) {
			pg_finish(q, PQerrorMessage(q->conn));
			return;
		}
		pg_send(q);
		return;
	case PG_READING:
		pg_read(q);
		return;
	case PG_IDLE:
		return;
	}
}

static void
pg_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgq	*q = arg;

	(void)fd;
	(void)what;
	if (q->failed_start) {
		if (q->error[0] != '\0')
			pg_finish(q, q->error);
		else
			pg_finish(q, q->conn != NULL ?
			    PQerrorMessage(q->conn) : "out of memory");
		return;
	}
	if (q->step == PG_RESOLVING) {
		size_t	i;

		for (i = 0; i < q->nnames; i++)
			if (q->names[i]->resolve && !q->names[i]->done)
				break;
		snprintf(q->error, sizeof q->error, "cannot resolve %s: timed "
		    "out", i < q->nnames ? q->names[i]->host : "host");
		pg_finish(q, q->error);
		return;
	}
	pg_finish(q, q->step == PG_CONNECTING ? "timed out connecting" :
	    "timed out waiting for the query");
}

/*
 * Reports a failure to start from the loop, never from inside the caller
 * of pg_query (nor from inside an evdns callback).
 */
static void
pg_fail_soon(struct pgq *q)
{
	struct timeval	tv = { 0, 0 };

	q->failed_start = 1;
	evtimer_add(q->timer, &tv);
}

/* Where a socket directory or an IP address is given, there is no name. */
static int
pg_is_name(const char *h)
{
	unsigned char	a[16];

	if (*h == '\0' || *h == '/' || *h == '@')
		return (0);
	if (evutil_inet_pton(AF_INET, h, a) == 1 ||
	    evutil_inet_pton(AF_INET6, h, a) == 1)
		return (0);
	return (1);
}

static const char *
pg_opt(PQconninfoOption *opts, const char *key)
{
	for (; opts->keyword != NULL; opts++)
		if (strcmp(opts->keyword, key) == 0)
			return (opts->val);
	return (NULL);
}

/* A conninfo value, else the libpq environment variable that sets it. */
static const char *
pg_opt_env(PQconninfoOption *opts, const char *key, const char *var)
{
	const char	*v = pg_opt(opts, key);

	return (v != NULL && *v != '\0' ? v : getenv(var));
}

/* Entry i of a comma-separated list ("" past its end); free() it. */
static char *
pg_list_at(const char *list, size_t i)
{
	char	*s;

	while (i-- > 0) {
		if ((list = strchr(list, ',')) == NULL)
			return (xstrdup(""));
		list++;
	}
	xasprintf(&s, "%.*s", (int)strcspn(list, ","), list);
	return (s);
}

static size_t
pg_list_len(const char *list)
{
	size_t	n = 1;

	for (; *list != '\0'; list++)
		n += *list == ',';
	return (n);
}

static void
pg_list_add(char **list, const char *v)
{
	char	*s;

	if (*list == NULL)
		*list = xstrdup(v);
	else {
		xasprintf(&s, "%s,%s", *list, v);
		free(*list);
		*list = s;
	}
}

/*
 * PQconnectStartParams with the parsed conninfo, host, hostaddr and port
 * replaced where given (NULL: as parsed), the password and the
 * application name.
 */
static void
pg_connect_params(struct pgq *q, const char *host, const char *hostaddr,
    const char *port)
{
	PQconninfoOption	*o;
	const char		**keys, **vals;
	size_t			 n = 0, max = 6;

	for (o = q->opts; o->keyword != NULL; o++)
		max++;
	keys = xcalloc(max, sizeof *keys);
	vals = xcalloc(max, sizeof *vals);
	for (o = q->opts; o->keyword != NULL; o++) {
		if (o->val == NULL ||
		    (host != NULL && strcmp(o->keyword, "host") == 0) ||
		    (hostaddr != NULL && strcmp(o->keyword, "hostaddr") == 0) ||
		    (port != NULL && strcmp(o->keyword, "port") == 0) ||
		    strcmp(o->keyword, "password") == 0 ||
		    strcmp(o->keyword, "application_name") == 0)
			continue;
		keys[n] = o->keyword;
		vals[n++] = o->val;
	}
	if (host != NULL) {
		keys[n] = "host";
		vals[n++] = host;
	}
	if (hostaddr != NULL) {
		keys[n] = "hostaddr";
		vals[n++] = hostaddr;
	}
	if (port != NULL) {
		keys[n] = "port";
		vals[n++] = port;
	}
	if (q->password != NULL) {
		keys[n] = "password";
		vals[n++] = q->password;
	}
	keys[n] = "application_name";
	vals[n++] = "opsd";
	keys[n] = NULL;
	vals[n] = NULL;
	/* the conninfo is already parsed: dbname is a name, not a conninfo */
	q->conn = PQconnectStartParams(keys, vals, 0);
	free(keys);
	free(vals);
	pg_start_free(q);
	q->step = PG_CONNECTING;
	if (q->conn == NULL || PQstatus(q->conn) == CONNECTION_BAD)
		pg_fail_soon(q);
	else
		pg_wait(q, EV_WRITE);
}

/*
 * Every name is answered: one host entry per address (a name that did not
 * resolve is left out, as libpq goes on to the next host when one does
 * not resolve), hostaddr beside each, the port list stretched to match.
 */
static void
pg_resolved(struct pgq *q)
{
	struct evutil_addrinfo	*ai;
	struct pg_name		*n, *bad = NULL;
	const char		*ports;
	char			*host = NULL, *addr = NULL, *port = NULL;
	char			*p = NULL, a[64];
	size_t			 i, k, nports = 0;

	ports = pg_opt_env(q->opts, "port", "PGPORT");
	if (ports != NULL && (nports = pg_list_len(ports)) != q->nnames)
		nports = 0;	/* one port for all, or libpq's error */
	for (i = 0; i < q->nnames; i++) {
		n = q->names[i];
		free(p);
		p = nports > 0 ? pg_list_at(ports, i) : NULL;
		if (!n->resolve) {
			pg_list_add(&host, n->host);
			/* an IP address is its own hostaddr */
			pg_list_add(&addr, *n->host == '\0' || *n->host == '/' ||
			    *n->host == '@' ? "" : n->host);
			if (nports > 0)
				pg_list_add(&port, p);
			continue;
		}
		if (n->err != 0 || n->ai == NULL) {
			if (bad == NULL)
				bad = n;
			continue;
		}
		for (ai = n->ai, k = 0; ai != NULL && k < PG_NAME_ADDRS;
		    ai = ai->ai_next) {
			if (evutil_inet_ntop(ai->ai_family, ai->ai_family ==
			    AF_INET6 ? (void *)&((struct sockaddr_in6 *)
			    ai->ai_addr)->sin6_addr : (void *)&((struct
			    sockaddr_in *)ai->ai_addr)->sin_addr, a,
			    sizeof a) == NULL)
				continue;
			pg_list_add(&host, n->host);
			pg_list_add(&addr, a);
			if (nports > 0)
				pg_list_add(&port, p);
			k++;
		}
	}
	if (host == NULL) {
		snprintf(q->error, sizeof q->error, "cannot resolve %s: %s",
		    bad != NULL ? bad->host : "host", bad == NULL ? "no address"
		    : bad->err != 0 ? evutil_gai_strerror(bad->err) :
		    "no address");
		pg_start_free(q);
		pg_fail_soon(q);
	} else
		pg_connect_params(q, host, addr, port);
	free(p);
	free(host);
	free(addr);
	free(port);
}

static void
pg_resolve_cb(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct pg_name	*n = arg;

	n->req = NULL;
	if (n->q == NULL) {	/* cancelled: its pgq is gone */
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		pg_name_free(n);
		return;
	}
	n->err = err;
	n->ai = ai;
	n->done = 1;
	if (--n->q->pending == 0)
		pg_resolved(n->q);
}

/*
 * Parses the conninfo and resolves the names in host= first unless
 * hostaddr= is given (libpq then connects to it and resolves nothing).
 */
static void
pg_connect_start(struct pgq *q, const char *conninfo)
{
	struct evutil_addrinfo	 hints;
	struct evdns_getaddrinfo_request *req;
	struct pg_name		*n;
	const char		*hosts;
	char			*err = NULL;
	size_t			 i, nres = 0;

	q->step = PG_RESOLVING;
	if ((q->opts = PQconninfoParse(conninfo, &err)) == NULL) {
		snprintf(q->error, sizeof q->error, "invalid conninfo: %s",
		    err != NULL ? err : "out of memory");
		PQfreemem(err);
		pg_fail_soon(q);
		return;
	}
	hosts = pg_opt_env(q->opts, "host", "PGHOST");
	if (q->dns == NULL || hosts == NULL ||
	    pg_opt_env(q->opts, "hostaddr", "PGHOSTADDR") != NULL) {
		pg_connect_params(q, NULL, NULL, NULL);
		return;
	}
	q->nnames = pg_list_len(hosts);
	q->names = xcalloc(q->nnames, sizeof *q->names);
	for (i = 0; i < q->nnames; i++) {
		n = q->names[i] = xcalloc(1, sizeof *n);
		n->q = q;
		n->host = pg_list_at(hosts, i);
		if ((n->resolve = pg_is_name(n->host)))
			nres++;
	}
	if (nres == 0) {
		pg_connect_params(q, NULL, NULL, NULL);
		return;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/*
	 * Counted before the first request: one may answer at once (from
	 * /etc/hosts), and only the last answer goes on to connect.
	 */
	q->pending = nres;
	/*
	 * An answer given at once has already been called back, and the last
	 * one frees q->names (nnames 0, which ends the loop): n is only
	 * touched again when the request is still in flight.
	 */
	for (i = 0; i < q->nnames; i++) {
		n = q->names[i];
		if (n->resolve && (req = evdns_getaddrinfo(q->dns, n->host,
		    NULL, &hints, pg_resolve_cb, n)) != NULL)
			n->req = req;
	}
}

struct pgq *
pg_query(struct event_base *base, const struct pg_spec *spec, pg_done_cb done,
    void *arg)
{
	struct pgq	*q;
	struct timeval	 tv;

	q = xcalloc(1, sizeof *q);
	q->base = base;
	q->dns = spec->dns;
	q->done = done;
	q->arg = arg;
	q->sock = -1;
	q->query = spec->query != NULL ? xstrdup(spec->query) : NULL;
	q->timer = evtimer_new(base, pg_timeout_cb, q);
	/* kept until libpq has it: resolving comes first */
	q->password = spec->password != NULL ? xstrdup(spec->password) : NULL;
	tv.tv_sec = (time_t)(spec->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(spec->timeout_ms % 1000) * 1000;
	evtimer_add(q->timer, &tv);
	pg_connect_start(q, spec->conninfo);
	return (q);
}

void
pg_cancel(struct pgq *q)
{
	pg_free(q);
}

int
pg_server_version(const struct pgq *q)
{
	return (q->version);
}

struct pgq *
pg_open(struct event_base *base, const struct pg_spec *spec, pg_done_cb done,
    void *arg)
{
	struct pg_spec	s = *spec;
	struct pgq	*q;

	s.query = NULL;
	q = pg_query(base, &s, done, arg);
	q->session = 1;
	return (q);
}

int
pg_exec(struct pgq *q, const char *sql, uint64_t timeout_ms, pg_done_cb done,
    void *arg)
{
	struct timeval	tv;

	if (q->step != PG_IDLE)
		return (-EBUSY);
	if (q->conn == NULL || PQstatus(q->conn) != CONNECTION_OK)
		return (-ENOTCONN);
	free(q->query);
	q->query = xstrdup(sql);
	q->done = done;
	q->arg = arg;
	tv.tv_sec = (time_t)(timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
	evtimer_add(q->timer, &tv);
	pg_send(q);
	return (0);
}

char *
pg_quote_ident(const char *s)
{
	char	*out, *p;

	out = p = xmalloc(2 * strlen(s) + 3);
	*p++ = '"';
	for (; *s != '\0'; s++) {
		if (*s == '"')
			*p++ = '"';
		*p++ = *s;
	}
	*p++ = '"';
	*p = '\0';
	return (out);
}

PGconn *
pg_conn(struct pgq *q)
{
	return (q->conn != NULL && PQstatus(q->conn) == CONNECTION_OK ?
	    q->conn : NULL);
}

char *
pg_scram_verifier(PGconn *conn, const char *user, const char *password)
{
	/*
	 * Always name the algorithm: with NULL, libpq asks the server for
	 * password_encryption with a synchronous query, which would block
	 * the loop (and the answer could make it md5).
	 */
	return (PQencryptPasswordConn(conn, password, user, "scram-sha-256"));
}

const char *
pg_conninfo_check(const char *value, char *buf, size_t len)
{
	PQconninfoOption	*opts, *o;
	char			*err = NULL;

	/* opsd appends keywords (dbname=, sslmode=): URIs do not take that */
	if (strncmp(value, "postgresql://", 13) == 0 ||
	    strncmp(value, "postgres://", 11) == 0) {
		snprintf(buf, len, "must be in keyword=value form (host=... "
		    "port=... dbname=... user=...), not a URI");
		return (buf);
	}
	if (lazylib_pq() != 0) {
		snprintf(buf, len, "cannot be checked: %s",
		    lazylib_error(LAZYLIB_PQ));
		return (buf);
	}
	if ((opts = PQconninfoParse(value, &err)) == NULL) {
		snprintf(buf, len, "is not a libpq conninfo: %s", err ? err :
		    "parse error");
		buf[strcspn(buf, "\n")] = '\0';
		PQfreemem(err);
		return (buf);
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL) {
			PQconninfoFree(opts);
			snprintf(buf, len, "must not hold the password: put it "
			    "in the file named by password_file");
			return (buf);
		}
	}
	PQconninfoFree(opts);
	return (NULL);
}
