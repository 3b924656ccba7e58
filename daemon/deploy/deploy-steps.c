/*
 * A cutover's forward steps, prepare to stop_old (see deploy-run.c for the
 * overview): each ends in deploy_run_next() or deploy_run_fail().
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

/* --- steps: forward --------------------------------------------------------- */

static void
prepared(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok) {
		deploy_run_fail(r,
		    "the old version in slot %s could not be stopped: "
		    "%s", deploy_slot_name(r->slot), why);
		return;
	}
	deploy_run_next(r);
}

void
deploy_step_prepare(struct drun *r)
{
	struct deploy_state	*st = &r->d->st;

	if (!r->reuse && ((st->has_previous && st->prev_slot == r->slot &&
	    st->prev_running) || st->degraded[0] != '\0')) {
		/* a warm old version holds the slot: it goes first */
		st->prev_running = 0;
		deploy_save(r->d);
		deploy_run_cmd(r, "stop", deploy_run_conf(r)->stop, r->slot,
		    st->has_previous && st->prev_version[0] != '\0' ?
		    st->prev_version : "unknown",
		    deploy_run_conf(r)->stop_timeout,
		    prepared);
		return;
	}
	deploy_run_next(r);
}

static void
started(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok) {
		deploy_run_fail(r, "%s", why);
		return;
	}
	deploy_run_next(r);
}

void
deploy_step_start(struct drun *r)
{
	deploy_run_cmd(r, "start", deploy_run_conf(r)->start, r->slot,
	    r->version,
	    deploy_run_conf(r)->start_timeout, started);
}

/*
 * The slot's process, from pid_file: the first living pid seen is the
 * candidate; that it exits or another one takes its place fails the
 * check. A stale file (a dead pid) before that is a process not yet up.
 */
static int
pid_watch(struct drun *r, int slot)
{
	const struct deploy_conf	*c = deploy_run_conf(r);
	char				*path;
	pid_t				 pid;
	int				 e;

	if (c->pid_file == NULL)
		return (0);
	path = deploy_slot_expand(r, c->pid_file, slot, r->version);
	e = deploy_pid_file(path, &pid);
	if (r->pid == 0) {
		if (e == 0 && deploy_pid_alive(pid))
			r->pid = pid;
		free(path);
		return (0);
	}
	if (e != 0 || pid == r->pid) {
		if (!deploy_pid_alive(r->pid)) {
			deploy_run_fail(r,
			    "the process of slot %s (pid %d, from %s) "
			    "exited during the %s", deploy_slot_name(slot),
			    (int)r->pid, path, deploy_step_name(r->step));
			free(path);
			return (-1);
		}
		free(path);
		return (0);
	}
	deploy_run_fail(r,
	    "the process of slot %s restarted during the %s (pid %d, "
	    "then %d, in %s)", deploy_slot_name(slot),
	    deploy_step_name(r->step),
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
		deploy_describe_check(&r->kept[i], one, sizeof one);
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
		    i > 0 ? "; " : "", one);
	}
}

static void	gate_tick(evutil_socket_t, short, void *);

static struct deploy_check_spec
health_spec(struct drun *r, char **url)
{
	const struct deploy_conf	*c = deploy_run_conf(r);
	struct deploy_check_spec	 s;

	*url = deploy_slot_expand(r, c->health, r->slot, r->version);
	memset(&s, 0, sizeof s);
	s.url = *url;
	s.host = c->health_host;
	s.timeout_ms = c->health_timeout;
	s.version_header = c->version_header;
	s.want_version = deploy_want_version(r);
	return (s);
}

static void
gate_result(const struct deploy_check_result *res, void *arg)
{
	struct drun	*r = arg;
	unsigned int	 rise = r->reuse ? 1 : (unsigned int)
			    deploy_run_conf(r)->health_rise;
	char		 what[320], note[400];

	r->check = NULL;
	r->nchecks++;
	deploy_keep_check(r, res);
	if (res->ok)
		r->passes++;
	else
		r->passes = 0;
	deploy_describe_check(res, what, sizeof what);
	snprintf(note, sizeof note, "health check %u: %s (%u/%u in a row)",
	    r->nchecks, what, r->passes, rise);
	deploy_notify(r, note);
	evt_log_about(LOG_INFO, "deploy.health", "deploy",
	    deploy_run_conf(r)->name,
	    "deploy %s: slot %s %s", deploy_run_conf(r)->name,
	    deploy_slot_name(r->slot), note);
	if (r->passes >= rise) {
		deploy_timer_off(&r->tick);
		r->healthy_at = now_usec();
		deploy_run_next(r);
	}
}

static void
gate_tick(evutil_socket_t fd, short what, void *arg)
{
	struct drun			*r = arg;
	const struct deploy_conf	*c = deploy_run_conf(r);
	struct deploy_check_spec	 s;
	char				*url, why[256], checks[1400];
	uint64_t			 now = now_usec();

	(void)fd;
	(void)what;
	deploy_timer_in(r, &r->tick, c->health_interval, gate_tick);
	if (pid_watch(r, r->slot) != 0)
		return;
	if (now < r->gate_from)
		return;		/* health_start_delay */
	if (now >= r->deadline) {
		last_checks(r, checks, sizeof checks);
		deploy_run_fail(r,
		    "slot %s did not pass %llu health check%s in a row "
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
	r->check = deploy_check_start(deploy_run_opsd(r), &s, gate_result, r,
	    why,
	    sizeof why);
	free(url);
	if (r->check == NULL) {
		struct deploy_check_result res;

		memset(&res, 0, sizeof res);
		res.at = (int64_t)time(NULL);
		snprintf(res.error, sizeof res.error, "%s", why);
		deploy_keep_check(r, &res);
		r->passes = 0;
	}
}

void
deploy_step_gate(struct drun *r)
{
	const struct deploy_conf	*c = deploy_run_conf(r);
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
		deploy_notify(r, note);
	}
	/* pid checks during the delay too: a crash there fails at once */
	deploy_timer_in(r, &r->tick, delay > 0 && c->health_interval < delay ?
	    c->health_interval : delay, gate_tick);
}

static void
migrated(struct drun *r, int ok, const char *why, int status)
{
	if (!ok && status != 3) {
		deploy_run_fail(r, "%s", why);
		return;
	}
	if (status == 3 || !deploy_run_conf(r)->migrate_reversible) {
		r->irreversible = 1;
		deploy_set_datum(r, "irreversible", "yes");
		deploy_notify(r,
		    "the migration cannot be undone: failures after the "
		    "switch alert instead of rolling back");
	}
	deploy_run_next(r);
}

void
deploy_step_migrate(struct drun *r)
{
	deploy_run_cmd(r, "migrate", deploy_run_conf(r)->migrate, r->slot,
	    r->version,
	    deploy_run_conf(r)->migrate_timeout, migrated);
}

/* dirname and basename of upstream_file, and the name of the new one */
void
deploy_include_paths(const struct deploy_conf *c, char **dir, char **base,
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

void
deploy_step_render(struct drun *r)
{
	const struct deploy_conf	*c = deploy_run_conf(r);
	struct deploy_state		*st = &r->d->st;
	char				*dir, *base, *tmp, *text;
	int				 e;

	free(r->prev);
	r->prev = NULL;
	if ((e = include_read(c->upstream_file, &r->prev, &r->prevlen,
	    &r->prev_existed)) != 0) {
		deploy_run_fail(r, "cannot read upstream_file %s: %s",
		    c->upstream_file, strerror(-e));
		return;
	}
	/* the way back first: on disk before the new file exists */
	if ((e = deploy_prev_save(deploy_run_opsd(r), c->name, r->prev != NULL ?
	    r->prev : "", r->prevlen)) != 0) {
		deploy_run_fail(r, "cannot save the include file's bytes in "
		    "%s/deploy: %s", deploy_run_opsd(r)->conf->state_dir,
		    strerror(-e));
		return;
	}
	snprintf(st->pending_op, sizeof st->pending_op, "%s", r->op_id);
	st->pending_existed = r->prev_existed;
	if ((e = deploy_save(r->d)) != 0) {
		st->pending_op[0] = '\0';
		deploy_run_fail(r, "cannot record the cutover in %s/deploy: %s",
		    deploy_run_opsd(r)->conf->state_dir, strerror(-e));
		return;
	}
	r->have_prev = 1;
	text = deploy_slot_expand(r, c->template_text != NULL ? c->template_text
	    :
	    deploy_default_template, r->slot, r->version);
	deploy_include_paths(c, &dir, &base, &tmp);
	e = state_write(dir, tmp, text, strlen(text), 0644);
	free(text);
	if (e != 0)
		deploy_run_fail(r, "cannot write %s/%s: %s", dir, tmp,
		    strerror(-e));
	free(dir);
	free(base);
	free(tmp);
	if (e == 0)
		deploy_run_next(r);
}

int
deploy_fsync_dir(const char *dir)
{
	int	fd, e = 0;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return (-errno);
	if (fsync(fd) == -1)
		e = -errno;
	close(fd);
	return (e);
}

void
deploy_step_switch(struct drun *r)
{
	const struct deploy_conf	*c = deploy_run_conf(r);
	char				*dir, *base, *tmp, *from;
	int				 e = 0;

	deploy_include_paths(c, &dir, &base, &tmp);
	xasprintf(&from, "%s/%s", dir, tmp);
	if (rename(from, c->upstream_file) == -1)
		e = -errno;
	else
		e = deploy_fsync_dir(dir);
	if (e != 0)
		deploy_run_fail(r, "cannot rename %s to %s: %s", from,
		    c->upstream_file, strerror(-e));
	free(from);
	free(dir);
	free(base);
	free(tmp);
	if (e == 0)
		deploy_run_next(r);
}

static void
tested(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok) {
		deploy_run_fail(r, "proxy_test: %s", why);
		return;
	}
	deploy_run_next(r);
}

void
deploy_step_test(struct drun *r)
{
	deploy_run_cmd(r, "proxy_test", deploy_run_conf(r)->proxy_test, r->slot,
	    r->version,
	    deploy_run_conf(r)->proxy_timeout, tested);
}

/* nginx's workers before a reload, for confirm. 0, or -1 (failed). */
static int
note_workers(struct drun *r)
{
	const struct deploy_conf	*c = deploy_run_conf(r);
	int				 e;

	if (c->proxy_pid_file == NULL)
		return (0);
	if ((e = deploy_workers_read(c->proxy_pid_file, &r->before)) != 0) {
		deploy_run_fail(r,
		    "cannot find nginx's master from %s: %s (is nginx "
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
		deploy_run_fail(r, "proxy_reload: %s", why);
		return;
	}
	deploy_run_next(r);
}

void
deploy_step_reload(struct drun *r)
{
	if (note_workers(r) != 0)
		return;
	deploy_run_cmd(r, "proxy_reload", deploy_run_conf(r)->proxy_reload,
	    r->slot,
	    r->version, deploy_run_conf(r)->proxy_timeout, reloaded);
}

static void
confirm_poll(evutil_socket_t fd, short what, void *arg)
{
	struct drun			*r = arg;
	const struct deploy_conf	*c = deploy_run_conf(r);
	struct deploy_workers		 now;
	char				 note[128];

	(void)fd;
	(void)what;
	if (deploy_workers_read(c->proxy_pid_file, &now) == 0 &&
	    deploy_workers_changed(&r->before, &now)) {
		deploy_timer_off(&r->tick);
		snprintf(note, sizeof note,
		    "nginx (master %d) runs new workers",
		    (int)now.master);
		deploy_notify(r, note);
		deploy_run_next(r);
		return;
	}
	if (now_usec() >= r->deadline) {
		deploy_timer_off(&r->tick);
		deploy_run_fail(r,
		    "nginx (master %d) did not start new workers within "
		    "%llus of the reload: it did not take effect (nginx's error "
		    "log says why)", (int)r->before.master,
		    (unsigned long long)(c->proxy_timeout / 1000));
		return;
	}
	deploy_timer_in(r, &r->tick, CONFIRM_POLL_MS, confirm_poll);
}

void
deploy_step_confirm(struct drun *r)
{
	r->deadline = now_usec() + deploy_run_conf(r)->proxy_timeout * 1000;
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
	deploy_keep_check(r, res);
	r->nchecks++;
	r->passes = res->ok ? r->passes + 1 : 0;
	deploy_describe_check(res, what, sizeof what);
	snprintf(note, sizeof note, "verify through the proxy: %s", what);
	/* a failure is retried every 50 ms: tell the first and a few more */
	if (r->passes == VERIFY_PASSES || (!res->ok && (r->nchecks == 1 ||
	    strcmp(res->error, r->verify_last) != 0 || r->nchecks % 20 == 0)))
		deploy_notify(r, note);
	snprintf(r->verify_last, sizeof r->verify_last, "%s", res->ok ? "" :
	    res->error);
	if (r->passes >= VERIFY_PASSES) {
		r->verified_at = now_usec();
		if ((e = deploy_run_commit(r)) != 0) {
			deploy_run_fail(r,
			    "cannot record the new active slot in "
			    "%s/deploy: %s",
			    deploy_run_opsd(r)->conf->state_dir,
			    strerror(-e));
			return;
		}
		deploy_run_next(r);
		return;
	}
	if (!res->ok && now_usec() >= r->deadline) {
		deploy_run_fail(r,
		    "verify_url %s did not answer with version %s "
		    "through the proxy within verify_timeout: %s",
		    deploy_run_conf(r)->verify_url, r->version, res->error);
		return;
	}
	deploy_timer_in(r, &r->tick, res->ok ? VERIFY_SPACING_MS :
	    VERIFY_RETRY_MS,
	    verify_tick);
}

static void
verify_tick(evutil_socket_t fd, short what, void *arg)
{
	struct drun			*r = arg;
	const struct deploy_conf	*c = deploy_run_conf(r);
	struct deploy_check_spec	 s;
	char				*body = NULL, why[256];

	(void)fd;
	(void)what;
	memset(&s, 0, sizeof s);
	s.url = c->verify_url;
	s.host = c->verify_host;
	s.timeout_ms = c->health_timeout;
	s.version_header = c->version_header;
	s.want_version = deploy_want_version(r);
	if (c->verify_body != NULL)
		s.body = body = deploy_slot_expand(r, c->verify_body, r->slot,
		    r->version);
	r->check = deploy_check_start(deploy_run_opsd(r), &s, verify_result, r,
	    why,
	    sizeof why);
	free(body);
	if (r->check == NULL)
		deploy_run_fail(r, "verify: %s", why);
}

void
deploy_step_verify(struct drun *r)
{
	int	e;

	if (deploy_run_conf(r)->verify_url == NULL) {
		r->verified_at = now_usec();
		if ((e = deploy_run_commit(r)) != 0) {
			deploy_run_fail(r,
			    "cannot record the new active slot in "
			    "%s/deploy: %s",
			    deploy_run_opsd(r)->conf->state_dir,
			    strerror(-e));
			return;
		}
		deploy_run_next(r);
		return;
	}
	r->passes = r->nchecks = 0;
	r->deadline = now_usec() + deploy_run_conf(r)->verify_timeout * 1000;
	verify_tick(-1, 0, r);
}

static void	watch_tick(evutil_socket_t, short, void *);

static void
watch_result(const struct deploy_check_result *res, void *arg)
{
	struct drun	*r = arg;
	char		 what[320], note[400], checks[1400];

	r->check = NULL;
	deploy_keep_check(r, res);
	r->fails = res->ok ? 0 : r->fails + 1;
	if (res->ok)
		return;
	deploy_describe_check(res, what, sizeof what);
	snprintf(note, sizeof note, "watch: health check %s (%u in a row)",
	    what, r->fails);
	deploy_notify(r, note);
	evt_log_about(LOG_WARNING, "deploy.health", "deploy",
	    deploy_run_conf(r)->name, "deploy %s: slot %s %s",
	    deploy_run_conf(r)->name,
	    deploy_slot_name(r->slot), note);
	if (r->fails >= deploy_run_conf(r)->health_fall) {
		last_checks(r, checks, sizeof checks);
		deploy_run_fail(r,
		    "slot %s failed %u health checks in a row during the "
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
		deploy_timer_off(&r->tick);
		deploy_run_next(r);
		return;
	}
	deploy_timer_in(r, &r->tick, deploy_run_conf(r)->health_interval,
	    watch_tick);
	if (pid_watch(r, r->slot) != 0 || r->check != NULL)
		return;
	s = health_spec(r, &url);
	r->check = deploy_check_start(deploy_run_opsd(r), &s, watch_result, r,
	    why,
	    sizeof why);
	free(url);
}

void
deploy_step_watch(struct drun *r)
{
	r->fails = 0;
	r->deadline = now_usec() + deploy_run_conf(r)->watch * 1000;
	deploy_timer_in(r, &r->tick, deploy_run_conf(r)->health_interval,
	    watch_tick);
}

static void
drained(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	deploy_run_next(arg);
}

void
deploy_step_drain(struct drun *r)
{
	int64_t		now = (int64_t)now_realtime_usec() / 1000;
	int64_t		until = r->switched_at * 1000 +
			    (int64_t)deploy_run_conf(r)->drain;

	deploy_timer_in(r, &r->tick, until > now ? (uint64_t)(until - now) : 0,
	    drained);
}

static void
old_stopped(struct drun *r, int ok, const char *why, int status)
{
	(void)status;
	if (!ok)
		evt_log_about(LOG_WARNING, "deploy.stop", "deploy",
		    deploy_run_conf(r)->name, "deploy %s: the old slot %s: %s",
		    deploy_run_conf(r)->name, deploy_slot_name(r->old_slot),
		    why);
	else {
		r->d->st.prev_running = 0;
		deploy_save(r->d);
	}
	deploy_run_next(r);
}

void
deploy_step_stop_old(struct drun *r)
{
	deploy_run_cmd(r, "stop", deploy_run_conf(r)->stop, r->old_slot,
	    r->old_version[0] != '\0' ? r->old_version : "unknown",
	    deploy_run_conf(r)->stop_timeout, old_stopped);
}

