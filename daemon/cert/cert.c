/*
 * The set of [cert] sections and their checks. A check reads the file
 * (parsed, its key matched), raises or resolves "expiring", "unreadable"
 * and "renewal overdue", fetches the certificate every served_at endpoint
 * serves and compares its SHA-256 and serial with the file's ("served
 * certificate differs from the file": the reload that was forgotten),
 * then starts a renewal when one is due. Checks run once soon after
 * start-up, on the schedule (twice a day, with a random delay, by
 * default), on cert.check, and as the confirm step of a renewal.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "cert-int.h"
#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "jobs.h"
#include "op.h"
#include "rpc.h"
#include "state.h"
#include "util.h"

const struct evt_type EVT_CERT_EXPIRING = {
	"cert.expiring", "f463b6ec1ea3e20375449e698256e61e", LOG_WARNING };
const struct evt_type EVT_CERT_UNREADABLE = {
	"cert.unreadable", "3e62d928f82bd9157c11b1bc79f95583", LOG_ERR };
const struct evt_type EVT_CERT_RENEWED = {
	"cert.renewed", "3a1da30b52a2e482c4071f641f9dd690", LOG_NOTICE };
const struct evt_type EVT_CERT_RENEWAL_FAILED = {
	"cert.renewal_failed", "3430b84430d9fb231938438dfb4244ea", LOG_ERR };
const struct evt_type EVT_CERT_SERVED_DIFFERS = {
	"cert.served_differs", "e51fbcf5a0bb49be52fb49eb65853067",
	LOG_WARNING };
const struct evt_type EVT_CERT_SERVED_UNCHECKED = {
	"cert.served_unchecked", "3c0b7e4f9a2d4e51b8c6d17f05a9e2b4",
	LOG_NOTICE };
const struct evt_type EVT_CERT_OVERDUE = {
	"cert.overdue", "51044f4f13db165481c1b339d0f12b7b", LOG_WARNING };
const struct evt_type EVT_CERT_RECOVERED = {
	"cert.recovered", "8eeb0d10a6d75ab4fe86a95e8842138d", LOG_WARNING };

/* "renewal overdue": still not renewed this long after it was due */
#define OVERDUE_GRACE_SEC	(2 * 86400)

struct cert_set *
cert_set_get(struct opsd *o)
{
	if (o->sub[SUBSYS_CERT] == NULL)
		o->sub[SUBSYS_CERT] = xcalloc(1, sizeof (struct cert_set));
	return (o->sub[SUBSYS_CERT]);
}

struct cert *
cert_find(struct opsd *o, const char *name)
{
	struct cert_set	*set = o->sub[SUBSYS_CERT];
	unsigned int	 i;

	for (i = 0; set != NULL && i < set->n; i++)
		if (set->v[i] != NULL && strcmp(set->v[i]->conf->name, name) ==
		    0)
			return (set->v[i]);
	return (NULL);
}

void
cert_event(struct cert *c, const struct evt_type *type,
    const char *alert_source, int firing, const char *op, const char *fmt,
    ...)
{
	struct evt	*ev;
	va_list		 ap;
	char		*msg, when[64];

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	ev = evt_new(type);
	evt_add(ev, "cert", "%s", c->conf->name);
	evt_add(ev, "path", "%s", c->conf->path);
	if (c->have_info) {
		evt_add(ev, "sha256", "%s", c->info.sha256);
		evt_add(ev, "serial", "%s", c->info.serial);
		util_iso_time(c->info.not_after, when, sizeof when);
		evt_add(ev, "not_after", "%s", when);
	}
	if (op != NULL)
		evt_add(ev, "op", "%s", op);
	if (c->event_error != NULL)
		evt_add(ev, "error", "%s", c->event_error);
	if (alert_source != NULL && c->conf->nalert > 0)
		evt_alert(ev, (const char *const *)c->conf->alert,
		    c->conf->nalert, alert_source, c->conf->name, firing);
	evt_emit(ev, "%s", msg);
	free(msg);
}

/* --- the state file ------------------------------------------------------ */

char *
cert_state_dir(struct opsd *o)
{
	char	*dir;

	xasprintf(&dir, "%s/certs", o->conf->state_dir);
	return (dir);
}

static int
get_int(json_t *j, const char *key, int64_t *v, char *err, size_t errlen)
{
	json_t	*m = json_object_get(j, key);

	if (m == NULL)
		return (0);
	if (!json_is_integer(m) || json_integer_value(m) < 0) {
		snprintf(err, errlen, "%s is not a non-negative integer", key);
		return (-EBADMSG);
	}
	*v = json_integer_value(m);
	return (0);
}

static int
get_str(json_t *j, const char *key, char *buf, size_t len, char *err,
    size_t errlen)
{
	json_t	*m = json_object_get(j, key);

	if (m == NULL)
		return (0);
	if (!json_is_string(m) || json_string_length(m) >= len ||
	    strlen(json_string_value(m)) != json_string_length(m)) {
		snprintf(err, errlen, "%s is not a string of less than %zu "
		    "bytes", key, len);
		return (-EBADMSG);
	}
	snprintf(buf, len, "%s", json_string_value(m));
	return (0);
}

int
cert_meta_parse(const char *buf, size_t len, struct cert_meta *m, char *err,
    size_t errlen)
{
	json_t		*j;
	json_error_t	 je;
	int64_t		 ok = 0, failed = 0, rb = 0;
	int		 e = 0;

	memset(m, 0, sizeof *m);
	if ((j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je)) == NULL ||
	    !json_is_object(j)) {
		snprintf(err, errlen, "not a JSON object%s%s", j == NULL ? ": " :
		    "", j == NULL ? je.text : "");
		json_decref(j);
		return (-EBADMSG);
	}
	if ((e = get_int(j, "last_ok", &m->last_ok, err, errlen)) != 0 ||
	    (e = get_int(j, "last_at", &m->last_at, err, errlen)) != 0 ||
	    (e = get_int(j, "n_ok", &ok, err, errlen)) != 0 ||
	    (e = get_int(j, "n_failed", &failed, err, errlen)) != 0 ||
	    (e = get_int(j, "n_rolled_back", &rb, err, errlen)) != 0 ||
	    (e = get_str(j, "last_result", m->last_result,
	    sizeof m->last_result, err, errlen)) != 0 ||
	    (e = get_str(j, "last_error", m->last_error, sizeof m->last_error,
	    err, errlen)) != 0 ||
	    (e = get_str(j, "last_op", m->last_op, sizeof m->last_op, err,
	    errlen)) != 0) {
		json_decref(j);
		memset(m, 0, sizeof *m);
		return (e);
	}
	m->n_ok = (uint64_t)ok;
	m->n_failed = (uint64_t)failed;
	m->n_rolled_back = (uint64_t)rb;
	json_decref(j);
	return (0);
}

int
cert_meta_save(struct cert *c)
{
	char	*dir = cert_state_dir(c->opsd), *name;
	json_t	*j;
	int	 e;

	if ((e = state_mkdir(dir, 0700)) == 0) {
		j = json_pack("{s:I, s:s, s:I, s:s, s:s, s:I, s:I, s:I}",
		    "last_ok", (json_int_t)c->meta.last_ok, "last_result",
		    c->meta.last_result, "last_at", (json_int_t)c->meta.last_at,
		    "last_error", c->meta.last_error, "last_op",
		    c->meta.last_op, "n_ok", (json_int_t)c->meta.n_ok,
		    "n_failed", (json_int_t)c->meta.n_failed, "n_rolled_back",
		    (json_int_t)c->meta.n_rolled_back);
		xasprintf(&name, "%s.json", c->conf->name);
		e = state_write_json(dir, name, j);
		free(name);
		json_decref(j);
	}
	if (e != 0)
		evt_log_about(LOG_ERR, "cert.state", "cert", c->conf->name,
		    "cert %s: cannot write %s/%s.json: %s", c->conf->name, dir,
		    c->conf->name, strerror(-e));
	free(dir);
	return (e);
}

static void
cert_meta_load(struct cert *c)
{
	char	*path, *buf, err[256];
	size_t	 len;
	int	 e;

	xasprintf(&path, "%s/certs/%s.json", c->opsd->conf->state_dir,
	    c->conf->name);
	if ((buf = cert_read_file(path, &len, &e)) == NULL) {
		if (e != -ENOENT)
			evt_log_about(LOG_WARNING, "cert.state", "cert",
			    c->conf->name, "cert %s: cannot read %s: %s",
			    c->conf->name, path, strerror(-e));
	} else if (cert_meta_parse(buf, len, &c->meta, err, sizeof err) != 0)
		evt_log_about(LOG_WARNING, "cert.state", "cert", c->conf->name,
		    "cert %s: %s is ignored: %s", c->conf->name, path, err);
	free(buf);
	free(path);
}

/* --- the file ------------------------------------------------------------ */

int
cert_load(struct cert *c)
{
	struct cert_info	 ci;
	char			*buf, *key = NULL, err[256];
	size_t			 len, klen;
	int			 e;

	c->file_error[0] = '\0';
	if ((buf = cert_read_file(c->conf->path, &len, &e)) == NULL) {
		snprintf(c->file_error, sizeof c->file_error, "cannot read %s: "
		    "%s", c->conf->path, strerror(-e));
		return (e);
	}
	if ((e = cert_parse_pem(buf, len, &ci, err, sizeof err)) != 0) {
		snprintf(c->file_error, sizeof c->file_error, "%s: %s",
		    c->conf->path, err);
		free(buf);
		return (e);
	}
	if (c->conf->key != NULL) {
		if ((key = cert_read_file(c->conf->key, &klen, &e)) == NULL)
			snprintf(c->file_error, sizeof c->file_error, "cannot "
			    "read the key %s: %s", c->conf->key, strerror(-e));
		else if ((e = cert_key_match(buf, len, key, klen, err,
		    sizeof err)) != 0)
			snprintf(c->file_error, sizeof c->file_error, "key %s: "
			    "%s", c->conf->key, err);
		if (key != NULL) {
			memset(key, 0, klen);
			free(key);
		}
	}
	free(buf);
	c->info = ci;
	c->have_info = 1;
	return (e);
}

/* --- when ---------------------------------------------------------------- */

int64_t
cert_next_renewal(const struct cert *c)
{
	if (!c->have_info || c->conf->renew == NULL)
		return (0);
	return (cert_renew_at(&c->info, c->conf->renew_days));
}

/*
 * Still not renewed well after it was due: by the outside renewer (no
 * renew command), or by opsd after it tried (the failed attempts alert on
 * their own; overdue says the certificate's end comes nearer).
 */
int
cert_overdue(const struct cert *c, int64_t now)
{
	int64_t	due;

	if (!c->have_info || c->ren != NULL)
		return (0);
	due = cert_renew_at(&c->info, c->conf->renew_days);
	if (now < due + OVERDUE_GRACE_SEC)
		return (0);
	return (c->conf->renew == NULL || c->meta.last_at > due);
}

/*
 * 0 when an endpoint serves another certificate (or none); 1 when every
 * endpoint was asked and serves the file's; -1 when none differs but at
 * least one could not be asked (or none has been yet): unknown, never a
 * "differs" that was not seen.
 */
static int
served_matches(const struct cert *c)
{
	unsigned int	i;
	int		known = c->conf->neps > 0;

	for (i = 0; i < c->conf->neps; i++) {
		if (c->eps[i].checked && c->eps[i].matches ==
		    CERT_SERVED_DIFFERS)
			return (0);
		if (!c->eps[i].checked || c->eps[i].matches ==
		    CERT_SERVED_UNKNOWN)
			known = 0;
	}
	return (known ? 1 : -1);
}

/* endpoints the last check could not ask */
static unsigned int
served_unknown(const struct cert *c)
{
	unsigned int	i, n = 0;

	for (i = 0; i < c->conf->neps; i++)
		n += c->eps[i].checked && c->eps[i].matches ==
		    CERT_SERVED_UNKNOWN;
	return (n);
}

const char *
cert_state_word(const struct cert *c)
{
	int64_t	now = (int64_t)time(NULL);

	if (c->ren != NULL)
		return ("renewing");
	if (c->file_error[0] != '\0')
		return ("unreadable");
	if (!c->have_info)
		return ("unchecked");
	if (c->info.not_after <= now)
		return ("expired");
	if (served_matches(c) == 0)
		return ("differs");
	if (c->info.not_after - now < (int64_t)c->conf->warn_days * 86400)
		return ("expiring");
	if (cert_overdue(c, now))
		return ("overdue");
	if (c->failed_firing)
		return ("failed");
	if (served_unknown(c) > 0)
		return ("unreachable");
	return ("ok");
}

/* --- the check ----------------------------------------------------------- */

static void
check_file_alerts(struct cert *c, int64_t now)
{
	double	days;
	int	firing, e = c->file_error[0] != '\0';

	if (e != c->unreadable_firing) {
		c->unreadable_firing = e;
		c->event_error = e ? c->file_error : NULL;
		cert_event(c, &EVT_CERT_UNREADABLE, "cert.unreadable", e, NULL,
		    e ? "cert %s: the certificate file is UNUSABLE: %s" :
		    "cert %s: the certificate file is usable again",
		    c->conf->name, c->file_error);
		c->event_error = NULL;
	}
	if (!c->have_info)
		return;
	days = (double)(c->info.not_after - now) / 86400.0;
	firing = days < (double)c->conf->warn_days;
	if (firing != c->expiring_firing) {
		c->expiring_firing = firing;
		if (firing && days < 0)
			cert_event(c, &EVT_CERT_EXPIRING, "cert.expiring", 1,
			    NULL, "cert %s EXPIRED %.1f days ago", c->conf->name,
			    -days);
		else
			cert_event(c, &EVT_CERT_EXPIRING, "cert.expiring",
			    firing, NULL, firing ? "cert %s expires in %.1f "
			    "days (warn_days %llu)" : "cert %s is valid for "
			    "%.0f more days", c->conf->name, days,
			    (unsigned long long)c->conf->warn_days);
	}
	firing = cert_overdue(c, now);
	if (firing != c->overdue_firing) {
		c->overdue_firing = firing;
		cert_event(c, &EVT_CERT_OVERDUE, "cert.overdue", firing, NULL,
		    firing ? "cert %s: renewal OVERDUE: it expires in %.1f "
		    "days and has not been renewed%s%s" : "cert %s: renewal no "
		    "longer overdue", c->conf->name, days,
		    c->meta.last_error[0] ? "; last attempt: " : "",
		    c->meta.last_error);
	}
}

/*
 * An endpoint that could not be asked is not one that differs: no alert
 * (its own probe says it is down), one record when it starts and one when
 * every endpoint answers again.
 */
static void
served_unknown_log(struct cert *c)
{
	char		 list[CERT_ERROR_MAX];
	unsigned int	 i, n = served_unknown(c);
	size_t		 o = 0;

	if ((n > 0) == c->unknown_logged)
		return;
	c->unknown_logged = n > 0;
	list[0] = '\0';
	for (i = 0; i < c->conf->neps && o < sizeof list; i++)
		if (c->eps[i].checked && c->eps[i].matches ==
		    CERT_SERVED_UNKNOWN)
			o += (size_t)snprintf(list + o, sizeof list - o, "%s%s: %s",
			    o ? "; " : "", c->conf->eps[i].text,
			    c->eps[i].error);
	c->event_error = n > 0 ? list : NULL;
	cert_event(c, &EVT_CERT_SERVED_UNCHECKED, NULL, 0, NULL, n > 0 ?
	    "cert %s: the served certificate could NOT BE CHECKED at %u "
	    "endpoint%s (%s)" : "cert %s: every endpoint answers again",
	    c->conf->name, n, n == 1 ? "" : "s", list);
	c->event_error = NULL;
}

void
cert_served_alert(struct cert *c, int again)
{
	char		 list[CERT_ERROR_MAX];
	unsigned int	 i;
	size_t		 o = 0;
	int		 differs;

	served_unknown_log(c);
	differs = served_matches(c) == 0;
	list[0] = '\0';
	for (i = 0; i < c->conf->neps && o < sizeof list; i++)
		if (c->eps[i].checked && c->eps[i].matches ==
		    CERT_SERVED_DIFFERS)
			o += (size_t)snprintf(list + o, sizeof list - o, "%s%s: %s",
			    o ? "; " : "", c->conf->eps[i].text,
			    c->eps[i].error[0] ? c->eps[i].error : "serves "
			    "sha256 another certificate");
	if (differs == c->differs_firing && !differs)
		return;
	if (differs == c->differs_firing && !again)
		return;
	c->differs_firing = differs;
	c->event_error = differs ? list : NULL;
	cert_event(c, &EVT_CERT_SERVED_DIFFERS, "cert.served", differs, NULL,
	    differs ? "cert %s: the SERVED certificate DIFFERS from the file "
	    "(%s)" : "cert %s: every endpoint serves the certificate of the "
	    "file", c->conf->name, list);
	c->event_error = NULL;
}

static void
check_done(struct cert *c)
{
	struct job	*job;
	json_t		*view;
	unsigned int	 i;
	int64_t		 now = (int64_t)time(NULL);
	char		*id = NULL, *err = NULL;
	int		 e;

	c->checked_at = now;
	/* a renewal's confirm step asks again: it decides at its end */
	if (!c->after_renewal)
		cert_served_alert(c, 0);
	if (c->after_renewal) {
		c->after_renewal = 0;
		cert_renew_confirmed(c);
	} else if (c->ren == NULL && c->have_info && c->file_error[0] == '\0' &&
	    c->conf->renew != NULL && now >= cert_next_renewal(c) &&
	    !c->opsd->stopping && op_find(c->opsd, cert_renew_kind.name,
	    c->conf->name) == NULL) {
		if ((e = cert_renew(c, 0, NULL, &id, &err)) != 0)
			evt_log_about(LOG_WARNING, "cert.schedule", "cert",
			    c->conf->name, "cert %s: renewal not started: %s",
			    c->conf->name, err);
		free(id);
		free(err);
	}
	if ((job = c->job) != NULL && c->job_running) {
		c->job_running = 0;
		job_finished(job, 1, "%s", cert_state_word(c));
	}
	if (c->nwaiters > 0) {
		view = cert_json(c, 1);
		for (i = 0; i < c->nwaiters; i++)
			rpc_pending_reply(c->waiters[i], json_incref(view));
		json_decref(view);
		free(c->waiters);
		c->waiters = NULL;
		c->nwaiters = 0;
	}
	if (c->nqueued > 0 && !c->opsd->stopping) {
		c->waiters = c->queued;
		c->nwaiters = c->nqueued;
		c->queued = NULL;
		c->nqueued = 0;
		cert_check(c, NULL);
	}
}

static void
served_done(struct served *q, const struct cert_info *ci, const char *error,
    int answered, void *arg)
{
	struct cert		*c = arg;
	struct cert_ep_state	*st = NULL;
	unsigned int		 i;

	for (i = 0; i < c->conf->neps; i++)
		if (c->eps[i].q == q)
			st = &c->eps[i];
	if (st == NULL)
		return;
	st->q = NULL;
	st->checked = 1;
	st->at = (int64_t)time(NULL);
	st->error[0] = '\0';
	if (error != NULL) {
		st->matches = answered ? CERT_SERVED_DIFFERS :
		    CERT_SERVED_UNKNOWN;
		st->sha256[0] = st->serial[0] = '\0';
		snprintf(st->error, sizeof st->error, "%s", error);
	} else {
		snprintf(st->sha256, sizeof st->sha256, "%s", ci->sha256);
		snprintf(st->serial, sizeof st->serial, "%s", ci->serial);
		st->matches = c->have_info && strcmp(ci->sha256,
		    c->info.sha256) == 0 && strcmp(ci->serial,
		    c->info.serial) == 0 ? CERT_SERVED_MATCHES :
		    CERT_SERVED_DIFFERS;
		if (st->matches != CERT_SERVED_MATCHES)
			snprintf(st->error, sizeof st->error, "serves %.16s… "
			    "serial %s, the file holds %.16s… serial %s",
			    ci->sha256, ci->serial, c->info.sha256,
			    c->info.serial);
	}
	if (--c->pending == 0)
		check_done(c);
}

void
cert_check(struct cert *c, struct rpc_pending *waiter)
{
	struct cert_ep_state	*st;
	unsigned int		 i;

	if (c->pending > 0) {
		/* a caller wants what is there now: a check after this one */
		if (waiter != NULL) {
			c->queued = xreallocarray(c->queued, c->nqueued + 1,
			    sizeof *c->queued);
			c->queued[c->nqueued++] = waiter;
		}
		return;
	}
	if (waiter != NULL) {
		c->waiters = xreallocarray(c->waiters, c->nwaiters + 1,
		    sizeof *c->waiters);
		c->waiters[c->nwaiters++] = waiter;
	}
	cert_load(c);
	check_file_alerts(c, (int64_t)time(NULL));
	for (i = 0; i < c->conf->neps; i++) {
		st = &c->eps[i];
		st->q = cert_served_start(c->opsd, &c->conf->eps[i],
		    c->conf->servername, c->conf->timeout, served_done, c);
		if (st->q == NULL) {
			st->checked = 1;
			st->matches = CERT_SERVED_UNKNOWN;
			snprintf(st->error, sizeof st->error, "cannot start the "
			    "TLS connection: out of memory");
			continue;
		}
		c->pending++;
	}
	if (c->pending == 0)
		check_done(c);
}

static void
first_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	cert_check(arg, NULL);
}

static void
job_cb(struct job *job, void *arg)
{
	struct cert	*c = arg;

	if (c->pending > 0 || c->ren != NULL) {
		job_finished(job, -1, "skipped: a check or renewal is under way");
		return;
	}
	job_started(job);
	c->job_running = 1;
	cert_check(c, NULL);
}

/* --- the set ------------------------------------------------------------- */

static void
cert_cancel_checks(struct cert *c, const char *why)
{
	unsigned int	i;

	for (i = 0; i < CERT_ENDPOINTS_MAX; i++)
		if (c->eps[i].q != NULL) {
			cert_served_cancel(c->eps[i].q);
			c->eps[i].q = NULL;
		}
	c->pending = 0;
	for (i = 0; i < c->nwaiters; i++)
		rpc_pending_fail(c->waiters[i], -ESHUTDOWN, NULL, "%s", why);
	for (i = 0; i < c->nqueued; i++)
		rpc_pending_fail(c->queued[i], -ESHUTDOWN, NULL, "%s", why);
	free(c->waiters);
	free(c->queued);
	c->waiters = c->queued = NULL;
	c->nwaiters = c->nqueued = 0;
	if (c->job != NULL && c->job_running) {
		c->job_running = 0;
		job_interrupted(c->job);
	}
}

static void
cert_free(struct cert *c)
{
	cert_renew_abandon(c);
	cert_cancel_checks(c, "the certificate was removed from the config");
	if (c->job != NULL)
		job_remove(c->job);
	event_free(c->first_ev);
	cert_conf_free(c->conf);
	free(c);
}

static void
cert_take_conf(struct cert *c, const struct cert_conf *cc)
{
	char	*jobname;

	cert_cancel_checks(c, "the configuration was reloaded");
	if (c->job != NULL)
		job_remove(c->job);
	c->job = NULL;
	cert_conf_free(c->conf);
	c->conf = cert_conf_copy(cc);
	memset(c->eps, 0, sizeof c->eps);
	xasprintf(&jobname, "cert %s", c->conf->name);
	c->job = job_add(c->opsd, jobname, &c->conf->spec,
	    c->conf->random_delay, 0, job_cb, c);
	free(jobname);
}

void
cert_apply_config(struct opsd *o)
{
	struct cert_set		*set = cert_set_get(o);
	struct cert_conf	*cc;
	struct cert		*c, **fresh;
	struct timeval		 tv = { 0, 0 };
	unsigned int		 i, j, n;

	n = config_count(o->conf, &cert_section);
	fresh = xcalloc(n + 1, sizeof *fresh);
	for (i = 0; i < n; i++) {
		cc = config_at(o->conf, &cert_section, i);
		c = NULL;
		for (j = 0; j < set->n; j++)
			if (set->v[j] != NULL && strcmp(set->v[j]->conf->name,
			    cc->name) == 0) {
				c = set->v[j];
				set->v[j] = NULL;
				break;
			}
		if (c != NULL && c->ren != NULL) {
			evt_log_about(LOG_WARNING, "cert.reload", "cert",
			    cc->name, "cert %s is being renewed; its new "
			    "settings are not applied (reload again once it is "
			    "done)", cc->name);
			fresh[i] = c;
			continue;
		}
		if (c == NULL) {
			c = xcalloc(1, sizeof *c);
			c->opsd = o;
			c->first_ev = evtimer_new(o->base, first_cb, c);
			c->conf = NULL;
			fresh[i] = c;
			cert_take_conf(c, cc);
			cert_meta_load(c);
		} else {
			fresh[i] = c;
			cert_take_conf(c, cc);
		}
		/* a check now: a reload may have changed every setting */
		evtimer_add(c->first_ev, &tv);
	}
	for (j = 0; j < set->n; j++)
		if (set->v[j] != NULL)
			cert_free(set->v[j]);
	free(set->v);
	set->v = fresh;
	set->n = n;
}

void
cert_stop_all(struct opsd *o)
{
	struct cert_set	*set = o->sub[SUBSYS_CERT];
	unsigned int	 i;

	for (i = 0; set != NULL && i < set->n; i++) {
		evtimer_del(set->v[i]->first_ev);
		cert_cancel_checks(set->v[i], "opsd is stopping");
	}
}

unsigned int
cert_busy(struct opsd *o)
{
	struct cert_set	*set = o->sub[SUBSYS_CERT];
	unsigned int	 i, n = 0;

	for (i = 0; set != NULL && i < set->n; i++)
		n += set->v[i]->ren != NULL;
	return (n);
}

void
cert_free_all(struct opsd *o)
{
	struct cert_set	*set = o->sub[SUBSYS_CERT];
	unsigned int	 i;

	if (set == NULL)
		return;
	for (i = 0; i < set->n; i++)
		cert_free(set->v[i]);
	free(set->v);
	free(set);
	o->sub[SUBSYS_CERT] = NULL;
}

/* --- after a renewal ------------------------------------------------------ */

void
cert_renewal_ended(struct cert *c, const char *result, const char *op,
    const char *error)
{
	int64_t	now = (int64_t)time(NULL);

	snprintf(c->meta.last_result, sizeof c->meta.last_result, "%s", result);
	c->meta.last_at = now;
	snprintf(c->meta.last_op, sizeof c->meta.last_op, "%s", op);
	snprintf(c->meta.last_error, sizeof c->meta.last_error, "%s",
	    error != NULL ? error : "");
	if (strcmp(result, "ok") == 0) {
		c->meta.last_ok = now;
		c->meta.n_ok++;
	} else if (strcmp(result, "rolled_back") == 0)
		c->meta.n_rolled_back++;
	else
		c->meta.n_failed++;
	cert_meta_save(c);
	check_file_alerts(c, now);
}

/* --- views ---------------------------------------------------------------- */

static json_t *
time_or_null(int64_t t)
{
	char	buf[64];

	if (t <= 0)
		return (json_null());
	util_iso_time(t, buf, sizeof buf);
	return (json_string(buf));
}

json_t *
cert_json(struct cert *c, int full)
{
	json_t		*j, *served, *names, *e;
	int64_t		 now = (int64_t)time(NULL);
	unsigned int	 i;
	int		 all;

	j = json_pack("{s:s, s:s, s:s}", "name", c->conf->name, "path",
	    c->conf->path, "state", cert_state_word(c));
	if (c->have_info) {
		json_object_set_new(j, "subject", json_string(c->info.subject));
		json_object_set_new(j, "issuer", json_string(c->info.issuer));
		json_object_set_new(j, "not_after",
		    time_or_null(c->info.not_after));
		json_object_set_new(j, "not_after_unix",
		    json_integer(c->info.not_after));
		json_object_set_new(j, "days_left", json_real(
		    (double)(c->info.not_after - now) / 86400.0));
		json_object_set_new(j, "sha256", json_string(c->info.sha256));
		json_object_set_new(j, "serial", json_string(c->info.serial));
	}
	json_object_set_new(j, "next_renewal",
	    time_or_null(cert_next_renewal(c)));
	all = served_matches(c);
	json_object_set_new(j, "served_matches", all >= 0 ? json_boolean(all) :
	    json_null());
	if (c->file_error[0] != '\0')
		json_object_set_new(j, "file_error",
		    json_string(c->file_error));
	if (c->meta.last_error[0] != '\0')
		json_object_set_new(j, "last_error",
		    json_string(c->meta.last_error));
	if (!full)
		return (j);
	if (c->have_info) {
		names = json_array();
		for (i = 0; i < c->info.nnames; i++)
			json_array_append_new(names,
			    json_string(c->info.names[i]));
		json_object_set_new(j, "names", names);
		json_object_set_new(j, "not_before",
		    time_or_null(c->info.not_before));
		json_object_set_new(j, "key_type", json_string(c->info.key_type));
		json_object_set_new(j, "key_bits", json_integer(c->info.key_bits));
		json_object_set_new(j, "signature", json_string(c->info.sig_alg));
		json_object_set_new(j, "chain_in_file",
		    json_integer(c->info.nextra));
	}
	json_object_set_new(j, "key", c->conf->key != NULL ?
	    json_string(c->conf->key) : json_null());
	json_object_set_new(j, "renew", json_boolean(c->conf->renew != NULL));
	json_object_set_new(j, "warn_days", json_integer(
	    (json_int_t)c->conf->warn_days));
	json_object_set_new(j, "checked_at", time_or_null(c->checked_at));
	served = json_array();
	for (i = 0; i < c->conf->neps; i++) {
		e = json_pack("{s:s}", "endpoint", c->conf->eps[i].text);
		if (c->eps[i].checked) {
			json_object_set_new(e, "matches", c->eps[i].matches ==
			    CERT_SERVED_UNKNOWN ? json_null() :
			    json_boolean(c->eps[i].matches));
			json_object_set_new(e, "answered", json_boolean(
			    c->eps[i].matches != CERT_SERVED_UNKNOWN));
			json_object_set_new(e, "checked_at",
			    time_or_null(c->eps[i].at));
			if (c->eps[i].sha256[0] != '\0') {
				json_object_set_new(e, "sha256",
				    json_string(c->eps[i].sha256));
				json_object_set_new(e, "serial",
				    json_string(c->eps[i].serial));
			}
			if (c->eps[i].error[0] != '\0')
				json_object_set_new(e, "error",
				    json_string(c->eps[i].error));
		} else
			json_object_set_new(e, "matches", json_null());
		json_array_append_new(served, e);
	}
	json_object_set_new(j, "served", served);
	json_object_set_new(j, "renewals", json_pack("{s:I, s:I, s:I}", "ok",
	    (json_int_t)c->meta.n_ok, "failed", (json_int_t)c->meta.n_failed,
	    "rolled_back", (json_int_t)c->meta.n_rolled_back));
	if (c->meta.last_result[0] != '\0')
		json_object_set_new(j, "last_result", json_pack("{s:s, s:o, "
		    "s:s, s:s?}", "result", c->meta.last_result, "at",
		    time_or_null(c->meta.last_at), "op", c->meta.last_op,
		    "error", c->meta.last_error[0] ? c->meta.last_error :
		    NULL));
	json_object_set_new(j, "last_ok", time_or_null(c->meta.last_ok));
	json_object_set_new(j, "renewal", c->ren != NULL ? cert_renew_json(c) :
	    json_null());
	return (j);
}
