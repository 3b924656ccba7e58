/*
 * tcp probes: connect to host:port (names resolved by evdns, off the
 * loop), optionally send a line and wait for a reply that contains the
 * expected text. The reply is read up to 4 KiB.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "daemon.h"
#include "opsd-parse.h"
#include "probe.h"
#include "util.h"

#define REPLY_MAX	4096

struct tcp_probe {
	struct bufferevent	*bev;
	struct event		*timer;
};

static void
tcp_cleanup(struct probe *p)
{
	struct tcp_probe	*t = p->kstate;

	if (t == NULL)
		return;
	if (t->bev != NULL)
		bufferevent_free(t->bev);
	if (t->timer != NULL)
		event_free(t->timer);
	free(t);
	p->kstate = NULL;
}

static void
tcp_finish(struct probe *p, struct probe_result *r)
{
	tcp_cleanup(p);
	probe_done(p, r);
}

static void
tcp_reply_snippet(struct evbuffer *in, char *buf, size_t len)
{
	size_t	n = evbuffer_get_length(in);

	if (n >= len)
		n = len - 1;
	evbuffer_copyout(in, buf, n);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
}

static void
tcp_read_cb(struct bufferevent *bev, void *arg)
{
	struct probe		*p = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct probe_result	 r;
	struct evbuffer_ptr	 found;
	char			 got[128];

	if (p->conf->expect == NULL) {
		/* a server that talks first (SMTP, SSH): nothing to match */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	found = evbuffer_search(in, p->conf->expect, strlen(p->conf->expect),
	    NULL);
	memset(&r, 0, sizeof r);
	if (found.pos != -1) {
		r.ok = 1;
		snprintf(r.reason, sizeof r.reason, "got '%s'", p->conf->expect);
		tcp_finish(p, &r);
	} else if (evbuffer_get_length(in) >= REPLY_MAX) {
		tcp_reply_snippet(in, got, sizeof got);
		probe_fail(&r, "expected '%.64s', got '%s'", p->conf->expect,
		    got);
		tcp_finish(p, &r);
	}
}

/* send without expect: done once the line has left the buffer */
static void
tcp_write_cb(struct bufferevent *bev, void *arg)
{
	struct probe		*p = arg;
	struct probe_result	 r;

	if (p->conf->send == NULL || p->conf->expect != NULL ||
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	memset(&r, 0, sizeof r);
	r.ok = 1;
	snprintf(r.reason, sizeof r.reason, "connected, sent '%.64s'",
	    p->conf->send);
	tcp_finish(p, &r);
}

static void
tcp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct probe		*p = arg;
	struct probe_result	 r;
	char			 got[128];
	int			 dnserr;

	memset(&r, 0, sizeof r);
	if (what & BEV_EVENT_CONNECTED) {
		if (p->conf->send != NULL) {
			bufferevent_write(bev, p->conf->send,
			    strlen(p->conf->send));
			bufferevent_write(bev, "\r\n", 2);
		}
		if (p->conf->expect == NULL && p->conf->send == NULL) {
			r.ok = 1;
			snprintf(r.reason, sizeof r.reason, "connected");
			tcp_finish(p, &r);
		}
		return;
	}
	if ((dnserr = bufferevent_socket_get_dns_error(bev)) != 0)
		probe_fail(&r, "DNS: cannot resolve %s: %s", p->conf->host,
		    evutil_gai_strerror(dnserr));
	else if (what & BEV_EVENT_EOF) {
		tcp_reply_snippet(bufferevent_get_input(bev), got, sizeof got);
		probe_fail(&r, "connection closed before '%.64s' (got '%s')",
		    p->conf->expect ? p->conf->expect : "", got);
	} else
		probe_fail(&r, "connect to %s failed: %s", p->conf->address,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	tcp_finish(p, &r);
}

static void
tcp_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe		*p = arg;
	struct probe_result	 r;
	char			 t[32];

	(void)fd;
	(void)what;
	memset(&r, 0, sizeof r);
	format_duration(p->conf->timeout, t, sizeof t);
	probe_fail(&r, "timeout after %s", t);
	tcp_finish(p, &r);
}

static int
tcp_start(struct probe *p)
{
	struct tcp_probe	*t;
	struct timeval		 tv;

	t = p->kstate = xcalloc(1, sizeof *t);
	/* deferred: an immediate refusal must not call back into us */
	t->bev = bufferevent_socket_new(p->opsd->base, -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	t->timer = evtimer_new(p->opsd->base, tcp_timeout_cb, p);
	tv.tv_sec = (time_t)(p->conf->timeout / 1000);
	tv.tv_usec = (suseconds_t)(p->conf->timeout % 1000) * 1000;
	evtimer_add(t->timer, &tv);
	bufferevent_setcb(t->bev, tcp_read_cb, tcp_write_cb, tcp_event_cb, p);
	bufferevent_enable(t->bev, EV_READ | EV_WRITE);
	/* errors, even immediate ones, arrive through tcp_event_cb */
	bufferevent_socket_connect_hostname(t->bev, p->opsd->dns, AF_UNSPEC,
	    p->conf->host, p->conf->port);
	return (0);
}

const struct probe_ops probe_tcp_ops = {
	"tcp", tcp_start, tcp_cleanup, tcp_cleanup, NULL
};
