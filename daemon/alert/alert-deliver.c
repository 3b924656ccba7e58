/*
 * Alert delivery. Each message is one delivery: a curl transfer retried
 * with doubling delays; when the last attempt fails the failure is an
 * event of its own (alert.failed) and a counter. The body is rendered
 * here once per delivery: the JSON payload or Slack's {"text"} for a
 * webhook, a MIME message with an RFC 2047 subject for e-mail.
 *
 * A receiver that hangs must not cost a socket per message: a route has
 * at most ROUTE_INFLIGHT deliveries under way and the rest wait in a
 * queue. One alert (route, source, object) has at most one delivery
 * under way and one waiting; a newer message replaces the waiting one,
 * so a flapping probe costs one slot, not one per flap. A message that
 * waits longer than its route would take to give up on it (attempts
 * times timeout), or finds the queue full, is dropped with an event of
 * its own (alert.dropped).
 */
#include <sys/queue.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "alert.h"
#include "alert-int.h"
#include "daemon.h"
#include "evt.h"
#include "http.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "secretfile.h"
#include "util.h"

#define ROUTE_INFLIGHT	4	/* deliveries under way per route */
#define ROUTE_QUEUED	64	/* waiting per route */

void
alert_route_release(struct route *r)
{
	if (--r->refs == 0 && r->gone) {
		alert_conf_free(r->conf);
		free(r);
	}
}

void
alert_pump_soon(struct alert_set *set)
{
	struct timeval	tv = { 0, 0 };

	if (set->pump != NULL)
		evtimer_add(set->pump, &tv);
}

void
alert_delivery_free(struct delivery *d)
{
	struct opsd	*o = d->set->opsd;

	TAILQ_REMOVE(&d->set->deliveries, d, entry);
	d->set->ndeliveries--;
	if (d->running) {
		d->route->inflight--;
		alert_pump_soon(d->set);	/* a slot is free */
	} else
		d->route->queued--;
	free(d->source);
	free(d->object);
	if (d->easy != NULL) {
		http_cancel(d->easy);
		curl_easy_cleanup(d->easy);
	}
	curl_slist_free_all(d->headers);
	curl_slist_free_all(d->rcpt);
	if (d->timer != NULL)
		event_free(d->timer);
	json_decref(d->payload);
	if (d->body != NULL)
		explicit_bzero(d->body, d->bodylen);
	free(d->body);
	alert_route_release(d->route);
	free(d);
	opsd_maybe_exit(o);
}

const char *
alert_payload_text(json_t *payload)
{
	const char	*s;

	s = json_string_value(json_object_get(payload, "message"));
	return (s != NULL ? s : "(an alert without a message)");
}

static json_t *
jobject(void)
{
	json_t	*o;

	if ((o = json_object()) == NULL)
		fatalx("alert: out of memory making a JSON object");
	return (o);
}

/* The fields every message carries, each set on its own so none is lost. */
json_t *
alert_payload_new(struct alert_set *set, const char *status, const char *type,
    const char *name, const char *event, int test)
{
	json_t	*p = jobject();
	char	 now[32];

	util_iso_time(time(NULL), now, sizeof now);
	json_object_set_new(p, "source", util_jstring("opsd"));
	json_object_set_new(p, "host", util_jstring(set->host));
	json_object_set_new(p, "status", util_jstring(status));
	json_object_set_new(p, "type", util_jstring(type));
	json_object_set_new(p, "name", util_jstring(name));
	json_object_set_new(p, "event", util_jstring(event));
	json_object_set_new(p, "time", util_jstring(now));
	json_object_set_new(p, "test", json_boolean(test));
	return (p);
}

static size_t
smtp_read_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct delivery	*d = arg;
	size_t		 len = size * n, left = d->bodylen - d->bodyoff;

	if (len > left)
		len = left;
	memcpy(buf, d->body + d->bodyoff, len);
	d->bodyoff += len;
	return (len);
}

static size_t
discard_cb(char *data, size_t size, size_t n, void *arg)
{
	(void)data;
	(void)arg;
	return (size * n);
}

/*
 * Header text: a line break or any other control character in event text
 * (a server's reply quoted in a probe reason) would end the header and
 * start one of the sender's choosing, such as Bcc. Each run of them
 * becomes one space.
 */
static char *
header_text(const char *s)
{
	char	*t, *o;

	if (s == NULL)
		s = "";
	o = t = xmalloc(strlen(s) + 1);
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f) {
			if (o == t || o[-1] != ' ')
				*o++ = ' ';
		} else
			*o++ = *s;
	}
	*o = '\0';
	return (t);
}

/*
 * "Subject: text" as it goes on the wire. Plain ASCII as it is; anything
 * else as RFC 2047 base64 encoded-words of UTF-8, each at most 75
 * characters, on lines of at most 76, never splitting a character.
 */
static char *
subject_header(const char *text)
{
	static const char	 head[] = "Subject: ";
	struct evbuffer		*b;
	const char		*s;
	unsigned char		 enc[64];
	size_t			 len, off = 0, take, max;
	char			*out;
	int			 ascii = 1;

	for (s = text; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			ascii = 0;
	if (ascii) {
		xasprintf(&out, "%s%s\r\n", head, text);
		return (out);
	}
	if ((b = evbuffer_new()) == NULL)
		fatalx("alert: out of memory");
	evbuffer_add(b, head, sizeof head - 1);
	len = strlen(text);
	while (off < len) {
		/*
		 * "=?UTF-8?B?" and "?=" take 12; base64 makes 4 of 3. The
		 * first line also holds "Subject: ", the others one space.
		 */
		max = off == 0 ? (76 - (sizeof head - 1) - 12) / 4 * 3 :
		    (75 - 12) / 4 * 3;
		take = util_utf8_cut(text + off, len - off, max);
		if (take == 0)
			take = len - off < max ? len - off : max;
		EVP_EncodeBlock(enc, (const unsigned char *)text + off,
		    (int)take);
		evbuffer_add_printf(b, "%s=?UTF-8?B?%s?=", off == 0 ? "" :
		    "\r\n ", enc);
		off += take;
	}
	evbuffer_add(b, "\r\n", 3);
	len = evbuffer_get_length(b);
	out = xmalloc(len + 1);
	evbuffer_remove(b, out, len);
	out[len] = '\0';
	evbuffer_free(b);
	return (out);
}

/* Body text with every line break as CRLF (RFC 5322 has no other). */
static void
body_add(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\r' && s[1] == '\n')
			continue;
		if (*s == '\r' || *s == '\n')
			evbuffer_add(b, "\r\n", 2);
		else
			evbuffer_add(b, s, 1);
	}
}

/* RFC 5322 message: headers, blank line, text body with CRLF endings. */
static char *
email_render(struct delivery *d, size_t *len)
{
	struct alert_conf	*ac = d->route->conf;
	json_t			*p = d->payload, *v;
	char			*to = NULL, *tmp, *body, *msg, date[64];
	char			*subject, *text, *from, *st;
	char			 id[33];
	struct evbuffer		*b;
	unsigned char		 rnd[16];
	const char		*key, *status;
	time_t			 now = time(NULL);
	struct tm		 tm;
	unsigned int		 i;

	for (i = 0; i < ac->nto; i++) {
		xasprintf(&tmp, "%s%s%s", to ? to : "", to ? ", " : "",
		    ac->to[i]);
		free(to);
		to = tmp;
	}
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	RAND_bytes(rnd, sizeof rnd);
	for (i = 0; i < sizeof rnd; i++)
		snprintf(id + 2 * i, 3, "%02x", rnd[i]);
	if ((b = evbuffer_new()) == NULL)
		fatalx("alert: out of memory");
	body_add(b, alert_payload_text(p));
	evbuffer_add(b, "\r\n\r\n", 4);
	json_object_foreach(p, key, v) {
		if (!json_is_string(v) || strcmp(key, "message") == 0)
			continue;
		evbuffer_add_printf(b, "%-10s ", key);
		body_add(b, json_string_value(v));
		evbuffer_add(b, "\r\n", 2);
	}
	evbuffer_add(b, "", 1);
	body = (char *)evbuffer_pullup(b, -1);
	status = json_string_value(json_object_get(p, "status"));
	xasprintf(&tmp, "%s %s", ac->subject_prefix, alert_payload_text(p));
	text = header_text(tmp);
	free(tmp);
	subject = subject_header(text);
	free(text);
	from = header_text(ac->from);
	tmp = header_text(to);
	free(to);
	to = tmp;
	st = header_text(status);
	*len = (size_t)xasprintf(&msg,
	    "Date: %s\r\n"
	    "From: %s\r\n"
	    "To: %s\r\n"
	    "%s"
	    "Message-ID: <%s@%s>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "X-Opsd-Status: %s\r\n"
	    "\r\n"
	    "%s", date, from, to, subject, id, d->set->host, st, body);
	free(from);
	free(to);
	free(subject);
	free(st);
	evbuffer_free(b);
	return (msg);
}

static void	delivery_attempt(struct delivery *);

/* Queued: the wait is over; under way: the next attempt. */
static void
delivery_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delivery	*d = arg;
	char		 why[128];

	(void)fd;
	(void)what;
	if (d->running) {
		delivery_attempt(d);
		return;
	}
	snprintf(why, sizeof why, "not sent within %llums, the time the "
	    "route takes to give up on a message", (unsigned long long)
	    ((now_usec() - d->queued_usec) / 1000));
	alert_delivery_drop(d, why);
}

/* Records without a MESSAGE_ID of their own, with the fields below. */
static const struct evt_type EVT_ALERT_SENT = {
	"alert.sent", NULL, LOG_INFO };
static const struct evt_type EVT_ALERT_RETRY = {
	"alert.retry", NULL, LOG_WARNING };

/* What every delivery record says: the route and what the alert is of. */
static void
delivery_fields(struct evt *ev, struct delivery *d)
{
	const char	*status;

	evt_add(ev, "route", "%s", d->route->conf->name);
	evt_add(ev, "attempt", "%u", d->attempt);
	if (d->source != NULL) {
		evt_add(ev, "type", "%s", d->source);
		evt_add(ev, "name", "%s", d->object);
	}
	status = json_string_value(json_object_get(d->payload, "status"));
	if (status != NULL)
		evt_add(ev, "status", "%s", status);
}

static void
delivery_done(CURL *easy, CURLcode code, void *arg)
{
	struct delivery	*d = arg;
	struct evt	*ev;
	struct timeval	 tv;
	json_t		*res;
	uint64_t	 delay;
	long		 status = 0;
	char		 why[CURL_ERROR_SIZE + 64];

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (code == CURLE_OK && (d->route->conf->type == ALERT_EMAIL ||
	    (status >= 200 && status < 300))) {
		d->route->sent_ok++;
		ev = evt_new(&EVT_ALERT_SENT);
		delivery_fields(ev, d);
		evt_emit(ev, "alert sent through %s (attempt %u): %s",
		    d->route->conf->name, d->attempt,
		    alert_payload_text(d->payload));
		if (d->waiter != NULL) {
			res = jobject();
			json_object_set_new(res, "route",
			    util_jstring(d->route->conf->name));
			json_object_set_new(res, "delivered", json_true());
			json_object_set_new(res, "attempts",
			    json_integer(d->attempt));
			rpc_pending_reply(d->waiter, res);
		}
		d->waiter = NULL;
		alert_delivery_free(d);
		return;
	}
	if (code != CURLE_OK)
		snprintf(why, sizeof why, "%s", d->errbuf[0] ? d->errbuf :
		    curl_easy_strerror(code));
	else
		snprintf(why, sizeof why, "HTTP status %ld", status);
	if (d->attempt < d->max_attempts && !d->set->opsd->stopping) {
		delay = d->route->conf->retry_delay << (d->attempt - 1);
		if (delay > RETRY_DELAY_MAX)
			delay = RETRY_DELAY_MAX;
		ev = evt_new(&EVT_ALERT_RETRY);
		delivery_fields(ev, d);
		evt_add(ev, "error", "%s", why);
		evt_emit(ev, "alert through %s failed (attempt %u of %u): %s; "
		    "retrying in %llums", d->route->conf->name, d->attempt,
		    d->max_attempts, why, (unsigned long long)delay);
		tv.tv_sec = (time_t)(delay / 1000);
		tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
		evtimer_add(d->timer, &tv);
		return;
	}
	d->route->sent_failed++;
	ev = evt_new(&EVT_ALERT_FAILED);
	evt_add(ev, "route", "%s", d->route->conf->name);
	evt_add(ev, "attempts", "%u", d->attempt);
	if (d->source != NULL) {	/* what the alert is about */
		evt_add(ev, "type", "%s", d->source);
		evt_add(ev, "name", "%s", d->object);
	}
	evt_add(ev, "error", "%s", why);
	evt_add(ev, "alert", "%s", alert_payload_text(d->payload));
	evt_emit(ev, "alert through %s not delivered after %u attempt%s: %s",
	    d->route->conf->name, d->attempt, d->attempt == 1 ? "" : "s", why);
	if (d->waiter != NULL) {
		res = jobject();
		json_object_set_new(res, "route", util_jstring(d->route->conf->name));
		json_object_set_new(res, "attempts", json_integer(d->attempt));
		rpc_pending_fail(d->waiter, -EIO, res,
		    "delivery through %s failed: %s", d->route->conf->name,
		    why);
	}
	d->waiter = NULL;
	alert_delivery_free(d);
}

/*
 * One line: the value goes into a header or the SMTP login, where a line
 * break would start a header of its own.
 */
static int
read_secret_file(struct route *rt, const char *path, char *buf, size_t len)
{
	int	r, loose;

	if ((r = secretfile_read(path, buf, len, SECRETFILE_ONE_LINE,
	    &loose)) != 0)
		return (r);
	if (loose && !rt->secret_warned)
		evt_log_about(LOG_WARNING, "alert.secret", "route",
		    rt->conf->name, "alert %s: %s is readable or writable by "
		    "group or other", rt->conf->name, path);
	rt->secret_warned = loose;
	return (0);
}

static int
delivery_setup(struct delivery *d)
{
	struct alert_conf	*ac = d->route->conf;
	CURL			*e = d->easy;
	char			 secret[1024], *hdr, *colon;
	unsigned int		 i;
	int			 r;

	http_easy_defaults(e);
	curl_easy_setopt(e, CURLOPT_URL, ac->url);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->errbuf);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ac->timeout);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, (long)ac->tls_verify);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, ac->tls_verify ? 2L : 0L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
	if (ac->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, ac->ca_file);

	if (ac->type == ALERT_WEBHOOK) {
		d->headers = curl_slist_append(d->headers,
		    "Content-Type: application/json");
		if (ac->bearer_token_file != NULL) {
			if ((r = read_secret_file(d->route,
			    ac->bearer_token_file, secret, sizeof secret)) != 0)
				return (r);
			xasprintf(&hdr, "Authorization: Bearer %s", secret);
			d->headers = curl_slist_append(d->headers, hdr);
			explicit_bzero(hdr, strlen(hdr));
			free(hdr);
			explicit_bzero(secret, sizeof secret);
		}
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)d->bodylen);
		return (0);
	}
	/* email: STARTTLS when the server offers it (smtps: TLS from the start) */
	curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
	curl_easy_setopt(e, CURLOPT_MAIL_FROM, ac->from);
	for (i = 0; i < ac->nto; i++)
		d->rcpt = curl_slist_append(d->rcpt, ac->to[i]);
	curl_easy_setopt(e, CURLOPT_MAIL_RCPT, d->rcpt);
	curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(e, CURLOPT_READFUNCTION, smtp_read_cb);
	curl_easy_setopt(e, CURLOPT_READDATA, d);
	if (ac->credentials_file != NULL) {
		if ((r = read_secret_file(d->route,
		    ac->credentials_file, secret, sizeof secret)) != 0)
			return (r);
		if ((colon = strchr(secret, ':')) == NULL) {
			explicit_bzero(secret, sizeof secret);
			return (-EINVAL);
		}
		*colon = '\0';
		curl_easy_setopt(e, CURLOPT_USERNAME, secret);
		curl_easy_setopt(e, CURLOPT_PASSWORD, colon + 1);
		explicit_bzero(secret, sizeof secret);
	}
	return (0);
}

static void
delivery_attempt(struct delivery *d)
{
	struct evt	*ev;
	int		 r = -ENOMEM;

	d->attempt++;
	d->bodyoff = 0;
	d->errbuf[0] = '\0';
	if (d->easy != NULL) {
		curl_easy_cleanup(d->easy);
		curl_slist_free_all(d->headers);
		curl_slist_free_all(d->rcpt);
		d->headers = d->rcpt = NULL;
	}
	if ((d->easy = http_easy_create()) == NULL)
		r = -errno;
	if (d->easy == NULL || (r = delivery_setup(d)) != 0 ||
	    (r = http_start(d->set->opsd, d->easy, delivery_done, d)) != 0) {
		d->route->sent_failed++;
		ev = evt_new(&EVT_ALERT_FAILED);
		evt_add(ev, "route", "%s", d->route->conf->name);
		evt_add(ev, "error", "cannot prepare the request: %s",
		    strerror(r < 0 ? -r : EIO));
		evt_emit(ev, "alert through %s not sent: cannot prepare the "
		    "request (%s)", d->route->conf->name, r == -ELIBACC ?
		    "libcurl is not there" :
		    "credentials file unreadable or malformed?");
		if (d->waiter != NULL)
			rpc_pending_fail(d->waiter, -EIO, NULL,
			    "cannot prepare the request for %s: %s",
			    d->route->conf->name, strerror(r < 0 ? -r : EIO));
		d->waiter = NULL;
		alert_delivery_free(d);
	}
}

static int
render_body(struct delivery *d)
{
	struct route	*route = d->route;
	json_t		*slack;

	if (route->conf->type == ALERT_EMAIL) {
		d->body = email_render(d, &d->bodylen);
		return (0);
	}
	if (route->conf->format == ALERT_FORMAT_SLACK) {
		slack = jobject();
		json_object_set_new(slack, "text",
		    util_jstring(alert_payload_text(d->payload)));
	} else
		slack = json_incref(d->payload);
	if ((d->body = json_dumps(slack, JSON_COMPACT)) == NULL) {
		/* say that there was an alert rather than nothing */
		evt_log_about(LOG_ERR, "alert.render", "route",
		    route->conf->name, "alert through %s: cannot render the "
		    "message as JSON; sending a notice instead",
		    route->conf->name);
		d->body = xstrdup(route->conf->format == ALERT_FORMAT_SLACK ?
		    "{\"text\":\"opsd: an alert could not be rendered; see "
		    "the daemon's log\"}" : "{\"source\":\"opsd\","
		    "\"status\":\"unknown\",\"message\":\"opsd: an alert "
		    "could not be rendered; see the daemon's log\"}");
	}
	json_decref(slack);
	d->bodylen = strlen(d->body);
	return (0);
}

/* How long a message may wait: what the route takes to give up on one. */
static uint64_t
route_max_wait(const struct route *r)
{
	return ((r->conf->retries + 1) * r->conf->timeout);
}

static void
delivery_start(struct delivery *d)
{
	d->running = 1;
	d->route->queued--;
	d->route->inflight++;
	evtimer_del(d->timer);
	render_body(d);
	delivery_attempt(d);
}

void
alert_delivery_drop(struct delivery *d, const char *why)
{
	struct evt	*ev;
	const char	*status;

	d->route->dropped++;
	status = json_string_value(json_object_get(d->payload, "status"));
	ev = evt_new(&EVT_ALERT_DROPPED);
	evt_add(ev, "route", "%s", d->route->conf->name);
	if (d->source != NULL) {
		evt_add(ev, "type", "%s", d->source);
		evt_add(ev, "name", "%s", d->object);
	}
	evt_add(ev, "status", "%s", status != NULL ? status : "");
	evt_add(ev, "waited_ms", "%llu", (unsigned long long)
	    ((now_usec() - d->queued_usec) / 1000));
	evt_add(ev, "replaced", "%u", d->merged);
	evt_add(ev, "error", "%s", why);
	evt_add(ev, "alert", "%s", alert_payload_text(d->payload));
	evt_emit(ev, "alert through %s dropped: %s", d->route->conf->name,
	    why);
	if (d->waiter != NULL)
		rpc_pending_fail(d->waiter, -EIO, NULL,
		    "alert through %s dropped: %s", d->route->conf->name, why);
	d->waiter = NULL;
	alert_delivery_free(d);
}

static int
same_alert(const struct delivery *a, const struct delivery *b)
{
	return (a->route == b->route && a->source != NULL &&
	    b->source != NULL && strcmp(a->source, b->source) == 0 &&
	    strcmp(a->object, b->object) == 0);
}

/*
 * Starts what the slots allow, oldest first, never two deliveries of one
 * alert at once (they could arrive in the wrong order).
 */
void
alert_pump_cb(evutil_socket_t fd, short what, void *arg)
{
	struct alert_set	*set = arg;
	struct delivery		*d, *next, *o;
	int			 busy;

	(void)fd;
	(void)what;
	for (d = TAILQ_FIRST(&set->deliveries); d != NULL; d = next) {
		next = TAILQ_NEXT(d, entry);
		if (d->running || d->route->inflight >= ROUTE_INFLIGHT)
			continue;
		busy = 0;
		TAILQ_FOREACH(o, &set->deliveries, entry) {
			if (o->running && same_alert(o, d))
				busy = 1;
		}
		if (busy)
			continue;
		delivery_start(d);
		/* a start that failed at once freed d: read next again */
		next = TAILQ_FIRST(&set->deliveries);
	}
}

/*
 * Queues a message for route. source and object name the alert, so that
 * a newer message replaces one still waiting; NULL for one that stands
 * alone (alert.test, whose caller waits for it).
 */
void
alert_deliver(struct alert_set *set, struct route *route, json_t *payload,
    struct rpc_pending *waiter, unsigned int attempts, const char *source,
    const char *object)
{
	struct delivery	*d, *o;
	struct timeval	 tv;
	uint64_t	 wait;

	d = xcalloc(1, sizeof *d);
	d->set = set;
	d->route = route;
	if (source != NULL) {
		d->source = xstrdup(source);
		d->object = xstrdup(object);
	}
	TAILQ_FOREACH(o, &set->deliveries, entry) {
		if (!o->running && same_alert(o, d)) {
			/* the latest state is what the receiver needs */
			json_decref(o->payload);
			o->payload = json_incref(payload);
			o->max_attempts = attempts;
			o->merged++;
			free(d->source);
			free(d->object);
			free(d);
			return;
		}
	}
	route->refs++;
	route->queued++;
	d->payload = json_incref(payload);
	d->waiter = waiter;
	d->max_attempts = attempts;
	d->queued_usec = now_usec();
	d->timer = evtimer_new(set->opsd->base, delivery_timer_cb, d);
	TAILQ_INSERT_TAIL(&set->deliveries, d, entry);
	set->ndeliveries++;
	wait = route_max_wait(route);
	tv.tv_sec = (time_t)(wait / 1000);
	tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
	evtimer_add(d->timer, &tv);
	if (route->queued > ROUTE_QUEUED) {
		TAILQ_FOREACH(o, &set->deliveries, entry) {
			if (!o->running && o->route == route)
				break;
		}
		alert_delivery_drop(o, "too many messages waiting for the route");
	}
	alert_pump_soon(set);
}
