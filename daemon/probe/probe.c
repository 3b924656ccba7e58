/*
 * The probe core: probe_done(), the one completion path of every kind
 * (relayd's hce_notify_done), the history and JSON of a probe, and the
 * set of probes a configuration makes. The schema is probe-conf.c, the
 * schedule probe-sched.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "alert.h"
#include "config.h"
#include "daemon.h"
#include "lazylib.h"
#include "evt.h"
#include "ini.h"
#include "jsonrpc.h"
#include "probe.h"
#include "probe-int.h"
#include "rpc.h"
#include "util.h"

const struct evt_type EVT_PROBE_STATE = {
	"probe.state", "d8c4acb8c2584cdba1fe1095eddbdd19", LOG_WARNING };

static const struct probe_ops *const kind_ops[] = {
	&probe_http_ops, &probe_tcp_ops, &probe_pg_ops, &probe_tls_ops,
	&probe_exec_ops, &probe_tls_grade_ops,
};

/* --- helpers for the kinds ---------------------------------------------- */

void
probe_fail(struct probe_result *r, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 n;

	/*
	 * The reason often quotes a server or a command: cut it at a
	 * character, not a byte, and make it UTF-8 for every reader.
	 */
	r->ok = 0;
	va_start(ap, fmt);
	n = xvasprintf(&s, fmt, ap);
	va_end(ap);
	util_utf8_sanitize(r->reason, sizeof r->reason, s, (size_t)n);
	free(s);
}

const char *
probe_state_name(enum probe_state s)
{
	switch (s) {
	case PROBE_UP:
		return ("up");
	case PROBE_DOWN:
		return ("down");
	default:
		return ("unknown");
	}
}

/* --- completion --------------------------------------------------------- */

static void
hist_put(struct probe_hist *h, const struct probe_result *r)
{
	size_t	l0 = strlen(r->reason) + 1, l1 = strlen(r->cert_subject) + 1,
		l2 = strlen(r->cert_issuer) + 1,
		l3 = strlen(r->server_version) + 1;

	char	*t;

	if (!h->text_inline)
		free(h->text);
	h->text_inline = l0 + l1 + l2 + l3 <= sizeof h->inl;
	t = h->text_inline ? h->inl : (h->text = xmalloc(l0 + l1 + l2 + l3));
	memcpy(t, r->reason, l0);
	memcpy(t + l0, r->cert_subject, l1);
	memcpy(t + l0 + l1, r->cert_issuer, l2);
	memcpy(t + l0 + l1 + l2, r->server_version, l3);
	h->ts_usec = r->ts_usec;
	h->latency_ms = r->latency_ms;
	h->cert_not_after = r->cert_not_after;
	h->http_status = r->http_status;
	h->ok = r->ok != 0;
	h->cert_verified = r->cert_verified != 0;
}

void
probe_hist_get(const struct probe *p, unsigned int i, struct probe_result *r)
{
	const struct probe_hist	*h;
	const char		*t;

	h = &p->hist[(p->hist_next + PROBE_HISTORY - 1 - i) % PROBE_HISTORY];
	memset(r, 0, sizeof *r);
	r->ts_usec = h->ts_usec;
	r->ok = h->ok;
	r->latency_ms = h->latency_ms;
	r->http_status = h->http_status;
	r->cert_not_after = h->cert_not_after;
	r->cert_verified = h->cert_verified;
	if ((t = h->text_inline ? h->inl : h->text) == NULL)
		return;
	snprintf(r->reason, sizeof r->reason, "%s", t);
	t += strlen(t) + 1;
	snprintf(r->cert_subject, sizeof r->cert_subject, "%s", t);
	t += strlen(t) + 1;
	snprintf(r->cert_issuer, sizeof r->cert_issuer, "%s", t);
	t += strlen(t) + 1;
	snprintf(r->server_version, sizeof r->server_version, "%s", t);
}

json_t *
probe_result_json(const struct probe_result *r)
{
	json_t		*o;
	struct tm	 tm;
	time_t		 t = (time_t)(r->ts_usec / 1000000);
	char		 ts[32];

	gmtime_r(&t, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	o = json_pack("{s:s, s:b, s:f, s:s}", "time", ts, "ok", r->ok,
	    "latency_ms", r->latency_ms, "reason", r->reason);
	if (o == NULL)
		o = json_pack("{s:s, s:b, s:f, s:s}", "time", ts, "ok", r->ok,
		    "latency_ms", r->latency_ms, "reason", "(not UTF-8)");
	if (r->http_status != 0)
		json_object_set_new(o, "http_status",
		    json_integer(r->http_status));
	if (r->cert_not_after != 0) {
		t = (time_t)r->cert_not_after;
		gmtime_r(&t, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(o, "cert", json_pack("{s:s, s:f, s:s?, "
		    "s:s?, s:b}", "not_after", ts, "days_left",
		    (double)(r->cert_not_after - r->ts_usec / 1000000) / 86400.0,
		    "subject", r->cert_subject[0] ? r->cert_subject : NULL,
		    "issuer", r->cert_issuer[0] ? r->cert_issuer : NULL,
		    "verified", r->cert_verified));
	}
	if (r->server_version[0] != '\0')
		json_object_set_new(o, "server_version",
		    json_string(r->server_version));
	return (o);
}

json_t *
probe_json(const struct probe *p)
{
	json_t		*o, *routes;
	struct tm	 tm;
	time_t		 t = (time_t)p->since;
	char		 since[32] = "";
	unsigned int	 i;

	if (p->since != 0) {
		gmtime_r(&t, &tm);
		strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	routes = json_array();
	for (i = 0; i < p->conf->nalert; i++)
		json_array_append_new(routes, json_string(p->conf->alert[i]));
	o = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:I, s:I, s:I, s:b, s:o}",
	    "name", p->conf->name, "kind", probe_kind_name(p->conf->kind),
	    "state", probe_state_name(p->state),
	    "since", since[0] ? since : NULL,
	    "interval_ms", (json_int_t)p->conf->interval,
	    "runs_ok", (json_int_t)p->runs_ok,
	    "runs_failed", (json_int_t)p->runs_failed,
	    "state_changes", (json_int_t)p->state_changes,
	    "running", p->running, "alert", routes);
	if (p->has_last) {
		struct probe_result	r;

		probe_hist_get(p, 0, &r);
		json_object_set_new(o, "last", probe_result_json(&r));
	} else
		json_object_set_new(o, "last", json_null());
	/* where it is on its way to the other state: "up, failing 1/3" */
	json_object_set_new(o, "ok_streak", json_integer(p->ok_streak));
	json_object_set_new(o, "fail_streak", json_integer(p->fail_streak));
	json_object_set_new(o, "rise", json_integer((json_int_t)p->conf->rise));
	json_object_set_new(o, "fall", json_integer((json_int_t)p->conf->fall));
	probe_recover_json((struct probe *)p, o);
	return (o);
}

/*
 * probe.list of 300 probes is 100 KB: built and encoded whole on every
 * call it took 4 ms of the loop, and clients polling it kept the loop
 * that busy. A probe changes twice a run (it starts, it ends), so each
 * one's text is kept and encoded again only once something it shows has
 * changed; nothing in it depends on the time of the call.
 */
const char *
probe_json_text(struct probe *p, size_t *len)
{
	struct probe_text_key	 k;
	json_t			*o;

	memset(&k, 0, sizeof k);
	k.conf = (uint64_t)(uintptr_t)p->conf;
	k.reloads = p->opsd->reloads;
	k.state = (uint64_t)p->state;
	k.since = (uint64_t)p->since;
	k.runs_ok = p->runs_ok;
	k.runs_failed = p->runs_failed;
	k.has_last = (uint64_t)p->has_last;
	k.state_changes = p->state_changes;
	k.running = (uint64_t)p->running;
	k.ok_streak = p->ok_streak;
	k.fail_streak = p->fail_streak;
	k.recover = probe_recover_generation(p);
	if (p->text == NULL || memcmp(&k, &p->text_key, sizeof k) != 0) {
		free(p->text);
		p->text = NULL;
		if ((o = probe_json(p)) == NULL)
			return (NULL);
		p->text = jsonrpc_dump(o, &p->textlen);
		json_decref(o);
		if (p->text == NULL)
			return (NULL);
		memcpy(&p->text_key, &k, sizeof k);
	}
	*len = p->textlen;
	return (p->text);
}

static void
probe_state_event(struct probe *p, enum probe_state prev,
    const struct probe_result *r)
{
	struct evt	*ev;

	ev = evt_new(&EVT_PROBE_STATE);
	if (p->state == PROBE_UP)
		evt_set_priority(ev, LOG_NOTICE);
	evt_add(ev, "probe", "%s", p->conf->name);
	evt_add(ev, "kind", "%s", probe_kind_name(p->conf->kind));
	evt_add(ev, "state", "%s", probe_state_name(p->state));
	evt_add(ev, "prev_state", "%s", probe_state_name(prev));
	evt_add(ev, "reason", "%s", r->reason);
	evt_add(ev, "latency_ms", "%.1f", r->latency_ms);
	/* alert: down fires, up after down resolves; unknown->up is quiet */
	if (p->conf->nalert > 0 && (p->state == PROBE_DOWN ||
	    prev == PROBE_DOWN) && probe_recover_alert(p, prev))
		evt_alert(ev, (const char *const *)p->conf->alert,
		    p->conf->nalert, "probe", p->conf->name,
		    p->state == PROBE_DOWN);
	if (p->state == PROBE_DOWN)
		evt_emit(ev, "probe %s is down: %s", p->conf->name,
		    r->reason);
	else
		evt_emit(ev, "probe %s is %s%s%s", p->conf->name,
		    probe_state_name(p->state), r->reason[0] ? ": " : "",
		    r->reason);
}

void
probe_done(struct probe *p, struct probe_result *r)
{
	enum probe_state	 prev = p->state;
	uint64_t		 now = now_usec();
	unsigned int		 i;

	r->ts_usec = p->run_start_wall;
	probe_harvest_drop(p);
	r->latency_ms = r->latency_ms > 0 ? r->latency_ms :
	    (double)(now - p->run_start) / 1000.0;
	p->running = 0;
	p->last_duration = (double)(now - p->run_start) / 1e6;
	p->has_last = 1;
	hist_put(&p->hist[p->hist_next], r);
	p->hist_next = (p->hist_next + 1) % PROBE_HISTORY;
	if (p->nhist < PROBE_HISTORY)
		p->nhist++;
	if (r->cert_not_after != 0)
		p->cert_not_after = r->cert_not_after;

	if (!r->ok && probe_recover_grace(p)) {
		p->runs_failed++;	/* not judged: a restart's grace */
	} else if (r->ok) {
		p->runs_ok++;
		p->ok_streak++;
		p->fail_streak = 0;
		if (p->state != PROBE_UP && p->ok_streak >= p->conf->rise)
			p->state = PROBE_UP;
	} else {
		p->runs_failed++;
		p->fail_streak++;
		p->ok_streak = 0;
		if (p->state != PROBE_DOWN && p->fail_streak >= p->conf->fall)
			p->state = PROBE_DOWN;
	}
	evt_log_about(LOG_DEBUG, "probe.result", "probe", p->conf->name,
	    "probe %s: %s in %.1f ms%s%s",
	    p->conf->name, r->ok ? "ok" : "failed", r->latency_ms,
	    r->reason[0] ? ": " : "", r->reason);
	if (p->state != prev) {
		p->state_changes++;
		p->since = (int64_t)(now_realtime_usec() / 1000000);
		probe_state_event(p, prev, r);
	}
	probe_recover_done(p, prev);

	for (i = 0; i < p->nwaiters; i++) {
		json_t *res = probe_result_json(r);

		json_object_set_new(res, "probe", json_string(p->conf->name));
		json_object_set_new(res, "state",
		    json_string(probe_state_name(p->state)));
		rpc_pending_reply(p->waiters[i], res);
	}
	free(p->waiters);
	p->waiters = NULL;
	p->nwaiters = 0;

	if (p->opsd->stopping || p->manual)
		return;		/* a manual run leaves the timer as it was */
	probe_arm(p, probe_next_slot(p, now));
}

/* --- the set of probes --------------------------------------------------- */

static struct probe_set *
probe_set(struct opsd *o)
{
	struct probe_set	*set;

	if (PROBES(o) == NULL) {
		set = o->sub[SUBSYS_PROBE] = xcalloc(1, sizeof *set);
		probe_sched_init(set, o->base);
	}
	return (PROBES(o));
}

unsigned int
probe_count(struct opsd *o)
{
	return (PROBES(o) != NULL ? PROBES(o)->n : 0);
}

struct probe *
probe_at(struct opsd *o, unsigned int i)
{
	return (PROBES(o) != NULL && i < PROBES(o)->n ? PROBES(o)->v[i] :
	    NULL);
}

struct probe *
probe_find(struct opsd *o, const char *name)
{
	unsigned int	i;

	for (i = 0; i < probe_count(o); i++) {
		if (strcmp(PROBES(o)->v[i]->conf->name, name) == 0)
			return (PROBES(o)->v[i]);
	}
	return (NULL);
}

static void
probe_cancel_run(struct probe *p, int err, const char *why)
{
	unsigned int	i;

	if (p->running) {
		probe_harvest_drop(p);
		p->ops->cancel(p);
		p->running = 0;
	}
	for (i = 0; i < p->nwaiters; i++)
		rpc_pending_fail(p->waiters[i], err, NULL,
		    "probe %s %s before the run ended", p->conf->name, why);
	free(p->waiters);
	p->waiters = NULL;
	p->nwaiters = 0;
}

static void
probe_free(struct probe *p, int err, const char *why)
{
	unsigned int	i;

	probe_cancel_run(p, err, why);
	probe_recover_free(p);
	/* an alert of this probe would otherwise fire forever */
	if (p->state == PROBE_DOWN && p->conf->nalert > 0 &&
	    err != -ESHUTDOWN)
		alert_resolve(p->opsd, "probe", p->conf->name, why);
	if (p->ops->free != NULL)
		p->ops->free(p);
	p->armed = 0;
	probe_conf_free(p->conf);
	for (i = 0; i < PROBE_HISTORY; i++)
		if (!p->hist[i].text_inline)
			free(p->hist[i].text);
	free(p->text);
	free(p);
}

static struct probe_conf *
probe_conf_copy(const struct probe_conf *src)
{
	struct probe_conf	*pc;

	/* the config it came from is freed on reload */
	pc = ini_copy(&probe_section, src, sizeof *src);
	pc->name = xstrdup(src->name);
	pc->host = src->host != NULL ? xstrdup(src->host) : NULL;
	return (pc);
}

/* Same check, same target: keep the state and history across a reload. */
static int
probe_conf_same(const struct probe_conf *a, const struct probe_conf *b)
{
	return (a->kind == b->kind && a->interval == b->interval &&
	    ((a->url == NULL && b->url == NULL) || (a->url && b->url &&
	    strcmp(a->url, b->url) == 0)) &&
	    ((a->address == NULL && b->address == NULL) || (a->address &&
	    b->address && strcmp(a->address, b->address) == 0)) &&
	    ((a->conninfo == NULL && b->conninfo == NULL) || (a->conninfo &&
	    b->conninfo && strcmp(a->conninfo, b->conninfo) == 0)) &&
	    ((a->command == NULL && b->command == NULL) || (a->command &&
	    b->command && strcmp(a->command, b->command) == 0)));
}

void
probe_apply_config(struct opsd *o)
{
	struct probe_set	*set = probe_set(o), fresh = { .v = NULL };
	struct opsd_config	*conf = o->conf;
	struct probe		*p, *old;
	struct probe_conf	*pc;
	struct {
		uint64_t	 interval;
		unsigned int	 load;
	}			*ivs;
	unsigned int		 i, j, niv;

	fresh.v = xcalloc(config_count(conf, &probe_section) + 1,
	    sizeof *fresh.v);
	/* what the runs of each interval weigh: the grid's slots depend on it */
	niv = 0;
	ivs = xcalloc(config_count(conf, &probe_section) + 1, sizeof *ivs);
	for (i = 0; (pc = config_at(conf, &probe_section, i)) != NULL; i++) {
		int	curl = pc->kind == PROBE_HTTP && http_probe_needs_curl(pc);

		/* the libraries its runs will need, now rather than on the loop */
		if (pc->kind == PROBE_POSTGRES)
			lazylib_pq();
		else if (curl)
			lazylib_curl();
		for (j = 0; j < niv && ivs[j].interval != pc->interval; j++)
			;
		if (j == niv)
			ivs[niv++].interval = pc->interval;
		ivs[j].load += probe_start_load(curl);
	}
	for (i = 0; (pc = config_at(conf, &probe_section, i)) != NULL; i++) {
		old = NULL;
		for (j = 0; j < set->n; j++) {
			if (set->v[j] != NULL && strcmp(set->v[j]->conf->name,
			    pc->name) == 0) {
				old = set->v[j];
				set->v[j] = NULL;
				break;
			}
		}
		if (old != NULL && ini_equal(&probe_section, old->conf, pc)) {
			/* unchanged: a run in flight goes on undisturbed */
			fresh.v[fresh.n++] = old;
			continue;
		}
		if (old != NULL && probe_conf_same(old->conf, pc)) {
			/*
			 * Same check: keep state and history, take the new
			 * knobs. The kind's handle is rebuilt from them.
			 */
			probe_cancel_run(old, -EIO,
			    "was reconfigured");
			if (old->ops->free != NULL)
				old->ops->free(old);
			probe_conf_free(old->conf);
			old->conf = probe_conf_copy(pc);
			probe_arm(old, old->due_usec);
			fresh.v[fresh.n++] = old;
			continue;
		}
		if (old != NULL)
			probe_free(old, -EIO, "was reconfigured");
		p = xcalloc(1, sizeof *p);
		p->opsd = o;
		p->conf = probe_conf_copy(pc);
		p->ops = kind_ops[p->conf->kind];
		for (j = 0; ivs[j].interval != p->conf->interval; j++)
			;
		probe_sched_first(p, ivs[j].load);
		fresh.v[fresh.n++] = p;
	}
	for (j = 0; j < set->n; j++) {
		if (set->v[j] != NULL)
			probe_free(set->v[j], -EIO, "was removed");
	}
	free(ivs);
	free(set->v);
	set->v = fresh.v;
	set->n = fresh.n;
}

void
probe_stop_all(struct opsd *o)
{
	unsigned int	i;

	if (PROBES(o) == NULL)
		return;
	for (i = 0; i < PROBES(o)->n; i++)
		probe_free(PROBES(o)->v[i], -ESHUTDOWN,
		    "stopped: opsd is shutting down");
	free(PROBES(o)->v);
	probe_sched_free(PROBES(o));
	free(PROBES(o));
	o->sub[SUBSYS_PROBE] = NULL;
}
