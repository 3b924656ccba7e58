/*
 * Dispatch: envelope checks, the method table lookup, authorization,
 * declarative params, and the reply. Only this layer turns an internal
 * failure into a JSON-RPC error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "control.h"
#include "daemon.h"
#include "evt.h"
#include "jsonrpc.h"
#include "opsd-parse.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "subsys.h"
#include "util.h"

/* The core's own families; the subsystems' come from the registry. */
static const struct {
	const struct rpc_method	*methods;
	const size_t		*n;
} core_families[] = {
	{ rpc_opsd_methods, &rpc_opsd_nmethods },
	{ rpc_op_methods, &rpc_op_nmethods },
};

/* One sorted table of every method, and its counters. */
struct rpc_table {
	const struct rpc_method	**v;
	struct rpc_stats	 *stats;
	size_t			  n;
	uint64_t		  requests_total;
};

static int
method_cmp(const void *a, const void *b)
{
	return (strcmp((*(const struct rpc_method *const *)a)->name,
	    (*(const struct rpc_method *const *)b)->name));
}

static int
method_key_cmp(const void *key, const void *b)
{
	return (strcmp(key, (*(const struct rpc_method *const *)b)->name));
}

static void
table_add(struct rpc_table *t, const struct rpc_method *m, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		t->v = xreallocarray(t->v, t->n + 1, sizeof *t->v);
		t->v[t->n++] = &m[i];
	}
}

void
rpc_init(struct opsd *o)
{
	struct rpc_table	*t;
	size_t			 i;

	t = xcalloc(1, sizeof *t);
	for (i = 0; i < nitems(core_families); i++)
		table_add(t, core_families[i].methods, *core_families[i].n);
	for (i = 0; i < SUBSYS_N; i++)
		if (subsys_table[i]->methods != NULL)
			table_add(t, subsys_table[i]->methods,
			    *subsys_table[i]->nmethods);
	qsort(t->v, t->n, sizeof *t->v, method_cmp);
	for (i = 1; i < t->n; i++) {
		if (strcmp(t->v[i - 1]->name, t->v[i]->name) == 0)
			fatalx("rpc: method %s defined twice", t->v[i]->name);
	}
	t->stats = xcalloc(t->n + 1, sizeof *t->stats);
	o->rpc = t;
}

void
rpc_free(struct opsd *o)
{
	if (o->rpc == NULL)
		return;
	free(o->rpc->v);
	free(o->rpc->stats);
	free(o->rpc);
	o->rpc = NULL;
}

const struct rpc_method *
rpc_lookup(struct opsd *o, const char *name)
{
	const struct rpc_method	**m;

	m = bsearch(name, o->rpc->v, o->rpc->n, sizeof *o->rpc->v,
	    method_key_cmp);
	return (m != NULL ? *m : NULL);
}

size_t
rpc_count(struct opsd *o)
{
	return (o->rpc->n);
}

const struct rpc_method *
rpc_at(struct opsd *o, size_t i)
{
	return (i < o->rpc->n ? o->rpc->v[i] : NULL);
}

const struct rpc_stats *
rpc_stats_at(struct opsd *o, size_t i)
{
	return (i < o->rpc->n ? &o->rpc->stats[i] : NULL);
}

uint64_t
rpc_requests_total(struct opsd *o)
{
	return (o->rpc->requests_total);
}

int
rpc_error(struct rpc_call *call, int code, const char *fmt, ...)
{
	va_list	ap;

	free(call->message);
	va_start(ap, fmt);
	xvasprintf(&call->message, fmt, ap);
	va_end(ap);
	call->code = code;
	return (code);
}

static const char *
ptype_name(enum rpc_ptype t)
{
	switch (t) {
	case RPC_P_STRING:
		return ("string");
	case RPC_P_INT:
		return ("integer");
	case RPC_P_BOOL:
		return ("boolean");
	case RPC_P_DURATION:
		return ("duration");
	case RPC_P_JSON:
		return ("any");
	}
	return ("?");
}

static int
param_set(struct rpc_call *call, const struct rpc_param *p, json_t *v,
    char *base)
{
	uint64_t	ms;

	switch (p->type) {
	case RPC_P_STRING:
		if (!json_is_string(v))
			break;
		*(const char **)(base + p->off) = json_string_value(v);
		return (0);
	case RPC_P_INT:
		if (!json_is_integer(v))
			break;
		*(int64_t *)(base + p->off) = json_integer_value(v);
		return (0);
	case RPC_P_BOOL:
		if (!json_is_boolean(v))
			break;
		*(int *)(base + p->off) = json_is_true(v);
		return (0);
	case RPC_P_DURATION:
		if (json_is_integer(v) && json_integer_value(v) >= 0 &&
		    json_integer_value(v) <= INT64_MAX / 1000) {
			*(uint64_t *)(base + p->off) =
			    (uint64_t)json_integer_value(v) * 1000;
			return (0);
		}
		if (json_is_string(v) &&
		    parse_duration(json_string_value(v), &ms) == 0) {
			*(uint64_t *)(base + p->off) = ms;
			return (0);
		}
		break;
	case RPC_P_JSON:
		*(json_t **)(base + p->off) = v;
		return (0);
	}
	return (rpc_error(call, RPC_INVALID_PARAMS,
	    "parameter '%s' must be of type %s", p->name, ptype_name(p->type)));
}

/* Fills the method's params struct from an object or a positional array. */
static int
params_fill(struct rpc_call *call, json_t *params, void *out)
{
	const struct rpc_method	*m = call->method;
	const char		*key;
	json_t			*v;
	size_t			 i;
	int			*seen, r = 0;

	seen = xcalloc(m->nparams + 1, sizeof *seen);
	if (json_is_array(params)) {
		if (json_array_size(params) > m->nparams) {
			r = rpc_error(call, RPC_INVALID_PARAMS, "%s takes at "
			    "most %zu parameters, got %zu", m->name,
			    m->nparams, json_array_size(params));
			goto out;
		}
		json_array_foreach(params, i, v) {
			if ((r = param_set(call, &m->params[i], v, out)) != 0)
				goto out;
			seen[i] = 1;
		}
	} else if (json_is_object(params)) {
		json_object_foreach(params, key, v) {
			for (i = 0; i < m->nparams; i++) {
				if (strcmp(m->params[i].name, key) == 0)
					break;
			}
			if (i == m->nparams) {
				r = rpc_error(call, RPC_INVALID_PARAMS,
				    "unknown parameter '%s' for %s", key,
				    m->name);
				goto out;
			}
			if ((r = param_set(call, &m->params[i], v, out)) != 0)
				goto out;
			seen[i] = 1;
		}
	}
	for (i = 0; i < m->nparams; i++) {
		if (m->params[i].required && !seen[i]) {
			r = rpc_error(call, RPC_INVALID_PARAMS,
			    "missing required parameter '%s' (%s)",
			    m->params[i].name, ptype_name(m->params[i].type));
			goto out;
		}
	}
out:
	free(seen);
	return (r);
}

static void
audit(struct rpc_call *call, const struct evt_type *type, const char *what)
{
	const struct peer	*p;
	struct evt		*ev;

	if (call->conn == NULL)
		return;
	p = control_peer(call->conn);
	ev = evt_new(type);
	evt_add(ev, "method", "%s", call->method->name);
	evt_add(ev, "uid", "%u", (unsigned int)p->uid);
	evt_add(ev, "gid", "%u", (unsigned int)p->gid);
	evt_add(ev, "pid", "%d", (int)p->pid);
	evt_add(ev, "comm", "%s", p->comm);
	evt_emit(ev, "%s %s by uid %u pid %d (%s)", what, call->method->name,
	    (unsigned int)p->uid, (int)p->pid, p->comm);
}

/* One request object; returns the reply or NULL for a notification. */
/* {"jsonrpc":"2.0","result":RAW,"id":ID} without building a tree */
static char *
reply_text(json_t *id, const char *raw, size_t rawlen, size_t *len)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"result\":";
	char	idbuf[512], *s;
	size_t	idlen;

	idlen = json_dumpb(id != NULL ? id : json_null(), idbuf,
	    sizeof idbuf, JSON_COMPACT | JSON_ENCODE_ANY);
	if (idlen == 0 || idlen > sizeof idbuf)
		return (NULL);
	*len = sizeof head - 1 + rawlen + 6 + idlen + 1;
	s = xmalloc(*len + 1);
	memcpy(s, head, sizeof head - 1);
	memcpy(s + sizeof head - 1, raw, rawlen);
	memcpy(s + sizeof head - 1 + rawlen, ",\"id\":", 6);
	memcpy(s + sizeof head - 1 + rawlen + 6, idbuf, idlen);
	s[*len - 1] = '}';
	s[*len] = '\0';
	return (s);
}

static json_t *
rpc_handle_one(struct opsd *o, struct ctl_conn *conn, json_t *msg,
    int in_batch, char **text, size_t *textlen)
{
	struct rpc_request	 req;
	struct rpc_call		 call;
	struct rpc_stats	*stats;
	json_t			*result = NULL, *reply;
	void			*params = NULL;
	char			 err[256];
	size_t			 idx;
	int			 code;

	o->rpc->requests_total++;
	if ((code = jsonrpc_parse_request(msg, &req, err, sizeof err)) != 0)
		return (jsonrpc_error(req.id, code, err, NULL));

	memset(&call, 0, sizeof call);
	call.opsd = o;
	call.conn = conn;
	call.id = req.id;
	call.in_batch = in_batch;
	if ((call.method = rpc_lookup(o, req.method)) == NULL) {
		snprintf(err, sizeof err, "unknown method '%.128s' (opsd.methods "
		    "lists them)", req.method);
		reply = jsonrpc_error(req.id, RPC_METHOD_NOT_FOUND, err, NULL);
		goto done;
	}
	idx = 0;
	while (o->rpc->v[idx] != call.method)
		idx++;
	stats = &o->rpc->stats[idx];
	call.stats = stats;
	if ((call.method->flags & RPC_ASYNC) && in_batch) {
		snprintf(err, sizeof err, "%s answers later and cannot be part "
		    "of a batch; send it on its own", call.method->name);
		reply = jsonrpc_error(req.id, RPC_INVALID_REQUEST, err, NULL);
		goto done;
	}

	if ((call.method->flags & RPC_ADMIN) && conn != NULL &&
	    !control_may_admin(o, conn)) {
		stats->denied++;
		audit(&call, &EVT_RPC_DENIED, "denied");
		rpc_error(&call, OPSD_ERR_DENIED, "%s changes the daemon and "
		    "needs root or the admin group", call.method->name);
		reply = jsonrpc_error(req.id, call.code, call.message, NULL);
		goto done;
	}

	params = xcalloc(1, call.method->psize ? call.method->psize : 1);
	if (params_fill(&call, req.params, params) == 0) {
		if (call.method->flags & RPC_ADMIN)
			audit(&call, &EVT_RPC_AUDIT, "call");
		if ((call.method->flags & RPC_NOT_STOPPING) && o->stopping)
			rpc_error(&call, OPSD_ERR_SHUTTING_DOWN,
			    "opsd is stopping");
		else if (call.method->exec(&call, params, &result) ==
		    RPC_DEFERRED && call.code == 0) {
			reply = NULL;
			goto done;
		}
	}
	if (call.code != 0) {
		stats->error++;
		json_decref(result);
		reply = jsonrpc_error(req.id, call.code, call.message,
		    call.data);
		call.data = NULL;
	} else if (call.raw != NULL) {
		stats->ok++;
		reply = NULL;
		if (text != NULL && req.id != NULL)
			*text = reply_text(req.id, call.raw, call.rawlen,
			    textlen);
		if (text == NULL || *text == NULL) {
			/* a batch, or an odd id: back to a tree */
			result = json_loadb(call.raw, call.rawlen, 0, NULL);
			reply = jsonrpc_result(req.id, result);
		}
	} else {
		stats->ok++;
		reply = jsonrpc_result(req.id, result);
	}
done:
	free(call.raw);
	free(params);
	free(call.message);
	json_decref(call.data);
	if (req.id == NULL && code == 0) {
		/* a notification gets no reply, not even an error */
		json_decref(reply);
		return (NULL);
	}
	return (reply);
}

struct rpc_pending *
rpc_defer(struct rpc_call *call)
{
	struct rpc_pending	*p;

	p = xcalloc(1, sizeof *p);
	p->id = call->id != NULL ? json_incref(call->id) : NULL;
	p->stats = call->stats;
	p->conn = call->conn;
	if (p->conn != NULL)
		control_track(p->conn, p);
	return (p);
}

static void
pending_finish(struct rpc_pending *p, json_t *reply)
{
	struct ctl_conn	*conn = p->conn;

	if (conn != NULL) {
		control_untrack(p);
		if (p->id != NULL)
			control_send(conn, reply);
	}
	json_decref(reply);
	json_decref(p->id);
	free(p);
}

void
rpc_pending_reply(struct rpc_pending *p, json_t *result)
{
	p->stats->ok++;
	pending_finish(p, jsonrpc_result(p->id, result));
}

int
rpc_errno_code(int err)
{
	switch (err) {
	case -ENOENT:
		return (OPSD_ERR_NOT_FOUND);
	case -EBUSY:
		return (OPSD_ERR_BUSY);
	case -ESHUTDOWN:
		return (OPSD_ERR_SHUTTING_DOWN);
	case -EINVAL:
		return (RPC_INVALID_PARAMS);
	case -EPERM:
	case -EACCES:
		return (OPSD_ERR_DENIED);
	default:
		return (OPSD_ERR_FAILED);
	}
}

static void
pending_verror(struct rpc_pending *p, int code, json_t *data,
    const char *fmt, va_list ap)
{
	char	*msg;

	xvasprintf(&msg, fmt, ap);
	p->stats->error++;
	pending_finish(p, jsonrpc_error(p->id, code, msg, data));
	free(msg);
}

void
rpc_pending_fail(struct rpc_pending *p, int err, json_t *data,
    const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	pending_verror(p, rpc_errno_code(err), data, fmt, ap);
	va_end(ap);
}

void
rpc_pending_error(struct rpc_pending *p, int code, json_t *data,
    const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	pending_verror(p, code, data, fmt, ap);
	va_end(ap);
}


json_t *
rpc_handle(struct opsd *o, struct ctl_conn *conn, json_t *msg)
{
	return (rpc_handle_text(o, conn, msg, NULL, NULL));
}

json_t *
rpc_handle_text(struct opsd *o, struct ctl_conn *conn, json_t *msg,
    char **text, size_t *textlen)
{
	json_t	*replies, *r, *v;
	size_t	 i;

	if (text != NULL)
		*text = NULL;
	if (!json_is_array(msg))
		return (rpc_handle_one(o, conn, msg, 0, text, textlen));
	if (json_array_size(msg) == 0) {
		o->rpc->requests_total++;
		return (jsonrpc_error(NULL, RPC_INVALID_REQUEST,
		    "empty batch", NULL));
	}
	if (json_array_size(msg) > OPSD_MAX_BATCH) {
		char	err[128];

		o->rpc->requests_total++;
		snprintf(err, sizeof err, "batch of %zu requests; at most %d "
		    "per batch", json_array_size(msg), OPSD_MAX_BATCH);
		return (jsonrpc_error(NULL, RPC_INVALID_REQUEST, err, NULL));
	}
	replies = json_array();
	json_array_foreach(msg, i, v) {
		if ((r = rpc_handle_one(o, conn, v, 1, NULL, NULL)) != NULL)
			json_array_append_new(replies, r);
	}
	if (json_array_size(replies) == 0) {
		json_decref(replies);
		return (NULL);
	}
	return (replies);
}

json_t *
rpc_describe(const struct rpc_method *m)
{
	json_t	*params;
	size_t	 i;

	params = json_array();
	for (i = 0; i < m->nparams; i++)
		json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:s}",
		    "name", m->params[i].name,
		    "type", ptype_name(m->params[i].type),
		    "required", m->params[i].required,
		    "help", m->params[i].help));
	/* async methods answer when done and cannot be batched */
	return (json_pack("{s:s, s:s, s:b, s:s, s:s, s:o}", "name", m->name,
	    "access", (m->flags & RPC_ADMIN) ? "admin" : "read",
	    "async", (m->flags & RPC_ASYNC) != 0,
	    "help", m->help, "result", m->result ? m->result : "",
	    "params", params));
}

void
rpc_pending_notify(struct rpc_pending *p, const char *method, json_t *params)
{
	json_t	*n;

	if (p->conn != NULL) {
		n = jsonrpc_notification(method, params);
		control_send(p->conn, n);
		json_decref(n);
	}
	json_decref(params);
}

void
rpc_pending_reply_keep(struct rpc_pending *p, json_t *result)
{
	json_t	*reply;

	p->stats->ok++;
	reply = jsonrpc_result(p->id, result);
	if (p->conn != NULL && p->id != NULL)
		control_send(p->conn, reply);
	json_decref(reply);
}

void
rpc_pending_release(struct rpc_pending *p)
{
	if (p->conn != NULL)
		control_untrack(p);
	json_decref(p->id);
	free(p);
}

void
rpc_followers_add(struct rpc_followers *f, struct rpc_pending *p)
{
	f->v = xreallocarray(f->v, f->n + 1, sizeof *f->v);
	f->v[f->n++] = p;
}

void
rpc_followers_notify(struct rpc_followers *f, const char *method,
    json_t *params)
{
	unsigned int	i;

	for (i = 0; i < f->n; i++)
		rpc_pending_notify(f->v[i], method, json_incref(params));
	json_decref(params);
}

void
rpc_followers_end(struct rpc_followers *f, const char *method,
    json_t *params)
{
	unsigned int	i;

	for (i = 0; i < f->n; i++) {
		if (params != NULL)
			rpc_pending_notify(f->v[i], method,
			    json_incref(params));
		rpc_pending_release(f->v[i]);
	}
	json_decref(params);
	free(f->v);
	f->v = NULL;
	f->n = 0;
}
