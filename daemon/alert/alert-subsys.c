/*
 * The alerts' entry in the subsystem registry (core/subsys.h). The stop
 * fails only the callers of alert.test: deliveries in flight go on, and
 * the daemon waits for them (busy) until shutdown_timeout.
 */
#include <stddef.h>

#include "alert.h"
#include "evt.h"
#include "ini.h"
#include "rpc.h"
#include "subsys.h"

static const struct ini_section *const alert_sections[] = {
	&alert_section, NULL
};

static const struct evt_type *const alert_events[] = {
	&EVT_ALERT_FAILED, &EVT_ALERT_DROPPED, NULL
};

const struct subsys alert_subsys = {
	.name = "alert",
	.sections = alert_sections,
	.init = alert_init,
	.apply = alert_apply_config,
	.stop = alert_fail_waiters,
	.busy = alert_deliveries,
	.free = alert_stop_all,
	.metrics = alert_metrics,
	.methods = rpc_alert_methods,
	.nmethods = &rpc_alert_nmethods,
	.events = alert_events,
};
