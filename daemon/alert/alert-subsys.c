/*
 * The alerts' entry in the subsystem registry (core/subsys.h). The stop
 * fails only the callers of alert.test: deliveries in flight go on, and
 * the daemon waits for them (busy) until shutdown_timeout.
 */
#include <stddef.h>

#include <jansson.h>

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

/*
 * Health: an alert that fires is a warning even where its cause (a probe,
 * a backup) already reports itself, so that a cause with no section of
 * its own (a failed upload) still reaches the check.
 */
static enum health_status
alert_health(struct opsd *o, struct health *h)
{
	unsigned int	n = alert_active_count(o);

	json_object_set_new(h->result, "alerts", json_pack("{s:i, s:i}",
	    "routes", alert_route_count(o), "firing", n));
	if (n == 0)
		return (HEALTH_OK);
	health_problem(h, "%u alert%s firing", n, n == 1 ? "" : "s");
	return (HEALTH_WARNING);
}

const struct subsys alert_subsys = {
	.name = "alert",
	.sections = alert_sections,
	.init = alert_init,
	.apply = alert_apply_config,
	.stop = alert_fail_waiters,
	.busy = alert_deliveries,
	.free = alert_stop_all,
	.health = alert_health,
	.status = alert_status,
	.metrics = alert_metrics,
	.methods = rpc_alert_methods,
	.nmethods = &rpc_alert_nmethods,
	.events = alert_events,
};
