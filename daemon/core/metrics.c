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

#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "metrics.h"
#include "rpc.h"
#include "subsys.h"
#include "util.h"

#define ADDLIT(b, s)	evbuffer_add((b), (s), sizeof (s) - 1)

struct metrics {
	struct evhttp	*http;
	char		*listen;
	uint64_t	 scrapes;
};

void
metrics_head(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

void
metrics_label(struct evbuffer *b, const char *v)
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
	metrics_head(b, "process_cpu_seconds_total", "counter",
	    "Total user and system CPU time spent in seconds.");
	evbuffer_add_printf(b, "process_cpu_seconds_total %.6f\n",
	    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	if ((f = fopen("/proc/self/statm", "re")) != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	metrics_head(b, "process_resident_memory_bytes", "gauge",
	    "Resident memory size in bytes.");
	evbuffer_add_printf(b, "process_resident_memory_bytes %ld\n",
	    rss * page);
	metrics_head(b, "process_virtual_memory_bytes", "gauge",
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
	metrics_head(b, "process_open_fds", "gauge", "Number of open file "
	    "descriptors.");
	evbuffer_add_printf(b, "process_open_fds %u\n", fds);
	metrics_head(b, "process_start_time_seconds", "gauge", "Start time of the "
	    "process since unix epoch in seconds.");
	evbuffer_add_printf(b, "process_start_time_seconds %lld\n",
	    (long long)o->start_time);
}

void
metrics_render(struct opsd *o, struct evbuffer *b)
{
	const struct rpc_method	*m;
	const struct rpc_stats	*st;
	unsigned int		 i;

	metrics_head(b, "opsd_build_info", "gauge", "opsd's version, always 1.");
	evbuffer_add_printf(b, "opsd_build_info{version=\"%s\"} 1\n",
	    OPSD_VERSION);
	metrics_head(b, "opsd_up", "gauge", "1 while opsd runs.");
	evbuffer_add_printf(b, "opsd_up 1\n");
	metrics_head(b, "opsd_config_reloads_total", "counter", "Successful "
	    "configuration reloads.");
	evbuffer_add_printf(b, "opsd_config_reloads_total %u\n", o->reloads);
	metrics_head(b, "opsd_loop_lag_seconds", "gauge", "How late the event loop's "
	    "once-a-second timer fired last time.");
	evbuffer_add_printf(b, "opsd_loop_lag_seconds %.6f\n",
	    (double)o->loop.lag_usec / 1e6);

	metrics_head(b, "opsd_rpc_requests_total", "counter", "Control requests by "
	    "method and result.");
	for (i = 0; i < rpc_count(o); i++) {
		m = rpc_at(o, i);
		st = rpc_stats_at(o, i);
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

	/* each subsystem renders its own families, in registry order */
	for (i = 0; i < SUBSYS_N; i++)
		if (subsys_table[i]->metrics != NULL)
			subsys_table[i]->metrics(o, b);

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
