/*
 * The curl multi glue. libcurl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to call it back (TIMERFUNCTION);
 * libevent tells libcurl when a socket is ready. Completed transfers are
 * collected with curl_multi_info_read() after every action.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "daemon.h"
#include "evt.h"
#include "http.h"
#include "lazylib.h"
#include "util.h"

struct http_sock {
	struct event	*ev;
	curl_socket_t	 fd;
};

/* The daemon's multi handle (o->http). */
struct http_multi {
	struct event_base	*base;
	CURLM			*multi;
	struct event		*timer;
};

struct http_xfer {
	struct http_multi	*hm;
	http_done_cb		 done;
	void			*arg;
};

static void
http_check_done(struct http_multi *hm)
{
	struct http_xfer	*x;
	CURLMsg			*msg;
	CURL			*easy;
	CURLcode		 code;
	int			 left;

	while ((msg = curl_multi_info_read(hm->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		easy = msg->easy_handle;
		code = msg->data.result;
		x = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(hm->multi, easy);
		if (x != NULL) {
			curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
			if (x->done != NULL)
				x->done(easy, code, x->arg);
			free(x);
		}
	}
}

static void
http_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_multi	*hm = arg;
	int			 flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(hm->multi, fd, flags, &running);
	http_check_done(hm);
}

static void
http_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_multi	*hm = arg;
	int			 running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(hm->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_check_done(hm);
}

static int
http_timer_fn(CURLM *multi, long timeout_ms, void *arg)
{
	struct http_multi	*hm = arg;
	struct timeval		 tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(hm->timer);
		return (0);
	}
	/* 0 means "now": still go through the loop, never recurse */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(hm->timer, &tv);
	return (0);
}

static int
http_socket_fn(CURL *easy, curl_socket_t fd, int what, void *arg,
    void *sockp)
{
	struct http_multi	*hm = arg;
	struct http_sock	*s = sockp;
	short			 kind;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			event_free(s->ev);
			free(s);
			curl_multi_assign(hm->multi, fd, NULL);
		}
		return (0);
	}
	kind = EV_PERSIST;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		s->fd = fd;
		curl_multi_assign(hm->multi, fd, s);
	} else
		event_free(s->ev);
	s->ev = event_new(hm->base, fd, kind, http_event_cb, hm);
	event_add(s->ev, NULL);
	return (0);
}

/*
 * libcurl's global init, and OpenSSL's with it, on first use rather than
 * at start: a daemon whose probes are all plain http (they do not go
 * through libcurl) never needs them, and they cost about 2.2 MB of
 * resident library pages (measured: a program linking opsd's libraries
 * has 8.6 MB resident, 10.8 MB after curl_global_init()).
 */
static int	http_global_done;

static int
http_global(void)
{
	if (!http_global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return (-1);
		http_global_done = 1;
	}
	return (0);
}

CURL *
http_easy_create(void)
{
	CURL	*e;

	if (lazylib_curl() != 0) {
		errno = ELIBACC;
		return (NULL);
	}
	if (http_global() != 0 || (e = curl_easy_init()) == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	return (e);
}

/* The multi handle, made with the first transfer. */
static CURLM *
http_multi_get(struct http_multi *hm)
{
	if (hm->multi != NULL)
		return (hm->multi);
	if (http_global() != 0 || (hm->multi = curl_multi_init()) == NULL)
		return (NULL);
	curl_multi_setopt(hm->multi, CURLMOPT_SOCKETFUNCTION, http_socket_fn);
	curl_multi_setopt(hm->multi, CURLMOPT_SOCKETDATA, hm);
	curl_multi_setopt(hm->multi, CURLMOPT_TIMERFUNCTION, http_timer_fn);
	curl_multi_setopt(hm->multi, CURLMOPT_TIMERDATA, hm);
	/* keep connections to probed hosts open between runs */
	curl_multi_setopt(hm->multi, CURLMOPT_MAXCONNECTS, 2048L);
	return (hm->multi);
}

int
http_init(struct opsd *o)
{
	struct http_multi	*hm;

	hm = xcalloc(1, sizeof *hm);
	hm->base = o->base;
	o->http = hm;
	hm->timer = evtimer_new(o->base, http_timer_cb, hm);
	return (hm->timer != NULL ? 0 : -1);
}

void
http_shutdown(struct opsd *o)
{
	struct http_multi	*hm = o->http;

	if (hm == NULL)
		return;
	if (hm->multi != NULL)
		curl_multi_cleanup(hm->multi);
	if (hm->timer != NULL)
		event_free(hm->timer);
	free(hm);
	o->http = NULL;
	if (http_global_done) {
		curl_global_cleanup();
		http_global_done = 0;
	}
}

void
http_easy_defaults(CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "opsd/" OPSD_VERSION);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
}

int
http_start(struct opsd *o, CURL *easy, http_done_cb done, void *arg)
{
	struct http_xfer	*x;

	x = xcalloc(1, sizeof *x);
	x->hm = o->http;
	x->done = done;
	x->arg = arg;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
	if (http_multi_get(x->hm) == NULL ||
	    curl_multi_add_handle(x->hm->multi, easy) != CURLM_OK) {
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		free(x);
		return (-1);
	}
	return (0);
}

void
http_cancel(CURL *easy)
{
	struct http_xfer	*x = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
	if (x == NULL)
		return;
	curl_multi_remove_handle(x->hm->multi, easy);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
	free(x);
}
