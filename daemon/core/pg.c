#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "pg.h"
#include "util.h"

enum pg_step {
	PG_CONNECTING,
	PG_SENDING,
	PG_READING,
	PG_IDLE,
};

struct pgq {
	struct event_base	*base;
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
};

static void	pg_io_cb(evutil_socket_t, short, void *);

static void
pg_free(struct pgq *q)
{
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
		if (q->res == NULL)
			q->res = r;
		else
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
		pg_finish(q, q->conn != NULL ? PQerrorMessage(q->conn) :
		    "out of memory");
		return;
	}
	pg_finish(q, q->step == PG_CONNECTING ? "timed out connecting" :
	    "timed out waiting for the query");
}

struct pgq *
pg_query(struct event_base *base, const struct pg_spec *spec, pg_done_cb done,
    void *arg)
{
	const char	*keys[5], *vals[5];
	struct pgq	*q;
	struct timeval	 tv;
	int		 n = 0;

	q = xcalloc(1, sizeof *q);
	q->base = base;
	q->done = done;
	q->arg = arg;
	q->sock = -1;
	q->query = spec->query != NULL ? xstrdup(spec->query) : NULL;
	q->timer = evtimer_new(base, pg_timeout_cb, q);

	/* dbname with expand_dbname=1 takes a whole conninfo string */
	keys[n] = "dbname";
	vals[n++] = spec->conninfo;
	if (spec->password != NULL) {
		keys[n] = "password";
		vals[n++] = spec->password;
	}
	keys[n] = "application_name";
	vals[n++] = "opsd";
	keys[n] = NULL;
	vals[n] = NULL;
	q->conn = PQconnectStartParams(keys, vals, 1);
	tv.tv_sec = (time_t)(spec->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(spec->timeout_ms % 1000) * 1000;
	evtimer_add(q->timer, &tv);
	if (q->conn == NULL || PQstatus(q->conn) == CONNECTION_BAD) {
		/* report from the loop, never from inside the caller */
		q->failed_start = 1;
		tv.tv_sec = 0;
		tv.tv_usec = 0;
		evtimer_add(q->timer, &tv);
	} else
		pg_wait(q, EV_WRITE);
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
