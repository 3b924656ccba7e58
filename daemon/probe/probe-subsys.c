/* The probes' entry in the subsystem registry (core/subsys.h). */
#include <stddef.h>

#include "evt.h"
#include "ini.h"
#include "probe.h"
#include "rpc.h"
#include "subsys.h"

static const struct ini_section *const probe_sections[] = {
	&probe_section, NULL
};

static const struct evt_type *const probe_events[] = {
	&EVT_PROBE_STATE, NULL
};

const struct subsys probe_subsys = {
	.name = "probe",
	.sections = probe_sections,
	.check_refs = probe_conf_check_refs,
	.apply = probe_apply_config,
	.stop = probe_stop_all,
	.free = probe_stop_all,
	.metrics = probe_metrics,
	.methods = rpc_probe_methods,
	.nmethods = &rpc_probe_nmethods,
	.events = probe_events,
};
