/*
 * One HTTP check of a cutover: a slot's health URL (the gate, the
 * watch) or verify_url through nginx. Each is a GET on a connection of
 * its own (a reused one could reach an nginx worker that is going away,
 * or a slot's process that was replaced), on the daemon's curl multi
 * handle: nothing waits on the loop. A check passes with a 2xx status,
 * the version asked for in version_header when there is one, and the
 * body text asked for.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "daemon.h"
#include "deploy-int.h"
#include "http.h"
#include "util.h"

#define BODY_MAX	(64 * 1024)

struct deploy_check {
	struct opsd		*opsd;
	CURL			*easy;
	struct curl_slist	*headers;
	char			*header;	/* "x-version", lower case */
	char			*want;
	char			*body_want;
	char			*body;
	size_t			 bodylen;
	char			 served[DEPLOY_VERSION_MAX + 1];
	int			 have_served;
	int			 served_bad;
	char			 errbuf[CURL_ERROR_SIZE];
	uint64_t		 start;
	deploy_check_cb		 cb;
	void			*arg;
};

static size_t
header_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct deploy_check	*c = arg;
	size_t			 len = size * n, hl, i, j;

	if (c->header == NULL)
		return (len);
	/* a new response (redirect, 100-continue): its own headers */
	if (len > 5 && strncmp(buf, "HTTP/", 5) == 0) {
		c->have_served = c->served_bad = 0;
		c->served[0] = '\0';
		return (len);
	}
	hl = strlen(c->header);
	if (len <= hl || buf[hl] != ':' || strncasecmp(buf, c->header, hl) !=
	    0)
		return (len);
	for (i = hl + 1; i < len && (buf[i] == ' ' || buf[i] == '\t'); i++)
		;
	for (j = len; j > i && isspace((unsigned char)buf[j - 1]); j--)
		;
	c->have_served = 1;
	if (j - i > DEPLOY_VERSION_MAX) {
		c->served_bad = 1;
		return (len);
	}
	memcpy(c->served, buf + i, j - i);
	c->served[j - i] = '\0';
	c->served_bad = !deploy_version_ok(c->served);
	return (len);
}

static size_t
body_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct deploy_check	*c = arg;
	size_t			 len = size * n, keep;

	if (c->body_want == NULL)
		return (len);
	keep = BODY_MAX - c->bodylen;
	if (keep > len)
		keep = len;
	memcpy(c->body + c->bodylen, buf, keep);
	c->bodylen += keep;
	c->body[c->bodylen] = '\0';
	return (len);
}

static void
check_free(struct deploy_check *c)
{
	if (c->easy != NULL)
		curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->headers);
	free(c->header);
	free(c->want);
	free(c->body_want);
	free(c->body);
	free(c);
}

static void
check_done(CURL *easy, CURLcode code, void *arg)
{
	struct deploy_check		*c = arg;
	struct deploy_check_result	 r;
	long				 status = 0;

	memset(&r, 0, sizeof r);
	r.at = (int64_t)time(NULL);
	r.ms = (now_usec() - c->start) / 1000;
	if (code != CURLE_OK) {
		snprintf(r.error, sizeof r.error, "%s", c->errbuf[0] != '\0' ?
		    c->errbuf : curl_easy_strerror(code));
		goto out;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	r.status = status;
	if (c->have_served && !c->served_bad)
		snprintf(r.version, sizeof r.version, "%s", c->served);
	if (status < 200 || status > 299) {
		snprintf(r.error, sizeof r.error, "HTTP status %ld", status);
		goto out;
	}
	if (c->header != NULL && c->want != NULL) {
		if (!c->have_served) {
			snprintf(r.error, sizeof r.error, "no %s header in the "
			    "answer", c->header);
			goto out;
		}
		if (c->served_bad) {
			snprintf(r.error, sizeof r.error, "the %s header is not "
			    "a version", c->header);
			goto out;
		}
		if (strcmp(c->served, c->want) != 0) {
			snprintf(r.error, sizeof r.error, "serves version %s, "
			    "not %s", c->served, c->want);
			goto out;
		}
	}
	if (c->body_want != NULL && strstr(c->body, c->body_want) == NULL) {
		snprintf(r.error, sizeof r.error, "the answer does not "
		    "contain '%s'", c->body_want);
		goto out;
	}
	r.ok = 1;
out:
	c->cb(&r, c->arg);
	check_free(c);
}

struct deploy_check *
deploy_check_start(struct opsd *o, const struct deploy_check_spec *s,
    deploy_check_cb cb, void *arg, char *why, size_t whylen)
{
	struct deploy_check	*c;
	char			*h, *p;

	c = xcalloc(1, sizeof *c);
	c->opsd = o;
	c->cb = cb;
	c->arg = arg;
	if ((c->easy = http_easy_create()) == NULL) {
		snprintf(why, whylen, "cannot make a curl handle: %s",
		    strerror(errno));
		check_free(c);
		return (NULL);
	}
	if (s->version_header != NULL) {
		c->header = xstrdup(s->version_header);
		for (p = c->header; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	if (s->want_version != NULL && s->want_version[0] != '\0')
		c->want = xstrdup(s->want_version);
	if (s->body != NULL) {
		c->body_want = xstrdup(s->body);
		c->body = xmalloc(BODY_MAX + 1);
		c->body[0] = '\0';
	}
	http_easy_defaults(c->easy);
	curl_easy_setopt(c->easy, CURLOPT_URL, s->url);
	curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
	curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)s->timeout_ms);
	curl_easy_setopt(c->easy, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(c->easy, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	if (s->host != NULL) {
		xasprintf(&h, "Host: %s", s->host);
		c->headers = curl_slist_append(NULL, h);
		free(h);
		curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	}
	c->start = now_usec();
	if (http_start(o, c->easy, check_done, c) != 0) {
		snprintf(why, whylen, "cannot start the request to %s", s->url);
		check_free(c);
		return (NULL);
	}
	return (c);
}

void
deploy_check_cancel(struct deploy_check *c)
{
	if (c == NULL)
		return;
	http_cancel(c->easy);
	check_free(c);
}

json_t *
deploy_check_json(const struct deploy_check_result *r)
{
	json_t	*j;

	j = json_pack("{s:I, s:b, s:I}", "at", (json_int_t)r->at, "ok", r->ok,
	    "ms", (json_int_t)r->ms);
	if (j == NULL)
		fatalx("deploy: cannot build a check result");
	if (r->status != 0)
		json_object_set_new(j, "status", json_integer(r->status));
	if (r->version[0] != '\0')
		json_object_set_new(j, "version", json_string(r->version));
	if (!r->ok)
		json_object_set_new(j, "error", json_string(r->error));
	return (j);
}
