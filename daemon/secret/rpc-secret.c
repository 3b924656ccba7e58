/*
 * secret.list, secret.show and secret.rotate. No result carries a value:
 * a secret is its fingerprint. secret.rotate answers at once with the op
 * id; with follow the connection gets secret.progress and secret.finished.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include <jansson.h>

#include "opsd-proto.h"
#include "rpc.h"
#include "secret-int.h"
#include "util.h"

struct secret_params {
	const char	*name;
	int		 follow;
	int		 force;
};

static int
secret_list_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct secret_set	*set = secret_set_get(call->opsd);
	json_t			*list = json_array();
	unsigned int		 i;

	(void)params;
	for (i = 0; i < set->n; i++)
		json_array_append_new(list, secret_json(set->v[i], 0));
	*result = json_pack("{s:o}", "secrets", list);
	return (0);
}

static int
secret_show_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct secret_params	*p = params;
	struct secret		*s;

	if ((s = secret_find(call->opsd, p->name)) == NULL)
		return (rpc_error(call, OPSD_ERR_NOT_FOUND, "no secret named "
		    "'%s' (secret list shows them)", p->name));
	*result = secret_json(s, 1);
	return (0);
}

static int
secret_rotate_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct secret_params	*p = params;
	struct secret		*s;
	struct rpc_pending	*f = NULL;
	char			*id = NULL, *msg = NULL;
	int			 e;

	if ((s = secret_find(call->opsd, p->name)) == NULL)
		return (rpc_error(call, OPSD_ERR_NOT_FOUND, "no secret named "
		    "'%s' (secret list shows them)", p->name));
	if (p->follow && call->in_batch)
		return (rpc_error(call, RPC_INVALID_REQUEST, "secret.rotate "
		    "with follow keeps the connection for notifications and "
		    "cannot be part of a batch"));
	if (p->follow && call->conn != NULL)
		f = rpc_defer(call);
	if ((e = secret_rotate(s, 1, p->force, f, &id, &msg)) != 0) {
		if (f != NULL)
			rpc_pending_release(f);
		e = rpc_error(call, rpc_errno_code(e), "%s", msg);
		free(msg);
		return (e);
	}
	if (f != NULL) {
		/* the reply now, the notifications after it */
		rpc_pending_reply_keep(f, json_pack("{s:s, s:s, s:b}", "op", id,
		    "secret", p->name, "follow", 1));
		free(id);
		return (RPC_DEFERRED);
	}
	*result = json_pack("{s:s, s:s, s:b}", "op", id, "secret", p->name,
	    "follow", 0);
	free(id);
	return (0);
}

#define SP(f)	offsetof(struct secret_params, f)
static const struct rpc_param show_params[] = {
	{ "name", RPC_P_STRING, SP(name), 1, "the secret, as in [secret NAME]" },
};
static const struct rpc_param rotate_params[] = {
	{ "name", RPC_P_STRING, SP(name), 1, "the secret, as in [secret NAME]" },
	{ "follow", RPC_P_BOOL, SP(follow), 0, "send secret.progress and "
	    "secret.finished notifications on this connection" },
	{ "force", RPC_P_BOOL, SP(force), 0, "rotate even if min_interval "
	    "has not passed since the last rotation" },
};
#undef SP

const struct rpc_method rpc_secret_methods[] = {
	{ "secret.list", RPC_READ,
	    "Secrets with their version, fingerprint, age, next rotation and "
	    "state; never a value",
	    RPC_NOPARAMS, "{secrets: [{name, kind, version, fingerprint, "
	    "age_seconds, next_rotation, state, ...}]}", secret_list_rpc },
	{ "secret.rotate", RPC_ADMIN | RPC_NOT_STOPPING,
	    "Rotate a secret now; answers with the op id at once",
	    RPC_PARAMS(rotate_params), sizeof (struct secret_params),
	    "{op, secret, follow}; then secret.progress / secret.finished "
	    "notifications", secret_rotate_rpc },
	{ "secret.show", RPC_READ,
	    "One secret: versions, the rotation under way, the last result, "
	    "its files; never a value",
	    RPC_PARAMS(show_params), sizeof (struct secret_params),
	    "{name, versions, rotation, last_result, roles_differ, files, ...}",
	    secret_show_rpc },
};
const size_t rpc_secret_nmethods = nitems(rpc_secret_methods);
