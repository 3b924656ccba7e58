/*
 * The probes' entry in the subsystem registry (core/subsys.h). Health: a
 * probe that is down is critical (that is what probes are for); one not
 * yet run is only counted, since every probe is unknown after a start.
 */
#include <stddef.h>

#include <jansson.h>

#include "evt.h"
#include "ini.h"
#include "probe.h"
#include "rpc.h"
#include "status.h"
#include "subsys.h"
#include "util.h"

static const struct ini_section *const probe_sections[] = {
	&probe_section, NULL
};

static const struct evt_type *const probe_events[] = {
	&EVT_PROBE_STATE, NULL
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
		    p->has_last ? p->last.reason : ""));
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
 * The status page: what probe.list shows of a run, and the history ring
 * as a sparkline. A reason that is not UTF-8 is shown as such.
 */
static json_t *
probe_status(struct opsd *o)
{
	struct probe		*p;
	json_t			*sec, *items, *it, *reason;
	unsigned int		 i, k;
	char			 since[32], last[32], hist[PROBE_HISTORY + 1];

	if (probe_count(o) == 0)
		return (NULL);
	sec = status_section("Probes", "no probes");
	items = json_object_get(sec, "items");
	for (i = 0; i < probe_count(o); i++) {
		p = probe_at(o, i);
		status_iso(p->since, since, sizeof since);
		last[0] = '\0';
		if (p->has_last)
			status_iso(p->last.ts_usec / 1000000, last,
			    sizeof last);
		reason = p->has_last ? status_text(p->last.reason) :
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
		    "latency_ms", p->has_last ? json_real(p->last.latency_ms) :
		    json_null(),
		    "reason", reason,
		    "history", hist,
		    "level", p->state == PROBE_UP ? "ok" : p->state ==
		    PROBE_DOWN ? "critical" : "unknown");
		json_array_append_new(items, it);
	}
	return (sec);
}

const struct subsys probe_subsys = {
	.name = "probe",
	.sections = probe_sections,
	.check_refs = probe_conf_check_refs,
	.apply = probe_apply_config,
	.stop = probe_stop_all,
	.free = probe_stop_all,
	.health = probe_health,
	.status = probe_status,
	.metrics = probe_metrics,
	.methods = rpc_probe_methods,
	.nmethods = &rpc_probe_nmethods,
	.events = probe_events,
};
