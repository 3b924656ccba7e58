/*
 * The probes' metric families for /metrics (the registry's collector for
 * probes): state, last duration and run time, runs by result, state
 * changes, served certificates' expiry, and how late runs started.
 */
#include <event2/buffer.h>

#include "metrics.h"
#include "probe.h"

void
probe_metrics(struct opsd *o, struct evbuffer *b)
{
	const struct probe_lateness	*lt = probe_lateness(o);
	struct probe			*p;
	unsigned int			 i, n = probe_count(o);
	uint64_t			 cum = 0;

	/*
	 * Prometheus wants 0/1 here; "not known yet" is its own gauge, so
	 * that `opsd_probe_up == 0 and opsd_probe_known == 1` means down.
	 */
	metrics_head(b, "opsd_probe_up", "gauge", "1 if the probe is up, 0 if "
	    "it is down or not known yet (see opsd_probe_known).");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		evbuffer_add(b, "opsd_probe_up{probe=\"", 21);
		metrics_label(b, p->conf->name);
		evbuffer_add_printf(b, "\",kind=\"%s\"} %d\n",
		    probe_kind_name(p->conf->kind), p->state == PROBE_UP);
	}
	metrics_head(b, "opsd_probe_known", "gauge", "1 once the probe's state "
	    "is known (rise or fall reached), 0 before.");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		evbuffer_add(b, "opsd_probe_known{probe=\"", 24);
		metrics_label(b, p->conf->name);
		evbuffer_add_printf(b, "\"} %d\n", p->state != PROBE_UNKNOWN);
	}
	metrics_head(b, "opsd_probe_duration_seconds", "gauge", "Duration of the "
	    "probe's last run.");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		if (!p->has_last)
			continue;
		evbuffer_add(b, "opsd_probe_duration_seconds{probe=\"", 35);
		metrics_label(b, p->conf->name);
		evbuffer_add_printf(b, "\"} %.6f\n", p->last_duration);
	}
	metrics_head(b, "opsd_probe_last_run_timestamp_seconds", "gauge", "When the "
	    "probe's last run started.");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		if (!p->has_last)
			continue;
		evbuffer_add(b, "opsd_probe_last_run_timestamp_seconds{probe="
		    "\"", 45);
		metrics_label(b, p->conf->name);
		evbuffer_add_printf(b, "\"} %.3f\n",
		    (double)probe_last(p)->ts_usec / 1e6);
	}
	metrics_head(b, "opsd_probe_state_changes_total", "counter", "State changes "
	    "of the probe (unknown, up, down).");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		evbuffer_add(b, "opsd_probe_state_changes_total{probe=\"", 38);
		metrics_label(b, p->conf->name);
		evbuffer_add_printf(b, "\"} %llu\n",
		    (unsigned long long)p->state_changes);
	}
	metrics_head(b, "opsd_probe_runs_total", "counter", "Probe runs by result.");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		evbuffer_add(b, "opsd_probe_runs_total{probe=\"", 29);
		metrics_label(b, p->conf->name);
		evbuffer_add_printf(b, "\",result=\"ok\"} %llu\n",
		    (unsigned long long)p->runs_ok);
		evbuffer_add(b, "opsd_probe_runs_total{probe=\"", 29);
		metrics_label(b, p->conf->name);
		evbuffer_add_printf(b, "\",result=\"failed\"} %llu\n",
		    (unsigned long long)p->runs_failed);
	}
	metrics_head(b, "opsd_probe_cert_expiry_timestamp_seconds", "gauge",
	    "Expiry (notAfter) of the certificate served to tls and https "
	    "probes.");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		if (p->cert_not_after == 0)
			continue;
		evbuffer_add(b, "opsd_probe_cert_expiry_timestamp_seconds{"
		    "probe=\"", 48);
		metrics_label(b, p->conf->name);
		evbuffer_add_printf(b, "\"} %lld\n",
		    (long long)p->cert_not_after);
	}
	metrics_head(b, "opsd_probe_schedule_lateness_seconds", "histogram",
	    "How late probe runs started against their schedule.");
	for (i = 0; i < PROBE_LATENESS_BUCKETS; i++) {
		cum += lt->count[i];
		evbuffer_add_printf(b, "opsd_probe_schedule_lateness_seconds_"
		    "bucket{le=\"%g\"} %llu\n", probe_lateness_bounds[i],
		    (unsigned long long)cum);
	}
	cum += lt->count[PROBE_LATENESS_BUCKETS];
	evbuffer_add_printf(b, "opsd_probe_schedule_lateness_seconds_bucket"
	    "{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	evbuffer_add_printf(b, "opsd_probe_schedule_lateness_seconds_sum %.6f"
	    "\n", lt->sum);
	evbuffer_add_printf(b, "opsd_probe_schedule_lateness_seconds_count "
	    "%llu\n", (unsigned long long)lt->n);
	probe_recover_metrics(o, b);
}
