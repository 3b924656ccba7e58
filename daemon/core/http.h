/*
 * libcurl on the event loop: one multi handle driven by
 * curl_multi_socket_action() from libevent socket events and one timer
 * (libcurl's "hiper" pattern). HTTP probes, webhooks, SMTP and S3 uploads
 * all go through it; none of them blocks the loop.
 */
#ifndef OPSD_HTTP_H
#define OPSD_HTTP_H

#include <curl/curl.h>

struct opsd;

/* Called once per transfer, after it was removed from the multi handle. */
typedef void (*http_done_cb)(CURL *, CURLcode, void *arg);

/* The daemon's multi handle (o->http). */
int	 http_init(struct opsd *);
void	 http_shutdown(struct opsd *);
/*
 * Starts a transfer on an easy handle the caller configured and still
 * owns. 0 or -1.
 */
int	 http_start(struct opsd *, CURL *, http_done_cb, void *arg);
/* Stops a running transfer; its callback is not called. */
void	 http_cancel(CURL *);
/*
 * A new easy handle (curl_easy_init() after libcurl's global init, which
 * waits for the first one); NULL if either fails, with errno ELIBACC when
 * libcurl cannot be loaded (lazylib.h; logged once) or ENOMEM.
 */
CURL	*http_easy_create(void);
/* The multi handle's share of DNS and connections, for new easy handles. */
void	 http_easy_defaults(CURL *);

#endif
