/*
 * The certificate an endpoint serves, fetched the way probe-tls does it:
 * a non-blocking connect and handshake through bufferevent_openssl on the
 * loop, never a blocking call. PostgreSQL speaks TLS only after its
 * SSLRequest packet (8 bytes: length 8, code 80877103) is answered with
 * 'S'; the handshake then runs as a filter over the plain connection.
 * Verification is recorded nowhere: the point is to compare the served
 * leaf's SHA-256 and serial with the file's, whatever its trust.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cert-int.h"
#include "daemon.h"
#include "util.h"

struct served {
	struct opsd		*opsd;
	struct cert_endpoint	 ep;
	char			 servername[256];
	SSL_CTX			*ctx;
	struct bufferevent	*bev;
	struct event		*timer;
	served_tls_cb		 tls_cb;
	served_cb		 cb;		/* cert_served_start's */
	void			*arg;
	int			 starttls;	/* SSLRequest sent, no answer */
	int			 taken;		/* the caller has the bev */
	int			 answered;	/* a definite answer: no TLS */
	unsigned long		 sslerr;
};

static void
served_free(struct served *s)
{
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->timer != NULL)
		event_free(s->timer);
	SSL_CTX_free(s->ctx);
	free(s);
}

static void
served_end(struct served *s, SSL *ssl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
served_end(struct served *s, SSL *ssl, const char *fmt, ...)
{
	char	buf[CERT_ERROR_MAX];
	va_list	ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(buf, sizeof buf, fmt, ap);
		va_end(ap);
	}
	evtimer_del(s->timer);
	s->tls_cb(s, ssl, fmt != NULL ? buf : NULL, s->sslerr, s->arg);
	if (!s->taken)
		served_free(s);
}

struct bufferevent *
cert_served_take(struct served *s)
{
	s->taken = 1;
	return (s->bev);
}

/* cert_served_start's end: the leaf's facts */
static void
leaf_cb(struct served *s, SSL *ssl, const char *error, unsigned long sslerr,
    void *arg)
{
	struct cert_info	 ci;
	X509			*x;

	(void)sslerr;
	if (ssl == NULL) {
		s->cb(s, NULL, error, s->answered, arg);
		return;
	}
	if ((x = SSL_get1_peer_certificate(ssl)) == NULL) {
		char	buf[CERT_ERROR_MAX];

		snprintf(buf, sizeof buf, "%s sent no certificate", s->ep.text);
		s->cb(s, NULL, buf, 1, arg);
		return;
	}
	cert_info_x509(x, &ci);
	X509_free(x);
	s->cb(s, &ci, NULL, 1, arg);
}

static void
served_failed(struct served *s, struct bufferevent *bev, short what)
{
	unsigned long	e;
	int		dnserr;
	char		buf[256];

	if ((dnserr = bufferevent_socket_get_dns_error(bev)) != 0)
		served_end(s, NULL, "cannot resolve %s: %s", s->ep.host,
		    evutil_gai_strerror(dnserr));
	else if ((e = bufferevent_get_openssl_error(bev)) != 0 &&
	    ERR_GET_LIB(e) != 0) {
		s->sslerr = e;
		ERR_error_string_n(e, buf, sizeof buf);
		served_end(s, NULL, "TLS handshake with %s failed: %s",
		    s->ep.text, buf);
	} else if (EVUTIL_SOCKET_ERROR() != 0 && !(what & BEV_EVENT_EOF))
		served_end(s, NULL, "connect to %s failed: %s", s->ep.text,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		served_end(s, NULL, "%s closed the connection during the TLS "
		    "handshake", s->ep.text);
	ERR_clear_error();
}

static void
tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct served		*s = arg;

	if (!(what & BEV_EVENT_CONNECTED)) {
		served_failed(s, bev, what);
		return;
	}
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	served_end(s, bufferevent_openssl_get_ssl(bev), NULL);
}

static SSL *
served_ssl(struct served *s)
{
	SSL	*ssl;

	if ((ssl = SSL_new(s->ctx)) == NULL)
		return (NULL);
	/* SNI is a host name, never an address (RFC 6066) */
	if (s->servername[0] != '\0')
		SSL_set_tlsext_host_name(ssl, s->servername);
	return (ssl);
}

static void
pg_read_cb(struct bufferevent *bev, void *arg)
{
	struct served		*s = arg;
	struct bufferevent	*tls;
	SSL			*ssl;
	char			 c;

	if (!s->starttls || bufferevent_read(bev, &c, 1) != 1)
		return;
	s->starttls = 0;
	if (c != 'S') {
		s->answered = 1;
		served_end(s, NULL, "%s answered the SSLRequest with '%c': "
		    "the server does not offer TLS (ssl = off)", s->ep.text,
		    c == 'N' ? 'N' : '?');
		return;
	}
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		/* bytes before the handshake: CVE-2021-23222's injection */
		served_end(s, NULL, "%s sent data after 'S' before the TLS "
		    "handshake", s->ep.text);
		return;
	}
	if ((ssl = served_ssl(s)) == NULL) {
		served_end(s, NULL, "out of memory");
		return;
	}
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	tls = bufferevent_openssl_filter_new(s->opsd->base, bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (tls == NULL) {
		SSL_free(ssl);
		served_end(s, NULL, "out of memory");
		return;
	}
	s->bev = tls;		/* owns the plain one now */
	bufferevent_setcb(tls, NULL, NULL, tls_event_cb, s);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
}

static void
pg_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct served		*s = arg;
	static const unsigned char sslrequest[8] = {
		0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f	/* 1234 5679 */
	};

	if (what & BEV_EVENT_CONNECTED) {
		s->starttls = 1;
		bufferevent_write(bev, sslrequest, sizeof sslrequest);
		bufferevent_enable(bev, EV_READ);
		return;
	}
	served_failed(s, bev, what);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct served	*s = arg;

	(void)fd;
	(void)what;
	served_end(s, NULL, "no TLS handshake with %s within the timeout",
	    s->ep.text);
}

struct served *
cert_served_start(struct opsd *o, const struct cert_endpoint *ep,
    const char *servername, uint64_t timeout_ms, served_cb cb, void *arg)
{
	struct served	*s;
	SSL_CTX		*ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		ERR_clear_error();
		return (NULL);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	s = cert_served_tls(o, ep, servername, timeout_ms, ctx, leaf_cb, arg);
	SSL_CTX_free(ctx);
	if (s != NULL)
		s->cb = cb;
	return (s);
}

struct served *
cert_served_tls(struct opsd *o, const struct cert_endpoint *ep,
    const char *servername, uint64_t timeout_ms, struct ssl_ctx_st *ctx,
    served_tls_cb cb, void *arg)
{
	struct served	*s;
	struct timeval	 tv;
	SSL		*ssl;

	s = xcalloc(1, sizeof *s);
	s->opsd = o;
	s->ep = *ep;
	s->tls_cb = cb;
	s->arg = arg;
	if (servername != NULL)
		snprintf(s->servername, sizeof s->servername, "%s", servername);
	else if (strspn(ep->host, "0123456789.") != strlen(ep->host) &&
	    strchr(ep->host, ':') == NULL)
		snprintf(s->servername, sizeof s->servername, "%s", ep->host);
	SSL_CTX_up_ref(ctx);
	s->ctx = ctx;
	if (ep->kind == CERT_EP_POSTGRES) {
		s->bev = bufferevent_socket_new(o->base, -1,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (s->bev == NULL)
			goto fail;
		bufferevent_setcb(s->bev, pg_read_cb, NULL, pg_event_cb, s);
	} else {
		if ((ssl = served_ssl(s)) == NULL)
			goto fail;
		s->bev = bufferevent_openssl_socket_new(o->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
		    BEV_OPT_DEFER_CALLBACKS);
		if (s->bev == NULL) {
			SSL_free(ssl);
			goto fail;
		}
		bufferevent_setcb(s->bev, NULL, NULL, tls_event_cb, s);
	}
	s->timer = evtimer_new(o->base, timeout_cb, s);
	tv.tv_sec = (time_t)(timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
	evtimer_add(s->timer, &tv);
	/* a failure here still ends in the event callback, deferred */
	bufferevent_socket_connect_hostname(s->bev, o->dns, AF_UNSPEC,
	    ep->host, atoi(ep->port));
	return (s);
fail:
	ERR_clear_error();
	served_free(s);
	return (NULL);
}

void
cert_served_cancel(struct served *s)
{
	if (s != NULL)
		served_free(s);
}
