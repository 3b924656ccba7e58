/*
 * http probes. A plain http:// probe has a transport of its own (the
 * "lite" one below) and no libcurl handle at all; the others get a curl
 * easy handle for each run, freed when it ends: the connection stays in
 * the multi handle's cache (http.c), so the next run reuses it
 * (keep-alive) and costs one request, not a TCP and TLS handshake, while
 * an idle probe holds no 5 KB handle. Redirects are not followed unless
 * asked: a 301 from a health endpoint is usually a misconfiguration.
 */
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "daemon.h"
#include "http-parse.h"
#include "http-url.h"
#include "http.h"
#include "opsd-parse.h"
#include "probe.h"
#include "util.h"

#define BODY_MAX	(64 * 1024)
#define HDR_BAD_MAX	192

struct lite;
struct http_curl;

static void	http_easy_release(struct http_curl *);

/* What only a probe that goes through libcurl needs. */
struct http_curl {
	CURL			*easy;		/* during a run only */
	CURLU			*url;		/* parsed once, not at each run */
	struct curl_slist	*headers;
	char			 errbuf[CURL_ERROR_SIZE];
	/*
	 * The certificate of the kept-alive connection: curl reports it
	 * only on the run that made the handshake.
	 */
	int64_t			 cert_not_after;
	char			 cert_subject[256];
	char			 cert_issuer[256];
};

struct http_probe {
	struct http_curl	*curl;		/* or... */
	struct lite		*lite;		/* ...plain http: see below */
	/* the body, only with expect_body, as long as the response needs */
	char			*body;
	size_t			 bodylen;
	size_t			 bodycap;
	unsigned char		*hdr_seen;	/* per expect_header */
	char			*hdr_bad;	/* HDR_BAD_MAX, with them */
};

static size_t
http_body_cb(char *data, size_t size, size_t n, void *arg)
{
	struct probe		*p = arg;
	struct http_probe	*h = p->kstate;
	size_t			 len = size * n, keep;

	if (p->conf->expect_body == NULL)
		return (len);
	keep = BODY_MAX - h->bodylen;
	if (keep > len)
		keep = len;
	if (h->bodylen + keep + 1 > h->bodycap) {
		size_t	cap = h->bodycap ? h->bodycap : 256;

		while (cap < h->bodylen + keep + 1)
			cap *= 2;
		if (cap > BODY_MAX + 1)
			cap = BODY_MAX + 1;
		h->body = xreallocarray(h->body, cap, 1);
		h->bodycap = cap;
	}
	memcpy(h->body + h->bodylen, data, keep);
	h->bodylen += keep;
	h->body[h->bodylen] = '\0';
	return (len);
}

/* One header of the final response against the expect_header list. */
static void
http_header_match(struct probe *p, const char *name, size_t nlen,
    const char *v, size_t vlen)
{
	struct http_probe	*h = p->kstate;
	size_t			 snlen, want;
	unsigned int		 i;
	const char		*spec, *colon;

	for (i = 0; i < p->conf->nexpect_header; i++) {
		spec = p->conf->expect_header[i];
		colon = strchr(spec, ':');
		snlen = colon ? (size_t)(colon - spec) : strlen(spec);
		if (snlen != nlen || strncasecmp(name, spec, nlen) != 0)
			continue;
		if (colon == NULL) {
			h->hdr_seen[i] = 1;
			continue;
		}
		for (colon++; *colon == ' '; colon++)
			;
		want = strlen(colon);
		if (vlen == want && strncmp(v, colon, want) == 0)
			h->hdr_seen[i] = 1;
		else
			snprintf(h->hdr_bad, HDR_BAD_MAX, "header %.*s "
			    "is '%.*s', expected '%s'", (int)nlen, spec,
			    (int)(vlen > 64 ? 64 : vlen), v, colon);
	}
}

static size_t
http_header_cb(char *data, size_t size, size_t n, void *arg)
{
	struct probe		*p = arg;
	struct http_probe	*h = p->kstate;
	size_t			 len = size * n;
	const char		*colon, *v, *vend;

	/* a new status line: headers of a redirect or a 100 are not ours */
	if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
		if (h->hdr_seen != NULL)
			memset(h->hdr_seen, 0, p->conf->nexpect_header);
		if (h->hdr_bad != NULL)
			h->hdr_bad[0] = '\0';
		return (len);
	}
	if (p->conf->nexpect_header == 0)
		return (len);
	if ((colon = memchr(data, ':', len)) == NULL)
		return (len);
	for (v = colon + 1; v < data + len && (*v == ' ' || *v == '\t'); v++)
		;
	for (vend = data + len; vend > v && (vend[-1] == '\r' ||
	    vend[-1] == '\n' || vend[-1] == ' ' || vend[-1] == '\t'); vend--)
		;
	http_header_match(p, data, (size_t)(colon - data), v,
	    (size_t)(vend - v));
	return (len);
}

/* curl's own text says which step failed; name the class first. */
static void
http_fail_reason(struct probe *p, CURLcode code, struct probe_result *r)
{
	struct http_curl	*c = ((struct http_probe *)p->kstate)->curl;
	const char		*what = c->errbuf[0] ? c->errbuf :
				    curl_easy_strerror(code);
	char			 t[32];

	switch (code) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		probe_fail(r, "DNS: %s", what);
		break;
	case CURLE_COULDNT_CONNECT:
		probe_fail(r, "connect failed: %s", what);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		format_duration(p->conf->timeout, t, sizeof t);
		probe_fail(r, "timeout after %s: %s", t, what);
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_INVALIDCERTSTATUS:
		probe_fail(r, "TLS error: %s", what);
		break;
	case CURLE_TOO_MANY_REDIRECTS:
		probe_fail(r, "too many redirects: %s", what);
		break;
	default:
		probe_fail(r, "%s", what);
		break;
	}
}

static int
status_ok(const struct probe_conf *pc, long status)
{
	unsigned int	i;

	for (i = 0; i < pc->nstatus; i++) {
		if (status >= pc->status[i].lo && status <= pc->status[i].hi)
			return (1);
	}
	return (0);
}

/* "Expire date: Jan  1 00:00:00 2027 GMT" from CURLINFO_CERTINFO */
static void
http_certinfo(CURL *easy, struct probe_result *r)
{
	struct curl_certinfo	*ci = NULL;
	struct curl_slist	*s;
	struct tm		 tm;

	if (curl_easy_getinfo(easy, CURLINFO_CERTINFO, &ci) != CURLE_OK ||
	    ci == NULL || ci->num_of_certs < 1)
		return;
	for (s = ci->certinfo[0]; s != NULL; s = s->next) {
		if (strncmp(s->data, "Expire date:", 12) == 0) {
			memset(&tm, 0, sizeof tm);
			if (strptime(s->data + 12, " %b %d %H:%M:%S %Y GMT",
			    &tm) != NULL)
				r->cert_not_after = (int64_t)timegm(&tm);
		} else if (strncmp(s->data, "Subject:", 8) == 0)
			snprintf(r->cert_subject, sizeof r->cert_subject, "%s",
			    s->data + 8);
		else if (strncmp(s->data, "Issuer:", 7) == 0)
			snprintf(r->cert_issuer, sizeof r->cert_issuer, "%s",
			    s->data + 7);
	}
}

/* The verdict on a response, whichever transport brought it. */
static void
http_judge(struct probe *p, long status, struct probe_result *rp)
{
	struct http_probe	*h = p->kstate;
	unsigned int		 i;

	rp->ok = 1;
	rp->http_status = (int)status;
	if (!status_ok(p->conf, status))
		probe_fail(rp, "unexpected status %ld (expected %s)", status,
		    p->conf->expect_status);
	else if (p->conf->expect_body != NULL &&
	    strstr(h->body != NULL ? h->body : "", p->conf->expect_body) ==
	    NULL)
		probe_fail(rp, "body does not contain '%.64s'",
		    p->conf->expect_body);
	else {
		for (i = 0; i < p->conf->nexpect_header; i++) {
			if (h->hdr_seen[i])
				continue;
			if (h->hdr_bad[0] != '\0')
				probe_fail(rp, "%s", h->hdr_bad);
			else
				probe_fail(rp, "response header '%.*s' missing",
				    (int)strcspn(p->conf->expect_header[i],
				    ":"), p->conf->expect_header[i]);
			break;
		}
	}
	if (rp->ok)
		snprintf(rp->reason, sizeof rp->reason, "HTTP %ld", status);
}

static void
http_done(CURL *easy, CURLcode code, void *arg)
{
	struct probe		*p = arg;
	struct http_curl	*c = ((struct http_probe *)p->kstate)->curl;
	struct probe_result	 r;
	curl_off_t		 total = 0;
	long			 status = 0;
	char			*scheme = NULL;

	memset(&r, 0, sizeof r);
	r.ok = 1;
	curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total);
	r.latency_ms = (double)total / 1000.0;
	if (code != CURLE_OK) {
		http_fail_reason(p, code, &r);
		http_easy_release(c);
		probe_done(p, &r);
		return;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	r.http_status = (int)status;
	curl_easy_getinfo(easy, CURLINFO_SCHEME, &scheme);
	if (scheme != NULL && strcasecmp(scheme, "https") == 0) {
		http_certinfo(easy, &r);
		if (r.cert_not_after != 0) {		/* a new handshake */
			c->cert_not_after = r.cert_not_after;
			memcpy(c->cert_subject, r.cert_subject,
			    sizeof c->cert_subject);
			memcpy(c->cert_issuer, r.cert_issuer,
			    sizeof c->cert_issuer);
		} else {		/* a reused connection: same certificate */
			r.cert_not_after = c->cert_not_after;
			memcpy(r.cert_subject, c->cert_subject,
			    sizeof r.cert_subject);
			memcpy(r.cert_issuer, c->cert_issuer,
			    sizeof r.cert_issuer);
		}
		r.cert_verified = p->conf->tls_verify;
	}
	http_easy_release(c);
	http_judge(p, status, &r);
	probe_done(p, &r);
}

/*
 * The plain-http transport. libcurl builds, for every request, what
 * never changes between runs (URL parsing, the request text, option
 * checks): for a thousand probes a second that is most of opsd's CPU. A
 * plain http:// probe that does not follow redirects needs none of it: the
 * request is written once, sent on a kept-alive connection, and the
 * response is read with http_parse_response() (http-parse.c). https,
 * redirects and proxies stay with libcurl.
 *
 * Between runs the connection is idle and belongs to nobody: a server
 * closing it (keep-alive timeouts of 2 to 5 s are common, shorter than
 * most intervals) or sending bytes nobody asked for only drops it. A
 * request on a reused connection that fails before the first byte of a
 * response is sent again once on a fresh one, as browsers and curl do:
 * the server may have closed the connection while the request was on
 * its way.
 */
struct lite {
	struct bufferevent	*bev;
	struct event		*timer;
	char			*host;
	int			 port;
	char			*req;
	size_t			 reqlen;
	int			 head;		/* HEAD: no body */
	int			 busy;		/* a run is in flight */
	int			 reused;	/* the run went out on an old
						   connection: may be retried */
	int			 connected;
	int			 stamped;	/* SO_TIMESTAMPNS is on */
	int			 watching;	/* EV_READ is on */
	struct http_resp	 resp;
	uint64_t		 start;		/* of the run or its retry */
	uint64_t		 start_rt;	/* the same, CLOCK_REALTIME ns */
	uint64_t		 arrived;	/* monotonic, from the kernel's
						   stamp; 0: when read */
	uint64_t		 est;		/* how long answers take, usec */
#ifdef OPSD_FAULT_INJECTION
	uint64_t		 test_wait;	/* OPSD_TEST_HARVEST_USEC */
#endif
};

/*
 * Harvest (probe-sched.c) only answers that come within this (usec): a slow
 * server's answer wakes opsd up when it comes rather than holding the
 * others back.
 */
#define LITE_HARVEST_MAX	(10 * 1000)
/* ...at this much after the answer is expected (usec) */
#define LITE_HARVEST_MARGIN	300
/* what a harvest reads at once; a longer answer is read as it comes */
#define LITE_HARVEST_READ	4096

static void	lite_event_cb(struct bufferevent *, short, void *);

/* How long after the request its answer is read at the harvest; 0: not. */
static uint64_t
lite_harvest_wait(const struct probe *p, const struct lite *l)
{
	uint64_t	wait = l->est + l->est / 2 + LITE_HARVEST_MARGIN;

#ifdef OPSD_FAULT_INJECTION
	/* the tests' way to answers that come before or after the harvest */
	if (l->test_wait != 0 && l->stamped && l->est != 0)
		return (l->test_wait);
#endif
	if (!l->stamped || l->est == 0 || l->est > LITE_HARVEST_MAX ||
	    wait * 2 >= p->conf->timeout * 1000)
		return (0);
	return (wait);
}

static void
lite_watch(struct lite *l, int on)
{
	if (l->bev == NULL || l->watching == on)
		return;
	if (on)
		bufferevent_enable(l->bev, EV_READ);
	else
		bufferevent_disable(l->bev, EV_READ);
	l->watching = on;
}

static void	lite_connect(struct probe *);

static void
lite_drop_conn(struct lite *l)
{
	if (l->bev != NULL) {
		bufferevent_free(l->bev);
		l->bev = NULL;
	}
}

static void
lite_finish(struct probe *p, struct probe_result *r)
{
	struct http_probe	*h = p->kstate;
	struct lite		*l = h->lite;

	evtimer_del(l->timer);
	l->busy = 0;
	r->latency_ms = (double)((l->arrived != 0 ? l->arrived :
	    now_usec()) - l->start) / 1000.0;
	l->arrived = 0;
	probe_done(p, r);
}

static void
lite_fail(struct probe *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
lite_fail(struct probe *p, const char *fmt, ...)
{
	struct http_probe	*h = p->kstate;
	struct probe_result	 r;
	va_list			 ap;

	lite_drop_conn(h->lite);
	memset(&r, 0, sizeof r);
	va_start(ap, fmt);
	vsnprintf(r.reason, sizeof r.reason, fmt, ap);
	va_end(ap);
	lite_finish(p, &r);
}

static void
lite_done(struct probe *p)
{
	struct http_probe	*h = p->kstate;
	struct lite		*l = h->lite;
	struct probe_result	 r;
	uint64_t		 took;

	/* quick to rise, slow to fall: a harvest too early costs a wake-up */
	took = (l->arrived != 0 ? l->arrived : now_usec()) - l->start;
	l->est = took > l->est ? took : (3 * l->est + took) / 4;
	/* bytes after the response: not ours, the connection is not sound */
	if (!l->resp.keep_alive || (l->bev != NULL &&
	    evbuffer_get_length(bufferevent_get_input(l->bev)) > 0))
		lite_drop_conn(l);
	/*
	 * Nobody watches a connection that waits for a harvested run: an
	 * epoll_ctl(2) each way would cost more than the wake-ups saved.
	 * lite_start() looks at it before it is used.
	 */
	else if (lite_harvest_wait(p, l) != 0)
		lite_watch(l, 0);
	memset(&r, 0, sizeof r);
	http_judge(p, l->resp.status, &r);
	lite_finish(p, &r);
}

static void
lite_on_header(void *arg, const char *name, size_t nlen, const char *v,
    size_t vlen)
{
	http_header_match(arg, name, nlen, v, vlen);
}

static void
lite_on_body(void *arg, const char *data, size_t len)
{
	http_body_cb((char *)data, 1, len, arg);
}

static void
lite_on_status(void *arg)
{
	struct probe		*p = arg;
	struct http_probe	*h = p->kstate;

	if (h->hdr_seen != NULL)
		memset(h->hdr_seen, 0, p->conf->nexpect_header);
	if (h->hdr_bad != NULL)
		h->hdr_bad[0] = '\0';
}

/* Feeds what has arrived to the parser: an http_parse_rc. */
static int
lite_parse(struct probe *p)
{
	struct http_probe	*h = p->kstate;
	struct lite		*l = h->lite;
	struct evbuffer		*in = bufferevent_get_input(l->bev);
	size_t			 len = evbuffer_get_length(in), used = 0;
	int			 rc;

	if (len == 0)
		return (HTTP_PARSE_MORE);
	rc = http_parse_response(&l->resp,
	    (const char *)evbuffer_pullup(in, -1), len, &used);
	evbuffer_drain(in, used);
	return (rc);
}

/* What came so far, parsed: 1 if the run ended with it, 0 for more. */
static int
lite_feed(struct probe *p)
{
	struct http_probe	*h = p->kstate;

	switch (lite_parse(p)) {
	case HTTP_PARSE_DONE:
		lite_done(p);
		return (1);
	case HTTP_PARSE_ERROR:
		lite_fail(p, "%s", h->lite->resp.error);
		return (1);
	}
	return (0);
}

static void
lite_read_cb(struct bufferevent *bev, void *arg)
{
	struct probe		*p = arg;
	struct http_probe	*h = p->kstate;
	struct lite		*l = h->lite;

	(void)bev;
	if (!l->busy) {
		/* unasked bytes on an idle connection: not a response */
		lite_drop_conn(l);
		return;
	}
	lite_feed(p);
}

static void
lite_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct probe		*p = arg;
	struct http_probe	*h = p->kstate;
	struct lite		*l = h->lite;
	uint64_t		 got;
	int			 dnserr, err;

	err = EVUTIL_SOCKET_ERROR();
	if (!l->busy) {
		/* the server closed the idle connection: the next run opens
		   a new one */
		lite_drop_conn(l);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		int	on = 1;

		l->connected = 1;
		l->stamped = setsockopt(bufferevent_getfd(bev), SOL_SOCKET,
		    SO_TIMESTAMPNS, &on, sizeof on) == 0;
		bufferevent_write(bev, l->req, l->reqlen);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* what came with the close */
		if (lite_feed(p))
			return;
	}
	got = l->resp.nread + evbuffer_get_length(bufferevent_get_input(bev));
	if (l->reused && got == 0) {
		/*
		 * Closed while the request was on its way: once more on a
		 * fresh connection, timed from now as a first run is.
		 */
		lite_drop_conn(l);
		l->reused = 0;
		l->start = now_usec();
		lite_connect(p);
		return;
	}
	if ((dnserr = bufferevent_socket_get_dns_error(bev)) != 0)
		lite_fail(p, "DNS: could not resolve host: %s (%s)", l->host,
		    evutil_gai_strerror(dnserr));
	else if (!l->connected)
		lite_fail(p, "connect failed: %s:%d: %s", l->host, l->port,
		    evutil_socket_error_to_string(err));
	else if (what & BEV_EVENT_EOF) {
		if (http_parse_eof(&l->resp, evbuffer_get_length(
		    bufferevent_get_input(bev))) == HTTP_PARSE_DONE)
			lite_done(p);
		else
			lite_fail(p, "%s", l->resp.error);
	} else if (err == ECONNRESET)
		lite_fail(p, "connection reset after %llu bytes of the "
		    "response", (unsigned long long)got);
	else
		lite_fail(p, "connection error after %llu bytes of the "
		    "response: %s", (unsigned long long)got,
		    evutil_socket_error_to_string(err));
}

static void
lite_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe	*p = arg;
	char		 t[32];

	(void)fd;
	(void)what;
	format_duration(p->conf->timeout, t, sizeof t);
	lite_fail(p, "timeout after %s", t);
}

static void
lite_connect(struct probe *p)
{
	struct http_probe	*h = p->kstate;
	struct lite		*l = h->lite;

	l->connected = 0;
	l->watching = 1;
	/* deferred: an immediate refusal must not call back into us */
	l->bev = bufferevent_socket_new(p->opsd->base, -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	bufferevent_setcb(l->bev, lite_read_cb, NULL, lite_event_cb, p);
	bufferevent_enable(l->bev, EV_READ | EV_WRITE);
	bufferevent_socket_connect_hostname(l->bev, p->opsd->dns, AF_UNSPEC,
	    l->host, l->port);
}

/* Can this probe use the plain transport at all (not what its URL is)? */
static int
lite_possible(const struct probe_conf *pc)
{
	return (!pc->follow_redirects && getenv("http_proxy") == NULL &&
	    getenv("HTTP_PROXY") == NULL && getenv("all_proxy") == NULL &&
	    getenv("ALL_PROXY") == NULL && (strcmp(pc->method, "GET") == 0 ||
	    strcmp(pc->method, "HEAD") == 0));
}

int
http_probe_needs_curl(const struct probe_conf *pc)
{
	struct http_url	hu;

	if (!lite_possible(pc) || !http_url_split(pc->url, &hu))
		return (1);
	http_url_free(&hu);
	return (0);
}

/* Sets the plain transport up for host (as written), port and target. */
static void
lite_setup(struct probe *p, struct http_probe *h, const char *host, int port,
    const char *target)
{
	const struct probe_conf	*pc = p->conf;
	struct lite		*l;
	char			*hosthdr;

	l = h->lite = xcalloc(1, sizeof *l);
	/* [::1] comes with its brackets: connect wants none */
	if (host[0] == '[')
		l->host = xstrndup(host + 1, strlen(host) - 2);
	else
		l->host = xstrdup(host);
	l->port = port;
	l->head = strcmp(pc->method, "HEAD") == 0;
	if (pc->host_header != NULL)
		hosthdr = xstrdup(pc->host_header);
	else if (l->port == 80)
		hosthdr = xstrdup(host);
	else
		xasprintf(&hosthdr, "%s:%d", host, l->port);
	l->reqlen = (size_t)xasprintf(&l->req, "%s %s HTTP/1.1\r\n"
	    "Host: %s\r\nUser-Agent: opsd/" OPSD_VERSION "\r\n"
	    "Accept: */*\r\n\r\n", pc->method, target, hosthdr);
	free(hosthdr);
	l->timer = evtimer_new(p->opsd->base, lite_timeout_cb, p);
#ifdef OPSD_FAULT_INJECTION
	if (getenv("OPSD_TEST_HARVEST_USEC") != NULL)
		l->test_wait = strtoull(getenv("OPSD_TEST_HARVEST_USEC"),
		    NULL, 10);
#endif
}

/* The same from a URL libcurl parsed: 1 if it is plain http. */
static int
lite_setup_curl(struct probe *p, struct http_probe *h, CURLU *url)
{
	char	*scheme = NULL, *host = NULL, *port = NULL;
	char	*path = NULL, *query = NULL, *target;
	int	 ok;

	ok = curl_url_get(url, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    strcmp(scheme, "http") == 0 &&
	    curl_url_get(url, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(url, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ==
	    CURLUE_OK &&
	    curl_url_get(url, CURLUPART_PATH, &path, 0) == CURLUE_OK;
	if (ok) {
		curl_url_get(url, CURLUPART_QUERY, &query, 0);
		xasprintf(&target, "%s%s%s", path, query ? "?" : "",
		    query ? query : "");
		lite_setup(p, h, host, atoi(port), target);
		free(target);
		curl_free(query);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	return (ok);
}

/*
 * The request on a kept-alive connection: straight to the socket, which
 * always takes a hundred bytes, rather than through the output buffer
 * (two epoll_ctl calls and a loop iteration more a run); what it does
 * not take goes the buffered way.
 */
static int
lite_send(struct lite *l)
{
	evutil_socket_t	 fd = bufferevent_getfd(l->bev);
	ssize_t		 n = -1;

	if (fd >= 0 && evbuffer_get_length(bufferevent_get_output(l->bev)) ==
	    0)
		n = send(fd, l->req, l->reqlen, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		n = 0;
	if ((size_t)n < l->reqlen)
		bufferevent_write(l->bev, l->req + n, l->reqlen - (size_t)n);
	return ((size_t)n == l->reqlen);
}

/* When the bytes msg read arrived, as a monotonic time: 0 if unknown. */
static uint64_t
lite_stamp(const struct lite *l, struct msghdr *msg)
{
	struct cmsghdr	*cm;
	struct timespec	 ts;
	uint64_t	 rt, at, now = now_usec();

	for (cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_TIMESTAMPNS)
			continue;
		memcpy(&ts, CMSG_DATA(cm), sizeof ts);
		rt = (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
		/* the wall clock stepped: not a time to report */
		if (rt < l->start_rt)
			return (0);
		at = l->start + (rt - l->start_rt) / 1000;
		return (at <= now ? at : 0);
	}
	return (0);
}

/*
 * The harvest (probe-sched.c): what came for the run, in one recvmsg(2) with
 * the kernel's time stamp, straight into the input buffer. An answer not
 * there yet, or not whole, is read as it comes: the socket is watched
 * again until the run ends.
 */
static void
lite_harvest(struct probe *p)
{
	struct http_probe	*h = p->kstate;
	struct lite		*l = h->lite;
	struct evbuffer		*in;
	struct evbuffer_iovec	 v;
	struct iovec		 iov;
	struct msghdr		 msg;
	union {
		struct cmsghdr	 align;
		char		 buf[CMSG_SPACE(sizeof(struct timespec))];
	}			 cbuf;
	ssize_t			 n;
	int			 err;

	if (l->bev == NULL || !l->busy)
		return;
	in = bufferevent_get_input(l->bev);
	/* the bufferevent keeps its input's end frozen but while it reads */
	evbuffer_unfreeze(in, 0);
	if (evbuffer_reserve_space(in, LITE_HARVEST_READ, &v, 1) != 1) {
		evbuffer_freeze(in, 0);
		lite_watch(l, 1);
		return;
	}
	iov.iov_base = v.iov_base;
	iov.iov_len = v.iov_len;
	memset(&msg, 0, sizeof msg);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof cbuf.buf;
	n = recvmsg(bufferevent_getfd(l->bev), &msg, MSG_DONTWAIT);
	err = errno;
	if (n > 0)
		v.iov_len = (size_t)n;
	evbuffer_commit_space(in, &v, n > 0 ? 1 : 0);
	evbuffer_freeze(in, 0);
	if (n <= 0) {
		if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK ||
		    err == EINTR)) {
			lite_watch(l, 1);	/* not yet: read when it comes */
			return;
		}
		/* what the buffered read would have said */
		errno = err;
		lite_event_cb(l->bev, BEV_EVENT_READING | (n == 0 ?
		    BEV_EVENT_EOF : BEV_EVENT_ERROR), p);
		return;
	}
	l->arrived = lite_stamp(l, &msg);
	if (lite_feed(p))
		return;
	l->arrived = 0;		/* the rest comes later */
	lite_watch(l, 1);
}

/*
 * An idle connection nobody watched: sound if nothing waits on it. A
 * close, a reset or bytes nobody asked for all mean a fresh connection,
 * as they did when seen as they came.
 */
static int
lite_idle_sound(const struct lite *l)
{
	char	c;

	return (recv(bufferevent_getfd(l->bev), &c, 1, MSG_PEEK |
	    MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

static void
lite_start(struct probe *p)
{
	struct http_probe	*h = p->kstate;
	struct lite		*l = h->lite;
	struct timeval		 tv;

	http_resp_init(&l->resp);
	l->resp.head = l->head;
	l->resp.on_header = lite_on_header;
	l->resp.on_body = lite_on_body;
	l->resp.on_status = lite_on_status;
	l->resp.arg = p;
	l->busy = 1;
	l->start = now_usec();
	l->start_rt = now_realtime_usec() * 1000;
	tv.tv_sec = (time_t)(p->conf->timeout / 1000);
	tv.tv_usec = (suseconds_t)(p->conf->timeout % 1000) * 1000;
	evtimer_add(l->timer, &tv);
	/* read but not yet seen by lite_read_cb: unasked, drop them */
	if (l->bev != NULL &&
	    evbuffer_get_length(bufferevent_get_input(l->bev)) > 0)
		lite_drop_conn(l);
	if (l->bev != NULL && !l->watching && !lite_idle_sound(l))
		lite_drop_conn(l);
	if (l->bev != NULL) {
		uint64_t	wait = lite_harvest_wait(p, l);

		l->reused = 1;
		l->connected = 1;
		/* an answer expected soon is read at the harvest (probe-sched.c) */
		lite_watch(l, wait == 0);
		if (lite_send(l) && wait != 0)
			probe_harvest_at(p, l->start + wait);
		else
			lite_watch(l, 1);
		return;
	}
	l->reused = 0;
	lite_connect(p);
}

static void
lite_cancel(struct lite *l)
{
	/* a response half read leaves the connection unusable */
	lite_drop_conn(l);
	evtimer_del(l->timer);
	l->busy = 0;
}

static void
lite_free(struct lite *l)
{
	lite_drop_conn(l);
	if (l->timer != NULL)
		event_free(l->timer);
	free(l->host);
	free(l->req);
	free(l);
}

/* The options of a run's easy handle; the same for every run. */
static int
http_easy_new(struct probe *p, struct http_curl *c)
{
	const struct probe_conf	*pc = p->conf;
	CURL			*e;

	if ((e = c->easy = http_easy_create()) == NULL)
		return (-errno);	/* ELIBACC: probe_start says why */
	http_easy_defaults(e);
	if (c->url != NULL)
		curl_easy_setopt(e, CURLOPT_CURLU, c->url);
	else
		curl_easy_setopt(e, CURLOPT_URL, pc->url);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_body_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, p);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)pc->timeout);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, (long)pc->follow_redirects);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, (long)pc->tls_verify);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, pc->tls_verify ? 2L : 0L);
	if (pc->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, pc->ca_file);
	if (strncasecmp(pc->url, "https:", 6) == 0)
		curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
	if (strcmp(pc->method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(pc->method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, pc->method);
	/*
	 * No "Accept" of our own: curl sends the same default, and a custom
	 * header list is scanned by every request curl builds.
	 */
	if (c->headers != NULL)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
	return (0);
}

/*
 * The run is over: the easy handle goes, its connection stays in the
 * multi handle's cache for the next run.
 */
static void
http_easy_release(struct http_curl *c)
{
	if (c->easy == NULL)
		return;
	http_cancel(c->easy);
	curl_easy_cleanup(c->easy);
	c->easy = NULL;
}

/* The kind's state, at the first run: which transport, what it keeps. */
static void
http_probe_new(struct probe *p)
{
	const struct probe_conf	*pc = p->conf;
	struct http_probe	*h;
	struct http_curl	*c;
	CURLU			*url;
	char			*hdr;

	h = p->kstate = xcalloc(1, sizeof *h);
	if (pc->nexpect_header > 0) {
		h->hdr_seen = xcalloc(pc->nexpect_header, 1);
		h->hdr_bad = xcalloc(1, HDR_BAD_MAX);
	}
	/* a plain URL needs no libcurl at all (http-url.h) */
	if (lite_possible(pc)) {
		struct http_url	hu;

		if (http_url_split(pc->url, &hu)) {
			lite_setup(p, h, hu.host, hu.port, hu.target);
			http_url_free(&hu);
			return;
		}
	}
	/* the URL was validated with the config: it parses */
	if ((url = curl_url()) != NULL &&
	    curl_url_set(url, CURLUPART_URL, pc->url, 0) != CURLUE_OK) {
		curl_url_cleanup(url);
		url = NULL;
	}
	if (url != NULL && lite_possible(pc) && lite_setup_curl(p, h, url)) {
		curl_url_cleanup(url);
		return;
	}
	c = h->curl = xcalloc(1, sizeof *c);
	c->url = url;
	if (pc->host_header != NULL) {
		xasprintf(&hdr, "Host: %s", pc->host_header);
		c->headers = curl_slist_append(c->headers, hdr);
		free(hdr);
	}
}

static int
http_start_probe(struct probe *p)
{
	struct http_probe	*h = p->kstate;
	struct http_curl	*c;
	int			 e;

	if (h == NULL) {
		http_probe_new(p);
		h = p->kstate;
	}
	h->bodylen = 0;
	if (h->body != NULL)
		h->body[0] = '\0';
	if (h->hdr_seen != NULL)
		memset(h->hdr_seen, 0, p->conf->nexpect_header);
	if (h->hdr_bad != NULL)
		h->hdr_bad[0] = '\0';
	if (h->lite != NULL) {
		lite_start(p);
		return (0);
	}
	c = h->curl;
	c->errbuf[0] = '\0';
	http_easy_release(c);
	if ((e = http_easy_new(p, c)) != 0)
		return (e);
	if (http_start(p->opsd, c->easy, http_done, p) != 0) {
		http_easy_release(c);
		return (-EIO);
	}
	return (0);
}

static void
http_cancel_probe(struct probe *p)
{
	struct http_probe	*h = p->kstate;

	if (h != NULL && h->lite != NULL)
		lite_cancel(h->lite);
	else if (h != NULL)
		http_easy_release(h->curl);
}

static void
http_free_probe(struct probe *p)
{
	struct http_probe	*h = p->kstate;

	if (h == NULL)
		return;
	if (h->lite != NULL)
		lite_free(h->lite);
	if (h->curl != NULL) {
		http_easy_release(h->curl);
		curl_url_cleanup(h->curl->url);
		curl_slist_free_all(h->curl->headers);
		free(h->curl);
	}
	free(h->body);
	free(h->hdr_seen);
	free(h->hdr_bad);
	free(h);
	p->kstate = NULL;
}

static void
http_harvest_probe(struct probe *p)
{
	struct http_probe	*h = p->kstate;

	if (h != NULL && h->lite != NULL)
		lite_harvest(p);
}

const struct probe_ops probe_http_ops = {
	"http", http_start_probe, http_cancel_probe, http_free_probe,
	http_harvest_probe
};
