/*
 * Automatic recovery, Monit's "if failed ... then restart" done carefully:
 * what a probe does when it goes down, beside alerting.
 *
 * - on_down = restart runs `restart` (through core/child.c, with its
 *   timeout) when the probe is down, and again after restart_grace while
 *   it stays down; on_down = exec runs it once per time the probe goes
 *   down. A restart is an op of kind probe.restart on the probe's
 *   `service`: it is refused while a cutover or a rotation of that
 *   service is unfinished, and they are refused while it runs.
 * - The budget: restart_limit = N in WINDOW, the restarts of a window
 *   spaced by restart_backoff doubling. Once it is spent no restart is
 *   tried for restart_cooldown and ONE "flapping" alert fires (not one
 *   per restart); it resolves, and the budget is reset, once the probe
 *   has stayed up for a whole window (Monit #546/#787: a failure counter
 *   never reset after a restart made it loop).
 * - While a restart runs and for its grace a failed result is not judged;
 *   the failure streak starts again after it, so a second restart needs
 *   `fall` new failures.
 * - depends_on: while a dependency is failing this probe's down alerts are
 *   held (the dependency's own alert is the one root cause) and no
 *   restart is tried. Maintenance windows (daemon/maint/) hold the same.
 *   A down alert held is raised once the hold ends and the probe is still
 *   down; with on_down, recovery (its restarts, then its flapping alert)
 *   owns the probe's alerts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "alert.h"
#include "child.h"
#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "ini.h"
#include "maint.h"
#include "metrics.h"
#include "op.h"
#include "opsd-parse.h"
#include "probe.h"
#include "util.h"

const struct evt_type EVT_PROBE_RESTART = {
	"probe.restart", "cc71aa13135445bc955556d757d0ebe8", LOG_WARNING };
const struct evt_type EVT_PROBE_FLAPPING = {
	"probe.flapping", "5684d9c328e948b6ba84481292446bad", LOG_ERR };
const struct evt_type EVT_PROBE_HELD = {
	"probe.held", "8052aba8b6b9496495865f5e9dfff264", LOG_NOTICE };

#define RESTART_MAX	100	/* N of restart_limit, at most */

static const char *const restart_steps[] = { "restart" };

static void	restart_rollback(struct opsd *, struct op *);

const struct op_kind probe_restart_kind = {
	"probe.restart", restart_steps, 1, NULL, restart_rollback,
	1	/* service_lock: never beside a cutover or a rotation */
};

enum { RS_OK, RS_FAILED, RS_TIMEOUT, RS_N };
static const char *const result_names[RS_N] = { "ok", "failed", "timeout" };

struct probe_recover {
	struct probe	*probe;
	struct child	*child;
	struct op	*op;
	uint64_t	 child_start;		/* monotonic usec */
	uint64_t	*times;		/* starts in the window */
	unsigned int	 n;
	unsigned int	 ntimes;	/* room in times */
	uint64_t	 grace_until;
	uint64_t	 up_since;
	uint64_t	 cooldown_until;
	int		 flapping;	/* budget spent: none until cooldown */
	int		 fired;		/* a firing alert of this probe is out */
	int		 held_down;	/* a down alert was held */
	int		 exec_ran;	/* on_down = exec, for this time down */
	char		 held[160];	/* the hold last told, "" none */
	char		 lock[160];	/* the op a restart waits for */
	uint64_t	 gen;
	uint64_t	 count[RS_N];
	/* depends_on resolved: probes are replaced only by a reload */
	struct probe	**deps;
	unsigned int	  ndeps;
	unsigned int	  deps_reloads;
	int		  deps_valid;
};

/* --- configuration ------------------------------------------------------ */

/* "3 in 10m": 0 with max and window (msec) set, or -1. */
static int
parse_limit(const char *s, uint64_t *max, uint64_t *window)
{
	char		 num[16], dur[32], rest;
	uint64_t	 n, w;

	if (sscanf(s, "%15s in %31s %c", num, dur, &rest) != 2 ||
	    parse_uint(num, 1, RESTART_MAX, &n) != 0 ||
	    parse_duration(dur, &w) != 0 || w < 1000 ||
	    w > 7ULL * 86400 * 1000)
		return (-1);
	*max = n;
	*window = w;
	return (0);
}

static int
name_ok(const char *s)
{
	size_t	i, n = strlen(s);

	if (n == 0 || n > 127)
		return (0);
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return (0);
	return (1);
}

void
probe_recover_conf_check(struct probe_conf *pc, const char *file,
    const int *keylines, struct config_errors *errs)
{
	static const char *const needs_on_down[] = {
		"restart", "restart_backoff", "restart_cooldown",
		"restart_grace", "restart_limit", "restart_timeout", NULL
	};
	int	i, kl;

	pc->depends_line = ini_keyline(&probe_section, keylines,
	    "depends_on");
	if (pc->on_down == PROBE_ON_DOWN_NONE) {
		for (i = 0; needs_on_down[i] != NULL; i++)
			if ((kl = ini_keyline(&probe_section, keylines,
			    needs_on_down[i])) != 0)
				ini_error(errs, file, kl, "'%s' needs "
				    "on_down = restart or exec",
				    needs_on_down[i]);
	} else if (pc->restart == NULL)
		ini_error(errs, file, ini_keyline(&probe_section, keylines,
		    "on_down"), "on_down = %s needs 'restart', the command "
		    "to run", pc->on_down == PROBE_ON_DOWN_EXEC ? "exec" :
		    "restart");
	if (pc->restart_limit != NULL && parse_limit(pc->restart_limit,
	    &pc->restart_max, &pc->restart_window) != 0)
		ini_error(errs, file, ini_keyline(&probe_section, keylines,
		    "restart_limit"), "restart_limit '%s': use 'N in "
		    "DURATION' with N from 1 to %d and a duration from 1s "
		    "to 7d, e.g. '3 in 10m'", pc->restart_limit, RESTART_MAX);
	if (pc->service != NULL && !name_ok(pc->service))
		ini_error(errs, file, ini_keyline(&probe_section, keylines,
		    "service"), "service '%s': letters, digits, '-', '_' "
		    "and '.' only", pc->service);
}

/* depends_on: the names exist, are not the probe itself, make no cycle. */
void
probe_recover_check_refs(struct opsd_config *conf,
    struct config_errors *errs)
{
	struct probe_conf	*pc, *q, *path[64];
	unsigned int		 i, j, k, depth, n;
	int			 bad;

	n = config_count(conf, &probe_section);
	for (i = 0; (pc = config_at(conf, &probe_section, i)) != NULL; i++) {
		bad = 0;
		for (j = 0; j < pc->ndepends_on; j++) {
			if (strcmp(pc->depends_on[j], pc->name) == 0) {
				ini_error(errs, conf->path, pc->depends_line,
				    "depends_on: [probe %s] cannot depend on "
				    "itself", pc->name);
				bad = 1;
			} else if (config_find(conf, &probe_section,
			    pc->depends_on[j]) == NULL) {
				ini_error(errs, conf->path, pc->depends_line,
				    "depends_on: no [probe %s] section",
				    pc->depends_on[j]);
				bad = 1;
			}
		}
		if (bad || pc->ndepends_on == 0)
			continue;
		/*
		 * A walk along first dependencies would miss cycles through
		 * the others: a depth-first walk over all of them, bounded by
		 * the number of probes (a path longer than that repeats).
		 */
		path[0] = pc;
		depth = 1;
		{
			unsigned int	 idx[64];

			idx[0] = 0;
			while (depth > 0) {
				struct probe_conf *top = path[depth - 1];

				if (idx[depth - 1] >= top->ndepends_on ||
				    depth >= nitems(path) || depth > n) {
					depth--;
					if (depth > 0)
						idx[depth - 1]++;
					continue;
				}
				q = config_find(conf, &probe_section,
				    top->depends_on[idx[depth - 1]]);
				if (q == NULL || q->kind < 0) {
					idx[depth - 1]++;
					continue;
				}
				if (q == pc) {
					char	 cyc[512];
					size_t	 off = 0;

					cyc[0] = '\0';
					for (k = 0; k < depth && off <
					    sizeof cyc; k++)
						off += (size_t)snprintf(cyc +
						    off, sizeof cyc - off,
						    "%s -> ", path[k]->name);
					ini_error(errs, conf->path,
					    pc->depends_line, "depends_on: a "
					    "cycle: %s%s", cyc, pc->name);
					break;
				}
				path[depth] = q;
				idx[depth] = 0;
				depth++;
			}
		}
	}
}

/* --- state --------------------------------------------------------------- */

/*
 * Allocated for a probe once it needs one: with on_down, depends_on, or
 * when an alert of it fired or was held; a plain probe carries a NULL.
 */
static struct probe_recover *
rec_get(struct probe *p)
{
	if (p->rec == NULL) {
		p->rec = xcalloc(1, sizeof *p->rec);
		p->rec->probe = p;
	}
	return (p->rec);
}

/* The i-th dependency, or NULL; found once per configuration. */
static struct probe *
dep_at(struct probe *p, unsigned int i)
{
	struct probe_recover	*rec = rec_get(p);
	unsigned int		 j;

	if (!rec->deps_valid || rec->deps_reloads != p->opsd->reloads ||
	    rec->ndeps != p->conf->ndepends_on) {
		free(rec->deps);
		rec->ndeps = p->conf->ndepends_on;
		rec->deps = xcalloc(rec->ndeps + 1, sizeof *rec->deps);
		for (j = 0; j < rec->ndeps; j++)
			rec->deps[j] = probe_find(p->opsd,
			    p->conf->depends_on[j]);
		rec->deps_reloads = p->opsd->reloads;
		rec->deps_valid = 1;
	}
	return (i < rec->ndeps ? rec->deps[i] : NULL);
}

static const char *
service_of(const struct probe *p)
{
	return (p->conf->service != NULL ? p->conf->service : p->conf->name);
}

static int
dep_failing(const struct probe *q)
{
	return (q->state == PROBE_DOWN || (q->has_last && !probe_last(q)->ok));
}

static void
hhmm(int64_t t, char *buf, size_t len)
{
	struct tm	tm;
	time_t		tt = (time_t)t;

	localtime_r(&tt, &tm);
	if (t - (int64_t)time(NULL) < 86400)
		strftime(buf, len, "%H:%M", &tm);
	else
		strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
}

/*
 * Why the probe's alerts and restarts are held now: 0 none, 1 a
 * maintenance window, 2 a failing dependency; the words in buf.
 */
static int
held_why(struct probe *p, char *buf, size_t len)
{
	const struct maint_window	*m;
	struct probe			*q;
	unsigned int			 i;
	char				 t[32];

	buf[0] = '\0';
	if ((m = maint_covering(p->opsd, p->conf->name,
	    p->conf->service)) != NULL) {
		if (m->until != 0) {
			hhmm(m->until, t, sizeof t);
			snprintf(buf, len, "maintenance until %s", t);
		} else
			snprintf(buf, len, "maintenance");
		return (1);
	}
	for (i = 0; i < p->conf->ndepends_on; i++) {
		if ((q = dep_at(p, i)) != NULL && dep_failing(q)) {
			snprintf(buf, len, "depends on %s", q->conf->name);
			return (2);
		}
	}
	return (0);
}

uint64_t
probe_recover_generation(struct probe *p)
{
	struct probe	*q;
	uint64_t	 g = maint_generation(p->opsd) << 32;
	unsigned int	 i;

	if (p->rec != NULL)
		g += p->rec->gen;
	/* "held: depends on db" follows whether the dependency fails */
	for (i = 0; i < p->conf->ndepends_on && i < 16; i++)
		if ((q = dep_at(p, i)) != NULL && dep_failing(q))
			g += (uint64_t)1 << (16 + i);
	return (g);
}

int
probe_name_known(struct opsd *o, const char *name)
{
	struct probe	*p;
	unsigned int	 i;

	for (i = 0; (p = probe_at(o, i)) != NULL; i++)
		if (strcmp(p->conf->name, name) == 0 ||
		    (p->conf->service != NULL && strcmp(p->conf->service,
		    name) == 0))
			return (1);
	return (0);
}

/* --- events and alerts --------------------------------------------------- */

static void
held_event(struct probe *p, const char *why, const char *what)
{
	struct evt	*ev;

	ev = evt_new(&EVT_PROBE_HELD);
	evt_add(ev, "probe", "%s", p->conf->name);
	evt_add(ev, "why", "%s", why);
	evt_add(ev, "held", "%s", what);
	evt_emit(ev, "probe %s is down, its %s held: %s", p->conf->name, what,
	    why);
}

/* A down alert that was held goes out now that the hold ended. */
static void
raise_held(struct probe *p)
{
	struct evt	*ev;

	ev = evt_new(&EVT_PROBE_STATE);
	evt_add(ev, "probe", "%s", p->conf->name);
	evt_add(ev, "kind", "%s", probe_kind_name(p->conf->kind));
	evt_add(ev, "state", "down");
	evt_add(ev, "prev_state", "down");
	evt_add(ev, "reason", "%s", probe_last_reason(p));
	evt_add(ev, "held", "released");
	evt_alert(ev, (const char *const *)p->conf->alert, p->conf->nalert,
	    "probe", p->conf->name, 1);
	evt_emit(ev, "probe %s is still down after its alerts were held: %s",
	    p->conf->name, probe_last_reason(p));
}

static void
flapping_event(struct probe *p, int firing, int alert)
{
	struct probe_recover	*rec = p->rec;
	struct evt		*ev;
	char			 w[32], cd[32];

	format_duration(p->conf->restart_window, w, sizeof w);
	format_duration(p->conf->restart_cooldown != 0 ?
	    p->conf->restart_cooldown : p->conf->restart_window, cd,
	    sizeof cd);
	ev = evt_new(&EVT_PROBE_FLAPPING);
	if (!firing)
		evt_set_priority(ev, LOG_NOTICE);
	evt_add(ev, "probe", "%s", p->conf->name);
	evt_add(ev, "service", "%s", service_of(p));
	evt_add(ev, "state", "%s", firing ? "firing" : "resolved");
	evt_add(ev, "restarts", "%u", rec->n);
	evt_add(ev, "restart_limit", "%s", p->conf->restart_limit);
	evt_add(ev, "cooldown", "%s", cd);
	if (p->has_last)
		evt_add(ev, "reason", "%s", probe_last_reason(p));
	if (alert && p->conf->nalert > 0)
		evt_alert(ev, (const char *const *)p->conf->alert,
		    p->conf->nalert, "probe", p->conf->name, firing);
	if (firing)
		evt_emit(ev, "probe %s is flapping: %u restarts in %s did not "
		    "keep it up; no restart for %s", p->conf->name, rec->n, w,
		    cd);
	else
		evt_emit(ev, "probe %s has stayed up for %s: the restart "
		    "budget is reset", p->conf->name, w);
}

int
probe_recover_alert(struct probe *p, enum probe_state prev)
{
	struct probe_recover	*rec = rec_get(p);
	char			 why[160];

	(void)prev;
	if (p->state == PROBE_DOWN) {
		if (p->conf->on_down != PROBE_ON_DOWN_NONE) {
			/* recovery owns it: restarts, then one flapping */
			rec->held_down = 1;
			return (0);
		}
		if (held_why(p, why, sizeof why) != 0) {
			rec->held_down = 1;
			snprintf(rec->held, sizeof rec->held, "%s", why);
			rec->gen++;
			held_event(p, why, "alerts");
			return (0);
		}
		rec->fired = 1;
		rec->held_down = 0;
		return (1);
	}
	/* a resolve: only of an alert that went out */
	rec->held_down = 0;
	if (p->conf->on_down != PROBE_ON_DOWN_NONE)
		return (0);	/* the flapping alert resolves on its own */
	if (rec->fired) {
		rec->fired = 0;
		return (1);
	}
	return (0);
}

int
probe_recover_grace(struct probe *p)
{
	return (p->rec != NULL && (p->rec->child != NULL ||
	    now_usec() < p->rec->grace_until));
}

/* --- restarts ------------------------------------------------------------ */

static void
restart_rollback(struct opsd *o, struct op *op)
{
	(void)o;
	op_finish(op, OP_ABANDONED, "opsd stopped while the restart command "
	    "ran; it is not run again, the probe decides anew");
}

static void
restart_event(struct probe *p, const char *result, uint64_t usec,
    const char *detail)
{
	struct probe_recover	*rec = p->rec;
	struct evt		*ev;

	ev = evt_new(&EVT_PROBE_RESTART);
	if (strcmp(result, "ok") == 0 || strcmp(result, "started") == 0)
		evt_set_priority(ev, LOG_NOTICE);
	evt_add(ev, "probe", "%s", p->conf->name);
	evt_add(ev, "service", "%s", service_of(p));
	evt_add(ev, "result", "%s", result);
	evt_add(ev, "attempt", "%u", rec->n);
	evt_add(ev, "restart_limit", "%s", p->conf->restart_limit);
	if (rec->op != NULL)
		evt_add(ev, "op", "%s", op_id(rec->op));
	if (strcmp(result, "started") != 0)
		evt_add(ev, "duration_ms", "%llu",
		    (unsigned long long)(usec / 1000));
	if (detail[0] != '\0')
		evt_add(ev, "detail", "%s", detail);
	if (strcmp(result, "started") == 0)
		evt_emit(ev, "probe %s is down: restarting %s (%u of %s)",
		    p->conf->name, service_of(p), rec->n,
		    p->conf->restart_limit);
	else
		evt_emit(ev, "probe %s: the restart of %s %s%s%s",
		    p->conf->name, service_of(p), strcmp(result, "ok") == 0 ?
		    "ran" : strcmp(result, "timeout") == 0 ? "timed out" :
		    "failed", detail[0] ? ": " : "", detail);
}

static void
restart_done(struct child *c, const struct child_result *res, void *arg)
{
	struct probe_recover	*rec = arg;
	struct probe		*p = rec->probe;
	char			 how[256], line[160];
	size_t			 n;
	int			 r;

	(void)c;
	rec->child = NULL;
	n = strcspn(res->out, "\n");
	util_utf8_sanitize(line, sizeof line, res->out,
	    util_utf8_cut(res->out, n, sizeof line - 1));
	if (res->timed_out) {
		r = RS_TIMEOUT;
		format_duration(p->conf->restart_timeout, how, sizeof how);
		snprintf(how + strlen(how), sizeof how - strlen(how),
		    " passed, the command was killed");
	} else if (WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0) {
		r = RS_OK;
		snprintf(how, sizeof how, "%s", line);
	} else {
		r = RS_FAILED;
		child_describe(res, how, sizeof how);
		if (line[0] != '\0')
			snprintf(how + strlen(how), sizeof how - strlen(how),
			    ": %s", line);
	}
	rec->count[r]++;
	rec->grace_until = now_usec() + p->conf->restart_grace * 1000;
	rec->exec_ran = 1;
	/* judged anew after the grace: `fall` new failures for another */
	p->fail_streak = 0;
	rec->gen++;
	restart_event(p, result_names[r], res->usec, how);
	if (rec->op != NULL) {
		if (r == RS_OK)
			op_finish(rec->op, OP_OK, NULL);
		else
			op_finish(rec->op, OP_FAILED, "%s", how);
		rec->op = NULL;
	}
}

/* A restart due but not begun: said once, shown until the next one. */
static void
hold_restart(struct probe *p, const char *why)
{
	struct probe_recover	*rec = p->rec;

	if (strcmp(rec->lock, why) == 0)
		return;
	snprintf(rec->lock, sizeof rec->lock, "%s", why);
	rec->gen++;
	held_event(p, why, "restart");
}

static void
restart_start(struct probe *p)
{
	struct probe_recover	*rec = p->rec;
	const char		*argv[] = { "/bin/sh", "-c", p->conf->restart,
				    NULL };
	struct child_spec	 spec;
	char			*err = NULL;
	int			 e;

	e = op_begin(p->opsd, &probe_restart_kind, service_of(p), &rec->op,
	    &err);
	if (e == -ENODEV) {
		/* opsd runs on without a journal: no lock to take or check */
		free(err);
		err = NULL;
	} else if (e != 0) {
		hold_restart(p, err);
		free(err);
		return;
	} else {
		op_set(rec->op, "probe", p->conf->name);
		if ((e = op_step(rec->op, 0)) != 0) {
			char	msg[160];

			snprintf(msg, sizeof msg, "cannot record the restart in "
			    "the op journal: %s", strerror(-e));
			op_finish(rec->op, OP_FAILED, "%s", msg);
			rec->op = NULL;
			hold_restart(p, msg);
			return;
		}
	}
	if (rec->n >= rec->ntimes) {
		rec->ntimes = rec->n + 1 > p->conf->restart_max ? rec->n + 1 :
		    (unsigned int)p->conf->restart_max;
		rec->times = xreallocarray(rec->times, rec->ntimes,
		    sizeof *rec->times);
	}
	rec->times[rec->n++] = now_usec();
	rec->lock[0] = '\0';
	memset(&spec, 0, sizeof spec);
	spec.argv = argv;
	spec.timeout_ms = p->conf->restart_timeout;
	spec.max_output = 4096;
	spec.merge_stderr = 1;
	rec->child_start = now_usec();
	rec->gen++;
	restart_event(p, "started", 0, "");
	if ((rec->child = child_spawn(p->opsd, &spec, restart_done, rec,
	    &e)) == NULL) {
		char	msg[160];

		snprintf(msg, sizeof msg, "cannot start it: %s",
		    strerror(-e));
		rec->count[RS_FAILED]++;
		rec->grace_until = now_usec() +
		    p->conf->restart_grace * 1000;
		restart_event(p, "failed", 0, msg);
		if (rec->op != NULL)
			op_finish(rec->op, OP_FAILED, "%s", msg);
		rec->op = NULL;
	}
}

void
probe_recover_done(struct probe *p, enum probe_state prev)
{
	struct probe_recover	*rec;
	const struct probe_conf	*c = p->conf;
	uint64_t		 now = now_usec(), cooldown, wait;
	char			 why[160];
	unsigned int		 i, j;
	int			 h;

	h = held_why(p, why, sizeof why);
	if (p->rec == NULL && c->on_down == PROBE_ON_DOWN_NONE && h == 0)
		return;		/* nothing held, nothing to restart */
	rec = rec_get(p);
	/*
	 * Said when restarts are held for a probe that is down: when it goes
	 * down under a hold that began while it was up, or the hold changes.
	 */
	if (h != 0 && p->state == PROBE_DOWN && c->on_down !=
	    PROBE_ON_DOWN_NONE && (prev != PROBE_DOWN ||
	    strcmp(why, rec->held) != 0))
		held_event(p, why, "restarts");
	if (strcmp(why, rec->held) != 0 && (h != 0 || rec->held[0] != '\0')) {
		snprintf(rec->held, sizeof rec->held, "%s", why);
		rec->gen++;
	}

	/* a sustained success: up for a whole window resets the budget */
	if (p->state == PROBE_UP && p->has_last && probe_last(p)->ok) {
		rec->exec_ran = 0;
		if (rec->lock[0] != '\0') {
			rec->lock[0] = '\0';
			rec->gen++;
		}
		if (rec->up_since == 0)
			rec->up_since = now;
		if ((rec->n > 0 || rec->flapping || (rec->fired &&
		    c->on_down != PROBE_ON_DOWN_NONE)) &&
		    now - rec->up_since >= c->restart_window * 1000) {
			if (rec->fired && c->on_down != PROBE_ON_DOWN_NONE) {
				flapping_event(p, 0, 1);
				rec->fired = 0;
			}
			rec->n = 0;
			rec->flapping = 0;
			rec->cooldown_until = 0;
			rec->gen++;
		}
	} else if (p->has_last && !probe_last(p)->ok && !probe_recover_grace(p))
		rec->up_since = 0;

	if (c->on_down == PROBE_ON_DOWN_NONE) {
		if (p->state == PROBE_DOWN && rec->held_down && !rec->fired &&
		    h == 0 && c->nalert > 0) {
			rec->fired = 1;
			rec->held_down = 0;
			raise_held(p);
		}
		return;
	}
	if (rec->child != NULL || rec->op != NULL || p->state != PROBE_DOWN ||
	    h != 0 || p->opsd->stopping)
		return;
	if (rec->flapping) {
		if (now < rec->cooldown_until)
			return;
		/* re-armed; the flapping alert stays until it is up again */
		rec->flapping = 0;
		rec->n = 0;
		rec->gen++;
	}
	if (now < rec->grace_until || p->fail_streak < c->fall ||
	    (c->on_down == PROBE_ON_DOWN_EXEC && rec->exec_ran))
		return;
	/* the window slides: restarts older than it no longer count */
	for (i = j = 0; i < rec->n; i++)
		if (now - rec->times[i] < c->restart_window * 1000)
			rec->times[j++] = rec->times[i];
	rec->n = j;
	if (rec->n >= c->restart_max) {
		cooldown = c->restart_cooldown != 0 ? c->restart_cooldown :
		    c->restart_window;
		rec->flapping = 1;
		rec->cooldown_until = now + cooldown * 1000;
		rec->gen++;
		/* one alert for the episode, however often it re-arms */
		flapping_event(p, 1, !rec->fired);
		rec->fired = 1;
		return;
	}
	if (rec->n > 0) {
		wait = c->restart_backoff * 1000 << (rec->n - 1 < 20 ?
		    rec->n - 1 : 20);
		if (now < rec->times[rec->n - 1] + wait)
			return;
	}
	restart_start(p);
}

void
probe_recover_free(struct probe *p)
{
	struct probe_recover	*rec = p->rec;

	if (rec == NULL)
		return;
	/*
	 * The core resolves the alert of a probe that goes away down; a
	 * flapping alert can be firing while the probe is up.
	 */
	if (rec->fired && p->state != PROBE_DOWN && p->conf->nalert > 0 &&
	    !p->opsd->stopping)
		alert_resolve(p->opsd, "probe", p->conf->name, "was removed or "
		    "reconfigured while flapping");
	if (rec->child != NULL)
		child_abandon(rec->child);
	if (rec->op != NULL)
		op_finish(rec->op, OP_FAILED, "the probe went away (removed, "
		    "reconfigured or opsd stopping) before the restart "
		    "command ended; it was killed");
	free(rec->times);
	free(rec->deps);
	free(rec);
	p->rec = NULL;
}

/* --- what probe.list shows ------------------------------------------------ */

void
probe_recover_json(struct probe *p, json_t *o)
{
	struct probe_recover		*rec = p->rec;
	const struct maint_window	*m;
	json_t				*r;
	char				 why[160], note[200], t[32];
	uint64_t			 now = now_usec();

	note[0] = '\0';
	if (held_why(p, why, sizeof why) != 0)
		snprintf(note, sizeof note, "%s%s", strncmp(why, "maint", 5) ==
		    0 ? "" : "held: ", why);
	if ((m = maint_covering(p->opsd, p->conf->name,
	    p->conf->service)) != NULL) {
		char	u[32] = "";

		if (m->until != 0)
			util_iso_time(m->until, u, sizeof u);
		json_object_set_new(o, "maintenance", json_pack("{s:s, s:s?, "
		    "s:s, s:s}", "name", m->name, "until", u[0] ? u : NULL,
		    "reason", m->reason, "source", m->source));
	}
	if (p->conf->ndepends_on > 0) {
		json_t		*d = json_array();
		unsigned int	 i;

		for (i = 0; i < p->conf->ndepends_on; i++)
			json_array_append_new(d,
			    json_string(p->conf->depends_on[i]));
		json_object_set_new(o, "depends_on", d);
	}
	if (p->conf->on_down != PROBE_ON_DOWN_NONE) {
		const char	*status = "ready";

		if (rec != NULL && rec->child != NULL)
			status = "restarting";
		else if (rec != NULL && rec->flapping)
			status = "flapping";
		else if (rec != NULL && now < rec->grace_until)
			status = "grace";
		else if (rec != NULL && (rec->held[0] != '\0' ||
		    rec->lock[0] != '\0') && p->state == PROBE_DOWN)
			status = "held";
		if (note[0] == '\0' && strcmp(status, "restarting") == 0)
			snprintf(note, sizeof note, "restarting");
		else if (note[0] == '\0' && strcmp(status, "flapping") == 0) {
			hhmm((int64_t)time(NULL) + (int64_t)((rec->cooldown_until -
			    now) / 1000000), t, sizeof t);
			snprintf(note, sizeof note, "flapping: no restart "
			    "until %s", t);
		} else if (note[0] == '\0' && strcmp(status, "grace") == 0)
			snprintf(note, sizeof note, "restarted, in its grace");
		else if (note[0] == '\0' && strcmp(status, "held") == 0)
			snprintf(note, sizeof note, "held: %s", rec->held[0] ?
			    rec->held : rec->lock);
		r = json_pack("{s:s, s:s, s:s, s:i, s:s, s:{s:I, s:I, s:I}}",
		    "on_down", p->conf->on_down == PROBE_ON_DOWN_EXEC ? "exec" :
		    "restart", "service", service_of(p), "status", status,
		    "restarts", rec != NULL ? (int)rec->n : 0,
		    "restart_limit", p->conf->restart_limit, "restarts_total",
		    "ok", (json_int_t)(rec != NULL ? rec->count[RS_OK] : 0),
		    "failed", (json_int_t)(rec != NULL ? rec->count[RS_FAILED] :
		    0), "timeout", (json_int_t)(rec != NULL ?
		    rec->count[RS_TIMEOUT] : 0));
		json_object_set_new(o, "recovery", r);
	}
	json_object_set_new(o, "note", json_string(note));
}

void
probe_recover_metrics(struct opsd *o, struct evbuffer *b)
{
	struct probe	*p;
	unsigned int	 i, r;

	metrics_head(b, "opsd_probe_restarts_total", "counter", "Restart "
	    "commands run for a probe that was down, by how they ended.");
	for (i = 0; (p = probe_at(o, i)) != NULL; i++) {
		if (p->conf->on_down == PROBE_ON_DOWN_NONE)
			continue;
		for (r = 0; r < RS_N; r++) {
			evbuffer_add_printf(b, "opsd_probe_restarts_total{"
			    "probe=\"");
			metrics_label(b, p->conf->name);
			evbuffer_add_printf(b, "\",result=\"%s\"} %llu\n",
			    result_names[r], (unsigned long long)(p->rec ?
			    p->rec->count[r] : 0));
		}
	}
}
