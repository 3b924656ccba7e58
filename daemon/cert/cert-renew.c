/*
 * A renewal: an op of kind cert.renew on the certificate's name.
 *
 *   backup     the files as they are (path, key, chain) copied to
 *              state_dir/certs/NAME.{crt,key,chain}.prev, mode 0600
 *   renew      the renew command (certbot, acme.sh, lego, anything)
 *   validate   the file changed and is valid: it parses, the key
 *              matches, not-before is past and not-after ahead, it
 *              verifies to ca_file or the system's roots with chain,
 *              and its names cover the old certificate's
 *   on_renew   the commands that make the servers load it (nginx -s
 *              reload, systemctl reload postgresql)
 *   confirm    every served_at endpoint serves the file's certificate
 *              (SHA-256 and serial)
 *
 * A renew command that fails, or writes a certificate that does not
 * validate, is rolled back: the saved files are put back, so the servers
 * keep (and on their next reload load) the old, working certificate.
 * After validate the new certificate is kept whatever happens: a failed
 * on_renew or confirm is a failure to alert on ("served certificate
 * differs from the file"), not a reason to install an older certificate.
 *
 * Each step's journal entry and its side effect run in loop iterations of
 * their own. After a crash (op recovery) a renewal stopped at backup is
 * rolled back (nothing had changed); at renew or validate, the file is
 * validated again (the renew command may have finished) and rolled back
 * if it does not pass; at on_renew or confirm both are done again: a
 * reload twice is harmless.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "cert-int.h"
#include "child.h"
#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "op.h"
#include "rpc.h"
#include "state.h"
#include "util.h"

enum ren_step {
	REN_BACKUP,
	REN_RENEW,
	REN_VALIDATE,
	REN_ON_RENEW,
	REN_CONFIRM,
	REN_NSTEPS
};

static const char *const ren_step_names[] = {
	"backup", "renew", "validate", "on_renew", "confirm"
};

static void	renew_resume(struct opsd *, struct op *);

const struct op_kind cert_renew_kind = {
	"cert.renew", ren_step_names, REN_NSTEPS, renew_resume, NULL, 0
};

#define CONFIRM_RETRY_MS	250

/* The files a renewal saves, and their names in state_dir/certs. */
enum { F_CRT, F_KEY, F_CHAIN, F_N };
static const char *const file_suffix[F_N] = { "crt", "key", "chain" };

struct renewal {
	struct cert		*c;
	struct op		*op;
	char			 op_id[64];
	int			 step;		/* -1 before the first */
	int			 next;
	int			 manual;
	int			 recovering;
	int			 rolling_back;
	struct cert_info	 old;
	int			 have_old;
	struct child		*child;
	unsigned int		 cmd;
	struct event		*timer;
	uint64_t		 confirm_deadline;	/* monotonic usec */
	char			 error[CERT_ERROR_MAX];
	int64_t			 started;
	struct rpc_followers	 followers;
};

static void	ren_next(struct renewal *);
static void	ren_fail(struct renewal *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	ren_end(struct renewal *, enum op_outcome);

static const char *
file_path(const struct cert_conf *cc, int f)
{
	return (f == F_CRT ? cc->path : f == F_KEY ? cc->key : cc->chain);
}

static char *
backup_name(const struct cert *c, int f)
{
	char	*name;

	xasprintf(&name, "%s.%s.prev", c->conf->name, file_suffix[f]);
	return (name);
}

static json_t *
ren_progress(struct renewal *r)
{
	return (json_pack("{s:s, s:s, s:s}", "op", r->op_id, "cert",
	    r->c->conf->name, "step", r->step >= 0 ? ren_step_names[r->step] :
	    ""));
}

static void
ren_listener(struct op *op, void *arg)
{
	struct renewal	*r = arg;

	if (op_state(op) != OP_RUNNING)
		return;
	rpc_followers_notify(&r->followers, "cert.progress", ren_progress(r));
}

static void
timer_in(struct renewal *r, event_callback_fn fn)
{
	struct timeval	tv = { 0, 0 };

	if (r->timer != NULL)
		event_free(r->timer);
	r->timer = evtimer_new(r->c->opsd->base, fn, r);
	evtimer_add(r->timer, &tv);
}

/* --- the files ----------------------------------------------------------- */

static int
save_backups(struct renewal *r)
{
	struct cert	*c = r->c;
	char		*dir = cert_state_dir(c->opsd), *name, *buf;
	size_t		 len;
	int		 f, e = 0;

	if ((e = state_mkdir(dir, 0700)) != 0) {
		ren_fail(r, "cannot create %s: %s", dir, strerror(-e));
		free(dir);
		return (-1);
	}
	for (f = 0; f < F_N; f++) {
		name = backup_name(c, f);
		if (file_path(c->conf, f) == NULL) {
			free(name);
			continue;
		}
		if ((buf = cert_read_file(file_path(c->conf, f), &len, &e)) ==
		    NULL) {
			ren_fail(r, "cannot read %s to save it: %s",
			    file_path(c->conf, f), strerror(-e));
			free(name);
			free(dir);
			return (-1);
		}
		e = state_write(dir, name, buf, len, 0600);
		memset(buf, 0, len);
		free(buf);
		free(name);
		if (e != 0) {
			ren_fail(r, "cannot save a copy of %s in %s: %s",
			    file_path(c->conf, f), dir, strerror(-e));
			free(dir);
			return (-1);
		}
	}
	free(dir);
	return (0);
}

static void
remove_backups(struct cert *c)
{
	char	*dir = cert_state_dir(c->opsd), *name, *path;
	int	 f;

	for (f = 0; f < F_N; f++) {
		name = backup_name(c, f);
		xasprintf(&path, "%s/%s", dir, name);
		unlink(path);
		free(path);
		free(name);
	}
	free(dir);
}

/* The saved certificate, parsed: what the renewal started from. */
static int
load_old(struct renewal *r)
{
	char	*path, *buf, err[CERT_ERROR_MAX];
	size_t	 len;
	int	 e;

	xasprintf(&path, "%s/certs/%s.crt.prev", r->c->opsd->conf->state_dir,
	    r->c->conf->name);
	buf = cert_read_file(path, &len, &e);
	free(path);
	if (buf == NULL)
		return (e);
	e = cert_parse_pem(buf, len, &r->old, err, sizeof err);
	free(buf);
	r->have_old = e == 0;
	return (e);
}

/*
 * Puts the saved files back where the current ones differ. 1 if it
 * changed something, 0 if nothing differed, -1 on an error (in
 * r->error's tail).
 */
static int
restore_backups(struct renewal *r)
{
	struct cert	*c = r->c;
	struct stat	 st;
	char		*dir = cert_state_dir(c->opsd), *name, *saved, *cur;
	char		*d, *slash;
	size_t		 slen, clen;
	mode_t		 mode;
	int		 f, e, changed = 0;

	for (f = 0; f < F_N; f++) {
		if (file_path(c->conf, f) == NULL)
			continue;
		name = backup_name(c, f);
		xasprintf(&saved, "%s/%s", dir, name);
		free(name);
		d = cert_read_file(saved, &slen, &e);
		free(saved);
		if (d == NULL) {
			size_t	n = strlen(r->error);

			snprintf(r->error + n, sizeof r->error - n, "; the saved "
			    "copy of %s is missing, it was not put back",
			    file_path(c->conf, f));
			changed = -1;
			continue;
		}
		cur = cert_read_file(file_path(c->conf, f), &clen, &e);
		if (cur != NULL && clen == slen && memcmp(cur, d, slen) == 0) {
			free(cur);
			memset(d, 0, slen);
			free(d);
			continue;
		}
		free(cur);
		mode = f == F_KEY ? 0600 : 0644;
		if (stat(file_path(c->conf, f), &st) == 0)
			mode = st.st_mode & 0777;
		name = xstrdup(file_path(c->conf, f));
		slash = strrchr(name, '/');
		*slash = '\0';
		e = state_write(name[0] != '\0' ? name : "/", slash + 1, d, slen,
		    mode);
		free(name);
		memset(d, 0, slen);
		free(d);
		if (e != 0) {
			size_t	n = strlen(r->error);

			snprintf(r->error + n, sizeof r->error - n, "; cannot put "
			    "%s back: %s", file_path(c->conf, f), strerror(-e));
			changed = -1;
		} else if (changed >= 0)
			changed = 1;
	}
	free(dir);
	return (changed);
}

/* --- the steps ----------------------------------------------------------- */

static void
step_backup(struct renewal *r)
{
	struct cert	*c = r->c;

	if (cert_load(c) != 0 && !c->have_info) {
		ren_fail(r, "the current certificate is unusable: %s",
		    c->file_error);
		return;
	}
	if (save_backups(r) != 0)
		return;
	if (load_old(r) != 0) {
		ren_fail(r, "the saved copy of %s does not parse",
		    c->conf->path);
		return;
	}
	ren_next(r);
}

static void	run_command(struct renewal *);

static void
command_done(struct child *ch, const struct child_result *res, void *arg)
{
	struct renewal	*r = arg;
	char		 why[CERT_ERROR_MAX];
	const char	*cmd = r->step == REN_RENEW ? r->c->conf->renew :
			    r->c->conf->on_renew[r->cmd];

	(void)ch;
	r->child = NULL;
	if (child_failed(res, why, sizeof why)) {
		ren_fail(r, "%s '%s' %s", r->step == REN_RENEW ? "renew" :
		    "on_renew", cmd, why);
		return;
	}
	if (r->step == REN_RENEW) {
		ren_next(r);
		return;
	}
	r->cmd++;
	run_command(r);
}

static void
spawn(struct renewal *r, const char *cmd, uint64_t timeout)
{
	struct cert_conf	*cc = r->c->conf;
	struct child_spec	 spec;
	const char		*argv[4];
	char			*env[5];
	int			 e, i;

	xasprintf(&env[0], "OPSD_CERT=%s", cc->name);
	xasprintf(&env[1], "OPSD_CERT_PATH=%s", cc->path);
	xasprintf(&env[2], "OPSD_CERT_KEY=%s", cc->key != NULL ? cc->key : "");
	xasprintf(&env[3], "OPSD_CERT_OLD_SHA256=%s", r->have_old ?
	    r->old.sha256 : "");
	env[4] = NULL;
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = cmd;
	argv[3] = NULL;
	memset(&spec, 0, sizeof spec);
	spec.argv = argv;
	spec.env = (const char *const *)env;
	spec.timeout_ms = timeout;
	r->child = child_spawn(r->c->opsd, &spec, command_done, r, &e);
	for (i = 0; i < 4; i++)
		free(env[i]);
	if (r->child == NULL)
		ren_fail(r, "cannot run '%s': %s", cmd, strerror(-e));
}

static void
run_command(struct renewal *r)
{
	if (r->cmd >= r->c->conf->non_renew) {
		ren_next(r);
		return;
	}
	spawn(r, r->c->conf->on_renew[r->cmd], r->c->conf->on_renew_timeout);
}

static void
step_validate(struct renewal *r)
{
	struct cert	*c = r->c;
	char		*buf, *chain = NULL, err[CERT_ERROR_MAX], missing[256];
	size_t		 len, clen = 0;
	int64_t		 now = (int64_t)time(NULL);
	int		 e;

	if (cert_load(c) != 0) {
		ren_fail(r, "the renewed certificate is unusable: %s",
		    c->file_error);
		return;
	}
	if (r->have_old && strcmp(c->info.sha256, r->old.sha256) == 0) {
		ren_fail(r, "the renew command left %s unchanged",
		    c->conf->path);
		return;
	}
	if (c->info.not_before > now) {
		ren_fail(r, "the renewed certificate is not valid yet "
		    "(not-before is in the future)");
		return;
	}
	if (c->info.not_after <= now) {
		ren_fail(r, "the renewed certificate has expired already");
		return;
	}
	if (r->have_old && !cert_names_cover(&r->old, &c->info, missing,
	    sizeof missing)) {
		ren_fail(r, "the renewed certificate does not cover the name "
		    "%s of the old one", missing);
		return;
	}
	if ((buf = cert_read_file(c->conf->path, &len, &e)) == NULL) {
		ren_fail(r, "cannot read %s: %s", c->conf->path, strerror(-e));
		return;
	}
	if (c->conf->chain != NULL && (chain = cert_read_file(c->conf->chain,
	    &clen, &e)) == NULL) {
		free(buf);
		ren_fail(r, "cannot read the chain %s: %s", c->conf->chain,
		    strerror(-e));
		return;
	}
	e = cert_verify(buf, len, chain, clen, c->conf->ca_file, now, err,
	    sizeof err);
	free(buf);
	free(chain);
	if (e != 0) {
		ren_fail(r, "the renewed certificate %s", err);
		return;
	}
	ren_next(r);
}

static void
step_confirm(struct renewal *r)
{
	/* a check of the file and of every endpoint; it calls back */
	if (r->confirm_deadline == 0)
		r->confirm_deadline = now_usec() + r->c->conf->confirm_timeout *
		    1000;
	r->c->after_renewal = 1;
	cert_check(r->c, NULL);
}

static void
confirm_again_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	step_confirm(arg);
}

void
cert_renew_confirmed(struct cert *c)
{
	struct renewal	*r = c->ren;
	char		 list[CERT_ERROR_MAX];
	unsigned int	 i;
	size_t		 o = 0;

	if (r == NULL || r->step != REN_CONFIRM)
		return;
	list[0] = '\0';
	for (i = 0; i < c->conf->neps && o < sizeof list; i++)
		if (c->eps[i].matches != CERT_SERVED_MATCHES)
			o += (size_t)snprintf(list + o, sizeof list - o, "%s%s: %s",
			    o ? "; " : "", c->conf->eps[i].text,
			    c->eps[i].error);
	if (o > 0 && now_usec() < r->confirm_deadline) {
		/*
		 * nginx -s reload and pg_ctl reload return before the new
		 * workers serve: ask again until confirm_timeout.
		 */
		struct timeval	tv = { 0, CONFIRM_RETRY_MS * 1000 };

		if (r->timer != NULL)
			event_free(r->timer);
		r->timer = evtimer_new(c->opsd->base, confirm_again_cb, r);
		evtimer_add(r->timer, &tv);
		return;
	}
	cert_served_alert(c, o > 0);
	if (o > 0) {
		ren_fail(r, "served certificate differs from the file: %s",
		    list);
		return;
	}
	ren_next(r);
}

static void
effect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct renewal	*r = arg;

	(void)fd;
	(void)what;
	switch (r->step) {
	case REN_BACKUP:
		step_backup(r);
		break;
	case REN_RENEW:
		spawn(r, r->c->conf->renew, r->c->conf->renew_timeout);
		break;
	case REN_VALIDATE:
		step_validate(r);
		break;
	case REN_ON_RENEW:
		r->cmd = 0;
		run_command(r);
		break;
	default:
		step_confirm(r);
		break;
	}
}

/*
 * The step goes into the journal in one loop iteration, its side effect
 * runs in the next (the same spacing as the other ops).
 */
static void
journal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct renewal	*r = arg;
	int		 e;

	(void)fd;
	(void)what;
	r->step = r->next;
	if ((e = op_step(r->op, (unsigned int)r->step)) != 0) {
		ren_fail(r, "cannot record step %s in the op journal: %s",
		    ren_step_names[r->step], strerror(-e));
		return;
	}
	timer_in(r, effect_cb);
}

static void
finish_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ren_end(arg, OP_OK);
}

static void
ren_next(struct renewal *r)
{
	int	next = r->step + 1;

	if (next == REN_ON_RENEW && r->c->conf->non_renew == 0)
		next = REN_CONFIRM;
	if (next == REN_CONFIRM && r->c->conf->neps == 0)
		next = REN_NSTEPS;
	if (next >= REN_NSTEPS) {
		timer_in(r, finish_cb);
		return;
	}
	r->next = next;
	timer_in(r, journal_cb);
}

static void
ren_fail(struct renewal *r, const char *fmt, ...)
{
	va_list	ap;
	int	restored = 0;

	if (r->rolling_back)
		return;
	r->rolling_back = 1;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof r->error, fmt, ap);
	va_end(ap);
	if (r->child != NULL) {
		child_abandon(r->child);
		r->child = NULL;
	}
	/* before validate passed: the old certificate goes back */
	if (r->step == REN_RENEW || r->step == REN_VALIDATE) {
		restored = restore_backups(r);
		if (restored == 1) {
			cert_load(r->c);
			ren_end(r, OP_ROLLED_BACK);
			return;
		}
	}
	ren_end(r, OP_FAILED);
}

/* --- the end --------------------------------------------------------------- */

static void
ren_end(struct renewal *r, enum op_outcome outcome)
{
	struct cert	*c = r->c;
	const char	*result;
	json_t		*fin;
	char		 when[64];

	result = outcome == OP_OK ? "ok" : outcome == OP_ROLLED_BACK ?
	    "rolled_back" : "failed";
	if (r->op != NULL) {
		if (outcome == OP_OK)
			op_finish(r->op, OP_OK, NULL);
		else
			op_finish(r->op, outcome, "%s", r->error);
		r->op = NULL;
	}
	c->ren = NULL;
	if (outcome == OP_OK || outcome == OP_ROLLED_BACK)
		remove_backups(c);
	cert_renewal_ended(c, result, r->op_id, outcome == OP_OK ? NULL :
	    r->error);
	if (r->recovering)
		cert_event(c, &EVT_CERT_RECOVERED, NULL, 0, r->op_id, "cert %s: "
		    "the renewal interrupted by a restart ended: %s", 
		    c->conf->name, result);
	if (outcome == OP_OK) {
		util_iso_time(c->info.not_after, when, sizeof when);
		if (c->failed_firing) {
			c->failed_firing = 0;
			cert_event(c, &EVT_CERT_RENEWAL_FAILED, "cert.renewal", 0,
			    r->op_id, "cert %s: renewal works again",
			    c->conf->name);
		}
		cert_event(c, &EVT_CERT_RENEWED, NULL, 0, r->op_id, "cert %s "
		    "renewed: valid until %s, served at %u endpoint%s",
		    c->conf->name, when, c->conf->neps, c->conf->neps == 1 ?
		    "" : "s");
	} else {
		c->failed_firing = 1;
		c->event_error = r->error;
		cert_event(c, &EVT_CERT_RENEWAL_FAILED, "cert.renewal", 1,
		    r->op_id, "cert %s: renewal FAILED at step %s (%s): %s",
		    c->conf->name, r->step >= 0 ? ren_step_names[r->step] :
		    "start", outcome == OP_ROLLED_BACK ? "rolled back, the old "
		    "certificate kept" : r->step >= REN_ON_RENEW ? "the new "
		    "certificate is in the file" : "nothing changed", r->error);
		c->event_error = NULL;
	}
	fin = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?}", "op", r->op_id,
	    "cert", c->conf->name, "result", result, "step", r->step >= 0 ?
	    ren_step_names[r->step] : NULL, "error", outcome == OP_OK ? NULL :
	    r->error, "sha256", c->have_info ? c->info.sha256 : NULL);
	rpc_followers_end(&r->followers, "cert.finished", fin);
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->child != NULL)
		child_abandon(r->child);
	free(r);
}

/* --- starting -------------------------------------------------------------- */

static struct renewal *
ren_new(struct cert *c)
{
	struct renewal	*r;

	r = xcalloc(1, sizeof *r);
	r->c = c;
	r->step = -1;
	r->started = (int64_t)time(NULL);
	return (r);
}

int
cert_renew(struct cert *c, int manual, struct rpc_pending *follower,
    char **id, char **err)
{
	struct opsd	*o = c->opsd;
	struct renewal	*r;
	char		*msg = NULL;
	int		 e;

	*id = NULL;
	*err = NULL;
	if (o->stopping) {
		xasprintf(err, "opsd is stopping");
		return (-ESHUTDOWN);
	}
	if (c->conf->renew == NULL) {
		xasprintf(err, "cert %s has no renew command", c->conf->name);
		return (-EINVAL);
	}
	if (c->ren != NULL) {
		xasprintf(err, "a renewal of cert %s is under way (op %s%s)",
		    c->conf->name, c->ren->op_id, c->ren->recovering ?
		    ", recovering" : "");
		return (-EBUSY);
	}
	r = ren_new(c);
	r->manual = manual;
	if ((e = op_begin(o, &cert_renew_kind, c->conf->name, &r->op,
	    &msg)) != 0) {
		xasprintf(err, "%s", msg != NULL ? msg : strerror(-e));
		free(msg);
		free(r);
		return (e);
	}
	snprintf(r->op_id, sizeof r->op_id, "%s", op_id(r->op));
	op_listen(r->op, ren_listener, r);
	if (follower != NULL)
		rpc_followers_add(&r->followers, follower);
	c->ren = r;
	*id = xstrdup(r->op_id);
	/* from the loop: the caller answers before the first step */
	ren_next(r);
	return (0);
}

void
cert_renew_abandon(struct cert *c)
{
	struct renewal	*r = c->ren;

	if (r == NULL)
		return;
	/* the op stays on disk: the next start recovers it */
	c->ren = NULL;
	if (r->child != NULL)
		child_abandon(r->child);
	if (r->timer != NULL)
		event_free(r->timer);
	rpc_followers_end(&r->followers, NULL, NULL);
	free(r);
}

json_t *
cert_renew_json(const struct cert *c)
{
	const struct renewal	*r = c->ren;
	char			 when[64];

	if (r == NULL)
		return (json_null());
	util_iso_time(r->started, when, sizeof when);
	return (json_pack("{s:s, s:s, s:s, s:b}", "op", r->op_id, "step",
	    r->step >= 0 ? ren_step_names[r->step] : "", "started", when,
	    "recovered", r->recovering));
}

/* --- after a crash ---------------------------------------------------------- */

static void
renew_resume(struct opsd *o, struct op *op)
{
	struct cert	*c = cert_find(o, op_object(op));
	struct renewal	*r;
	unsigned int	 step = op_step_index(op);

	if (c == NULL) {
		op_finish(op, OP_ABANDONED, "no [cert %s] in the configuration "
		    "any more", op_object(op));
		return;
	}
	if (c->ren != NULL) {
		op_finish(op, OP_ABANDONED, "another renewal of %s is under way",
		    c->conf->name);
		return;
	}
	r = ren_new(c);
	r->op = op;
	r->recovering = 1;
	snprintf(r->op_id, sizeof r->op_id, "%s", op_id(op));
	c->ren = r;
	op_listen(op, ren_listener, r);
	if (step == OP_NO_STEP || step == REN_BACKUP) {
		/* the renew command had not run: nothing changed */
		r->step = REN_BACKUP;
		snprintf(r->error, sizeof r->error, "interrupted by a restart "
		    "before the renew command ran; nothing changed");
		r->rolling_back = 1;
		ren_end(r, OP_ROLLED_BACK);
		return;
	}
	if (load_old(r) != 0 && step <= REN_VALIDATE) {
		r->step = (int)step;
		r->rolling_back = 1;
		snprintf(r->error, sizeof r->error, "interrupted by a restart "
		    "at step %s, and the saved copy of the old certificate is "
		    "missing: check %s by hand", ren_step_names[step],
		    c->conf->path);
		ren_end(r, OP_FAILED);
		return;
	}
	/* validate again (renew may have finished), or reload again */
	r->step = step <= REN_VALIDATE ? REN_RENEW : REN_VALIDATE;
	ren_next(r);
}
