#include <sys/resource.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "alert.h"
#include "backup.h"
#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "metrics.h"
#include "probe.h"
#include "rpc.h"
#include "util.h"

#define ADDLIT(b, s)	evbuffer_add((b), (s), sizeof (s) - 1)

struct metrics {
	struct evhttp	*http;
	char		*listen;
	uint64_t	 scrapes;
};

static void
head(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* Label values escaped as the exposition format wants. */
static void
label(struct evbuffer *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(b, "\\%c", *v);
		else if (*v == '\n')
			ADDLIT(b, "\\n");
		else
			evbuffer_add(b, v, 1);
	}
}

static void
process_metrics(struct opsd *o, struct evbuffer *b)
{
	struct rusage	 ru;
	DIR		*d;
	struct dirent	*de;
	long		 pages = 0, rss = 0, page = sysconf(_SC_PAGESIZE);
	unsigned int	 fds = 0;
	FILE		*f;

	getrusage(RUSAGE_SELF, &ru);
	head(b, "process_cpu_seconds_total", "counter",
	    "Total user and system CPU time spent in seconds.");
	evbuffer_add_printf(b, "process_cpu_seconds_total %.6f\n",
	    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	if ((f = fopen("/proc/self/statm", "re")) != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	head(b, "process_resident_memory_bytes", "gauge",
	    "Resident memory size in bytes.");
	evbuffer_add_printf(b, "process_resident_memory_bytes %ld\n",
	    rss * page);
	head(b, "process_virtual_memory_bytes", "gauge",
	    "Virtual memory size in bytes.");
	evbuffer_add_printf(b, "process_virtual_memory_bytes %ld\n",
	    pages * page);
	if ((d = opendir("/proc/self/fd")) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				fds++;
		closedir(d);
		fds--;		/* the one opendir holds */
	}
	head(b, "process_open_fds", "gauge", "Number of open file "
	    "descriptors.");
	evbuffer_add_printf(b, "process_open_fds %u\n", fds);
	head(b, "process_start_time_seconds", "gauge", "Start time of the "
	    "process since unix epoch in seconds.");
	evbuffer_add_printf(b, "process_start_time_seconds %lld\n",
	    (long long)o->start_time);
}

static void
probe_metrics(struct opsd *o, struct evbuffer *b)
{
	const struct probe_lateness	*lt = probe_lateness(o);
	struct probe			*p;
	unsigned int			 i, n = probe_count(o);
	uint64_t			 cum = 0;

	head(b, "opsd_probe_up", "gauge", "1 if the probe is up, 0 if down, "
	    "-1 while unknown.");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		evbuffer_add(b, "opsd_probe_up{probe=\"", 21);
		label(b, p->conf->name);
		evbuffer_add_printf(b, "\",kind=\"%s\"} %d\n",
		    probe_kind_name(p->conf->kind), p->state == PROBE_UP ? 1 :
		    p->state == PROBE_DOWN ? 0 : -1);
	}
	head(b, "opsd_probe_duration_seconds", "gauge", "Duration of the "
	    "probe's last run.");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		if (!p->has_last)
			continue;
		evbuffer_add(b, "opsd_probe_duration_seconds{probe=\"", 35);
		label(b, p->conf->name);
		evbuffer_add_printf(b, "\"} %.6f\n", p->last_duration);
	}
	head(b, "opsd_probe_last_run_timestamp_seconds", "gauge", "When the "
	    "probe's last run started.");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		if (!p->has_last)
			continue;
		evbuffer_add(b, "opsd_probe_last_run_timestamp_seconds{probe="
		    "\"", 45);
		label(b, p->conf->name);
		evbuffer_add_printf(b, "\"} %.3f\n",
		    (double)p->last.ts_usec / 1e6);
	}
	head(b, "opsd_probe_state_changes_total", "counter", "State changes "
	    "of the probe (unknown, up, down).");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		evbuffer_add(b, "opsd_probe_state_changes_total{probe=\"", 38);
		label(b, p->conf->name);
		evbuffer_add_printf(b, "\"} %llu\n",
		    (unsigned long long)p->state_changes);
	}
	head(b, "opsd_probe_runs_total", "counter", "Probe runs by result.");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		evbuffer_add(b, "opsd_probe_runs_total{probe=\"", 29);
		label(b, p->conf->name);
		evbuffer_add_printf(b, "\",result=\"ok\"} %llu\n",
		    (unsigned long long)p->runs_ok);
		evbuffer_add(b, "opsd_probe_runs_total{probe=\"", 29);
		label(b, p->conf->name);
		evbuffer_add_printf(b, "\",result=\"failed\"} %llu\n",
		    (unsigned long long)p->runs_failed);
	}
	head(b, "opsd_probe_cert_expiry_timestamp_seconds", "gauge",
	    "Expiry (notAfter) of the certificate served to tls and https "
	    "probes.");
	for (i = 0; i < n; i++) {
		p = probe_at(o, i);
		if (p->cert_not_after == 0)
			continue;
		evbuffer_add(b, "opsd_probe_cert_expiry_timestamp_seconds{"
		    "probe=\"", 48);
		label(b, p->conf->name);
		evbuffer_add_printf(b, "\"} %lld\n",
		    (long long)p->cert_not_after);
	}
	head(b, "opsd_probe_schedule_lateness_seconds", "histogram",
	    "How late probe runs started against their schedule.");
	for (i = 0; i < PROBE_LATENESS_BUCKETS; i++) {
		cum += lt->count[i];
		evbuffer_add_printf(b, "opsd_probe_schedule_lateness_seconds_"
		    "bucket{le=\"%g\"} %llu\n", probe_lateness_bounds[i],
		    (unsigned long long)cum);
	}
	cum += lt->count[PROBE_LATENESS_BUCKETS];
	evbuffer_add_printf(b, "opsd_probe_schedule_lateness_seconds_bucket"
	    "{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	evbuffer_add_printf(b, "opsd_probe_schedule_lateness_seconds_sum %.6f"
	    "\n", lt->sum);
	evbuffer_add_printf(b, "opsd_probe_schedule_lateness_seconds_count "
	    "%llu\n", (unsigned long long)lt->n);
}

void
metrics_render(struct opsd *o, struct evbuffer *b)
{
	const struct rpc_method	*m;
	const struct rpc_stats	*st;
	uint64_t		 ok, failed;
	const char		*name;
	unsigned int		 i;

	head(b, "opsd_build_info", "gauge", "opsd's version, always 1.");
	evbuffer_add_printf(b, "opsd_build_info{version=\"%s\"} 1\n",
	    OPSD_VERSION);
	head(b, "opsd_up", "gauge", "1 while opsd runs.");
	evbuffer_add_printf(b, "opsd_up 1\n");
	head(b, "opsd_config_reloads_total", "counter", "Successful "
	    "configuration reloads.");
	evbuffer_add_printf(b, "opsd_config_reloads_total %u\n", o->reloads);
	head(b, "opsd_loop_lag_seconds", "gauge", "How late the event loop's "
	    "once-a-second timer fired last time.");
	evbuffer_add_printf(b, "opsd_loop_lag_seconds %.6f\n",
	    (double)o->loop.lag_usec / 1e6);

	head(b, "opsd_rpc_requests_total", "counter", "Control requests by "
	    "method and result.");
	for (i = 0; i < rpc_count(); i++) {
		m = rpc_at(i);
		st = rpc_stats_at(i);
		evbuffer_add_printf(b, "opsd_rpc_requests_total{method=\"%s\","
		    "result=\"ok\"} %llu\n", m->name,
		    (unsigned long long)st->ok);
		evbuffer_add_printf(b, "opsd_rpc_requests_total{method=\"%s\","
		    "result=\"error\"} %llu\n", m->name,
		    (unsigned long long)st->error);
		evbuffer_add_printf(b, "opsd_rpc_requests_total{method=\"%s\","
		    "result=\"denied\"} %llu\n", m->name,
		    (unsigned long long)st->denied);
	}

	probe_metrics(o, b);
	backup_metrics(o, b);

	head(b, "opsd_alerts_sent_total", "counter", "Alert deliveries by "
	    "route and result.");
	for (i = 0; i < alert_route_count(o); i++) {
		name = alert_route_stats(o, i, &ok, &failed);
		evbuffer_add(b, "opsd_alerts_sent_total{route=\"", 30);
		label(b, name);
		evbuffer_add_printf(b, "\",result=\"ok\"} %llu\n",
		    (unsigned long long)ok);
		evbuffer_add(b, "opsd_alerts_sent_total{route=\"", 30);
		label(b, name);
		evbuffer_add_printf(b, "\",result=\"failed\"} %llu\n",
		    (unsigned long long)failed);
	}
	head(b, "opsd_alerts_active", "gauge", "Alerts firing now, over all "
	    "routes.");
	evbuffer_add_printf(b, "opsd_alerts_active %u\n", alert_active_count(o));

	process_metrics(o, b);
}

static void
metrics_cb(struct evhttp_request *req, void *arg)
{
	struct opsd	*o = arg;
	struct evbuffer	*b;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, 405, "use GET");
		return;
	}
	o->metrics->scrapes++;
	b = evbuffer_new();
	metrics_render(o, b);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
healthz_cb(struct evhttp_request *req, void *arg)
{
	struct opsd	*o = arg;
	struct evbuffer	*b;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, 405, "use GET");
		return;
	}
	b = evbuffer_new();
	evbuffer_add_printf(b, o->stopping ? "stopping\n" : "ok\n");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain");
	evhttp_send_reply(req, o->stopping ? 503 : 200, o->stopping ?
	    "Stopping" : "OK", b);
	evbuffer_free(b);
}

static void
notfound_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evhttp_send_error(req, 404, "try /metrics or /healthz");
}

static int
metrics_bind(struct opsd *o, const char *listen)
{
	struct metrics	*m = o->metrics;
	char		*host = NULL;
	const char	*colon;
	int		 port;

	colon = strrchr(listen, ':');
	host = xstrndup(listen, (size_t)(colon - listen));
	port = atoi(colon + 1);
	if (host[0] == '[') {	/* [::1]:9187 */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	m->http = evhttp_new(o->base);
	/* all reach the callbacks, which answer 405 to what is not GET */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
	evhttp_set_timeout(m->http, 30);
	evhttp_set_cb(m->http, "/metrics", metrics_cb, o);
	evhttp_set_cb(m->http, "/healthz", healthz_cb, o);
	evhttp_set_gencb(m->http, notfound_cb, o);
	if (evhttp_bind_socket(m->http, host, (ev_uint16_t)port) != 0) {
		log_err("metrics.listen", "cannot listen on %s for metrics: %s "
		    "(set metrics_listen to a free address, or off)", listen,
		    strerror(errno));
		evhttp_free(m->http);
		m->http = NULL;
		free(host);
		return (-EADDRINUSE);
	}
	free(host);
	m->listen = xstrdup(listen);
	log_info("metrics.listen", "metrics on http://%s/metrics", listen);
	return (0);
}

int
metrics_start(struct opsd *o)
{
	o->metrics = xcalloc(1, sizeof *o->metrics);
	if (o->conf->metrics_listen == NULL)
		return (0);
	return (metrics_bind(o, o->conf->metrics_listen));
}

void
metrics_reconfigure(struct opsd *o)
{
	struct metrics	*m = o->metrics;
	const char	*want = o->conf->metrics_listen;

	if (m == NULL)
		return;
	if ((want == NULL && m->http == NULL) || (want != NULL &&
	    m->listen != NULL && strcmp(want, m->listen) == 0))
		return;
	if (m->http != NULL) {
		evhttp_free(m->http);
		m->http = NULL;
		free(m->listen);
		m->listen = NULL;
	}
	if (want != NULL)
		metrics_bind(o, want);
}

void
metrics_stop(struct opsd *o)
{
	struct metrics	*m = o->metrics;

	if (m == NULL)
		return;
	if (m->http != NULL)
		evhttp_free(m->http);
	free(m->listen);
	free(m);
	o->metrics = NULL;
}
