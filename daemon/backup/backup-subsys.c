/* The backups' entry in the subsystem registry (core/subsys.h). */
#include <stddef.h>

#include "backup-int.h"
#include "evt.h"
#include "ini.h"
#include "rpc.h"
#include "subsys.h"

static const struct ini_section *const backup_sections[] = {
	&backup_section, NULL
};

static const struct evt_type *const backup_events[] = {
	&EVT_BACKUP_OK, &EVT_BACKUP_FAILED, &EVT_BACKUP_VERIFIED,
	&EVT_BACKUP_VERIFY_FAILED, &EVT_BACKUP_UPLOAD_FAILED,
	&EVT_BACKUP_SKIPPED, &EVT_BACKUP_STALE, &EVT_BACKUP_INTERRUPTED,
	&EVT_BACKUP_RESTORED, &EVT_BACKUP_VERIFY_UNAVAILABLE, &EVT_BACKUP_RETRY,
	NULL
};

static const struct op_kind *const backup_op_kinds[] = {
	&backup_run_kind, NULL
};

const struct subsys backup_subsys = {
	.name = "backup",
	.sections = backup_sections,
	.check_refs = backup_conf_check_refs,
	.apply = backup_apply_config,
	.stop = backup_stop_all,
	.free = backup_stop_all,
	.health = backup_health,
	.status = backup_status,
	.metrics = backup_metrics,
	.methods = rpc_backup_methods,
	.nmethods = &rpc_backup_nmethods,
	.events = backup_events,
	.op_kinds = backup_op_kinds,
};
