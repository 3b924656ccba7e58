/*
 * tls probes: a TLS handshake with host:port (SNI from servername), then
 * a look at the served certificate: days to expiry, subject, issuer and
 * whether the chain verifies for the name. The handshake runs with
 * verification recorded but not enforced, so an untrusted or expired
 * certificate is reported with its details instead of a bare handshake
 * error; the probe fails if it does not verify (unless tls_verify = no) or
 * expires within warn_days.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "daemon.h"
#include "opsd-parse.h"
#include "probe.h"
#include "util.h"

struct tls_probe {
	SSL_CTX			*ctx;
	struct bufferevent	*bev;
	struct event		*timer;
};

static void
tls_cleanup_run(struct probe *p)
{
	struct tls_probe	*t = p->kstate;

	if (t == NULL)
		return;
	if (t->bev != NULL) {
		bufferevent_free(t->bev);	/* frees the SSL too */
		t->bev = NULL;
	}
	if (t->timer != NULL)
		evtimer_del(t->timer);
}

static void
tls_free(struct probe *p)
{
	struct tls_probe	*t = p->kstate;

	if (t == NULL)
		return;
	tls_cleanup_run(p);
	if (t->timer != NULL)
		event_free(t->timer);
	SSL_CTX_free(t->ctx);
	free(t);
	p->kstate = NULL;
}

static void
tls_finish(struct probe *p, struct probe_result *r)
{
	tls_cleanup_run(p);
	probe_done(p, r);
}

static void
name_oneline(X509_NAME *name, char *buf, size_t len)
{
	BIO	*bio = BIO_new(BIO_s_mem());
	int	 n;

	buf[0] = '\0';
	if (bio == NULL)
		return;
	X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE);
	n = BIO_read(bio, buf, (int)len - 1);
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(bio);
}

static void
tls_inspect(struct probe *p, SSL *ssl, struct probe_result *r)
{
	X509		*cert;
	struct tm	 tm;
	long		 vr;
	double		 days;

	if ((cert = SSL_get1_peer_certificate(ssl)) == NULL) {
		probe_fail(r, "server sent no certificate");
		return;
	}
	/* the same form curl reports for https probes: "CN = example" */
	name_oneline(X509_get_subject_name(cert), r->cert_subject,
	    sizeof r->cert_subject);
	name_oneline(X509_get_issuer_name(cert), r->cert_issuer,
	    sizeof r->cert_issuer);
	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
		r->cert_not_after = (int64_t)timegm(&tm);
	X509_free(cert);

	vr = SSL_get_verify_result(ssl);
	r->cert_verified = vr == X509_V_OK;
	days = (double)(r->cert_not_after - time(NULL)) / 86400.0;
	r->ok = 1;
	if (!r->cert_verified && p->conf->tls_verify)
		probe_fail(r, "certificate does not verify for %s: %s",
		    p->conf->servername, X509_verify_cert_error_string(vr));
	else if (days < 0)
		probe_fail(r, "certificate expired %.1f days ago", -days);
	else if (days < (double)p->conf->warn_days)
		probe_fail(r, "certificate expires in %.1f days (warn_days "
		    "%llu)", days, (unsigned long long)p->conf->warn_days);
	else
		snprintf(r->reason, sizeof r->reason, "certificate valid for "
		    "%.0f more days", days);
}

static void
tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct probe		*p = arg;
	struct probe_result	 r;
	unsigned long		 e;
	int			 dnserr;
	char			 buf[256];

	memset(&r, 0, sizeof r);
	if (what & BEV_EVENT_CONNECTED) {
		tls_inspect(p, bufferevent_openssl_get_ssl(bev), &r);
		tls_finish(p, &r);
		return;
	}
	if ((dnserr = bufferevent_socket_get_dns_error(bev)) != 0)
		probe_fail(&r, "DNS: cannot resolve %s: %s", p->conf->host,
		    evutil_gai_strerror(dnserr));
	else if ((e = bufferevent_get_openssl_error(bev)) != 0 &&
	    ERR_GET_LIB(e) != 0) {
		/*
		 * A library error. libevent reports a failed read or write
		 * on the socket (connection refused, reset) as the bare
		 * SSL_ERROR_SYSCALL code, library 0: that is errno's case.
		 */
		ERR_error_string_n(e, buf, sizeof buf);
		probe_fail(&r, "TLS handshake with %s failed: %s",
		    p->conf->address, buf);
	} else if (EVUTIL_SOCKET_ERROR() != 0 && !(what & BEV_EVENT_EOF))
		probe_fail(&r, "connect to %s failed: %s", p->conf->address,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		probe_fail(&r, "connection to %s closed during the TLS "
		    "handshake", p->conf->address);
	tls_finish(p, &r);
}

static void
tls_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe		*p = arg;
	struct probe_result	 r;
	char			 t[32];

	(void)fd;
	(void)what;
	memset(&r, 0, sizeof r);
	format_duration(p->conf->timeout, t, sizeof t);
	probe_fail(&r, "timeout after %s", t);
	tls_finish(p, &r);
}

static int
tls_start(struct probe *p)
{
	struct tls_probe	*t = p->kstate;
	struct timeval		 tv;
	SSL			*ssl;

	if (t == NULL) {
		t = p->kstate = xcalloc(1, sizeof *t);
		if ((t->ctx = SSL_CTX_new(TLS_client_method())) == NULL)
			return (-ENOMEM);
		if (p->conf->ca_file != NULL)
			SSL_CTX_load_verify_locations(t->ctx,
			    p->conf->ca_file, NULL);
		else
			SSL_CTX_set_default_verify_paths(t->ctx);
		/* record the verdict, do not abort: we want the details */
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
		t->timer = evtimer_new(p->opsd->base, tls_timeout_cb, p);
	}
	if ((ssl = SSL_new(t->ctx)) == NULL)
		return (-ENOMEM);
	SSL_set_tlsext_host_name(ssl, p->conf->servername);
	SSL_set1_host(ssl, p->conf->servername);
	t->bev = bufferevent_openssl_socket_new(p->opsd->base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (t->bev == NULL) {
		SSL_free(ssl);
		return (-ENOMEM);
	}
	bufferevent_setcb(t->bev, NULL, NULL, tls_event_cb, p);
	tv.tv_sec = (time_t)(p->conf->timeout / 1000);
	tv.tv_usec = (suseconds_t)(p->conf->timeout % 1000) * 1000;
	evtimer_add(t->timer, &tv);
	bufferevent_socket_connect_hostname(t->bev, p->opsd->dns, AF_UNSPEC,
	    p->conf->host, p->conf->port);
	return (0);
}

const struct probe_ops probe_tls_ops = {
	"tls", tls_start, tls_cleanup_run, tls_free, NULL
};
