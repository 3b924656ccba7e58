/*
 * deploy.list, deploy.status, deploy.start, deploy.rollback and
 * deploy.abort. A cutover answers at once with its op id; with follow the
 * connection gets deploy.progress for each step (and each health check)
 * and deploy.finished at the end.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include <jansson.h>

#include "deploy-int.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "util.h"

struct deploy_params {
	const char	*name;
	const char	*version;
	int		 follow;
	int		 force;
};

static struct deploy *
find_or_fail(struct rpc_call *call, const char *name, int *code)
{
	struct deploy	*d;

	if ((d = deploy_find(call->opsd, name)) == NULL)
		*code = rpc_error(call, OPSD_ERR_NOT_FOUND, "no deploy named "
		    "'%s' (deploy status lists them)", name);
	return (d);
}

static int
deploy_list_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct deploy_set	*set = deploy_set_get(call->opsd);
	json_t			*list = json_array();
	unsigned int		 i;

	(void)params;
	for (i = 0; i < set->n; i++)
		json_array_append_new(list, deploy_json(set->v[i], 0));
	*result = json_pack("{s:o}", "deploys", list);
	return (0);
}

static int
deploy_status_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct deploy_params	*p = params;
	struct deploy		*d;
	int			 code;

	if ((d = find_or_fail(call, p->name, &code)) == NULL)
		return (code);
	*result = deploy_json(d, 1);
	return (0);
}

/* deploy.start and deploy.rollback */
static int
cutover(struct rpc_call *call, struct deploy_params *p, int mode,
    json_t **result)
{
	struct deploy		*d;
	struct rpc_pending	*f = NULL;
	json_t			*run;
	char			*id = NULL, *msg = NULL;
	int			 e, code;

	if ((d = find_or_fail(call, p->name, &code)) == NULL)
		return (code);
	if (p->follow && call->in_batch)
		return (rpc_error(call, RPC_INVALID_REQUEST, "%s with follow "
		    "keeps the connection for notifications and cannot be part "
		    "of a batch", call->method->name));
	if (p->follow && call->conn != NULL)
		f = rpc_defer(call);
	if ((e = deploy_run_start(d, mode, p->version, p->force, f, &id,
	    &msg)) != 0) {
		if (f != NULL)
			rpc_pending_release(f);
		e = rpc_error(call, rpc_errno_code(e), "%s", msg);
		free(msg);
		return (e);
	}
	run = deploy_run_json(d);
	*result = json_pack("{s:s, s:s, s:s, s:O?, s:O?, s:b}", "op", id,
	    "deploy", p->name, "mode", mode == DEPLOY_MODE_ROLLBACK ?
	    "rollback" : "deploy", "version", json_object_get(run, "version"),
	    "slot", json_object_get(run, "slot"), "follow", f != NULL);
	json_decref(run);
	free(id);
	if (f != NULL) {
		/* the reply now, the notifications after it */
		rpc_pending_reply_keep(f, *result);
		*result = NULL;
		return (RPC_DEFERRED);
	}
	return (0);
}

static int
deploy_start_rpc(struct rpc_call *call, void *params, json_t **result)
{
	return (cutover(call, params, DEPLOY_MODE_DEPLOY, result));
}

static int
deploy_rollback_rpc(struct rpc_call *call, void *params, json_t **result)
{
	return (cutover(call, params, DEPLOY_MODE_ROLLBACK, result));
}

static int
deploy_abort_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct deploy_params	*p = params;
	struct deploy		*d;
	char			*id = NULL, *msg = NULL;
	int			 e, code;

	if ((d = find_or_fail(call, p->name, &code)) == NULL)
		return (code);
	if ((e = deploy_run_abort(d, p->force, &id, &msg)) != 0) {
		e = rpc_error(call, rpc_errno_code(e), "%s", msg);
		free(msg);
		return (e);
	}
	*result = json_pack("{s:s, s:s}", "op", id, "deploy", p->name);
	free(id);
	return (0);
}

#define DP(f)	offsetof(struct deploy_params, f)
static const struct rpc_param name_params[] = {
	{ "name", RPC_P_STRING, DP(name), 1, "the deploy, as in [deploy NAME]" },
};
static const struct rpc_param start_params[] = {
	{ "name", RPC_P_STRING, DP(name), 1, "the deploy, as in [deploy NAME]" },
	{ "version", RPC_P_STRING, DP(version), 1, "the version to start in "
	    "the idle slot: [A-Za-z0-9] then [A-Za-z0-9._+-], at most 64" },
	{ "follow", RPC_P_BOOL, DP(follow), 0, "send deploy.progress and "
	    "deploy.finished notifications on this connection" },
};
static const struct rpc_param rollback_params[] = {
	{ "name", RPC_P_STRING, DP(name), 1, "the deploy, as in [deploy NAME]" },
	{ "follow", RPC_P_BOOL, DP(follow), 0, "send deploy.progress and "
	    "deploy.finished notifications on this connection" },
	{ "force", RPC_P_BOOL, DP(force), 0, "roll back even though the "
	    "active version ran a migration that cannot be undone" },
};
static const struct rpc_param abort_params[] = {
	{ "name", RPC_P_STRING, DP(name), 1, "the deploy, as in [deploy NAME]" },
	{ "force", RPC_P_BOOL, DP(force), 0, "roll back even after a "
	    "migration that cannot be undone" },
};
#undef DP

const struct rpc_method rpc_deploy_methods[] = {
	{ "deploy.abort", RPC_ADMIN,
	    "Stop the cutover under way and undo it from where it is",
	    RPC_PARAMS(abort_params), sizeof (struct deploy_params),
	    "{op, deploy}; the op ends failed or rolled_back",
	    deploy_abort_rpc },
	{ "deploy.list", RPC_READ,
	    "Deploys with the slot and version that serve, the cutover under "
	    "way and the last result",
	    RPC_NOPARAMS, "{deploys: [{name, state, active, previous, "
	    "operation, last, ...}]}", deploy_list_rpc },
	{ "deploy.rollback", RPC_ADMIN | RPC_NOT_STOPPING,
	    "Send traffic back to the version that served before; answers "
	    "with the op id at once",
	    RPC_PARAMS(rollback_params), sizeof (struct deploy_params),
	    "{op, deploy, mode, version, slot, follow}; then deploy.progress "
	    "/ deploy.finished notifications", deploy_rollback_rpc },
	{ "deploy.start", RPC_ADMIN | RPC_NOT_STOPPING,
	    "Deploy a version to the idle slot and move traffic to it; "
	    "answers with the op id at once",
	    RPC_PARAMS(start_params), sizeof (struct deploy_params),
	    "{op, deploy, mode, version, slot, follow}; then deploy.progress "
	    "/ deploy.finished notifications", deploy_start_rpc },
	{ "deploy.status", RPC_READ,
	    "One deploy: active and previous slot and version, the cutover "
	    "under way, the last deploys with durations and outcomes",
	    RPC_PARAMS(name_params), sizeof (struct deploy_params),
	    "{name, state, active, previous, operation, rollback, deploys, "
	    "counts, ...}", deploy_status_rpc },
};
const size_t rpc_deploy_nmethods = nitems(rpc_deploy_methods);
