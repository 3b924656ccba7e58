/*
 * A rotation's way back (the role's password set back, the files
 * published again, on_rotate run again), and what the next start does
 * with a rotation a crash interrupted.
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

/* --- back ----------------------------------------------------------------- */

/*
 * The undo, in order: the database (the old password back), the files
 * (published again from the current version), the consumers (on_rotate
 * again), then the pending version is dropped. secret_rb_next() takes the next
 * phase that is left to do.
 */
static void
rb_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	secret_rb_next(arg);
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
		secret_rot_close_session(r);
		secret_rot_timer_in(r, RECOVER_RETRY_SEC * 1000, rb_retry);
		return;
	}
	r->db_retry = 0;
	r->db_changed = 0;
	secret_rb_next(r);
}

void
secret_rb_next(struct rot *r)
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
			secret_rot_alter(r, r->target, old, 1, rb_db_done);
			return;
		}
		r->db_changed = 0;
	}
	secret_rot_close_session(r);
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
				secret_rot_command(r, 1);
				return;
			}
		}
	}
	secret_version_label(r->version, label, sizeof label);
	secret_value_remove(secret_rot_opsd(r), r->s->conf->name, label);
	secret_rot_end(r, r->changed ? OP_ROLLED_BACK : OP_FAILED);
}

void
secret_rot_fail(struct rot *r, const char *fmt, ...)
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
		secret_rot_close_session(r);
	secret_rb_next(r);
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
	r = secret_rot_new(s);
	r->op = op;
	r->recovering = 1;
	r->step = ROT_PROMOTE;
	r->version = s->meta.version;
	r->initial = s->meta.nhist == 0 && strcmp(s->meta.origin,
	    "generated") == 0;
	snprintf(r->op_id, sizeof r->op_id, "%s", op_id(op));
	s->rot = r;
	secret_prune_versions(s);
	secret_env_sync(s);
	secret_rot_end(r, OP_OK);
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
	r = secret_rot_new(s);
	r->op = op;
	r->recovering = 1;
	r->manual = s->last_manual = op_get(op, "manual") != NULL;
	snprintf(r->op_id, sizeof r->op_id, "%s", op_id(op));
	r->step = step == OP_NO_STEP ? -1 : (int)step;
	s->rot = r;
	op_listen(op, secret_rot_listener, r);
	if (secret_rot_load_values(r) != 0) {
		snprintf(r->error, sizeof r->error, "version %lld is missing "
		    "from the state", (long long)s->meta.version);
		r->rolling_back = 1;
		secret_rb_next(r);
		return;
	}
	if (secret_rot_is_pg(r))
		snprintf(r->target, sizeof r->target, "%s",
		    secret_other_role(s));
	secret_version_label(r->version, label, sizeof label);
	if (step == OP_NO_STEP || step == ROT_GENERATE) {
		/* stopped before write_files: rolled back, its value dropped */
		snprintf(r->error, sizeof r->error, "interrupted by a restart "
		    "while generating; the new value was discarded");
		r->rolling_back = 1;
		r->changed = 1;
		secret_rb_next(r);
		return;
	}
	if (step < ROT_WRITE_FILES || hint != NULL || secret_value_read(o,
	    s->conf->name, label, r->pending, sizeof r->pending) != 0) {
		snprintf(r->error, sizeof r->error, "interrupted by a restart "
		    "at step %s", secret_rot_step_names[step]);
		r->rolling_back = 1;
		r->changed = 1;
		r->db_changed = secret_rot_is_pg(r);
		r->files_written = step >= ROT_WRITE_FILES;
		r->on_rotate_ran = step >= ROT_ON_ROTATE;
		op_set(op, "rollback", "yes");
		secret_rb_next(r);
		return;
	}
	/* forward: publish again (the same bytes), then the rest */
	r->changed = 1;
	r->db_changed = secret_rot_is_pg(r);
	r->step = ROT_TEST_LOGIN;
	secret_rot_next(r);
}

void
secret_rotate_resume(struct opsd *o, struct op *op)
{
	secret_rotate_recover(o, op);
}

