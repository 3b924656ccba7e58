/*
 * A cutover's way back (restore, reload_back, confirm_back, stop_new), and
 * what the next start does with a cutover a crash interrupted.
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
#include "op.h"
#include "opsd-parse.h"
#include "rpc.h"
#include "state.h"
#include "util.h"

/* --- steps: back ---------------------------------------------------------- */

void
deploy_step_restore(struct drun *r)
{
	const struct deploy_conf	*c = deploy_run_conf(r);
	char				*dir, *base, *tmp, *path;
	int				 e = 0;

	deploy_include_paths(c, &dir, &base, &tmp);
	xasprintf(&path, "%s/%s", dir, tmp);
	unlink(path);		/* a render that was not renamed */
	free(path);
	if (!r->have_prev) {
		if ((e = deploy_prev_load(deploy_run_opsd(r), c->name, &r->prev,
		    &r->prevlen)) != 0) {
			deploy_run_fail(r,
			    "cannot read the saved include file from "
			    "%s/deploy: %s",
			    deploy_run_opsd(r)->conf->state_dir,
			    strerror(-e));
			goto out;
		}
		r->have_prev = 1;
		r->prev_existed = r->d->st.pending_existed;
	}
	if (r->prev_existed)
		e = state_write(dir, base, r->prev != NULL ? r->prev : "",
		    r->prevlen, 0644);
	else if (unlink(c->upstream_file) == -1 && errno != ENOENT)
		e = -errno;
	else
		e = deploy_fsync_dir(dir);
	if (e != 0) {
		deploy_run_fail(r, "cannot put %s back: %s", c->upstream_file,
		    strerror(-e));
		goto out;
	}
	deploy_run_next(r);
out:
	free(dir);
	free(base);
	free(tmp);
}

static void
reloaded_back(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok) {
		deploy_run_fail(r, "the reload back failed: %s", why);
		return;
	}
	deploy_run_next(r);
}

void
deploy_step_reload_back(struct drun *r)
{
	const struct deploy_conf	*c = deploy_run_conf(r);
	int				 e;

	if (c->proxy_pid_file != NULL && (e = deploy_workers_read(
	    c->proxy_pid_file, &r->before)) != 0) {
		deploy_run_fail(r,
		    "nginx's master could not be found from %s: %s",
		    c->proxy_pid_file, e == -ESRCH ? "no such process" :
		    strerror(-e));
		return;
	}
	deploy_run_cmd(r, "proxy_reload", c->proxy_reload, r->old_slot,
	    r->old_version, c->proxy_timeout, reloaded_back);
}

static void
confirm_back_poll(evutil_socket_t fd, short what, void *arg)
{
	struct drun			*r = arg;
	const struct deploy_conf	*c = deploy_run_conf(r);
	struct deploy_workers		 now;

	(void)fd;
	(void)what;
	/*
	 * The new workers run, and the old ones are gone too: an old
	 * worker accepts connections until it has read its QUIT, and sends
	 * them to the slot stop_new stops next (nginx logged a refused
	 * upstream a few ms after the reload). One still busy with a long
	 * request at the deadline does not stop the way back.
	 */
	if (deploy_workers_read(c->proxy_pid_file, &now) == 0 &&
	    deploy_workers_changed(&r->before, &now) &&
	    (deploy_workers_gone(&r->before, &now) ||
	    now_usec() >= r->deadline)) {
		deploy_timer_off(&r->tick);
		deploy_run_next(r);
		return;
	}
	if (now_usec() >= r->deadline) {
		deploy_timer_off(&r->tick);
		deploy_run_fail(r,
		    "nginx did not confirm the reload back within %llus",
		    (unsigned long long)(c->proxy_timeout / 1000));
		return;
	}
	deploy_timer_in(r, &r->tick, CONFIRM_POLL_MS, confirm_back_poll);
}

void
deploy_step_confirm_back(struct drun *r)
{
	r->deadline = now_usec() + deploy_run_conf(r)->proxy_timeout * 1000;
	confirm_back_poll(-1, 0, r);
}

static void
new_stopped(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok)
		evt_log_about(LOG_WARNING, "deploy.stop", "deploy",
		    deploy_run_conf(r)->name,
		    "deploy %s: stopping the new slot %s: "
		    "%s", deploy_run_conf(r)->name, deploy_slot_name(r->slot),
		    why);
	deploy_run_end(r, r->undo == UNDO_FULL ? OP_ROLLED_BACK : OP_FAILED);
}

void
deploy_step_stop_new(struct drun *r)
{
	deploy_run_cmd(r, "stop", deploy_run_conf(r)->stop, r->slot, r->version,
	    deploy_run_conf(r)->stop_timeout, new_stopped);
}

/* --- after a crash ---------------------------------------------------------- */

static int
datum_version(const struct op *op, const char *key, char *dst, size_t size)
{
	const char	*v = op_get(op, key);

	dst[0] = '\0';
	if (v == NULL)
		return (0);
	if (!deploy_version_ok(v) || strlen(v) >= size)
		return (-1);
	snprintf(dst, size, "%s", v);
	return (0);
}

/*
 * An unfinished cutover of a previous opsd. What the op says is checked
 * against its shape (a slot is blue or green, a version a version) and
 * the state; paths and commands come from the configuration.
 */
void
deploy_run_recover(struct opsd *o, struct op *op)
{
	struct deploy		*d = deploy_find(o, op_object(op));
	struct deploy_state	*st;
	struct drun		*r;
	unsigned int		 step = op_step_index(op);
	const char		*mode = op_get(op, "mode");
	const char		*undo = op_get(op, "undo");
	const char		*sw = op_get(op, "switched");
	char			 version[DEPLOY_VERSION_MAX + 1];
	int			 slot;
	unsigned int		 i;

	if (d == NULL) {
		op_finish(op, OP_ABANDONED,
		    "no [deploy %s] in the configuration "
		    "any more: nginx and both slots are as the cutover left "
		    "them", op_object(op));
		return;
	}
	if (d->run != NULL) {
		op_finish(op, OP_ABANDONED,
		    "another cutover of %s is under way",
		    d->conf->name);
		return;
	}
	st = &d->st;
	slot = deploy_slot_parse(op_get(op, "slot"));
	if (slot < 0 || datum_version(op, "version", version,
	    sizeof version) != 0 || version[0] == '\0' || (mode != NULL &&
	    strcmp(mode, "deploy") != 0 && strcmp(mode, "rollback") != 0)) {
		op_finish(op, OP_ABANDONED, "the op's slot or version is "
		    "malformed; nothing was touched (check nginx and both "
		    "slots by hand)");
		return;
	}
	r = deploy_run_new(d, mode != NULL && strcmp(mode, "rollback") == 0 ?
	    DEPLOY_MODE_ROLLBACK : DEPLOY_MODE_DEPLOY, slot, version);
	r->op = op;
	r->recovering = 1;
	snprintf(r->op_id, sizeof r->op_id, "%s", op_id(op));
	r->step = step == OP_NO_STEP ? -1 : (int)step;
	if (datum_version(op, "from_version", r->old_version,
	    sizeof r->old_version) != 0 || datum_version(op, "prev_version",
	    r->prev_version, sizeof r->prev_version) != 0)
		r->old_version[0] = r->prev_version[0] = '\0';
	r->reuse = op_get(op, "reuse") != NULL;
	r->irreversible = op_get(op, "irreversible") != NULL;
	r->committed = st->known && st->active_slot == slot &&
	    strcmp(st->active_version, version) == 0;
	if (r->committed) {
		r->switched_at = st->active_since;
		if (sw != NULL)
			r->switched_at = strtoll(sw, NULL, 10);
		if (r->switched_at <= 0 || r->switched_at > (int64_t)time(NULL))
			r->switched_at = (int64_t)time(NULL);
	}
	d->run = r;
	op_listen(op, deploy_run_listener, r);
	snprintf(r->error, sizeof r->error, "interrupted by a restart at step "
	    "%s", r->step >= 0 ? deploy_step_name(r->step) : "start");
	snprintf(r->fail_step, sizeof r->fail_step, "%s",
	    deploy_step_name(r->step));
	for (i = 1; undo != NULL && i < nitems(deploy_undo_names); i++)
		if (strcmp(undo, deploy_undo_names[i]) == 0)
			r->undo = (enum undo)i;
	if (r->undo != UNDO_NONE) {
		/* a way back was under way: again, from its start */
		r->rolling_back = 1;
		if (r->undo != UNDO_PRE && r->step >= DS_RESTORE && r->step <
		    DS_STOP_NEW)
			deploy_run_goto(r, DS_RESTORE);
		else if (r->step == DS_STOP_NEW || r->undo == UNDO_PRE)
			deploy_run_goto(r, DS_STOP_NEW);
		else
			deploy_run_goto(r, deploy_next_of(r, r->step));
		return;
	}
	if (r->step < 0 || r->step == DS_PREPARE) {
		snprintf(r->error, sizeof r->error, "interrupted by a restart "
		    "before slot %s was started; nothing changed",
		    deploy_slot_name(slot));
		deploy_run_end(r, OP_FAILED);
		return;
	}
	if (r->step <= DS_RENDER) {
		r->rolling_back = 1;
		r->undo = UNDO_PRE;
		deploy_set_datum(r, "undo", "pre");
		if (r->step == DS_RENDER)
			deploy_remove_render(r);	/* if it was written */
		deploy_run_goto(r, DS_STOP_NEW);
		return;
	}
	if (r->step <= DS_TEST) {
		if (strcmp(st->pending_op, r->op_id) != 0) {
			/* the saved include is not this cutover's */
			r->keep_new = 1;
			snprintf(r->error, sizeof r->error, "interrupted by a "
			    "restart at step %s, and the include file's saved "
			    "bytes are not this cutover's: %s left as it is, "
			    "both slots running", deploy_step_name(r->step),
			    d->conf->upstream_file);
			snprintf(st->degraded, sizeof st->degraded, "%s",
			    r->error);
			deploy_run_end(r, OP_FAILED);
			return;
		}
		r->rolling_back = 1;
		r->undo = UNDO_TEST;
		deploy_set_datum(r, "undo", "test");
		deploy_run_goto(r, DS_RESTORE);
		return;
	}
	/* the reload may have been sent: on from there */
	if (r->step <= DS_VERIFY)
		deploy_run_goto(r, DS_RELOAD);
	else if (r->step == DS_WATCH)
		deploy_run_goto(r, DS_WATCH);
	else {
		if (!r->committed)
			deploy_run_commit(r);
		deploy_run_goto(r, r->step == DS_STOP_OLD ? DS_STOP_OLD :
		    DS_DRAIN);
	}
}

