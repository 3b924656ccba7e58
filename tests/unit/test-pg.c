/*
 * PostgreSQL connections (daemon/core/pg.c) without a server: host names
 * are resolved by evdns (from a hosts file of the test's own, no name
 * server) and reach libpq as hostaddr=, which libpq's "connection
 * refused" message shows; names that do not resolve fail on
 * the name; socket directories are left to libpq; a cancel while
 * resolving frees everything. And the SCRAM verifier, computed without a
 * query.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "pg.h"
#include "tap.h"

static struct event_base	*base;
static struct evdns_base	*dns;
static char			 hosts[] = "/tmp/opsd-test-pg.XXXXXX";
static int			 closed_port;

struct outcome {
	int	 done;
	char	 error[512];
};

static void
done_cb(struct pgq *q, const PGresult *res, const char *error, void *arg)
{
	struct outcome	*o = arg;

	(void)q;
	(void)res;
	o->done = 1;
	snprintf(o->error, sizeof o->error, "%s", error ? error : "(none)");
	event_base_loopbreak(base);
}

/* Runs one query to its end; its error message in o. */
static void
run(const char *conninfo, uint64_t timeout_ms, struct outcome *o)
{
	struct pg_spec	spec;

	memset(&spec, 0, sizeof spec);
	memset(o, 0, sizeof *o);
	spec.conninfo = conninfo;
	spec.query = "SELECT 1";
	spec.timeout_ms = timeout_ms;
	spec.dns = dns;
	spec.password = "not-used";
	pg_query(base, &spec, done_cb, o);
	CHECK(!o->done);	/* never from inside pg_query */
	event_base_dispatch(base);
	CHECK(o->done);
}

/* A TCP port on 127.0.0.1 that refuses connections. */
static int
refusing_port(void)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof sin;
	int			s, port;

	s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(s, (struct sockaddr *)&sin, sizeof sin);
	getsockname(s, (struct sockaddr *)&sin, &len);
	port = ntohs(sin.sin_port);
	close(s);	/* bound, never listening: now refused */
	return (port);
}

static void
test_name_becomes_hostaddr(void)
{
	struct outcome	o;
	char		ci[256];

	snprintf(ci, sizeof ci, "host=db.unit-test port=%d dbname=x user=u",
	    closed_port);
	run(ci, 5000, &o);
	/* only the test's hosts file knows the name, and that address */
	CHECK(strstr(o.error, "\"127.0.0.2\"") != NULL);
	CHECK(strstr(o.error, "refused") != NULL);
	if (strstr(o.error, "127.0.0.2") == NULL)
		tap_diag("error: %s", o.error);
}

static void
test_ip_and_socket_untouched(void)
{
	struct outcome	o;
	char		ci[256];

	snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=x user=u",
	    closed_port);
	run(ci, 5000, &o);
	CHECK(strstr(o.error, "127.0.0.1") != NULL);
	CHECK(strstr(o.error, "refused") != NULL);
	run("host=/nonexistent-opsd-dir port=1 dbname=x user=u", 5000, &o);
	CHECK(strstr(o.error, "/nonexistent-opsd-dir/.s.PGSQL.1") != NULL);
	if (strstr(o.error, "/nonexistent-opsd-dir") == NULL)
		tap_diag("error: %s", o.error);
}

static void
test_host_list_keeps_order(void)
{
	struct outcome	o;
	char		ci[256];

	/* a socket first, then the name: libpq reports both, in order */
	snprintf(ci, sizeof ci, "host=/nonexistent-opsd-dir,db.unit-test "
	    "port=%d,%d dbname=x user=u", closed_port, closed_port);
	run(ci, 5000, &o);
	/* one line is kept: the first host's failure */
	CHECK(strstr(o.error, "/nonexistent-opsd-dir") != NULL);
	if (strstr(o.error, "/nonexistent-opsd-dir") == NULL)
		tap_diag("error: %s", o.error);
}

static void
test_unresolved_name_fails_on_it(void)
{
	struct outcome	o;

	/* no name server: the name never resolves */
	run("host=nowhere.unit-test dbname=x user=u", 300, &o);
	CHECK(strncmp(o.error, "cannot resolve nowhere.unit-test: ", 34) == 0);
	if (strncmp(o.error, "cannot resolve", 14) != 0)
		tap_diag("error: %s", o.error);
}

static void
test_hostaddr_given_is_kept(void)
{
	struct outcome	o;
	char		ci[256];

	/* the name is not looked up at all: hostaddr says where */
	snprintf(ci, sizeof ci, "host=nowhere.unit-test hostaddr=127.0.0.1 "
	    "port=%d dbname=x user=u", closed_port);
	run(ci, 5000, &o);
	CHECK(strstr(o.error, "refused") != NULL);
}

static void
test_cancel_while_resolving(void)
{
	struct pg_spec	 spec;
	struct outcome	 o;
	struct pgq	*q;
	struct timeval	 tv = { 0, 50000 };

	memset(&spec, 0, sizeof spec);
	memset(&o, 0, sizeof o);
	spec.conninfo = "host=nowhere.unit-test,db.unit-test dbname=x";
	spec.query = "SELECT 1";
	spec.timeout_ms = 5000;
	spec.dns = dns;
	q = pg_query(base, &spec, done_cb, &o);
	pg_cancel(q);
	/* the cancelled request calls back later: it must find nothing */
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	CHECK(!o.done);
}

static void
test_scram_verifier(void)
{
	static const char *const k[] = { "host", "port", NULL };
	static const char *const val[] = { "/nonexistent-opsd-dir", "1", NULL };
	PGconn	*conn;
	char	*v, *w;

	/* a connection that failed still carries libpq's settings */
	conn = PQconnectStartParams(k, val, 0);
	CHECK(conn != NULL);
	v = pg_scram_verifier(conn, "app", "secret");
	w = pg_scram_verifier(conn, "app", "secret");
	CHECK(v != NULL && w != NULL);
	if (v != NULL && w != NULL) {
		CHECK(strncmp(v, "SCRAM-SHA-256$", 14) == 0);
		CHECK(strstr(v, "secret") == NULL);
		CHECK(strcmp(v, w) != 0);	/* a fresh salt each time */
	}
	PQfreemem(v);
	PQfreemem(w);
	PQfinish(conn);
}

int
main(void)
{
	FILE	*f;
	int	 fd;

	base = event_base_new();
	dns = evdns_base_new(base, 0);
	if ((fd = mkstemp(hosts)) == -1 || (f = fdopen(fd, "w")) == NULL) {
		tap_diag("cannot create %s: %s", hosts, strerror(errno));
		return (1);
	}
	fprintf(f, "127.0.0.2 db.unit-test\n");
	fclose(f);
	if (evdns_base_load_hosts(dns, hosts) != 0)
		tap_diag("cannot load %s", hosts);
	closed_port = refusing_port();

	RUN(test_name_becomes_hostaddr);
	RUN(test_ip_and_socket_untouched);
	RUN(test_host_list_keeps_order);
	RUN(test_unresolved_name_fails_on_it);
	RUN(test_hostaddr_given_is_kept);
	RUN(test_cancel_while_resolving);
	RUN(test_scram_verifier);

	unlink(hosts);
	evdns_base_free(dns, 0);
	event_base_free(base);
	return (tap_done());
}
