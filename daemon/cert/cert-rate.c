/*
 * The grader's verdict, a pure function of what the probes found (the
 * tests and a reader can hold it against the rating guide without a
 * server): SSL Labs' SSL Server Rating Guide (2009r) scores, protocol
 * 30 %, key exchange 30 %, cipher strength 40 %, then its caps. Every
 * finding carries a severity and the fix, in nginx's and PostgreSQL's
 * words.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cert-int.h"

static const int proto_points[TLSV_N] = { 80, 90, 95, 100, 100 };
const char *const cert_tlsv_names[TLSV_N] = {
	"SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"
};

static void
add(struct grade_result *g, const char *sev, const char *id,
    const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
add(struct grade_result *g, const char *sev, const char *id,
    const char *fix, const char *fmt, ...)
{
	struct grade_finding	*f;
	va_list			 ap;

	if (g->nfindings >= GRADE_FINDINGS_MAX)
		return;
	f = &g->findings[g->nfindings++];
	snprintf(f->severity, sizeof f->severity, "%s", sev);
	snprintf(f->id, sizeof f->id, "%s", id);
	snprintf(f->fix, sizeof f->fix, "%s", fix != NULL ? fix : "");
	va_start(ap, fmt);
	vsnprintf(f->text, sizeof f->text, fmt, ap);
	va_end(ap);
	if (strcmp(sev, "info") != 0)
		g->warnings++;
}

/* A cap: the grade is at most cap ("F" < "T"/"M" < "C" < "B" < "A-"). */
static int
rank(const char *grade)
{
	static const char *const order[] = {
		"F", "E", "D", "C", "B", "A-", "A", "A+", NULL
	};
	int	i;

	if (strcmp(grade, "T") == 0 || strcmp(grade, "M") == 0)
		return (-1);
	for (i = 0; order[i] != NULL; i++)
		if (strcmp(order[i], grade) == 0)
			return (i);
	return (0);
}

static void
cap(struct grade_result *g, const char *to)
{
	/* T and M replace any letter except F */
	if (rank(to) < 0) {
		if (strcmp(g->grade, "F") != 0 && rank(g->grade) >= 0)
			snprintf(g->grade, sizeof g->grade, "%s", to);
		return;
	}
	if (rank(g->grade) >= 0 && rank(g->grade) > rank(to))
		snprintf(g->grade, sizeof g->grade, "%s", to);
}

static int
key_points(const struct grade_facts *f)
{
	int	b = f->key_bits;

	if (strcmp(f->key_type, "EC") == 0 || strcmp(f->key_type,
	    "ED25519") == 0 || strcmp(f->key_type, "ED448") == 0) {
		/* RSA-equivalent strength (NIST SP 800-57) */
		b = b >= 384 ? 7680 : b >= 256 ? 3072 : b >= 224 ? 2048 : 1024;
		if (strcmp(f->key_type, "ED448") == 0)
			b = 7680;
	}
	if (b < 512)
		return (20);
	if (b < 1024)
		return (40);
	if (b < 2048)
		return (80);
	if (b < 4096)
		return (90);
	return (100);
}

static int
cipher_points(int bits)
{
	return (bits <= 0 ? 0 : bits < 128 ? 20 : bits < 256 ? 80 : 100);
}

void
cert_grade_rate(const struct grade_facts *f, struct grade_result *g)
{
	unsigned int	 i;
	int		 best = -1, worst = -1, v, cmin = 1000, cmax = -1;
	int		 weak_fs = 0, no_aead = 1, any12 = 0, p, k, c;
	char		 names[256];
	size_t		 o;

	memset(g, 0, sizeof *g);
	snprintf(g->grade, sizeof g->grade, "A");
	for (v = 0; v < TLSV_N; v++)
		if (f->offered[v] == OFFER_YES) {
			if (worst < 0)
				worst = v;
			best = v;
		}
	if (best < 0 || !f->have_cert) {
		snprintf(g->grade, sizeof g->grade, "F");
		add(g, "critical", "no_tls", NULL, "no TLS handshake succeeded: "
		    "%s", f->error[0] ? f->error : "no protocol was accepted");
		return;
	}
	/* --- protocols ---------------------------------------------------- */
	for (v = 0; v < TLSV_N; v++)
		if (f->offered[v] == OFFER_UNTESTABLE)
			add(g, "info", "untestable", NULL, "%s could not be tested: "
			    "the local OpenSSL cannot speak it", cert_tlsv_names[v]);
	if (f->offered[TLSV_SSL3] == OFFER_YES) {
		add(g, "critical", "sslv3", "nginx: ssl_protocols TLSv1.2 TLSv1.3;",
		    "SSLv3 is offered (POODLE)");
		cap(g, "B");
	}
	if (f->offered[TLSV_10] == OFFER_YES || f->offered[TLSV_11] ==
	    OFFER_YES) {
		add(g, "high", "tls10_11", "nginx: ssl_protocols TLSv1.2 TLSv1.3; "
		    "postgresql.conf: ssl_min_protocol_version = 'TLSv1.2'",
		    "%s%s%s offered: deprecated since RFC 8996 (2021)",
		    f->offered[TLSV_10] == OFFER_YES ? "TLS 1.0" : "",
		    f->offered[TLSV_10] == OFFER_YES && f->offered[TLSV_11] ==
		    OFFER_YES ? " and " : "", f->offered[TLSV_11] == OFFER_YES ?
		    "TLS 1.1" : "");
		cap(g, "B");
	}
	if (f->offered[TLSV_12] != OFFER_YES) {
		add(g, "high", "no_tls12", "nginx: ssl_protocols TLSv1.2 TLSv1.3;",
		    "TLS 1.2 is not offered: older clients cannot connect");
		if (f->offered[TLSV_13] != OFFER_YES)
			cap(g, "C");
	}
	if (f->offered[TLSV_13] != OFFER_YES) {
		add(g, "warn", "no_tls13", "nginx: ssl_protocols TLSv1.2 TLSv1.3;",
		    "TLS 1.3 is not offered");
		cap(g, "A-");
	}
	/* --- ciphers ------------------------------------------------------- */
	o = 0;
	names[0] = '\0';
	for (i = 0; i < f->nciphers; i++) {
		const struct grade_cipher *gc = &f->ciphers[i];

		if (gc->bits < cmin)
			cmin = gc->bits;
		if (gc->bits > cmax)
			cmax = gc->bits;
		if (gc->version <= TLSV_12) {
			any12 = 1;
			if (!gc->fs)
				weak_fs = 1;
		}
		if (gc->aead)
			no_aead = 0;
		if (gc->bits < 112 || strstr(gc->name, "EXP") != NULL ||
		    strstr(gc->name, "NULL") != NULL || strstr(gc->name, "RC4")
		    != NULL || strstr(gc->name, "DES-CBC3") != NULL ||
		    strstr(gc->name, "ADH") != NULL || strstr(gc->name,
		    "AECDH") != NULL) {
			if (o < sizeof names)
				o += (size_t)snprintf(names + o, sizeof names - o,
				    "%s%s", o ? " " : "", gc->name);
		}
	}
	if (o > 0) {
		add(g, "critical", "weak_ciphers", "nginx: ssl_ciphers "
		    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
		    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
		    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305; "
		    "(Mozilla intermediate)", "weak, export, anonymous or "
		    "under-112-bit cipher suites are accepted: %s", names);
		cap(g, "F");
	}
	if (any12 && weak_fs) {
		add(g, "high", "no_forward_secrecy", "nginx: ssl_ciphers with "
		    "ECDHE suites only (Mozilla intermediate)", "cipher suites "
		    "without forward secrecy (static RSA key exchange) are "
		    "accepted");
		cap(g, "B");
	}
	if (no_aead && f->nciphers > 0) {
		add(g, "high", "no_aead", "nginx: ssl_ciphers with GCM or "
		    "CHACHA20-POLY1305 suites (Mozilla intermediate)", "no AEAD "
		    "cipher suite is accepted");
		cap(g, "B");
	}
	/* --- the certificate ----------------------------------------------- */
	if ((strcmp(f->key_type, "RSA") == 0 && f->key_bits < 1024) ||
	    (strcmp(f->key_type, "EC") == 0 && f->key_bits < 160)) {
		add(g, "critical", "key_size", NULL, "the %s key has %d bits",
		    f->key_type, f->key_bits);
		cap(g, "F");
	} else if (strcmp(f->key_type, "RSA") == 0 && f->key_bits < 2048) {
		add(g, "high", "key_size", "a new key of 2048 bits or more (or "
		    "EC P-256): openssl genpkey -algorithm EC -pkeyopt "
		    "ec_paramgen_curve:P-256", "the RSA key has only %d bits",
		    f->key_bits);
		cap(g, "B");
	}
	if (strstr(f->sig_alg, "md5") != NULL || strstr(f->sig_alg, "MD5") !=
	    NULL) {
		add(g, "critical", "md5", NULL, "the certificate is signed with "
		    "MD5 (%s)", f->sig_alg);
		cap(g, "F");
	} else if (strstr(f->sig_alg, "sha1") != NULL || strstr(f->sig_alg,
	    "SHA1") != NULL) {
		add(g, "high", "sha1", NULL, "the certificate is signed with "
		    "SHA-1 (%s)", f->sig_alg);
		cap(g, "T");
	}
	if (f->not_after <= f->now) {
		add(g, "critical", "expired", "renew it ([cert] renew, "
		    "opsd-cli cert renew)", "the certificate expired %.1f days "
		    "ago", (double)(f->now - f->not_after) / 86400.0);
		cap(g, "T");
	} else {
		double	days = (double)(f->not_after - f->now) / 86400.0;

		add(g, days < 14 ? "warn" : "info", "expiry", days < 14 ?
		    "renew it ([cert] renew, opsd-cli cert renew)" : NULL,
		    "the certificate expires in %.1f days", days);
	}
	if (f->self_signed) {
		add(g, "high", "self_signed", "a certificate from a CA clients "
		    "trust (Let's Encrypt)", "the certificate is self-signed");
		cap(g, "T");
	} else if (f->incomplete_chain) {
		add(g, "high", "incomplete_chain", "nginx: ssl_certificate "
		    "fullchain.pem (the leaf, then its intermediates)", "the "
		    "chain is incomplete: the server sends no intermediate "
		    "(%s)", f->verify_msg);
		cap(g, "B");
	} else if (!f->verify_ok && f->not_after > f->now) {
		add(g, "high", "untrusted", "a certificate from a CA clients "
		    "trust, with its intermediates (fullchain.pem)", "the "
		    "certificate is not trusted: %s", f->verify_msg);
		cap(g, "T");
	}
	if (!f->name_ok) {
		add(g, "high", "name_mismatch", "a certificate for the name "
		    "clients use (subjectAltName)", "the certificate does not "
		    "cover %s", f->servername[0] ? f->servername : "the host");
		cap(g, "M");
	}
	if (f->offered[TLSV_12] == OFFER_YES || f->offered[TLSV_10] ==
	    OFFER_YES || f->offered[TLSV_11] == OFFER_YES) {
		if (f->secure_reneg == 0)
			add(g, "high", "renegotiation", NULL, "secure "
			    "renegotiation (RFC 5746) is not supported");
	}
	add(g, "info", "ocsp", NULL, "OCSP stapling: %s (information only: "
	    "Let's Encrypt ended OCSP in 2025)", f->ocsp_stapled ? "yes" :
	    "no");
	/* --- HTTP --------------------------------------------------------- */
	if (f->https) {
		if (!f->hsts) {
			add(g, "warn", "no_hsts", "nginx: add_header "
			    "Strict-Transport-Security \"max-age=63072000; "
			    "includeSubDomains\" always;", "no "
			    "Strict-Transport-Security header");
			cap(g, "A-");
		} else if (f->hsts_max_age < 180 * 86400) {
			add(g, "warn", "hsts_short", "nginx: add_header "
			    "Strict-Transport-Security \"max-age=63072000; "
			    "includeSubDomains\" always;", "HSTS max-age is %lld "
			    "seconds, under 180 days", (long long)f->hsts_max_age);
		} else {
			add(g, "info", "hsts", NULL, "HSTS max-age %lld s%s%s",
			    (long long)f->hsts_max_age, f->hsts_sub ?
			    ", includeSubDomains" : "", f->hsts_preload ?
			    ", preload" : "");
			if (!f->hsts_on_error && f->error_checked)
				add(g, "warn", "hsts_not_always", "nginx: "
				    "add_header ... always;", "HSTS is missing "
				    "on an error response (nginx needs 'always')");
		}
		if (!f->nosniff)
			add(g, "warn", "x_content_type_options", "nginx: "
			    "add_header X-Content-Type-Options nosniff always;",
			    "X-Content-Type-Options is not 'nosniff'");
		if (!f->frame_ok)
			add(g, "warn", "x_frame_options", "nginx: add_header "
			    "X-Frame-Options DENY always; (or CSP "
			    "frame-ancestors)", "neither X-Frame-Options DENY/"
			    "SAMEORIGIN nor CSP frame-ancestors");
		if (!f->csp)
			add(g, "warn", "csp", "nginx: add_header "
			    "Content-Security-Policy \"default-src 'self'\" "
			    "always;", "no Content-Security-Policy");
		if (!f->referrer_ok)
			add(g, "warn", "referrer_policy", "nginx: add_header "
			    "Referrer-Policy strict-origin-when-cross-origin "
			    "always;", "Referrer-Policy is missing or leaks "
			    "URLs (%s)", f->referrer[0] ? f->referrer : "none");
		if (!f->permissions)
			add(g, "info", "permissions_policy", "nginx: add_header "
			    "Permissions-Policy \"camera=(), microphone=(), "
			    "geolocation=()\" always;", "no Permissions-Policy");
		if (f->server_banner[0])
			add(g, "warn", "banner", "nginx: server_tokens off;",
			    "the response names its software version: %s",
			    f->server_banner);
		if (f->insecure_cookies > 0)
			add(g, "warn", "cookies", "Set-Cookie with Secure; "
			    "HttpOnly", "%d cookie%s without Secure or HttpOnly",
			    f->insecure_cookies, f->insecure_cookies == 1 ? "" :
			    "s");
		if (f->redirect_checked && !f->redirect_ok)
			add(g, "warn", "no_redirect", "nginx: a server on port "
			    "80 with return 301 https://$host$request_uri;",
			    "http:// does not redirect to https:// in one hop: "
			    "%s", f->redirect_note);
	}
	/* --- the score ------------------------------------------------------ */
	p = (proto_points[best] + proto_points[worst]) / 2;
	k = key_points(f);
	c = f->nciphers > 0 ? (cipher_points(cmax) + cipher_points(cmin)) / 2 :
	    0;
	g->proto_score = p;
	g->kx_score = k;
	g->cipher_score = c;
	g->score = (3 * p + 3 * k + 4 * c) / 10;
	{
		const char *letter = g->score >= 80 ? "A" : g->score >= 65 ?
		    "B" : g->score >= 50 ? "C" : g->score >= 35 ? "D" :
		    g->score >= 20 ? "E" : "F";

		cap(g, letter);
	}
	/* A+: an A with no warning and HSTS for at least six months */
	if (strcmp(g->grade, "A") == 0 && f->https && f->hsts &&
	    f->hsts_max_age >= 180 * 86400 && g->warnings == 0)
		snprintf(g->grade, sizeof g->grade, "A+");
}

int
cert_grade_rank(const char *grade)
{
	return (rank(grade));
}
