/*
 * The status page: GET / (HTML) and GET /status.json on the metrics
 * listener, read-only. The document is built from the registry: the
 * health summary (health_collect(), what opsd.health answers), then each
 * subsystem's section from its status callback (subsys.h), then the last
 * few operations of the op journal. The HTML is rendered from that same
 * JSON, server-side, so the page and the scripts never disagree.
 *
 * A section is {"title": "Probes", "items": [{...}, ...], "empty": "..."}:
 * each item is one flat object whose members are the columns, in the
 * order of the first item that has them. Values are strings, numbers,
 * booleans or null; a string of the form YYYY-MM-DDTHH:MM:SSZ is a time
 * (UTC in the JSON, the host's zone on the page); "level" (ok, warning,
 * critical, unknown) colours the row and is no column; "history", a
 * string of one character a run, oldest first ('+' passed, '-' failed),
 * is drawn as a sparkline.
 */
#ifndef OPSD_STATUS_H
#define OPSD_STATUS_H

#include <stdint.h>

struct opsd;
struct evbuffer;
struct evhttp_request;
struct json_t;

/* The document of /status.json; a new reference. */
struct json_t	*status_json(struct opsd *);

/*
 * The HTML page of a document, appended to buf. Pure (no daemon): every
 * string is escaped, whatever it holds; what is not of the expected type
 * is skipped.
 */
void		 status_html(const struct json_t *doc, struct evbuffer *buf);

/* The document as JSON, appended to buf (what /status.json sends). */
void		 status_dump(const struct json_t *doc, struct evbuffer *buf);

/* Answers GET / (html) or GET /status.json; tls adds HSTS. */
void		 status_serve(struct opsd *, struct evhttp_request *,
		    int html, int tls);

/* A section made of items, for the subsystems' callbacks. */
struct json_t	*status_section(const char *title, const char *empty);
/* util_iso_time(), remembering the last few: a page has many alike. */
void		 status_iso(int64_t t, char *buf, size_t len);
/* "3m", "26h", "4d"; "-" below 0. */
void		 status_age(int64_t secs, char *buf, size_t len);

#endif
