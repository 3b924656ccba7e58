/*
 * opsd.* methods: the daemon's own status, its health (a summary walking
 * the subsystem registry, for monitoring checks), reload, log level and
 * the method table itself (from which opsd-cli and docs/protocol.md are
 * made).
 */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "control.h"
#include "daemon.h"
#include "evt.h"
#include "jsonrpc.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "subsys.h"
#include "util.h"

/*
 * opsd.status is what monitoring polls, so it answers in text: the
 * members that change only with a reload, a log level change or the
 * stop are encoded once ("head", without its closing brace) and each
 * call prints only the live figures after them.
 */
struct status_cache {
	char			*head;
	size_t			 headlen;
	char			*summary_tail;	/* "; config PATH" escaped */
	const struct opsd_config *conf;
	unsigned int		 reloads;
	int			 log_level;
	int			 stopping;
	char			*methods;	/* opsd.methods' result */
	size_t			 methodslen;
};

static struct status_cache *
status_cache(struct opsd *o)
{
	if (o->status == NULL)
		o->status = xcalloc(1, sizeof *o->status);
	return (o->status);
}

void
rpc_opsd_free(struct opsd *o)
{
	if (o->status == NULL)
		return;
	free(o->status->head);
	free(o->status->summary_tail);
	free(o->status->methods);
	free(o->status);
	o->status = NULL;
}

static int
status_head(struct opsd *o)
{
	struct status_cache	*sc = status_cache(o);
	struct tm	 tm;
	char		 started[32], tail[PATH_MAX + 64];
	json_t		*h, *t;

	free(sc->head);
	free(sc->summary_tail);
	sc->head = sc->summary_tail = NULL;
	gmtime_r(&o->start_time, &tm);
	strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
	h = json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:s, s:b, s:s, s:s, "
	    "s:o, s:I, s:I, s:b}",
	    "version", OPSD_VERSION,
	    "protocol", OPSD_PROTO_VERSION,
	    "pid", (json_int_t)getpid(),
	    "started", started,
	    "config", o->conf_path,
	    "state_dir", o->conf->state_dir,
	    "socket", control_path(o),
	    "socket_activated", control_activated(o),
	    "log_level", log_level_name(log_get_level()),
	    "log_target", log_get_target() == LOG_TARGET_JOURNAL ? "journal" :
	    "stderr",
	    "objects", config_counts(o->conf),
	    "reloads", (json_int_t)o->reloads,
	    "watchdog_usec", (json_int_t)o->watchdog_usec,
	    "stopping", o->stopping);
	snprintf(tail, sizeof tail, "; config %s%s", o->conf_path,
	    o->reloads ? " (reloaded)" : "");
	t = json_string(tail);
	if (h == NULL || t == NULL) {	/* a path that is not UTF-8 */
		json_decref(h);
		json_decref(t);
		return (-1);
	}
	sc->head = json_dumps(h, JSON_COMPACT);
	sc->summary_tail = json_dumps(t, JSON_ENCODE_ANY);
	json_decref(h);
	json_decref(t);
	if (sc->head == NULL || sc->summary_tail == NULL)
		return (-1);
	sc->headlen = strlen(sc->head) - 1;	/* the '}' */
	/* the tail goes inside another string: drop its quotes */
	sc->summary_tail[strlen(sc->summary_tail) - 1] =
	    '\0';
	sc->conf = o->conf;
	sc->reloads = o->reloads;
	sc->log_level = log_get_level();
	sc->stopping = o->stopping;
	return (0);
}

/*
 * opsd.status's live part is built by hand: its one vasprintf of three
 * floating-point fields was a third of the call.
 */
struct sbuf {
	char	*p;
	size_t	 len, cap;
};

static void
sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 256;
		b->p = xreallocarray(b->p, b->cap, 1);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void
sb_u64(struct sbuf *b, uint64_t v)
{
	char	d[24], *e = d + sizeof d, *q = e;

	do {
		*--q = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	sb_put(b, q, (size_t)(e - q));
}

/* v / 10^dec with dec decimals, as printf's %.{dec}f would write it */
static void
sb_fixed(struct sbuf *b, uint64_t v, unsigned int dec)
{
	uint64_t	scale = 1;
	unsigned int	i;
	char		frac[8];

	for (i = 0; i < dec; i++)
		scale *= 10;
	sb_u64(b, v / scale);
	v %= scale;
	for (i = dec; i > 0; i--) {
		frac[i - 1] = (char)('0' + v % 10);
		v /= 10;
	}
	sb_put(b, ".", 1);
	sb_put(b, frac, dec);
}

static int
opsd_status(struct rpc_call *call, void *params, json_t **result)
{
	struct opsd	*o = call->opsd;
	struct status_cache *sc = status_cache(o);
	unsigned int	 n = control_nconns(o);
	uint64_t	 lagmax;
	double		 cpu;
	struct sbuf	 b = { NULL, 0, 0 };

	(void)params;
	(void)result;
	if ((sc->head == NULL || sc->conf != o->conf ||
	    sc->reloads != o->reloads ||
	    sc->log_level != log_get_level() ||
	    sc->stopping != o->stopping) && status_head(o) != 0)
		return (rpc_error(call, RPC_INTERNAL_ERROR, "cannot encode "
		    "the status (a path that is not UTF-8?)"));
	lagmax = o->loop.lag_max_usec > o->loop.lag_max_prev ?
	    o->loop.lag_max_usec : o->loop.lag_max_prev;
	cpu = o->loop.cpu_percent;
	sb_put(&b, sc->head, sc->headlen);
	sb_str(&b, ",\"uptime_seconds\":");
	sb_u64(&b, (now_usec() - o->start_usec) / 1000000);
	sb_str(&b, ",\"loop\":{\"connections\":");
	sb_u64(&b, n);
	sb_str(&b, ",\"lag_ms\":");
	sb_fixed(&b, o->loop.lag_usec, 3);
	sb_str(&b, ",\"lag_max_ms\":");
	sb_fixed(&b, lagmax, 3);
	sb_str(&b, ",\"cpu_percent\":");
	sb_fixed(&b, cpu > 0 && cpu < 1e15 ? (uint64_t)(cpu * 10 + 0.5) : 0, 1);
	sb_str(&b, "},\"requests_total\":");
	sb_u64(&b, rpc_requests_total(o));
	sb_str(&b, ",\"summary\":\"");
	sb_str(&b, o->stopping ? "stopping" : "running");
	sb_str(&b, "; ");
	sb_u64(&b, n);
	sb_str(&b, n == 1 ? " client" : " clients");
	sb_str(&b, sc->summary_tail + 1);
	sb_str(&b, "\"}");
	call->rawlen = b.len;
	call->raw = b.p;
	return (0);
}

static int
opsd_reload_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct config_errors	 errs = { NULL, 0 };
	json_t			*list;
	unsigned int		 i;

	(void)params;
	if (opsd_reload(call->opsd, &errs) != 0) {
		list = json_array();
		for (i = 0; i < errs.n; i++)
			json_array_append_new(list, json_string(errs.v[i]));
		rpc_error(call, OPSD_ERR_CONFIG, "%s has %u error%s; the "
		    "daemon keeps running on the previous configuration%s%s",
		    call->opsd->conf_path, errs.n, errs.n == 1 ? "" : "s",
		    errs.n > 0 ? ": " : "", errs.n > 0 ? errs.v[0] : "");
		call->data = json_pack("{s:o}", "errors", list);
		config_errors_clear(&errs);
		return (call->code);
	}
	*result = json_pack("{s:b, s:s, s:I}", "reloaded", 1,
	    "config", call->opsd->conf_path,
	    "reloads", (json_int_t)call->opsd->reloads);
	return (0);
}

/* --- opsd.health ---------------------------------------------------------- */

static void
health_add(json_t *list, const char *fmt, va_list ap)
{
	char	*s;

	xvasprintf(&s, fmt, ap);
	json_array_append_new(list, json_string(s));
	free(s);
}

void
health_problem(struct health *h, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	health_add(h->problems, fmt, ap);
	va_end(ap);
}

void
health_fine(struct health *h, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	health_add(h->fine, fmt, ap);
	va_end(ap);
}

/*
 * The daemon's own part: a reload that failed leaves the old config
 * running, which is a warning (the next restart may not start) and stays
 * one, with the errors, until a reload succeeds.
 */
static enum health_status
health_reload(struct opsd *o, struct health *h)
{
	json_t		*r, *errors;
	char		 at[32];
	unsigned int	 i, n;

	util_iso_time(o->last_reload_success, at, sizeof at);
	r = json_pack("{s:b, s:I, s:s}", "ok", o->last_reload_ok,
	    "reloads", (json_int_t)o->reloads, "last_success", at);
	json_object_set_new(h->result, "reload", r);
	if (o->last_reload_ok)
		return (HEALTH_OK);
	errors = json_array();
	n = o->reload_errors != NULL ? o->reload_errors->n : 0;
	for (i = 0; i < n; i++)
		json_array_append_new(errors,
		    json_string(o->reload_errors->v[i]));
	util_iso_time(o->last_reload_failure, at, sizeof at);
	json_object_set_new(r, "failed_at", json_string(at));
	json_object_set_new(r, "errors", errors);
	if (n == 0)
		health_problem(h, "reload failed; running the previous "
		    "configuration");
	else
		health_problem(h, "reload failed: %s%s", o->reload_errors->v[0],
		    n > 1 ? " (and more)" : "");
	return (HEALTH_WARNING);
}

json_t *
health_collect(struct opsd *o)
{
	static const char *const names[] = { "ok", "warning", "critical" };
	struct health	 h;
	enum health_status worst, st;
	size_t		 i;

	h.result = json_object();
	h.problems = json_array();
	h.fine = json_array();
	worst = health_reload(o, &h);
	for (i = 0; i < SUBSYS_N; i++) {
		if (subsys_table[i]->health == NULL)
			continue;
		st = subsys_table[i]->health(o, &h);
		if (st > worst)
			worst = st;
	}
	json_object_set_new(h.result, "status", json_string(names[worst]));
	json_object_set_new(h.result, "problems", h.problems);
	json_object_set_new(h.result, "fine", h.fine);
	return (h.result);
}

static int
opsd_health(struct rpc_call *call, void *params, json_t **result)
{
	(void)params;
	*result = health_collect(call->opsd);
	return (0);
}

struct log_level_params {
	const char	*level;
};

static int
opsd_log_level(struct rpc_call *call, void *params, json_t **result)
{
	struct log_level_params	*p = params;
	struct evt		*ev;
	int			 prev = log_get_level(), level;

	level = log_level_parse(p->level);
	if (level < LOG_ERR)
		return (rpc_error(call, RPC_INVALID_PARAMS, "unknown log level "
		    "'%s': use error, warning, notice, info or debug",
		    p->level));
	log_set_level(level);
	ev = evt_new(&EVT_LOG_LEVEL);
	evt_add(ev, "log_level", "%s", log_level_name(level));
	evt_add(ev, "prev_log_level", "%s", log_level_name(prev));
	/* shown even when the new level would hide it */
	ev->force = 1;
	evt_emit(ev, "log level changed from %s to %s", log_level_name(prev),
	    log_level_name(level));
	*result = json_pack("{s:s, s:s}", "level", log_level_name(level),
	    "previous", log_level_name(prev));
	return (0);
}

/*
 * The method table is fixed at start-up, so its description is encoded
 * once: encoding its 5 KB on every call cost 0.14 ms of the loop, five
 * times an opsd.status.
 */
static int
opsd_methods(struct rpc_call *call, void *params, json_t **result)
{
	struct status_cache *sc = status_cache(call->opsd);
	json_t		*list, *r;
	size_t		 i;

	(void)params;
	if (sc->methods == NULL) {
		list = json_array();
		for (i = 0; i < rpc_count(call->opsd); i++)
			json_array_append_new(list,
			    rpc_describe(rpc_at(call->opsd, i)));
		r = json_pack("{s:i, s:o}", "protocol", OPSD_PROTO_VERSION,
		    "methods", list);
		if (r == NULL || (sc->methods = jsonrpc_dump(r,
		    &sc->methodslen)) == NULL) {
			*result = r;
			return (0);
		}
		json_decref(r);
	}
	call->raw = xmalloc(sc->methodslen + 1);
	memcpy(call->raw, sc->methods, sc->methodslen + 1);
	call->rawlen = sc->methodslen;
	return (0);
}

static const struct rpc_param log_level_params[] = {
	{ "level", RPC_P_STRING, offsetof(struct log_level_params, level), 1,
	    "error, warning, notice, info or debug" },
};

const struct rpc_method rpc_opsd_methods[] = {
	{ "opsd.health", RPC_READ,
	    "Health summary for monitoring: ok, warning or critical, and why",
	    RPC_NOPARAMS, "{status, problems, fine, reload, probes, alerts, "
	    "backups}", opsd_health },
	{ OPSD_M_LOG_LEVEL, RPC_ADMIN,
	    "Set the log level until the next reload or restart",
	    RPC_PARAMS(log_level_params), sizeof (struct log_level_params),
	    "{level, previous}", opsd_log_level },
	{ OPSD_M_METHODS, RPC_READ,
	    "List every method with its parameters and access class",
	    RPC_NOPARAMS, "{protocol, methods: [{name, access, help, result, "
	    "params}]}", opsd_methods },
	{ OPSD_M_RELOAD, RPC_ADMIN,
	    "Re-read the configuration file; keep the old one if it has errors",
	    RPC_NOPARAMS, "{reloaded, config, reloads}; error -32001 with "
	    "data.errors", opsd_reload_rpc },
	{ OPSD_M_STATUS, RPC_READ,
	    "Version, uptime, configuration, connections and loop load",
	    RPC_NOPARAMS, "{version, pid, uptime_seconds, config, state_dir, "
	    "objects, loop, ...}", opsd_status },
};
const size_t rpc_opsd_nmethods = nitems(rpc_opsd_methods);
