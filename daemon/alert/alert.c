/*
 * Alert routes and the event sink. The sink subscribes to events; an event
 * marked with evt_alert() names its routes. For each route an active alert
 * (keyed by source and object) is kept while it fires, for the repeat
 * timer and the resolved message. Each message is handed to
 * alert_deliver() (alert-deliver.c), which queues, sends and retries it.
 */
#include <sys/queue.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "alert.h"
#include "alert-int.h"
#include "daemon.h"
#include "lazylib.h"
#include "evt.h"
#include "ini.h"
#include "metrics.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "status.h"
#include "util.h"

const struct evt_type EVT_ALERT_FAILED = {
	"alert.failed", "d2fadc091d224d2983c0d9f83e556fcb", LOG_ERR };
const struct evt_type EVT_ALERT_DROPPED = {
	"alert.dropped", "b33370bea3b34463be6a85a66ea1abdf", LOG_WARNING };

/* --- configuration ------------------------------------------------------ */

static const char *const type_names[] = { "webhook", "email", NULL };
static const char *const format_names[] = { "json", "slack", NULL };

static const char *
validate_alert_url(const char *value, char *buf, size_t len)
{
	if (strncmp(value, "http://", 7) != 0 &&
	    strncmp(value, "https://", 8) != 0 &&
	    strncmp(value, "smtp://", 7) != 0 &&
	    strncmp(value, "smtps://", 8) != 0) {
		snprintf(buf, len, "'%s' must start with http://, https://, "
		    "smtp:// or smtps://", value);
		return (buf);
	}
	return (NULL);
}

#define O(f)	offsetof(struct alert_conf, f)
static const struct ini_key alert_keys[] = {	/* sorted */
	{ .name = "bearer_token_file", .kind = INI_PATH,
	  .off = O(bearer_token_file), .validate = ini_validate_readable },
	{ .name = "ca_file", .kind = INI_PATH, .off = O(ca_file),
	  .validate = ini_validate_readable },
	{ .name = "credentials_file", .kind = INI_PATH,
	  .off = O(credentials_file), .validate = ini_validate_readable },
	{ .name = "format", .kind = INI_ENUM, .off = O(format),
	  .choices = format_names, .dflt = "json" },
	{ .name = "from", .kind = INI_STRING, .off = O(from) },
	{ .name = "repeat", .kind = INI_DURATION, .off = O(repeat),
	  .dflt = "1h", .max = 30 * 86400 * 1000ULL },
	{ .name = "retries", .kind = INI_UINT, .off = O(retries), .dflt = "5",
	  .max = 20 },
	{ .name = "retry_delay", .kind = INI_DURATION, .off = O(retry_delay),
	  .dflt = "5s", .min = 10, .max = RETRY_DELAY_MAX },
	{ .name = "subject_prefix", .kind = INI_STRING,
	  .off = O(subject_prefix), .dflt = "[opsd]" },
	{ .name = "timeout", .kind = INI_DURATION, .off = O(timeout),
	  .dflt = "20s", .min = 100, .max = 600 * 1000 },
	{ .name = "tls_verify", .kind = INI_BOOL, .off = O(tls_verify),
	  .dflt = "yes" },
	{ .name = "to", .kind = INI_LIST, .off = O(to), .off2 = O(nto) },
	{ .name = "type", .kind = INI_ENUM, .off = O(type),
	  .choices = type_names, .flags = INI_REQUIRED },
	{ .name = "url", .kind = INI_STRING, .off = O(url),
	  .validate = validate_alert_url, .flags = INI_REQUIRED },
};
#undef O

static void *
alert_conf_open(void *ctx, const char *name)
{
	struct opsd_config	*conf = ctx;
	struct alert_conf	*ac;

	ac = xcalloc(1, sizeof *ac);
	ac->name = xstrdup(name);
	if (ini_defaults(&alert_section, ac) != 0)
		fatalx("alert: a built-in default does not parse");
	config_add(conf, &alert_section, ac);
	return (ac);
}

static void
alert_conf_check(void *ctx, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct alert_conf	*ac = obj;
	static const char *const webhook_only[] = { "bearer_token_file",
	    "format", NULL };
	static const char *const email_only[] = { "from", "to",
	    "credentials_file", "subject_prefix", NULL };
	const char *const	*k;
	int			 kl;

	(void)ctx;
	ac->line = line;
	if (ac->url == NULL)
		return;		/* reported as missing */
	k = ac->type == ALERT_WEBHOOK ? email_only : webhook_only;
	for (; *k != NULL; k++) {
		if ((kl = ini_keyline(&alert_section, keylines, *k)) != 0)
			ini_error(errs, file, kl, "'%s' does not apply to a "
			    "%s route", *k, type_names[ac->type]);
	}
	kl = ini_keyline(&alert_section, keylines, "url");
	if (ac->type == ALERT_WEBHOOK && strncmp(ac->url, "http", 4) != 0)
		ini_error(errs, file, kl, "url: a webhook needs an http:// or "
		    "https:// URL");
	if (ac->type == ALERT_EMAIL) {
		if (strncmp(ac->url, "smtp", 4) != 0)
			ini_error(errs, file, kl, "url: an email route needs an "
			    "smtp:// or smtps:// URL");
		if (ac->from == NULL)
			ini_error(errs, file, line, "[alert %s]: an email "
			    "route needs 'from'", ac->name);
		if (ac->nto == 0)
			ini_error(errs, file, line, "[alert %s]: an email "
			    "route needs at least one 'to'", ac->name);
	}
}

static void
alert_conf_free_obj(void *ac)
{
	alert_conf_free(ac);
}

const struct ini_section alert_section = {
	"alert", 1, alert_keys, nitems(alert_keys), alert_conf_open,
	alert_conf_check, alert_conf_free_obj, "alerts"
};

void
alert_conf_free(struct alert_conf *ac)
{
	if (ac == NULL)
		return;
	ini_free(&alert_section, ac);
	free(ac->name);
	free(ac);
}

struct alert_conf *
alert_conf_find(struct opsd_config *conf, const char *name)
{
	return (config_find(conf, &alert_section, name));
}

static struct alert_conf *
alert_conf_copy(const struct alert_conf *src)
{
	struct alert_conf	*ac;

	ac = ini_copy(&alert_section, src, sizeof *src);
	ac->name = xstrdup(src->name);
	return (ac);
}

/* --- active alerts and the event sink ----------------------------------- */

static struct alert_set *
alert_set(struct opsd *o)
{
	return (ALERTS(o));
}

static struct route *
route_find(struct alert_set *set, const char *name)
{
	unsigned int	i;

	for (i = 0; i < set->nroutes; i++) {
		if (strcmp(set->routes[i]->conf->name, name) == 0)
			return (set->routes[i]);
	}
	return (NULL);
}

static json_t *
payload_from_event(struct alert_set *set, const struct evt *ev,
    const char *status, int repeat)
{
	json_t		*p;
	char		*msg;
	unsigned int	 i;

	xasprintf(&msg, "%s%s%s: %s", strcmp(status, "resolved") == 0 ?
	    "RESOLVED " : repeat ? "STILL FIRING " : "", set->host,
	    "", ev->message);
	p = alert_payload_new(set, status, ev->alert->source, ev->alert->object,
	    ev->name, 0);
	json_object_set_new(p, "message", util_jstring(msg));
	free(msg);
	for (i = 0; i < ev->nfields; i++) {
		if (json_object_get(p, ev->fields[i].key) == NULL)
			json_object_set_new(p, ev->fields[i].key,
			    util_jstring(ev->fields[i].value));
	}
	return (p);
}

static void
active_free(struct active *a)
{
	LIST_REMOVE(a, entry);
	a->set->nactive--;
	event_free(a->repeat);
	json_decref(a->payload);
	free(a->route);
	free(a->source);
	free(a->object);
	free(a);
}

static void
active_arm(struct active *a, struct route *r)
{
	struct timeval	tv;

	if (r->conf->repeat == 0)
		return;
	tv.tv_sec = (time_t)(r->conf->repeat / 1000);
	tv.tv_usec = (suseconds_t)(r->conf->repeat % 1000) * 1000;
	evtimer_add(a->repeat, &tv);
}

static void
repeat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct active	*a = arg;
	struct route	*r;
	json_t		*p;
	char		*msg;

	(void)fd;
	(void)what;
	if ((r = route_find(a->set, a->route)) == NULL) {
		active_free(a);
		return;
	}
	if ((p = json_deep_copy(a->payload)) == NULL)
		fatalx("alert: out of memory copying a message");
	xasprintf(&msg, "STILL FIRING %s", alert_payload_text(a->payload));
	json_object_set_new(p, "message", util_jstring(msg));
	json_object_set_new(p, "repeat", json_true());
	free(msg);
	alert_deliver(a->set, r, p, NULL, (unsigned int)r->conf->retries + 1,
	    a->source, a->object);
	json_decref(p);
	active_arm(a, r);
}

static struct active *
active_find(struct alert_set *set, const char *route, const char *source,
    const char *object)
{
	struct active	*a;

	LIST_FOREACH(a, &set->active, entry) {
		if (strcmp(a->route, route) == 0 &&
		    strcmp(a->source, source) == 0 &&
		    strcmp(a->object, object) == 0)
			return (a);
	}
	return (NULL);
}

static void
alert_sink(const struct evt *ev, void *arg)
{
	struct alert_set	*set = arg;
	struct route		*r;
	struct active		*a;
	json_t			*p;
	unsigned int		 i;

	if (ev->alert == NULL)
		return;
	for (i = 0; i < ev->alert->nroutes; i++) {
		if ((r = route_find(set, ev->alert->routes[i])) == NULL)
			continue;
		a = active_find(set, r->conf->name, ev->alert->source,
		    ev->alert->object);
		if (ev->alert->notice == 2 || (ev->alert->notice == 1 &&
		    !ev->alert->firing && a == NULL)) {
			/* a notification: nothing fires, nothing resolves */
			p = payload_from_event(set, ev, "notice", 0);
		} else if (ev->alert->firing) {
			p = payload_from_event(set, ev, "firing", 0);
			if (a == NULL) {
				a = xcalloc(1, sizeof *a);
				a->set = set;
				a->route = xstrdup(r->conf->name);
				a->source = xstrdup(ev->alert->source);
				a->object = xstrdup(ev->alert->object);
				a->since = time(NULL);
				a->repeat = evtimer_new(set->opsd->base,
				    repeat_cb, a);
				LIST_INSERT_HEAD(&set->active, a, entry);
				set->nactive++;
			} else
				json_decref(a->payload);
			a->payload = json_incref(p);
			active_arm(a, r);
		} else {
			if (a == NULL)
				continue;	/* never fired here */
			p = payload_from_event(set, ev, "resolved", 0);
			json_object_set_new(p, "firing_seconds",
			    json_integer(time(NULL) - a->since));
			active_free(a);
		}
		alert_deliver(set, r, p, NULL, (unsigned int)r->conf->retries + 1,
		    ev->alert->source, ev->alert->object);
		json_decref(p);
	}
}

/* --- lifecycle ---------------------------------------------------------- */

int
alert_init(struct opsd *o)
{
	struct alert_set	*set;

	set = xcalloc(1, sizeof *set);
	set->opsd = o;
	LIST_INIT(&set->active);
	TAILQ_INIT(&set->deliveries);
	set->pump = evtimer_new(o->base, alert_pump_cb, set);
	if (gethostname(set->host, sizeof set->host) != 0)
		strcpy(set->host, "localhost");
	set->host[sizeof set->host - 1] = '\0';
	if (!util_utf8_valid(set->host, strlen(set->host))) {
		char	tmp[sizeof set->host];

		util_utf8_sanitize(tmp, sizeof tmp, set->host,
		    strlen(set->host));
		memcpy(set->host, tmp, sizeof tmp);
	}
	o->sub[SUBSYS_ALERT] = set;
	evt_subscribe(alert_sink, set);
	return (0);
}

void
alert_apply_config(struct opsd *o)
{
	struct alert_set	*set = alert_set(o);
	struct route		**fresh, *r;
	struct active		*a, *next;
	struct delivery		*d, *dnext;
	unsigned int		 i, j, n;

	n = config_count(o->conf, &alert_section);
	if (n > 0)
		lazylib_curl();	/* deliveries use it: load it now */
	fresh = xcalloc(n + 1, sizeof *fresh);
	for (i = 0; i < n; i++) {
		r = xcalloc(1, sizeof *r);
		r->conf = alert_conf_copy(config_at(o->conf, &alert_section,
		    i));
		r->refs = 1;
		/* counters belong to the route name: keep them */
		for (j = 0; j < set->nroutes; j++) {
			if (strcmp(set->routes[j]->conf->name,
			    r->conf->name) == 0) {
				r->sent_ok = set->routes[j]->sent_ok;
				r->sent_failed = set->routes[j]->sent_failed;
			}
		}
		fresh[i] = r;
	}
	for (j = 0; j < set->nroutes; j++) {
		set->routes[j]->gone = 1;
		alert_route_release(set->routes[j]);
	}
	free(set->routes);
	set->routes = fresh;
	set->nroutes = n;
	/*
	 * Waiting messages go out through the new settings of their route
	 * (a fixed URL, say); those under way finish with the old ones.
	 */
	for (d = TAILQ_FIRST(&set->deliveries); d != NULL; d = dnext) {
		dnext = TAILQ_NEXT(d, entry);
		if (d->running || !d->route->gone)
			continue;
		if ((r = route_find(set, d->route->conf->name)) == NULL) {
			alert_delivery_drop(d, "the route was removed");
			continue;
		}
		d->route->queued--;
		alert_route_release(d->route);
		d->route = r;
		r->refs++;
		r->queued++;
	}
	alert_pump_soon(set);
	/* alerts of removed routes end quietly */
	for (a = LIST_FIRST(&set->active); a != NULL; a = next) {
		next = LIST_NEXT(a, entry);
		if (route_find(set, a->route) == NULL)
			active_free(a);
	}
}

/* At the stop: callers of alert.test hear it before the drain. */
void
alert_fail_waiters(struct opsd *o)
{
	struct alert_set	*set = alert_set(o);
	struct delivery		*d;

	if (set == NULL)
		return;
	TAILQ_FOREACH(d, &set->deliveries, entry) {
		if (d->waiter != NULL)
			rpc_pending_fail(d->waiter, -ESHUTDOWN,
			    NULL, "opsd is stopping");
		d->waiter = NULL;
	}
}

void
alert_stop_all(struct opsd *o)
{
	struct alert_set	*set = alert_set(o);
	struct delivery		*d;
	unsigned int		 j;

	if (set == NULL)
		return;
	evt_unsubscribe(alert_sink, set);
	event_free(set->pump);
	set->pump = NULL;
	while ((d = TAILQ_FIRST(&set->deliveries)) != NULL) {
		if (d->waiter != NULL)
			rpc_pending_fail(d->waiter, -ESHUTDOWN,
			    NULL, "opsd is stopping");
		d->waiter = NULL;
		alert_delivery_free(d);
	}
	while (!LIST_EMPTY(&set->active))
		active_free(LIST_FIRST(&set->active));
	for (j = 0; j < set->nroutes; j++) {
		set->routes[j]->gone = 1;
		alert_route_release(set->routes[j]);
	}
	free(set->routes);
	free(set);
	o->sub[SUBSYS_ALERT] = NULL;
}

int
alert_test(struct opsd *o, const char *name, struct rpc_pending *waiter)
{
	struct alert_set	*set = alert_set(o);
	struct route		*r;
	json_t			*p;
	char			*msg;

	if ((r = route_find(set, name)) == NULL)
		return (-ENOENT);
	xasprintf(&msg, "TEST %s: a test alert from opsd through route %s; "
	    "if you read this, the route works", set->host, name);
	p = alert_payload_new(set, "test", "test", name, "alert.test", 1);
	json_object_set_new(p, "message", util_jstring(msg));
	free(msg);
	/* one attempt: the operator is waiting for the verdict */
	alert_deliver(set, r, p, waiter, 1, NULL, NULL);
	json_decref(p);
	return (0);
}

void
alert_resolve(struct opsd *o, const char *source, const char *object,
    const char *why)
{
	struct alert_set	*set = alert_set(o);
	struct active		*a, *next;
	struct route		*r;
	json_t			*p;
	char			*msg, now[32];

	if (set == NULL)
		return;
	for (a = LIST_FIRST(&set->active); a != NULL; a = next) {
		next = LIST_NEXT(a, entry);
		if (strcmp(a->source, source) != 0 ||
		    strcmp(a->object, object) != 0)
			continue;
		if ((r = route_find(set, a->route)) != NULL) {
			if ((p = json_deep_copy(a->payload)) == NULL)
				fatalx("alert: out of memory copying a "
				    "message");
			util_iso_time(time(NULL), now, sizeof now);
			xasprintf(&msg, "RESOLVED %s: %s %s %s", set->host,
			    source, object, why);
			json_object_set_new(p, "status", util_jstring("resolved"));
			json_object_set_new(p, "message", util_jstring(msg));
			json_object_set_new(p, "time", util_jstring(now));
			free(msg);
			alert_deliver(set, r, p, NULL, (unsigned int)r->conf->retries +
			    1, source, object);
			json_decref(p);
		}
		active_free(a);
	}
}

unsigned int
alert_route_count(struct opsd *o)
{
	return (ALERTS(o) != NULL ? ALERTS(o)->nroutes : 0);
}

const char *
alert_route_stats(struct opsd *o, unsigned int i, uint64_t *ok,
    uint64_t *failed)
{
	struct route	*r = ALERTS(o)->routes[i];

	*ok = r->sent_ok;
	*failed = r->sent_failed;
	return (r->conf->name);
}

unsigned int
alert_deliveries(struct opsd *o)
{
	return (ALERTS(o) != NULL ? ALERTS(o)->ndeliveries : 0);
}

unsigned int
alert_active_count(struct opsd *o)
{
	return (ALERTS(o) != NULL ? ALERTS(o)->nactive : 0);
}

/* The status page's section: the alerts firing now, one per route. */
json_t *
alert_status(struct opsd *o)
{
	struct alert_set	*set = ALERTS(o);
	struct active		*a;
	json_t			*sec, *items;
	char			 since[32];

	if (set == NULL || (set->nroutes == 0 && set->nactive == 0))
		return (NULL);
	sec = status_section("Open alerts", "no alert is firing");
	items = json_object_get(sec, "items");
	LIST_FOREACH(a, &set->active, entry) {
		util_iso_time(a->since, since, sizeof since);
		json_array_append_new(items, json_pack("{s:o, s:o, s:s, s:s, "
		    "s:o, s:s}", "source", util_jstring(a->source), "object",
		    util_jstring(a->object), "route", a->route, "since", since,
		    "message", util_jstring(a->payload != NULL ?
		    alert_payload_text(a->payload) : ""), "level", "warning"));
	}
	/* alert_health()'s words: firing is a warning */
	if (set->nactive > 0) {
		json_object_set_new(sec, "level", json_string("warning"));
		json_object_set_new(sec, "problem", json_sprintf("%u alert%s "
		    "firing", set->nactive, set->nactive == 1 ? "" : "s"));
	}
	return (sec);
}

/* The registry's collector for alerts. */
void
alert_metrics(struct opsd *o, struct evbuffer *b)
{
	struct route	*r;
	uint64_t	 ok, failed;
	const char	*name;
	unsigned int	 i;

	metrics_head(b, "opsd_alerts_sent_total", "counter", "Alert "
	    "deliveries by route and result.");
	for (i = 0; i < alert_route_count(o); i++) {
		name = alert_route_stats(o, i, &ok, &failed);
		evbuffer_add(b, "opsd_alerts_sent_total{route=\"", 30);
		metrics_label(b, name);
		evbuffer_add_printf(b, "\",result=\"ok\"} %llu\n",
		    (unsigned long long)ok);
		evbuffer_add(b, "opsd_alerts_sent_total{route=\"", 30);
		metrics_label(b, name);
		evbuffer_add_printf(b, "\",result=\"failed\"} %llu\n",
		    (unsigned long long)failed);
	}
	metrics_head(b, "opsd_alerts_dropped_total", "counter", "Alert "
	    "messages dropped unsent by route: they waited too long for a "
	    "slot or found the queue full.");
	for (i = 0; i < alert_route_count(o); i++) {
		r = ALERTS(o)->routes[i];
		evbuffer_add(b, "opsd_alerts_dropped_total{route=\"", 33);
		metrics_label(b, r->conf->name);
		evbuffer_add_printf(b, "\"} %llu\n",
		    (unsigned long long)r->dropped);
	}
	metrics_head(b, "opsd_alerts_active", "gauge", "Alerts firing now, "
	    "over all routes.");
	evbuffer_add_printf(b, "opsd_alerts_active %u\n",
	    alert_active_count(o));
}
