/*
 * The TLS grader's verdict (daemon/cert/cert-rate.c) and its reading of
 * HTTP response heads (cert_grade_headers in cert-grade.c): facts in,
 * grade and findings out, held against the rating guide's scores and caps
 * case by case, without a server.
 */
#include <stdio.h>
#include <string.h>

#include "cert-int.h"
#include "tap.h"

#define NOW	1796094000

/* A server that earns A+: TLS 1.2 and 1.3, ECDHE-ECDSA AEAD, HSTS. */
static void
good(struct grade_facts *f)
{
	memset(f, 0, sizeof *f);
	snprintf(f->servername, sizeof f->servername, "example.org");
	f->offered[TLSV_SSL3] = OFFER_UNTESTABLE;
	f->offered[TLSV_10] = OFFER_NO;
	f->offered[TLSV_11] = OFFER_NO;
	f->offered[TLSV_12] = OFFER_YES;
	f->offered[TLSV_13] = OFFER_YES;
	snprintf(f->ciphers[0].name, 64, "TLS_AES_256_GCM_SHA384");
	f->ciphers[0].version = TLSV_13;
	f->ciphers[0].bits = 256;
	f->ciphers[0].fs = f->ciphers[0].aead = 1;
	snprintf(f->ciphers[1].name, 64, "ECDHE-ECDSA-AES128-GCM-SHA256");
	f->ciphers[1].version = TLSV_12;
	f->ciphers[1].bits = 128;
	f->ciphers[1].fs = f->ciphers[1].aead = 1;
	f->nciphers = 2;
	f->have_cert = 1;
	snprintf(f->key_type, sizeof f->key_type, "EC");
	f->key_bits = 256;
	snprintf(f->sig_alg, sizeof f->sig_alg, "ecdsa-with-SHA256");
	f->now = NOW;
	f->not_after = NOW + 60 * 86400;
	f->verify_ok = f->name_ok = 1;
	f->chain_len = 2;
	f->secure_reneg = 1;
	f->https = f->hsts = f->hsts_sub = 1;
	f->hsts_max_age = 63072000;
	f->error_checked = f->hsts_on_error = 1;
	f->nosniff = f->frame_ok = f->csp = f->referrer_ok = 1;
	f->permissions = 1;
	f->redirect_checked = f->redirect_ok = 1;
}

static int
has(const struct grade_result *r, const char *id)
{
	unsigned int	i;

	for (i = 0; i < r->nfindings; i++)
		if (strcmp(r->findings[i].id, id) == 0)
			return (1);
	return (0);
}

static void
test_good_is_a_plus(void)
{
	struct grade_facts	f;
	struct grade_result	r;

	good(&f);
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "A+");
	CHECK_UINT(r.warnings, 0);
	/* protocol (100+100)/2, EC 256 = RSA 3072: 90, cipher (80+100)/2 */
	CHECK_INT(r.proto_score, 100);
	CHECK_INT(r.kx_score, 90);
	CHECK_INT(r.cipher_score, 90);
	CHECK_INT(r.score, 93);
	CHECK(has(&r, "untestable"));
}

static void
test_caps(void)
{
	struct grade_facts	f;
	struct grade_result	r;

	good(&f);
	f.offered[TLSV_10] = OFFER_YES;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "B");
	CHECK(has(&r, "tls10_11"));

	good(&f);
	f.offered[TLSV_13] = OFFER_NO;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "A-");

	good(&f);
	f.hsts = 0;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "A-");
	CHECK(has(&r, "no_hsts"));

	good(&f);
	f.hsts_max_age = 86400;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "A");
	CHECK(has(&r, "hsts_short"));

	good(&f);
	snprintf(f.key_type, sizeof f.key_type, "RSA");
	f.key_bits = 1024;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "B");
	f.key_bits = 512;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "F");

	good(&f);
	f.not_after = NOW - 86400;
	f.verify_ok = 0;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "T");
	CHECK(has(&r, "expired"));

	good(&f);
	f.name_ok = 0;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "M");

	good(&f);
	f.verify_ok = 0;
	f.incomplete_chain = 1;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "B");

	good(&f);
	f.self_signed = 1;
	f.verify_ok = 0;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "T");

	good(&f);
	f.offered[TLSV_12] = OFFER_NO;
	f.offered[TLSV_13] = OFFER_NO;
	f.offered[TLSV_10] = OFFER_YES;
	f.ciphers[0].version = TLSV_10;
	f.ciphers[1].version = TLSV_10;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "C");

	good(&f);
	snprintf(f.ciphers[1].name, 64, "DES-CBC3-SHA");
	f.ciphers[1].bits = 112;
	f.ciphers[1].fs = 0;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "F");
	CHECK(has(&r, "weak_ciphers"));

	good(&f);
	snprintf(f.ciphers[1].name, 64, "AES128-GCM-SHA256");
	f.ciphers[1].fs = 0;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "B");
	CHECK(has(&r, "no_forward_secrecy"));

	good(&f);
	snprintf(f.sig_alg, sizeof f.sig_alg, "md5WithRSAEncryption");
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "F");

	/* a warning alone takes A+ away, not A */
	good(&f);
	f.redirect_ok = 0;
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "A");
	CHECK(has(&r, "no_redirect"));

	/* no handshake at all */
	memset(&f, 0, sizeof f);
	cert_grade_rate(&f, &r);
	CHECK_STR(r.grade, "F");
	CHECK(has(&r, "no_tls"));
}

static void
test_rank(void)
{
	CHECK(cert_grade_rank("A+") > cert_grade_rank("A"));
	CHECK(cert_grade_rank("A") > cert_grade_rank("A-"));
	CHECK(cert_grade_rank("A-") > cert_grade_rank("B"));
	CHECK(cert_grade_rank("F") == 0);
	CHECK(cert_grade_rank("T") < 0 && cert_grade_rank("M") < 0);
}

static void
test_headers(void)
{
	struct grade_facts	f;
	const char		*h =
	    "HTTP/1.1 200 OK\r\n"
	    "Server: nginx/1.22.1\r\n"
	    "strict-transport-security: max-age=\"31536000\"; "
	    "includeSubDomains; preload\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Content-Security-Policy: default-src 'self'; frame-ancestors "
	    "'none'\r\n"
	    "Referrer-Policy: no-referrer-when-downgrade\r\n"
	    "Set-Cookie: a=1; Path=/; HttpOnly\r\n"
	    "Set-Cookie: b=2; Secure; HttpOnly\r\n"
	    "\r\n"
	    "Strict-Transport-Security: max-age=1\r\n";

	memset(&f, 0, sizeof f);
	cert_grade_headers(h, strlen(h), 0, &f);
	CHECK_INT(f.hsts, 1);
	CHECK_INT(f.hsts_max_age, 31536000);
	CHECK_INT(f.hsts_sub, 1);
	CHECK_INT(f.hsts_preload, 1);
	CHECK_INT(f.nosniff, 1);
	CHECK_INT(f.frame_ok, 1);	/* by frame-ancestors */
	CHECK_INT(f.csp, 1);
	CHECK_INT(f.referrer_ok, 0);	/* leaks the URL to http:// */
	CHECK_STR(f.referrer, "no-referrer-when-downgrade");
	CHECK_STR(f.server_banner, "Server: nginx/1.22.1");
	CHECK_INT(f.insecure_cookies, 1);
	CHECK_INT(f.hsts_on_error, 0);

	/* an error response: only HSTS counts */
	memset(&f, 0, sizeof f);
	h = "HTTP/1.1 404 Not Found\r\nStrict-Transport-Security: "
	    "max-age=5\r\nX-Frame-Options: DENY\r\n\r\n";
	cert_grade_headers(h, strlen(h), 1, &f);
	CHECK_INT(f.hsts_on_error, 1);
	CHECK_INT(f.hsts, 0);
	CHECK_INT(f.frame_ok, 0);

	/* no version: no banner; a value that is not nosniff */
	memset(&f, 0, sizeof f);
	h = "HTTP/1.1 200 OK\nServer: nginx\nX-Content-Type-Options: "
	    "nosniffx\nX-Frame-Options: ALLOW-FROM x\n";
	cert_grade_headers(h, strlen(h), 0, &f);
	CHECK_STR(f.server_banner, "");
	CHECK_INT(f.nosniff, 0);
	CHECK_INT(f.frame_ok, 0);
	/* negative and absurd max-age */
	memset(&f, 0, sizeof f);
	h = "HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=-5\r\n\r\n";
	cert_grade_headers(h, strlen(h), 0, &f);
	CHECK_INT(f.hsts_max_age, 0);
	cert_grade_headers("", 0, 0, &f);
}

int
main(void)
{
	RUN(test_good_is_a_plus);
	RUN(test_caps);
	RUN(test_rank);
	RUN(test_headers);
	return (tap_done());
}
