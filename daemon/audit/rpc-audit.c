/*
 * audit.run and audit.checks. audit.run answers when every check ran
 * (the files at once, each database when its session ended); only and
 * min_severity narrow what runs and what comes back.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit-int.h"
#include "audit.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "util.h"

struct run_params {
	json_t		*only;
	json_t		*limit;
};

static void
run_done(json_t *result, const char *error, void *arg)
{
	struct rpc_pending	*w = arg;

	if (result == NULL) {
		rpc_pending_fail(w, -ESHUTDOWN, NULL, "%s", error);
		return;
	}
	rpc_pending_reply(w, result);
}

static int
audit_run_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct run_params	*p = params;
	const char		**only = NULL;
	struct rpc_pending	*w;
	json_t			*v;
	size_t			 i, n = 0;
	char			 err[256];
	int			 e;

	(void)result;
	if (p->only != NULL) {
		if (!json_is_array(p->only))
			return (rpc_error(call, RPC_INVALID_PARAMS, "only: an "
			    "array of check ids or families"));
		n = json_array_size(p->only);
		only = xcalloc(n + 1, sizeof *only);
		json_array_foreach(p->only, i, v) {
			if (!json_is_string(v)) {
				free(only);
				return (rpc_error(call, RPC_INVALID_PARAMS,
				    "only[%zu]: a check id", i));
			}
			only[i] = json_string_value(v);
		}
	}
	if (p->limit != NULL && (!json_is_integer(p->limit) ||
	    json_integer_value(p->limit) < 0 || json_integer_value(p->limit) >
	    100000)) {
		free(only);
		return (rpc_error(call, RPC_INVALID_PARAMS, "limit: an integer, "
		    "0 (all) to 100000"));
	}
	w = rpc_defer(call);
	e = audit_run_start(call->opsd, only, n, p->limit == NULL ?
	    AUDIT_LIMIT_DEFAULT : (unsigned int)json_integer_value(p->limit),
	    0, run_done, w, err, sizeof err);
	free(only);
	if (e != 0) {
		rpc_pending_fail(w, e, NULL, "%s", err);
		return (RPC_DEFERRED);
	}
	return (RPC_DEFERRED);
}

static int
audit_checks_rpc(struct rpc_call *call, void *params, json_t **result)
{
	static const char *const scopes[] = { "secret file", "env file",
	    "database", "host", "tls endpoint", "systemd unit" };
	json_t	*list = json_array();
	size_t	 i;

	(void)call;
	(void)params;
	for (i = 0; i < audit_nchecks; i++)
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}",
		    "id", audit_checks[i].id, "severity",
		    audit_sev_name(audit_checks[i].sev), "scope",
		    scopes[audit_checks[i].scope], "description",
		    audit_checks[i].desc));
	*result = json_pack("{s:o}", "checks", list);
	return (0);
}

#define RP(f)	offsetof(struct run_params, f)
static const struct rpc_param run_params[] = {
	{ "only", RPC_P_JSON, RP(only), 0, "check ids or families (\"pg\", "
	    "\"secret.age\") to run; default all" },
	{ "limit", RPC_P_JSON, RP(limit), 0, "findings listed per check, the "
	    "rest summed up in one (default 50; 0: all)" },
};
#undef RP

const struct rpc_method rpc_audit_methods[] = {
	{ "audit.checks", RPC_READ,
	    "The audit's checks: id, severity, scope and description",
	    RPC_NOPARAMS, "{checks: [{id, severity, scope, description}]}",
	    audit_checks_rpc },
	{ "audit.run", RPC_ADMIN | RPC_ASYNC | RPC_NOT_STOPPING,
	    "Run the production checklist now (files, databases, this host); "
	    "answers when done",
	    RPC_PARAMS(run_params), sizeof (struct run_params),
	    "{started, elapsed_seconds, counts: {critical, high, ...}, "
	    "findings: [{id, severity, where, what, fix}], unchecked: [{id, "
	    "where, what}]}", audit_run_rpc },
};
const size_t rpc_audit_nmethods = nitems(rpc_audit_methods);
