/*
 * The maintenance room's entry in the subsystem registry (core/subsys.h).
 * It has no section of its own: windows come from the control socket and
 * from deploys. It starts before the probes, which ask it.
 */
#include <stddef.h>

#include "evt.h"
#include "maint.h"
#include "rpc.h"
#include "subsys.h"

extern const struct rpc_method	rpc_maint_methods[];
extern const size_t		rpc_maint_nmethods;

static const struct evt_type *const maint_events[] = {
	&EVT_MAINT_STARTED, &EVT_MAINT_ENDED, NULL
};

const struct subsys maint_subsys = {
	.name = "maint",
	.apply = maint_apply,
	.free = maint_free,
	.metrics = maint_metrics,
	.methods = rpc_maint_methods,
	.nmethods = &rpc_maint_nmethods,
	.events = maint_events,
};
