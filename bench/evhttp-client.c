/*
 * evhttp-client: the CPU that libevent's own HTTP client (evhttp) takes
 * for the work of opsd's plain-http probes: CONNS persistent
 * evhttp_connections to one server, each sending a keep-alive GET every
 * CONNS/RATE seconds (1,000 connections at 1 s by default, like
 * bench/probes' 1,000 probes), with the headers opsd sends, the response
 * status checked and the body read. Its own CPU (getrusage) over the
 * measured window, divided by the responses, is the figure to set against
 * bench/probes' "opsd CPU per probe".
 *
 * usage: evhttp-client -p PORT [-P PATH] [-c CONNS] [-r RATE]
 *                      [-d SECONDS] [-w SECONDS]
 *   -p PORT     the server on 127.0.0.1
 *   -P PATH     the request path (/health)
 *   -c CONNS    persistent connections (1000)
 *   -r RATE     requests per second in all (1000)
 *   -d SECONDS  measured window (10)
 *   -w SECONDS  warm-up, not counted: connections open (2)
 *
 * Prints a RESULT line: rate, ok, failed, skipped (the previous request
 * of that connection was still under way), closes (connections the server
 * or evhttp closed), user_us, sys_us and cpu_us per response.
 */
#include <sys/resource.h>
#include <sys/time.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

struct conn {
	struct evhttp_connection	*evcon;
	struct event			*tick;
	int				 busy;
};

static struct {
	struct event_base	*base;
	const char		*path;
	const struct timeval	*every;
	int			 measuring;
	uint64_t		 ok, failed, skipped, closes, body;
} g;

static void
done_cb(struct evhttp_request *req, void *arg)
{
	struct conn	*c = arg;
	struct evbuffer	*in;

	c->busy = 0;
	if (req == NULL || evhttp_request_get_response_code(req) != 200) {
		g.failed++;
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	g.body += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	g.ok++;
}

static void
close_cb(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	(void)arg;
	g.closes++;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn		*c = arg;
	struct evhttp_request	*req;
	struct evkeyvalq	*h;

	(void)fd;
	(void)what;
	if (c->busy) {
		g.skipped++;
		return;
	}
	if ((req = evhttp_request_new(done_cb, c)) == NULL) {
		g.failed++;
		return;
	}
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", "127.0.0.1");
	evhttp_add_header(h, "User-Agent", "opsd/0.1.0");
	evhttp_add_header(h, "Accept", "*/*");
	c->busy = 1;
	if (evhttp_make_request(c->evcon, req, EVHTTP_REQ_GET, g.path) != 0) {
		/* evhttp_make_request frees the request on failure */
		c->busy = 0;
		g.failed++;
	}
}

static void
start_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;

	(void)fd;
	(void)what;
	event_add(c->tick, g.every);
	tick_cb(-1, 0, c);
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(g.base);
}

static double
tv_us(struct timeval tv)
{
	return ((double)tv.tv_sec * 1e6 + (double)tv.tv_usec);
}

static void
usage(void)
{
	fprintf(stderr, "usage: evhttp-client -p PORT [-P PATH] [-c CONNS] "
	    "[-r RATE] [-d SECONDS] [-w SECONDS]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct conn	*conns;
	struct timeval	 tv, every;
	struct rusage	 ru0, ru1;
	struct event	*stop;
	uint64_t	 ok0, failed0, skipped0, closes0, n;
	double		 user, sys, wall0, wall1, period;
	int		 port = 0, nconns = 1000, rate = 1000, duration = 10;
	int		 warmup = 2, i;

	g.path = "/health";
	for (i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "-p") == 0)
			port = atoi(argv[++i]);
		else if (strcmp(argv[i], "-P") == 0)
			g.path = argv[++i];
		else if (strcmp(argv[i], "-c") == 0)
			nconns = atoi(argv[++i]);
		else if (strcmp(argv[i], "-r") == 0)
			rate = atoi(argv[++i]);
		else if (strcmp(argv[i], "-d") == 0)
			duration = atoi(argv[++i]);
		else if (strcmp(argv[i], "-w") == 0)
			warmup = atoi(argv[++i]);
		else
			usage();
	}
	if (port <= 0 || port > 65535 || nconns < 1 || rate < 1 ||
	    duration < 1 || warmup < 0)
		usage();
	if ((g.base = event_base_new()) == NULL ||
	    (conns = calloc((size_t)nconns, sizeof *conns)) == NULL) {
		fprintf(stderr, "evhttp-client: out of memory\n");
		return (2);
	}
	/* each connection sends every nconns/rate seconds, phases spread */
	period = (double)nconns / rate;
	every.tv_sec = (time_t)period;
	every.tv_usec = (suseconds_t)((period - (double)every.tv_sec) * 1e6);
	g.every = event_base_init_common_timeout(g.base, &every);
	for (i = 0; i < nconns; i++) {
		struct conn	*c = &conns[i];
		double		 at = period * i / nconns;

		c->evcon = evhttp_connection_base_new(g.base, NULL, "127.0.0.1",
		    (unsigned short)port);
		if (c->evcon == NULL) {
			fprintf(stderr, "evhttp-client: no connection %d\n", i);
			return (2);
		}
		/*
		 * evhttp applies the timeout to an idle keep-alive connection
		 * too (its close detection reads with it): one shorter than
		 * the period closes every connection between requests
		 */
		evhttp_connection_set_timeout(c->evcon, (int)period + 10);
		evhttp_connection_set_closecb(c->evcon, close_cb, c);
		c->tick = event_new(g.base, -1, EV_PERSIST, tick_cb, c);
		tv.tv_sec = (time_t)at;
		tv.tv_usec = (suseconds_t)((at - (double)tv.tv_sec) * 1e6);
		event_base_once(g.base, -1, EV_TIMEOUT, start_cb, c, &tv);
	}

	tv.tv_sec = warmup;
	tv.tv_usec = 0;
	stop = evtimer_new(g.base, stop_cb, NULL);
	evtimer_add(stop, &tv);
	event_base_dispatch(g.base);

	getrusage(RUSAGE_SELF, &ru0);
	gettimeofday(&tv, NULL);
	wall0 = tv_us(tv);
	ok0 = g.ok;
	failed0 = g.failed;
	skipped0 = g.skipped;
	closes0 = g.closes;
	tv.tv_sec = duration;
	tv.tv_usec = 0;
	evtimer_add(stop, &tv);
	event_base_dispatch(g.base);
	getrusage(RUSAGE_SELF, &ru1);
	gettimeofday(&tv, NULL);
	wall1 = tv_us(tv);

	n = (g.ok - ok0) + (g.failed - failed0);
	user = tv_us(ru1.ru_utime) - tv_us(ru0.ru_utime);
	sys = tv_us(ru1.ru_stime) - tv_us(ru0.ru_stime);
	printf("RESULT conns=%d wall_s=%.2f responses=%llu rate=%.1f ok=%llu "
	    "failed=%llu skipped=%llu closes=%llu body_bytes=%llu "
	    "user_us=%.2f sys_us=%.2f cpu_us=%.2f\n", nconns,
	    (wall1 - wall0) / 1e6, (unsigned long long)n,
	    (double)n * 1e6 / (wall1 - wall0), (unsigned long long)(g.ok - ok0),
	    (unsigned long long)(g.failed - failed0),
	    (unsigned long long)(g.skipped - skipped0),
	    (unsigned long long)(g.closes - closes0),
	    (unsigned long long)g.body,
	    n ? user / (double)n : 0.0, n ? sys / (double)n : 0.0,
	    n ? (user + sys) / (double)n : 0.0);

	for (i = 0; i < nconns; i++) {
		event_free(conns[i].tick);
		evhttp_connection_free(conns[i].evcon);
	}
	event_free(stop);
	free(conns);
	event_base_free(g.base);
	return (n > 0 && g.failed == failed0 ? 0 : 1);
}
