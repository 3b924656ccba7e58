/*
 * A cutover: an op of kind deploy.cutover on the deploy's name. Each step
 * is in the journal before its side effect (and takes a loop iteration of
 * its own after that), so a kill at any point leaves a step that says
 * what may be half done:
 *
 *   prepare       the idle slot: a warm old version there is stopped,
 *                 unless it is the version asked for (then it is reused)
 *   start         the start command, in the idle slot, with the version
 *   gate          health checks: health_start_delay, then health_rise
 *                 passes in a row before health_deadline; the slot's
 *                 process must not exit or change meanwhile (pid_file)
 *   migrate       the migrate command (deploys only, not rollbacks);
 *                 exit 3, or migrate_reversible = no: no way back
 *   render        upstream_template for the new slot into a file beside
 *                 upstream_file; the include as it was saved first
 *   switch        the rename over upstream_file
 *   test          proxy_test (nginx -t reads the include by its name:
 *                 it tests the file in place, and nothing serves from it
 *                 before the reload)
 *   reload        proxy_reload, nginx's workers noted first
 *   confirm       the master runs new workers: the reload took effect
 *   verify        verify_url through nginx serves the new version; then
 *                 the state names the new slot active (the commit point)
 *   watch         the new slot's health for `watch`
 *   drain, stop_old   with rollback_window = 0 only: the old slot is
 *                 stopped once drain has passed; else it stays warm and
 *                 is stopped when the window ends (deploy.c)
 *
 * and the way back, taken by a failure (or an abort):
 *
 *   restore       the saved include file put back (atomically)
 *   reload_back, confirm_back   nginx on the old slot again
 *   stop_new      the new slot stopped
 *
 * A failure before the switch stops the new slot; traffic never moved.
 * A failed test or reload puts the include back (and reloads after a
 * reload). A failure after the reload (verify, watch) rolls back when
 * auto_rollback is on and the migration can be undone, else it alerts and
 * leaves both slots running. The new slot is stopped only once nginx is
 * confirmed on the old one.
 *
 * After a crash (op recovery): before the switch the new slot is stopped;
 * at switch or test the include is put back; from reload to verify the
 * cutover goes on from reload (reload, confirm and verify again); in watch
 * and drain it goes on there; a way back under way goes on from restore.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "child.h"
#include "config.h"
#include "daemon.h"
#include "deploy-int.h"
#include "deploy-run-int.h"
#include "evt.h"
#include "maint.h"
#include "op.h"
#include "opsd-parse.h"
#include "rpc.h"
#include "state.h"
#include "util.h"

static const char *const drun_step_names[] = {
	"prepare", "start", "gate", "migrate", "render", "switch", "test",
	"reload", "confirm", "verify", "watch", "drain", "stop_old",
	"restore", "reload_back", "confirm_back", "stop_new"
};

const struct op_kind deploy_cutover_kind = {
	"deploy.cutover", drun_step_names, DS_NSTEPS, deploy_run_recover, NULL,
	1	/* service_lock: a probe's restart waits for the cutover */
};

const char *const deploy_undo_names[4] = { "", "pre", "test", "full" };

static void	run_free(struct drun *);

/* --- small helpers -------------------------------------------------------- */

struct opsd *
deploy_run_opsd(struct drun *r)
{
	return (r->d->opsd);
}

const struct deploy_conf *
deploy_run_conf(struct drun *r)
{
	return (r->d->conf);
}

const char *
deploy_step_name(int step)
{
	return (step >= 0 && step < DS_NSTEPS ? drun_step_names[step] : "");
}

int
deploy_run_recovering(const struct deploy *d)
{
	return (d->run != NULL && d->run->recovering);
}

int
deploy_run_rolling_back(const struct deploy *d)
{
	return (d->run != NULL && d->run->rolling_back);
}

void
deploy_timer_in(struct drun *r, struct event **ev, uint64_t ms,
    event_callback_fn fn)
{
	struct timeval	tv;

	if (*ev != NULL)
		event_free(*ev);
	*ev = evtimer_new(deploy_run_opsd(r)->base, fn, r);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(*ev, &tv);
}

void
deploy_timer_off(struct event **ev)
{
	if (*ev != NULL) {
		event_free(*ev);
		*ev = NULL;
	}
}

static void
stop_work(struct drun *r)
{
	if (r->child != NULL) {
		child_abandon(r->child);
		r->child = NULL;
	}
	if (r->check != NULL) {
		deploy_check_cancel(r->check);
		r->check = NULL;
	}
	deploy_timer_off(&r->tick);
	deploy_timer_off(&r->timer);
}

static int64_t
elapsed_ms(const struct drun *r)
{
	return ((int64_t)((now_usec() - r->t0) / 1000));
}

void
deploy_notify(struct drun *r, const char *detail)
{
	json_t		*p;

	if (r->followers.n == 0)
		return;
	p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "op",
	    r->op_id, "deploy", deploy_run_conf(r)->name, "mode", r->mode ==
	    DEPLOY_MODE_ROLLBACK ? "rollback" : "deploy", "step",
	    deploy_step_name(r->step), "slot", deploy_slot_name(r->slot),
	    "version", r->version, "elapsed_ms", (json_int_t)elapsed_ms(r));
	if (p == NULL)
		fatalx("deploy: cannot build a progress notification");
	if (detail != NULL)
		json_object_set_new(p, "detail", json_string(detail));
	rpc_followers_notify(&r->followers, "deploy.progress", p);
}

void
deploy_run_listener(struct op *op, void *arg)
{
	struct drun	*r = arg;

	if (op_state(op) != OP_RUNNING)
		return;
	deploy_event(r->d, &EVT_DEPLOY_STEP, r->op_id,
	    deploy_step_name(r->step),
	    r->slot, r->version, 0, "deploy %s: %s (%s %s on %s)",
	    deploy_run_conf(r)->name, deploy_step_name(r->step), r->mode ==
	    DEPLOY_MODE_ROLLBACK ? "rollback to" : "version", r->version,
	    deploy_slot_name(r->slot));
	deploy_notify(r, NULL);
}

void
deploy_keep_check(struct drun *r, const struct deploy_check_result *res)
{
	if (r->nkept == DEPLOY_CHECKS_KEPT) {
		memmove(&r->kept[0], &r->kept[1], sizeof r->kept[0] *
		    (DEPLOY_CHECKS_KEPT - 1));
		r->nkept--;
	}
	r->kept[r->nkept++] = *res;
}

void
deploy_describe_check(const struct deploy_check_result *res, char *buf,
    size_t len)
{
	if (res->ok)
		snprintf(buf, len, "ok (%ld%s%s, %llu ms)", res->status,
		    res->version[0] ? ", version " : "", res->version,
		    (unsigned long long)res->ms);
	else
		snprintf(buf, len, "failed: %s (%llu ms)", res->error,
		    (unsigned long long)res->ms);
}

/*
 * The version a check must see in version_header: none for "unknown", the
 * version that served before opsd's first deploy when active_version was
 * not set (only a warm slot is ever rolled back to it).
 */
const char *
deploy_want_version(const struct drun *r)
{
	return (strcmp(r->version, DEPLOY_UNKNOWN) == 0 ? NULL : r->version);
}

/* The template of a slot's health URL (or pid file) with its values. */
char *
deploy_slot_expand(struct drun *r, const char *tmpl, int slot,
    const char *version)
{
	struct deploy_vars	v;

	v.deploy = deploy_run_conf(r)->name;
	v.slot = deploy_slot_name(slot);
	v.version = version;
	v.port = deploy_port(deploy_run_conf(r), slot);
	return (deploy_expand(tmpl, &v));
}

/* Makes step current in the journal; -1 (and the cutover failed) if not. */
static int
run_step(struct drun *r, int step)
{
	int	e;

	r->step = step;
	if ((e = op_step(r->op, (unsigned int)step)) != 0) {
		deploy_run_fail(r,
		    "cannot record step %s in the op journal: %s",
		    deploy_step_name(step), strerror(-e));
		return (-1);
	}
	return (0);
}

void
deploy_set_datum(struct drun *r, const char *key, const char *value)
{
	int	e;

	if (r->op != NULL && (e = op_set(r->op, key, value)) != 0)
		evt_log_about(LOG_WARNING, "deploy.journal", "deploy",
		    deploy_run_conf(r)->name,
		    "deploy %s: cannot record %s in the op "
		    "journal: %s", deploy_run_conf(r)->name, key, strerror(-e));
}

/* --- commands --------------------------------------------------------------- */

typedef void (*cmd_done)(struct drun *, int ok, const char *why, int status);

struct cmd {
	struct drun	*r;
	cmd_done	 done;
	char		*what;
};

static void
cmd_exited(struct child *c, const struct child_result *res, void *arg)
{
	struct cmd	*k = arg;
	struct drun	*r = k->r;
	char		 why[DEPLOY_ERROR_MAX - 64], full[DEPLOY_ERROR_MAX];
	int		 failed, status = -1;

	(void)c;
	r->child = NULL;
	failed = child_failed(res, why, sizeof why);
	if (WIFEXITED(res->status) && !res->killed)
		status = WEXITSTATUS(res->status);
	snprintf(full, sizeof full, "%s %s", k->what, why);
	free(k->what);
	k->what = NULL;
	k->done(r, !failed, failed ? full : NULL, status);
	free(k);
}

/* Runs tmpl for slot/version; done gets the outcome (never synchronously). */
void
deploy_run_cmd(struct drun *r, const char *what, const char *tmpl, int slot,
    const char *version, uint64_t timeout, cmd_done done)
{
	struct cmd	*k;
	int		 e;

	k = xcalloc(1, sizeof *k);
	k->r = r;
	k->done = done;
	xasprintf(&k->what, "%s", what);
	r->child = deploy_command(r->d, tmpl, slot, version, timeout,
	    cmd_exited, k, &e);
	if (r->child == NULL) {
		char	why[DEPLOY_ERROR_MAX];

		snprintf(why, sizeof why, "cannot run %s: %s", what,
		    strerror(-e));
		free(k->what);
		free(k);
		done(r, 0, why, -1);
	}
}

/* --- the state --------------------------------------------------------------- */

/* The commit point: the state names the new slot active. */
int
deploy_run_commit(struct drun *r)
{
	struct deploy_state	*st = &r->d->st;
	char			 ts[32];
	int			 e;

	if (r->committed)
		return (0);
	st->active_slot = r->slot;
	snprintf(st->active_version, sizeof st->active_version, "%s",
	    r->version);
	st->active_since = (int64_t)time(NULL);
	st->irreversible = r->irreversible;
	st->has_previous = 1;
	st->prev_slot = r->old_slot;
	snprintf(st->prev_version, sizeof st->prev_version, "%s",
	    r->old_version[0] != '\0' ? r->old_version : DEPLOY_UNKNOWN);
	st->prev_running = 1;
	st->prev_until = 0;
	st->degraded[0] = '\0';
	st->known = 1;
	r->switched_at = st->active_since;
	if ((e = deploy_save(r->d)) != 0)
		return (e);
	r->committed = 1;
	snprintf(ts, sizeof ts, "%lld", (long long)r->switched_at);
	deploy_set_datum(r, "switched", ts);
	return (0);
}

/* After a way back: the old slot active again, as before the cutover. */
static void
uncommit(struct drun *r)
{
	struct deploy_state	*st = &r->d->st;

	st->active_slot = r->old_slot;
	snprintf(st->active_version, sizeof st->active_version, "%s",
	    r->old_version);
	if (r->committed)
		st->active_since = r->old_since > 0 ? r->old_since :
		    (int64_t)time(NULL);
	st->irreversible = r->old_irreversible;
	st->has_previous = r->prev_version[0] != '\0';
	st->prev_slot = r->slot;
	snprintf(st->prev_version, sizeof st->prev_version, "%s",
	    r->prev_version);
	st->prev_running = 0;		/* stopped by stop_new */
	st->prev_until = 0;
	r->committed = 0;
}

/* --- the sequence ----------------------------------------------------------- */

/* The step's side effect, one loop iteration after its journal entry. */
static void
effect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct drun	*r = arg;

	(void)fd;
	(void)what;
	switch (r->step) {
	case DS_PREPARE:
		deploy_step_prepare(r);
		break;
	case DS_START:
		deploy_step_start(r);
		break;
	case DS_GATE:
		deploy_step_gate(r);
		break;
	case DS_MIGRATE:
		deploy_step_migrate(r);
		break;
	case DS_RENDER:
		deploy_step_render(r);
		break;
	case DS_SWITCH:
		deploy_step_switch(r);
		break;
	case DS_TEST:
		deploy_step_test(r);
		break;
	case DS_RELOAD:
		deploy_step_reload(r);
		break;
	case DS_CONFIRM:
		deploy_step_confirm(r);
		break;
	case DS_VERIFY:
		deploy_step_verify(r);
		break;
	case DS_WATCH:
		deploy_step_watch(r);
		break;
	case DS_DRAIN:
		deploy_step_drain(r);
		break;
	case DS_STOP_OLD:
		deploy_step_stop_old(r);
		break;
	case DS_RESTORE:
		deploy_step_restore(r);
		break;
	case DS_RELOAD_BACK:
		deploy_step_reload_back(r);
		break;
	case DS_CONFIRM_BACK:
		deploy_step_confirm_back(r);
		break;
	default:
		deploy_step_stop_new(r);
		break;
	}
}

static void
journal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct drun	*r = arg;

	(void)fd;
	(void)what;
	if (deploy_run_opsd(r)->stopping)
		return;		/* the next start takes it from here */
	if (r->next >= DS_NSTEPS) {
		deploy_run_end(r, !r->rolling_back ? OP_OK :
		    r->undo == UNDO_FULL && !r->keep_new ? OP_ROLLED_BACK :
		    OP_FAILED);
		return;
	}
	if (run_step(r, r->next) != 0)
		return;
	deploy_timer_in(r, &r->timer, 0, effect_cb);
}

/* The step after step that has work to do; DS_NSTEPS: the end. */
int
deploy_next_of(struct drun *r, int step)
{
	const struct deploy_conf	*c = deploy_run_conf(r);
	int				 n = step + 1;

	if (!r->rolling_back) {
		if (n == DS_START && r->reuse)
			n = DS_GATE;
		if (n == DS_MIGRATE && (c->migrate == NULL || r->mode ==
		    DEPLOY_MODE_ROLLBACK))
			n = DS_RENDER;
		if (n == DS_CONFIRM && c->proxy_pid_file == NULL)
			n = DS_VERIFY;
		if (n == DS_WATCH && c->watch == 0)
			n = DS_DRAIN;
		if (n == DS_DRAIN && c->rollback_window > 0)
			n = DS_NSTEPS;
		if (n == DS_RESTORE)
			n = DS_NSTEPS;
		return (n);
	}
	switch (r->undo) {
	case UNDO_PRE:
		return (step < DS_STOP_NEW ? DS_STOP_NEW : DS_NSTEPS);
	case UNDO_TEST:
		if (step < DS_RESTORE)
			return (DS_RESTORE);
		return (step < DS_STOP_NEW ? DS_STOP_NEW : DS_NSTEPS);
	default:
		if (step < DS_RESTORE)
			return (DS_RESTORE);
		if (n == DS_CONFIRM_BACK && c->proxy_pid_file == NULL)
			n = DS_STOP_NEW;
		if (n == DS_STOP_NEW && r->keep_new)
			n = DS_NSTEPS;
		return (n > DS_STOP_NEW ? DS_NSTEPS : n);
	}
}

void
deploy_run_goto(struct drun *r, int step)
{
	deploy_timer_off(&r->timer);
	r->next = step;
	deploy_timer_in(r, &r->timer, 0, journal_cb);
}

void
deploy_run_next(struct drun *r)
{
	deploy_run_goto(r, deploy_next_of(r, r->step));
}

/* --- failures --------------------------------------------------------------- */

static void
failed_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	deploy_run_end(arg, OP_FAILED);
}

/* The rendered include, when a failure comes before its rename. */
void
deploy_remove_render(struct drun *r)
{
	char	*dir, *base, *tmp, *path;

	deploy_include_paths(deploy_run_conf(r), &dir, &base, &tmp);
	xasprintf(&path, "%s/%s", dir, tmp);
	if (unlink(path) == -1 && errno != ENOENT)
		evt_log_about(LOG_WARNING, "deploy.render", "deploy",
		    deploy_run_conf(r)->name, "deploy %s: cannot remove %s: %s",
		    deploy_run_conf(r)->name, path, strerror(errno));
	free(path);
	free(dir);
	free(base);
	free(tmp);
}

static void
begin_undo(struct drun *r, enum undo u)
{
	r->rolling_back = 1;
	r->undo = u;
	deploy_set_datum(r, "undo", deploy_undo_names[u]);
	if (u == UNDO_FULL)
		deploy_notify(r,
		    "rolling back: nginx goes back to the old slot");
	deploy_run_goto(r, deploy_next_of(r, r->step < 0 ? DS_PREPARE - 1 :
	    r->step));
}

void
deploy_run_fail(struct drun *r, const char *fmt, ...)
{
	const struct deploy_conf	*c = deploy_run_conf(r);
	va_list				 ap;
	char				 buf[DEPLOY_ERROR_MAX];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	stop_work(r);
	if (r->rolling_back) {
		/* a way back that cannot go on: both slots stay */
		evt_log_about(LOG_ERR, "deploy.rollback", "deploy", c->name,
		    "deploy %s: %s", c->name, buf);
		r->keep_new = 1;
		snprintf(r->error + strlen(r->error), sizeof r->error -
		    strlen(r->error), "; then %s", buf);
		deploy_run_end(r, OP_FAILED);
		return;
	}
	snprintf(r->error, sizeof r->error, "%s", buf);
	snprintf(r->fail_step, sizeof r->fail_step, "%s",
	    deploy_step_name(r->step));
	deploy_notify(r, buf);
	if (r->step <= DS_PREPARE) {
		/* nothing started: nothing to undo (from the loop) */
		deploy_timer_in(r, &r->timer, 0, failed_cb);
		return;
	}
	if (r->step <= DS_RENDER) {
		if (r->step == DS_RENDER)
			deploy_remove_render(r);
		begin_undo(r, UNDO_PRE);
		return;
	}
	if (r->step <= DS_TEST) {
		begin_undo(r, UNDO_TEST);
		return;
	}
	if (r->step <= DS_CONFIRM) {
		/* traffic did not move, or nobody knows: always back */
		begin_undo(r, UNDO_FULL);
		return;
	}
	if ((r->aborted || c->auto_rollback) && (!r->irreversible ||
	    r->force)) {
		begin_undo(r, UNDO_FULL);
		return;
	}
	/*
	 * No way back by itself: the migration cannot be undone, or
	 * auto_rollback is off. Traffic stays where nginx sends it, both
	 * slots keep running, and the alert says so.
	 */
	r->keep_new = 1;
	if (!r->committed)
		deploy_run_commit(r);
	snprintf(r->d->st.degraded, sizeof r->d->st.degraded, "%s", buf);
	deploy_run_end(r, OP_FAILED);
}

/* --- the end ------------------------------------------------------------- */

void
deploy_run_end(struct drun *r, enum op_outcome outcome)
{
	struct deploy			*d = r->d;
	const struct deploy_conf	*c = d->conf;
	struct deploy_state		*st = &d->st;
	struct deploy_entry		 e;
	const char			*result;
	int				 alert, degraded;
	json_t				*fin;
	char				 cut[64];

	stop_work(r);
	result = outcome == OP_OK ? "ok" : outcome == OP_ROLLED_BACK ?
	    "rolled_back" : "failed";
	if (outcome == OP_ROLLED_BACK || (outcome == OP_FAILED &&
	    !r->keep_new))
		uncommit(r);
	else if (outcome == OP_FAILED && r->keep_new && st->degraded[0] ==
	    '\0') {
		/* the way back did not make it: nobody knows what serves */
		snprintf(st->degraded, sizeof st->degraded, "%s", r->error);
		st->prev_until = 0;
	}
	degraded = st->degraded[0] != '\0' && outcome != OP_OK;
	if (outcome == OP_OK) {
		st->degraded[0] = '\0';
		if (c->rollback_window == 0)
			st->prev_running = 0;
		else
			st->prev_until = r->switched_at + (int64_t)(
			    (c->drain > c->rollback_window ? c->drain :
			    c->rollback_window) / 1000);
	}
	memset(&e, 0, sizeof e);
	snprintf(e.op, sizeof e.op, "%s", r->op_id);
	snprintf(e.mode, sizeof e.mode, "%s", r->mode ==
	    DEPLOY_MODE_ROLLBACK ? "rollback" : "deploy");
	snprintf(e.version, sizeof e.version, "%s", r->version);
	snprintf(e.from_version, sizeof e.from_version, "%s",
	    r->old_version);
	e.slot = r->slot;
	snprintf(e.result, sizeof e.result, "%s", result);
	snprintf(e.step, sizeof e.step, "%s", outcome == OP_OK ? "" :
	    r->fail_step);
	e.started = r->started;
	e.duration_ms = elapsed_ms(r);
	e.cutover_ms = r->healthy_at > 0 && r->verified_at > r->healthy_at ?
	    (int64_t)((r->verified_at - r->healthy_at) / 1000) : -1;
	snprintf(e.error, sizeof e.error, "%s", outcome == OP_OK ? "" :
	    r->error);
	deploy_state_add(st, &e);
	if (outcome == OP_OK)
		st->n_ok++;
	else if (outcome == OP_ROLLED_BACK)
		st->n_rolled_back++;
	else
		st->n_failed++;
	st->pending_op[0] = '\0';
	st->known = 1;
	if (deploy_save(d) == 0)
		deploy_prev_remove(d->opsd, c->name);

	if (r->op != NULL) {
		if (outcome == OP_OK)
			op_finish(r->op, OP_OK, NULL);
		else
			op_finish(r->op, outcome, "%s", r->error);
		r->op = NULL;
	}
	cut[0] = '\0';
	if (e.cutover_ms >= 0)
		snprintf(cut, sizeof cut, ", healthy to verified in %lld ms",
		    (long long)e.cutover_ms);
	if (r->recovering)
		deploy_event(d, &EVT_DEPLOY_RECOVERED, r->op_id, e.step,
		    r->slot, r->version, 0, "deploy %s: the cutover to %s "
		    "interrupted by a restart was %s", c->name, r->version,
		    outcome == OP_OK ? "finished" : outcome == OP_ROLLED_BACK ?
		    "rolled back" : "undone");
	if (outcome == OP_OK) {
		alert = d->alert_firing ? 3 : 1;
		d->alert_firing = 0;
		deploy_event(d, &EVT_DEPLOY_SUCCEEDED, r->op_id, "", r->slot,
		    r->version, alert,
		    "deploy %s: version %s serves on slot %s "
		    "(was %s on %s) in %lld ms%s; roll back with: opsd-cli "
		    "deploy rollback %s", c->name, r->version,
		    deploy_slot_name(r->slot), r->old_version[0] ?
		    r->old_version : "unknown", deploy_slot_name(r->old_slot),
		    (long long)e.duration_ms, cut, c->name);
	} else if (outcome == OP_ROLLED_BACK) {
		alert = d->alert_firing ? 3 : 1;
		d->alert_firing = 0;
		deploy_event(d, &EVT_DEPLOY_ROLLED_BACK, r->op_id, e.step,
		    r->old_slot, r->old_version, alert, "deploy %s: version %s "
		    "on slot %s ROLLED BACK at %s: %s; version %s on slot %s "
		    "serves again", c->name, r->version,
		    deploy_slot_name(r->slot), e.step, r->error,
		    r->old_version[0] ? r->old_version : "unknown",
		    deploy_slot_name(r->old_slot));
	} else if (degraded) {
		d->alert_firing = c->nalert > 0;
		deploy_event(d, &EVT_DEPLOY_FAILED, r->op_id, e.step, r->slot,
		    r->version, 2, "deploy %s: version %s on slot %s FAILED at "
		    "%s and was NOT rolled back (%s): %s; both slots keep "
		    "running; roll back with: opsd-cli deploy rollback %s%s",
		    c->name, r->version, deploy_slot_name(r->slot), e.step,
		    r->irreversible ? "its migration cannot be undone" :
		    !c->auto_rollback ? "auto_rollback = no" :
		    "the way back failed", r->error, c->name,
		    r->irreversible ? " --force" : "");
	} else {
		deploy_event(d, &EVT_DEPLOY_FAILED, r->op_id, e.step, r->slot,
		    r->version, 1, "deploy %s: version %s on slot %s FAILED at "
		    "%s: %s; traffic stayed on slot %s (version %s)", c->name,
		    r->version, deploy_slot_name(r->slot), e.step, r->error,
		    deploy_slot_name(st->active_slot),
		    st->active_version[0] ? st->active_version : "unknown");
	}
	fin = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}",
	    "op", r->op_id, "deploy", c->name, "mode", e.mode, "result",
	    result, "version", r->version, "slot", deploy_slot_name(r->slot),
	    "active_slot", deploy_slot_name(st->active_slot),
	    "active_version", st->active_version, "duration_ms",
	    (json_int_t)e.duration_ms);
	if (fin == NULL)
		fatalx("deploy: cannot build deploy.finished");
	if (outcome != OP_OK) {
		json_object_set_new(fin, "error", json_string(r->error));
		json_object_set_new(fin, "step", json_string(e.step));
	}
	if (e.cutover_ms >= 0)
		json_object_set_new(fin, "cutover_ms",
		    json_integer(e.cutover_ms));
	if (st->degraded[0] != '\0')
		json_object_set_new(fin, "degraded",
		    json_string(st->degraded));
	if (st->has_previous) {
		char	*cmd;

		xasprintf(&cmd, "opsd-cli deploy rollback %s%s", c->name,
		    st->irreversible || degraded ? " --force" : "");
		json_object_set_new(fin, "rollback", json_pack("{s:s, s:s, "
		    "s:b, s:s}", "version", st->prev_version, "slot",
		    deploy_slot_name(st->prev_slot), "instant",
		    st->prev_running, "command", cmd));
		free(cmd);
	}
	rpc_followers_end(&r->followers, "deploy.finished", fin);
	d->run = NULL;
	run_free(r);
	deploy_retire_schedule(d);
}

static void
run_free(struct drun *r)
{
	stop_work(r);
	rpc_followers_end(&r->followers, NULL, NULL);
	free(r->prev);
	free(r);
}

/* --- starting ------------------------------------------------------------- */

struct drun *
deploy_run_new(struct deploy *d, int mode, int slot, const char *version)
{
	struct drun	*r;

	r = xcalloc(1, sizeof *r);
	r->d = d;
	r->mode = mode;
	r->step = -1;
	r->slot = slot;
	r->old_slot = deploy_other(slot);
	snprintf(r->version, sizeof r->version, "%s", version);
	r->started = (int64_t)time(NULL);
	r->t0 = now_usec();
	return (r);
}

static void
run_data(struct drun *r)
{
	deploy_set_datum(r, "mode", r->mode == DEPLOY_MODE_ROLLBACK ? "rollback"
	    :
	    "deploy");
	deploy_set_datum(r, "slot", deploy_slot_name(r->slot));
	deploy_set_datum(r, "version", r->version);
	if (r->old_version[0] != '\0')
		deploy_set_datum(r, "from_version", r->old_version);
	if (r->prev_version[0] != '\0')
		deploy_set_datum(r, "prev_version", r->prev_version);
	if (r->reuse)
		deploy_set_datum(r, "reuse", "yes");
}

int
deploy_run_start(struct deploy *d, int mode, const char *version, int force,
    struct rpc_pending *follower, char **id, char **err)
{
	struct opsd		*o = d->opsd;
	struct deploy_state	*st = &d->st;
	struct drun		*r;
	const char		*want;
	char			*msg = NULL;
	int			 e, slot;

	*id = NULL;
	*err = NULL;
	if (o->stopping) {
		xasprintf(err, "opsd is stopping");
		return (-ESHUTDOWN);
	}
	if (d->run != NULL) {
		xasprintf(err, "a %s of deploy %s is under way: op %s at step "
		    "%s%s (opsd-cli deploy status %s; opsd-cli deploy abort "
		    "%s)", d->run->mode == DEPLOY_MODE_ROLLBACK ? "rollback" :
		    "deploy", d->conf->name, d->run->op_id,
		    d->run->step >= 0 ? deploy_step_name(d->run->step) :
		    "starting",
		    d->run->recovering ? ", recovering after a restart" : "",
		    d->conf->name, d->conf->name);
		return (-EBUSY);
	}
	if (d->retire_child != NULL) {
		xasprintf(err, "deploy %s: the old slot %s is being stopped "
		    "(its rollback window ended); try again in a moment",
		    d->conf->name, deploy_slot_name(st->prev_slot));
		return (-EBUSY);
	}
	slot = deploy_other(st->active_slot);
	if (mode == DEPLOY_MODE_ROLLBACK) {
		if (!st->has_previous) {
			xasprintf(err, "deploy %s: nothing to roll back to (no "
			    "version served before %s on slot %s)",
			    d->conf->name, st->active_version[0] ?
			    st->active_version : "the current one",
			    deploy_slot_name(st->active_slot));
			return (-ENOENT);
		}
		if (st->irreversible && !force) {
			xasprintf(err, "deploy %s: version %s ran a migration "
			    "that cannot be undone; version %s may not work on "
			    "the database as it is now (force to roll back "
			    "anyway: opsd-cli deploy rollback %s --force)",
			    d->conf->name, st->active_version,
			    st->prev_version, d->conf->name);
			return (-EPERM);
		}
		if (strcmp(st->prev_version, DEPLOY_UNKNOWN) == 0 &&
		    !st->prev_running) {
			xasprintf(err, "deploy %s: the version that served on "
			    "slot %s before opsd's first deploy is not known "
			    "(active_version was not set), and that slot is "
			    "stopped: deploy a version instead", d->conf->name,
			    deploy_slot_name(st->prev_slot));
			return (-ENOENT);
		}
		want = st->prev_version;
	} else {
		if (strcmp(version, DEPLOY_UNKNOWN) == 0) {
			xasprintf(err,
			    "'%s' names a version opsd does not know; "
			    "it cannot be deployed", version);
			return (-EINVAL);
		}
		if (!deploy_version_ok(version)) {
			xasprintf(err, "'%s' is not a version opsd deploys (a "
			    "letter or digit, then letters, digits and . _ + "
			    "-, at most %d bytes)", version,
			    DEPLOY_VERSION_MAX);
			return (-EINVAL);
		}
		if (strcmp(version, st->active_version) == 0 &&
		    st->degraded[0] == '\0') {
			xasprintf(err,
			    "deploy %s: version %s already serves on "
			    "slot %s", d->conf->name, version,
			    deploy_slot_name(st->active_slot));
			return (-EINVAL);
		}
		want = version;
	}
	r = deploy_run_new(d, mode, slot, want);
	r->force = force;
	snprintf(r->old_version, sizeof r->old_version, "%s",
	    st->active_version);
	r->old_since = st->active_since;
	r->old_irreversible = st->irreversible;
	if (st->has_previous)
		snprintf(r->prev_version, sizeof r->prev_version, "%s",
		    st->prev_version);
	r->reuse = st->has_previous && st->prev_slot == slot &&
	    st->prev_running && strcmp(st->prev_version, want) == 0;
	if ((e = op_begin(o, &deploy_cutover_kind, d->conf->name, &r->op,
	    &msg)) != 0) {
		xasprintf(err, "%s", msg != NULL ? msg : strerror(-e));
		free(msg);
		run_free(r);
		return (e);
	}
	snprintf(r->op_id, sizeof r->op_id, "%s", op_id(r->op));
	op_listen(r->op, deploy_run_listener, r);
	/* the probes of this service hold their alerts and restarts */
	maint_deploy_begin(o, d->conf->name, r->op_id);
	run_data(r);
	if (follower != NULL)
		rpc_followers_add(&r->followers, follower);
	d->run = r;
	deploy_retire_schedule(d);	/* no retire while it runs */
	*id = xstrdup(r->op_id);
	deploy_event(d, &EVT_DEPLOY_STARTED, r->op_id, "", r->slot, r->version,
	    0, "deploy %s: %s %s on slot %s started (op %s; %s %s serves on "
	    "slot %s)", d->conf->name, mode == DEPLOY_MODE_ROLLBACK ?
	    "rollback to" : "version", r->version, deploy_slot_name(slot),
	    r->op_id, "version", st->active_version[0] ? st->active_version :
	    "unknown", deploy_slot_name(st->active_slot));
	/* from the loop: the caller answers before the first step */
	deploy_run_goto(r, DS_PREPARE);
	return (0);
}

int
deploy_run_abort(struct deploy *d, int force, char **id, char **err)
{
	struct drun	*r = d->run;

	*id = NULL;
	*err = NULL;
	if (r == NULL) {
		xasprintf(err, "deploy %s: no cutover is under way",
		    d->conf->name);
		return (-ENOENT);
	}
	if (r->rolling_back) {
		xasprintf(err, "deploy %s: op %s is already on its way back "
		    "(step %s)", d->conf->name, r->op_id,
		    deploy_step_name(r->step));
		return (-EBUSY);
	}
	if (r->step == DS_MIGRATE) {
		xasprintf(err, "deploy %s: the migration is running (op %s); a "
		    "migration stopped halfway is worse than one that ends: "
		    "abort once it has", d->conf->name, r->op_id);
		return (-EBUSY);
	}
	if (r->step == DS_STOP_OLD) {
		xasprintf(err,
		    "deploy %s: the old slot is being stopped (op %s): "
		    "there is nothing left to go back to; roll back once the "
		    "cutover has ended (it starts the old version again)",
		    d->conf->name, r->op_id);
		return (-EBUSY);
	}
	if (r->irreversible && r->step > DS_CONFIRM && !force) {
		xasprintf(err, "deploy %s: version %s ran a migration that "
		    "cannot be undone; abort --force rolls back anyway",
		    d->conf->name, r->version);
		return (-EPERM);
	}
	*id = xstrdup(r->op_id);
	r->aborted = 1;
	r->force = r->force || force;
	/* from the loop, like every step */
	stop_work(r);
	deploy_run_fail(r, "aborted by request at step %s", r->step >= 0 ?
	    deploy_step_name(r->step) : "start");
	return (0);
}

void
deploy_run_abandon(struct deploy *d)
{
	struct drun	*r = d->run;

	if (r == NULL)
		return;
	/* the op stays unfinished in the journal: the next start sees it */
	d->run = NULL;
	r->op = NULL;
	run_free(r);
}

json_t *
deploy_run_json(const struct deploy *d)
{
	const struct drun	*r = d->run;
	json_t			*j, *checks;
	unsigned int		 i;

	if (r == NULL)
		return (NULL);
	checks = json_array();
	for (i = 0; i < r->nkept; i++)
		json_array_append_new(checks, deploy_check_json(&r->kept[i]));
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:b, "
	    "s:o}", "op", r->op_id, "mode", r->mode == DEPLOY_MODE_ROLLBACK ?
	    "rollback" : "deploy", "step", deploy_step_name(r->step), "slot",
	    deploy_slot_name(r->slot), "version", r->version, "started",
	    (json_int_t)r->started, "elapsed_ms", (json_int_t)elapsed_ms(r),
	    "recovered", r->recovering != 0, "rolling_back",
	    r->rolling_back != 0, "irreversible", r->irreversible != 0,
	    "checks", checks);
	if (j == NULL)
		fatalx("deploy: cannot build the cutover's view");
	if (r->rolling_back)
		json_object_set_new(j, "error", json_string(r->error));
	return (j);
}

