/*
 * postgres probes: connect with the conninfo and the password from
 * password_file (read at every run, so a rotated password is picked up),
 * run the query (default SELECT 1), record the server version. A fresh
 * connection each run: the probe is also a check that the server accepts
 * new connections, which a pooled connection would hide.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "evt.h"
#include "pg.h"
#include "probe.h"
#include "secretfile.h"
#include "util.h"

static void
pg_probe_done(struct pgq *q, const PGresult *res, const char *error,
    void *arg)
{
	struct probe		*p = arg;
	struct probe_result	 r;
	const char		*value;
	int			 v = pg_server_version(q);

	memset(&r, 0, sizeof r);
	p->kstate = NULL;
	if (v > 0)
		snprintf(r.server_version, sizeof r.server_version, "%d.%d",
		    v / 10000, v % 10000);
	if (error != NULL) {
		probe_fail(&r, "%s", error);
		probe_done(p, &r);
		return;
	}
	/*
	 * The first value says what the query found: "12 (SELECT ...)",
	 * shown as "ok: 12 (SELECT ...)" by probe list.
	 */
	value = PQntuples(res) > 0 && PQnfields(res) > 0 &&
	    !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : NULL;
	if (p->conf->expect != NULL &&
	    !util_expect_match(p->conf->expect, value))
		probe_fail(&r, "got %.64s, expected %s (%.96s)",
		    value != NULL ? value : "no value", p->conf->expect,
		    p->conf->query);
	else if (value != NULL) {
		r.ok = 1;
		snprintf(r.reason, sizeof r.reason, "%.64s (%.96s)", value,
		    p->conf->query);
	} else {
		r.ok = 1;
		snprintf(r.reason, sizeof r.reason, "%s, %d row%s",
		    PQcmdStatus((PGresult *)res), PQntuples(res),
		    PQntuples(res) == 1 ? "" : "s");
	}
	probe_done(p, &r);
}

static int
pg_start(struct probe *p)
{
	struct pg_spec	spec;
	char		password[1024];
	int		r, loose;

	memset(&spec, 0, sizeof spec);
	spec.conninfo = p->conf->conninfo;
	spec.query = p->conf->query;
	spec.timeout_ms = p->conf->timeout;
	spec.dns = p->opsd->dns;	/* host names off the loop */
	if (p->conf->password_file != NULL) {
		/* read at each run, so a rotated password is picked up */
		if ((r = secretfile_read(p->conf->password_file, password,
		    sizeof password, SECRETFILE_ONE_LINE, &loose)) != 0)
			return (r);
		if (loose && !p->secret_warned)
			evt_log_about(LOG_WARNING, "probe.secret", "probe",
			    p->conf->name, "probe %s: %s is readable or "
			    "writable by group or other", p->conf->name,
			    p->conf->password_file);
		p->secret_warned = loose;
		spec.password = password;
	}
	p->kstate = pg_query(p->opsd->base, &spec, pg_probe_done, p);
	secretfile_cleanse(password, sizeof password);
	return (0);
}

static void
pg_cancel_probe(struct probe *p)
{
	if (p->kstate != NULL)
		pg_cancel(p->kstate);
	p->kstate = NULL;
}

const struct probe_ops probe_pg_ops = {
	"postgres", pg_start, pg_cancel_probe, pg_cancel_probe, NULL
};
