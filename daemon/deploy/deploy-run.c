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
#include "evt.h"
#include "maint.h"
#include "op.h"
#include "opsd-parse.h"
#include "rpc.h"
#include "state.h"
#include "util.h"

enum drun_step {
	DS_PREPARE,
	DS_START,
	DS_GATE,
	DS_MIGRATE,
	DS_RENDER,
	DS_SWITCH,
	DS_TEST,
	DS_RELOAD,
	DS_CONFIRM,
	DS_VERIFY,
	DS_WATCH,
	DS_DRAIN,
	DS_STOP_OLD,
	DS_RESTORE,
	DS_RELOAD_BACK,
	DS_CONFIRM_BACK,
	DS_STOP_NEW,
	DS_NSTEPS
};

static const char *const drun_step_names[] = {
	"prepare", "start", "gate", "migrate", "render", "switch", "test",
	"reload", "confirm", "verify", "watch", "drain", "stop_old",
	"restore", "reload_back", "confirm_back", "stop_new"
};

const struct op_kind deploy_cutover_kind = {
	"deploy.cutover", drun_step_names, DS_NSTEPS, deploy_run_recover, NULL,
	1	/* service_lock: a probe's restart waits for the cutover */
};

/* How a failure is undone (op data "undo", for a restart meanwhile). */
enum undo {
	UNDO_NONE,
	UNDO_PRE,	/* stop the new slot: traffic never moved */
	UNDO_TEST,	/* include back, no reload, stop the new slot */
	UNDO_FULL,	/* include back, reload, confirm, stop the new slot */
};
static const char *const undo_names[] = { "", "pre", "test", "full" };

#define VERIFY_PASSES		3	/* fresh connections in a row */
#define VERIFY_SPACING_MS	50
#define VERIFY_RETRY_MS		50
#define CONFIRM_POLL_MS		20

struct drun {
	struct deploy		*d;
	struct op		*op;
	char			 op_id[DEPLOY_OP_ID_MAX];
	int			 mode;
	int			 step;		/* -1 before the first */
	int			 next;
	int			 slot;		/* the new one */
	int			 old_slot;
	char			 version[DEPLOY_VERSION_MAX + 1];
	char			 old_version[DEPLOY_VERSION_MAX + 1];
	char			 prev_version[DEPLOY_VERSION_MAX + 1];
	int64_t			 old_since;
	int			 old_irreversible;
	int			 force;
	int			 reuse;		/* the slot runs it already */
	int			 recovering;
	int			 rolling_back;
	enum undo		 undo;
	int			 committed;	/* the state names it active */
	int			 irreversible;
	int			 aborted;
	int			 keep_new;	/* nginx unsure: keep both */
	char			*prev;		/* the include before */
	size_t			 prevlen;
	int			 prev_existed;
	int			 have_prev;
	struct child		*child;
	struct deploy_check	*check;
	struct event		*timer;		/* the next step */
	struct event		*tick;		/* checks, polls */
	uint64_t		 gate_from;	/* monotonic usec */
	uint64_t		 deadline;
	unsigned int		 passes;
	unsigned int		 fails;
	unsigned int		 nchecks;
	pid_t			 pid;		/* the slot's process */
	struct deploy_workers	 before;
	struct deploy_check_result kept[DEPLOY_CHECKS_KEPT];
	unsigned int		 nkept;
	char			 error[DEPLOY_ERROR_MAX];
	char			 fail_step[32];
	char			 verify_last[256];
	int64_t			 started;	/* unix */
	uint64_t		 t0;		/* monotonic usec */
	uint64_t		 healthy_at;
	uint64_t		 verified_at;
	int64_t			 switched_at;	/* unix */
	struct rpc_pending	**followers;
	unsigned int		 nfollowers;
};

static void	run_next(struct drun *);
static void	run_goto(struct drun *, int step);
static void	run_fail(struct drun *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	run_end(struct drun *, enum op_outcome);
static void	run_free(struct drun *);

/* --- small helpers -------------------------------------------------------- */

static struct opsd *
run_opsd(struct drun *r)
{
	return (r->d->opsd);
}

static const struct deploy_conf *
run_conf(struct drun *r)
{
	return (r->d->conf);
}

static const char *
step_name(int step)
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

static void
timer_in(struct drun *r, struct event **ev, uint64_t ms, event_callback_fn fn)
{
	struct timeval	tv;

	if (*ev != NULL)
		event_free(*ev);
	*ev = evtimer_new(run_opsd(r)->base, fn, r);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(*ev, &tv);
}

static void
timer_off(struct event **ev)
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
	timer_off(&r->tick);
	timer_off(&r->timer);
}

static int64_t
elapsed_ms(const struct drun *r)
{
	return ((int64_t)((now_usec() - r->t0) / 1000));
}

static void
notify(struct drun *r, const char *detail)
{
	json_t		*p;
	unsigned int	 i;

	for (i = 0; i < r->nfollowers; i++) {
		p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "op",
		    r->op_id, "deploy", run_conf(r)->name, "mode", r->mode ==
		    DEPLOY_MODE_ROLLBACK ? "rollback" : "deploy", "step",
		    step_name(r->step), "slot", deploy_slot_name(r->slot),
		    "version", r->version, "elapsed_ms",
		    (json_int_t)elapsed_ms(r));
		if (p == NULL)
			fatalx("deploy: cannot build a progress notification");
		if (detail != NULL)
			json_object_set_new(p, "detail",
			    json_string(detail));
		rpc_pending_notify(r->followers[i], "deploy.progress", p);
	}
}

static void
run_listener(struct op *op, void *arg)
{
	struct drun	*r = arg;

	if (op_state(op) != OP_RUNNING)
		return;
	deploy_event(r->d, &EVT_DEPLOY_STEP, r->op_id, step_name(r->step),
	    r->slot, r->version, 0, "deploy %s: %s (%s %s on %s)",
	    run_conf(r)->name, step_name(r->step), r->mode ==
	    DEPLOY_MODE_ROLLBACK ? "rollback to" : "version", r->version,
	    deploy_slot_name(r->slot));
	notify(r, NULL);
}

static void
keep_check(struct drun *r, const struct deploy_check_result *res)
{
	if (r->nkept == DEPLOY_CHECKS_KEPT) {
		memmove(&r->kept[0], &r->kept[1], sizeof r->kept[0] *
		    (DEPLOY_CHECKS_KEPT - 1));
		r->nkept--;
	}
	r->kept[r->nkept++] = *res;
}

static void
describe_check(const struct deploy_check_result *res, char *buf, size_t len)
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
static const char *
want_version(const struct drun *r)
{
	return (strcmp(r->version, DEPLOY_UNKNOWN) == 0 ? NULL : r->version);
}

/* The template of a slot's health URL (or pid file) with its values. */
static char *
slot_expand(struct drun *r, const char *tmpl, int slot, const char *version)
{
	struct deploy_vars	v;

	v.deploy = run_conf(r)->name;
	v.slot = deploy_slot_name(slot);
	v.version = version;
	v.port = deploy_port(run_conf(r), slot);
	return (deploy_expand(tmpl, &v));
}

/* Makes step current in the journal; -1 (and the cutover failed) if not. */
static int
run_step(struct drun *r, int step)
{
	int	e;

	r->step = step;
	if ((e = op_step(r->op, (unsigned int)step)) != 0) {
		run_fail(r, "cannot record step %s in the op journal: %s",
		    step_name(step), strerror(-e));
		return (-1);
	}
	return (0);
}

static void
set_datum(struct drun *r, const char *key, const char *value)
{
	int	e;

	if (r->op != NULL && (e = op_set(r->op, key, value)) != 0)
		evt_log_about(LOG_WARNING, "deploy.journal", "deploy",
		    run_conf(r)->name, "deploy %s: cannot record %s in the op "
		    "journal: %s", run_conf(r)->name, key, strerror(-e));
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
static void
run_cmd(struct drun *r, const char *what, const char *tmpl, int slot,
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
static int
commit(struct drun *r)
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
	set_datum(r, "switched", ts);
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

/* --- steps: forward --------------------------------------------------------- */

static void
prepared(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok) {
		run_fail(r, "the old version in slot %s could not be stopped: "
		    "%s", deploy_slot_name(r->slot), why);
		return;
	}
	run_next(r);
}

static void
step_prepare(struct drun *r)
{
	struct deploy_state	*st = &r->d->st;

	if (!r->reuse && ((st->has_previous && st->prev_slot == r->slot &&
	    st->prev_running) || st->degraded[0] != '\0')) {
		/* a warm old version holds the slot: it goes first */
		st->prev_running = 0;
		deploy_save(r->d);
		run_cmd(r, "stop", run_conf(r)->stop, r->slot,
		    st->has_previous && st->prev_version[0] != '\0' ?
		    st->prev_version : "unknown", run_conf(r)->stop_timeout,
		    prepared);
		return;
	}
	run_next(r);
}

static void
started(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok) {
		run_fail(r, "%s", why);
		return;
	}
	run_next(r);
}

static void
step_start(struct drun *r)
{
	run_cmd(r, "start", run_conf(r)->start, r->slot, r->version,
	    run_conf(r)->start_timeout, started);
}

/*
 * The slot's process, from pid_file: the first living pid seen is the
 * candidate; that it exits or another one takes its place fails the
 * check. A stale file (a dead pid) before that is a process not yet up.
 */
static int
pid_watch(struct drun *r, int slot)
{
	const struct deploy_conf	*c = run_conf(r);
	char				*path;
	pid_t				 pid;
	int				 e;

	if (c->pid_file == NULL)
		return (0);
	path = slot_expand(r, c->pid_file, slot, r->version);
	e = deploy_pid_file(path, &pid);
	if (r->pid == 0) {
		if (e == 0 && deploy_pid_alive(pid))
			r->pid = pid;
		free(path);
		return (0);
	}
	if (e != 0 || pid == r->pid) {
		if (!deploy_pid_alive(r->pid)) {
			run_fail(r, "the process of slot %s (pid %d, from %s) "
			    "exited during the %s", deploy_slot_name(slot),
			    (int)r->pid, path, step_name(r->step));
			free(path);
			return (-1);
		}
		free(path);
		return (0);
	}
	run_fail(r, "the process of slot %s restarted during the %s (pid %d, "
	    "then %d, in %s)", deploy_slot_name(slot), step_name(r->step),
	    (int)r->pid, (int)pid, path);
	free(path);
	return (-1);
}

static void
last_checks(struct drun *r, char *buf, size_t len)
{
	char		 one[320];
	size_t		 off = 0;
	unsigned int	 i;

	buf[0] = '\0';
	for (i = 0; i < r->nkept && off < len; i++) {
		describe_check(&r->kept[i], one, sizeof one);
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
		    i > 0 ? "; " : "", one);
	}
}

static void	gate_tick(evutil_socket_t, short, void *);

static struct deploy_check_spec
health_spec(struct drun *r, char **url)
{
	const struct deploy_conf	*c = run_conf(r);
	struct deploy_check_spec	 s;

	*url = slot_expand(r, c->health, r->slot, r->version);
	memset(&s, 0, sizeof s);
	s.url = *url;
	s.host = c->health_host;
	s.timeout_ms = c->health_timeout;
	s.version_header = c->version_header;
	s.want_version = want_version(r);
	return (s);
}

static void
gate_result(const struct deploy_check_result *res, void *arg)
{
	struct drun	*r = arg;
	unsigned int	 rise = r->reuse ? 1 : (unsigned int)
			    run_conf(r)->health_rise;
	char		 what[320], note[400];

	r->check = NULL;
	r->nchecks++;
	keep_check(r, res);
	if (res->ok)
		r->passes++;
	else
		r->passes = 0;
	describe_check(res, what, sizeof what);
	snprintf(note, sizeof note, "health check %u: %s (%u/%u in a row)",
	    r->nchecks, what, r->passes, rise);
	notify(r, note);
	evt_log_about(LOG_INFO, "deploy.health", "deploy", run_conf(r)->name,
	    "deploy %s: slot %s %s", run_conf(r)->name,
	    deploy_slot_name(r->slot), note);
	if (r->passes >= rise) {
		timer_off(&r->tick);
		r->healthy_at = now_usec();
		run_next(r);
	}
}

static void
gate_tick(evutil_socket_t fd, short what, void *arg)
{
	struct drun			*r = arg;
	const struct deploy_conf	*c = run_conf(r);
	struct deploy_check_spec	 s;
	char				*url, why[256], checks[1400];
	uint64_t			 now = now_usec();

	(void)fd;
	(void)what;
	timer_in(r, &r->tick, c->health_interval, gate_tick);
	if (pid_watch(r, r->slot) != 0)
		return;
	if (now < r->gate_from)
		return;		/* health_start_delay */
	if (now >= r->deadline) {
		last_checks(r, checks, sizeof checks);
		run_fail(r, "slot %s did not pass %llu health check%s in a row "
		    "within health_deadline (%llus after the start delay); "
		    "last checks: %s", deploy_slot_name(r->slot),
		    (unsigned long long)(r->reuse ? 1 : c->health_rise),
		    (r->reuse ? 1 : c->health_rise) == 1 ? "" : "s",
		    (unsigned long long)(c->health_deadline / 1000),
		    checks[0] ? checks : "none answered");
		return;
	}
	if (r->check != NULL)
		return;		/* the last one is still out */
	s = health_spec(r, &url);
	r->check = deploy_check_start(run_opsd(r), &s, gate_result, r, why,
	    sizeof why);
	free(url);
	if (r->check == NULL) {
		struct deploy_check_result res;

		memset(&res, 0, sizeof res);
		res.at = (int64_t)time(NULL);
		snprintf(res.error, sizeof res.error, "%s", why);
		keep_check(r, &res);
		r->passes = 0;
	}
}

static void
step_gate(struct drun *r)
{
	const struct deploy_conf	*c = run_conf(r);
	uint64_t			 delay = r->reuse ? 0 :
					    c->health_start_delay;

	r->passes = r->nchecks = 0;
	r->nkept = 0;
	r->gate_from = now_usec() + delay * 1000;
	r->deadline = r->gate_from + c->health_deadline * 1000;
	if (delay > 0) {
		char	note[96], d[32];

		format_duration(delay, d, sizeof d);
		snprintf(note, sizeof note, "waiting health_start_delay %s", d);
		notify(r, note);
	}
	/* pid checks during the delay too: a crash there fails at once */
	timer_in(r, &r->tick, delay > 0 && c->health_interval < delay ?
	    c->health_interval : delay, gate_tick);
}

static void
migrated(struct drun *r, int ok, const char *why, int status)
{
	if (!ok && status != 3) {
		run_fail(r, "%s", why);
		return;
	}
	if (status == 3 || !run_conf(r)->migrate_reversible) {
		r->irreversible = 1;
		set_datum(r, "irreversible", "yes");
		notify(r, "the migration cannot be undone: failures after the "
		    "switch alert instead of rolling back");
	}
	run_next(r);
}

static void
step_migrate(struct drun *r)
{
	run_cmd(r, "migrate", run_conf(r)->migrate, r->slot, r->version,
	    run_conf(r)->migrate_timeout, migrated);
}

/* dirname and basename of upstream_file, and the name of the new one */
static void
include_paths(const struct deploy_conf *c, char **dir, char **base,
    char **tmp)
{
	const char	*slash = strrchr(c->upstream_file, '/');

	*dir = slash == c->upstream_file ? xstrdup("/") :
	    xstrndup(c->upstream_file, (size_t)(slash - c->upstream_file));
	*base = xstrdup(slash + 1);
	xasprintf(tmp, "%s.opsd-new", *base);
}

/* The include file's bytes now: 0 (existed set), or -errno. */
static int
include_read(const char *path, char **buf, size_t *len, int *existed)
{
	struct stat	 st;
	ssize_t		 n;
	int		 fd, e;

	*buf = NULL;
	*len = 0;
	*existed = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return (errno == ENOENT ? 0 : -errno);
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > DEPLOY_INCLUDE_MAX) {
		e = fstat(fd, &st) == -1 ? -errno : !S_ISREG(st.st_mode) ?
		    -EINVAL : -EFBIG;
		close(fd);
		return (e);
	}
	*buf = xmalloc((size_t)st.st_size + 1);
	n = read(fd, *buf, (size_t)st.st_size);
	e = n == -1 ? -errno : n != st.st_size ? -EIO : 0;
	close(fd);
	if (e != 0) {
		free(*buf);
		*buf = NULL;
		return (e);
	}
	*len = (size_t)n;
	*existed = 1;
	return (0);
}

static void
step_render(struct drun *r)
{
	const struct deploy_conf	*c = run_conf(r);
	struct deploy_state		*st = &r->d->st;
	char				*dir, *base, *tmp, *text;
	int				 e;

	free(r->prev);
	r->prev = NULL;
	if ((e = include_read(c->upstream_file, &r->prev, &r->prevlen,
	    &r->prev_existed)) != 0) {
		run_fail(r, "cannot read upstream_file %s: %s",
		    c->upstream_file, strerror(-e));
		return;
	}
	/* the way back first: on disk before the new file exists */
	if ((e = deploy_prev_save(run_opsd(r), c->name, r->prev != NULL ?
	    r->prev : "", r->prevlen)) != 0) {
		run_fail(r, "cannot save the include file's bytes in "
		    "%s/deploy: %s", run_opsd(r)->conf->state_dir,
		    strerror(-e));
		return;
	}
	snprintf(st->pending_op, sizeof st->pending_op, "%s", r->op_id);
	st->pending_existed = r->prev_existed;
	if ((e = deploy_save(r->d)) != 0) {
		st->pending_op[0] = '\0';
		run_fail(r, "cannot record the cutover in %s/deploy: %s",
		    run_opsd(r)->conf->state_dir, strerror(-e));
		return;
	}
	r->have_prev = 1;
	text = slot_expand(r, c->template_text != NULL ? c->template_text :
	    deploy_default_template, r->slot, r->version);
	include_paths(c, &dir, &base, &tmp);
	e = state_write(dir, tmp, text, strlen(text), 0644);
	free(text);
	if (e != 0)
		run_fail(r, "cannot write %s/%s: %s", dir, tmp, strerror(-e));
	free(dir);
	free(base);
	free(tmp);
	if (e == 0)
		run_next(r);
}

static int
fsync_dir(const char *dir)
{
	int	fd, e = 0;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return (-errno);
	if (fsync(fd) == -1)
		e = -errno;
	close(fd);
	return (e);
}

static void
step_switch(struct drun *r)
{
	const struct deploy_conf	*c = run_conf(r);
	char				*dir, *base, *tmp, *from;
	int				 e = 0;

	include_paths(c, &dir, &base, &tmp);
	xasprintf(&from, "%s/%s", dir, tmp);
	if (rename(from, c->upstream_file) == -1)
		e = -errno;
	else
		e = fsync_dir(dir);
	if (e != 0)
		run_fail(r, "cannot rename %s to %s: %s", from,
		    c->upstream_file, strerror(-e));
	free(from);
	free(dir);
	free(base);
	free(tmp);
	if (e == 0)
		run_next(r);
}

static void
tested(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok) {
		run_fail(r, "proxy_test: %s", why);
		return;
	}
	run_next(r);
}

static void
step_test(struct drun *r)
{
	run_cmd(r, "proxy_test", run_conf(r)->proxy_test, r->slot, r->version,
	    run_conf(r)->proxy_timeout, tested);
}

/* nginx's workers before a reload, for confirm. 0, or -1 (failed). */
static int
note_workers(struct drun *r)
{
	const struct deploy_conf	*c = run_conf(r);
	int				 e;

	if (c->proxy_pid_file == NULL)
		return (0);
	if ((e = deploy_workers_read(c->proxy_pid_file, &r->before)) != 0) {
		run_fail(r, "cannot find nginx's master from %s: %s (is nginx "
		    "running? set proxy_pid_file)", c->proxy_pid_file,
		    e == -ESRCH ? "no such process" : strerror(-e));
		return (-1);
	}
	return (0);
}

static void
reloaded(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok) {
		run_fail(r, "proxy_reload: %s", why);
		return;
	}
	run_next(r);
}

static void
step_reload(struct drun *r)
{
	if (note_workers(r) != 0)
		return;
	run_cmd(r, "proxy_reload", run_conf(r)->proxy_reload, r->slot,
	    r->version, run_conf(r)->proxy_timeout, reloaded);
}

static void
confirm_poll(evutil_socket_t fd, short what, void *arg)
{
	struct drun			*r = arg;
	const struct deploy_conf	*c = run_conf(r);
	struct deploy_workers		 now;
	char				 note[128];

	(void)fd;
	(void)what;
	if (deploy_workers_read(c->proxy_pid_file, &now) == 0 &&
	    deploy_workers_changed(&r->before, &now)) {
		timer_off(&r->tick);
		snprintf(note, sizeof note, "nginx (master %d) runs new workers",
		    (int)now.master);
		notify(r, note);
		run_next(r);
		return;
	}
	if (now_usec() >= r->deadline) {
		timer_off(&r->tick);
		run_fail(r, "nginx (master %d) did not start new workers within "
		    "%llus of the reload: it did not take effect (nginx's error "
		    "log says why)", (int)r->before.master,
		    (unsigned long long)(c->proxy_timeout / 1000));
		return;
	}
	timer_in(r, &r->tick, CONFIRM_POLL_MS, confirm_poll);
}

static void
step_confirm(struct drun *r)
{
	r->deadline = now_usec() + run_conf(r)->proxy_timeout * 1000;
	confirm_poll(-1, 0, r);
}

static void	verify_tick(evutil_socket_t, short, void *);

static void
verify_result(const struct deploy_check_result *res, void *arg)
{
	struct drun	*r = arg;
	char		 what[320], note[400];
	int		 e;

	r->check = NULL;
	keep_check(r, res);
	r->nchecks++;
	r->passes = res->ok ? r->passes + 1 : 0;
	describe_check(res, what, sizeof what);
	snprintf(note, sizeof note, "verify through the proxy: %s", what);
	/* a failure is retried every 50 ms: tell the first and a few more */
	if (r->passes == VERIFY_PASSES || (!res->ok && (r->nchecks == 1 ||
	    strcmp(res->error, r->verify_last) != 0 || r->nchecks % 20 == 0)))
		notify(r, note);
	snprintf(r->verify_last, sizeof r->verify_last, "%s", res->ok ? "" :
	    res->error);
	if (r->passes >= VERIFY_PASSES) {
		r->verified_at = now_usec();
		if ((e = commit(r)) != 0) {
			run_fail(r, "cannot record the new active slot in "
			    "%s/deploy: %s", run_opsd(r)->conf->state_dir,
			    strerror(-e));
			return;
		}
		run_next(r);
		return;
	}
	if (!res->ok && now_usec() >= r->deadline) {
		run_fail(r, "verify_url %s did not answer with version %s "
		    "through the proxy within verify_timeout: %s",
		    run_conf(r)->verify_url, r->version, res->error);
		return;
	}
	timer_in(r, &r->tick, res->ok ? VERIFY_SPACING_MS : VERIFY_RETRY_MS,
	    verify_tick);
}

static void
verify_tick(evutil_socket_t fd, short what, void *arg)
{
	struct drun			*r = arg;
	const struct deploy_conf	*c = run_conf(r);
	struct deploy_check_spec	 s;
	char				*body = NULL, why[256];

	(void)fd;
	(void)what;
	memset(&s, 0, sizeof s);
	s.url = c->verify_url;
	s.host = c->verify_host;
	s.timeout_ms = c->health_timeout;
	s.version_header = c->version_header;
	s.want_version = want_version(r);
	if (c->verify_body != NULL)
		s.body = body = slot_expand(r, c->verify_body, r->slot,
		    r->version);
	r->check = deploy_check_start(run_opsd(r), &s, verify_result, r, why,
	    sizeof why);
	free(body);
	if (r->check == NULL)
		run_fail(r, "verify: %s", why);
}

static void
step_verify(struct drun *r)
{
	int	e;

	if (run_conf(r)->verify_url == NULL) {
		r->verified_at = now_usec();
		if ((e = commit(r)) != 0) {
			run_fail(r, "cannot record the new active slot in "
			    "%s/deploy: %s", run_opsd(r)->conf->state_dir,
			    strerror(-e));
			return;
		}
		run_next(r);
		return;
	}
	r->passes = r->nchecks = 0;
	r->deadline = now_usec() + run_conf(r)->verify_timeout * 1000;
	verify_tick(-1, 0, r);
}

static void	watch_tick(evutil_socket_t, short, void *);

static void
watch_result(const struct deploy_check_result *res, void *arg)
{
	struct drun	*r = arg;
	char		 what[320], note[400], checks[1400];

	r->check = NULL;
	keep_check(r, res);
	r->fails = res->ok ? 0 : r->fails + 1;
	if (res->ok)
		return;
	describe_check(res, what, sizeof what);
	snprintf(note, sizeof note, "watch: health check %s (%u in a row)",
	    what, r->fails);
	notify(r, note);
	evt_log_about(LOG_WARNING, "deploy.health", "deploy",
	    run_conf(r)->name, "deploy %s: slot %s %s", run_conf(r)->name,
	    deploy_slot_name(r->slot), note);
	if (r->fails >= run_conf(r)->health_fall) {
		last_checks(r, checks, sizeof checks);
		run_fail(r, "slot %s failed %u health checks in a row during the "
		    "watch after the switch: %s", deploy_slot_name(r->slot),
		    r->fails, checks);
	}
}

static void
watch_tick(evutil_socket_t fd, short what, void *arg)
{
	struct drun			*r = arg;
	struct deploy_check_spec	 s;
	char				*url, why[256];

	(void)fd;
	(void)what;
	if (now_usec() >= r->deadline && r->check == NULL) {
		timer_off(&r->tick);
		run_next(r);
		return;
	}
	timer_in(r, &r->tick, run_conf(r)->health_interval, watch_tick);
	if (pid_watch(r, r->slot) != 0 || r->check != NULL)
		return;
	s = health_spec(r, &url);
	r->check = deploy_check_start(run_opsd(r), &s, watch_result, r, why,
	    sizeof why);
	free(url);
}

static void
step_watch(struct drun *r)
{
	r->fails = 0;
	r->deadline = now_usec() + run_conf(r)->watch * 1000;
	timer_in(r, &r->tick, run_conf(r)->health_interval, watch_tick);
}

static void
drained(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_next(arg);
}

static void
step_drain(struct drun *r)
{
	int64_t		now = (int64_t)now_realtime_usec() / 1000;
	int64_t		until = r->switched_at * 1000 +
			    (int64_t)run_conf(r)->drain;

	timer_in(r, &r->tick, until > now ? (uint64_t)(until - now) : 0,
	    drained);
}

static void
old_stopped(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok)
		evt_log_about(LOG_WARNING, "deploy.stop", "deploy",
		    run_conf(r)->name, "deploy %s: the old slot %s: %s",
		    run_conf(r)->name, deploy_slot_name(r->old_slot), why);
	else {
		r->d->st.prev_running = 0;
		deploy_save(r->d);
	}
	run_next(r);
}

static void
step_stop_old(struct drun *r)
{
	run_cmd(r, "stop", run_conf(r)->stop, r->old_slot,
	    r->old_version[0] != '\0' ? r->old_version : "unknown",
	    run_conf(r)->stop_timeout, old_stopped);
}

/* --- steps: back ---------------------------------------------------------- */

static void
step_restore(struct drun *r)
{
	const struct deploy_conf	*c = run_conf(r);
	char				*dir, *base, *tmp, *path;
	int				 e = 0;

	include_paths(c, &dir, &base, &tmp);
	xasprintf(&path, "%s/%s", dir, tmp);
	unlink(path);		/* a render that was not renamed */
	free(path);
	if (!r->have_prev) {
		if ((e = deploy_prev_load(run_opsd(r), c->name, &r->prev,
		    &r->prevlen)) != 0) {
			run_fail(r, "cannot read the saved include file from "
			    "%s/deploy: %s", run_opsd(r)->conf->state_dir,
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
		e = fsync_dir(dir);
	if (e != 0) {
		run_fail(r, "cannot put %s back: %s", c->upstream_file,
		    strerror(-e));
		goto out;
	}
	run_next(r);
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
		run_fail(r, "the reload back failed: %s", why);
		return;
	}
	run_next(r);
}

static void
step_reload_back(struct drun *r)
{
	const struct deploy_conf	*c = run_conf(r);
	int				 e;

	if (c->proxy_pid_file != NULL && (e = deploy_workers_read(
	    c->proxy_pid_file, &r->before)) != 0) {
		run_fail(r, "nginx's master could not be found from %s: %s",
		    c->proxy_pid_file, e == -ESRCH ? "no such process" :
		    strerror(-e));
		return;
	}
	run_cmd(r, "proxy_reload", c->proxy_reload, r->old_slot,
	    r->old_version, c->proxy_timeout, reloaded_back);
}

static void
confirm_back_poll(evutil_socket_t fd, short what, void *arg)
{
	struct drun			*r = arg;
	const struct deploy_conf	*c = run_conf(r);
	struct deploy_workers		 now;

	(void)fd;
	(void)what;
	if (deploy_workers_read(c->proxy_pid_file, &now) == 0 &&
	    deploy_workers_changed(&r->before, &now)) {
		timer_off(&r->tick);
		run_next(r);
		return;
	}
	if (now_usec() >= r->deadline) {
		timer_off(&r->tick);
		run_fail(r, "nginx did not confirm the reload back within %llus",
		    (unsigned long long)(c->proxy_timeout / 1000));
		return;
	}
	timer_in(r, &r->tick, CONFIRM_POLL_MS, confirm_back_poll);
}

static void
step_confirm_back(struct drun *r)
{
	r->deadline = now_usec() + run_conf(r)->proxy_timeout * 1000;
	confirm_back_poll(-1, 0, r);
}

static void
new_stopped(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok)
		evt_log_about(LOG_WARNING, "deploy.stop", "deploy",
		    run_conf(r)->name, "deploy %s: stopping the new slot %s: "
		    "%s", run_conf(r)->name, deploy_slot_name(r->slot), why);
	run_end(r, r->undo == UNDO_FULL ? OP_ROLLED_BACK : OP_FAILED);
}

static void
step_stop_new(struct drun *r)
{
	run_cmd(r, "stop", run_conf(r)->stop, r->slot, r->version,
	    run_conf(r)->stop_timeout, new_stopped);
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
		step_prepare(r);
		break;
	case DS_START:
		step_start(r);
		break;
	case DS_GATE:
		step_gate(r);
		break;
	case DS_MIGRATE:
		step_migrate(r);
		break;
	case DS_RENDER:
		step_render(r);
		break;
	case DS_SWITCH:
		step_switch(r);
		break;
	case DS_TEST:
		step_test(r);
		break;
	case DS_RELOAD:
		step_reload(r);
		break;
	case DS_CONFIRM:
		step_confirm(r);
		break;
	case DS_VERIFY:
		step_verify(r);
		break;
	case DS_WATCH:
		step_watch(r);
		break;
	case DS_DRAIN:
		step_drain(r);
		break;
	case DS_STOP_OLD:
		step_stop_old(r);
		break;
	case DS_RESTORE:
		step_restore(r);
		break;
	case DS_RELOAD_BACK:
		step_reload_back(r);
		break;
	case DS_CONFIRM_BACK:
		step_confirm_back(r);
		break;
	default:
		step_stop_new(r);
		break;
	}
}

static void
journal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct drun	*r = arg;

	(void)fd;
	(void)what;
	if (run_opsd(r)->stopping)
		return;		/* the next start takes it from here */
	if (r->next >= DS_NSTEPS) {
		run_end(r, !r->rolling_back ? OP_OK : r->undo == UNDO_FULL &&
		    !r->keep_new ? OP_ROLLED_BACK : OP_FAILED);
		return;
	}
	if (run_step(r, r->next) != 0)
		return;
	timer_in(r, &r->timer, 0, effect_cb);
}

/* The step after step that has work to do; DS_NSTEPS: the end. */
static int
next_of(struct drun *r, int step)
{
	const struct deploy_conf	*c = run_conf(r);
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

static void
run_goto(struct drun *r, int step)
{
	timer_off(&r->timer);
	r->next = step;
	timer_in(r, &r->timer, 0, journal_cb);
}

static void
run_next(struct drun *r)
{
	run_goto(r, next_of(r, r->step));
}

/* --- failures --------------------------------------------------------------- */

static void
failed_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_end(arg, OP_FAILED);
}

/* The rendered include, when a failure comes before its rename. */
static void
remove_render(struct drun *r)
{
	char	*dir, *base, *tmp, *path;

	include_paths(run_conf(r), &dir, &base, &tmp);
	xasprintf(&path, "%s/%s", dir, tmp);
	if (unlink(path) == -1 && errno != ENOENT)
		evt_log_about(LOG_WARNING, "deploy.render", "deploy",
		    run_conf(r)->name, "deploy %s: cannot remove %s: %s",
		    run_conf(r)->name, path, strerror(errno));
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
	set_datum(r, "undo", undo_names[u]);
	if (u == UNDO_FULL)
		notify(r, "rolling back: nginx goes back to the old slot");
	run_goto(r, next_of(r, r->step < 0 ? DS_PREPARE - 1 : r->step));
}

static void
run_fail(struct drun *r, const char *fmt, ...)
{
	const struct deploy_conf	*c = run_conf(r);
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
		run_end(r, OP_FAILED);
		return;
	}
	snprintf(r->error, sizeof r->error, "%s", buf);
	snprintf(r->fail_step, sizeof r->fail_step, "%s", step_name(r->step));
	notify(r, buf);
	if (r->step <= DS_PREPARE) {
		/* nothing started: nothing to undo (from the loop) */
		timer_in(r, &r->timer, 0, failed_cb);
		return;
	}
	if (r->step <= DS_RENDER) {
		if (r->step == DS_RENDER)
			remove_render(r);
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
		commit(r);
	snprintf(r->d->st.degraded, sizeof r->d->st.degraded, "%s", buf);
	run_end(r, OP_FAILED);
}

/* --- the end ------------------------------------------------------------- */

static void
run_end(struct drun *r, enum op_outcome outcome)
{
	struct deploy			*d = r->d;
	const struct deploy_conf	*c = d->conf;
	struct deploy_state		*st = &d->st;
	struct deploy_entry		 e;
	const char			*result;
	int				 alert, degraded;
	json_t				*fin;
	unsigned int			 i;
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
		    r->version, alert, "deploy %s: version %s serves on slot %s "
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
	for (i = 0; i < r->nfollowers; i++) {
		rpc_pending_notify(r->followers[i], "deploy.finished",
		    json_incref(fin));
		rpc_pending_release(r->followers[i]);
	}
	r->nfollowers = 0;
	json_decref(fin);
	d->run = NULL;
	run_free(r);
	deploy_retire_schedule(d);
}

static void
run_free(struct drun *r)
{
	unsigned int	i;

	stop_work(r);
	for (i = 0; i < r->nfollowers; i++)
		rpc_pending_release(r->followers[i]);
	free(r->followers);
	free(r->prev);
	free(r);
}

/* --- starting ------------------------------------------------------------- */

static struct drun *
run_new(struct deploy *d, int mode, int slot, const char *version)
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
	set_datum(r, "mode", r->mode == DEPLOY_MODE_ROLLBACK ? "rollback" :
	    "deploy");
	set_datum(r, "slot", deploy_slot_name(r->slot));
	set_datum(r, "version", r->version);
	if (r->old_version[0] != '\0')
		set_datum(r, "from_version", r->old_version);
	if (r->prev_version[0] != '\0')
		set_datum(r, "prev_version", r->prev_version);
	if (r->reuse)
		set_datum(r, "reuse", "yes");
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
		    d->run->step >= 0 ? step_name(d->run->step) : "starting",
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
			xasprintf(err, "'%s' names a version opsd does not know; "
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
			xasprintf(err, "deploy %s: version %s already serves on "
			    "slot %s", d->conf->name, version,
			    deploy_slot_name(st->active_slot));
			return (-EINVAL);
		}
		want = version;
	}
	r = run_new(d, mode, slot, want);
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
	op_listen(r->op, run_listener, r);
	/* the probes of this service hold their alerts and restarts */
	maint_deploy_begin(o, d->conf->name, r->op_id);
	run_data(r);
	if (follower != NULL) {
		r->followers = xcalloc(1, sizeof *r->followers);
		r->followers[r->nfollowers++] = follower;
	}
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
	run_goto(r, DS_PREPARE);
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
		    "(step %s)", d->conf->name, r->op_id, step_name(r->step));
		return (-EBUSY);
	}
	if (r->step == DS_MIGRATE) {
		xasprintf(err, "deploy %s: the migration is running (op %s); a "
		    "migration stopped halfway is worse than one that ends: "
		    "abort once it has", d->conf->name, r->op_id);
		return (-EBUSY);
	}
	if (r->step == DS_STOP_OLD) {
		xasprintf(err, "deploy %s: the old slot is being stopped (op %s): "
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
	run_fail(r, "aborted by request at step %s", r->step >= 0 ?
	    step_name(r->step) : "start");
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
	    "rollback" : "deploy", "step", step_name(r->step), "slot",
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
		op_finish(op, OP_ABANDONED, "no [deploy %s] in the configuration "
		    "any more: nginx and both slots are as the cutover left "
		    "them", op_object(op));
		return;
	}
	if (d->run != NULL) {
		op_finish(op, OP_ABANDONED, "another cutover of %s is under way",
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
	r = run_new(d, mode != NULL && strcmp(mode, "rollback") == 0 ?
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
	op_listen(op, run_listener, r);
	snprintf(r->error, sizeof r->error, "interrupted by a restart at step "
	    "%s", r->step >= 0 ? step_name(r->step) : "start");
	snprintf(r->fail_step, sizeof r->fail_step, "%s", step_name(r->step));
	for (i = 1; undo != NULL && i < nitems(undo_names); i++)
		if (strcmp(undo, undo_names[i]) == 0)
			r->undo = (enum undo)i;
	if (r->undo != UNDO_NONE) {
		/* a way back was under way: again, from its start */
		r->rolling_back = 1;
		if (r->undo != UNDO_PRE && r->step >= DS_RESTORE && r->step <
		    DS_STOP_NEW)
			run_goto(r, DS_RESTORE);
		else if (r->step == DS_STOP_NEW || r->undo == UNDO_PRE)
			run_goto(r, DS_STOP_NEW);
		else
			run_goto(r, next_of(r, r->step));
		return;
	}
	if (r->step < 0 || r->step == DS_PREPARE) {
		snprintf(r->error, sizeof r->error, "interrupted by a restart "
		    "before slot %s was started; nothing changed",
		    deploy_slot_name(slot));
		run_end(r, OP_FAILED);
		return;
	}
	if (r->step <= DS_RENDER) {
		r->rolling_back = 1;
		r->undo = UNDO_PRE;
		set_datum(r, "undo", "pre");
		if (r->step == DS_RENDER)
			remove_render(r);	/* if it was written */
		run_goto(r, DS_STOP_NEW);
		return;
	}
	if (r->step <= DS_TEST) {
		if (strcmp(st->pending_op, r->op_id) != 0) {
			/* the saved include is not this cutover's */
			r->keep_new = 1;
			snprintf(r->error, sizeof r->error, "interrupted by a "
			    "restart at step %s, and the include file's saved "
			    "bytes are not this cutover's: %s left as it is, "
			    "both slots running", step_name(r->step),
			    d->conf->upstream_file);
			snprintf(st->degraded, sizeof st->degraded, "%s",
			    r->error);
			run_end(r, OP_FAILED);
			return;
		}
		r->rolling_back = 1;
		r->undo = UNDO_TEST;
		set_datum(r, "undo", "test");
		run_goto(r, DS_RESTORE);
		return;
	}
	/* the reload may have been sent: on from there */
	if (r->step <= DS_VERIFY)
		run_goto(r, DS_RELOAD);
	else if (r->step == DS_WATCH)
		run_goto(r, DS_WATCH);
	else {
		if (!r->committed)
			commit(r);
		run_goto(r, r->step == DS_STOP_OLD ? DS_STOP_OLD : DS_DRAIN);
	}
}
