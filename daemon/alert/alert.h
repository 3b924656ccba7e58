/*
 * Alerts: [alert NAME] routes (webhook, e-mail) and the delivery of the
 * events that carry alert routes (see evt_alert()). A firing alert is sent
 * at once and again every `repeat` while it lasts; a resolved message
 * follows when it ends. Delivery runs on the curl multi handle with
 * retries and backoff; a delivery that finally fails is logged, counted
 * and never blocks anything. Each route has a few deliveries under way at
 * most; the others wait, newer messages of one alert replacing older
 * ones, and what waits too long is dropped, logged and counted.
 */
#ifndef OPSD_ALERT_H
#define OPSD_ALERT_H

#include <stdint.h>

#include "config.h"

struct opsd;
struct evbuffer;
struct evt_type;
struct rpc_pending;

/* A delivery that failed for good. */
extern const struct evt_type EVT_ALERT_FAILED;
/* A message not sent: it waited too long for its route, or found no room. */
extern const struct evt_type EVT_ALERT_DROPPED;

enum alert_type {
	ALERT_WEBHOOK,
	ALERT_EMAIL,
};

enum alert_format {
	ALERT_FORMAT_JSON,
	ALERT_FORMAT_SLACK,
};

struct alert_conf {
	char		*name;
	int		 line;
	int		 type;
	char		*url;
	int		 format;
	char		*bearer_token_file;
	char		*from;
	char		**to;
	unsigned int	 nto;
	char		*subject_prefix;
	char		*credentials_file;	/* user:password, for SMTP */
	char		*ca_file;
	int		 tls_verify;
	uint64_t	 repeat;		/* msec, 0: never */
	uint64_t	 retries;
	uint64_t	 retry_delay;		/* msec, doubles per attempt */
	uint64_t	 timeout;		/* msec per attempt */
};

extern const struct ini_section alert_section;
void	 alert_conf_free(struct alert_conf *);
struct alert_conf *alert_conf_find(struct opsd_config *, const char *name);

int	 alert_init(struct opsd *);
void	 alert_apply_config(struct opsd *);
void	 alert_stop_all(struct opsd *);
void	 alert_fail_waiters(struct opsd *);
/* Ends the alerts of an object that went away (removed probe, ...). */
void	 alert_resolve(struct opsd *, const char *source, const char *object,
	    const char *why);
/* Sends a test message through route; waiter gets the outcome. */
int	 alert_test(struct opsd *, const char *route, struct rpc_pending *);

/* Counters per route, for metrics. */
unsigned int alert_route_count(struct opsd *);
const char *alert_route_stats(struct opsd *, unsigned int i, uint64_t *ok,
	    uint64_t *failed);
unsigned int alert_active_count(struct opsd *);
struct json_t *alert_status(struct opsd *);	/* core/status.h */
unsigned int alert_deliveries(struct opsd *);	/* under way or queued */
void	 alert_metrics(struct opsd *, struct evbuffer *);

#endif
