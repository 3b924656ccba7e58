/*
 * Verification: sha256sum against the manifest, restore into a scratch
 * database named by db_scratch_name (so recovery finds it after a crash),
 * run the configured checks, drop the scratch database whatever happened.
 * One at a time per backup; started by a run, verify_schedule or
 * backup.verify.
 */
#include <sys/wait.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "alert.h"
#include "backup-int.h"
#include "child.h"
#include "daemon.h"
#include "evt.h"
#include "rpc.h"
#include "util.h"

static void	verify_step_drop(struct verify *);
static void	verify_fail(struct verify *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* It could not run (the server, a login, the scratch database): no verdict. */
#define verify_unavailable(v, ...) do {					\
	(v)->unavailable = 1;						\
	verify_fail((v), __VA_ARGS__);					\
} while (0)

static void
verify_free(struct verify *v)
{
	if (v->admin != NULL)
		pg_cancel(v->admin);
	if (v->sess != NULL)
		pg_cancel(v->sess);
	if (v->child != NULL)
		child_abandon(v->child);
	db_passfile_remove(&v->passfile);
	json_decref(v->manifest);
	json_decref(v->checks);
	free(v->file);
	free(v->scratch);
	free(v->error);
	free(v);
}

/*
 * A verification that could not run (server down, admin login refused,
 * no scratch database) decided nothing: the manifest keeps its verdict
 * (and so the staleness clock and last_verified), and records the
 * attempt as "verify_unavailable" until a verification runs again.
 */
static void
verify_end_unavailable(struct verify *v)
{
	struct backup	*b = v->b;
	json_t		*res;
	char		 at[32];
	const char	*id = m_str(v->manifest, "id");
	int		 first = !b->unverifiable_firing;

	util_iso_time(time(NULL), at, sizeof at);
	res = json_pack("{s:I, s:s, s:s}", "at", (json_int_t)time(NULL),
	    "at_iso", at, "error", v->error);
	json_object_set_new(v->manifest, "verify_unavailable", res);
	if (backup_item_held(b, v->manifest) &&
	    backup_manifest_save(b, v->manifest) != 0)
		backup_log(b, LOG_WARNING, "backup.manifest", id, "cannot "
		    "update the manifest of %s", id);
	b->unverifiable_firing = 1;
	/* one alert while it lasts; the alert layer repeats it */
	backup_event(b, &EVT_BACKUP_VERIFY_UNAVAILABLE, id, first ?
	    "backup.verify_unavailable" : NULL, 1, "backup %s: verification "
	    "could not run: %s (its previous verdict stands: %s)", id,
	    v->error, json_is_object(json_object_get(v->manifest, "verify")) ?
	    (m_verified(v->manifest) ? "verified" : "FAILED") :
	    "never verified");
	if (v->waiter != NULL) {
		rpc_pending_fail(v->waiter, -EAGAIN,
		    json_pack("{s:O}", "verify_unavailable", res),
		    "could not verify %s: %s (nothing was decided; its "
		    "previous verdict stands)", id, v->error);
		v->waiter = NULL;
	}
	if (b->verify == v)
		b->verify = NULL;
	if (v->done != NULL)
		v->done(v, -1, v->arg);
	verify_free(v);
}

static void
verify_end(struct verify *v)
{
	struct backup	*b = v->b;
	json_t		*res;
	char		 at[32];
	int		 ok = v->error == NULL;

	if (!ok && v->unavailable) {
		verify_end_unavailable(v);
		return;
	}
	util_iso_time(time(NULL), at, sizeof at);
	res = json_pack("{s:b, s:I, s:s, s:s?, s:O}", "ok", ok, "at",
	    (json_int_t)time(NULL), "at_iso", at, "error", v->error,
	    "checks", v->checks);
	/* the manifest may be gone (pruned meanwhile); save only if known */
	json_object_set_new(v->manifest, "verify", res);
	json_object_del(v->manifest, "verify_unavailable");
	if (backup_item_held(b, v->manifest) &&
	    backup_manifest_save(b, v->manifest) != 0)
		backup_log(b, LOG_WARNING, "backup.manifest", m_str(v->manifest,
		    "id"), "cannot update the manifest of %s",
		    m_str(v->manifest, "id"));
	/* "good" is about the backups' age: recount from the manifests */
	backup_items_stats(b);
	if (b->unverifiable_firing) {
		b->unverifiable_firing = 0;
		alert_resolve(b->opsd, "backup.verify_unavailable",
		    b->conf->name, "verification runs again");
	}
	if (ok) {
		backup_event(b, &EVT_BACKUP_VERIFIED, m_str(v->manifest, "id"),
		    b->verify_firing ? "backup.verify" : NULL, 0, "backup %s "
		    "verified: restored into a scratch "
		    "database and %u check%s passed", m_str(v->manifest, "id"),
		    b->conf->ncheck, b->conf->ncheck == 1 ? "" : "s");
		b->verify_firing = 0;
		b->verify_failures = 0;
	} else {
		/*
		 * One alert while failures go on (the alert layer repeats
		 * it), not a new one each time; the log has every failure.
		 */
		b->verify_failures++;
		backup_event(b, &EVT_BACKUP_VERIFY_FAILED, m_str(v->manifest,
		    "id"), b->verify_firing ? NULL : "backup.verify", 1,
		    "backup %s FAILED verification%s: %s", m_str(v->manifest,
		    "id"), b->verify_failures > 1 ? " again" : "", v->error);
		b->verify_firing = 1;
	}
	if (v->waiter != NULL) {
		if (ok)
			rpc_pending_reply(v->waiter, json_pack("{s:s, s:O}",
			    "id", m_str(v->manifest, "id"), "verify", res));
		else
			rpc_pending_fail(v->waiter, -EIO,
			    json_pack("{s:O}", "verify", res),
			    "verification of %s failed: %s",
			    m_str(v->manifest, "id"), v->error);
		v->waiter = NULL;
	}
	/* detach first: the callback may end the run that owns v */
	if (b->verify == v)
		b->verify = NULL;
	if (v->done != NULL)
		v->done(v, ok, v->arg);
	verify_free(v);
}

static void
verify_fail(struct verify *v, const char *fmt, ...)
{
	va_list	ap;

	if (v->error == NULL) {
		va_start(ap, fmt);
		xvasprintf(&v->error, fmt, ap);
		va_end(ap);
	}
	/* the scratch database goes, whatever happened */
	if (v->created)
		verify_step_drop(v);
	else
		verify_end(v);
}

static void
verify_dropped(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct verify	*v = arg;

	(void)q;
	(void)res;
	if (err != NULL) {
		backup_log(v->b, LOG_WARNING, "backup.verify",
		    m_str(v->manifest, "id"), "cannot drop scratch database "
		    "%s: %s (it is dropped at the next start)", v->scratch,
		    err);
		if (v->error == NULL)
			xasprintf(&v->error, "cannot drop scratch database "
			    "%s: %s", v->scratch, err);
	}
	v->created = 0;
	verify_end(v);
}

static void
verify_step_drop(struct verify *v)
{
	char	*sql, *qi;

	if (v->sess != NULL) {
		pg_cancel(v->sess);
		v->sess = NULL;
	}
	qi = pg_quote_ident(v->scratch);
	xasprintf(&sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", qi);
	free(qi);
	if (v->admin == NULL || pg_exec(v->admin, sql, 60000, verify_dropped,
	    v) != 0) {
		backup_log(v->b, LOG_WARNING, "backup.verify",
		    m_str(v->manifest, "id"), "no admin session to drop %s; it "
		    "is dropped at the next start", v->scratch);
		v->created = 0;
		verify_end(v);
	}
	free(sql);
}

static void	verify_next_check(struct verify *);

static void
verify_check_done(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct verify	*v = arg;
	struct backup	*b = v->b;
	const char	*val = NULL;
	int		 ok;

	(void)q;
	if (err == NULL && PQntuples(res) > 0 && PQnfields(res) > 0 &&
	    !PQgetisnull(res, 0, 0))
		val = PQgetvalue(res, 0, 0);
	ok = err == NULL && util_expect_match(b->conf->expect[v->check],
	    val);
	json_array_append_new(v->checks, json_pack("{s:s, s:s, s:s?, s:s?, "
	    "s:b}", "check", b->conf->check[v->check], "expect",
	    b->conf->expect[v->check], "got", val, "error", err, "ok", ok));
	if (!ok) {
		if (err != NULL)
			verify_fail(v, "check '%s' failed: %s",
			    b->conf->check[v->check], err);
		else
			verify_fail(v, "check '%s' returned %s, expected %s",
			    b->conf->check[v->check], val ? val : "no value",
			    b->conf->expect[v->check]);
		return;
	}
	v->check++;
	verify_next_check(v);
}

static void
verify_next_check(struct verify *v)
{
	if (v->check >= v->b->conf->ncheck) {
		verify_step_drop(v);
		return;
	}
	if (pg_exec(v->sess, v->b->conf->check[v->check], 600000,
	    verify_check_done, v) != 0)
		verify_unavailable(v, "cannot run check");
}

static void
verify_sess_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct verify	*v = arg;

	(void)q;
	(void)res;
	if (err != NULL) {
		verify_unavailable(v, "cannot connect to the scratch database: "
		    "%s", err);
		return;
	}
	verify_next_check(v);
}

static void
verify_restored(struct child *c, const struct child_result *r, void *arg)
{
	struct verify	*v = arg;
	char		 why[640];

	(void)c;
	v->child = NULL;
	db_passfile_remove(&v->passfile);
	if (child_failed(r, why, sizeof why)) {
		verify_fail(v, "pg_restore %s", why);
		return;
	}
	v->sess = backup_session_open(v->b, 1, v->scratch, 60000,
	    verify_sess_open, v);
}

static void
verify_created(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct verify	*v = arg;
	char		*msg = NULL;

	(void)q;
	(void)res;
	if (err != NULL) {
		verify_unavailable(v, "cannot create scratch database %s: %s",
		    v->scratch, err);
		return;
	}
	v->created = 1;
	v->child = backup_pg_restore_spawn(v->b, "verify", v->scratch,
	    v->file, 0, verify_restored, v, &v->passfile, &msg);
	if (v->child == NULL) {
		verify_unavailable(v, "%s", msg);
		free(msg);
	}
}

static void
verify_admin_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct verify	*v = arg;
	char		*sql, *qi;

	(void)res;
	if (err != NULL) {
		verify_unavailable(v, "cannot connect with the admin "
		    "connection: %s", err);
		return;
	}
	qi = pg_quote_ident(v->scratch);
	xasprintf(&sql, "CREATE DATABASE %s", qi);
	free(qi);
	if (pg_exec(q, sql, 600000, verify_created, v) != 0)
		verify_unavailable(v, "cannot create the scratch database");
	free(sql);
}

/* sha256sum FILE: compares with the manifest before anything else */
static void
verify_summed(struct child *c, const struct child_result *r, void *arg)
{
	struct verify	*v = arg;
	const char	*want = m_str(v->manifest, "sha256");

	(void)c;
	v->child = NULL;
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0 ||
	    r->outlen < 64) {
		verify_fail(v, "cannot read %s to check its checksum%s%.*s",
		    v->file, r->errlen ? ": " : "", (int)strcspn(r->err,
		    "\n"), r->err);
		return;
	}
	if (strncmp(r->out, want, 64) != 0) {
		verify_fail(v, "checksum mismatch: %s has sha256 %.16s..., the "
		    "manifest says %.16s...: the file is corrupt", v->file,
		    r->out, want);
		return;
	}
	/* named after the backup's start: found and dropped after a crash */
	v->scratch = db_scratch_name("verify", v->b->conf->name,
	    json_integer_value(json_object_get(v->manifest, "start")));
	v->admin = backup_session_open(v->b, 1, NULL, 60000, verify_admin_open,
	    v);
}

void
backup_verify_start(struct backup *b, json_t *manifest, verify_done_cb done,
    void *arg, struct rpc_pending *waiter)
{
	struct verify		*v;
	struct child_spec	 spec;
	int			 e = 0;

	v = xcalloc(1, sizeof *v);
	v->b = b;
	b->verify = v;		/* one at a time per backup */
	v->manifest = json_incref(manifest);
	v->done = done;
	v->arg = arg;
	v->waiter = waiter;
	v->checks = json_array();
	xasprintf(&v->file, "%s/%s", b->conf->dir, m_str(manifest, "file"));
	{
		const char *argv[] = { "sha256sum", "--", v->file, NULL };

		memset(&spec, 0, sizeof spec);
		spec.argv = argv;
		spec.timeout_ms = b->conf->verify_timeout;
		spec.max_output = 256;
		v->child = child_spawn(v->b->opsd, &spec, verify_summed, v, &e);
	}
	if (v->child == NULL)
		verify_unavailable(v, "cannot run sha256sum: %s",
		    strerror(-e));
}

/* Stops a verification whose owner goes away; its scratch database is
 * dropped at the next start. */
void
backup_verify_abort(struct verify *v, const char *why)
{
	if (v->b->verify == v)
		v->b->verify = NULL;
	if (v->waiter != NULL)
		rpc_pending_fail(v->waiter, -ESHUTDOWN,
		    NULL, "verification stopped: %s", why);
	v->waiter = NULL;
	verify_free(v);
}

int
backup_rpc_verify(struct opsd *o, const char *id, struct rpc_pending *waiter,
    char **msg)
{
	struct backup	*b = NULL;
	json_t		*m;

	if ((m = backup_item_find(o, id, &b)) == NULL) {
		xasprintf(msg, "no backup with id '%s' (backup list shows them)",
		    id);
		return (-ENOENT);
	}
	if (b->verify != NULL) {
		xasprintf(msg, "a verification of %s is already running",
		    b->conf->name);
		return (-EBUSY);
	}
	backup_verify_start(b, m, NULL, NULL, waiter);
	/* it may have finished at once (checksum tool missing) */
	return (0);
}
