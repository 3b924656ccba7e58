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
#include "util.h"

enum rot_step {
	ROT_GENERATE,
	ROT_SET_PASSWORD,
	ROT_TEST_LOGIN,
	ROT_WRITE_FILES,
	ROT_ON_ROTATE,
	ROT_VERIFY,
	ROT_PROMOTE,
	ROT_NSTEPS
};

static const char *const rot_step_names[] = {
	"generate", "set_password", "test_login", "write_files", "on_rotate",
	"verify", "promote"
};

static void	rotate_resume(struct opsd *, struct op *);

const struct op_kind secret_rotate_kind = {
	"secret.rotate", rot_step_names, ROT_NSTEPS, rotate_resume, NULL
};

#define RECOVER_RETRY_SEC	10

struct alter;

struct rot {
	struct secret		*s;
	struct op		*op;
	char			 op_id[64];
	int			 step;		/* -1 before the first */
	int			 next;		/* to take */
	int			 manual;
	int			 recovering;	/* after a crash */
	int			 db_retry;	/* the undo waits for the db */
	int			 rolling_back;
	int			 initial;	/* no version yet */
	int64_t			 version;	/* the new one */
	char			 pending[SECRET_VALUE_MAX];
	char			 current[SECRET_VALUE_MAX];
	int			 have_current;
	char			*prev[SECRET_KEEP_MAX + 1];	/* newest first */
	unsigned int		 nprev;
	char			 target[SECRET_ROLE_MAX + 1];
	struct pgq		*q;
	struct alter		*alter;		/* an ALTER ROLE under way */
	struct pgq		*lq;		/* the login with the new value */
	struct child		*child;
	unsigned int		 cmd;
	struct event		*timer;
	int64_t			 verify_from;	/* wall usec */
	int64_t			 verify_begin;	/* wall usec, the step began */
	uint64_t		 verify_deadline;	/* monotonic usec */
	int			 files_written;
	int			 db_changed;
	int			 alter_unknown;	/* may yet take effect */
	int			 on_rotate_ran;
	int			 changed;	/* anything outside the state */
	char			 error[SECRET_ERROR_MAX];
	int64_t			 started;
	struct rpc_followers	 followers;
};

static void	rot_next(struct rot *);
static void	rot_fail(struct rot *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	rb_next(struct rot *);
static void	rot_free(struct rot *);

/* --- small helpers -------------------------------------------------------- */

static struct opsd *
rot_opsd(struct rot *r)
{
	return (r->s->opsd);
}

static int
is_pg(const struct rot *r)
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
static int
load_values(struct rot *r)
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
		secret_version_label(s->meta.hist[i].version, label, sizeof label);
		if (secret_value_read(s->opsd, s->conf->name, label, buf,
		    sizeof buf) != 0)
			break;
		r->prev[r->nprev++] = xstrdup(buf);
	}
	OPENSSL_cleanse(buf, sizeof buf);
	return (0);
}

static const char *
other_role(const struct secret *s)
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
	    r->s->conf->name, "step", r->step >= 0 ? rot_step_names[r->step] :
	    ""));
}

static void
rot_listener(struct op *op, void *arg)
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
		rot_fail(r, "cannot record step %s in the op journal: %s",
		    rot_step_names[step], strerror(-e));
		return (-1);
	}
	return (0);
}

static void
timer_in(struct rot *r, uint64_t ms, event_callback_fn fn)
{
	struct timeval	tv;

	if (r->timer != NULL)
		event_free(r->timer);
	r->timer = evtimer_new(rot_opsd(r)->base, fn, r);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);
}

static void	alter_drop(struct alter *);

/* Closes the session; an ALTER ROLE on it is dropped (no callback). */
static void
close_session(struct rot *r)
{
	if (r->q != NULL) {
		pg_cancel(r->q);
		r->q = NULL;
	}
	if (r->alter != NULL) {
		alter_drop(r->alter);
		r->alter = NULL;
	}
	if (r->lq != NULL) {
		pg_cancel(r->lq);
		r->lq = NULL;
	}
}

/* --- the database ------------------------------------------------------- */

typedef void (*alter_done)(struct rot *, const char *error);

struct alter {
	struct rot	*r;
	char		 role[SECRET_ROLE_MAX + 1];
	char		*password;	/* wiped */
	alter_done	 done;
	int		 lock;
};

static void	alter_locked(struct pgq *, const PGresult *, const char *,
		    void *);

static void
alter_drop(struct alter *a)
{
	OPENSSL_cleanse(a->password, strlen(a->password));
	free(a->password);
	free(a);
}

static void
alter_finish(struct alter *a, const char *error)
{
	struct rot	*r = a->r;
	alter_done	 done = a->done;

	r->alter = NULL;
	alter_drop(a);
	done(r, error);
}

static void
alter_result(struct pgq *q, const PGresult *res, const char *error, void *arg)
{
	struct alter	*a = arg;
	PGconn		*conn;

	(void)res;
	/*
	 * A statement that timed out is still running on the server (a
	 * client that goes away does not stop it), and one whose connection
	 * broke may have committed: either may yet set the password.
	 */
	if (error != NULL && ((conn = pg_conn(q)) == NULL ||
	    PQtransactionStatus(conn) == PQTRANS_ACTIVE))
		a->r->alter_unknown = 1;
	alter_finish(a, error);
}

static void
alter_send(struct alter *a)
{
	struct rot	*r = a->r;
	char		*verifier, *ident, *sql;
	char		 buf[SECRET_ERROR_MAX];
	PGconn		*conn;
	int		 e;

	if ((conn = pg_conn(r->q)) == NULL) {
		alter_finish(a, "the admin session closed");
		return;
	}
	if ((verifier = pg_scram_verifier(conn, a->role, a->password)) ==
	    NULL) {
		snprintf(buf, sizeof buf, "cannot compute the SCRAM verifier: "
		    "%s", PQerrorMessage(conn));
		alter_finish(a, buf);
		return;
	}
	ident = pg_quote_ident(a->role);
	/* a verifier is [A-Za-z0-9+/=$:-]: nothing to escape in a literal */
	xasprintf(&sql, "ALTER ROLE %s PASSWORD '%s'", ident, verifier);
	OPENSSL_cleanse(verifier, strlen(verifier));
	PQfreemem(verifier);
	free(ident);
	e = pg_exec(r->q, sql, r->s->conf->timeout, alter_result, a);
	OPENSSL_cleanse(sql, strlen(sql));
	free(sql);
	if (e != 0) {
		snprintf(buf, sizeof buf, "cannot send ALTER ROLE: %s",
		    strerror(-e));
		alter_finish(a, buf);
	}
}

static void
alter_connected(struct pgq *q, const PGresult *res, const char *error,
    void *arg)
{
	struct alter	*a = arg;
	struct rot	*r = a->r;
	char		 buf[SECRET_ERROR_MAX];
	int		 e;

	(void)res;
	if (error != NULL) {
		/* a session stays open on an error: close it, keep a */
		r->alter = NULL;
		close_session(r);
		r->alter = a;
		snprintf(buf, sizeof buf, "cannot connect to database %s as "
		    "its admin role: %s", r->s->conf->database, error);
		alter_finish(a, buf);
		return;
	}
	if (a->lock && r->s->conf->lock == 1) {
		if ((e = db_try_lock(q, db_lock_key("secret",
		    r->s->conf->name), r->s->conf->timeout, alter_locked,
		    a)) != 0) {
			snprintf(buf, sizeof buf, "cannot take the advisory "
			    "lock: %s", strerror(-e));
			alter_finish(a, buf);
		}
		return;
	}
	alter_send(a);
}

static void
alter_locked(struct pgq *q, const PGresult *res, const char *error,
    void *arg)
{
	struct alter	*a = arg;
	char		 buf[SECRET_ERROR_MAX];

	(void)q;
	if (error != NULL) {
		snprintf(buf, sizeof buf, "cannot take the advisory lock: %s",
		    error);
		alter_finish(a, buf);
	} else if (!db_lock_held(res)) {
		snprintf(buf, sizeof buf, "another host holds the advisory "
		    "lock opsd.secret.%s and rotates this secret",
		    a->r->s->conf->name);
		alter_finish(a, buf);
	} else
		alter_send(a);
}

/*
 * Sets role's password on the admin session (opened if need be), taking
 * the fleet lock first when lock is set and the secret asks for it.
 */
static void
rot_alter(struct rot *r, const char *role, const char *password, int lock,
    alter_done done)
{
	struct alter	*a;

	a = xcalloc(1, sizeof *a);
	a->r = r;
	snprintf(a->role, sizeof a->role, "%s", role);
	a->password = xstrdup(password);
	a->done = done;
	a->lock = lock;
	r->alter_unknown = 0;
	if (r->q != NULL && pg_conn(r->q) != NULL) {
		r->alter = a;
		alter_send(a);
		return;
	}
	close_session(r);
	r->alter = a;
	r->q = db_session_open(rot_opsd(r), r->s->db, 1, NULL,
	    r->s->conf->timeout, alter_connected, a);
}

/* --- forward -------------------------------------------------------------- */

static void
step_generate(struct rot *r)
{
	char	label[32];
	int	e;

	if ((e = secret_generate(r->s->conf->bytes, r->s->conf->encoding,
	    r->pending, sizeof r->pending)) != 0) {
		rot_fail(r, "cannot generate a value: %s", e == -EIO ?
		    "the random generator failed" : strerror(-e));
		return;
	}
	secret_version_label(r->version, label, sizeof label);
	if ((e = secret_value_write(rot_opsd(r), r->s->conf->name, label,
	    r->pending)) != 0) {
		rot_fail(r, "cannot store the pending version in %s/secrets: "
		    "%s", rot_opsd(r)->conf->state_dir, strerror(-e));
		return;
	}
	rot_next(r);
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
			close_session(r);
			r->db_changed = r->changed = 1;
			rot_fail(r, "cannot set the password of role %s: %s "
			    "(the statement may still take effect: the old "
			    "password is set back)", r->target, error);
			return;
		}
		rot_fail(r, "cannot set the password of role %s: %s", r->target,
		    error);
		return;
	}
	r->db_changed = r->changed = 1;
	rot_next(r);
}

static void
step_set_password(struct rot *r)
{
	secret_roles_compare(r->s);
	rot_alter(r, r->target, r->pending, 1, set_password_done);
}

static void
login_done(struct pgq *q, const PGresult *res, const char *error, void *arg)
{
	struct rot	*r = arg;

	(void)q;
	(void)res;
	r->lq = NULL;
	if (error != NULL) {
		rot_fail(r, "cannot log in as %s with the new password: %s",
		    r->target, error);
		return;
	}
	rot_next(r);
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
	spec.dns = rot_opsd(r)->dns;
	r->lq = pg_query(rot_opsd(r)->base, &spec, login_done, r);
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
	if (secret_publish(r->s, r->pending, is_pg(r) ? r->target : NULL,
	    prev, n, err, sizeof err) != 0) {
		rot_fail(r, "%s", err);
		return;
	}
	rot_next(r);
}

static void	run_command(struct rot *, int back);

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
			rot_fail(r, "on_rotate '%s' %s", cmd, why);
			return;
		}
		evt_log_about(LOG_WARNING, "secret.on_rotate", "secret",
		    r->s->conf->name, "secret %s: on_rotate '%s' %s while "
		    "rolling back", r->s->conf->name, cmd, why);
	}
	r->cmd++;
	run_command(r, r->rolling_back);
}

static void
run_command(struct rot *r, int back)
{
	struct secret_conf	*c = r->s->conf;
	struct child_spec	 spec;
	const char		*argv[4];
	char			*env[4], fp[SECRETFILE_FP_LEN];
	const char		*value = back ? r->current : r->pending;
	int			 e;

	if (r->cmd >= c->non_rotate) {
		if (back)
			rb_next(r);
		else
			rot_next(r);
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
	r->child = child_spawn(rot_opsd(r), &spec, command_done, r, &e);
	free(env[0]);
	free(env[1]);
	free(env[2]);
	if (r->child == NULL) {
		if (!back) {
			rot_fail(r, "cannot run on_rotate '%s': %s", argv[2],
			    strerror(-e));
			return;
		}
		r->cmd++;
		run_command(r, back);
	}
}

static void
step_on_rotate(struct rot *r)
{
	r->cmd = 0;
	run_command(r, 0);
}

static void
verify_poll(evutil_socket_t fd, short what, void *arg)
{
	struct rot	*r = arg;
	struct probe	*p;

	(void)fd;
	(void)what;
	if (rot_opsd(r)->stopping) {
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
	if ((p = probe_find(rot_opsd(r), r->s->conf->verify_probe)) == NULL) {
		rot_fail(r, "verify_probe %s is not configured",
		    r->s->conf->verify_probe);
		return;
	}
	if (!p->running && p->has_last && p->last.ts_usec >= r->verify_from) {
		if (p->last.ok) {
			rot_next(r);
			return;
		}
		if (now_usec() >= r->verify_deadline) {
			rot_fail(r, "verify_probe %s still fails after %llus: "
			    "%s", p->conf->name, (unsigned long long)
			    (r->s->conf->verify_timeout / 1000), p->last.reason);
			return;
		}
		/* a failed run: try again in a second */
		r->verify_from = (int64_t)now_realtime_usec() + 1000000;
		timer_in(r, 1000, verify_poll);
		return;
	}
	if (now_usec() >= r->verify_deadline) {
		/* between two runs: the last one's reason is the why */
		if (p->has_last && !p->last.ok && p->last.ts_usec >=
		    r->verify_begin)
			rot_fail(r, "verify_probe %s still fails after %llus: "
			    "%s", p->conf->name, (unsigned long long)
			    (r->s->conf->verify_timeout / 1000),
			    p->last.reason);
		else
			rot_fail(r, "verify_probe %s has not passed within "
			    "%llus", p->conf->name, (unsigned long long)
			    (r->s->conf->verify_timeout / 1000));
		return;
	}
	if (!p->running && (int64_t)now_realtime_usec() >= r->verify_from)
		probe_run_now(p, NULL);
	timer_in(r, 100, verify_poll);
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
static void
prune_versions(struct secret *s)
{
	char		label[32];
	unsigned int	i, keep = (unsigned int)s->conf->keep_previous;

	if (keep < 1)
		keep = 1;
	for (i = keep; i < s->meta.nhist; i++) {
		secret_version_label(s->meta.hist[i].version, label, sizeof label);
		secret_value_remove(s->opsd, s->conf->name, label);
	}
}

static void	rot_end(struct rot *, enum op_outcome);

static void
promoted_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	rot_end(arg, OP_OK);
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
	if (is_pg(r) && s->conf->strategy == SECRET_ALTERNATING)
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
	if ((e = secret_meta_save(rot_opsd(r), s->conf->name, &m)) != 0) {
		rot_fail(r, "cannot record the new version in %s/secrets: %s",
		    rot_opsd(r)->conf->state_dir, strerror(-e));
		return;
	}
	s->meta = m;
	prune_versions(s);
	secret_env_sync(s);
	fsync_dir(rot_opsd(r));
	timer_in(r, 0, promoted_cb);
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
	timer_in(r, 0, effect_cb);
}

static void
rot_next(struct rot *r)
{
	int	next = r->step + 1;

	if (r->timer != NULL) {
		event_free(r->timer);
		r->timer = NULL;
	}
	/* random values have no role; steps without work are not taken */
	if (!is_pg(r) && (next == ROT_SET_PASSWORD || next == ROT_TEST_LOGIN))
		next = ROT_WRITE_FILES;
	if (next == ROT_ON_ROTATE && r->s->conf->non_rotate == 0)
		next = ROT_VERIFY;
	if (next == ROT_VERIFY && r->s->conf->verify_probe == NULL)
		next = ROT_PROMOTE;
	r->next = next;
	timer_in(r, 0, journal_cb);
}

/* --- back ----------------------------------------------------------------- */

/*
 * The undo, in order: the database (the old password back), the files
 * (published again from the current version), the consumers (on_rotate
 * again), then the pending version is dropped. rb_next() takes the next
 * phase that is left to do.
 */
static void
rb_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	rb_next(arg);
}


static void
rb_db_done(struct rot *r, const char *error)
{
	if (error != NULL) {
		/*
		 * The role may hold the new password while the files hold
		 * the old: neither may stay so. Keep trying.
		 */
		if (!r->db_retry)
			evt_log_about(LOG_ERR, "secret.rollback", "secret",
			    r->s->conf->name, "secret %s: cannot set the "
			    "password of %s back: %s; trying again every %ds",
			    r->s->conf->name, r->target, error,
			    RECOVER_RETRY_SEC);
		r->db_retry = 1;
		close_session(r);
		timer_in(r, RECOVER_RETRY_SEC * 1000, rb_retry);
		return;
	}
	r->db_retry = 0;
	r->db_changed = 0;
	rb_next(r);
}

static void
rb_next(struct rot *r)
{
	char	 err[SECRET_ERROR_MAX], label[32];
	const char *old;

	if (r->timer != NULL) {
		event_free(r->timer);
		r->timer = NULL;
	}
	if (r->db_changed) {
		/*
		 * single: the role gets the current value back. alternating:
		 * the role not in use gets its last value back (the newest
		 * previous), if there is one.
		 */
		old = r->s->conf->strategy == SECRET_ALTERNATING ?
		    (r->nprev > 0 && r->s->meta.role[0] != '\0' ? r->prev[0] :
		    NULL) : r->have_current ? r->current : NULL;
		if (old != NULL) {
			/*
			 * With the fleet lock: an open session holds it
			 * already; a new one (after a crash, or after the
			 * database went away) takes it first, so a second
			 * host rotating meanwhile is never undone. Refused,
			 * it is tried again like any database error.
			 */
			rot_alter(r, r->target, old, 1, rb_db_done);
			return;
		}
		r->db_changed = 0;
	}
	close_session(r);
	if (r->files_written) {
		r->files_written = 0;
		if (r->have_current) {
			if (secret_publish(r->s, r->current, NULL, r->prev,
			    r->nprev, err, sizeof err) != 0)
				evt_log_about(LOG_ERR, "secret.rollback",
				    "secret", r->s->conf->name, "secret %s: "
				    "cannot publish the current value again: "
				    "%s", r->s->conf->name, err);
		} else {
			/* a first value that did not make it: none at all */
			unlink(r->s->conf->path);
		}
		if (r->on_rotate_ran && r->s->conf->non_rotate > 0) {
			r->on_rotate_ran = 0;
			r->cmd = 0;
			if (r->have_current) {
				run_command(r, 1);
				return;
			}
		}
	}
	secret_version_label(r->version, label, sizeof label);
	secret_value_remove(rot_opsd(r), r->s->conf->name, label);
	rot_end(r, r->changed ? OP_ROLLED_BACK : OP_FAILED);
}

static void
rot_fail(struct rot *r, const char *fmt, ...)
{
	va_list	ap;

	if (r->rolling_back)
		return;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof r->error, fmt, ap);
	va_end(ap);
	r->rolling_back = 1;
	/* a hint for the next start, should it come in the middle */
	if (r->op != NULL)
		op_set(r->op, "rollback", "yes");
	if (r->child != NULL) {
		child_abandon(r->child);
		r->child = NULL;
	}
	if (r->lq != NULL) {
		pg_cancel(r->lq);
		r->lq = NULL;
	}
	/*
	 * An idle admin session stays: the password is set back on it,
	 * still under the fleet lock (a broken one is replaced).
	 */
	if (r->alter != NULL)
		close_session(r);
	rb_next(r);
}

/* --- the end ---------------------------------------------------------------- */

static void
rot_end(struct rot *r, enum op_outcome outcome)
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
			secret_meta_save(rot_opsd(r), s->conf->name, &s->meta);
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
		    s->conf->name, r->step >= 0 ? rot_step_names[r->step] :
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
	close_session(r);
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

static struct rot *
rot_new(struct secret *s)
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
	r = rot_new(s);
	r->manual = manual;
	s->last_manual = manual;
	if (load_values(r) != 0) {
		xasprintf(err, "version %lld of secret %s is missing from "
		    "%s/secrets (see docs/secrets.md, recovering by hand)",
		    (long long)s->meta.version, s->conf->name,
		    o->conf->state_dir);
		rot_free(r);
		return (-EIO);
	}
	if (is_pg(r))
		snprintf(r->target, sizeof r->target, "%s", other_role(s));
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
	op_listen(r->op, rot_listener, r);
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
	rot_next(r);
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
	    "step", r->step >= 0 ? rot_step_names[r->step] : "", "started",
	    (json_int_t)r->started, "recovered", r->recovering != 0,
	    "rolling_back", r->rolling_back != 0, "error", r->rolling_back ?
	    r->error : NULL));
}

/* --- after a crash ---------------------------------------------------------- */

/*
 * NAME.json names the op: the rotation had ended (promoted, or its
 * failure recorded) when opsd stopped, and only the journal missed it.
 * What is left is the end: a promotion's clean-up and its events, or the
 * recorded outcome; the counters already have it.
 */
static void
rotate_ended(struct secret *s, struct op *op)
{
	struct rot	*r;

	if (strcmp(s->meta.last_result, "ok") != 0) {
		op_finish(op, strcmp(s->meta.last_result, "rolled_back") == 0 ?
		    OP_ROLLED_BACK : OP_FAILED, "%s", s->meta.last_error);
		secret_event(s, &EVT_SECRET_RECOVERED, NULL, 0, s->meta.last_op,
		    "secret %s: the rotation interrupted by a restart had been "
		    "rolled back; version %lld stays current", s->conf->name,
		    (long long)s->meta.version);
		return;
	}
	r = rot_new(s);
	r->op = op;
	r->recovering = 1;
	r->step = ROT_PROMOTE;
	r->version = s->meta.version;
	r->initial = s->meta.nhist == 0 && strcmp(s->meta.origin,
	    "generated") == 0;
	snprintf(r->op_id, sizeof r->op_id, "%s", op_id(op));
	s->rot = r;
	prune_versions(s);
	secret_env_sync(s);
	rot_end(r, OP_OK);
}

/*
 * An unfinished rotation of a previous opsd: finished from write_files
 * on when it got that far (the new value works: the role has it, the
 * login proved it), rolled back when it did not, or when it was already
 * rolling back. Nothing read from the op is trusted but its step and that
 * hint: the version, the role and every path come from NAME.json and the
 * configuration.
 */
void
secret_rotate_recover(struct opsd *o, struct op *op)
{
	struct secret	*s = secret_find(o, op_object(op));
	struct rot	*r;
	unsigned int	 step = op_step_index(op);
	const char	*hint = op_get(op, "rollback");
	char		 label[32];

	if (s == NULL) {
		op_finish(op, OP_ABANDONED, "no [secret %s] in the "
		    "configuration any more", op_object(op));
		return;
	}
	if (s->rot != NULL) {
		op_finish(op, OP_ABANDONED, "another rotation of %s is under "
		    "way", s->conf->name);
		return;
	}
	if (strcmp(s->meta.last_op, op_id(op)) == 0) {
		rotate_ended(s, op);
		return;
	}
	r = rot_new(s);
	r->op = op;
	r->recovering = 1;
	r->manual = s->last_manual = op_get(op, "manual") != NULL;
	snprintf(r->op_id, sizeof r->op_id, "%s", op_id(op));
	r->step = step == OP_NO_STEP ? -1 : (int)step;
	s->rot = r;
	op_listen(op, rot_listener, r);
	if (load_values(r) != 0) {
		snprintf(r->error, sizeof r->error, "version %lld is missing "
		    "from the state", (long long)s->meta.version);
		r->rolling_back = 1;
		rb_next(r);
		return;
	}
	if (is_pg(r))
		snprintf(r->target, sizeof r->target, "%s", other_role(s));
	secret_version_label(r->version, label, sizeof label);
	if (step == OP_NO_STEP || step == ROT_GENERATE) {
		/* stopped before write_files: rolled back, its value dropped */
		snprintf(r->error, sizeof r->error, "interrupted by a restart "
		    "while generating; the new value was discarded");
		r->rolling_back = 1;
		r->changed = 1;
		rb_next(r);
		return;
	}
	if (step < ROT_WRITE_FILES || hint != NULL || secret_value_read(o,
	    s->conf->name, label, r->pending, sizeof r->pending) != 0) {
		snprintf(r->error, sizeof r->error, "interrupted by a restart "
		    "at step %s", rot_step_names[step]);
		r->rolling_back = 1;
		r->changed = 1;
		r->db_changed = is_pg(r);
		r->files_written = step >= ROT_WRITE_FILES;
		r->on_rotate_ran = step >= ROT_ON_ROTATE;
		op_set(op, "rollback", "yes");
		rb_next(r);
		return;
	}
	/* forward: publish again (the same bytes), then the rest */
	r->changed = 1;
	r->db_changed = is_pg(r);
	r->step = ROT_TEST_LOGIN;
	rot_next(r);
}

static void
rotate_resume(struct opsd *o, struct op *op)
{
	secret_rotate_recover(o, op);
}
