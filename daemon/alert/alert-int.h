/*
 * What alert.c (routes, active alerts, the event sink) and alert-deliver.c
 * (queueing, sending and retrying messages) share; nothing outside
 * daemon/alert/ includes this.
 */
#ifndef OPSD_ALERT_INT_H
#define OPSD_ALERT_INT_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "alert.h"

struct rpc_pending;

/* This subsystem's state in the daemon context (subsys.h). */
#define ALERTS(o)	((struct alert_set *)(o)->sub[SUBSYS_ALERT])

#define RETRY_DELAY_MAX	(5 * 60 * 1000)

struct route {
	struct alert_conf	*conf;
	uint64_t		 sent_ok;
	uint64_t		 sent_failed;
	int			 gone;		/* removed by a reload */
	int			 secret_warned;	/* loose mode, said once */
	unsigned int		 refs;		/* the set's, and each delivery's */
	unsigned int		 inflight;	/* deliveries under way */
	unsigned int		 queued;	/* waiting for a slot */
	uint64_t		 dropped;
};

struct active {
	struct alert_set	*set;
	char			*route;
	char			*source;
	char			*object;
	json_t			*payload;	/* last firing message */
	int64_t			 since;
	struct event		*repeat;
	LIST_ENTRY(active)	 entry;
};

struct delivery {
	struct alert_set	*set;
	struct route		*route;
	char			*source;	/* NULL: never merged (a test) */
	char			*object;
	int			 running;	/* 0: queued */
	uint64_t		 queued_usec;	/* when first queued */
	unsigned int		 merged;	/* messages it replaced */
	json_t			*payload;
	char			*body;		/* as sent on the wire */
	size_t			 bodylen;
	size_t			 bodyoff;	/* smtp upload position */
	CURL			*easy;
	struct curl_slist	*headers;
	struct curl_slist	*rcpt;
	char			 errbuf[CURL_ERROR_SIZE];
	unsigned int		 attempt;
	unsigned int		 max_attempts;
	struct event		*timer;		/* queue limit, then retries */
	struct rpc_pending	*waiter;
	TAILQ_ENTRY(delivery)	 entry;
};

struct alert_set {
	struct opsd		*opsd;
	struct route		**routes;
	unsigned int		  nroutes;
	LIST_HEAD(, active)	  active;
	unsigned int		  nactive;
	TAILQ_HEAD(, delivery)	  deliveries;	/* in arrival order */
	unsigned int		  ndeliveries;
	struct event		 *pump;		/* starts queued deliveries */
	char			  host[256];
};

/* Messages (alert-deliver.c). */
const char *alert_payload_text(json_t *payload);
json_t	*alert_payload_new(struct alert_set *, const char *status,
	    const char *type, const char *name, const char *event, int test);

/* Deliveries (alert-deliver.c). */
void	 alert_deliver(struct alert_set *, struct route *, json_t *payload,
	    struct rpc_pending *waiter, unsigned int attempts,
	    const char *source, const char *object);
void	 alert_delivery_drop(struct delivery *, const char *why);
void	 alert_delivery_free(struct delivery *);
void	 alert_pump_cb(evutil_socket_t, short, void *);
void	 alert_pump_soon(struct alert_set *);
void	 alert_route_release(struct route *);

#endif /* OPSD_ALERT_INT_H */
