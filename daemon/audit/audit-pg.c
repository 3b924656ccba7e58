/*
 * The PostgreSQL checks of one [database]: one async session (core/pg.c
 * through the db room), as the admin role when the database has one
 * (pg_authid and pg_hba_file_rules need it) on the application's
 * database, else as the ordinary role. One query per group of checks,
 * one after the other on the session, each only when a selected check
 * needs it; a query that fails makes its checks "could not check", the
 * others still run. Every query reads catalogs and statistics only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "audit-int.h"
#include "daemon.h"
#include "db.h"
#include "util.h"

void audit_run_pg_gone(struct audit_run *, struct audit_pg *);

/*
 * When the statistics began: the last reset or the server's start, and
 * (for the admin role, which may call pg_stat_file) the database's own
 * creation, so a database restored yesterday into an old server is
 * still young (PgHero #140).
 */
#define STATS_START_USER	"greatest(coalesce(d.stats_reset, 'epoch'), " \
	"pg_postmaster_start_time())"
#define STATS_START_ADMIN	"greatest(coalesce(d.stats_reset, 'epoch'), " \
	"pg_postmaster_start_time(), (pg_stat_file('base/' || b.oid || " \
	"'/PG_VERSION', true)).modification)"

#define UNUSED_SQL(start) "SELECT s.schemaname || '.' || s.indexrelname, "\
	    "s.schemaname || '.' || s.relname, pg_relation_size(s.indexrelid), "\
	    "(SELECT extract(epoch FROM now() - " start ")::bigint FROM "\
	    "pg_stat_database d, pg_database b WHERE d.datname = "\
	    "current_database() AND b.datname = d.datname) FROM "\
	    "pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = "\
	    "s.indexrelid WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT "\
	    "i.indisprimary AND NOT EXISTS (SELECT 1 FROM pg_constraint c "\
	    "WHERE c.conindid = s.indexrelid) AND NOT EXISTS (SELECT 1 FROM "\
	    "pg_constraint f WHERE f.contype = 'f' AND f.conrelid = i.indrelid "\
	    "AND (i.indkey::int2[])[0:cardinality(f.conkey) - 1] @> f.conkey) "\
	    "ORDER BY 3 DESC, 1"

static const char unused_admin[] = UNUSED_SQL(STATS_START_ADMIN);

const char *const audit_queries[AQ_N] = {
	[AQ_SETTINGS] = "SELECT name, setting, coalesce(sourcefile, ''), "
	    "coalesce(sourceline, 0) FROM pg_settings WHERE name IN ('ssl', "
	    "'ssl_min_protocol_version', 'password_encryption', "
	    "'listen_addresses', 'log_connections', 'log_disconnections', "
	    "'log_statement', 'log_line_prefix', 'log_file_mode', "
	    "'logging_collector', 'max_connections', 'statement_timeout', "
	    "'idle_in_transaction_session_timeout', 'idle_session_timeout', "
	    "'shared_preload_libraries', 'hba_file', "
	    "'superuser_reserved_connections')",
	[AQ_HBA] = "SELECT line_number, type, array_to_string(database, ','), "
	    "array_to_string(user_name, ','), coalesce(address, ''), "
	    "coalesce(netmask, ''), coalesce(auth_method, ''), "
	    "coalesce(error, '') FROM pg_hba_file_rules ORDER BY line_number",
	[AQ_AUTHID] = "SELECT rolname FROM pg_authid WHERE rolpassword LIKE "
	    "'md5%' ORDER BY 1",
	/* the role's own settings, also those IN DATABASE the audited one */
	[AQ_ROLES] = "SELECT r.rolname, r.rolsuper, r.rolcreaterole, "
	    "r.rolconnlimit, r.rolvaliduntil IS NULL, "
	    "coalesce(array_to_string(r.rolconfig, E'\\n'), '') || E'\\n' || "
	    "coalesce((SELECT array_to_string(s.setconfig, E'\\n') FROM "
	    "pg_db_role_setting s JOIN pg_database d ON d.oid = "
	    "s.setdatabase WHERE s.setrole = r.oid AND d.datname = "
	    "current_database()), '') FROM pg_roles r WHERE r.rolcanlogin AND "
	    "r.rolname !~ '^pg_' ORDER BY 1",
	[AQ_FKEYS] = "SELECT c.conrelid::regclass::text, c.conname, "
	    "(SELECT string_agg(a.attname, ', ' ORDER BY k.n) FROM "
	    "unnest(c.conkey) WITH ORDINALITY k(attnum, n) JOIN pg_attribute a "
	    "ON a.attrelid = c.conrelid AND a.attnum = k.attnum) FROM "
	    "pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN "
	    "pg_namespace ns ON ns.oid = r.relnamespace WHERE c.contype = 'f' "
	    "AND ns.nspname NOT IN ('pg_catalog', 'information_schema') AND "
	    "NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = "
	    "c.conrelid AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] "
	    "@> c.conkey) ORDER BY 1, 2",
	[AQ_UNUSED] = UNUSED_SQL(STATS_START_USER),
	[AQ_INVALID] = "SELECT i.indexrelid::regclass::text, "
	    "i.indrelid::regclass::text FROM pg_index i WHERE NOT i.indisvalid "
	    "ORDER BY 1",
	[AQ_ACTIVITY] = "SELECT count(*), count(*) FILTER (WHERE state = "
	    "'idle in transaction' AND now() - state_change > interval "
	    "'1 minute'), count(*) FILTER (WHERE wait_event_type = 'Lock'), "
	    "current_setting('max_connections')::int, "
	    "current_setting('superuser_reserved_connections')::int FROM "
	    "pg_stat_activity WHERE backend_type = 'client backend'",
	[AQ_WRAP] = "SELECT datname, age(datfrozenxid) FROM pg_database ORDER "
	    "BY 2 DESC",
};

struct audit_pg {
	struct audit_run	*run;
	const struct db_conf	*db;	/* the run's config outlives it */
	struct pgq		*q;
	int			 admin;
	char			*dbname;
	char			*user;
	char			 where[160];
	int			 next;		/* the next query */
	PGresult		*settings;
	void			(*done)(struct audit_run *);
};

static int
query_wanted(struct audit_pg *p, int q)
{
	size_t	i;

	for (i = 0; i < audit_nchecks; i++)
		if (audit_checks[i].scope == AUDIT_PG && audit_checks[i].query ==
		    q && audit_selected(p->run, &audit_checks[i]))
			return (1);
	return (0);
}

static void
unchecked_from(struct audit_pg *p, int from, int only, const char *why)
{
	size_t	i;

	for (i = 0; i < audit_nchecks; i++)
		if (audit_checks[i].scope == AUDIT_PG && audit_checks[i].query >=
		    from && (!only || audit_checks[i].query == from) &&
		    audit_selected(p->run, &audit_checks[i]))
			audit_unchecked(p->run, audit_checks[i].id, p->where,
			    "%s", why);
}

static void
pg_end(struct audit_pg *p)
{
	struct audit_run	*r = p->run;
	void			(*done)(struct audit_run *) = p->done;

	audit_run_pg_gone(r, p);
	audit_pg_cancel(p);
	done(r);
}

static void next_query(struct audit_pg *);

static void
query_cb(struct pgq *q, const PGresult *res, const char *error, void *arg)
{
	struct audit_pg		*p = arg;
	struct audit_input	 in;
	int			 qi = p->next - 1;
	size_t			 i;
	char			 why[600];

	(void)q;
	if (error != NULL || res == NULL) {
		snprintf(why, sizeof why, "the query failed: %s", error != NULL ?
		    error : "no result");
		if (qi == AQ_SETTINGS) {
			/* the settings feed other checks too: nothing runs */
			unchecked_from(p, AQ_SETTINGS, 0, why);
			pg_end(p);
			return;
		}
		unchecked_from(p, qi, 1, why);
		next_query(p);
		return;
	}
	if (qi == AQ_SETTINGS)
		p->settings = PQcopyResult(res, PG_COPYRES_ATTRS |
		    PG_COPYRES_TUPLES);
	memset(&in, 0, sizeof in);
	in.db = p->db;
	in.res = res;
	in.settings = p->settings;
	in.app_user = p->user;
	in.admin = p->admin;
	in.path = p->where;
	for (i = 0; i < audit_nchecks; i++)
		if (audit_checks[i].scope == AUDIT_PG && audit_checks[i].query ==
		    qi && audit_selected(p->run, &audit_checks[i]))
			audit_checks[i].fn(p->run, &audit_checks[i], &in);
	next_query(p);
}

static void
next_query(struct audit_pg *p)
{
	const struct audit_conf	*a = audit_run_conf(p->run);
	const char		*sql;
	int			 e, qi;

	/* the settings come first whatever is selected: others read them */
	while (p->next < AQ_N && p->next != AQ_SETTINGS &&
	    !query_wanted(p, p->next))
		p->next++;
	if (p->next >= AQ_N) {
		pg_end(p);
		return;
	}
	qi = p->next++;
	sql = qi == AQ_UNUSED && p->admin ? unused_admin : audit_queries[qi];
	e = pg_exec(p->q, sql, a != NULL ? a->timeout : 10000, query_cb, p);
	if (e != 0) {
		unchecked_from(p, qi, 0, "the session is gone");
		pg_end(p);
	}
}

static void
open_cb(struct pgq *q, const PGresult *res, const char *error, void *arg)
{
	struct audit_pg	*p = arg;
	char		 why[600];

	(void)res;
	p->q = q;
	if (error != NULL) {
		/* the session stays until pg_end() cancels it */
		snprintf(why, sizeof why, "cannot connect as %s: %s", p->admin ?
		    "the admin role" : "the ordinary role", error);
		unchecked_from(p, 0, 0, why);
		pg_end(p);
		return;
	}
	next_query(p);
}

static char *
conninfo_get(const char *conninfo, const char *key)
{
	PQconninfoOption	*opts, *o;
	char			*v = NULL;

	if ((opts = PQconninfoParse(conninfo, NULL)) == NULL)
		return (NULL);
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, key) == 0 && o->val != NULL &&
		    o->val[0] != '\0')
			v = xstrdup(o->val);
	PQconninfoFree(opts);
	return (v);
}

struct audit_pg *
audit_pg_start(struct audit_run *r, const struct db_conf *d,
    void (*done)(struct audit_run *))
{
	const struct audit_conf	*a = audit_run_conf(r);
	struct audit_pg		*p;

	p = xcalloc(1, sizeof *p);
	p->run = r;
	p->db = d;
	p->done = done;
	p->admin = d->admin_conninfo != NULL;
	p->dbname = conninfo_get(d->conninfo, "dbname");
	p->user = conninfo_get(d->conninfo, "user");
	snprintf(p->where, sizeof p->where, "database %s", d->name);
	p->q = db_session_open(audit_run_opsd(r), d, p->admin, p->dbname,
	    a != NULL ? a->timeout : 10000, open_cb, p);
	return (p);
}

void
audit_pg_cancel(struct audit_pg *p)
{
	if (p->q != NULL)
		pg_cancel(p->q);
	if (p->settings != NULL)
		PQclear(p->settings);
	free(p->dbname);
	free(p->user);
	free(p);
}

/* --- helpers for the checks ---------------------------------------------- */

static int
setting_row(const struct audit_input *in, const char *name)
{
	int	i;

	if (in->settings == NULL)
		return (-1);
	for (i = 0; i < PQntuples(in->settings); i++)
		if (strcmp(PQgetvalue(in->settings, i, 0), name) == 0)
			return (i);
	return (-1);
}

static const char *
setting(const struct audit_input *in, const char *name)
{
	int	i = setting_row(in, name);

	return (i < 0 ? NULL : PQgetvalue(in->settings, i, 1));
}

/* "database main: setting ssl (/etc/postgresql/15/main/postgresql.conf:12)" */
static void
setting_where(const struct audit_input *in, const char *name, char *buf,
    size_t len)
{
	int	i = setting_row(in, name);

	if (i >= 0 && PQgetvalue(in->settings, i, 2)[0] != '\0')
		snprintf(buf, len, "%s: setting %s (%s:%s)", in->path, name,
		    PQgetvalue(in->settings, i, 2), PQgetvalue(in->settings, i,
		    3));
	else
		snprintf(buf, len, "%s: setting %s", in->path, name);
}

static int
is_on(const char *v)
{
	return (v != NULL && strcmp(v, "on") == 0);
}

/* a finding on one setting: fix is the directive to write */
static void setting_finding(struct audit_run *, const struct audit_check *,
    const struct audit_input *, const char *, int, const char *,
    const char *, ...) __attribute__((format(printf, 7, 8)));
static void
setting_finding(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in, const char *name, int sev,
    const char *directive, const char *fmt, ...)
{
	char	where[600], fix[600], *what;
	va_list	ap;

	setting_where(in, name, where, sizeof where);
	snprintf(fix, sizeof fix, "%s in postgresql.conf, then SELECT "
	    "pg_reload_conf()", directive);
	va_start(ap, fmt);
	xvasprintf(&what, fmt, ap);
	va_end(ap);
	audit_finding_sev(r, c, sev, where, fix, "%s", what);
	free(what);
}

/* --- settings ------------------------------------------------------------ */

void
audit_chk_pg_ssl(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	if (is_on(setting(in, "ssl")) || setting(in, "ssl") == NULL)
		return;
	setting_finding(r, c, in, "ssl", c->sev, "ssl = on (with "
	    "ssl_cert_file and ssl_key_file)", "%s: passwords and data cross "
	    "the network in clear", "ssl is off");
}

void
audit_chk_pg_ssl_min_protocol(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	const char	*v = setting(in, "ssl_min_protocol_version");

	if (v == NULL || !is_on(setting(in, "ssl")))
		return;
	if (strcmp(v, "TLSv1.2") == 0 || strcmp(v, "TLSv1.3") == 0)
		return;
	setting_finding(r, c, in, "ssl_min_protocol_version", c->sev,
	    "ssl_min_protocol_version = 'TLSv1.2'", "ssl_min_protocol_version "
	    "is %s", v[0] != '\0' ? v : "empty (any)");
}

void
audit_chk_pg_password_encryption(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	const char	*v = setting(in, "password_encryption");

	if (v == NULL || strcmp(v, "scram-sha-256") == 0)
		return;
	setting_finding(r, c, in, "password_encryption", c->sev,
	    "password_encryption = 'scram-sha-256'", "password_encryption is "
	    "%s: new passwords are stored as md5 verifiers", v);
}

void
audit_chk_pg_listen_all(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	const char	*v = setting(in, "listen_addresses");

	if (v == NULL || (strchr(v, '*') == NULL && strstr(v, "0.0.0.0") ==
	    NULL && strcmp(v, "::") != 0))
		return;
	setting_finding(r, c, in, "listen_addresses", c->sev,
	    "listen_addresses = 'localhost, 10.0.0.5' (the addresses clients "
	    "use)", "listen_addresses is '%s': every interface accepts "
	    "connections", v);
}

void
audit_chk_pg_log_connections(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	if (setting(in, "log_connections") == NULL ||
	    is_on(setting(in, "log_connections")))
		return;
	setting_finding(r, c, in, "log_connections", c->sev, "log_connections "
	    "= on", "%s: logins leave no trace in the server log",
	    "log_connections is off");
}

void
audit_chk_pg_log_disconnections(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	if (setting(in, "log_disconnections") == NULL ||
	    is_on(setting(in, "log_disconnections")))
		return;
	setting_finding(r, c, in, "log_disconnections", c->sev,
	    "log_disconnections = on", "%s: session ends and durations are "
	    "not logged", "log_disconnections is off");
}

void
audit_chk_pg_log_statement(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	const char	*v = setting(in, "log_statement");

	if (v == NULL || strcmp(v, "none") != 0)
		return;
	setting_finding(r, c, in, "log_statement", c->sev, "log_statement = "
	    "'ddl' (and change passwords with SCRAM verifiers, as opsd does)",
	    "log_statement is %s: CREATE, ALTER and DROP are not logged", v);
}

void
audit_chk_pg_log_statement_password(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	const char	*v = setting(in, "log_statement");

	if (v == NULL || strcmp(v, "none") == 0)
		return;
	setting_finding(r, c, in, "log_statement", c->sev, "set passwords "
	    "only as verifiers (psql's \\password, PQencryptPasswordConn, "
	    "opsd's [secret]); never ALTER ROLE ... PASSWORD 'plaintext'",
	    "log_statement is %s: an ALTER ROLE ... PASSWORD 'plaintext' "
	    "lands in the log in clear", v);
}

void
audit_chk_pg_log_line_prefix(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	const char	*v = setting(in, "log_line_prefix");
	char		 miss[64] = "";

	if (v == NULL)
		return;
	if (strstr(v, "%u") == NULL)
		strcat(miss, " %u");
	if (strstr(v, "%d") == NULL)
		strcat(miss, " %d");
	if (strstr(v, "%h") == NULL && strstr(v, "%r") == NULL)
		strcat(miss, " %h");
	if (miss[0] == '\0')
		return;
	setting_finding(r, c, in, "log_line_prefix", c->sev, "log_line_prefix "
	    "= '%m [%p] %q%u@%d from %h '", "log_line_prefix lacks%s: a log "
	    "line does not say who, where or from where", miss);
}

void
audit_chk_pg_log_file_mode(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	const char	*v = setting(in, "log_file_mode");
	unsigned long	 m;
	char		*end;
	char		 what[64];

	if (v == NULL || !is_on(setting(in, "logging_collector")))
		return;
	m = strtoul(v, &end, 8);
	if (*end != '\0' || (m & 0006) == 0)
		return;
	snprintf(what, sizeof what, "%04lo", m);
	setting_finding(r, c, in, "log_file_mode", c->sev, "log_file_mode = "
	    "0600 (or 0640 for a log reader's group)", "log_file_mode is %s: "
	    "any local user reads the server log", what);
}

void
audit_chk_pg_stat_statements(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	const char	*v = setting(in, "shared_preload_libraries");

	if (v == NULL || strstr(v, "pg_stat_statements") != NULL)
		return;
	setting_finding(r, c, in, "shared_preload_libraries", c->sev,
	    "shared_preload_libraries = 'pg_stat_statements' (a restart), then "
	    "CREATE EXTENSION pg_stat_statements", "%s: slow queries cannot be "
	    "found afterwards", "pg_stat_statements is not loaded");
}

/* --- pg_hba -------------------------------------------------------------- */

/* columns: line, type, databases, users, address, netmask, method, error */
static void
hba_where(const struct audit_input *in, int row, char *buf, size_t len)
{
	const char	*file = setting(in, "hba_file");

	snprintf(buf, len, "%s: %s:%s (%s %s %s%s%s)", in->path,
	    file != NULL ? file : "pg_hba.conf", PQgetvalue(in->res, row, 0),
	    PQgetvalue(in->res, row, 1), PQgetvalue(in->res, row, 2),
	    PQgetvalue(in->res, row, 3), PQgetvalue(in->res, row, 4)[0] ?
	    " " : "", PQgetvalue(in->res, row, 4));
}

static void
hba_method(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in, const char *method, const char *what)
{
	char	where[800];
	int	i, local;

	for (i = 0; i < PQntuples(in->res); i++) {
		if (strcmp(PQgetvalue(in->res, i, 6), method) != 0)
			continue;
		local = strcmp(PQgetvalue(in->res, i, 1), "local") == 0;
		hba_where(in, i, where, sizeof where);
		audit_finding_sev(r, c, strcmp(method, "trust") == 0 && local ?
		    AUDIT_HIGH : c->sev, where, "write scram-sha-256 (or peer "
		    "for local) as the method, then SELECT pg_reload_conf()",
		    "%s", what);
	}
}

void
audit_chk_pg_hba_trust(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	hba_method(r, c, in, "trust", "trust: anyone who reaches the server "
	    "logs in as any role of the rule, without a password");
}

void
audit_chk_pg_hba_password(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	hba_method(r, c, in, "password", "password: the password crosses the "
	    "connection in clear");
}

void
audit_chk_pg_hba_md5(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	hba_method(r, c, in, "md5", "md5: a stolen verifier is as good as the "
	    "password, and md5 is deprecated");
}

void
audit_chk_pg_hba_open(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	const char	*addr, *mask, *m;
	char		 where[800];
	int		 i;

	for (i = 0; i < PQntuples(in->res); i++) {
		if (strncmp(PQgetvalue(in->res, i, 1), "host", 4) != 0)
			continue;
		addr = PQgetvalue(in->res, i, 4);
		mask = PQgetvalue(in->res, i, 5);
		m = PQgetvalue(in->res, i, 6);
		if (strcmp(m, "reject") == 0)
			continue;
		if (!(strcmp(addr, "all") == 0 || ((strcmp(addr, "0.0.0.0") ==
		    0 || strcmp(addr, "::") == 0) && (strcmp(mask, "0.0.0.0") ==
		    0 || strcmp(mask, "::") == 0))))
			continue;
		hba_where(in, i, where, sizeof where);
		audit_finding(r, c, where, "name the clients' network (for "
		    "example 10.0.0.0/24) instead of every address", "a %s rule "
		    "accepts %s from any address", PQgetvalue(in->res, i, 1), m);
	}
}

void
audit_chk_pg_hba_no_ssl_reject(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	int	i;
	char	where[300];

	for (i = 0; i < PQntuples(in->res); i++)
		if (strcmp(PQgetvalue(in->res, i, 1), "hostnossl") == 0 &&
		    strcmp(PQgetvalue(in->res, i, 6), "reject") == 0)
			return;
	snprintf(where, sizeof where, "%s: %s", in->path, setting(in,
	    "hba_file") != NULL ? setting(in, "hba_file") : "pg_hba.conf");
	audit_finding(r, c, where, "put 'hostnossl all all 0.0.0.0/0 reject' "
	    "and 'hostnossl all all ::/0 reject' first", "no hostnossl ... "
	    "reject rule: a client that does not ask for TLS is served in "
	    "clear");
}

void
audit_chk_pg_hba_error(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	char	where[800];
	int	i;

	for (i = 0; i < PQntuples(in->res); i++) {
		if (PQgetvalue(in->res, i, 7)[0] == '\0')
			continue;
		hba_where(in, i, where, sizeof where);
		audit_finding(r, c, where, "fix the line; the server keeps its "
		    "old rules until a reload that parses", "%s",
		    PQgetvalue(in->res, i, 7));
	}
}

/* --- roles --------------------------------------------------------------- */

void
audit_chk_pg_md5_verifier(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	char	where[300], fix[300];
	int	i;

	for (i = 0; i < PQntuples(in->res); i++) {
		snprintf(where, sizeof where, "%s: role %s", in->path,
		    PQgetvalue(in->res, i, 0));
		snprintf(fix, sizeof fix, "with password_encryption = "
		    "'scram-sha-256', set the password again (\\password %s in "
		    "psql, or a [secret] kind = postgres-password)",
		    PQgetvalue(in->res, i, 0));
		audit_finding(r, c, where, fix, "the password is stored as an "
		    "md5 verifier");
	}
}

/* columns: name, super, createrole, connlimit, no expiry, config */
static int
app_row(const struct audit_input *in)
{
	int	i;

	if (in->app_user == NULL)
		return (-1);
	for (i = 0; i < PQntuples(in->res); i++)
		if (strcmp(PQgetvalue(in->res, i, 0), in->app_user) == 0)
			return (i);
	return (-1);
}

/* 1 if the role's own settings (ALTER ROLE ... SET) give name a value > 0 */
static int
role_sets(const struct audit_input *in, int row, const char *name)
{
	const char	*cfg, *p;
	size_t		 n = strlen(name);

	if (row < 0)
		return (0);
	cfg = PQgetvalue(in->res, row, 5);
	for (p = cfg; p != NULL && *p != '\0'; p = strchr(p, '\n'),
	    p = p != NULL ? p + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == '=')
			return (p[n + 1] != '0' || (p[n + 2] != '\n' &&
			    p[n + 2] != '\0'));
	return (0);
}

static void
timeout_check(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in, const char *name, const char *value)
{
	const char	*v = setting(in, name);
	int		 row = app_row(in);
	char		 where[600], fix[600];

	if (v == NULL || strcmp(v, "0") != 0 || role_sets(in, row, name))
		return;
	setting_where(in, name, where, sizeof where);
	if (in->app_user != NULL)
		snprintf(fix, sizeof fix, "ALTER ROLE %s SET %s = '%s' (or %s = "
		    "'%s' in postgresql.conf)", in->app_user, name, value, name,
		    value);
	else
		snprintf(fix, sizeof fix, "%s = '%s' in postgresql.conf", name,
		    value);
	audit_finding(r, c, where, fix, "%s is 0 (none) for %s%s", name,
	    in->app_user != NULL ? "role " : "every role",
	    in->app_user != NULL ? in->app_user : "");
}

void
audit_chk_pg_statement_timeout(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	timeout_check(r, c, in, "statement_timeout", "30s");
}

void
audit_chk_pg_idle_tx_timeout(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	timeout_check(r, c, in, "idle_in_transaction_session_timeout", "60s");
}

void
audit_chk_pg_idle_session_timeout(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	timeout_check(r, c, in, "idle_session_timeout", "1h");
}

static void
app_flag(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in, int col, const char *what,
    const char *fix_pre, const char *fix_post)
{
	int	row = app_row(in);
	char	where[300], fix[300];

	if (row < 0 || strcmp(PQgetvalue(in->res, row, col), "t") != 0)
		return;
	snprintf(where, sizeof where, "%s: role %s", in->path, in->app_user);
	snprintf(fix, sizeof fix, "%s%s%s", fix_pre, in->app_user, fix_post);
	audit_finding(r, c, where, fix, "%s", what);
}

void
audit_chk_pg_app_superuser(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	app_flag(r, c, in, 1, "the role the application connects as is a "
	    "superuser: any SQL injection owns the server",
	    "ALTER ROLE ", " NOSUPERUSER (grant it what it needs instead)");
}

void
audit_chk_pg_app_createrole(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	app_flag(r, c, in, 2, "the role the application connects as may "
	    "create and alter roles", "ALTER ROLE ", " NOCREATEROLE");
}

void
audit_chk_pg_connlimit(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	const char	*max = setting(in, "max_connections");
	char		 where[300], fix[300];
	int		 i;

	for (i = 0; i < PQntuples(in->res); i++) {
		if (strcmp(PQgetvalue(in->res, i, 1), "t") == 0 ||
		    strcmp(PQgetvalue(in->res, i, 3), "-1") != 0)
			continue;
		snprintf(where, sizeof where, "%s: role %s", in->path,
		    PQgetvalue(in->res, i, 0));
		snprintf(fix, sizeof fix, "ALTER ROLE %s CONNECTION LIMIT 20 "
		    "(what its pool needs, below max_connections)",
		    PQgetvalue(in->res, i, 0));
		audit_finding(r, c, where, fix, "no connection limit: a leaking "
		    "pool can take all %s of max_connections", max != NULL ?
		    max : "?");
	}
}

void
audit_chk_pg_password_expiry(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	const struct audit_conf	*a = audit_run_conf(r);
	char			 where[300], fix[300];
	int			 i;

	if (a == NULL || !a->require_password_expiry)
		return;
	for (i = 0; i < PQntuples(in->res); i++) {
		if (strcmp(PQgetvalue(in->res, i, 4), "t") != 0)
			continue;
		snprintf(where, sizeof where, "%s: role %s", in->path,
		    PQgetvalue(in->res, i, 0));
		snprintf(fix, sizeof fix, "ALTER ROLE %s VALID UNTIL '...' (and "
		    "rotate it before: a [secret] with rotate_every)",
		    PQgetvalue(in->res, i, 0));
		audit_finding(r, c, where, fix, "the password never expires");
	}
}

/* --- indexes and load ---------------------------------------------------- */

void
audit_chk_pg_fk_without_index(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	char	where[600], fix[800];
	int	i;

	for (i = 0; i < PQntuples(in->res); i++) {
		if (audit_full(r, c, (unsigned int)(PQntuples(in->res) - i)))
			break;
		snprintf(where, sizeof where, "%s: table %s, foreign key %s",
		    in->path, PQgetvalue(in->res, i, 0), PQgetvalue(in->res, i,
		    1));
		snprintf(fix, sizeof fix, "CREATE INDEX CONCURRENTLY ON %s (%s)",
		    PQgetvalue(in->res, i, 0), PQgetvalue(in->res, i, 2));
		audit_finding(r, c, where, fix, "no index on (%s): each delete "
		    "or key update in the referenced table scans %s",
		    PQgetvalue(in->res, i, 2), PQgetvalue(in->res, i, 0));
	}
}

void
audit_chk_pg_unused_index(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	const struct audit_conf	*a = audit_run_conf(r);
	uint64_t		 min = a != NULL ? a->min_stats_age :
				    7ULL * 86400 * 1000;
	long long		 age;
	char			 where[600], fix[600];
	int			 i;

	if (PQntuples(in->res) == 0)
		return;
	age = strtoll(PQgetvalue(in->res, 0, 3), NULL, 10);
	if (age < 0 || (uint64_t)age * 1000 < min) {
		audit_unchecked(r, c->id, in->path, "held back: the statistics "
		    "are %lld hours old, younger than min_stats_age (%llu "
		    "hours); %d indexes have no scans yet", age / 3600,
		    (unsigned long long)(min / 3600000), PQntuples(in->res));
		return;
	}
	for (i = 0; i < PQntuples(in->res); i++) {
		if (audit_full(r, c, (unsigned int)(PQntuples(in->res) - i)))
			break;
		snprintf(where, sizeof where, "%s: index %s on %s", in->path,
		    PQgetvalue(in->res, i, 0), PQgetvalue(in->res, i, 1));
		snprintf(fix, sizeof fix, "DROP INDEX CONCURRENTLY %s (after "
		    "checking replicas and rare jobs do not use it)",
		    PQgetvalue(in->res, i, 0));
		audit_finding(r, c, where, fix, "never scanned in %lld days of "
		    "statistics; %s bytes that every write maintains", age /
		    86400, PQgetvalue(in->res, i, 2));
	}
}

void
audit_chk_pg_invalid_index(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	char	where[600], fix[600];
	int	i;

	for (i = 0; i < PQntuples(in->res); i++) {
		snprintf(where, sizeof where, "%s: index %s on %s", in->path,
		    PQgetvalue(in->res, i, 0), PQgetvalue(in->res, i, 1));
		snprintf(fix, sizeof fix, "REINDEX INDEX CONCURRENTLY %s (or DROP "
		    "INDEX CONCURRENTLY and create it again)",
		    PQgetvalue(in->res, i, 0));
		audit_finding(r, c, where, fix, "invalid: writes maintain it and "
		    "no query uses it");
	}
}

/* columns: backends, idle in transaction > 1 min, waiting, max, reserved */
void
audit_chk_pg_saturation(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	long	n, max, res;
	char	where[300];

	if (PQntuples(in->res) != 1)
		return;
	n = atol(PQgetvalue(in->res, 0, 0));
	max = atol(PQgetvalue(in->res, 0, 3)) - atol(PQgetvalue(in->res, 0, 4));
	if (max <= 0 || n * 100 < max * 75)
		return;
	res = n * 100 / max;
	snprintf(where, sizeof where, "%s: pg_stat_activity", in->path);
	audit_finding_sev(r, c, res >= 90 ? AUDIT_HIGH : c->sev, where,
	    "put a pool in front (PgBouncer, pool_mode = transaction) or "
	    "lower the applications' pool sizes", "%ld client backends of "
	    "%ld usable connections (%ld%%)", n, max, res);
}

void
audit_chk_pg_idle_in_transaction(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	long	n;
	char	where[300];

	if (PQntuples(in->res) != 1 || (n = atol(PQgetvalue(in->res, 0,
	    1))) == 0)
		return;
	snprintf(where, sizeof where, "%s: pg_stat_activity", in->path);
	audit_finding(r, c, where, "find them (SELECT pid, usename, "
	    "application_name FROM pg_stat_activity WHERE state = 'idle in "
	    "transaction') and set idle_in_transaction_session_timeout",
	    "%ld session%s idle in a transaction for over a minute: they hold "
	    "locks and stop vacuum", n, n == 1 ? "" : "s");
}

void
audit_chk_pg_waiting(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	long	n;
	char	where[300];

	if (PQntuples(in->res) != 1 || (n = atol(PQgetvalue(in->res, 0,
	    2))) == 0)
		return;
	snprintf(where, sizeof where, "%s: pg_stat_activity", in->path);
	audit_finding(r, c, where, "SELECT pid, pg_blocking_pids(pid), query "
	    "FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
	    "%ld session%s waiting on a lock", n, n == 1 ? "" : "s");
}

void
audit_chk_pg_wraparound(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	long long	age, left;
	char		where[300], fix[300];
	int		i, sev;

	for (i = 0; i < PQntuples(in->res); i++) {
		age = strtoll(PQgetvalue(in->res, i, 1), NULL, 10);
		left = 2147483647LL - age;
		if (left >= 1000000000LL)
			continue;
		sev = left < 100000000LL ? AUDIT_CRITICAL : left < 500000000LL ?
		    AUDIT_HIGH : c->sev;
		snprintf(where, sizeof where, "%s: database %s", in->path,
		    PQgetvalue(in->res, i, 0));
		snprintf(fix, sizeof fix, "VACUUM (FREEZE, VERBOSE) in %s, and "
		    "check what holds back autovacuum (long transactions, "
		    "prepared transactions, replication slots)",
		    PQgetvalue(in->res, i, 0));
		audit_finding_sev(r, c, sev, where, fix, "%lld transactions "
		    "left before wraparound (age %lld)", left, age);
	}
}
