/*
 * opsd-cli tls check: a local stand-in for SSL Labs, run on the loop.
 * Every protocol version is probed at once, each on its own connections:
 * a handshake limited to that version (at OpenSSL security level 0, so
 * the old ones can still be spoken where the library has them) tells
 * whether it is offered; then the suite the server chose is taken out of
 * the offer and the handshake repeated until none is left, which lists
 * the accepted suites in the server's order. Alongside, one connection
 * with the library's defaults fetches "/" (and a path that does not
 * exist, for the headers of an error response) and one plain connection
 * to the HTTP port checks the redirect. cert-rate.c turns the facts into
 * the grade. No step blocks: each is a handshake on a non-blocking
 * socket (cert-served.c), all bounded by one deadline.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert-int.h"
#include "daemon.h"
#include "util.h"

#define ROUNDS_MAX	64		/* suites per version */
#define HEAD_MAX	(32 * 1024)

static const char *const tls13_suites[] = {
	"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
	"TLS_AES_128_GCM_SHA256", "TLS_AES_128_CCM_SHA256",
	"TLS_AES_128_CCM_8_SHA256", NULL
};
static const int tlsv_codes[TLSV_N] = {
	SSL3_VERSION, TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION,
	TLS1_3_VERSION
};

struct grade_run;

struct vprobe {
	struct grade_run	*g;
	int			 v;
	struct served		*s;
	char			 excluded[4096];	/* ":!A:!B" */
	unsigned int		 rounds;
	unsigned long		 tls13_used;		/* bits of tls13_suites */
};

struct grade_run {
	struct opsd		*opsd;
	struct cert_endpoint	 ep;
	char			*ca_file;
	uint64_t		 timeout_ms;
	int			 http_port;
	struct grade_facts	 f;
	struct vprobe		 vp[TLSV_N];
	struct served		*http[2];		/* "/" and a 404 */
	struct bufferevent	*hbev[2];
	struct bufferevent	*plain;			/* port 80 */
	struct event		*deadline;
	unsigned int		 pending;
	uint64_t		 t0;
	int			 cert_from;		/* version it came from */
	grade_done_cb		 done;
	void			*arg;
};

static void	vprobe_next(struct vprobe *);
static void	grade_end(struct grade_run *);

static void
settle(struct grade_run *g)
{
	if (--g->pending == 0)
		grade_end(g);
}

/* --- the certificate --------------------------------------------------- */

static void
inspect_cert(struct grade_run *g, SSL *ssl, int v)
{
	struct grade_facts	*f = &g->f;
	struct cert_info	 ci;
	X509			*leaf;
	STACK_OF(X509)		*chain;
	X509_STORE		*store;
	X509_STORE_CTX		*ctx;
	AUTHORITY_INFO_ACCESS	*aia;
	int			 err;
	const char		*name = f->servername[0] ? f->servername :
				    g->ep.host;

	if (f->have_cert && g->cert_from >= v)
		return;
	if ((leaf = SSL_get1_peer_certificate(ssl)) == NULL)
		return;
	g->cert_from = v;
	f->have_cert = 1;
	cert_info_x509(leaf, &ci);
	snprintf(f->key_type, sizeof f->key_type, "%s", ci.key_type);
	f->key_bits = ci.key_bits;
	snprintf(f->sig_alg, sizeof f->sig_alg, "%s", ci.sig_alg);
	f->not_after = ci.not_after;
	f->self_signed = ci.self_signed;
	chain = SSL_get_peer_cert_chain(ssl);
	f->chain_len = chain != NULL ? sk_X509_num(chain) : 1;
	f->name_ok = strspn(name, "0123456789.:abcdefABCDEF") == strlen(name) &&
	    strchr(name, '.') == NULL ? X509_check_ip_asc(leaf, name, 0) == 1 :
	    X509_check_host(leaf, name, 0, 0, NULL) == 1 ||
	    X509_check_ip_asc(leaf, name, 0) == 1;
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	if (store != NULL && ctx != NULL) {
		if (g->ca_file != NULL)
			X509_STORE_load_file(store, g->ca_file);
		else
			X509_STORE_set_default_paths(store);
		X509_STORE_CTX_init(ctx, store, leaf, chain);
		f->verify_ok = X509_verify_cert(ctx) == 1;
		err = X509_STORE_CTX_get_error(ctx);
		snprintf(f->verify_msg, sizeof f->verify_msg, "%s",
		    f->verify_ok ? "ok" : X509_verify_cert_error_string(err));
		/*
		 * The leaf alone, its issuer unknown, but it names where its
		 * issuer is (AIA caIssuers): an intermediate the server
		 * forgot, which browsers may fetch and other clients do not.
		 */
		aia = X509_get_ext_d2i(leaf, NID_info_access, NULL, NULL);
		if (!f->verify_ok && (err ==
		    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || err ==
		    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT) && f->chain_len <= 1 &&
		    aia != NULL)
			f->incomplete_chain = 1;
		AUTHORITY_INFO_ACCESS_free(aia);
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(leaf);
	ERR_clear_error();
}

/* --- one version --------------------------------------------------------- */

static int
local_refusal(unsigned long e)
{
	int	r = ERR_GET_REASON(e);

	/*
	 * Only what this library refuses before it sends a byte; a server
	 * that answers with an older version (unsupported protocol) or an
	 * alert does not offer it.
	 */
	return (r == SSL_R_NO_PROTOCOLS_AVAILABLE || r ==
	    SSL_R_NO_CIPHERS_AVAILABLE);
}

static void
vprobe_done(struct served *s, SSL *ssl, const char *error,
    unsigned long sslerr, void *arg)
{
	struct vprobe		*vp = arg;
	struct grade_run	*g = vp->g;
	struct grade_cipher	*gc;
	const SSL_CIPHER	*c;
	const unsigned char	*ocsp;
	int			 kx, i;
	size_t			 n;

	(void)s;
	vp->s = NULL;
	if (ssl == NULL) {
		if (vp->rounds == 0) {
			if (sslerr != 0 && local_refusal(sslerr) &&
			    ERR_GET_LIB(sslerr) == ERR_LIB_SSL &&
			    strstr(error, "alert") == NULL)
				g->f.offered[vp->v] = OFFER_UNTESTABLE;
			else if (sslerr != 0 || strstr(error, "closed") != NULL)
				g->f.offered[vp->v] = OFFER_NO;
			else {
				g->f.offered[vp->v] = OFFER_NO;
				if (g->f.error[0] == '\0')
					snprintf(g->f.error, sizeof g->f.error,
					    "%s", error);
			}
		}
		settle(g);
		return;
	}
	g->f.offered[vp->v] = OFFER_YES;
	if (vp->rounds == 0) {
		inspect_cert(g, ssl, vp->v);
		if (vp->v <= TLSV_12)
			g->f.secure_reneg = g->f.secure_reneg == 0 ? 0 :
			    SSL_get_secure_renegotiation_support(ssl) ? 1 : 0;
		if (SSL_get_tlsext_status_ocsp_resp(ssl, &ocsp) > 0)
			g->f.ocsp_stapled = 1;
	}
	vp->rounds++;
	if ((c = SSL_get_current_cipher(ssl)) != NULL &&
	    g->f.nciphers < GRADE_CIPHERS_MAX) {
		gc = &g->f.ciphers[g->f.nciphers++];
		snprintf(gc->name, sizeof gc->name, "%s", SSL_CIPHER_get_name(c));
		gc->version = vp->v;
		gc->bits = SSL_CIPHER_get_bits(c, NULL);
		kx = SSL_CIPHER_get_kx_nid(c);
		gc->fs = kx == NID_kx_ecdhe || kx == NID_kx_dhe || kx ==
		    NID_kx_any || kx == NID_kx_ecdhe_psk || kx == NID_kx_dhe_psk;
		gc->aead = SSL_CIPHER_is_aead(c);
		if (vp->v == TLSV_13) {
			for (i = 0; tls13_suites[i] != NULL; i++)
				if (strcmp(tls13_suites[i],
				    SSL_CIPHER_get_name(c)) == 0)
					vp->tls13_used |= 1UL << i;
		} else {
			n = strlen(vp->excluded);
			snprintf(vp->excluded + n, sizeof vp->excluded - n,
			    ":!%s", SSL_CIPHER_get_name(c));
			if (strlen(vp->excluded) >= sizeof vp->excluded - 1)
				vp->rounds = ROUNDS_MAX;
		}
	}
	if (vp->rounds >= ROUNDS_MAX) {
		settle(g);
		return;
	}
	vprobe_next(vp);
}

static void
vprobe_next(struct vprobe *vp)
{
	struct grade_run	*g = vp->g;
	SSL_CTX			*ctx;
	char			 list[4352], suites[256];
	size_t			 o = 0;
	int			 i, ok;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		g->f.offered[vp->v] = OFFER_UNTESTABLE;
		settle(g);
		return;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp);
	ok = SSL_CTX_set_min_proto_version(ctx, tlsv_codes[vp->v]) == 1 &&
	    SSL_CTX_set_max_proto_version(ctx, tlsv_codes[vp->v]) == 1;
	if (ok && vp->v == TLSV_13) {
		suites[0] = '\0';
		for (i = 0; tls13_suites[i] != NULL; i++)
			if (!(vp->tls13_used & (1UL << i)))
				o += (size_t)snprintf(suites + o, sizeof suites - o,
				    "%s%s", o ? ":" : "", tls13_suites[i]);
		if (o == 0) {
			SSL_CTX_free(ctx);
			settle(g);
			return;
		}
		ok = SSL_CTX_set_ciphersuites(ctx, suites) == 1;
	} else if (ok) {
		snprintf(list, sizeof list, "ALL:COMPLEMENTOFALL%s:@SECLEVEL=0",
		    vp->excluded);
		if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
			/* every suite this library has was accepted */
			SSL_CTX_free(ctx);
			ERR_clear_error();
			if (vp->rounds == 0)
				g->f.offered[vp->v] = OFFER_UNTESTABLE;
			settle(g);
			return;
		}
	}
	if (!ok) {
		SSL_CTX_free(ctx);
		ERR_clear_error();
		g->f.offered[vp->v] = OFFER_UNTESTABLE;
		settle(g);
		return;
	}
	vp->s = cert_served_tls(g->opsd, &g->ep, g->f.servername[0] ?
	    g->f.servername : NULL, g->timeout_ms, ctx, vprobe_done, vp);
	SSL_CTX_free(ctx);
	if (vp->s == NULL) {
		if (vp->rounds == 0)
			g->f.offered[vp->v] = OFFER_UNTESTABLE;
		settle(g);
	}
}

/* --- HTTP ------------------------------------------------------------------ */

static int
hname(const char *line, size_t len, const char *name, const char **value,
    size_t *vlen)
{
	size_t	n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return (0);
	line += n + 1;
	len -= n + 1;
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\r'))
		len--;
	*value = line;
	*vlen = len;
	return (1);
}

static int
has_token(const char *v, size_t len, const char *tok)
{
	size_t	n = strlen(tok), i;

	for (i = 0; i + n <= len; i++)
		if (strncasecmp(v + i, tok, n) == 0 && (i == 0 ||
		    !isalnum((unsigned char)v[i - 1])) && (i + n == len ||
		    !isalnum((unsigned char)v[i + n]) || v[i + n] == '-'))
			return (1);
	return (0);
}

void
cert_grade_headers(const char *head, size_t len, int error_response,
    struct grade_facts *f)
{
	const char	*p = head, *end = head + len, *nl, *v;
	size_t		 ll, vl, i;
	char		 buf[256];
	int		 first = 1;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		ll = (size_t)((nl != NULL ? nl : end) - p);
		if (first) {
			first = 0;
			p += ll + 1;
			continue;
		}
		if (ll == 0 || (ll == 1 && p[0] == '\r'))
			break;
		if (hname(p, ll, "Strict-Transport-Security", &v, &vl)) {
			if (error_response)
				f->hsts_on_error = 1;
			else {
				const char	*m;

				f->hsts = 1;
				f->hsts_sub = has_token(v, vl,
				    "includeSubDomains");
				f->hsts_preload = has_token(v, vl, "preload");
				snprintf(buf, sizeof buf, "%.*s", (int)(vl <
				    sizeof buf ? vl : sizeof buf - 1), v);
				for (i = 0; buf[i]; i++)
					buf[i] = (char)tolower((unsigned char)buf[i]);
				if ((m = strstr(buf, "max-age")) != NULL) {
					m += 7;
					while (*m == ' ' || *m == '=' || *m == '"')
						m++;
					f->hsts_max_age = strtoll(m, NULL, 10);
					if (f->hsts_max_age < 0)
						f->hsts_max_age = 0;
				}
			}
		} else if (error_response) {
			/* only HSTS is looked at on an error */
		} else if (hname(p, ll, "X-Content-Type-Options", &v, &vl))
			f->nosniff = vl == 7 && strncasecmp(v, "nosniff", 7) == 0;
		else if (hname(p, ll, "X-Frame-Options", &v, &vl))
			f->frame_ok |= (vl == 4 && strncasecmp(v, "DENY", 4) ==
			    0) || (vl == 10 && strncasecmp(v, "SAMEORIGIN", 10) ==
			    0);
		else if (hname(p, ll, "Content-Security-Policy", &v, &vl)) {
			f->csp = vl > 0;
			if (has_token(v, vl, "frame-ancestors"))
				f->frame_ok = 1;
		} else if (hname(p, ll, "Referrer-Policy", &v, &vl)) {
			snprintf(f->referrer, sizeof f->referrer, "%.*s",
			    (int)(vl < sizeof f->referrer ? vl :
			    sizeof f->referrer - 1), v);
			/* unsafe-url and no-referrer-when-downgrade leak */
			f->referrer_ok = vl > 0 && !has_token(v, vl,
			    "unsafe-url") && !has_token(v, vl,
			    "no-referrer-when-downgrade");
		} else if (hname(p, ll, "Permissions-Policy", &v, &vl))
			f->permissions = vl > 0;
		else if (hname(p, ll, "Server", &v, &vl) ||
		    hname(p, ll, "X-Powered-By", &v, &vl)) {
			/* a version number is what helps an attacker */
			if (memchr(v, '/', vl) != NULL || strncasecmp(p, "X-P",
			    3) == 0)
				snprintf(f->server_banner, sizeof f->server_banner,
				    "%.*s: %.*s", (int)(strchr(p, ':') - p), p,
				    (int)(vl < 96 ? vl : 96), v);
		} else if (hname(p, ll, "Set-Cookie", &v, &vl)) {
			if (!has_token(v, vl, "Secure") || !has_token(v, vl,
			    "HttpOnly"))
				f->insecure_cookies++;
		}
		p += ll + 1;
	}
	/* printable only: the banner reaches terminals */
	for (i = 0; f->server_banner[i] != '\0'; i++)
		if ((unsigned char)f->server_banner[i] < 0x20 ||
		    f->server_banner[i] == 0x7f)
			f->server_banner[i] = '?';
	for (i = 0; f->referrer[i] != '\0'; i++)
		if ((unsigned char)f->referrer[i] < 0x20 ||
		    f->referrer[i] == 0x7f)
			f->referrer[i] = '?';
}

static int
head_complete(struct evbuffer *in)
{
	struct evbuffer_ptr	p;

	p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	return (p.pos >= 0 || evbuffer_get_length(in) >= HEAD_MAX);
}

static void
http_finish(struct grade_run *g, int i)
{
	struct evbuffer	*in;
	size_t		 len;
	char		*head;

	if (g->hbev[i] == NULL)
		return;
	in = bufferevent_get_input(g->hbev[i]);
	len = evbuffer_get_length(in);
	if (len > HEAD_MAX)
		len = HEAD_MAX;
	head = xmalloc(len + 1);
	evbuffer_copyout(in, head, len);
	head[len] = '\0';
	if (len > 0) {
		if (i == 1)
			g->f.error_checked = 1;
		cert_grade_headers(head, len, i == 1, &g->f);
	}
	free(head);
	cert_served_cancel(g->http[i]);
	g->http[i] = NULL;
	g->hbev[i] = NULL;
	settle(g);
}

static void
http_read_cb(struct bufferevent *bev, void *arg)
{
	struct grade_run	*g = arg;
	int			 i = bev == g->hbev[0] ? 0 : 1;

	if (head_complete(bufferevent_get_input(bev)))
		http_finish(g, i);
}

static void
http_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct grade_run	*g = arg;

	(void)what;
	http_finish(g, bev == g->hbev[0] ? 0 : 1);
}

static void
http_done(struct served *s, SSL *ssl, const char *error, unsigned long e,
    void *arg)
{
	struct grade_run	*g = arg;
	struct bufferevent	*bev;
	int			 i = s == g->http[0] ? 0 : 1;
	const char		*host = g->f.servername[0] ? g->f.servername :
				    g->ep.host;

	(void)error;
	(void)e;
	if (ssl == NULL) {
		g->http[i] = NULL;
		settle(g);
		return;
	}
	bev = cert_served_take(s);
	g->hbev[i] = bev;
	bufferevent_setcb(bev, http_read_cb, NULL, http_event_cb, g);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	evbuffer_add_printf(bufferevent_get_output(bev), "GET %s HTTP/1.1\r\n"
	    "Host: %s\r\nUser-Agent: opsd-tls-check\r\nAccept: */*\r\n"
	    "Connection: close\r\n\r\n", i == 0 ? "/" :
	    "/.opsd-tls-check-no-such-page", host);
}

static void
plain_read_cb(struct bufferevent *bev, void *arg)
{
	struct grade_run	*g = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*head, want[300], *loc, *e;
	size_t			 len;
	int			 status = 0;
	const char		*host = g->f.servername[0] ? g->f.servername :
				    g->ep.host;

	if (!head_complete(in))
		return;
	len = evbuffer_get_length(in);
	if (len > HEAD_MAX)
		len = HEAD_MAX;
	head = xmalloc(len + 1);
	evbuffer_copyout(in, head, len);
	head[len] = '\0';
	sscanf(head, "HTTP/%*s %d", &status);
	g->f.redirect_checked = 1;
	snprintf(want, sizeof want, "https://%s", host);
	loc = strcasestr(head, "\nLocation:");
	if (loc != NULL) {
		loc += 10;
		while (*loc == ' ')
			loc++;
		if ((e = strpbrk(loc, "\r\n")) != NULL)
			*e = '\0';
	}
	if ((status == 301 || status == 302 || status == 307 || status ==
	    308) && loc != NULL && strncasecmp(loc, want, strlen(want)) == 0 &&
	    (loc[strlen(want)] == '/' || loc[strlen(want)] == ':' ||
	    loc[strlen(want)] == '\0'))
		g->f.redirect_ok = 1;
	else
		snprintf(g->f.redirect_note, sizeof g->f.redirect_note,
		    "http://%.100s:%d/ answered %d%s%.100s", host, g->http_port,
		    status, loc != NULL ? " to " : " without a Location",
		    loc != NULL ? loc : "");
	free(head);
	bufferevent_free(g->plain);
	g->plain = NULL;
	settle(g);
}

static void
plain_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct grade_run	*g = arg;

	if (what & BEV_EVENT_CONNECTED) {
		evbuffer_add_printf(bufferevent_get_output(bev), "GET / "
		    "HTTP/1.1\r\nHost: %s\r\nUser-Agent: opsd-tls-check\r\n"
		    "Connection: close\r\n\r\n", g->f.servername[0] ?
		    g->f.servername : g->ep.host);
		bufferevent_enable(bev, EV_READ);
		return;
	}
	if (what & BEV_EVENT_EOF && evbuffer_get_length(
	    bufferevent_get_input(bev)) > 0) {
		plain_read_cb(bev, arg);
		return;
	}
	/* nothing listens on the HTTP port: no plain-text site, no finding */
	bufferevent_free(g->plain);
	g->plain = NULL;
	settle(g);
}

/* --- the run --------------------------------------------------------------- */

static void
grade_free(struct grade_run *g)
{
	int	i;

	for (i = 0; i < TLSV_N; i++)
		if (g->vp[i].s != NULL)
			cert_served_cancel(g->vp[i].s);
	for (i = 0; i < 2; i++)
		if (g->http[i] != NULL)
			cert_served_cancel(g->http[i]);
	if (g->plain != NULL)
		bufferevent_free(g->plain);
	if (g->deadline != NULL)
		event_free(g->deadline);
	free(g->ca_file);
	free(g);
}

/* The newest protocol first, each in the order the server chose. */
static int
cipher_cmp(const void *a, const void *b)
{
	const struct grade_cipher *x = a, *y = b;

	if (x->version != y->version)
		return (y->version - x->version);
	return (x->order - y->order);
}

static void
grade_end(struct grade_run *g)
{
	struct grade_result	*r = xcalloc(1, sizeof *r);
	double			 secs;
	unsigned int		 i;

	for (i = 0; i < g->f.nciphers; i++)
		g->f.ciphers[i].order = (int)i;
	qsort(g->f.ciphers, g->f.nciphers, sizeof g->f.ciphers[0], cipher_cmp);

	g->f.now = (int64_t)time(NULL);
	if (g->f.secure_reneg < 0)
		g->f.secure_reneg = 1;	/* TLS 1.3 only: not applicable */
	cert_grade_rate(&g->f, r);
	secs = (double)(now_usec() - g->t0) / 1e6;
	g->done(&g->ep, &g->f, r, secs, g->arg);
	free(r);
	grade_free(g);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grade_run	*g = arg;

	(void)fd;
	(void)what;
	/* what has not answered by now counts as not offered */
	g->pending = 1;
	settle(g);
}

void
cert_grade_cancel(struct grade_run *g)
{
	if (g != NULL)
		grade_free(g);
}

int
cert_grade_start(struct opsd *o, const char *target, const char *servername,
    const char *ca_file, int starttls_pg, int http_port, uint64_t timeout_ms,
    grade_done_cb done, void *arg, struct grade_run **gp, char *err,
    size_t errlen)
{
	struct grade_run	*g;
	struct timeval		 tv;
	SSL_CTX			*ctx;
	char			 t[300];
	int			 i;

	g = xcalloc(1, sizeof *g);
	snprintf(t, sizeof t, "%s%s", starttls_pg ? "postgres://" : "", target);
	if (cert_endpoint_parse(t, &g->ep, err, errlen) != 0) {
		free(g);
		return (-EINVAL);
	}
	if (servername != NULL)
		snprintf(g->f.servername, sizeof g->f.servername, "%s",
		    servername);
	else if (strspn(g->ep.host, "0123456789.") != strlen(g->ep.host) &&
	    strchr(g->ep.host, ':') == NULL)
		snprintf(g->f.servername, sizeof g->f.servername, "%s",
		    g->ep.host);
	g->opsd = o;
	g->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
	g->timeout_ms = timeout_ms;
	g->http_port = http_port;
	g->done = done;
	g->arg = arg;
	g->t0 = now_usec();
	g->cert_from = -1;
	g->f.secure_reneg = -1;
	g->f.https = !starttls_pg;
	g->pending = 1;		/* released below, once all started */
	for (i = 0; i < TLSV_N; i++) {
		g->vp[i].g = g;
		g->vp[i].v = i;
		g->pending++;
		vprobe_next(&g->vp[i]);
	}
	if (g->f.https && (ctx = SSL_CTX_new(TLS_client_method())) != NULL) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		for (i = 0; i < 2; i++) {
			g->pending++;
			g->http[i] = cert_served_tls(o, &g->ep, g->f.servername[0]
			    ? g->f.servername : NULL, timeout_ms, ctx, http_done,
			    g);
			if (g->http[i] == NULL)
				g->pending--;
		}
		SSL_CTX_free(ctx);
	}
	if (g->f.https && http_port > 0 && (g->plain = bufferevent_socket_new(
	    o->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)) !=
	    NULL) {
		g->pending++;
		bufferevent_setcb(g->plain, plain_read_cb, NULL, plain_event_cb,
		    g);
		bufferevent_socket_connect_hostname(g->plain, o->dns, AF_UNSPEC,
		    g->ep.host, http_port);
	}
	g->deadline = evtimer_new(o->base, deadline_cb, g);
	tv.tv_sec = (time_t)((timeout_ms * 3) / 1000);
	tv.tv_usec = (suseconds_t)((timeout_ms * 3) % 1000) * 1000;
	evtimer_add(g->deadline, &tv);
	if (gp != NULL)
		*gp = g;
	settle(g);
	return (0);
}

json_t *
cert_grade_json(const struct cert_endpoint *ep, const struct grade_facts *f,
    const struct grade_result *r, double secs)
{
	json_t		*j, *protos, *ciphers, *findings, *cert, *http;
	char		 when[64];
	unsigned int	 i;
	int		 v;
	static const char *const offer_words[] = {
		"unknown", "no", "yes", "could not test"
	};

	protos = json_object();
	for (v = 0; v < TLSV_N; v++)
		json_object_set_new(protos, cert_tlsv_names[v],
		    json_string(offer_words[f->offered[v]]));
	ciphers = json_array();
	for (i = 0; i < f->nciphers; i++)
		json_array_append_new(ciphers, json_pack("{s:s, s:s, s:i, s:b, "
		    "s:b}", "name", f->ciphers[i].name, "protocol",
		    cert_tlsv_names[f->ciphers[i].version], "bits",
		    f->ciphers[i].bits, "forward_secrecy", f->ciphers[i].fs,
		    "aead", f->ciphers[i].aead));
	findings = json_array();
	for (i = 0; i < r->nfindings; i++)
		json_array_append_new(findings, json_pack("{s:s, s:s, s:s, s:s?}",
		    "severity", r->findings[i].severity, "id", r->findings[i].id,
		    "text", r->findings[i].text, "fix", r->findings[i].fix[0] ?
		    r->findings[i].fix : NULL));
	cert = json_null();
	if (f->have_cert) {
		util_iso_time(f->not_after, when, sizeof when);
		cert = json_pack("{s:s, s:i, s:s, s:s, s:f, s:i, s:b, s:s, s:b, "
		    "s:b, s:b}", "key_type", f->key_type, "key_bits",
		    f->key_bits, "signature", f->sig_alg, "not_after", when,
		    "days_left", (double)(f->not_after - f->now) / 86400.0,
		    "chain_length", f->chain_len, "trusted", f->verify_ok,
		    "verify", f->verify_msg, "name_matches", f->name_ok,
		    "self_signed", f->self_signed, "incomplete_chain",
		    f->incomplete_chain);
	}
	http = json_null();
	if (f->https)
		http = json_pack("{s:b, s:I, s:b, s:b, s:b, s:b, s:b, s:b, s:s, "
		    "s:b, s:s, s:i, s:b, s:b}", "hsts", f->hsts, "hsts_max_age",
		    (json_int_t)f->hsts_max_age, "hsts_include_subdomains",
		    f->hsts_sub, "hsts_preload", f->hsts_preload,
		    "hsts_on_error", f->hsts_on_error, "nosniff", f->nosniff,
		    "frame_protection", f->frame_ok, "csp", f->csp,
		    "referrer_policy", f->referrer, "permissions_policy",
		    f->permissions, "banner", f->server_banner,
		    "insecure_cookies", f->insecure_cookies, "redirect_checked",
		    f->redirect_checked, "redirect_ok", f->redirect_ok);
	j = json_pack("{s:s, s:s, s:s, s:i, s:{s:i, s:i, s:i}, s:o, s:o, s:o, "
	    "s:o, s:b, s:b, s:o, s:f}", "target", ep->text, "servername",
	    f->servername, "grade", r->grade, "score", r->score, "scores",
	    "protocol", r->proto_score, "key_exchange", r->kx_score, "cipher",
	    r->cipher_score, "protocols", protos, "ciphers", ciphers,
	    "certificate", cert, "http", http, "secure_renegotiation",
	    f->secure_reneg == 1, "ocsp_stapling", f->ocsp_stapled, "findings",
	    findings, "elapsed_seconds", secs);
	return (j);
}
