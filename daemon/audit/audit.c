/*
 * The production checklist as a table of checks, and a run of them: the
 * files first (listed files only, each read once and bounded, so no
 * walk of unknown size on the loop), then every database through one
 * async libpq session each. A run ends with every finding sorted worst
 * first, what could not be checked apart ("could not check" is not
 * "failed"), an event, and for scheduled runs an alert on the findings
 * that were not there the last time.
 *
 * A finding says where (file:line, setting, role, index), what, and the
 * fix; never a value read from a secret.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <event2/event.h>
#include <jansson.h>

#include "audit-int.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "evt.h"
#include "jobs.h"
#include "state.h"
#include "util.h"

const struct evt_type EVT_AUDIT_FINISHED = {
	"audit.finished", "bd15a4406f6f7f97fd6dd13a172c28b6", LOG_INFO };
const struct evt_type EVT_AUDIT_NEW_FINDINGS = {
	"audit.new_findings", "f78c3fe3ed5e490295ad5c30651c40a8", LOG_WARNING };
const struct evt_type EVT_AUDIT_RESOLVED = {
	"audit.resolved", "0d545bb35c41d8cbaf9e1c4830124e8c", LOG_NOTICE };

#define S(x)	AUDIT_SECRET, 0, x
#define E(x)	AUDIT_ENV, 0, x
#define H(x)	AUDIT_HOST, 0, x
#define P(q, x)	AUDIT_PG, q, x
#define T(x)	AUDIT_TLS, 0, x
#define U(x)	AUDIT_UNIT, 0, x

/*
 * The checks. An id is stable (scripts and --only name it); the
 * severity is the usual one, a few checks report worse cases higher.
 * docs/opsd.conf.5.scd's AUDIT CHECKS lists the same ids, and
 * tests/integration/test_audit.py holds the two against each other.
 */
const struct audit_check audit_checks[] = {
	{ "secret.missing", AUDIT_MEDIUM, S("The credential file does not "
	    "exist"), audit_chk_secret_missing },
	{ "secret.not_regular", AUDIT_HIGH, S("The credential file is not a "
	    "regular file"), audit_chk_secret_not_regular },
	{ "secret.world_readable", AUDIT_HIGH, S("Others may read the file "
	    "(mode bit o+r)"), audit_chk_secret_world_readable },
	{ "secret.world_writable", AUDIT_CRITICAL, S("Others may write the "
	    "file (mode bit o+w)"), audit_chk_secret_world_writable },
	{ "secret.group_access", AUDIT_MEDIUM, S("The group may read or write "
	    "the file beyond what its [secret] grants (g+r, g+w)"),
	    audit_chk_secret_group_access },
	{ "secret.owner", AUDIT_HIGH, S("A [secret]'s file has another owner "
	    "or group than configured"), audit_chk_secret_owner },
	{ "secret.age", AUDIT_MEDIUM, S("The value is older than its rotation "
	    "policy (rotate_every, or [audit] max_secret_age)"),
	    audit_chk_secret_age },
	{ "secret.empty", AUDIT_HIGH, S("The file is empty"),
	    audit_chk_secret_empty },
	{ "secret.placeholder", AUDIT_CRITICAL, S("The value is a known "
	    "placeholder (changeme, password, your-..., ${VAR}, ...)"),
	    audit_chk_secret_placeholder },
	{ "secret.short", AUDIT_HIGH, S("The value is shorter than [audit] "
	    "min_length"), audit_chk_secret_short },
	{ "secret.weak", AUDIT_MEDIUM, S("Length and character classes give "
	    "under 80 bits"), audit_chk_secret_weak },
	{ "secret.trailing_newline", AUDIT_MEDIUM, S("The value ends in a "
	    "newline, which *_FILE consumers keep as part of it"),
	    audit_chk_secret_newline },
	{ "env.missing", AUDIT_LOW, E("The env file does not exist"),
	    audit_chk_env_missing },
	{ "env.syntax", AUDIT_LOW, E("A line is not KEY=VALUE"),
	    audit_chk_env_syntax },
	{ "env.world_readable", AUDIT_HIGH, E("Others may read an env file "
	    "that holds credentials"), audit_chk_env_world_readable },
	{ "env.literal_credential", AUDIT_MEDIUM, E("A credential-looking key "
	    "holds its value, not a *_FILE path"), audit_chk_env_literal },
	{ "env.placeholder", AUDIT_HIGH, E("A credential-looking key holds a "
	    "known placeholder"), audit_chk_env_placeholder },
	{ "env.weak", AUDIT_HIGH, E("A credential-looking key holds a short "
	    "or weak value"), audit_chk_env_weak },
	{ "env.empty", AUDIT_LOW, E("A credential-looking key is empty "
	    "(*.sample and *.example files excepted)"), audit_chk_env_empty },
	{ "env.duplicate_value", AUDIT_MEDIUM, E("Two credential keys hold "
	    "the same value"), audit_chk_env_duplicate },
	{ "host.state_dir", AUDIT_MEDIUM, H("opsd's state_dir is open to "
	    "group or others"), audit_chk_host_state_dir },
	{ "host.config", AUDIT_HIGH, H("opsd's configuration file may be "
	    "written by group or others"), audit_chk_host_config },
	{ "host.unit", AUDIT_LOW, H("opsd's systemd unit lacks sandboxing "
	    "(NoNewPrivileges, ProtectSystem, PrivateTmp)"),
	    audit_chk_host_unit },
	{ "host.unit_exposure", AUDIT_MEDIUM, U("systemd-analyze security "
	    "rates opsd's unit or one of [audit] units EXPOSED (MEDIUM: low; "
	    "UNSAFE: high)"), audit_chk_host_unit_exposure },
	{ "pg.ssl", AUDIT_HIGH, P(AQ_SETTINGS, "ssl is off"),
	    audit_chk_pg_ssl },
	{ "pg.ssl_min_protocol", AUDIT_MEDIUM, P(AQ_SETTINGS,
	    "ssl_min_protocol_version is below TLSv1.2"),
	    audit_chk_pg_ssl_min_protocol },
	{ "pg.password_encryption", AUDIT_HIGH, P(AQ_SETTINGS,
	    "password_encryption is not scram-sha-256"),
	    audit_chk_pg_password_encryption },
	{ "pg.listen_all", AUDIT_MEDIUM, P(AQ_SETTINGS, "listen_addresses "
	    "is '*' or a wildcard"), audit_chk_pg_listen_all },
	{ "pg.log_connections", AUDIT_MEDIUM, P(AQ_SETTINGS,
	    "log_connections is off"), audit_chk_pg_log_connections },
	{ "pg.log_disconnections", AUDIT_LOW, P(AQ_SETTINGS,
	    "log_disconnections is off"), audit_chk_pg_log_disconnections },
	{ "pg.log_statement", AUDIT_INFO, P(AQ_SETTINGS, "log_statement is "
	    "none: schema changes leave no trace"), audit_chk_pg_log_statement },
	{ "pg.log_statement_password", AUDIT_LOW, P(AQ_SETTINGS,
	    "log_statement is ddl or more: a plaintext ALTER ROLE ... "
	    "PASSWORD is logged"), audit_chk_pg_log_statement_password },
	{ "pg.log_line_prefix", AUDIT_LOW, P(AQ_SETTINGS, "log_line_prefix "
	    "lacks the user (%u), database (%d) or client (%h or %r)"),
	    audit_chk_pg_log_line_prefix },
	{ "pg.log_file_mode", AUDIT_MEDIUM, P(AQ_SETTINGS, "log_file_mode "
	    "lets others read the server log"), audit_chk_pg_log_file_mode },
	{ "pg.stat_statements", AUDIT_INFO, P(AQ_SETTINGS,
	    "pg_stat_statements is not in shared_preload_libraries"),
	    audit_chk_pg_stat_statements },
	{ "pg.hba_trust", AUDIT_CRITICAL, P(AQ_HBA, "A pg_hba rule uses "
	    "trust (high for local sockets)"), audit_chk_pg_hba_trust },
	{ "pg.hba_password", AUDIT_HIGH, P(AQ_HBA, "A pg_hba rule uses "
	    "password (cleartext)"), audit_chk_pg_hba_password },
	{ "pg.hba_md5", AUDIT_MEDIUM, P(AQ_HBA, "A pg_hba rule uses md5"),
	    audit_chk_pg_hba_md5 },
	{ "pg.hba_open", AUDIT_HIGH, P(AQ_HBA, "A pg_hba host rule is open "
	    "to every address (0.0.0.0/0, ::/0, all)"), audit_chk_pg_hba_open },
	{ "pg.hba_no_ssl_reject", AUDIT_LOW, P(AQ_HBA, "No hostnossl ... "
	    "reject rule: clients may connect without TLS"),
	    audit_chk_pg_hba_no_ssl_reject },
	{ "pg.hba_error", AUDIT_MEDIUM, P(AQ_HBA, "A pg_hba line has an "
	    "error, and takes effect at the next reload as it is"),
	    audit_chk_pg_hba_error },
	{ "pg.md5_verifier", AUDIT_HIGH, P(AQ_AUTHID, "A role's password is "
	    "stored as an md5 verifier"), audit_chk_pg_md5_verifier },
	{ "pg.statement_timeout", AUDIT_MEDIUM, P(AQ_ROLES,
	    "statement_timeout is 0 for the application's role"),
	    audit_chk_pg_statement_timeout },
	{ "pg.idle_in_transaction_timeout", AUDIT_MEDIUM, P(AQ_ROLES,
	    "idle_in_transaction_session_timeout is 0 for the application's "
	    "role"), audit_chk_pg_idle_tx_timeout },
	{ "pg.idle_session_timeout", AUDIT_LOW, P(AQ_ROLES,
	    "idle_session_timeout is 0 for the application's role"),
	    audit_chk_pg_idle_session_timeout },
	{ "pg.app_superuser", AUDIT_CRITICAL, P(AQ_ROLES, "The application's "
	    "role is a superuser"), audit_chk_pg_app_superuser },
	{ "pg.app_createrole", AUDIT_HIGH, P(AQ_ROLES, "The application's "
	    "role has CREATEROLE"), audit_chk_pg_app_createrole },
	{ "pg.connlimit", AUDIT_LOW, P(AQ_ROLES, "A login role has no "
	    "connection limit, so it can take all of max_connections"),
	    audit_chk_pg_connlimit },
	{ "pg.password_expiry", AUDIT_LOW, P(AQ_ROLES, "A login role's "
	    "password never expires (with [audit] require_password_expiry)"),
	    audit_chk_pg_password_expiry },
	{ "pg.fk_without_index", AUDIT_LOW, P(AQ_FKEYS, "A foreign key has "
	    "no index on its referencing columns"),
	    audit_chk_pg_fk_without_index },
	{ "pg.unused_index", AUDIT_LOW, P(AQ_UNUSED, "An index was never "
	    "scanned (primary key, unique, constraint and foreign-key "
	    "indexes excepted; held back while statistics are younger than "
	    "min_stats_age)"), audit_chk_pg_unused_index },
	{ "pg.invalid_index", AUDIT_MEDIUM, P(AQ_INVALID, "An index is "
	    "invalid (a failed CREATE INDEX CONCURRENTLY)"),
	    audit_chk_pg_invalid_index },
	{ "pg.saturation", AUDIT_MEDIUM, P(AQ_ACTIVITY, "Client backends use "
	    "75% of max_connections or more (high from 90%)"),
	    audit_chk_pg_saturation },
	{ "pg.idle_in_transaction", AUDIT_MEDIUM, P(AQ_ACTIVITY, "Sessions "
	    "idle in a transaction for over a minute"),
	    audit_chk_pg_idle_in_transaction },
	{ "pg.waiting", AUDIT_LOW, P(AQ_ACTIVITY, "Sessions wait on a lock"),
	    audit_chk_pg_waiting },
	{ "pg.wraparound", AUDIT_MEDIUM, P(AQ_WRAP, "A database is within "
	    "1 billion transactions of ID wraparound (high within 500 "
	    "million, critical within 100 million)"), audit_chk_pg_wraparound },
	{ "tls.grade", AUDIT_MEDIUM, T("An endpoint of [audit] tls grades "
	    "below A (A- low; F, T and M high)"), audit_chk_tls_grade },
	{ "tls.issue", AUDIT_HIGH, T("The grader's findings of an endpoint "
	    "(its critical, high and warn ones, the last as low)"),
	    audit_chk_tls_issue },
};
const size_t audit_nchecks = nitems(audit_checks);
#undef S
#undef E
#undef H
#undef P
#undef T
#undef U

struct audit_run {
	struct audit_state	*st;
	struct audit_run	*next;
	char			**only;
	size_t			 nonly;
	int			 scheduled;
	int64_t			 started;
	uint64_t		 start_usec;
	json_t			*findings;
	json_t			*unchecked;
	unsigned int		 counts[AUDIT_NSEV];
	unsigned int		 limit;		/* findings per check, 0: all */
	unsigned int		*listed;	/* per check */
	unsigned int		*dropped;	/* per check, past limit */
	struct audit_pg		**pgs;
	unsigned int		 npgs;
	struct audit_tls	**tlss;
	unsigned int		 ntlss;
	struct audit_unit	**units;
	unsigned int		 nunits;
	unsigned int		 pending;
	struct event		*finish_ev;
	audit_done_cb		 cb;
	void			*arg;
};

struct audit_state *
audit_state_get(struct opsd *o)
{
	struct audit_state	*st;

	if (o->sub[SUBSYS_AUDIT] == NULL) {
		st = xcalloc(1, sizeof *st);
		st->opsd = o;
		o->sub[SUBSYS_AUDIT] = st;
	}
	return (o->sub[SUBSYS_AUDIT]);
}

struct opsd *
audit_run_opsd(const struct audit_run *r)
{
	return (r->st->opsd);
}

const struct audit_conf *
audit_run_conf(const struct audit_run *r)
{
	return (r->st->conf);
}

static int
id_matches(const char *id, const char *sel)
{
	size_t	n = strlen(sel);

	if (strcmp(id, sel) == 0)
		return (1);
	/* a family: "pg" or "pg." selects every pg.* check */
	if (n > 0 && sel[n - 1] == '.')
		n--;
	return (n > 0 && strncmp(id, sel, n) == 0 && id[n] == '.');
}

int
audit_selected(const struct audit_run *r, const struct audit_check *c)
{
	size_t	i;

	if (r->nonly == 0)
		return (1);
	for (i = 0; i < r->nonly; i++)
		if (id_matches(c->id, r->only[i]))
			return (1);
	return (0);
}

static void add_finding(struct audit_run *, const struct audit_check *, int,
    const char *, const char *, const char *, va_list)
    __attribute__((format(printf, 6, 0)));

static void
add_finding(struct audit_run *r, const struct audit_check *c, int sev,
    const char *where, const char *fix, const char *fmt, va_list ap)
{
	char	*what;
	size_t	 ci = (size_t)(c - audit_checks);

	r->counts[sev]++;
	if (r->limit > 0 && r->listed[ci] >= r->limit) {
		r->dropped[ci]++;
		return;
	}
	r->listed[ci]++;
	xvasprintf(&what, fmt, ap);
	json_array_append_new(r->findings, json_pack("{s:s, s:s, s:s, s:s, "
	    "s:s}", "id", c->id, "severity", audit_sev_name(sev), "where",
	    where, "what", what, "fix", fix != NULL ? fix : ""));
	free(what);
}

int
audit_full(struct audit_run *r, const struct audit_check *c, unsigned int n)
{
	size_t	ci = (size_t)(c - audit_checks);

	if (r->limit == 0 || r->listed[ci] < r->limit)
		return (0);
	/* counted like the listed ones, without formatting each */
	r->dropped[ci] += n;
	r->counts[c->sev] += n;
	return (1);
}

void
audit_finding(struct audit_run *r, const struct audit_check *c,
    const char *where, const char *fix, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	add_finding(r, c, c->sev, where, fix, fmt, ap);
	va_end(ap);
}

void
audit_finding_sev(struct audit_run *r, const struct audit_check *c, int sev,
    const char *where, const char *fix, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	add_finding(r, c, sev, where, fix, fmt, ap);
	va_end(ap);
}

void
audit_unchecked(struct audit_run *r, const char *id, const char *where,
    const char *fmt, ...)
{
	va_list	ap;
	char	*what;

	va_start(ap, fmt);
	xvasprintf(&what, fmt, ap);
	va_end(ap);
	json_array_append_new(r->unchecked, json_pack("{s:s, s:s, s:s}", "id",
	    id, "where", where, "what", what));
	free(what);
}

/* --- the end of a run ---------------------------------------------------- */

static int
sev_of(json_t *f)
{
	return (audit_sev_parse(json_string_value(json_object_get(f,
	    "severity"))));
}

static int
finding_cmp(const void *a, const void *b)
{
	json_t	*x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int	 d = sev_of(y) - sev_of(x);

	if (d != 0)
		return (d);
	d = strcmp(json_string_value(json_object_get(x, "id")),
	    json_string_value(json_object_get(y, "id")));
	if (d != 0)
		return (d);
	return (strcmp(json_string_value(json_object_get(x, "where")),
	    json_string_value(json_object_get(y, "where"))));
}

static json_t *
sorted(json_t *a)
{
	size_t	 i, n = json_array_size(a);
	json_t	**v, *out = json_array();

	v = xcalloc(n + 1, sizeof *v);
	for (i = 0; i < n; i++)
		v[i] = json_array_get(a, i);
	qsort(v, n, sizeof *v, finding_cmp);
	for (i = 0; i < n; i++)
		json_array_append(out, v[i]);
	free(v);
	return (out);
}

static char *
finding_key(json_t *f)
{
	char	*k;

	xasprintf(&k, "%s %s", json_string_value(json_object_get(f, "id")),
	    json_string_value(json_object_get(f, "where")));
	return (k);
}

/*
 * A scheduled run compares its findings at or above alert_min with the
 * previous scheduled run's (state_dir/audit.json holds their keys, id
 * and where, no values) and alerts on the new ones only: a finding that
 * stays is not sent again every night.
 */
static json_t *
compare_known(struct audit_run *r, json_t *findings)
{
	struct audit_state	*st = r->st;
	const struct audit_conf	*a = st->conf;
	json_t			*keys = json_object(), *fresh = json_array(), *f;
	struct evt		*ev;
	size_t			 i;
	char			*k;
	int			 min = a != NULL ? a->alert_min : AUDIT_HIGH;
	int			 err, had;

	if (st->known == NULL) {
		json_t *saved = state_read_json(st->opsd->conf->state_dir,
		    "audit.json", &err);

		st->known = saved != NULL && json_is_object(json_object_get(
		    saved, "known")) ? json_incref(json_object_get(saved,
		    "known")) : NULL;
		json_decref(saved);
	}
	had = st->known != NULL && json_object_size(st->known) > 0;
	json_array_foreach(findings, i, f) {
		if (sev_of(f) < min)
			continue;
		k = finding_key(f);
		json_object_set_new(keys, k, json_true());
		if (st->known == NULL || json_object_get(st->known, k) == NULL)
			json_array_append(fresh, f);
		free(k);
	}
	if (json_array_size(fresh) > 0) {
		st->new_total += json_array_size(fresh);
		ev = evt_new(&EVT_AUDIT_NEW_FINDINGS);
		evt_add(ev, "count", "%zu", json_array_size(fresh));
		for (i = 0; i < json_array_size(fresh) && i < 20; i++) {
			char key[32];

			f = json_array_get(fresh, i);
			snprintf(key, sizeof key, "finding_%zu", i + 1);
			k = finding_key(f);
			evt_add(ev, key, "%s %s", json_string_value(
			    json_object_get(f, "severity")), k);
			free(k);
		}
		if (a != NULL && a->nalert > 0)
			evt_alert(ev, (const char *const *)a->alert, a->nalert,
			    "audit", "audit", 1);
		f = json_array_get(fresh, 0);
		evt_emit(ev, "audit: %zu new finding%s at %s or above, the "
		    "worst %s at %s: %s", json_array_size(fresh),
		    json_array_size(fresh) == 1 ? "" : "s", audit_sev_name(min),
		    json_string_value(json_object_get(f, "id")),
		    json_string_value(json_object_get(f, "where")),
		    json_string_value(json_object_get(f, "what")));
	} else if (had && json_object_size(keys) == 0) {
		ev = evt_new(&EVT_AUDIT_RESOLVED);
		if (a != NULL && a->nalert > 0)
			evt_alert(ev, (const char *const *)a->alert, a->nalert,
			    "audit", "audit", 0);
		evt_emit(ev, "audit: no finding at %s or above any more",
		    audit_sev_name(min));
	}
	json_decref(st->known);
	st->known = keys;
	{
		json_t *doc = json_pack("{s:O, s:I}", "known", keys, "time",
		    (json_int_t)r->started);

		if ((err = state_write_json(st->opsd->conf->state_dir,
		    "audit.json", doc)) != 0)
			log_warn("audit.state", "cannot write %s/audit.json: %s",
			    st->opsd->conf->state_dir, strerror(-err));
		json_decref(doc);
	}
	return (fresh);
}

static void
run_free(struct audit_run *r)
{
	size_t	i;

	for (i = 0; i < r->npgs; i++)
		if (r->pgs[i] != NULL)
			audit_pg_cancel(r->pgs[i]);
	free(r->pgs);
	for (i = 0; i < r->ntlss; i++)
		if (r->tlss[i] != NULL)
			audit_tls_cancel(r->tlss[i]);
	free(r->tlss);
	for (i = 0; i < r->nunits; i++)
		if (r->units[i] != NULL)
			audit_unit_cancel(r->units[i]);
	free(r->units);
	for (i = 0; i < r->nonly; i++)
		free(r->only[i]);
	free(r->only);
	json_decref(r->findings);
	json_decref(r->unchecked);
	free(r->listed);
	free(r->dropped);
	if (r->finish_ev != NULL)
		event_free(r->finish_ev);
	free(r);
}

static void
run_unlink(struct audit_run *r)
{
	struct audit_run	**pp;

	for (pp = &r->st->runs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
}

static void
run_finish(struct audit_run *r)
{
	struct audit_state	*st = r->st;
	json_t			*res, *counts, *findings, *fresh = NULL;
	struct evt		*ev;
	double			 secs;
	int			 i;

	run_unlink(r);
	secs = (double)(now_usec() - r->start_usec) / 1e6;
	/* one line for what the limit left out, counted in counts */
	for (i = 0; i < (int)audit_nchecks; i++)
		if (r->dropped[i] > 0) {
			char *what;

			xasprintf(&what, "%u more finding%s of this check not "
			    "listed (the limit is %u a check; audit.run with "
			    "limit 0 lists all)", r->dropped[i], r->dropped[i] ==
			    1 ? "" : "s", r->limit);
			json_array_append_new(r->findings, json_pack("{s:s, s:s, "
			    "s:s, s:s, s:s}", "id", audit_checks[i].id,
			    "severity", audit_sev_name(audit_checks[i].sev),
			    "where", "(more)", "what", what, "fix", ""));
			free(what);
		}
	findings = sorted(r->findings);
	counts = json_object();
	for (i = 0; i < AUDIT_NSEV; i++)
		json_object_set_new(counts, audit_sev_name(i),
		    json_integer(r->counts[i]));
	if (r->nonly == 0) {
		memcpy(st->last_counts, r->counts, sizeof st->last_counts);
		st->last_run = r->started;
		st->have_last = 1;
	}
	st->runs_total++;
	if (r->scheduled && r->nonly == 0)
		fresh = compare_known(r, findings);
	ev = evt_new(&EVT_AUDIT_FINISHED);
	evt_add(ev, "findings", "%zu", json_array_size(findings));
	for (i = AUDIT_NSEV - 1; i >= 0; i--)
		evt_add(ev, audit_sev_name(i), "%u", r->counts[i]);
	evt_add(ev, "unchecked", "%zu", json_array_size(r->unchecked));
	evt_add(ev, "elapsed", "%.3f", secs);
	evt_emit(ev, "audit: %zu finding%s (%u critical, %u high, %u medium), "
	    "%zu not checked, in %.2fs", json_array_size(findings),
	    json_array_size(findings) == 1 ? "" : "s",
	    r->counts[AUDIT_CRITICAL], r->counts[AUDIT_HIGH],
	    r->counts[AUDIT_MEDIUM], json_array_size(r->unchecked), secs);
	if (st->job != NULL && r->scheduled)
		job_finished(st->job, 1, "%zu findings", json_array_size(
		    findings));
	res = json_pack("{s:I, s:f, s:b, s:o, s:o, s:O, s:i}", "started",
	    (json_int_t)r->started, "elapsed_seconds", secs, "scheduled",
	    r->scheduled, "counts", counts, "findings", findings, "unchecked",
	    r->unchecked, "limit", (int)r->limit);
	if (fresh != NULL)
		json_object_set_new(res, "new", fresh);
	if (r->cb != NULL)
		r->cb(res, NULL, r->arg);
	else
		json_decref(res);
	run_free(r);
}

static void
finish_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_finish(arg);
}

/* A database or a TLS endpoint is done. */
static void
part_done(struct audit_run *r)
{
	struct timeval	tv = { 0, 0 };

	if (--r->pending > 0)
		return;
	/* the session's callback is still on the stack: end in a moment */
	evtimer_add(r->finish_ev, &tv);
}

int
audit_run_start(struct opsd *o, const char *const *only, size_t nonly,
    unsigned int limit, int scheduled, audit_done_cb cb, void *arg, char *err,
    size_t errlen)
{
	struct audit_state	*st = audit_state_get(o);
	const struct audit_conf	*a = st->conf;
	struct audit_run	*r;
	struct db_conf		*d;
	struct timeval		 tv = { 0, 0 };
	size_t			 i, j;
	unsigned int		 n, ndb;
	int			 want_pg = 0, want_tls, want_unit;

	for (i = 0; i < nonly; i++) {
		for (j = 0; j < audit_nchecks; j++)
			if (id_matches(audit_checks[j].id, only[i]))
				break;
		if (j == audit_nchecks) {
			snprintf(err, errlen, "unknown check '%s' (audit.checks "
			    "lists them)", only[i]);
			return (-EINVAL);
		}
	}
	if (o->stopping) {
		snprintf(err, errlen, "opsd is stopping");
		return (-ESHUTDOWN);
	}
	r = xcalloc(1, sizeof *r);
	r->st = st;
	r->scheduled = scheduled;
	r->started = (int64_t)(now_realtime_usec() / 1000000);
	r->start_usec = now_usec();
	r->findings = json_array();
	r->unchecked = json_array();
	r->limit = limit;
	r->listed = xcalloc(audit_nchecks, sizeof *r->listed);
	r->dropped = xcalloc(audit_nchecks, sizeof *r->dropped);
	r->cb = cb;
	r->arg = arg;
	r->finish_ev = evtimer_new(o->base, finish_cb, r);
	if (nonly > 0) {
		r->only = xcalloc(nonly, sizeof *r->only);
		for (i = 0; i < nonly; i++)
			r->only[i] = xstrdup(only[i]);
		r->nonly = nonly;
	}
	r->next = st->runs;
	st->runs = r;

	audit_files_run(r);

	for (j = 0; j < audit_nchecks; j++)
		if (audit_checks[j].scope == AUDIT_PG &&
		    audit_selected(r, &audit_checks[j]))
			want_pg = 1;
	ndb = a != NULL && a->ndatabases > 0 ? a->ndatabases :
	    config_count(o->conf, &db_section);
	want_tls = 0;
	for (j = 0; j < audit_nchecks; j++)
		if (audit_checks[j].scope == AUDIT_TLS &&
		    audit_selected(r, &audit_checks[j]))
			want_tls = 1;
	if (want_tls && a != NULL && a->ntls > 0) {
		r->tlss = xcalloc(a->ntls, sizeof *r->tlss);
		for (n = 0; n < a->ntls; n++) {
			r->pending++;
			if ((r->tlss[r->ntlss] = audit_tls_start(r, a->tls[n],
			    a->tls_ca_file, a->timeout, part_done)) != NULL)
				r->ntlss++;
			else
				r->pending--;
		}
	}
	want_unit = 0;
	for (j = 0; j < audit_nchecks; j++)
		if (audit_checks[j].scope == AUDIT_UNIT &&
		    audit_selected(r, &audit_checks[j]))
			want_unit = 1;
	if (want_unit) {
		const char *own = audit_unit_file(a);

		n = (a != NULL ? a->nunits : 0) + 1;
		r->units = xcalloc(n, sizeof *r->units);
		for (j = 0; j < n; j++) {
			const char *name = j + 1 < n ? a->units[j] : own;

			if (name == NULL) {
				audit_unchecked(r, "host.unit_exposure",
				    "opsd.service", "no unit file found (set "
				    "[audit] unit_file)");
				continue;
			}
			r->pending++;
			if ((r->units[r->nunits] = audit_unit_start(r, name,
			    a != NULL ? a->timeout : 10000, part_done)) != NULL)
				r->nunits++;
			else
				r->pending--;
		}
	}
	if (want_pg && ndb > 0) {
		r->pgs = xcalloc(ndb, sizeof *r->pgs);
		r->pending += ndb;
		for (n = 0; n < ndb; n++) {
			d = a != NULL && a->ndatabases > 0 ? db_conf_find(
			    o->conf, a->databases[n]) : config_at(o->conf,
			    &db_section, n);
			if (d == NULL) {
				r->pending--;
				continue;
			}
			r->pgs[r->npgs++] = audit_pg_start(r, d, part_done);
		}
	}
	if (r->pending == 0)
		evtimer_add(r->finish_ev, &tv);
	return (0);
}

/* The audit_pg of a run ends: the run forgets it (it freed itself). */
void audit_run_pg_gone(struct audit_run *, struct audit_pg *);
void
audit_run_pg_gone(struct audit_run *r, struct audit_pg *p)
{
	unsigned int	i;

	for (i = 0; i < r->npgs; i++)
		if (r->pgs[i] == p)
			r->pgs[i] = NULL;
}

void audit_run_tls_gone(struct audit_run *, struct audit_tls *);
void
audit_run_tls_gone(struct audit_run *r, struct audit_tls *t)
{
	unsigned int	i;

	for (i = 0; i < r->ntlss; i++)
		if (r->tlss[i] == t)
			r->tlss[i] = NULL;
}

void audit_run_unit_gone(struct audit_run *, struct audit_unit *);
void
audit_run_unit_gone(struct audit_run *r, struct audit_unit *u)
{
	unsigned int	i;

	for (i = 0; i < r->nunits; i++)
		if (r->units[i] == u)
			r->units[i] = NULL;
}

/* --- the schedule and the life cycle ------------------------------------- */

static void
job_cb(struct job *job, void *arg)
{
	struct audit_state	*st = arg;
	char			 err[256];

	job_started(job);
	if (audit_run_start(st->opsd, NULL, 0, AUDIT_LIMIT_DEFAULT, 1, NULL,
	    NULL, err, sizeof err) != 0)
		job_finished(job, 0, "%s", err);
}

static void
cancel_runs(struct audit_state *st, const char *why)
{
	struct audit_run	*r;

	while ((r = st->runs) != NULL) {
		st->runs = r->next;
		if (r->scheduled && st->job != NULL)
			job_interrupted(st->job);
		if (r->cb != NULL)
			r->cb(NULL, why, r->arg);
		run_free(r);
	}
}

void
audit_apply_config(struct opsd *o)
{
	struct audit_state	*st = audit_state_get(o);
	struct audit_conf	*a = audit_conf_get(o->conf);

	cancel_runs(st, "the configuration was reloaded");
	if (st->job != NULL)
		job_remove(st->job);
	st->job = NULL;
	audit_conf_free(st->conf);
	st->conf = a != NULL ? audit_conf_copy(a) : NULL;
	if (st->conf != NULL && st->conf->have_spec)
		st->job = job_add(o, "audit", &st->conf->spec,
		    st->conf->random_delay, 0, job_cb, st);
}

void
audit_stop_all(struct opsd *o)
{
	struct audit_state	*st = audit_state_get(o);

	cancel_runs(st, "opsd is stopping");
}

unsigned int
audit_busy(struct opsd *o)
{
	(void)o;
	return (0);
}

void
audit_free_all(struct opsd *o)
{
	struct audit_state	*st = o->sub[SUBSYS_AUDIT];

	if (st == NULL)
		return;
	cancel_runs(st, "opsd is stopping");
	if (st->job != NULL)
		job_remove(st->job);
	audit_conf_free(st->conf);
	json_decref(st->known);
	free(st);
	o->sub[SUBSYS_AUDIT] = NULL;
}
