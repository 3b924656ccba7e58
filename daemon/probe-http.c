/*
 * http probes: one curl easy handle per probe, kept between runs so the
 * connection to the target is reused (keep-alive) and a run costs one
 * request, not a TCP and TLS handshake. Redirects are not followed unless
 * asked: a 301 from a health endpoint is usually a misconfiguration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "http.h"
#include "opsd-parse.h"
#include "probe.h"
#include "util.h"

#define BODY_MAX	(64 * 1024)

struct http_probe {
	CURL			*easy;
	CURLU			*url;		/* parsed once, not at each run */
	struct curl_slist	*headers;
	char			 errbuf[CURL_ERROR_SIZE];
	char			*body;
	size_t			 bodylen;
	unsigned char		*hdr_seen;	/* per expect_header */
	char			 hdr_bad[192];
	/*
	 * The certificate of the kept-alive connection: curl reports it
	 * only on the run that made the handshake.
	 */
	int64_t			 cert_not_after;
	char			 cert_subject[256];
	char			 cert_issuer[256];
};

static size_t
http_body_cb(char *data, size_t size, size_t n, void *arg)
{
	struct probe		*p = arg;
	struct http_probe	*h = p->kstate;
	size_t			 len = size * n, keep;

	if (p->conf->expect_body == NULL)
		return (len);
	keep = BODY_MAX - h->bodylen;
	if (keep > len)
		keep = len;
	memcpy(h->body + h->bodylen, data, keep);
	h->bodylen += keep;
	h->body[h->bodylen] = '\0';
	return (len);
}

static size_t
http_header_cb(char *data, size_t size, size_t n, void *arg)
{
	struct probe		*p = arg;
	struct http_probe	*h = p->kstate;
	size_t			 len = size * n, nlen, want;
	unsigned int		 i;
	const char		*spec, *colon, *v, *vend;

	/* a new status line: headers of a redirect or a 100 are not ours */
	if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
		memset(h->hdr_seen, 0, p->conf->nexpect_header);
		h->hdr_bad[0] = '\0';
		return (len);
	}
	for (i = 0; i < p->conf->nexpect_header; i++) {
		spec = p->conf->expect_header[i];
		colon = strchr(spec, ':');
		nlen = colon ? (size_t)(colon - spec) : strlen(spec);
		if (len <= nlen || data[nlen] != ':' ||
		    strncasecmp(data, spec, nlen) != 0)
			continue;
		if (colon == NULL) {
			h->hdr_seen[i] = 1;
			continue;
		}
		for (v = data + nlen + 1; v < data + len && (*v == ' ' ||
		    *v == '\t'); v++)
			;
		for (vend = data + len; vend > v && (vend[-1] == '\r' ||
		    vend[-1] == '\n' || vend[-1] == ' '); vend--)
			;
		for (colon++; *colon == ' '; colon++)
			;
		want = strlen(colon);
		if ((size_t)(vend - v) == want && strncmp(v, colon, want) == 0)
			h->hdr_seen[i] = 1;
		else
			snprintf(h->hdr_bad, sizeof h->hdr_bad, "header %.*s "
			    "is '%.*s', expected '%s'", (int)nlen, spec,
			    (int)(vend - v > 64 ? 64 : vend - v), v, colon);
	}
	return (len);
}

/* curl's own text says which step failed; name the class first. */
static void
http_fail_reason(struct probe *p, CURLcode code, struct probe_result *r)
{
	struct http_probe	*h = p->kstate;
	const char		*what = h->errbuf[0] ? h->errbuf :
				    curl_easy_strerror(code);
	char			 t[32];

	switch (code) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		probe_fail(r, "DNS: %s", what);
		break;
	case CURLE_COULDNT_CONNECT:
		probe_fail(r, "connect failed: %s", what);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		format_duration(p->conf->timeout, t, sizeof t);
		probe_fail(r, "timeout after %s: %s", t, what);
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_INVALIDCERTSTATUS:
		probe_fail(r, "TLS error: %s", what);
		break;
	case CURLE_TOO_MANY_REDIRECTS:
		probe_fail(r, "too many redirects: %s", what);
		break;
	default:
		probe_fail(r, "%s", what);
		break;
	}
}

static int
status_ok(const struct probe_conf *pc, long status)
{
	unsigned int	i;

	for (i = 0; i < pc->nstatus; i++) {
		if (status >= pc->status[i].lo && status <= pc->status[i].hi)
			return (1);
	}
	return (0);
}

/* "Expire date: Jan  1 00:00:00 2027 GMT" from CURLINFO_CERTINFO */
static void
http_certinfo(CURL *easy, struct probe_result *r)
{
	struct curl_certinfo	*ci = NULL;
	struct curl_slist	*s;
	struct tm		 tm;

	if (curl_easy_getinfo(easy, CURLINFO_CERTINFO, &ci) != CURLE_OK ||
	    ci == NULL || ci->num_of_certs < 1)
		return;
	for (s = ci->certinfo[0]; s != NULL; s = s->next) {
		if (strncmp(s->data, "Expire date:", 12) == 0) {
			memset(&tm, 0, sizeof tm);
			if (strptime(s->data + 12, " %b %d %H:%M:%S %Y GMT",
			    &tm) != NULL)
				r->cert_not_after = (int64_t)timegm(&tm);
		} else if (strncmp(s->data, "Subject:", 8) == 0)
			snprintf(r->cert_subject, sizeof r->cert_subject, "%s",
			    s->data + 8);
		else if (strncmp(s->data, "Issuer:", 7) == 0)
			snprintf(r->cert_issuer, sizeof r->cert_issuer, "%s",
			    s->data + 7);
	}
}

static void
http_done(CURL *easy, CURLcode code, void *arg)
{
	struct probe		*p = arg;
	struct http_probe	*h = p->kstate;
	struct probe_result	 r;
	curl_off_t		 total = 0;
	long			 status = 0;
	unsigned int		 i;
	char			*scheme = NULL;

	memset(&r, 0, sizeof r);
	r.ok = 1;
	curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total);
	r.latency_ms = (double)total / 1000.0;
	if (code != CURLE_OK) {
		http_fail_reason(p, code, &r);
		probe_done(p, &r);
		return;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	r.http_status = (int)status;
	curl_easy_getinfo(easy, CURLINFO_SCHEME, &scheme);
	if (scheme != NULL && strcasecmp(scheme, "https") == 0) {
		http_certinfo(easy, &r);
		if (r.cert_not_after != 0) {		/* a new handshake */
			h->cert_not_after = r.cert_not_after;
			memcpy(h->cert_subject, r.cert_subject,
			    sizeof h->cert_subject);
			memcpy(h->cert_issuer, r.cert_issuer,
			    sizeof h->cert_issuer);
		} else {		/* a reused connection: same certificate */
			r.cert_not_after = h->cert_not_after;
			memcpy(r.cert_subject, h->cert_subject,
			    sizeof r.cert_subject);
			memcpy(r.cert_issuer, h->cert_issuer,
			    sizeof r.cert_issuer);
		}
		r.cert_verified = p->conf->tls_verify;
	}
	if (!status_ok(p->conf, status))
		probe_fail(&r, "unexpected status %ld (expected %s)", status,
		    p->conf->expect_status);
	else if (p->conf->expect_body != NULL &&
	    (h->body == NULL || strstr(h->body, p->conf->expect_body) == NULL))
		probe_fail(&r, "body does not contain '%.64s'",
		    p->conf->expect_body);
	else {
		for (i = 0; i < p->conf->nexpect_header; i++) {
			if (h->hdr_seen[i])
				continue;
			if (h->hdr_bad[0] != '\0')
				probe_fail(&r, "%s", h->hdr_bad);
			else
				probe_fail(&r, "response header '%.*s' missing",
				    (int)strcspn(p->conf->expect_header[i],
				    ":"), p->conf->expect_header[i]);
			break;
		}
	}
	if (r.ok)
		snprintf(r.reason, sizeof r.reason, "HTTP %ld", status);
	probe_done(p, &r);
}

static void
http_setup(struct probe *p, struct http_probe *h)
{
	const struct probe_conf	*pc = p->conf;
	CURL			*e = h->easy;
	char			*hdr;

	http_easy_defaults(e);
	/* the URL was validated with the config: it parses */
	h->url = curl_url();
	if (curl_url_set(h->url, CURLUPART_URL, pc->url, 0) == CURLUE_OK)
		curl_easy_setopt(e, CURLOPT_CURLU, h->url);
	else
		curl_easy_setopt(e, CURLOPT_URL, pc->url);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_body_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, p);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)pc->timeout);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, (long)pc->follow_redirects);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, (long)pc->tls_verify);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, pc->tls_verify ? 2L : 0L);
	if (pc->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, pc->ca_file);
	if (strncasecmp(pc->url, "https:", 6) == 0)
		curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
	if (strcmp(pc->method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(pc->method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, pc->method);
	/*
	 * No "Accept" of our own: curl sends the same default, and a custom
	 * header list is scanned by every request curl builds.
	 */
	if (pc->host_header != NULL) {
		xasprintf(&hdr, "Host: %s", pc->host_header);
		h->headers = curl_slist_append(h->headers, hdr);
		free(hdr);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
	}
}

static int
http_start_probe(struct probe *p)
{
	struct http_probe	*h = p->kstate;

	if (h == NULL) {
		h = p->kstate = xcalloc(1, sizeof *h);
		if ((h->easy = curl_easy_init()) == NULL)
			return (-ENOMEM);
		h->hdr_seen = xcalloc(p->conf->nexpect_header + 1, 1);
		if (p->conf->expect_body != NULL)
			h->body = xmalloc(BODY_MAX + 1);
		http_setup(p, h);
	}
	h->errbuf[0] = '\0';
	h->bodylen = 0;
	if (h->body != NULL)
		h->body[0] = '\0';
	memset(h->hdr_seen, 0, p->conf->nexpect_header);
	h->hdr_bad[0] = '\0';
	return (http_start(h->easy, http_done, p) == 0 ? 0 : -EIO);
}

static void
http_cancel_probe(struct probe *p)
{
	struct http_probe	*h = p->kstate;

	if (h != NULL)
		http_cancel(h->easy);
}

static void
http_free_probe(struct probe *p)
{
	struct http_probe	*h = p->kstate;

	if (h == NULL)
		return;
	http_cancel(h->easy);
	curl_easy_cleanup(h->easy);
	curl_url_cleanup(h->url);
	curl_slist_free_all(h->headers);
	free(h->body);
	free(h->hdr_seen);
	free(h);
	p->kstate = NULL;
}

const struct probe_ops probe_http_ops = {
	"http", http_start_probe, http_cancel_probe, http_free_probe
};
