/* The deploys' entry in the subsystem registry (core/subsys.h). */
#include <stddef.h>

#include "deploy-int.h"
#include "evt.h"
#include "ini.h"
#include "op.h"
#include "rpc.h"
#include "subsys.h"

static const struct ini_section *const deploy_sections[] = {
	&deploy_section, NULL
};

static const struct evt_type *const deploy_events[] = {
	&EVT_DEPLOY_STARTED, &EVT_DEPLOY_STEP, &EVT_DEPLOY_SUCCEEDED,
	&EVT_DEPLOY_FAILED, &EVT_DEPLOY_ROLLED_BACK, &EVT_DEPLOY_RECOVERED,
	&EVT_DEPLOY_RETIRED, NULL
};

static const struct op_kind *const deploy_op_kinds[] = {
	&deploy_cutover_kind, NULL
};

const struct subsys deploy_subsys = {
	.name = "deploy",
	.sections = deploy_sections,
	.check_refs = deploy_conf_check_refs,
	.apply = deploy_apply_config,
	.stop = deploy_stop_all,
	.free = deploy_free_all,
	.health = deploy_health,
	.status = deploy_status,
	.metrics = deploy_metrics,
	.methods = rpc_deploy_methods,
	.nmethods = &rpc_deploy_nmethods,
	.events = deploy_events,
	.op_kinds = deploy_op_kinds,
};
