/*
 * The audit's entry in the subsystem registry (core/subsys.h), its
 * /metrics collector and its opsd.health member.
 */
#include <stddef.h>
#include <stdio.h>

#include <event2/buffer.h>

#include "audit-int.h"
#include "audit.h"
#include "daemon.h"
#include "evt.h"
#include "ini.h"
#include "metrics.h"
#include "rpc.h"
#include "subsys.h"

static void
audit_metrics(struct opsd *o, struct evbuffer *buf)
{
	struct audit_state	*st = audit_state_get(o);
	int			 i;

	if (!st->have_last)
		return;
	metrics_head(buf, "opsd_audit_findings", "gauge",
	    "Findings of the last complete audit, by severity.");
	for (i = AUDIT_NSEV - 1; i >= 0; i--)
		evbuffer_add_printf(buf, "opsd_audit_findings{severity=\"%s\"} "
		    "%u\n", audit_sev_name(i), st->last_counts[i]);
	metrics_head(buf, "opsd_audit_last_run_timestamp_seconds", "gauge",
	    "When the last complete audit started.");
	evbuffer_add_printf(buf, "opsd_audit_last_run_timestamp_seconds %lld\n",
	    (long long)st->last_run);
	metrics_head(buf, "opsd_audit_new_findings_total", "counter",
	    "Findings at or above alert_min that a scheduled audit saw first.");
	evbuffer_add_printf(buf, "opsd_audit_new_findings_total %llu\n",
	    (unsigned long long)st->new_total);
}

static const struct ini_section *const audit_sections[] = {
	&audit_section, NULL
};

static const struct evt_type *const audit_events[] = {
	&EVT_AUDIT_FINISHED, &EVT_AUDIT_NEW_FINDINGS, &EVT_AUDIT_RESOLVED, NULL
};

const struct subsys audit_subsys = {
	.name = "audit",
	.sections = audit_sections,
	.check_refs = audit_conf_check_refs,
	.apply = audit_apply_config,
	.stop = audit_stop_all,
	.busy = audit_busy,
	.free = audit_free_all,
	.metrics = audit_metrics,
	.methods = rpc_audit_methods,
	.nmethods = &rpc_audit_nmethods,
	.events = audit_events,
};
