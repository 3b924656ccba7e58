/*
 * op.* methods: what the op journal knows, read-only. Unfinished ops and
 * the finished ones of the history look alike here, so that a client
 * shows one list whatever the state; the journal (core/op.c) builds the
 * objects, this file only checks the parameters.
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "daemon.h"
#include "op.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "util.h"

#define OP_LIST_DEFAULT	50
#define OP_LIST_MAX	1000

struct op_list_params {
	const char	*kind;
	const char	*object;
	int64_t		 limit;
};

struct op_show_params {
	const char	*id;
};

static int
op_list_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct op_list_params	*p = params;

	/* absent and 0 both mean the default */
	if (p->limit < 0 || p->limit > OP_LIST_MAX)
		return (rpc_error(call, RPC_INVALID_PARAMS, "limit must be "
		    "between 1 and %d", OP_LIST_MAX));
	*result = op_journal_list(call->opsd, p->kind, p->object,
	    p->limit == 0 ? OP_LIST_DEFAULT : (size_t)p->limit);
	return (0);
}

static int
op_show_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct op_show_params	*p = params;

	if ((*result = op_journal_show(call->opsd, p->id)) == NULL)
		return (rpc_error(call, OPSD_ERR_NOT_FOUND, "no op with id "
		    "'%s' (finished ops are kept: the last %d per object)",
		    p->id, OP_HISTORY_PER_OBJECT));
	return (0);
}

#define LP(m)	offsetof(struct op_list_params, m)
static const struct rpc_param op_list_params[] = {
	{ "kind", RPC_P_STRING, LP(kind), 0, "only ops of this kind, such "
	    "as backup.run" },
	{ "object", RPC_P_STRING, LP(object), 0, "only ops on this object, "
	    "such as a backup's name" },
	{ "limit", RPC_P_INT, LP(limit), 0, "at most this many, newest "
	    "first (default 50, at most 1000)" },
};
#undef LP

static const struct rpc_param op_show_params[] = {
	{ "id", RPC_P_STRING, offsetof(struct op_show_params, id), 1,
	    "the op's id, as op.list gives it" },
};

const struct rpc_method rpc_op_methods[] = {
	{ "op.list", RPC_READ,
	    "List multi-step operations, running and finished, newest first",
	    RPC_PARAMS(op_list_params), sizeof (struct op_list_params),
	    "{ops: [{id, kind, object, step, state, started, finished, error, "
	    "recovered}]}", op_list_rpc },
	{ "op.show", RPC_READ,
	    "One operation with the time of each of its steps",
	    RPC_PARAMS(op_show_params), sizeof (struct op_show_params),
	    "{id, kind, object, step, state, started, finished, error, "
	    "recovered, steps: [{name, at}]}", op_show_rpc },
};
const size_t rpc_op_nmethods = nitems(rpc_op_methods);
