/*
 * The set of [secret] sections: reload, start-up (adoption of a value
 * already in place, the first value, files put back), the schedules and
 * retries, "rotation overdue", events and the list/show views.
 */
#include <sys/prctl.h>
#include <sys/stat.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "evt.h"
#include "jobs.h"
#include "op.h"
#include "opsd-parse.h"
#include "pg.h"
#include "secret-int.h"
#include "util.h"

const struct evt_type EVT_SECRET_CREATED = {
	"secret.created", "a7e723203cfb4a60ae1e9df8390278bd", LOG_NOTICE };
const struct evt_type EVT_SECRET_ROTATED = {
	"secret.rotated", "d46a5385a15b4e2b95eafe34d1037af2", LOG_NOTICE };
const struct evt_type EVT_SECRET_ROTATION_FAILED = {
	"secret.rotation_failed", "438c5e999c3c45e0b2b87ad62da79871",
	LOG_ERR };
const struct evt_type EVT_SECRET_RECOVERED = {
	"secret.recovered", "d6605adafc564840b818ba2f21db1df1", LOG_WARNING };
const struct evt_type EVT_SECRET_OVERDUE = {
	"secret.overdue", "8b65172d816b42a19bbc74e577565997", LOG_WARNING };
const struct evt_type EVT_SECRET_ROLES_DIFFER = {
	"secret.roles_differ", "1dcb685794ae490aaf7a92e08a5efaf4",
	LOG_WARNING };
const struct evt_type EVT_SECRET_FILE_RESTORED = {
	"secret.file_restored", "9fdf7ae9d93c4dc4b7a1a1fd94b940d3",
	LOG_WARNING };

/* PostgreSQL rotations of different secrets start this far apart. */
#define PG_SPACING_SEC		60
#define RETRY_MAX_SEC		3600

struct secret_set *
secret_set_get(struct opsd *o)
{
	if (o->sub[SUBSYS_SECRET] == NULL)
		o->sub[SUBSYS_SECRET] = xcalloc(1, sizeof (struct secret_set));
	return (o->sub[SUBSYS_SECRET]);
}

struct secret *
secret_find(struct opsd *o, const char *name)
{
	struct secret_set	*set = o->sub[SUBSYS_SECRET];
	unsigned int		 i;

	for (i = 0; set != NULL && i < set->n; i++)
		if (set->v[i] != NULL && strcmp(set->v[i]->conf->name,
		    name) == 0)
			return (set->v[i]);
	return (NULL);
}

void
secret_event(struct secret *s, const struct evt_type *type,
    const char *alert_object, int firing, const char *op, const char *fmt,
    ...)
{
	struct evt	*ev;
	va_list		 ap;
	char		*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	ev = evt_new(type);
	evt_add(ev, "secret", "%s", s->conf->name);
	if (s->meta.version > 0) {
		evt_add(ev, "version", "%lld", (long long)s->meta.version);
		evt_add(ev, "fingerprint", "%s", s->meta.fp);
	}
	if (s->meta.role[0] != '\0')
		evt_add(ev, "role", "%s", s->meta.role);
	if (op != NULL)
		evt_add(ev, "op", "%s", op);
	if (s->event_error != NULL)
		evt_add(ev, "error", "%s", s->event_error);
	if (alert_object != NULL && s->conf->nalert > 0)
		evt_alert(ev, (const char *const *)s->conf->alert,
		    s->conf->nalert, alert_object, s->conf->name, firing);
	evt_emit(ev, "%s", msg);
	free(msg);
}

/* --- when ----------------------------------------------------------------- */

/* A spread of the secret's own, the same at every start (no surprise). */
static int64_t
jitter(const struct secret *s)
{
	uint64_t	 h = 1469598103934665603ULL;
	const char	*p;

	if (s->conf->random_delay < 1000)
		return (0);
	for (p = s->conf->name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h ^= (uint64_t)s->meta.version;
	h *= 1099511628211ULL;
	return ((int64_t)(h % (s->conf->random_delay / 1000)));
}

/* When the current version is due by its policy (0: never). */
static int64_t
due_at(const struct secret *s)
{
	if (s->meta.version == 0)
		return (0);
	if (s->conf->rotate_every > 0)
		return (s->meta.created + (int64_t)(s->conf->rotate_every /
		    1000));
	if (s->conf->schedule != NULL)
		return (sched_next(&s->conf->spec, s->meta.created));
	return (0);
}

int64_t
secret_next(const struct secret *s)
{
	int64_t	t;

	if (s->conf->schedule != NULL && s->job != NULL) {
		t = job_next(s->job);
		if (s->retry_at > 0 && (t <= 0 || s->retry_at < t))
			t = s->retry_at;
	} else if (s->retry_at > 0)
		/*
		 * A retry or a postponement: never before it. The due time
		 * has passed (that is why it was tried), so taking the
		 * earlier of the two would start the next attempt at once.
		 */
		t = s->retry_at;
	else if ((t = due_at(s)) > 0)
		t += jitter(s);
	/*
	 * start_scheduled() postpones a start before min_interval has passed:
	 * say when it will really start, not when it will be put off.
	 */
	if (t > 0 && s->meta.version > 0 && s->conf->min_interval > 0 &&
	    t < s->meta.created + (int64_t)(s->conf->min_interval / 1000))
		t = s->meta.created + (int64_t)(s->conf->min_interval / 1000);
	return (t > 0 ? t : 0);
}

int
secret_overdue(const struct secret *s, int64_t now)
{
	int64_t	due = due_at(s);

	return (due > 0 && now > due + (int64_t)((s->conf->grace +
	    s->conf->random_delay) / 1000));
}

const char *
secret_state_word(const struct secret *s)
{
	if (s->rot != NULL)
		return (secret_rotate_recovering(s) ? "recovering" :
		    "rotating");
	if (s->meta.version == 0)
		return ("missing");
	if (secret_overdue(s, (int64_t)time(NULL)))
		return ("overdue");
	if (s->meta.failures > 0)
		return ("failed");
	return ("ok");
}

/* --- timers ----------------------------------------------------------------- */

static void	secret_due_cb(evutil_socket_t, short, void *);
static void	overdue_cb(evutil_socket_t, short, void *);

static void
arm(struct event *ev, int64_t at)
{
	struct timeval	tv = { 0, 0 };
	int64_t		now = (int64_t)time(NULL);

	if (at > now)
		tv.tv_sec = (time_t)(at - now);
	evtimer_add(ev, &tv);
}

void
secret_reschedule(struct secret *s)
{
	int64_t	next, due;

	evtimer_del(s->timer);
	evtimer_del(s->overdue_timer);
	if (s->opsd->stopping)
		return;
	next = s->conf->schedule != NULL ? s->retry_at : secret_next(s);
	if (next > 0)
		arm(s->timer, next);
	if ((due = due_at(s)) > 0 && !s->overdue_firing)
		arm(s->overdue_timer, due + (int64_t)((s->conf->grace +
		    s->conf->random_delay) / 1000) + 1);
}

static void
start_scheduled(struct secret *s, struct job *job)
{
	struct secret_set	*set = secret_set_get(s->opsd);
	int64_t			 now = (int64_t)time(NULL), later = 0;
	char			*id = NULL, *err = NULL;
	int			 e;

	if (s->rot != NULL) {
		if (job != NULL)
			job_finished(job, -1, "skipped: a rotation is under "
			    "way");
		return;
	}
	/*
	 * Two PostgreSQL rotations never start within a minute of each
	 * other (a pair rotated seconds apart is an outage), and a role's
	 * own min_interval holds for the schedule too.
	 */
	if (s->conf->kind == SECRET_POSTGRES && set->last_pg_start > 0 &&
	    now < set->last_pg_start + PG_SPACING_SEC)
		later = set->last_pg_start + PG_SPACING_SEC;
	if (s->meta.version > 0 && s->conf->min_interval > 0 && now <
	    s->meta.created + (int64_t)(s->conf->min_interval / 1000))
		later = s->meta.created + (int64_t)(s->conf->min_interval /
		    1000);
	if (later > 0) {
		if (job != NULL)
			job_finished(job, -1, "postponed to respect the "
			    "spacing of rotations");
		s->retry_at = later;
		secret_reschedule(s);
		return;
	}
	if (job != NULL)
		job_started(job);
	s->job_running = job != NULL;
	s->retry_at = 0;
	if ((e = secret_rotate(s, 0, 0, NULL, &id, &err)) != 0) {
		evt_log_about(LOG_WARNING, "secret.schedule", "secret",
		    s->conf->name, "secret %s: scheduled rotation not started: "
		    "%s", s->conf->name, err);
		if (job != NULL)
			job_finished(job, 0, "%s", err);
		s->job_running = 0;
		s->retry_at = now + 60;
		secret_reschedule(s);
	} else if (s->conf->kind == SECRET_POSTGRES)
		set->last_pg_start = now;
	free(id);
	free(err);
}

static void
secret_due_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_scheduled(arg, NULL);
}

static void
secret_job_cb(struct job *job, void *arg)
{
	start_scheduled(arg, job);
}

static void
overdue_cb(evutil_socket_t fd, short what, void *arg)
{
	struct secret	*s = arg;
	char		 age[64];
	int64_t		 now = (int64_t)time(NULL);

	(void)fd;
	(void)what;
	if (!secret_overdue(s, now) || s->overdue_firing) {
		secret_reschedule(s);
		return;
	}
	format_duration((uint64_t)(now - s->meta.created) * 1000, age,
	    sizeof age);
	s->overdue_firing = 1;
	secret_event(s, &EVT_SECRET_OVERDUE, "secret.overdue", 1, NULL,
	    "secret %s: rotation OVERDUE: version %lld is %s old%s%s",
	    s->conf->name, (long long)s->meta.version, age,
	    s->meta.last_error[0] ? "; last attempt: " : "",
	    s->meta.last_error);
}

void
secret_rotation_ended(struct secret *s, int ok, const char *error)
{
	int64_t		now = (int64_t)time(NULL);
	uint64_t	delay;
	unsigned int	i;

	if (s->job_running && s->job != NULL)
		job_finished(s->job, ok, "%s", ok ? "rotated" : error);
	s->job_running = 0;
	if (ok) {
		s->retry_at = 0;
		if (s->failed_firing)
			secret_event(s, &EVT_SECRET_ROTATED, "secret.rotation",
			    0, NULL, "secret %s: rotation works again",
			    s->conf->name);
		if (s->overdue_firing)
			secret_event(s, &EVT_SECRET_OVERDUE, "secret.overdue",
			    0, NULL, "secret %s is no longer overdue",
			    s->conf->name);
		s->failed_firing = s->overdue_firing = 0;
	} else {
		s->failed_firing = s->conf->nalert > 0;
		/* a manual rotation of a secret that was not due is not */
		if (!s->last_manual || s->meta.version == 0 ||
		    secret_overdue(s, now)) {
			delay = s->conf->retry_delay / 1000;
			for (i = 1; i < s->meta.failures && delay <
			    RETRY_MAX_SEC; i++)
				delay *= 2;
			if (delay > RETRY_MAX_SEC)
				delay = RETRY_MAX_SEC;
			s->retry_at = now + (int64_t)delay;
		}
	}
	secret_reschedule(s);
}

/* --- start-up and reload ---------------------------------------------------- */

/*
 * The published file is what the configuration says: exactly the value
 * (a final newline, which secretfile_read() forgives, is not the value),
 * its mode, its owner, and its group when one is configured.
 */
static int
published_as_configured(const struct secret *s, size_t len)
{
	struct stat	st;

	return (lstat(s->conf->path, &st) == 0 && (size_t)st.st_size == len &&
	    (st.st_mode & 07777) == (s->conf->mode & 07777) &&
	    st.st_uid == (s->conf->uid != (uid_t)-1 ? s->conf->uid :
	    geteuid()) && (s->conf->gid == (gid_t)-1 ||
	    st.st_gid == s->conf->gid));
}

/*
 * What a secret finds at start: its state (NAME.json and the current
 * version), else a value already at path to adopt, else nothing, and
 * then the first value is made. A published file that is missing or
 * differs from the current version is written again.
 */
static void
secret_settle(struct secret *s)
{
	struct opsd	*o = s->opsd;
	char		 err[SECRET_ERROR_MAX], label[32];
	char		 cur[SECRET_VALUE_MAX], pub[SECRET_VALUE_MAX];
	char		 fp[SECRETFILE_FP_LEN];
	char		*prev[SECRET_KEEP_MAX];
	unsigned int	 nprev = 0, i;
	struct stat	 st;
	int		 e, unfinished;

	unfinished = op_find(o, secret_rotate_kind.name, s->conf->name) !=
	    NULL;
	e = secret_meta_load(o, s->conf->name, &s->meta, err, sizeof err);
	if (e != 0 && e != -ENOENT)
		evt_log_about(LOG_ERR, "secret.state", "secret",
		    s->conf->name, "secret %s: state unreadable (%s), set "
		    "aside as .bad", s->conf->name, err);
	if (s->meta.version > 0) {
		secret_version_label(s->meta.version, label, sizeof label);
		if (secret_value_read(o, s->conf->name, label, cur,
		    sizeof cur) != 0) {
			evt_log_about(LOG_ERR, "secret.state", "secret",
			    s->conf->name, "secret %s: version %lld is missing "
			    "from %s/secrets; a new value will be made",
			    s->conf->name, (long long)s->meta.version,
			    o->conf->state_dir);
			s->meta.version = 0;
			s->meta.fp[0] = '\0';
		}
	}
	if (unfinished)
		goto out;	/* the op's recovery decides */
	if (s->meta.version > 0) {
		/* a leftover pending version blocks nothing */
		secret_version_label(s->meta.version + 1, label, sizeof label);
		secret_value_remove(o, s->conf->name, label);
		e = secretfile_read(s->conf->path, pub, sizeof pub, 0, NULL);
		if (e == 0)
			secretfile_fingerprint(pub, strlen(pub), fp);
		if (e == 0 && strcmp(fp, s->meta.fp) == 0 &&
		    published_as_configured(s, strlen(cur)))
			goto out;
		for (i = 0; i < s->meta.nhist && nprev <
		    s->conf->keep_previous; i++) {
			secret_version_label(s->meta.hist[i].version, label,
			    sizeof label);
			if (secret_value_read(o, s->conf->name, label, pub,
			    sizeof pub) != 0)
				break;
			prev[nprev++] = xstrdup(pub);
		}
		if (secret_publish(s, cur, NULL, prev, nprev, err,
		    sizeof err) != 0)
			evt_log_about(LOG_ERR, "secret.publish", "secret",
			    s->conf->name, "secret %s: %s", s->conf->name, err);
		else
			secret_event(s, &EVT_SECRET_FILE_RESTORED, NULL, 0,
			    NULL, "secret %s: %s %s; written again from version "
			    "%lld", s->conf->name, s->conf->path, e == -ENOENT ?
			    "was missing" : e != 0 ? "was unreadable" :
			    strcmp(fp, s->meta.fp) != 0 ? "differed from the "
			    "current version" : "had other bytes, mode or owner "
			    "than configured",
			    (long long)s->meta.version);
		for (i = 0; i < nprev; i++) {
			OPENSSL_cleanse(prev[i], strlen(prev[i]));
			free(prev[i]);
		}
		goto out;
	}
	/* no state: adopt what is there, or make the first value */
	secret_version_label(1, label, sizeof label);
	secret_value_remove(o, s->conf->name, label);
	if (secretfile_read(s->conf->path, pub, sizeof pub,
	    SECRETFILE_ONE_LINE, NULL) == 0 && pub[0] != '\0' &&
	    lstat(s->conf->path, &st) == 0) {
		memset(&s->meta, 0, sizeof s->meta);
		if ((e = secret_value_write(o, s->conf->name, label, pub)) ==
		    0) {
			s->meta.version = 1;
			secretfile_fingerprint(pub, strlen(pub), s->meta.fp);
			s->meta.created = (int64_t)st.st_mtime;
			snprintf(s->meta.origin, sizeof s->meta.origin,
			    "imported");
			/*
			 * An adopted pair: the role in use is the one
			 * user_path names, else the first.
			 */
			if (s->conf->kind == SECRET_POSTGRES &&
			    s->conf->strategy == SECRET_ALTERNATING) {
				char	u[SECRET_ROLE_MAX + 2];

				if (s->conf->user_path == NULL ||
				    secretfile_read(s->conf->user_path, u,
				    sizeof u, SECRETFILE_ONE_LINE, NULL) != 0 ||
				    (strcmp(u, s->conf->role_a) != 0 &&
				    strcmp(u, s->conf->role_b) != 0))
					snprintf(u, sizeof u, "%s",
					    s->conf->role_a);
				memcpy(s->meta.role, u, strlen(u) + 1 >
				    sizeof s->meta.role ? 0 : strlen(u) + 1);
			}
			e = secret_meta_save(o, s->conf->name, &s->meta);
		}
		if (e != 0) {
			evt_log_about(LOG_ERR, "secret.state", "secret",
			    s->conf->name, "secret %s: cannot record the value "
			    "found in %s: %s", s->conf->name, s->conf->path,
			    strerror(-e));
			memset(&s->meta, 0, sizeof s->meta);
		} else
			evt_log_about(LOG_NOTICE, "secret.adopted", "secret",
			    s->conf->name, "secret %s: adopted the value in %s "
			    "as version 1 (%s)", s->conf->name, s->conf->path,
			    s->meta.fp);
		goto out;
	}
	s->first = 1;
out:
	OPENSSL_cleanse(cur, sizeof cur);
	OPENSSL_cleanse(pub, sizeof pub);
}

static void
first_cb(evutil_socket_t fd, short what, void *arg)
{
	struct secret	*s = arg;
	char		*id = NULL, *err = NULL;

	(void)fd;
	(void)what;
	if (!s->first || s->rot != NULL || s->opsd->stopping)
		return;
	s->first = 0;
	if (op_find(s->opsd, secret_rotate_kind.name, s->conf->name) != NULL)
		return;
	if (secret_rotate(s, 0, 1, NULL, &id, &err) != 0) {
		evt_log_about(LOG_ERR, "secret.create", "secret",
		    s->conf->name, "secret %s: cannot make its first value: %s",
		    s->conf->name, err);
		s->meta.failures++;
		s->retry_at = (int64_t)time(NULL) + (int64_t)(
		    s->conf->retry_delay / 1000);
		secret_reschedule(s);
	}
	free(id);
	free(err);
}

static void
secret_free(struct secret *s)
{
	secret_rotate_abandon(s);
	if (s->differ_q != NULL)
		pg_cancel(s->differ_q);
	if (s->job != NULL)
		job_remove(s->job);
	event_free(s->timer);
	event_free(s->overdue_timer);
	event_free(s->first_ev);
	json_decref(s->differ);
	secret_conf_free(s->conf);
	db_conf_free(s->db);
	free(s);
}

static void
secret_take_conf(struct secret *s, struct opsd_config *conf,
    const struct secret_conf *sc)
{
	struct db_conf	*d;
	char		*jobname;

	if (s->job != NULL)
		job_remove(s->job);
	s->job = NULL;
	secret_conf_free(s->conf);
	db_conf_free(s->db);
	s->conf = secret_conf_copy(sc);
	s->db = NULL;
	if (sc->database != NULL && (d = db_conf_find(conf, sc->database)) !=
	    NULL)
		s->db = db_conf_copy(d);
	if (s->conf->schedule != NULL) {
		xasprintf(&jobname, "secret %s", s->conf->name);
		s->job = job_add(s->opsd, jobname, &s->conf->spec,
		    s->conf->random_delay, 1, secret_job_cb, s);
		free(jobname);
	}
}

void
secret_apply_config(struct opsd *o)
{
	struct secret_set	*set = secret_set_get(o);
	struct opsd_config	*conf = o->conf;
	struct secret_conf	*sc;
	struct secret		*s, **fresh;
	struct op		*op;
	struct timeval		 tv = { 0, 0 };
	unsigned int		 i, j, n;

	/* the env files first: publishing a secret renders them */
	for (i = 0; i < set->nenvs; i++)
		env_conf_free(set->envs[i]);
	free(set->envs);
	set->nenvs = config_count(conf, &env_section);
	set->envs = xcalloc(set->nenvs + 1, sizeof *set->envs);
	for (i = 0; i < set->nenvs; i++)
		set->envs[i] = env_conf_copy(config_at(conf, &env_section, i));

	n = config_count(conf, &secret_section);
	/*
	 * Values pass through this process's memory: no core dump of it
	 * (nor ptrace by another uid). Once set it stays for the run.
	 */
	if (n > 0 && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		log_warn("secret.dump", "cannot turn core dumps off: %s",
		    strerror(errno));
	fresh = xcalloc(n + 1, sizeof *fresh);
	for (i = 0; i < n; i++) {
		sc = config_at(conf, &secret_section, i);
		s = NULL;
		for (j = 0; j < set->n; j++)
			if (set->v[j] != NULL && strcmp(set->v[j]->conf->name,
			    sc->name) == 0) {
				s = set->v[j];
				set->v[j] = NULL;
				break;
			}
		if (s != NULL && s->rot != NULL) {
			/* busy: it keeps the settings it started with */
			evt_log_about(LOG_WARNING, "secret.reload", "secret",
			    sc->name, "secret %s is being rotated; its new "
			    "settings are not applied (reload again once it is "
			    "done)", sc->name);
			fresh[i] = s;
			continue;
		}
		if (s == NULL) {
			s = xcalloc(1, sizeof *s);
			s->opsd = o;
			s->timer = evtimer_new(o->base, secret_due_cb, s);
			s->overdue_timer = evtimer_new(o->base, overdue_cb, s);
			s->first_ev = evtimer_new(o->base, first_cb, s);
		}
		fresh[i] = s;
		secret_take_conf(s, conf, sc);
	}
	for (j = 0; j < set->n; j++)
		if (set->v[j] != NULL)
			secret_free(set->v[j]);
	free(set->v);
	set->v = fresh;
	set->n = n;
	/* settled once every secret is known: env files name several */
	for (i = 0; i < n; i++) {
		s = set->v[i];
		if (s->rot != NULL)
			continue;
		secret_settle(s);
		if (set->started && (op = op_find(o, secret_rotate_kind.name,
		    s->conf->name)) != NULL)
			/* back after a reload that had removed it */
			secret_rotate_recover(o, op);
		else if (s->first)
			evtimer_add(s->first_ev, &tv);
		else {
			/* an edited template takes effect at the reload */
			secret_env_sync(s);
			secret_reschedule(s);
		}
	}
	set->started = 1;
}

void
secret_stop_all(struct opsd *o)
{
	struct secret_set	*set = o->sub[SUBSYS_SECRET];
	unsigned int		 i;

	for (i = 0; set != NULL && i < set->n; i++) {
		evtimer_del(set->v[i]->timer);
		evtimer_del(set->v[i]->overdue_timer);
		evtimer_del(set->v[i]->first_ev);
	}
}

unsigned int
secret_busy(struct opsd *o)
{
	struct secret_set	*set = o->sub[SUBSYS_SECRET];
	unsigned int		 i, n = 0;

	for (i = 0; set != NULL && i < set->n; i++)
		n += set->v[i]->rot != NULL;
	return (n);
}

void
secret_free_all(struct opsd *o)
{
	struct secret_set	*set = o->sub[SUBSYS_SECRET];
	unsigned int		 i;

	if (set == NULL)
		return;
	for (i = 0; i < set->n; i++)
		secret_free(set->v[i]);
	for (i = 0; i < set->nenvs; i++)
		env_conf_free(set->envs[i]);
	free(set->envs);
	free(set->v);
	free(set);
	o->sub[SUBSYS_SECRET] = NULL;
}

/* --- views ------------------------------------------------------------------ */

static json_t *
file_json(const char *path, const char *kind)
{
	struct stat	 st;
	struct passwd	*pw;
	struct group	*gr;
	char		 mode[8], uid[16], gid[16];

	if (lstat(path, &st) != 0)
		return (json_pack("{s:s, s:s, s:b}", "path", path, "kind", kind,
		    "exists", 0));
	snprintf(mode, sizeof mode, "%04o", (unsigned int)(st.st_mode &
	    07777));
	/* local files only (NSS at a view is the price of names) */
	pw = getpwuid(st.st_uid);
	gr = getgrgid(st.st_gid);
	snprintf(uid, sizeof uid, "%u", (unsigned int)st.st_uid);
	snprintf(gid, sizeof gid, "%u", (unsigned int)st.st_gid);
	return (json_pack("{s:s, s:s, s:b, s:s, s:s, s:s}", "path", path,
	    "kind", kind, "exists", 1, "mode", mode, "owner", pw != NULL ?
	    pw->pw_name : uid, "group", gr != NULL ? gr->gr_name : gid));
}

json_t *
secret_json(struct secret *s, int full)
{
	const struct secret_conf *c = s->conf;
	struct secret_set	*set = secret_set_get(s->opsd);
	int64_t			 now = (int64_t)time(NULL), next;
	json_t			*j, *v, *files, *rot;
	unsigned int		 i, k;
	char			*p;

	next = secret_next(s);
	j = json_pack("{s:s, s:s, s:s?, s:o, s:o, s:o, s:o, s:o, s:s, s:s?, "
	    "s:s, s:o}", "name", c->name, "kind", c->kind == SECRET_POSTGRES ?
	    "postgres-password" : "random", "strategy", c->kind ==
	    SECRET_POSTGRES ? (c->strategy == SECRET_ALTERNATING ?
	    "alternating" : "single") : NULL,
	    "version", s->meta.version > 0 ? json_integer(s->meta.version) :
	    json_null(),
	    "fingerprint", s->meta.version > 0 ? json_string(s->meta.fp) :
	    json_null(),
	    "created", s->meta.version > 0 ? json_integer(s->meta.created) :
	    json_null(),
	    "age_seconds", s->meta.version > 0 ? json_integer(now -
	    s->meta.created) : json_null(),
	    "next_rotation", next > 0 ? json_integer(next) : json_null(),
	    "state", secret_state_word(s),
	    "role", c->kind != SECRET_POSTGRES ? NULL : s->meta.role[0] ?
	    s->meta.role : c->strategy == SECRET_SINGLE ? c->role_a : NULL,
	    "path", c->path,
	    "last_error", s->meta.failures > 0 && s->meta.last_error[0] ?
	    json_string(s->meta.last_error) : json_null());
	if (j == NULL)
		fatalx("secret: cannot build the JSON of %s", c->name);
	if (!full)
		return (j);
	v = json_array();
	if (s->meta.version > 0)
		json_array_append_new(v, json_pack("{s:I, s:s, s:I, s:n, "
		    "s:s}", "version", (json_int_t)s->meta.version,
		    "fingerprint", s->meta.fp, "created",
		    (json_int_t)s->meta.created, "retired", "label",
		    "current"));
	for (i = 0; i < s->meta.nhist; i++)
		json_array_append_new(v, json_pack("{s:I, s:s, s:I, s:I, "
		    "s:s}", "version", (json_int_t)s->meta.hist[i].version,
		    "fingerprint", s->meta.hist[i].fp, "created",
		    (json_int_t)s->meta.hist[i].created, "retired",
		    (json_int_t)s->meta.hist[i].retired, "label", i <
		    (s->conf->keep_previous > 0 ? s->conf->keep_previous : 1) ?
		    "previous" : "retired"));
	json_object_set_new(j, "versions", v);
	rot = secret_rotate_json(s);
	json_object_set_new(j, "rotation", rot != NULL ? rot : json_null());
	if (s->meta.last_result[0] != '\0')
		json_object_set_new(j, "last_result", json_pack("{s:s, s:I, "
		    "s:s?, s:s}", "result", s->meta.last_result, "at",
		    (json_int_t)s->meta.last_at, "error",
		    s->meta.last_error[0] ? s->meta.last_error : NULL, "op",
		    s->meta.last_op));
	else
		json_object_set_new(j, "last_result", json_null());
	json_object_set_new(j, "failures", json_integer(s->meta.failures));
	json_object_set_new(j, "origin", s->meta.origin[0] ?
	    json_string(s->meta.origin) : json_null());
	json_object_set_new(j, "roles_differ", s->differ != NULL ?
	    json_incref(s->differ) : json_array());
	files = json_array();
	json_array_append_new(files, file_json(c->path, "value"));
	for (k = 1; k <= c->keep_previous; k++) {
		if (k == 1)
			xasprintf(&p, "%s.previous", c->path);
		else
			xasprintf(&p, "%s.previous.%u", c->path, k);
		json_array_append_new(files, file_json(p, "previous"));
		free(p);
	}
	if (c->user_path != NULL)
		json_array_append_new(files, file_json(c->user_path, "user"));
	if (c->combined_path != NULL)
		json_array_append_new(files, file_json(c->combined_path,
		    "combined"));
	for (i = 0; i < set->nenvs; i++)
		for (k = 0; k < set->envs[i]->nrefs; k++)
			if (strcmp(set->envs[i]->refs[k], c->name) == 0) {
				json_array_append_new(files, file_json(
				    set->envs[i]->path, "env_file"));
				break;
			}
	json_object_set_new(j, "files", files);
	return (j);
}
