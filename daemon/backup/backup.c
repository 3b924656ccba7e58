/*
 * Backups: the set of configured backups and its life cycle (reload keeps
 * an idle backup's counters, a busy one its old settings until it is
 * done), the scheduled jobs, the events every other file reports through,
 * and staleness. The helpers the room's files share live here too. See
 * backup.h for the shape of a run and backup-int.h for the files.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "alert.h"
#include "backup-int.h"
#include "daemon.h"
#include "lazylib.h"
#include "evt.h"
#include "jobs.h"
#include "util.h"

#define STALE_CHECK_S	30

const struct evt_type EVT_BACKUP_OK = {
	"backup.succeeded", "8fe0115604a040458f5ca93fecc0e16e", LOG_INFO };
const struct evt_type EVT_BACKUP_FAILED = {
	"backup.failed", "e446442834a44bafb54f8da528c61a62", LOG_ERR };
const struct evt_type EVT_BACKUP_VERIFIED = {
	"backup.verified", "743b7536464e47af9ffc3352c174cdcd", LOG_INFO };
const struct evt_type EVT_BACKUP_VERIFY_FAILED = {
	"backup.verify_failed", "852be729294c41b59eb76d79360b8800", LOG_ERR };
const struct evt_type EVT_BACKUP_UPLOAD_FAILED = {
	"backup.upload_failed", "cd9eeabdf75c43d2b5d34dc149ebb045", LOG_ERR };
const struct evt_type EVT_BACKUP_SKIPPED = {
	"backup.skipped", "92e7c5cd98764b95b2cc50d0ad4da23c", LOG_NOTICE };
const struct evt_type EVT_BACKUP_STALE = {
	"backup.stale", "1b8110cafdfb472295819b15de43add1", LOG_WARNING };
const struct evt_type EVT_BACKUP_INTERRUPTED = {
	"backup.interrupted", "5d61243ff3e547af8d0cdfe2664aa045", LOG_WARNING };
const struct evt_type EVT_BACKUP_RESTORED = {
	"backup.restored", "449fddcdaefe4b7898874a5ff4850d73", LOG_NOTICE };
const struct evt_type EVT_BACKUP_VERIFY_UNAVAILABLE = {
	"backup.verify_unavailable", "3c9e0f6a4d1b4b7e9a52c8d07e61f2b4",
	LOG_WARNING };
const struct evt_type EVT_BACKUP_RETRY = {
	"backup.retry", "a7d24c19e5f04e1c8b3a6f5d20c9e871", LOG_NOTICE };

/* the type of backup_log()'s records: each names itself */
static const struct evt_type backup_log_type = { "backup", NULL, LOG_INFO };

static struct backup_set *
backup_set(struct opsd *o)
{
	if (BACKUPS(o) == NULL)
		o->sub[SUBSYS_BACKUP] = xcalloc(1, sizeof (struct backup_set));
	return (BACKUPS(o));
}

unsigned int
backup_count(struct opsd *o)
{
	return (BACKUPS(o) != NULL ? BACKUPS(o)->n : 0);
}

struct backup *
backup_find(struct opsd *o, const char *name)
{
	unsigned int	i;

	for (i = 0; i < backup_count(o); i++) {
		if (strcmp(BACKUPS(o)->v[i]->conf->name, name) == 0)
			return (BACKUPS(o)->v[i]);
	}
	return (NULL);
}

/*
 * pgpass-BACKUP-TAG (tags dump, verify, restore): start-up recovery
 * removes what a kill left behind by these exact names.
 */
static const char *const passfile_tags[] = { "dump", "verify", "restore" };

char *
backup_passfile_path(struct backup *b, const char *tag)
{
	char	*p;

	xasprintf(&p, "%s/run/pgpass-%s-%s", b->opsd->conf->state_dir,
	    b->conf->name, tag);
	return (p);
}

void
backup_passfiles_remove(struct backup *b)
{
	size_t	 i;
	char	*p;

	for (i = 0; i < nitems(passfile_tags); i++) {
		p = backup_passfile_path(b, passfile_tags[i]);
		if (unlink(p) == 0)
			backup_log(b, LOG_NOTICE, "backup.recover", NULL,
			    "removed leftover password file %s", p);
		free(p);
	}
}

char *
backup_passfile_create(struct backup *b, const char *tag, int admin, char **err)
{
	char	 t[160], *path;

	snprintf(t, sizeof t, "%s-%s", b->conf->name, tag);
	if (db_passfile_create(b->db, b->opsd->conf->state_dir, t, admin,
	    &path, err) != 0)
		return (NULL);
	return (path);
}

/* A session for the backup user or the admin on dbname (NULL: own db). */
struct pgq *
backup_session_open(struct backup *b, int admin, const char *dbname,
    uint64_t timeout_ms, pg_done_cb cb, void *arg)
{
	return (db_session_open(b->opsd, b->db, admin, dbname,
	    timeout_ms, cb, arg));
}

char *
backup_pg_bin(struct backup *b, const char *tool)
{
	char	*p;

	if (b->conf->pg_bin_dir != NULL)
		xasprintf(&p, "%s/%s", b->conf->pg_bin_dir, tool);
	else
		p = xstrdup(tool);
	return (p);
}

void
backup_event(struct backup *b, const struct evt_type *type, const char *id,
    const char *alert_object, int firing, const char *fmt, ...)
{
	struct evt	*ev;
	va_list		 ap;
	char		*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	ev = evt_new(type);
	evt_add(ev, "backup", "%s", b->conf->name);
	evt_add(ev, "database", "%s", b->conf->database);
	if (id != NULL)
		evt_add(ev, "backup_id", "%s", id);
	/* one alert per backup and kind: "backup.run" for app, ... */
	if (alert_object != NULL && b->conf->nalert > 0)
		evt_alert(ev, (const char *const *)b->conf->alert,
		    b->conf->nalert, alert_object, b->conf->name, firing);
	evt_emit(ev, "%s", msg);
	free(msg);
}

void
backup_log(struct backup *b, int priority, const char *name, const char *id,
    const char *fmt, ...)
{
	struct evt	*ev;
	va_list		 ap;
	char		*msg;

	if (priority > log_get_level())
		return;
	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	ev = evt_new(&backup_log_type);
	ev->name = name;
	evt_set_priority(ev, priority);
	evt_add(ev, "backup", "%s", b->conf->name);
	evt_add(ev, "database", "%s", b->conf->database);
	if (id != NULL)
		evt_add(ev, "backup_id", "%s", id);
	evt_emit(ev, "%s", msg);
	free(msg);
}

static void
verify_job_done(struct verify *v, int ok, void *arg)
{
	struct backup	*b = arg;

	if (b->verify_job == NULL)
		return;
	if (ok > 0)
		job_finished(b->verify_job, 1, "%s verified", m_str(v->manifest,
		    "id"));
	else if (ok == 0)
		job_finished(b->verify_job, 0, "%s FAILED verification: %s",
		    m_str(v->manifest, "id"), v->error);
	else
		job_finished(b->verify_job, 0, "could not verify %s: %s",
		    m_str(v->manifest, "id"), v->error);
}

/* verify_schedule: restore the newest backup again, so "good" stays true */
static void
verify_job_cb(struct job *j, void *arg)
{
	struct backup	*b = arg;
	size_t		 n = json_array_size(b->items);

	if (b->verify != NULL || b->run != NULL) {
		job_finished(j, -1, "skipped: a run or verification is busy");
		return;
	}
	if (n == 0) {
		job_finished(j, -1, "skipped: no backup to verify yet");
		return;
	}
	backup_verify_start(b, json_array_get(b->items, n - 1),
	    verify_job_done, b, NULL);
}

static void
backup_job_cb(struct job *j, void *arg)
{
	struct backup	*b = arg;
	struct brun	*r;
	char		*err = NULL;
	int		 e = 0;

	if (b->run != NULL) {
		job_finished(j, -1, "skipped: %s still running", b->run->id);
		return;
	}
	if ((r = backup_run_start(b, j, NULL, &err, &e)) == NULL) {
		/* -EBUSY: the roll-back of an interrupted run is not over */
		job_finished(j, e == -EBUSY ? -1 : 0, "%s%s", e == -EBUSY ?
		    "skipped: " : "", err);
		free(err);
		return;
	}
	r->scheduled = 1;
	/* the schedule's own run: a retry still pending is superseded */
	if (b->retry_timer != NULL)
		evtimer_del(b->retry_timer);
	b->retry_n = 0;
}

static void
format_age(int64_t s, char *buf, size_t len);

/* A failed scheduled run, tried again: the same as the schedule's. */
static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct backup	*b = arg;
	struct brun	*r;
	char		*err = NULL;
	int		 e = 0;

	(void)fd;
	(void)what;
	if (b->run != NULL)
		return;		/* a run is under way: it decides */
	if ((r = backup_run_start(b, NULL, NULL, &err, &e)) == NULL) {
		backup_log(b, LOG_WARNING, "backup.retry", NULL, "backup %s: "
		    "retry %u cannot start: %s", b->conf->name, b->retry_n,
		    err);
		free(err);
		backup_retry_plan(b, 1);
		return;
	}
	r->scheduled = 1;
	if (b->job != NULL) {
		job_started(b->job);
		r->job = b->job;
	}
}

/*
 * After a run ends: a success ends the retries; a failed scheduled run
 * (or retry) is tried again after the next wait of retry, unless the
 * schedule's next run comes first.
 */
void
backup_retry_plan(struct backup *b, int failed)
{
	struct timeval	 tv;
	int64_t		 now = (int64_t)time(NULL), next, at;
	uint64_t	 ms;
	char		 when[32], wait[32];

	if (!failed) {
		if (b->retry_timer != NULL)
			evtimer_del(b->retry_timer);
		b->retry_n = 0;
		return;
	}
	if (b->conf->nretry == 0)
		return;
	if (b->retry_n >= b->conf->nretry) {
		backup_log(b, LOG_WARNING, "backup.retry", NULL, "backup %s: "
		    "no retries left (%u made); the next scheduled run decides",
		    b->conf->name, b->retry_n);
		b->retry_n = 0;
		return;
	}
	ms = b->conf->retry_ms[b->retry_n];
	at = now + (int64_t)((ms + 999) / 1000);
	next = job_next(b->job);
	if (next > 0 && at >= next) {
		util_iso_time(next, when, sizeof when);
		backup_log(b, LOG_NOTICE, "backup.retry", NULL, "backup %s: "
		    "not retried; the next scheduled run (%s) comes first",
		    b->conf->name, when);
		b->retry_n = 0;
		return;
	}
	if (b->retry_timer == NULL)
		b->retry_timer = evtimer_new(b->opsd->base, retry_cb, b);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(b->retry_timer, &tv);
	b->retry_n++;
	util_iso_time(at, when, sizeof when);
	format_age((int64_t)(ms / 1000), wait, sizeof wait);
	{
		struct evt *ev = evt_new(&EVT_BACKUP_RETRY);

		evt_add(ev, "backup", "%s", b->conf->name);
		evt_add(ev, "database", "%s", b->conf->database);
		evt_add(ev, "retry", "%u", b->retry_n);
		evt_add(ev, "retries", "%u", b->conf->nretry);
		evt_add(ev, "delay_seconds", "%llu",
		    (unsigned long long)(ms / 1000));
		evt_add(ev, "retry_at", "%s", when);
		evt_emit(ev, "backup %s failed; retry %u of %u in %s (%s)",
		    b->conf->name, b->retry_n, b->conf->nretry, wait, when);
	}
}

int64_t
backup_max_age(struct backup *b)
{
	if (b->conf->max_age > 0)
		return ((int64_t)(b->conf->max_age / 1000));
	return (2 * sched_period(&b->conf->spec));
}

/* The newest backup opsd can call good: verified, or written if never. */
int64_t
backup_newest_good(struct backup *b)
{
	return (b->conf->verify == BACKUP_VERIFY_NEVER ? b->last_success :
	    b->last_verified);
}

static void
format_age(int64_t s, char *buf, size_t len)
{
	if (s >= 86400)
		snprintf(buf, len, "%lldd %lldh", (long long)s / 86400,
		    (long long)s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%lldh %lldm", (long long)s / 3600,
		    (long long)s % 3600 / 60);
	else
		snprintf(buf, len, "%lldm %llds", (long long)s / 60,
		    (long long)s % 60);
}

/*
 * The shortest repeat of the backup's alert routes, in seconds (0: none
 * repeats): a stale alert is sent again that often with the age then,
 * not repeated by the alert layer with the age it first had.
 */
static int64_t
stale_repeat(struct backup *b)
{
	struct alert_conf	*ac;
	int64_t			 s, best = 0;
	unsigned int		 i;

	for (i = 0; i < b->conf->nalert; i++) {
		if ((ac = alert_conf_find(b->opsd->conf, b->conf->alert[i])) ==
		    NULL || ac->repeat == 0)
			continue;
		s = (int64_t)(ac->repeat / 1000);
		if (s < 1)
			s = 1;
		if (best == 0 || s < best)
			best = s;
	}
	return (best);
}

static void
stale_cb(evutil_socket_t fd, short what, void *arg)
{
	struct backup	*b = arg;
	struct timeval	 tv = { STALE_CHECK_S, 0 };
	int64_t		 now = (int64_t)time(NULL), good, since, max, rep;
	int		 stale;
	char		 age[32], lim[32];
	const char	*kind = b->conf->verify == BACKUP_VERIFY_NEVER ?
			    "successful" : "verified";

	(void)fd;
	(void)what;
	good = backup_newest_good(b);
	max = backup_max_age(b);
	rep = stale_repeat(b);
	/* none yet: one max_age from when the backup was configured */
	since = good > 0 ? good : b->appeared;
	stale = max > 0 && now - since > max;
	/* sent again a little before the alert layer would repeat it */
	if (stale && b->stale_firing && rep > 0 && now - b->stale_told >=
	    (rep > 1 ? rep - 1 : 1))
		b->stale_firing = 2;
	if (stale && b->stale_firing != 1) {
		format_age(now - since, age, sizeof age);
		format_age(max, lim, sizeof lim);
		if (good > 0)
			backup_event(b, &EVT_BACKUP_STALE, NULL,
			    "backup.stale", 1, "backup %s is %sSTALE: the "
			    "newest %s backup is %s old (max_age %s)",
			    b->conf->name, b->stale_firing ? "still " : "",
			    kind, age, lim);
		else
			backup_event(b, &EVT_BACKUP_STALE, NULL,
			    "backup.stale", 1, "backup %s is %sSTALE: no %s "
			    "backup yet, %s after it was configured (max_age "
			    "%s)", b->conf->name, b->stale_firing ? "still " :
			    "", kind, age, lim);
		b->stale_firing = 1;
		b->stale_told = now;
	} else if (!stale && b->stale_firing) {
		b->stale_firing = 0;
		backup_event(b, &EVT_BACKUP_STALE, NULL, "backup.stale", 0,
		    "backup "
		    "%s is fresh again", b->conf->name);
	}
	if (rep > 0 && rep - 1 < tv.tv_sec)
		tv.tv_sec = (time_t)(rep > 1 ? rep - 1 : 1);
	evtimer_add(b->stale_timer, &tv);
}

static void
backup_free(struct backup *b, int removed)
{
	static const char *const kinds[] = { "backup.run", "backup.verify",
	    "backup.verify_unavailable", "backup.upload", "backup.stale" };
	size_t	k;

	if (removed) {
		/* "RESOLVED host: backup.stale quick was removed ..." */
		for (k = 0; k < nitems(kinds); k++)
			alert_resolve(b->opsd, kinds[k], b->conf->name,
			    "was removed from the configuration");
	}
	if (b->verify != NULL)
		backup_verify_abort(b->verify, "opsd is stopping or the "
		    "backup was reconfigured");
	backup_restore_abort_all(b, removed ? "the backup was removed from "
	    "the configuration" : "opsd is stopping");
	if (b->run != NULL) {
		/* the partial file goes; the state says nothing is left */
		struct brun *r = b->run;

		if (r->child != NULL) {
			child_abandon(r->child);
			r->child = NULL;
		}
		if (r->error == NULL)
			r->error = xstrdup("opsd is stopping or the backup was "
			    "removed");
		r->interrupted = 1;	/* not a failure of the backup */
		backup_run_finish(r, 0, 0);
	}
	if (b->version_child != NULL)
		child_abandon(b->version_child);
	backup_recover_stop(b, removed);
	if (b->job != NULL)
		job_remove(b->job);
	if (b->verify_job != NULL)
		job_remove(b->verify_job);
	if (b->stale_timer != NULL)
		event_free(b->stale_timer);
	if (b->retry_timer != NULL)
		event_free(b->retry_timer);
	json_decref(b->items);
	backup_conf_free(b->conf);
	db_conf_free(b->db);
	free(b->pg_dump_version);
	free(b);
}

void
backup_apply_config(struct opsd *o)
{
	struct backup_set	*set = backup_set(o);
	struct opsd_config	*conf = o->conf;
	struct backup		*b, **fresh;
	struct backup_conf	*bc;
	struct timeval		 tv = { 1, 0 };
	unsigned int		 i, j, n;
	char			*jobname;

	n = config_count(conf, &backup_section);
	fresh = xcalloc(n + 1, sizeof *fresh);
	for (i = 0; i < n; i++) {
		bc = config_at(conf, &backup_section, i);
		if (bc->s3_endpoint != NULL)
			lazylib_curl();	/* the off-site copy: load it now */
		b = NULL;
		for (j = 0; j < set->n; j++) {
			if (set->v[j] != NULL && strcmp(set->v[j]->conf->name,
			    bc->name) == 0) {
				b = set->v[j];
				set->v[j] = NULL;
				break;
			}
		}
		if (b != NULL && (b->run != NULL || b->verify != NULL)) {
			/* busy: it keeps the settings it started with */
			backup_log(b, LOG_WARNING, "backup.reload", NULL,
			    "backup %s is running; its new settings are not "
			    "applied (reload again once it is done)",
			    b->conf->name);
			fresh[i] = b;
			continue;
		}
		if (b != NULL) {
			/* idle: take the new settings, keep the counters */
			job_remove(b->job);
			b->job = NULL;
			if (b->verify_job != NULL)
				job_remove(b->verify_job);
			b->verify_job = NULL;
			backup_conf_free(b->conf);
			db_conf_free(b->db);
		} else {
			b = xcalloc(1, sizeof *b);
			b->opsd = o;
			b->appeared = (int64_t)time(NULL);
			b->stale_timer = evtimer_new(o->base, stale_cb, b);
			evtimer_add(b->stale_timer, &tv);
		}
		b->conf = backup_conf_copy(bc);
		b->db = db_conf_copy(db_conf_find(conf, b->conf->database));
		backup_items_load(b);
		xasprintf(&jobname, "backup %s", b->conf->name);
		b->job = job_add(o, jobname, &b->conf->spec,
		    b->conf->random_delay, b->conf->persistent, backup_job_cb,
		    b);
		free(jobname);
		if (b->conf->verify_schedule != NULL) {
			xasprintf(&jobname, "verify %s", b->conf->name);
			b->verify_job = job_add(o, jobname,
			    &b->conf->verify_spec, b->conf->random_delay,
			    b->conf->persistent, verify_job_cb, b);
			free(jobname);
		}
		if (!set->recovered)
			backup_recover(b);
		fresh[i] = b;
	}
	for (j = 0; j < set->n; j++) {
		if (set->v[j] != NULL)
			backup_free(set->v[j], 1);
	}
	free(set->v);
	set->v = fresh;
	set->n = n;
	set->recovered = 1;
}

void
backup_stop_all(struct opsd *o)
{
	unsigned int	i;

	if (BACKUPS(o) == NULL)
		return;
	for (i = 0; i < BACKUPS(o)->n; i++)
		backup_free(BACKUPS(o)->v[i], 0);
	free(BACKUPS(o)->v);
	free(BACKUPS(o));
	o->sub[SUBSYS_BACKUP] = NULL;
}
