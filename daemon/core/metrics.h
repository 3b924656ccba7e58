/*
 * Prometheus metrics over HTTP (libevent's evhttp) on metrics_listen:
 * /metrics in the text exposition format, /healthz answering 200 while
 * the loop runs. Values are read from the subsystems' own counters when
 * scraped; nothing is kept twice.
 */
#ifndef OPSD_METRICS_H
#define OPSD_METRICS_H

struct opsd;
struct evbuffer;

int	metrics_start(struct opsd *);		/* 0 or -errno, logged */
void	metrics_reconfigure(struct opsd *);
void	metrics_stop(struct opsd *);
/* Renders every metric into buf (also used by tests). */
void	metrics_render(struct opsd *, struct evbuffer *buf);

/* For the subsystems' collectors (subsys.h): HELP and TYPE lines. */
void	metrics_head(struct evbuffer *, const char *name, const char *type,
	    const char *help);
/* A label value escaped as the exposition format wants. */
void	metrics_label(struct evbuffer *, const char *value);

#endif
