/*
 * The probes' entry in the subsystem registry (core/subsys.h). Health: a
 * probe that is down is critical (that is what probes are for); one not
 * yet run is only counted, since every probe is unknown after a start.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "daemon.h"
#include "evt.h"
#include "ini.h"
#include "op.h"
#include "probe.h"
#include "rpc.h"
#include "status.h"
#include "subsys.h"
#include "util.h"

static const struct ini_section *const probe_sections[] = {
	&probe_section, NULL
};

static const struct evt_type *const probe_events[] = {
	&EVT_PROBE_STATE, &EVT_PROBE_RESTART, &EVT_PROBE_FLAPPING,
	&EVT_PROBE_HELD, NULL
};

static const struct op_kind *const probe_op_kinds[] = {
	&probe_restart_kind, NULL
};

static enum health_status
probe_health(struct opsd *o, struct health *h)
{
	struct probe	*p;
	json_t		*down;
	unsigned int	 i, n[3] = { 0, 0, 0 };
	char		 since[32];

	down = json_array();
	for (i = 0; i < probe_count(o); i++) {
		p = probe_at(o, i);
		n[p->state]++;
		if (p->state != PROBE_DOWN)
			continue;
		util_iso_time(p->since, since, sizeof since);
		json_array_append_new(down, json_pack("{s:s, s:s, s:s}",
		    "name", p->conf->name, "since", since, "reason",
		    probe_last_reason(p)));
		health_problem(h, "probe %s down", p->conf->name);
	}
	json_object_set_new(h->result, "probes", json_pack("{s:i, s:i, s:i, "
	    "s:i, s:o}", "total", probe_count(o), "up", n[PROBE_UP], "down",
	    n[PROBE_DOWN], "unknown", n[PROBE_UNKNOWN], "failing", down));
	if (n[PROBE_UP] > 0)
		health_fine(h, "%u probe%s up", n[PROBE_UP],
		    n[PROBE_UP] == 1 ? "" : "s");
	if (n[PROBE_UNKNOWN] > 0)
		health_fine(h, "%u probe%s not run yet", n[PROBE_UNKNOWN],
		    n[PROBE_UNKNOWN] == 1 ? "" : "s");
	return (n[PROBE_DOWN] > 0 ? HEALTH_CRITICAL : HEALTH_OK);
}

/*
 * The status page's item of each probe, kept while the probe shows the
 * same (as probe_json_text() keeps its text): a probe changes once a run,
 * a page is asked for far more often, and building 1,000 items was most
 * of a page's time. One daemon a process: the memo is the process's.
 */
struct status_memo {
	const struct probe	*p;
	const struct probe_conf	*conf;
	uint64_t		 reloads;
	uint64_t		 runs;
	uint64_t		 state_changes;
	int64_t			 since;
	int			 state;
	json_t			*item;
};

static struct status_memo	*memo;
static unsigned int		 nmemo;

static void
probe_status_forget(void)
{
	unsigned int	i;

	for (i = 0; i < nmemo; i++)
		json_decref(memo[i].item);
	free(memo);
	memo = NULL;
	nmemo = 0;
}

static void
probe_free_all(struct opsd *o)
{
	probe_status_forget();
	probe_stop_all(o);
}

/*
 * The status page: what probe.list shows of a run, and the history ring
 * as a sparkline. A reason that is not UTF-8 is shown as such.
 */
static json_t *
probe_status(struct opsd *o)
{
	struct probe		*p;
	struct status_memo	*m;
	json_t			*sec, *items, *it, *reason;
	unsigned int		 i, k;
	char			 since[32], last[32], hist[PROBE_HISTORY + 1];

	if (probe_count(o) == 0) {
		probe_status_forget();
		return (NULL);
	}
	if (nmemo != probe_count(o)) {
		probe_status_forget();
		nmemo = probe_count(o);
		memo = xcalloc(nmemo, sizeof *memo);
	}
	sec = status_section("Probes", "no probes");
	items = json_object_get(sec, "items");
	for (i = 0; i < probe_count(o); i++) {
		p = probe_at(o, i);
		m = &memo[i];
		if (m->item != NULL && m->p == p && m->conf == p->conf &&
		    m->reloads == o->reloads && m->runs == p->runs_ok +
		    p->runs_failed && m->state_changes == p->state_changes &&
		    m->since == p->since && m->state == (int)p->state) {
			json_array_append(items, m->item);
			continue;
		}
		status_iso(p->since, since, sizeof since);
		last[0] = '\0';
		if (p->has_last)
			status_iso(probe_last(p)->ts_usec / 1000000, last,
			    sizeof last);
		reason = p->has_last ? util_jstring(probe_last_reason(p)) :
		    json_null();
		for (k = 0; k < p->nhist; k++)
			hist[k] = p->hist[(p->hist_next + PROBE_HISTORY +
			    PROBE_HISTORY - p->nhist + k) % PROBE_HISTORY].ok ?
			    '+' : '-';
		hist[k] = '\0';
		it = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:o, s:o, s:s, "
		    "s:s}", "name", p->conf->name, "kind",
		    probe_kind_name(p->conf->kind), "state",
		    probe_state_name(p->state),
		    "since", p->since != 0 ? since : NULL,
		    "last_run", last[0] ? last : NULL,
		    "latency_ms", p->has_last ? json_real(probe_last(p)->latency_ms) :
		    json_null(),
		    "reason", reason,
		    "history", hist,
		    "level", p->state == PROBE_UP ? "ok" : p->state ==
		    PROBE_DOWN ? "critical" : "unknown");
		if (p->state == PROBE_DOWN)	/* probe_health()'s words */
			json_object_set_new(it, "problem", json_sprintf(
			    "probe %s down", p->conf->name));
		json_array_append(items, it);
		json_decref(m->item);
		m->p = p;
		m->conf = p->conf;
		m->reloads = o->reloads;
		m->runs = p->runs_ok + p->runs_failed;
		m->state_changes = p->state_changes;
		m->since = p->since;
		m->state = (int)p->state;
		m->item = it;
	}
	return (sec);
}

const struct subsys probe_subsys = {
	.name = "probe",
	.sections = probe_sections,
	.check_refs = probe_conf_check_refs,
	.apply = probe_apply_config,
	.stop = probe_stop_all,
	.free = probe_free_all,
	.health = probe_health,
	.status = probe_status,
	.metrics = probe_metrics,
	.methods = rpc_probe_methods,
	.nmethods = &rpc_probe_nmethods,
	.events = probe_events,
	.op_kinds = probe_op_kinds,
};
