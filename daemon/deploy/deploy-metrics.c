/*
 * The deploy room's /metrics collector and opsd.health member.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "daemon.h"
#include "deploy-int.h"
#include "metrics.h"
#include "status.h"
#include "subsys.h"
#include "util.h"

void
deploy_metrics(struct opsd *o, struct evbuffer *buf)
{
	struct deploy_set	*set = deploy_set_get(o);
	struct deploy		*d;
	const char		*res[] = { "ok", "failed", "rolled_back" };
	uint64_t		 n[3];
	unsigned int		 i, k;

	if (set->n == 0)
		return;
	/* deploy names are [A-Za-z0-9._-], versions [A-Za-z0-9._+-] */
	metrics_head(buf, "opsd_deploy_active_slot_info", "gauge",
	    "The slot nginx sends the deploy's traffic to, and its version.");
	for (i = 0; i < set->n; i++) {
		d = set->v[i];
		evbuffer_add_printf(buf, "opsd_deploy_active_slot_info{deploy="
		    "\"%s\",slot=\"%s\",version=\"%s\"} 1\n", d->conf->name,
		    deploy_slot_name(d->st.active_slot), d->st.active_version);
	}
	metrics_head(buf, "opsd_deploy_total", "counter",
	    "Finished deploys and rollbacks by result (rolled_back: traffic "
	    "went back to the old slot).");
	for (i = 0; i < set->n; i++) {
		d = set->v[i];
		n[0] = d->st.n_ok;
		n[1] = d->st.n_failed;
		n[2] = d->st.n_rolled_back;
		for (k = 0; k < 3; k++)
			evbuffer_add_printf(buf, "opsd_deploy_total{deploy="
			    "\"%s\",result=\"%s\"} %llu\n", d->conf->name,
			    res[k], (unsigned long long)n[k]);
	}
	metrics_head(buf, "opsd_deploy_duration_seconds", "gauge",
	    "How long the last finished deploy took, start to end.");
	for (i = 0; i < set->n; i++) {
		d = set->v[i];
		if (d->st.nhist > 0)
			evbuffer_add_printf(buf, "opsd_deploy_duration_seconds"
			    "{deploy=\"%s\",result=\"%s\"} %.3f\n",
			    d->conf->name, d->st.hist[0].result,
			    (double)d->st.hist[0].duration_ms / 1000);
	}
	metrics_head(buf, "opsd_deploy_cutover_seconds", "gauge",
	    "The last deploy's time from the new slot healthy to traffic "
	    "verified on it.");
	for (i = 0; i < set->n; i++) {
		d = set->v[i];
		if (d->st.nhist > 0 && d->st.hist[0].cutover_ms >= 0)
			evbuffer_add_printf(buf, "opsd_deploy_cutover_seconds"
			    "{deploy=\"%s\"} %.3f\n", d->conf->name,
			    (double)d->st.hist[0].cutover_ms / 1000);
	}
	metrics_head(buf, "opsd_deploy_in_progress", "gauge",
	    "1 while a cutover of the deploy is under way.");
	for (i = 0; i < set->n; i++)
		evbuffer_add_printf(buf, "opsd_deploy_in_progress{deploy=\"%s\"} "
		    "%d\n", set->v[i]->conf->name, set->v[i]->run != NULL);
	metrics_head(buf, "opsd_deploy_degraded", "gauge",
	    "1 while traffic is on a slot that failed its checks after a "
	    "cutover that could not be rolled back.");
	for (i = 0; i < set->n; i++)
		evbuffer_add_printf(buf, "opsd_deploy_degraded{deploy=\"%s\"} "
		    "%d\n", set->v[i]->conf->name,
		    set->v[i]->st.degraded[0] != '\0');
}

/*
 * Degraded (traffic on a slot that failed its checks, not rolled back) is
 * critical; a last deploy that failed, or a cutover being recovered, is a
 * warning: the old version serves, but the new one did not make it.
 */
enum health_status
deploy_health(struct opsd *o, struct health *h)
{
	struct deploy_set	*set = deploy_set_get(o);
	struct deploy		*d;
	enum health_status	 worst = HEALTH_OK;
	json_t			*list;
	const char		*st;
	unsigned int		 i, ok = 0;

	if (set->n == 0)
		return (HEALTH_OK);
	list = json_array();
	for (i = 0; i < set->n; i++) {
		d = set->v[i];
		st = deploy_state_word(d);
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}",
		    "name", d->conf->name, "state", st, "slot",
		    deploy_slot_name(d->st.active_slot), "version",
		    d->st.active_version));
		if (strcmp(st, "degraded") == 0) {
			health_problem(h, "deploy %s degraded", d->conf->name);
			worst = HEALTH_CRITICAL;
		} else if (strcmp(st, "recovering") == 0 || (d->run == NULL &&
		    d->st.nhist > 0 && strcmp(d->st.hist[0].result, "ok") !=
		    0)) {
			health_problem(h, "deploy %s %s", d->conf->name,
			    strcmp(st, "recovering") == 0 ? "recovering" :
			    "last deploy failed");
			if (worst < HEALTH_WARNING)
				worst = HEALTH_WARNING;
		} else
			ok++;
	}
	json_object_set_new(h->result, "deploys", json_pack("{s:I, s:o}",
	    "total", (json_int_t)set->n, "list", list));
	if (ok > 0)
		health_fine(h, "%u deploy%s serving", ok, ok == 1 ? "" : "s");
	return (worst);
}

/*
 * The status page's section: the slot and version serving, and the last
 * cutover's outcome, judged as deploy_health() judges them.
 */
json_t *
deploy_status(struct opsd *o)
{
	struct deploy_set	*set = deploy_set_get(o);
	struct deploy		*d;
	json_t			*sec, *items, *it;
	const char		*st, *level;
	unsigned int		 i;
	int			 failed;
	char			 since[32], started[32];

	if (set->n == 0)
		return (NULL);
	sec = status_section("Deploys", "no deploys");
	items = json_object_get(sec, "items");
	for (i = 0; i < set->n; i++) {
		d = set->v[i];
		st = deploy_state_word(d);
		failed = d->run == NULL && d->st.nhist > 0 &&
		    strcmp(d->st.hist[0].result, "ok") != 0;
		level = strcmp(st, "degraded") == 0 ? "critical" :
		    strcmp(st, "recovering") == 0 || failed ? "warning" :
		    strcmp(st, "idle") == 0 ? "ok" : "unknown";
		util_iso_time(d->st.active_since, since, sizeof since);
		util_iso_time(d->st.nhist > 0 ? d->st.hist[0].started : 0,
		    started, sizeof started);
		it = json_pack("{s:s, s:s, s:s, s:o, "
		    "s:s?, s:s?, s:s?, s:s?, s:o, s:s}", "name", d->conf->name,
		    "state", st, "active_slot",
		    deploy_slot_name(d->st.active_slot), "version",
		    d->st.active_version[0] ? util_jstring(d->st.active_version) :
		    json_null(), "since", d->st.active_since > 0 ? since : NULL,
		    "last_op", d->st.nhist > 0 ? d->st.hist[0].op : NULL,
		    "last_result", d->st.nhist > 0 ? d->st.hist[0].result : NULL,
		    "last_started", d->st.nhist > 0 ? started : NULL,
		    "degraded", d->st.degraded[0] ? util_jstring(d->st.degraded) :
		    json_null(), "level", level);
		if (strcmp(level, "critical") == 0 || strcmp(level,
		    "warning") == 0)	/* deploy_health()'s words */
			json_object_set_new(it, "problem", json_sprintf(
			    "deploy %s %s", d->conf->name, strcmp(st,
			    "degraded") == 0 ? "degraded" : strcmp(st,
			    "recovering") == 0 ? "recovering" :
			    "last deploy failed"));
		json_array_append_new(items, it);
	}
	return (sec);
}
