/*
 * maintenance.* methods: start (or extend) a window, stop windows, list
 * them. A window names a probe, a probe's `service`, or all probes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "control.h"
#include "daemon.h"
#include "maint.h"
#include "opsd-proto.h"
#include "probe.h"
#include "rpc.h"
#include "util.h"

extern const struct rpc_method	rpc_maint_methods[];
extern const size_t		rpc_maint_nmethods;

struct maint_params {
	const char	*name;
	int		 all;
	uint64_t	 duration;	/* msec, 0: until stopped */
	const char	*reason;
};

static const struct rpc_param start_params[] = {
	{ "name", RPC_P_STRING, offsetof(struct maint_params, name), 0,
	    "a probe's name or a probe's service (or all)" },
	{ "all", RPC_P_BOOL, offsetof(struct maint_params, all), 0,
	    "every probe" },
	{ "for", RPC_P_DURATION, offsetof(struct maint_params, duration), 0,
	    "how long (\"30m\"); without it, until maintenance.stop" },
	{ "reason", RPC_P_STRING, offsetof(struct maint_params, reason), 0,
	    "why, for the events and the list (one line)" },
};

static const struct rpc_param stop_params[] = {
	{ "name", RPC_P_STRING, offsetof(struct maint_params, name), 0,
	    "the window's name" },
	{ "all", RPC_P_BOOL, offsetof(struct maint_params, all), 0,
	    "every window" },
};

/* The one target of a call: a name or all, not both, not neither. */
static const char *
target(struct rpc_call *call, struct maint_params *mp, int need)
{
	if (mp->name != NULL && mp->all) {
		rpc_error(call, RPC_INVALID_PARAMS, "name and all: give "
		    "one of them");
		return (NULL);
	}
	if (mp->name == NULL && !mp->all) {
		if (!need)
			return ("*");
		rpc_error(call, RPC_INVALID_PARAMS, "name or all is "
		    "needed");
		return (NULL);
	}
	if (mp->all)
		return ("*");
	if (!maint_name_ok(mp->name) || strcmp(mp->name, "*") == 0) {
		rpc_error(call, RPC_INVALID_PARAMS, "name: '%s' is not a "
		    "name", mp->name);
		return (NULL);
	}
	return (mp->name);
}

static int
maint_start_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct maint_params	*mp = params;
	const struct peer	*peer;
	const char		*name;
	char			*err = NULL;
	int64_t			 until = 0, uid = -1;
	int			 e;

	if ((name = target(call, mp, 1)) == NULL)
		return (call->code);
	if (strcmp(name, "*") != 0 && !probe_name_known(call->opsd, name))
		return (rpc_error(call, OPSD_ERR_NOT_FOUND, "no probe and no "
		    "probe's service is named '%s' (probe.list shows them)",
		    name));
	if (mp->duration != 0)
		until = (int64_t)((now_realtime_usec() / 1000 +
		    mp->duration + 999) / 1000);
	if (call->conn != NULL && (peer = control_peer(call->conn)) != NULL)
		uid = (int64_t)peer->uid;
	if ((e = maint_start(call->opsd, name, until, mp->reason, "cli", uid,
	    &err)) != 0) {
		rpc_error(call, e == -EINVAL ? RPC_INVALID_PARAMS :
		    rpc_errno_code(e), "%s", err != NULL ? err :
		    strerror(-e));
		free(err);
		return (call->code);
	}
	*result = maint_list_json(call->opsd);
	json_object_set_new(*result, "started", json_string(name));
	return (0);
}

static int
maint_stop_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct maint_params	*mp = params;
	const char		*name;
	unsigned int		 n;

	if ((name = target(call, mp, 0)) == NULL)
		return (call->code);
	n = maint_stop(call->opsd, mp->all || mp->name == NULL ? NULL : name,
	    NULL, "stopped");
	if (n == 0 && mp->name != NULL)
		return (rpc_error(call, OPSD_ERR_NOT_FOUND, "no maintenance "
		    "window on '%s' (maintenance.list shows them)", name));
	*result = maint_list_json(call->opsd);
	json_object_set_new(*result, "stopped", json_integer(n));
	return (0);
}

static int
maint_list_rpc(struct rpc_call *call, void *params, json_t **result)
{
	(void)params;
	*result = maint_list_json(call->opsd);
	return (0);
}

const struct rpc_method rpc_maint_methods[] = {
	{ "maintenance.list", RPC_READ,
	    "The open maintenance windows: alerts and restarts held",
	    RPC_NOPARAMS, "{windows: [{name, source, reason, started, until, "
	    "uid}]}", maint_list_rpc },
	{ "maintenance.start", RPC_ADMIN,
	    "Hold the alerts and restarts of a probe (or all) for a while",
	    RPC_PARAMS(start_params), sizeof (struct maint_params),
	    "{started, windows: [...]}", maint_start_rpc },
	{ "maintenance.stop", RPC_ADMIN,
	    "End a maintenance window (without a name or with all: every one)",
	    RPC_PARAMS(stop_params), sizeof (struct maint_params),
	    "{stopped, windows: [...]}", maint_stop_rpc },
};
const size_t rpc_maint_nmethods = nitems(rpc_maint_methods);
