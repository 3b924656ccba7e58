/*
 * Start-up recovery after a crash or kill -9, in two parts.
 *
 * backup_run_recover() is backup.run's rollback (core/op.h): for a run the
 * journal found unfinished it derives the run's names again from the
 * configured dir and the run id (checked against NAME-YYYYMMDDTHHMMSSZ;
 * nothing read from the op file is used as a path) and removes what the
 * run left half done: its .partial, its dump if it has no manifest, its
 * password files and, from the verifying step on, its scratch database.
 * A run whose manifest was written is a backup: it stays, and the op is
 * recorded as ok; its verification is left to the verify schedule or
 * `backup verify`, its upload to the next run. Anything before that is
 * rolled back.
 *
 * backup_recover() is the sweep that stays as a safety net: leftover
 * .partial files of this backup's run names, its password files by their
 * exact names, and its scratch databases (db_scratch_list_sql), in a fleet
 * only while holding the backup's lock so another host's verification is
 * left alone.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "backup-int.h"
#include "daemon.h"
#include "evt.h"
#include "op.h"
#include "util.h"

static void
recover_close(struct backup *b, struct pgq *q)
{
	pg_cancel(q);
	b->recover_q = NULL;
}

static void
recover_unlocked(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	(void)res;
	(void)err;
	recover_close(arg, q);
}

/*
 * Lets go of the backup's lock before the session goes: a closed session
 * frees it only once the server has noticed, and a run of this backup
 * that asks in between (its lock step waits while recover_q is set)
 * would take its own host's clean-up for another host.
 */
static void
recover_unlock(struct backup *b, struct pgq *q)
{
	if (db_unlock(q, db_lock_key("backup", b->conf->name), 10000,
	    recover_unlocked, b) != 0)
		recover_close(b, q);
}

struct recover_drop {
	struct backup	*b;
	struct pgq	*q;
	char		*name;
};

static void
recover_dropped_once(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct recover_drop	*d = arg;
	struct backup		*b = d->b;
	unsigned int		 i;

	(void)q;
	(void)res;
	if (err != NULL)
		backup_log(b, LOG_WARNING, "backup.recover", NULL, "cannot "
		    "drop stale scratch database %s: %s", d->name, err);
	else
		backup_log(b, LOG_NOTICE, "backup.recover", NULL, "dropped "
		    "stale scratch database %s", d->name);
	for (i = 0; i < b->ndrops; i++) {
		if (b->drops[i] == d) {
			b->drops[i] = b->drops[--b->ndrops];
			break;
		}
	}
	free(d->name);
	free(d);
}

static void
recover_listed(struct pgq *q, const PGresult *res, const char *err, void *arg)
{
	struct backup	*b = arg;
	char		*sql, *qi, *name;
	int		 i;

	if (err != NULL) {
		backup_log(b, LOG_WARNING, "backup.recover", NULL, "cannot "
		    "look for stale scratch databases of %s: %s",
		    b->conf->name, err);
		recover_unlock(b, q);
		return;
	}
	/* a one-shot admin connection per database: the list is short */
	for (i = 0; i < PQntuples(res); i++) {
		struct recover_drop *d = xcalloc(1, sizeof *d);

		name = xstrdup(PQgetvalue(res, i, 0));
		d->b = b;
		d->name = name;
		qi = pg_quote_ident(name);
		xasprintf(&sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", qi);
		free(qi);
		d->q = db_query(b->opsd, b->db, 1, NULL, sql, 60000,
		    recover_dropped_once, d);
		b->drops = xreallocarray(b->drops, b->ndrops + 1,
		    sizeof *b->drops);
		b->drops[b->ndrops++] = d;
		free(sql);
	}
	/*
	 * The list is taken under the lock, so every name on it belongs to
	 * a run that is over: let go of the lock now, the drops need none.
	 */
	if (b->conf->lock == BACKUP_LOCK_ADVISORY)
		recover_unlock(b, q);
	else
		recover_close(b, q);
}

static void
recover_admin_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct backup	*b = arg;
	char		*sql;

	(void)res;
	if (err != NULL) {
		backup_log(b, LOG_WARNING, "backup.recover", NULL, "cannot "
		    "connect to clean up scratch databases of %s: %s",
		    b->conf->name, err);
		recover_close(b, q);
		return;
	}
	/* only this backup's: not those of "app-2" when this is "app" */
	sql = db_scratch_list_sql("verify", b->conf->name);
	if (pg_exec(q, sql, 30000, recover_listed, b) != 0)
		recover_unlock(b, q);
	free(sql);
}

static void
recover_locked(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct backup	*b = arg;

	if (err != NULL || !db_lock_held(res)) {
		/* another host runs this backup now: its scratch is its own */
		backup_log(b, LOG_INFO, "backup.recover", NULL, "not looking "
		    "for scratch databases of %s: %s", b->conf->name, err ?
		    err : "another host holds the backup's lock");
		recover_close(b, q);
		return;
	}
	recover_admin_open(q, NULL, NULL, b);
}

static void
recover_lock_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct backup	*b = arg;

	(void)res;
	if (err != NULL) {
		backup_log(b, LOG_WARNING, "backup.recover", NULL, "cannot "
		    "connect to clean up scratch databases of %s: %s",
		    b->conf->name, err);
		recover_close(b, q);
		return;
	}
	if (db_try_lock(q, db_lock_key("backup", b->conf->name), 30000,
	    recover_locked, b) != 0)
		recover_close(b, q);
}

/* After a crash: no partial file, no password file, no scratch database. */
void
backup_recover(struct backup *b)
{
	DIR		*d;
	struct dirent	*de;
	char		*path;

	/* the run state file of an opsd before the op journal: by its name */
	xasprintf(&path, "%s/backup-%s.run.json", b->opsd->conf->state_dir,
	    b->conf->name);
	unlink(path);
	free(path);
	if ((d = opendir(b->conf->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (!backup_own_file(b, de->d_name, ".dump.partial"))
				continue;
			xasprintf(&path, "%s/%s", b->conf->dir, de->d_name);
			backup_log(b, LOG_NOTICE, "backup.recover", NULL,
			    "removing leftover %s", path);
			unlink(path);
			free(path);
		}
		closedir(d);
	}
	backup_passfiles_remove(b);
	/*
	 * Stale scratch databases go; in a fleet only while holding the
	 * backup's lock, so another host's verification is left alone.
	 */
	if (b->conf->lock == BACKUP_LOCK_ADVISORY)
		b->recover_q = backup_session_open(b, 0, NULL, 30000,
		    recover_lock_open, b);
	else
		b->recover_q = backup_session_open(b, 1, NULL, 30000,
		    recover_admin_open, b);
}

/* --- backup.run's rollback ------------------------------------------------ */

struct run_recovery {
	struct backup	*b;
	struct op	*op;
	struct pgq	*q;
	char		*scratch;
	int		 complete;
};

static void
recovery_free(struct run_recovery *rr)
{
	struct backup	*b = rr->b;
	unsigned int	 i;

	for (i = 0; i < b->nrecoveries; i++) {
		if (b->recoveries[i] == rr) {
			b->recoveries[i] = b->recoveries[--b->nrecoveries];
			break;
		}
	}
	if (rr->q != NULL)
		pg_cancel(rr->q);
	free(rr->scratch);
	free(rr);
}

static void
recovery_finish(struct run_recovery *rr, const char *drop_err)
{
	const char	*id = op_get(rr->op, "run");

	if (rr->complete)
		op_finish(rr->op, OP_OK, NULL);
	else
		op_finish(rr->op, OP_ROLLED_BACK, "opsd stopped or crashed "
		    "while %s; the unfinished run %s was removed%s%s",
		    op_step_name(rr->op), id, drop_err != NULL ? "; " : "",
		    drop_err != NULL ? drop_err : "");
	rr->op = NULL;
	recovery_free(rr);
}

static void
recovery_dropped(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct run_recovery	*rr = arg;
	char			*msg = NULL;

	(void)q;
	(void)res;
	rr->q = NULL;		/* a one-shot query: it ends by itself */
	if (err != NULL) {
		xasprintf(&msg, "cannot drop its scratch database %s (the "
		    "next start tries again): %s", rr->scratch, err);
		backup_log(rr->b, LOG_WARNING, "backup.recover",
		    op_get(rr->op, "run"), "%s", msg);
	} else
		backup_log(rr->b, LOG_NOTICE, "backup.recover",
		    op_get(rr->op, "run"), "dropped scratch database %s of "
		    "interrupted run %s", rr->scratch, op_get(rr->op, "run"));
	recovery_finish(rr, msg);
	free(msg);
}

static void
unlink_derived(struct backup *b, const char *id, const char *suffix,
    const char *what)
{
	char	*path;

	xasprintf(&path, "%s/%s%s", b->conf->dir, id, suffix);
	if (unlink(path) == 0)
		backup_log(b, LOG_NOTICE, "backup.recover", id, "removed %s %s",
		    what, path);
	free(path);
}

void
backup_run_recover(struct opsd *o, struct op *op)
{
	struct backup		*b;
	struct run_recovery	*rr;
	struct stat		 sb;
	const char		*id = op_get(op, "run");
	unsigned int		 step = op_step_index(op);
	char			*mpath, *sql, *qi;
	int64_t			 start;

	if ((b = backup_find(o, op_object(op))) == NULL) {
		op_finish(op, OP_ABANDONED, "backup %s is no longer in the "
		    "configuration; its files were left as they are",
		    op_object(op));
		return;
	}
	/* the run id names every file: it must be one of this backup's */
	if ((start = backup_run_id_time(b, id)) < 0) {
		backup_log(b, LOG_WARNING, "backup.recover", NULL, "op %s: "
		    "'%s' is not a run of backup %s; nothing removed", op_id(op),
		    id != NULL ? id : "", b->conf->name);
		op_finish(op, OP_ABANDONED, "the op's run '%s' is not a run of "
		    "backup %s (%s-YYYYMMDDTHHMMSSZ); nothing was removed by "
		    "it (the start-up sweep removes %s's leftovers)",
		    id != NULL ? id : "", b->conf->name, b->conf->name,
		    b->conf->name);
		return;
	}
	rr = xcalloc(1, sizeof *rr);
	rr->b = b;
	rr->op = op;
	b->recoveries = xreallocarray(b->recoveries, b->nrecoveries + 1,
	    sizeof *b->recoveries);
	b->recoveries[b->nrecoveries++] = rr;

	unlink_derived(b, id, ".dump.partial", "partial dump");
	/* renamed but no manifest yet: no checksum, not a backup */
	xasprintf(&mpath, "%s/%s.json", b->conf->dir, id);
	rr->complete = stat(mpath, &sb) == 0 && S_ISREG(sb.st_mode);
	free(mpath);
	if (!rr->complete)
		unlink_derived(b, id, ".dump", "unmanifested dump");
	backup_passfiles_remove(b);
	backup_event(b, &EVT_BACKUP_INTERRUPTED, id, NULL, 0, "backup run %s "
	    "was interrupted while %s (opsd stopped or crashed; op %s); %s",
	    id, op_step_name(op), op_id(op), rr->complete ? "the backup "
	    "itself is complete and kept; its verification or upload did not "
	    "finish" : "its partial file was removed");
	if (step == OP_NO_STEP || step < RUN_VERIFY) {
		recovery_finish(rr, NULL);
		return;
	}
	/* the helper names it: the same name the verification used */
	rr->scratch = db_scratch_name("verify", b->conf->name, start);
	qi = pg_quote_ident(rr->scratch);
	xasprintf(&sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", qi);
	free(qi);
	rr->q = db_query(o, b->db, 1, NULL, sql, 60000,
	    recovery_dropped, rr);
	free(sql);
	if (rr->q == NULL) {
		char *msg;

		xasprintf(&msg, "cannot drop its scratch database %s (the "
		    "next start tries again)", rr->scratch);
		recovery_finish(rr, msg);
		free(msg);
	}
}

/*
 * Stops the clean-up: the backup goes away (removed) or opsd stops. A
 * roll-back still dropping its scratch database is abandoned when the
 * backup left the configuration; when opsd stops it stays unfinished in
 * the journal, and the next start rolls it back again.
 */
void
backup_recover_stop(struct backup *b, int removed)
{
	while (b->nrecoveries > 0) {
		struct run_recovery *rr = b->recoveries[0];

		if (rr->q != NULL)
			pg_cancel(rr->q);
		rr->q = NULL;
		if (removed)
			op_finish(rr->op, OP_ABANDONED, "backup %s was removed "
			    "from the configuration before its scratch "
			    "database %s was dropped", b->conf->name,
			    rr->scratch);
		rr->op = NULL;
		recovery_free(rr);
	}
	free(b->recoveries);
	b->recoveries = NULL;
	if (b->recover_q != NULL)
		pg_cancel(b->recover_q);
	b->recover_q = NULL;
	while (b->ndrops > 0) {
		struct recover_drop *d = b->drops[--b->ndrops];

		pg_cancel(d->q);
		free(d->name);
		free(d);
	}
	free(b->drops);
	b->drops = NULL;
}
