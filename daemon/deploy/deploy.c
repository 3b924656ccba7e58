/*
 * The set of [deploy NAME] sections: reload, the state each starts from,
 * the commands of a deploy, events and alerts, the end of a warm old
 * slot's rollback window, and the list/status views.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "child.h"
#include "config.h"
#include "daemon.h"
#include "lazylib.h"
#include "deploy-int.h"
#include "evt.h"
#include "op.h"
#include "util.h"

const struct evt_type EVT_DEPLOY_STARTED = {
	"deploy.started", "1d2cc8995f3ea391537d98a2a645496f", LOG_NOTICE };
const struct evt_type EVT_DEPLOY_STEP = {
	"deploy.step", "2d01a0c702f10dcfaa6032586754c9b0", LOG_INFO };
const struct evt_type EVT_DEPLOY_SUCCEEDED = {
	"deploy.succeeded", "97e4b3c093d9921bb96a01e0ddec3d47", LOG_NOTICE };
const struct evt_type EVT_DEPLOY_FAILED = {
	"deploy.failed", "c2abd67eb04316329c825a6246533d10", LOG_ERR };
const struct evt_type EVT_DEPLOY_ROLLED_BACK = {
	"deploy.rolled_back", "c0d0184b96b15281da1d1f3cb2f1231d", LOG_WARNING };
const struct evt_type EVT_DEPLOY_RECOVERED = {
	"deploy.recovered", "dfd0f873a2b9a0cde85fa8fad1c8deb3", LOG_WARNING };
const struct evt_type EVT_DEPLOY_RETIRED = {
	"deploy.retired", "a7222cb101eecd802e31be7223abd9c0", LOG_INFO };

#define RETIRE_RETRY_SEC	60

struct deploy_set *
deploy_set_get(struct opsd *o)
{
	if (o->sub[SUBSYS_DEPLOY] == NULL)
		o->sub[SUBSYS_DEPLOY] = xcalloc(1, sizeof (struct deploy_set));
	return (o->sub[SUBSYS_DEPLOY]);
}

struct deploy *
deploy_find(struct opsd *o, const char *name)
{
	struct deploy_set	*set = o->sub[SUBSYS_DEPLOY];
	unsigned int		 i;

	for (i = 0; set != NULL && i < set->n; i++)
		if (set->v[i] != NULL && strcmp(set->v[i]->conf->name,
		    name) == 0)
			return (set->v[i]);
	return (NULL);
}

const char *
deploy_state_word(const struct deploy *d)
{
	if (d->run != NULL)
		return (deploy_run_recovering(d) ? "recovering" :
		    deploy_run_rolling_back(d) ? "rolling_back" : "deploying");
	if (d->st.degraded[0] != '\0')
		return ("degraded");
	return ("idle");
}

void
deploy_event(struct deploy *d, const struct evt_type *type, const char *op,
    const char *step, int slot, const char *version, int alert,
    const char *fmt, ...)
{
	struct evt	*ev;
	va_list		 ap;
	char		*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	ev = evt_new(type);
	evt_add(ev, "deploy", "%s", d->conf->name);
	if (step != NULL && step[0] != '\0')
		evt_add(ev, "step", "%s", step);
	if (version != NULL && version[0] != '\0')
		evt_add(ev, "version", "%s", version);
	evt_add(ev, "slot", "%s", deploy_slot_name(slot));
	evt_add(ev, "active_slot", "%s", deploy_slot_name(d->st.active_slot));
	if (d->st.active_version[0] != '\0')
		evt_add(ev, "active_version", "%s", d->st.active_version);
	if (op != NULL && op[0] != '\0')
		evt_add(ev, "op", "%s", op);
	if (alert != 0 && d->conf->nalert > 0) {
		evt_alert(ev, (const char *const *)d->conf->alert,
		    d->conf->nalert, "deploy", d->conf->name, alert == 2);
		if (alert == 1 || alert == 3)
			evt_alert_notice(ev, alert == 1);
	}
	evt_emit(ev, "%s", msg);
	free(msg);
}

int
deploy_save(struct deploy *d)
{
	int	e;

	if ((e = deploy_state_save(d->opsd, d->conf->name, &d->st)) != 0)
		evt_log_about(LOG_ERR, "deploy.state", "deploy", d->conf->name,
		    "deploy %s: cannot write %s/deploy/%s.json: %s",
		    d->conf->name, d->opsd->conf->state_dir, d->conf->name,
		    strerror(-e));
	return (e);
}

struct child *
deploy_command(struct deploy *d, const char *tmpl, int slot,
    const char *version, uint64_t timeout_ms, child_done_cb done, void *arg,
    int *err)
{
	struct deploy_vars	 v;
	struct child_spec	 spec;
	struct child		*c;
	const char		*argv[4];
	char			*cmd, *env[6];
	unsigned int		 i;

	v.deploy = d->conf->name;
	v.slot = deploy_slot_name(slot);
	v.version = version;
	v.port = deploy_port(d->conf, slot);
	cmd = deploy_expand(tmpl, &v);
	xasprintf(&env[0], "OPSD_DEPLOY=%s", d->conf->name);
	xasprintf(&env[1], "OPSD_SLOT=%s", v.slot);
	xasprintf(&env[2], "OPSD_VERSION=%s", version);
	xasprintf(&env[3], "OPSD_PORT=%llu", (unsigned long long)v.port);
	xasprintf(&env[4], "OPSD_ACTIVE_VERSION=%s", d->st.active_version);
	env[5] = NULL;
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = cmd;
	argv[3] = NULL;
	memset(&spec, 0, sizeof spec);
	spec.argv = argv;
	spec.env = (const char *const *)env;
	spec.timeout_ms = timeout_ms;
	spec.max_output = 0;
	c = child_spawn(d->opsd, &spec, done, arg, err);
	evt_log_about(LOG_INFO, "deploy.command", "deploy", d->conf->name,
	    "deploy %s: running %s", d->conf->name, cmd);
	for (i = 0; i < 5; i++)
		free(env[i]);
	free(cmd);
	return (c);
}

/* --- the end of a rollback window -------------------------------------- */

static void	retire_cb(evutil_socket_t, short, void *);

static void
retired(struct child *c, const struct child_result *res, void *arg)
{
	struct deploy	*d = arg;
	struct timeval	 tv = { RETIRE_RETRY_SEC, 0 };
	char		 why[DEPLOY_ERROR_MAX];

	(void)c;
	d->retire_child = NULL;
	if (child_failed(res, why, sizeof why)) {
		evt_log_about(LOG_ERR, "deploy.retire", "deploy", d->conf->name,
		    "deploy %s: stopping the old slot %s (version %s) after its "
		    "rollback window: stop %s; trying again in %ds",
		    d->conf->name, deploy_slot_name(d->st.prev_slot),
		    d->st.prev_version, why, RETIRE_RETRY_SEC);
		if (!d->opsd->stopping && d->run == NULL)
			evtimer_add(d->retire_ev, &tv);
		return;
	}
	d->st.prev_running = 0;
	deploy_save(d);
	deploy_event(d, &EVT_DEPLOY_RETIRED, NULL, NULL, d->st.prev_slot,
	    d->st.prev_version, 0, "deploy %s: the rollback window of version "
	    "%s ended; slot %s stopped (a rollback starts it again through "
	    "the health gate)", d->conf->name, d->st.prev_version,
	    deploy_slot_name(d->st.prev_slot));
}

static void
retire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct deploy	*d = arg;
	int		 e;

	(void)fd;
	(void)what;
	if (d->run != NULL || d->retire_child != NULL || d->opsd->stopping ||
	    !d->st.has_previous || !d->st.prev_running ||
	    d->st.degraded[0] != '\0')
		return;
	d->retire_child = deploy_command(d, d->conf->stop, d->st.prev_slot,
	    d->st.prev_version, d->conf->stop_timeout, retired, d, &e);
	if (d->retire_child == NULL)
		evt_log_about(LOG_ERR, "deploy.retire", "deploy", d->conf->name,
		    "deploy %s: cannot run stop: %s", d->conf->name,
		    strerror(-e));
}

void
deploy_retire_schedule(struct deploy *d)
{
	struct timeval	tv = { 0, 0 };
	int64_t		now = (int64_t)time(NULL);

	evtimer_del(d->retire_ev);
	if (d->run != NULL || d->opsd->stopping || !d->st.has_previous ||
	    !d->st.prev_running || d->st.prev_until <= 0 ||
	    d->st.degraded[0] != '\0')
		return;
	if (d->st.prev_until > now)
		tv.tv_sec = (time_t)(d->st.prev_until - now);
	evtimer_add(d->retire_ev, &tv);
}

/* --- start-up and reload ---------------------------------------------------- */

/* What a deploy starts from: its state file, else its configuration. */
static void
deploy_settle(struct deploy *d)
{
	char	err[DEPLOY_ERROR_MAX];
	int	e;

	e = deploy_state_load(d->opsd, d->conf->name, &d->st, err,
	    sizeof err);
	if (e != 0 && e != -ENOENT)
		evt_log_about(LOG_ERR, "deploy.state", "deploy", d->conf->name,
		    "deploy %s: state unreadable (%s), set aside as .bad; "
		    "starting from the configuration (active = %s)",
		    d->conf->name, err, deploy_slot_name(d->conf->active));
	if (!d->st.known) {
		memset(&d->st, 0, sizeof d->st);
		d->st.active_slot = d->conf->active;
		if (d->conf->active_version != NULL)
			snprintf(d->st.active_version,
			    sizeof d->st.active_version, "%s",
			    d->conf->active_version);
	}
	d->alert_firing = d->st.degraded[0] != '\0' && d->conf->nalert > 0;
}

static void
deploy_free(struct deploy *d)
{
	deploy_run_abandon(d);
	if (d->retire_child != NULL)
		child_abandon(d->retire_child);
	event_free(d->retire_ev);
	deploy_conf_free(d->conf);
	free(d);
}

void
deploy_apply_config(struct opsd *o)
{
	struct deploy_set	*set = deploy_set_get(o);
	struct opsd_config	*conf = o->conf;
	struct deploy_conf	*dc;
	struct deploy		*d, **fresh;
	struct op		*op;
	unsigned int		 i, j, n;

	n = config_count(conf, &deploy_section);
	if (n > 0)
		lazylib_curl();	/* the health gate uses it: load it now */
	fresh = xcalloc(n + 1, sizeof *fresh);
	for (i = 0; i < n; i++) {
		dc = config_at(conf, &deploy_section, i);
		d = NULL;
		for (j = 0; j < set->n; j++)
			if (set->v[j] != NULL && strcmp(set->v[j]->conf->name,
			    dc->name) == 0) {
				d = set->v[j];
				set->v[j] = NULL;
				break;
			}
		if (d != NULL && (d->run != NULL || d->retire_child != NULL)) {
			/* busy: it keeps the settings it started with */
			evt_log_about(LOG_WARNING, "deploy.reload", "deploy",
			    dc->name, "deploy %s is under way; its new settings "
			    "are not applied (reload again once it is done)",
			    dc->name);
			fresh[i] = d;
			continue;
		}
		if (d == NULL) {
			d = xcalloc(1, sizeof *d);
			d->opsd = o;
			d->retire_ev = evtimer_new(o->base, retire_cb, d);
			fresh[i] = d;
			d->conf = deploy_conf_copy(dc);
			deploy_settle(d);
		} else {
			fresh[i] = d;
			deploy_conf_free(d->conf);
			d->conf = deploy_conf_copy(dc);
		}
	}
	for (j = 0; j < set->n; j++)
		if (set->v[j] != NULL)
			deploy_free(set->v[j]);
	free(set->v);
	set->v = fresh;
	set->n = n;
	for (i = 0; i < n; i++) {
		d = set->v[i];
		if (d->run != NULL)
			continue;
		if (set->started && (op = op_find(o, deploy_cutover_kind.name,
		    d->conf->name)) != NULL)
			/* back after a reload that had removed it */
			deploy_run_recover(o, op);
		else
			deploy_retire_schedule(d);
	}
	set->started = 1;
}

void
deploy_stop_all(struct opsd *o)
{
	struct deploy_set	*set = o->sub[SUBSYS_DEPLOY];
	unsigned int		 i;

	for (i = 0; set != NULL && i < set->n; i++)
		evtimer_del(set->v[i]->retire_ev);
}

void
deploy_free_all(struct opsd *o)
{
	struct deploy_set	*set = o->sub[SUBSYS_DEPLOY];
	unsigned int		 i;

	if (set == NULL)
		return;
	for (i = 0; i < set->n; i++)
		deploy_free(set->v[i]);
	free(set->v);
	free(set);
	o->sub[SUBSYS_DEPLOY] = NULL;
}

/* --- views ------------------------------------------------------------------ */

json_t *
deploy_json(struct deploy *d, int full)
{
	const struct deploy_conf	*c = d->conf;
	const struct deploy_state	*st = &d->st;
	json_t				*j, *h, *run;
	unsigned int			 i;
	char				*cmd;

	j = json_pack("{s:s, s:s, s:{s:s, s:o, s:I, s:o, s:b}}", "name",
	    c->name, "state", deploy_state_word(d), "active", "slot",
	    deploy_slot_name(st->active_slot), "version",
	    st->active_version[0] ? json_string(st->active_version) :
	    json_null(), "port", (json_int_t)deploy_port(c,
	    st->active_slot), "since", st->active_since > 0 ?
	    json_integer(st->active_since) : json_null(), "irreversible",
	    st->irreversible);
	if (j == NULL)
		fatalx("deploy: cannot build the JSON of %s", c->name);
	if (st->has_previous)
		json_object_set_new(j, "previous", json_pack("{s:s, s:s, s:I, "
		    "s:b, s:o}", "slot", deploy_slot_name(st->prev_slot),
		    "version", st->prev_version, "port",
		    (json_int_t)deploy_port(c, st->prev_slot), "running",
		    st->prev_running, "stop_at", st->prev_running &&
		    st->prev_until > 0 ? json_integer(st->prev_until) :
		    json_null()));
	else
		json_object_set_new(j, "previous", json_null());
	json_object_set_new(j, "degraded", st->degraded[0] ?
	    json_string(st->degraded) : json_null());
	run = deploy_run_json(d);
	json_object_set_new(j, "operation", run != NULL ? run : json_null());
	if (st->nhist > 0)
		json_object_set_new(j, "last", json_pack("{s:s, s:s, s:s, s:I}",
		    "op", st->hist[0].op, "version", st->hist[0].version,
		    "result", st->hist[0].result, "started",
		    (json_int_t)st->hist[0].started));
	else
		json_object_set_new(j, "last", json_null());
	if (!full)
		return (j);
	if (st->has_previous) {
		xasprintf(&cmd, "opsd-cli deploy rollback %s%s", c->name,
		    st->irreversible ? " --force" : "");
		json_object_set_new(j, "rollback", json_pack("{s:s, s:s, s:b, "
		    "s:b, s:s}", "version", st->prev_version, "slot",
		    deploy_slot_name(st->prev_slot), "instant",
		    st->prev_running, "needs_force", st->irreversible, "command",
		    cmd));
		free(cmd);
	} else
		json_object_set_new(j, "rollback", json_null());
	h = json_array();
	for (i = 0; i < st->nhist; i++) {
		const struct deploy_entry *e = &st->hist[i];
		json_t *x;

		x = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "op",
		    e->op, "mode", e->mode, "version", e->version, "slot",
		    deploy_slot_name(e->slot), "result", e->result, "started",
		    (json_int_t)e->started, "duration_ms",
		    (json_int_t)e->duration_ms);
		if (x == NULL)
			fatalx("deploy: cannot build a history entry");
		json_object_set_new(x, "from_version", e->from_version[0] ?
		    json_string(e->from_version) : json_null());
		json_object_set_new(x, "cutover_ms", e->cutover_ms >= 0 ?
		    json_integer(e->cutover_ms) : json_null());
		json_object_set_new(x, "step", e->step[0] ?
		    json_string(e->step) : json_null());
		json_object_set_new(x, "error", e->error[0] ?
		    json_string(e->error) : json_null());
		json_array_append_new(h, x);
	}
	json_object_set_new(j, "deploys", h);
	json_object_set_new(j, "counts", json_pack("{s:I, s:I, s:I}", "ok",
	    (json_int_t)st->n_ok, "failed", (json_int_t)st->n_failed,
	    "rolled_back", (json_int_t)st->n_rolled_back));
	json_object_set_new(j, "upstream_file", json_string(c->upstream_file));
	json_object_set_new(j, "slots", json_pack("{s:I, s:I}", "blue",
	    (json_int_t)c->blue_port, "green", (json_int_t)c->green_port));
	return (j);
}
