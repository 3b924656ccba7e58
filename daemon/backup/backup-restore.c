/*
 * backup.restore: checksum first, then into a named database that must
 * exist (or be created with create) and be empty (or be replaced with
 * force). pg_restore itself is spawned here for verify and restore alike,
 * with the flags docs/runbook-recovery.md gives for a manual restore.
 */
#include <sys/wait.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backup-int.h"
#include "child.h"
#include "daemon.h"
#include "evt.h"
#include "rpc.h"
#include "util.h"

/*
 * pg_restore FILE into dbname as the admin role, the password through a
 * private PGPASSFILE (*passfile, removed by the caller when it ends);
 * clean: replace existing objects. Returns the child, or NULL with a
 * message in *err.
 */
/* backup.restore records: each carries backup, backup_id and into */
static const struct evt_type restore_start_type = {
	"backup.restore", NULL, LOG_NOTICE };
static const struct evt_type restore_failed_type = {
	"backup.restore", NULL, LOG_WARNING };

struct child *
backup_pg_restore_spawn(struct backup *b, const char *tag, const char *dbname,
    const char *file, int clean, child_done_cb done, void *arg,
    char **passfile, char **err)
{
	struct child_spec	 spec;
	struct child		*c;
	char			*bin, *ci, *dbarg, *env[2] = { NULL, NULL };
	int			 e = 0;

	*err = NULL;
	*passfile = backup_passfile_create(b, tag, 1, err);
	if (*err != NULL)
		return (NULL);
	bin = backup_pg_bin(b, "pg_restore");
	ci = db_conninfo(b->db, 1, dbname);
	xasprintf(&dbarg, "--dbname=%s", ci);
	{
		/* the flags docs/runbook-recovery.md gives for a manual one */
		const char *argv[] = { bin, "--exit-on-error", "--no-owner",
		    "--no-privileges", "--no-password", dbarg,
		    clean ? "--clean" : file, clean ? "--if-exists" : NULL,
		    clean ? file : NULL, NULL };

		memset(&spec, 0, sizeof spec);
		if (*passfile != NULL) {
			xasprintf(&env[0], "PGPASSFILE=%s", *passfile);
			spec.env = (const char *const *)env;
		}
		spec.argv = argv;
		spec.timeout_ms = b->conf->verify_timeout;
		c = child_spawn(b->opsd, &spec, done, arg, &e);
	}
	free(env[0]);
	free(bin);
	free(ci);
	free(dbarg);
	if (c == NULL)
		xasprintf(err, "cannot run pg_restore: %s", strerror(-e));
	return (c);
}

struct restore {
	struct backup		*b;
	json_t			*manifest;
	char			*file;
	char			*into;
	int			 create;
	int			 force;
	int			 created;
	int			 restoring;	/* pg_restore runs */
	struct pgq		*admin;
	struct pgq		*target;
	struct child		*child;
	char			*passfile;
	uint64_t		 start_usec;
	struct rpc_pending	*waiter;
};

/* Every restore in flight is on its backup's list: see restore_abort. */
static void
restore_free(struct restore *rs)
{
	struct backup	*b = rs->b;
	unsigned int	 i;

	for (i = 0; i < b->nrestores; i++) {
		if (b->restores[i] == rs) {
			b->restores[i] = b->restores[--b->nrestores];
			break;
		}
	}
	if (b->nrestores == 0) {
		free(b->restores);
		b->restores = NULL;
	}
	if (rs->admin != NULL)
		pg_cancel(rs->admin);
	if (rs->target != NULL)
		pg_cancel(rs->target);
	if (rs->child != NULL)
		child_abandon(rs->child);
	db_passfile_remove(&rs->passfile);
	json_decref(rs->manifest);
	free(rs->file);
	free(rs->into);
	free(rs);
}

static void
restore_fail(struct restore *, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
restore_fail(struct restore *rs, int err, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	{
		struct evt *ev = evt_new(&restore_failed_type);

		evt_add(ev, "backup", "%s", rs->b->conf->name);
		evt_add(ev, "database", "%s", rs->b->conf->database);
		evt_add(ev, "backup_id", "%s", m_str(rs->manifest, "id"));
		evt_add(ev, "into", "%s", rs->into);
		evt_emit(ev, "restore of %s into %s failed: %s",
		    m_str(rs->manifest, "id"), rs->into, msg);
	}
	rpc_pending_fail(rs->waiter, err, NULL, "%s", msg);
	free(msg);
	restore_free(rs);
}

static void
restore_done(struct child *c, const struct child_result *r, void *arg)
{
	struct restore	*rs = arg;
	struct evt	*ev;
	char		 why[640];
	double		 secs = (double)(now_usec() - rs->start_usec) / 1e6;

	(void)c;
	rs->child = NULL;
	db_passfile_remove(&rs->passfile);
	if (child_failed(r, why, sizeof why)) {
		restore_fail(rs, -EIO, "pg_restore %s", why);
		return;
	}
	ev = evt_new(&EVT_BACKUP_RESTORED);
	evt_add(ev, "backup", "%s", rs->b->conf->name);
	evt_add(ev, "database", "%s", rs->b->conf->database);
	evt_add(ev, "backup_id", "%s", m_str(rs->manifest, "id"));
	evt_add(ev, "into", "%s", rs->into);
	evt_emit(ev, "backup %s restored into database %s in %.1fs%s",
	    m_str(rs->manifest, "id"), rs->into, secs, rs->force ?
	    " (replacing its objects)" : "");
	rpc_pending_reply(rs->waiter, json_pack("{s:s, s:s, s:s, s:b, s:b, "
	    "s:I, s:s, s:f}", "id", m_str(rs->manifest, "id"), "into",
	    rs->into, "file", rs->file, "created", rs->created, "forced",
	    rs->force, "bytes", json_integer_value(json_object_get(
	    rs->manifest, "bytes")), "sha256", m_str(rs->manifest, "sha256"),
	    "seconds", secs));
	rs->waiter = NULL;
	restore_free(rs);
}

static void
restore_run(struct restore *rs)
{
	char	*msg = NULL;

	if (rs->admin != NULL) {
		pg_cancel(rs->admin);
		rs->admin = NULL;
	}
	rs->restoring = 1;
	rs->child = backup_pg_restore_spawn(rs->b, "restore", rs->into,
	    rs->file, rs->force, restore_done, rs, &rs->passfile, &msg);
	if (rs->child == NULL) {
		restore_fail(rs, -EIO, "%s", msg);
		free(msg);
	}
}

static void
restore_counted(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct restore	*rs = arg;
	long		 n;

	(void)q;
	if (err != NULL) {
		restore_fail(rs, -EIO, "cannot inspect database %s: "
		    "%s", rs->into, err);
		return;
	}
	n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	pg_cancel(rs->target);
	rs->target = NULL;
	if (n > 0 && !rs->force) {
		restore_fail(rs, -EIO, "database %s is not empty (%ld "
		    "tables, views or sequences); restore into a new database "
		    "with --create, or pass --force to replace its objects",
		    rs->into, n);
		return;
	}
	restore_run(rs);
}

static void
restore_target_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct restore	*rs = arg;

	(void)res;
	if (err != NULL) {
		restore_fail(rs, -EIO, "cannot connect to %s: %s",
		    rs->into, err);
		return;
	}
	if (pg_exec(q, "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
	    "ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p','v','m',"
	    "'S','f') AND n.nspname NOT IN ('pg_catalog', "
	    "'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
	    60000, restore_counted, rs) != 0)
		restore_fail(rs, -EIO, "cannot inspect %s", rs->into);
}

static void
restore_created(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct restore	*rs = arg;

	(void)q;
	(void)res;
	if (err != NULL) {
		restore_fail(rs, -EIO, "cannot create database %s: %s",
		    rs->into, err);
		return;
	}
	rs->created = 1;
	restore_run(rs);
}

static void
restore_exists(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct restore	*rs = arg;
	char		*sql, *qi;
	int		 exists;

	if (err != NULL) {
		restore_fail(rs, -EIO, "%s", err);
		return;
	}
	exists = PQntuples(res) > 0;
	if (!exists && !rs->create) {
		restore_fail(rs, -ENOENT, "database %s does not exist;"
		    " pass --create to create it", rs->into);
		return;
	}
	if (!exists) {
		qi = pg_quote_ident(rs->into);
		xasprintf(&sql, "CREATE DATABASE %s", qi);
		free(qi);
		if (pg_exec(q, sql, 600000, restore_created, rs) != 0)
			restore_fail(rs, -EIO, "cannot create %s",
			    rs->into);
		free(sql);
		return;
	}
	rs->target = backup_session_open(rs->b, 1, rs->into, 60000,
	    restore_target_open, rs);
}

static void
restore_admin_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct restore	*rs = arg;
	char		*sql, *lit, *p, *o;

	(void)res;
	if (err != NULL) {
		restore_fail(rs, -EIO, "cannot connect with the admin "
		    "connection: %s", err);
		return;
	}
	/* a literal: double the quotes (standard_conforming_strings) */
	lit = o = xmalloc(2 * strlen(rs->into) + 1);
	for (p = rs->into; *p != '\0'; p++) {
		if (*p == '\'')
			*o++ = '\'';
		*o++ = *p;
	}
	*o = '\0';
	xasprintf(&sql, "SELECT 1 FROM pg_database WHERE datname = '%s'", lit);
	free(lit);
	if (pg_exec(q, sql, 30000, restore_exists, rs) != 0)
		restore_fail(rs, -EIO, "cannot query pg_database");
	free(sql);
}

static void
restore_summed(struct child *c, const struct child_result *r, void *arg)
{
	struct restore	*rs = arg;

	(void)c;
	rs->child = NULL;
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0 ||
	    r->outlen < 64) {
		restore_fail(rs, -EIO, "cannot read %s: %.*s",
		    rs->file, (int)strcspn(r->err, "\n"), r->err);
		return;
	}
	if (strncmp(r->out, m_str(rs->manifest, "sha256"), 64) != 0) {
		restore_fail(rs, -EIO, "checksum mismatch: %s is "
		    "corrupt (sha256 %.16s..., manifest %.16s...); refusing to "
		    "restore it", rs->file, r->out,
		    m_str(rs->manifest, "sha256"));
		return;
	}
	rs->admin = backup_session_open(rs->b, 1, NULL, 60000,
	    restore_admin_open, rs);
}

/*
 * The backup goes away (a reload removed its section, or opsd stops)
 * while a restore runs: pg_restore is killed, the waiter hears why, and
 * nothing is left pointing at the backup. A database the restore created
 * is left as it is, partly restored: the error says so.
 */
void
backup_restore_abort_all(struct backup *b, const char *why)
{
	struct restore	*rs;

	while (b->nrestores > 0) {
		rs = b->restores[b->nrestores - 1];
		backup_log(b, LOG_WARNING, "backup.restore",
		    m_str(rs->manifest, "id"), "restore of %s into %s "
		    "stopped: %s", m_str(rs->manifest, "id"), rs->into, why);
		if (rs->waiter != NULL)
			rpc_pending_fail(rs->waiter,
			    -ESHUTDOWN, NULL, "restore of %s "
			    "into %s stopped: %s%s%s%s",
			    m_str(rs->manifest, "id"), rs->into, why,
			    rs->restoring ? "; database " : "",
			    rs->restoring ? rs->into : "", rs->restoring ?
			    " may be partly restored: drop it, or "
			    "restore again with --force" : "");
		rs->waiter = NULL;
		restore_free(rs);
	}
}

int
backup_rpc_restore(struct opsd *o, const char *id, const char *into,
    int create, int force, struct rpc_pending *waiter, char **msg)
{
	struct backup		*b = NULL;
	struct restore		*rs;
	struct child_spec	 spec;
	json_t			*m;
	int			 e = 0;

	if ((m = backup_item_find(o, id, &b)) == NULL) {
		xasprintf(msg, "no backup with id '%s' (backup list shows them)",
		    id);
		return (-ENOENT);
	}
	if (*into == '\0' || strlen(into) > 63) {
		xasprintf(msg, "'%s' is not a database name", into);
		return (-EINVAL);
	}
	rs = xcalloc(1, sizeof *rs);
	rs->b = b;
	rs->manifest = json_incref(m);
	rs->into = xstrdup(into);
	rs->create = create;
	rs->force = force;
	rs->waiter = waiter;
	rs->start_usec = now_usec();
	b->restores = xreallocarray(b->restores, b->nrestores + 1,
	    sizeof *b->restores);
	b->restores[b->nrestores++] = rs;
	xasprintf(&rs->file, "%s/%s", b->conf->dir, m_str(m, "file"));
	{
		const char *argv[] = { "sha256sum", "--", rs->file, NULL };

		memset(&spec, 0, sizeof spec);
		spec.argv = argv;
		spec.max_output = 256;
		spec.timeout_ms = b->conf->verify_timeout;
		rs->child = child_spawn(rs->b->opsd, &spec, restore_summed, rs, &e);
	}
	if (rs->child == NULL) {
		rs->waiter = NULL;
		restore_free(rs);
		xasprintf(msg, "cannot run sha256sum: %s", strerror(-e));
		return (-EIO);
	}
	{
		struct evt *ev = evt_new(&restore_start_type);

		evt_add(ev, "backup", "%s", b->conf->name);
		evt_add(ev, "database", "%s", b->conf->database);
		evt_add(ev, "backup_id", "%s", id);
		evt_add(ev, "into", "%s", into);
		evt_emit(ev, "restoring %s into %s%s%s", id, into, create ?
		    " (create)" : "", force ? " (force)" : "");
	}
	return (0);
}
