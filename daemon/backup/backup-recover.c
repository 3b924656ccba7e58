/*
 * Start-up recovery after a crash or kill -9: the run state file says
 * which partial or unmanifested dump to remove; leftover .partial and
 * password files go; scratch databases of this backup (db_scratch_list_sql)
 * are dropped, in a fleet only while holding the backup's lock so another
 * host's verification is left alone.
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
#include "util.h"

static void
recover_close(struct backup *b, struct pgq *q)
{
	pg_cancel(q);
	b->recover_q = NULL;
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
		log_warn("backup.recover", "cannot drop stale scratch database "
		    "%s: %s", d->name, err);
	else
		log_notice("backup.recover", "dropped stale scratch database "
		    "%s", d->name);
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
		log_warn("backup.recover", "cannot look for stale scratch "
		    "databases of %s: %s", b->conf->name, err);
		recover_close(b, q);
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
		d->q = db_query(b->opsd->base, b->db, 1, NULL, sql, 60000,
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
		log_warn("backup.recover", "cannot connect to clean up scratch "
		    "databases of %s: %s", b->conf->name, err);
		recover_close(b, q);
		return;
	}
	/* only this backup's: not those of "app-2" when this is "app" */
	sql = db_scratch_list_sql("verify", b->conf->name);
	if (pg_exec(q, sql, 30000, recover_listed, b) != 0)
		recover_close(b, q);
	free(sql);
}

static void
recover_locked(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct backup	*b = arg;

	if (err != NULL || !db_lock_held(res)) {
		/* another host runs this backup now: its scratch is its own */
		log_info("backup.recover", "not looking for scratch databases "
		    "of %s: %s", b->conf->name, err ? err : "another host "
		    "holds the backup's lock");
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
		log_warn("backup.recover", "cannot connect to clean up scratch "
		    "databases of %s: %s", b->conf->name, err);
		recover_close(b, q);
		return;
	}
	if (db_try_lock(q, db_lock_key("backup", b->conf->name), 30000,
	    recover_locked, b) != 0)
		recover_close(b, q);
}

/* After a crash: no partial file, no run state, no scratch database. */
void
backup_recover(struct backup *b)
{
	json_t		*st;
	DIR		*d;
	struct dirent	*de;
	char		*path;

	if ((st = backup_run_load_state(b)) != NULL) {
		const char *id = json_string_value(json_object_get(st, "id"));
		const char *partial = json_string_value(json_object_get(st,
		    "partial"));

		const char *final = json_string_value(json_object_get(st,
		    "final"));
		const char *step = json_string_value(json_object_get(st,
		    "step"));
		char *mpath = NULL;
		struct stat sb;
		int complete;

		if (partial != NULL)
			unlink(partial);
		/* renamed but no manifest yet: no checksum, not a backup */
		if (id != NULL)
			xasprintf(&mpath, "%s/%s.json", b->conf->dir, id);
		complete = mpath != NULL && stat(mpath, &sb) == 0;
		if (!complete && final != NULL)
			unlink(final);
		free(mpath);
		backup_event(b, &EVT_BACKUP_INTERRUPTED, id, NULL, 0, "backup "
		    "run %s was interrupted while %s (opsd stopped or "
		    "crashed); %s", id ? id : "?", step ? step : "?",
		    complete ? "the backup itself is complete and kept; its "
		    "verification or upload did not finish" : "its partial "
		    "file was removed");
		json_decref(st);
		backup_run_clear_state(b);
	}
	if ((d = opendir(b->conf->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (!backup_own_file(b, de->d_name, ".dump.partial"))
				continue;
			xasprintf(&path, "%s/%s", b->conf->dir, de->d_name);
			log_notice("backup.recover", "removing leftover %s",
			    path);
			unlink(path);
			free(path);
		}
		closedir(d);
	}
	xasprintf(&path, "%s-", b->conf->name);
	db_passfile_clean(b->opsd->conf->state_dir, path);
	free(path);
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

/* Stops the clean-up: the backup goes away or opsd stops. */
void
backup_recover_stop(struct backup *b)
{
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
