/*
 * probe.* methods: list, run now (answered when the run ends), history.
 */
#include <stddef.h>
#include <string.h>

#include <jansson.h>

#include "daemon.h"
#include "opsd-proto.h"
#include "probe.h"
#include "rpc.h"
#include "util.h"

struct probe_name_params {
	const char	*name;
};

static const struct rpc_param name_params[] = {
	{ "name", RPC_P_STRING, offsetof(struct probe_name_params, name), 1,
	    "the probe's name, as in [probe NAME]" },
};

/* In text, from each probe's kept text (probe_json_text). */
static int
probe_list_rpc(struct rpc_call *call, void *params, json_t **result)
{
	static const char	 head[] = "{\"probes\":[";
	struct opsd		*o = call->opsd;
	struct probe		*p;
	char			*s;
	size_t			 len, off, total = sizeof head + 2;
	unsigned int		 i;

	(void)params;
	(void)result;
	for (i = 0; i < probe_count(o); i++)
		if (probe_json_text(probe_at(o, i), &len) != NULL)
			total += len + 1;
	s = xmalloc(total);
	memcpy(s, head, sizeof head - 1);
	off = sizeof head - 1;
	/* the texts counted above; one not encodable is left out */
	for (i = 0; i < probe_count(o); i++) {
		if ((p = probe_at(o, i))->text == NULL)
			continue;
		if (off > sizeof head - 1)
			s[off++] = ',';
		memcpy(s + off, p->text, p->textlen);
		off += p->textlen;
	}
	s[off++] = ']';
	s[off++] = '}';
	s[off] = '\0';
	call->raw = s;
	call->rawlen = off;
	return (0);
}

static struct probe *
lookup(struct rpc_call *call, const char *name)
{
	struct probe	*p;

	if ((p = probe_find(call->opsd, name)) == NULL)
		rpc_error(call, OPSD_ERR_NOT_FOUND, "no probe named '%s' "
		    "(probe.list shows them)", name);
	return (p);
}

static int
probe_run_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct probe_name_params	*pp = params;
	struct probe			*p;

	(void)result;
	if ((p = lookup(call, pp->name)) == NULL)
		return (call->code);
	probe_run_now(p, rpc_defer(call));
	return (RPC_DEFERRED);
}

static int
probe_history_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct probe_name_params	*pp = params;
	struct probe			*p;
	struct probe_result		 r;
	json_t				*list;
	unsigned int			 i;

	if ((p = lookup(call, pp->name)) == NULL)
		return (call->code);
	list = json_array();
	/* newest first */
	for (i = 0; i < p->nhist; i++) {
		probe_hist_get(p, i, &r);
		json_array_append_new(list, probe_result_json(&r));
	}
	*result = json_pack("{s:s, s:s, s:o}", "probe", p->conf->name,
	    "state", probe_state_name(p->state), "history", list);
	return (0);
}

const struct rpc_method rpc_probe_methods[] = {
	{ "probe.history", RPC_READ,
	    "The probe's last results, newest first (a bounded ring)",
	    RPC_PARAMS(name_params), sizeof (struct probe_name_params),
	    "{probe, state, history: [{time, ok, latency_ms, reason, ...}]}",
	    probe_history_rpc },
	{ "probe.list", RPC_READ,
	    "Every probe with its state, since when, last result and latency",
	    RPC_NOPARAMS, "{probes: [{name, kind, state, since, last, ...}]}",
	    probe_list_rpc },
	{ "probe.run", RPC_ADMIN | RPC_ASYNC | RPC_NOT_STOPPING,
	    "Run a probe now and answer with its result when it ends",
	    RPC_PARAMS(name_params), sizeof (struct probe_name_params),
	    "{probe, state, ok, latency_ms, reason, ...}", probe_run_rpc },
};
const size_t rpc_probe_nmethods = nitems(rpc_probe_methods);
