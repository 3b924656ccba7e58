/*
 * A rotation: an op of kind secret.rotate on the secret's name, with the
 * steps AWS Secrets Manager taught everyone (create, set, test, finish)
 * and the ones a host needs around them:
 *
 *   generate      the new value, stored as version N+1 in the state
 *   set_password  (postgres) ALTER ROLE ... PASSWORD with a SCRAM
 *                 verifier computed here: the plaintext never reaches
 *                 the server, so no statement log can hold it
 *   test_login    (postgres) a new connection as the role, new password
 *   write_files   the published files, owner and mode before the bytes
 *   on_rotate     the commands that make consumers read the new value
 *   verify        verify_probe passes a run started after the change
 *   promote       NAME.json names version N+1: the commit point
 *
 * Versions are files of their own (state_dir/secrets/NAME.vN), so every
 * step can be repeated and nothing is renamed: a crash before promote
 * leaves version N current in NAME.json and N+1 pending beside it.
 *
 * A failure rolls back what was done: the files are published again from
 * version N, the role's password is set back, on_rotate runs again so the
 * consumers take the old value back. After a crash (op recovery), a
 * rotation stopped before write_files is rolled back, one stopped at or
 * after it is finished; a database that cannot be reached for that is
 * tried again every 10 s.
 */
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
#include <openssl/crypto.h>

#include "child.h"
#include "daemon.h"
#include "db.h"
#include "evt.h"
#include "jobs.h"
#include "op.h"
#include "pg.h"
#include "probe.h"
#include "rpc.h"
#include "secret-int.h"
#include "secret-rot-int.h"
#include "util.h"

const char *const secret_rot_step_names[ROT_NSTEPS] = {
	"generate", "set_password", "test_login", "write_files", "on_rotate",
	"verify", "promote"
};

const struct op_kind secret_rotate_kind = {
	"secret.rotate", secret_rot_step_names, ROT_NSTEPS,
	    secret_rotate_resume, NULL,
	1	/* service_lock: a probe's restart waits for the rotation */
};

static void	rot_free(struct rot *);

/* --- small helpers -------------------------------------------------------- */

struct opsd *
secret_rot_opsd(struct rot *r)
{
	return (r->s->opsd);
}

int
secret_rot_is_pg(const struct rot *r)
{
	return (r->s->conf->kind == SECRET_POSTGRES);
}

void
secret_version_label(int64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "v%lld", (long long)v);
}

int
secret_rotate_recovering(const struct secret *s)
{
	return (s->rot != NULL && (s->rot->recovering || s->rot->db_retry));
}

/* Loads version N and the kept previous versions from the state. */
int
secret_rot_load_values(struct rot *r)
{
	struct secret	*s = r->s;
	char		 label[32], buf[SECRET_VALUE_MAX];
	unsigned int	 i, keep;

	r->have_current = 0;
	if (s->meta.version > 0) {
		secret_version_label(s->meta.version, label, sizeof label);
		if (secret_value_read(s->opsd, s->conf->name, label,
		    r->current, sizeof r->current) != 0)
			return (-ENOENT);
		r->have_current = 1;
	}
	keep = (unsigned int)s->conf->keep_previous;
	if (keep < 1)
		keep = 1;	/* an alternating role's last password */
	for (i = 0; i < s->meta.nhist && r->nprev < keep; i++) {
		secret_version_label(s->meta.hist[i].version, label,
		    sizeof label);
		if (secret_value_read(s->opsd, s->conf->name, label, buf,
		    sizeof buf) != 0)
			break;
		r->prev[r->nprev++] = xstrdup(buf);
	}
	OPENSSL_cleanse(buf, sizeof buf);
	return (0);
}

const char *
secret_other_role(const struct secret *s)
{
	const struct secret_conf *c = s->conf;

	if (c->strategy != SECRET_ALTERNATING)
		return (c->role_a);
	if (s->meta.role[0] == '\0')
		return (c->role_a);	/* the first value */
	return (strcmp(s->meta.role, c->role_a) == 0 ? c->role_b : c->role_a);
}

static json_t *
rot_progress(struct rot *r)
{
	return (json_pack("{s:s, s:s, s:s}", "op", r->op_id, "secret",
	    r->s->conf->name, "step", r->step >= 0 ?
	    secret_rot_step_names[r->step] :
	    ""));
}

void
secret_rot_listener(struct op *op, void *arg)
{
	struct rot	*r = arg;

	if (op_state(op) != OP_RUNNING)
		return;
	rpc_followers_notify(&r->followers, "secret.progress",
	    rot_progress(r));
}

/* Makes step current in the journal; -1 (and the rotation failed) if not. */
static int
rot_step(struct rot *r, int step)
{
	int	e;

	r->step = step;
	if ((e = op_step(r->op, (unsigned int)step)) != 0) {
		secret_rot_fail(r,
		    "cannot record step %s in the op journal: %s",
		    secret_rot_step_names[step], strerror(-e));
		return (-1);
	}
	return (0);
}

void
secret_rot_timer_in(struct rot *r, uint64_t ms, event_callback_fn fn)
{
	struct timeval	tv;

	if (r->timer != NULL)
		event_free(r->timer);
	r->timer = evtimer_new(secret_rot_opsd(r)->base, fn, r);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);
}

/* Closes the session; an ALTER ROLE on it is dropped (no callback). */
void
secret_rot_close_session(struct rot *r)
{
	if (r->q != NULL) {
		pg_cancel(r->q);
		r->q = NULL;
	}
	if (r->alter != NULL) {
		secret_alter_drop(r->alter);
		r->alter = NULL;
	}
	if (r->lq != NULL) {
		pg_cancel(r->lq);
		r->lq = NULL;
	}
}

/* --- forward -------------------------------------------------------------- */

static void
step_generate(struct rot *r)
{
	char	label[32];
	int	e;

	if ((e = secret_generate(r->s->conf->bytes, r->s->conf->encoding,
	    r->pending, sizeof r->pending)) != 0) {
		secret_rot_fail(r, "cannot generate a value: %s", e == -EIO ?
		    "the random generator failed" : strerror(-e));
		return;
	}
	secret_version_label(r->version, label, sizeof label);
	if ((e = secret_value_write(secret_rot_opsd(r), r->s->conf->name, label,
	    r->pending)) != 0) {
		secret_rot_fail(r,
		    "cannot store the pending version in %s/secrets: "
		    "%s", secret_rot_opsd(r)->conf->state_dir, strerror(-e));
		return;
	}
	secret_rot_next(r);
}

static void
set_password_done(struct rot *r, const char *error)
{
	if (error != NULL) {
		if (r->alter_unknown) {
			/*
			 * The old password is set back, on a session of its
			 * own: behind the first statement if it still waits.
			 */
			secret_rot_close_session(r);
			r->db_changed = r->changed = 1;
			secret_rot_fail(r,
			    "cannot set the password of role %s: %s "
			    "(the statement may still take effect: the old "
			    "password is set back)", r->target, error);
			return;
		}
		secret_rot_fail(r, "cannot set the password of role %s: %s",
		    r->target,
		    error);
		return;
	}
	r->db_changed = r->changed = 1;
	secret_rot_next(r);
}

static void
step_set_password(struct rot *r)
{
	secret_roles_compare(r->s);
	secret_rot_alter(r, r->target, r->pending, 1, set_password_done);
}

static void
login_done(struct pgq *q, const PGresult *res, const char *error, void *arg)
{
	struct rot	*r = arg;

	(void)q;
	(void)res;
	r->lq = NULL;
	if (error != NULL) {
		secret_rot_fail(r,
		    "cannot log in as %s with the new password: %s",
		    r->target, error);
		return;
	}
	secret_rot_next(r);
}

static void
step_test_login(struct rot *r)
{
	struct pg_spec	 spec;
	char		*ci, *full;

	/*
	 * Its own connection: the admin session stays open to the end, so
	 * the fleet lock it holds covers the whole rotation.
	 */
	ci = db_conninfo(r->s->db, 0, NULL);
	/* later keywords win: the role being rotated, not the conninfo's */
	xasprintf(&full, "%s user=%s", ci, r->target);
	memset(&spec, 0, sizeof spec);
	spec.conninfo = full;
	spec.password = r->pending;
	spec.query = "SELECT 1";
	spec.timeout_ms = r->s->conf->timeout;
	spec.dns = secret_rot_opsd(r)->dns;
	r->lq = pg_query(secret_rot_opsd(r)->base, &spec, login_done, r);
	free(ci);
	free(full);
}

static void
step_write_files(struct rot *r)
{
	char	 err[SECRET_ERROR_MAX];
	char	*prev[SECRET_KEEP_MAX + 1];
	unsigned int i, n = 0;

	/* after the promotion: the current value is the newest previous */
	if (r->have_current)
		prev[n++] = r->current;
	for (i = 0; i < r->nprev && n < SECRET_KEEP_MAX; i++)
		prev[n++] = r->prev[i];
	r->files_written = r->changed = 1;
	if (secret_publish(r->s, r->pending, secret_rot_is_pg(r) ? r->target :
	    NULL,
	    prev, n, err, sizeof err) != 0) {
		secret_rot_fail(r, "%s", err);
		return;
	}
	secret_rot_next(r);
}

static void
command_done(struct child *c, const struct child_result *res, void *arg)
{
	struct rot	*r = arg;
	char		 why[SECRET_ERROR_MAX];
	const char	*cmd = r->s->conf->on_rotate[r->cmd];

	(void)c;
	r->child = NULL;
	if (child_failed(res, why, sizeof why)) {
		if (!r->rolling_back) {
			secret_rot_fail(r, "on_rotate '%s' %s", cmd, why);
			return;
		}
		evt_log_about(LOG_WARNING, "secret.on_rotate", "secret",
		    r->s->conf->name, "secret %s: on_rotate '%s' %s while "
		    "rolling back", r->s->conf->name, cmd, why);
	}
	r->cmd++;
	secret_rot_command(r, r->rolling_back);
}

void
secret_rot_command(struct rot *r, int back)
{
	struct secret_conf	*c = r->s->conf;
	struct child_spec	 spec;
	const char		*argv[4];
	char			*env[4], fp[SECRETFILE_FP_LEN];
	const char		*value = back ? r->current : r->pending;
	int			 e;

	if (r->cmd >= c->non_rotate) {
		if (back)
			secret_rb_next(r);
		else
			secret_rot_next(r);
		return;
	}
	r->on_rotate_ran = 1;
	secretfile_fingerprint(value, strlen(value), fp);
	xasprintf(&env[0], "OPSD_SECRET=%s", c->name);
	xasprintf(&env[1], "OPSD_SECRET_VERSION=%lld", (long long)(back ?
	    r->s->meta.version : r->version));
	xasprintf(&env[2], "OPSD_SECRET_FINGERPRINT=%s", fp);
	env[3] = NULL;
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = c->on_rotate[r->cmd];
	argv[3] = NULL;
	memset(&spec, 0, sizeof spec);
	spec.argv = argv;
	spec.env = (const char *const *)env;
	spec.timeout_ms = c->on_rotate_timeout;
	spec.merge_stderr = 0;
	r->child = child_spawn(secret_rot_opsd(r), &spec, command_done, r, &e);
	free(env[0]);
	free(env[1]);
	free(env[2]);
	if (r->child == NULL) {
		if (!back) {
			secret_rot_fail(r, "cannot run on_rotate '%s': %s",
			    argv[2],
			    strerror(-e));
			return;
		}
		r->cmd++;
		secret_rot_command(r, back);
	}
}

static void
step_on_rotate(struct rot *r)
{
	r->cmd = 0;
	secret_rot_command(r, 0);
}

static void
verify_poll(evutil_socket_t fd, short what, void *arg)
{
	struct rot	*r = arg;
	struct probe	*p;

	(void)fd;
	(void)what;
	if (secret_rot_opsd(r)->stopping) {
		/*
		 * The probes stopped with opsd: the op stays in the journal and
		 * the next start finishes the rotation from write_files.
		 */
		struct secret	*s = r->s;

		evt_log_about(LOG_WARNING, "secret.rotation", "secret",
		    s->conf->name, "secret %s: opsd is stopping before "
		    "verify_probe %s could pass; the next start finishes the "
		    "rotation (op %s)", s->conf->name, s->conf->verify_probe,
		    r->op_id);
		secret_rotate_abandon(s);
		opsd_maybe_exit(s->opsd);
		return;
	}
	if ((p = probe_find(secret_rot_opsd(r),
	    r->s->conf->verify_probe)) == NULL) {
		secret_rot_fail(r, "verify_probe %s is not configured",
		    r->s->conf->verify_probe);
		return;
	}
	if (!p->running && p->has_last && probe_last(p)->ts_usec >= r->verify_from) {
		if (probe_last(p)->ok) {
			secret_rot_next(r);
			return;
		}
		if (now_usec() >= r->verify_deadline) {
			secret_rot_fail(r,
			    "verify_probe %s still fails after %llus: "
			    "%s", p->conf->name, (unsigned long long)
			    (r->s->conf->verify_timeout / 1000),
			    probe_last_reason(p));
			return;
		}
		/* a failed run: try again in a second */
		r->verify_from = (int64_t)now_realtime_usec() + 1000000;
		secret_rot_timer_in(r, 1000, verify_poll);
		return;
	}
	if (now_usec() >= r->verify_deadline) {
		/* between two runs: the last one's reason is the why */
		if (p->has_last && !probe_last(p)->ok && probe_last(p)->ts_usec >=
		    r->verify_begin)
			secret_rot_fail(r,
			    "verify_probe %s still fails after %llus: "
			    "%s", p->conf->name, (unsigned long long)
			    (r->s->conf->verify_timeout / 1000),
			    probe_last_reason(p));
		else
			secret_rot_fail(r,
			    "verify_probe %s has not passed within "
			    "%llus", p->conf->name, (unsigned long long)
			    (r->s->conf->verify_timeout / 1000));
		return;
	}
	if (!p->running && (int64_t)now_realtime_usec() >= r->verify_from)
		probe_run_now(p, NULL);
	secret_rot_timer_in(r, 100, verify_poll);
}

static void
step_verify(struct rot *r)
{
	r->verify_from = r->verify_begin = (int64_t)now_realtime_usec();
	r->verify_deadline = now_usec() + r->s->conf->verify_timeout * 1000;
	verify_poll(-1, 0, r);
}

static void
fsync_dir(struct opsd *o)
{
	char	*dir = secret_state_dir(o);
	int	 fd;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

/* Removes the value files no version in NAME.json keeps any longer. */
void
secret_prune_versions(struct secret *s)
{
	char		label[32];
	unsigned int	i, keep = (unsigned int)s->conf->keep_previous;

	if (keep < 1)
		keep = 1;
	for (i = keep; i < s->meta.nhist; i++) {
		secret_version_label(s->meta.hist[i].version, label,
		    sizeof label);
		secret_value_remove(s->opsd, s->conf->name, label);
	}
}

static void
promoted_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	secret_rot_end(arg, OP_OK);
}

static void
step_promote(struct rot *r)
{
	struct secret		*s = r->s;
	struct secret_meta	 m = s->meta;
	int64_t			 now = (int64_t)time(NULL);
	int			 e;

	if (m.version > 0) {
		memmove(&m.hist[1], &m.hist[0], sizeof m.hist[0] *
		    (SECRET_HISTORY - 1));
		m.hist[0].version = m.version;
		memcpy(m.hist[0].fp, m.fp, sizeof m.fp);
		m.hist[0].created = m.created;
		m.hist[0].retired = now;
		if (m.nhist < SECRET_HISTORY)
			m.nhist++;
	}
	m.version = r->version;
	secretfile_fingerprint(r->pending, strlen(r->pending), m.fp);
	m.created = now;
	if (secret_rot_is_pg(r) && s->conf->strategy == SECRET_ALTERNATING)
		snprintf(m.role, sizeof m.role, "%s", r->target);
	else
		m.role[0] = '\0';
	if (m.origin[0] == '\0')
		snprintf(m.origin, sizeof m.origin, "generated");
	snprintf(m.last_result, sizeof m.last_result, "ok");
	m.last_at = now;
	m.last_error[0] = '\0';
	snprintf(m.last_op, sizeof m.last_op, "%s", r->op_id);
	m.failures = 0;
	m.n_ok++;
	/* the commit point: NAME.json names the new version */
	if ((e = secret_meta_save(secret_rot_opsd(r), s->conf->name,
	    &m)) != 0) {
		secret_rot_fail(r,
		    "cannot record the new version in %s/secrets: %s",
		    secret_rot_opsd(r)->conf->state_dir, strerror(-e));
		return;
	}
	s->meta = m;
	secret_prune_versions(s);
	secret_env_sync(s);
	fsync_dir(secret_rot_opsd(r));
	secret_rot_timer_in(r, 0, promoted_cb);
}

/* The step's side effect, one loop iteration after its journal entry. */
static void
effect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rot	*r = arg;

	(void)fd;
	(void)what;
	switch (r->step) {
	case ROT_GENERATE:
		step_generate(r);
		break;
	case ROT_SET_PASSWORD:
		step_set_password(r);
		break;
	case ROT_TEST_LOGIN:
		step_test_login(r);
		break;
	case ROT_WRITE_FILES:
		step_write_files(r);
		break;
	case ROT_ON_ROTATE:
		step_on_rotate(r);
		break;
	case ROT_VERIFY:
		step_verify(r);
		break;
	default:
		step_promote(r);
		break;
	}
}

/*
 * The next step goes into the journal in one loop iteration and its side
 * effect runs in the next: the fsyncs of a rotation are spread over the
 * loop, a few milliseconds each, instead of one long callback.
 */
static void
journal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rot	*r = arg;

	(void)fd;
	(void)what;
	if (rot_step(r, r->next) != 0)
		return;
	secret_rot_timer_in(r, 0, effect_cb);
}

void
secret_rot_next(struct rot *r)
{
	int	next = r->step + 1;

	if (r->timer != NULL) {
		event_free(r->timer);
		r->timer = NULL;
	}
	/* random values have no role; steps without work are not taken */
	if (!secret_rot_is_pg(r) && (next == ROT_SET_PASSWORD
	    || next == ROT_TEST_LOGIN))
		next = ROT_WRITE_FILES;
	if (next == ROT_ON_ROTATE && r->s->conf->non_rotate == 0)
		next = ROT_VERIFY;
	if (next == ROT_VERIFY && r->s->conf->verify_probe == NULL)
		next = ROT_PROMOTE;
	r->next = next;
	secret_rot_timer_in(r, 0, journal_cb);
}

/* --- the end ---------------------------------------------------------------- */

void
secret_rot_end(struct rot *r, enum op_outcome outcome)
{
	struct secret		*s = r->s;
	const char		*result;
	json_t			*fin;
	int64_t			 now = (int64_t)time(NULL);

	result = outcome == OP_OK ? "ok" : outcome == OP_ROLLED_BACK ?
	    "rolled_back" : "failed";
	if (outcome != OP_OK) {
		snprintf(s->meta.last_result, sizeof s->meta.last_result, "%s",
		    result);
		s->meta.last_at = now;
		snprintf(s->meta.last_error, sizeof s->meta.last_error, "%s",
		    r->error);
		snprintf(s->meta.last_op, sizeof s->meta.last_op, "%s",
		    r->op_id);
		s->meta.failures++;
		if (outcome == OP_ROLLED_BACK)
			s->meta.n_rolled_back++;
		else
			s->meta.n_failed++;
		if (s->meta.version > 0 || s->meta.nhist > 0)
			secret_meta_save(secret_rot_opsd(r), s->conf->name,
			    &s->meta);
	}
	if (r->op != NULL) {
		if (outcome == OP_OK)
			op_finish(r->op, OP_OK, NULL);
		else
			op_finish(r->op, outcome, "%s", r->error);
		r->op = NULL;
	}
	if (outcome == OP_OK) {
		if (r->recovering)
			secret_event(s, &EVT_SECRET_RECOVERED, NULL, 0,
			    r->op_id, "secret %s: the rotation interrupted by "
			    "a restart was finished: version %lld (%s)",
			    s->conf->name, (long long)s->meta.version,
			    s->meta.fp);
		secret_event(s, r->initial ? &EVT_SECRET_CREATED :
		    &EVT_SECRET_ROTATED, NULL, 0, r->op_id, "secret %s %s: "
		    "version %lld (%s)%s%s", s->conf->name, r->initial ?
		    "created" : "rotated", (long long)s->meta.version,
		    s->meta.fp, s->meta.role[0] ? ", role in use " : "",
		    s->meta.role);
	} else {
		if (r->recovering)
			secret_event(s, &EVT_SECRET_RECOVERED, NULL, 0,
			    r->op_id, "secret %s: the rotation interrupted by "
			    "a restart was rolled back; version %lld stays "
			    "current", s->conf->name,
			    (long long)s->meta.version);
		s->event_error = r->error;
		secret_event(s, &EVT_SECRET_ROTATION_FAILED, "secret.rotation",
		    1, r->op_id, "secret %s: rotation FAILED (%s, %s): %s",
		    s->conf->name, r->step >= 0 ? secret_rot_step_names[r->step]
		    :
		    "start", outcome == OP_ROLLED_BACK ? "rolled back, version "
		    "unchanged" : "nothing changed", r->error);
		s->event_error = NULL;
	}
	fin = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:s?}", "op", r->op_id,
	    "secret", s->conf->name, "result", result, "error",
	    outcome == OP_OK ? NULL : r->error, "version",
	    (json_int_t)s->meta.version, "fingerprint", s->meta.fp[0] ?
	    s->meta.fp : NULL);
	rpc_followers_end(&r->followers, "secret.finished", fin);
	s->rot = NULL;
	secret_rotation_ended(s, outcome == OP_OK, outcome == OP_OK ? NULL :
	    r->error);
	rot_free(r);
	/* a stop waited for this rotation (secret_busy) */
	opsd_maybe_exit(s->opsd);
}

static void
rot_free(struct rot *r)
{
	unsigned int	i;

	if (r->timer != NULL)
		event_free(r->timer);
	secret_rot_close_session(r);
	if (r->child != NULL)
		child_abandon(r->child);
	for (i = 0; i < r->nprev; i++) {
		OPENSSL_cleanse(r->prev[i], strlen(r->prev[i]));
		free(r->prev[i]);
	}
	rpc_followers_end(&r->followers, NULL, NULL);
	OPENSSL_cleanse(r->pending, sizeof r->pending);
	OPENSSL_cleanse(r->current, sizeof r->current);
	free(r);
}

/* --- starting --------------------------------------------------------------- */

struct rot *
secret_rot_new(struct secret *s)
{
	struct rot	*r;

	r = xcalloc(1, sizeof *r);
	r->s = s;
	r->step = -1;
	r->started = (int64_t)time(NULL);
	r->version = s->meta.version + 1;
	r->initial = s->meta.version == 0;
	return (r);
}

int
secret_rotate(struct secret *s, int manual, int force,
    struct rpc_pending *follower, char **id, char **err)
{
	struct opsd	*o = s->opsd;
	struct rot	*r;
	int64_t		 now = (int64_t)time(NULL), next;
	char		 when[64], *msg = NULL;
	int		 e;

	*id = NULL;
	*err = NULL;
	if (o->stopping) {
		xasprintf(err, "opsd is stopping");
		return (-ESHUTDOWN);
	}
	if (s->rot != NULL) {
		xasprintf(err, "a rotation of secret %s is under way (op %s%s)",
		    s->conf->name, s->rot->op_id, secret_rotate_recovering(s) ?
		    ", recovering" : "");
		return (-EBUSY);
	}
	if (!force && s->meta.version > 0 && s->conf->min_interval > 0 &&
	    (next = s->meta.created + (int64_t)(s->conf->min_interval /
	    1000)) > now) {
		util_iso_time(next, when, sizeof when);
		xasprintf(err, "secret %s was rotated less than min_interval "
		    "ago; the next rotation may start at %s (force to rotate "
		    "now: connections still using the previous %s fail)",
		    s->conf->name, when, s->conf->strategy ==
		    SECRET_ALTERNATING ? "role" : "value");
		return (-EBUSY);
	}
	r = secret_rot_new(s);
	r->manual = manual;
	s->last_manual = manual;
	if (secret_rot_load_values(r) != 0) {
		xasprintf(err, "version %lld of secret %s is missing from "
		    "%s/secrets (see docs/secrets.md, recovering by hand)",
		    (long long)s->meta.version, s->conf->name,
		    o->conf->state_dir);
		rot_free(r);
		return (-EIO);
	}
	if (secret_rot_is_pg(r))
		snprintf(r->target, sizeof r->target, "%s",
		    secret_other_role(s));
	if ((e = op_begin(o, &secret_rotate_kind, s->conf->name, &r->op,
	    &msg)) != 0) {
		xasprintf(err, "%s", msg != NULL ? msg : strerror(-e));
		free(msg);
		rot_free(r);
		return (e);
	}
	snprintf(r->op_id, sizeof r->op_id, "%s", op_id(r->op));
	/* for the next start: a manual rotation is not retried on its own */
	if (manual)
		op_set(r->op, "manual", "yes");
	op_listen(r->op, secret_rot_listener, r);
	if (follower != NULL)
		rpc_followers_add(&r->followers, follower);
	s->rot = r;
	s->last_start = now;
	*id = xstrdup(r->op_id);
	/*
	 * From the loop, not from here: the caller answers first (a random
	 * secret's rotation can end before this returns, and its follower
	 * must see the reply before secret.finished).
	 */
	secret_rot_next(r);
	return (0);
}

void
secret_rotate_abandon(struct secret *s)
{
	struct rot	*r = s->rot;

	if (r == NULL)
		return;
	/* the op stays unfinished in the journal: the next start sees it */
	s->rot = NULL;
	if (r->op != NULL)
		op_listen(r->op, NULL, NULL);
	r->op = NULL;
	rot_free(r);
}

json_t *
secret_rotate_json(const struct secret *s)
{
	const struct rot	*r = s->rot;

	if (r == NULL)
		return (NULL);
	return (json_pack("{s:s, s:s, s:I, s:b, s:b, s:s?}", "op", r->op_id,
	    "step", r->step >= 0 ? secret_rot_step_names[r->step] : "",
	    "started",
	    (json_int_t)r->started, "recovered", r->recovering != 0,
	    "rolling_back", r->rolling_back != 0, "error", r->rolling_back ?
	    r->error : NULL));
}

