/*
 * alert.* methods: send a test message through a route.
 */
#include <errno.h>
#include <stddef.h>

#include <jansson.h>

#include "alert.h"
#include "daemon.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "util.h"

struct alert_test_params {
	const char	*name;
};

static const struct rpc_param alert_test_params[] = {
	{ "name", RPC_P_STRING, offsetof(struct alert_test_params, name), 1,
	    "the route's name, as in [alert NAME]" },
};

static int
alert_test_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct alert_test_params	*p = params;
	struct rpc_pending		*waiter;

	(void)result;
	waiter = rpc_defer(call);
	if (alert_test(call->opsd, p->name, waiter) == -ENOENT) {
		rpc_pending_error(waiter, OPSD_ERR_NOT_FOUND, NULL,
		    "no alert route named '%s'", p->name);
	}
	return (RPC_DEFERRED);
}

const struct rpc_method rpc_alert_methods[] = {
	{ "alert.test", RPC_ADMIN | RPC_ASYNC | RPC_NOT_STOPPING,
	    "Send a test message through an alert route (one attempt)",
	    RPC_PARAMS(alert_test_params), sizeof (struct alert_test_params),
	    "{route, delivered, attempts}", alert_test_rpc },
};
const size_t rpc_alert_nmethods = nitems(rpc_alert_methods);
