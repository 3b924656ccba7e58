/* The secrets' entry in the subsystem registry (core/subsys.h). */
#include <stddef.h>

#include "evt.h"
#include "ini.h"
#include "op.h"
#include "rpc.h"
#include "secret-int.h"
#include "subsys.h"

static const struct ini_section *const secret_sections[] = {
	&secret_section, &env_section, NULL
};

static const struct evt_type *const secret_events[] = {
	&EVT_SECRET_CREATED, &EVT_SECRET_ROTATED, &EVT_SECRET_ROTATION_FAILED,
	&EVT_SECRET_RECOVERED, &EVT_SECRET_OVERDUE, &EVT_SECRET_ROLES_DIFFER,
	&EVT_SECRET_FILE_RESTORED, NULL
};

static const struct op_kind *const secret_op_kinds[] = {
	&secret_rotate_kind, NULL
};

const struct subsys secret_subsys = {
	.name = "secret",
	.sections = secret_sections,
	.check_refs = secret_conf_check_refs,
	.apply = secret_apply_config,
	.stop = secret_stop_all,
	.busy = secret_busy,
	.free = secret_free_all,
	.health = secret_health,
	.status = secret_status,
	.metrics = secret_metrics,
	.methods = rpc_secret_methods,
	.nmethods = &rpc_secret_nmethods,
	.events = secret_events,
	.op_kinds = secret_op_kinds,
};
