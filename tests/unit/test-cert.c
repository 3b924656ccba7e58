/*
 * The pure part of the certificate room (daemon/cert/cert-x509.c): PEM
 * parsing of what a renew command may write, the key match, chain
 * verification at a fixed time, names covered (wildcards), when a
 * certificate is due for renewal, the served_at endpoint forms, and the
 * state file's parser. The certificates below were made once with the
 * openssl tool (a CA, a leaf with three subjectAltNames and serial 1F2E,
 * a CN-only leaf, a self-signed one), valid from 2026-12-01 for ten
 * years; times are passed in, so nothing here depends on the clock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cert-int.h"
#include "tap.h"

static const char CA_CRT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBeTCCAR6gAwIBAgITbdlHf7uR6b6KFPn0t/ZoBQJJxzAKBggqhkjOPQQDAjAS\n"
    "MRAwDgYDVQQDDAd1bml0IENBMB4XDTI2MTIwMTE2MTgyN1oXDTM2MTEyODE2MTgy\n"
    "N1owEjEQMA4GA1UEAwwHdW5pdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IA\n"
    "BEZAqE69bmqnAOl7Tn+EBWzeXM20JHJ6ojbTo0JznHd6Wn0uWRF7/efjXhO/LQnB\n"
    "os2ml1FaKx/0cMB13j87Hh6jUzBRMB0GA1UdDgQWBBQids5x3srUbrgPsb8380Pv\n"
    "3l5BsjAfBgNVHSMEGDAWgBQids5x3srUbrgPsb8380Pv3l5BsjAPBgNVHRMBAf8E\n"
    "BTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCbs/XrjuKRNvFz+M2DyHXNp+aYxQ6O\n"
    "wEHVHjxGZXWwTQIhALfykXihd7JPCh6dtvaFczQR6eaeCu318Wq8bGwhkwJS\n"
    "-----END CERTIFICATE-----\n";

static const char LEAF_CRT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBkDCCATWgAwIBAgICHy4wCgYIKoZIzj0EAwIwEjEQMA4GA1UEAwwHdW5pdCBD\n"
    "QTAeFw0yNjEyMDExNjE4MjhaFw0zNjExMjgxNjE4MjhaMBQxEjAQBgNVBAMMCWEu\n"
    "ZXhhbXBsZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABIdnJ9ppIH5WmCXvt+Yo\n"
    "KxxnvlDsLBPZJegKbZnDh8nS+ktXG2GHh3QeA7qmFeEycYqPRybnHW0VC9pqis++\n"
    "caCjeTB3MAwGA1UdEwEB/wQCMAAwJwYDVR0RBCAwHoIJYS5leGFtcGxlggsqLmIu\n"
    "ZXhhbXBsZYcEfwAAATAdBgNVHQ4EFgQUUmUX4pF5wuF82+m1VOITSDcSjjgwHwYD\n"
    "VR0jBBgwFoAUInbOcd7K1G64D7G/N/ND795eQbIwCgYIKoZIzj0EAwIDSQAwRgIh\n"
    "AMWfw/BMSl9DTKkSQJRQrvZYl5uyNA0bMHPEtbPzaMQ0AiEAlIALlhNnTOB9xeko\n"
    "8zpdL6bEN7rrsDfwozxuhcMcBtQ=\n"
    "-----END CERTIFICATE-----\n";

static const char LEAF_KEY[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgm3SqXsI1DRvc95K4\n"
    "+SOtt0+xkJKRi4JGN8sDDLwqH0KhRANCAASHZyfaaSB+Vpgl77fmKCscZ75Q7CwT\n"
    "2SXoCm2Zw4fJ0vpLVxthh4d0HgO6phXhMnGKj0cm5x1tFQvaaorPvnGg\n"
    "-----END PRIVATE KEY-----\n";

static const char OTHER_KEY[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0eFNEFv0OKEaX+km\n"
    "sneAvmLMhMB2g70ITta5T3dcpqOhRANCAATHTYWJ1D1qWgZ1T+7YrYaaTPVloSLF\n"
    "fRQBajFq9Y6cAuItU+rZumumppHqBPSf0iqBs+j4azwVHbdaA4qMnGsa\n"
    "-----END PRIVATE KEY-----\n";

static const char CNONLY_CRT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBbDCCARGgAwIBAgIBBzAKBggqhkjOPQQDAjASMRAwDgYDVQQDDAd1bml0IENB\n"
    "MB4XDTI2MTIwMTE2MTgyOFoXDTM2MTEyODE2MTgyOFowGjEYMBYGA1UEAwwPY24t\n"
    "b25seS5leGFtcGxlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEx02FidQ9aloG\n"
    "dU/u2K2Gmkz1ZaEixX0UAWoxavWOnALiLVPq2bprpqaR6gT0n9IqgbPo+Gs8FR23\n"
    "WgOKjJxrGqNQME4wDAYDVR0TAQH/BAIwADAdBgNVHQ4EFgQUhKudnYScmClXggWg\n"
    "oENwqZnzY6swHwYDVR0jBBgwFoAUInbOcd7K1G64D7G/N/ND795eQbIwCgYIKoZI\n"
    "zj0EAwIDSQAwRgIhALLqj0BLhTEeYGP2Rx5oqNl0X/yKj1e4Ph+5M0cM64OYAiEA\n"
    "gh6Png7ual98pGqHFkZJNu3N6Ws/7mJ5heu/96Vk3dw=\n"
    "-----END CERTIFICATE-----\n";

static const char SELF_CRT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBhDCCASmgAwIBAgIUbQ8r0vM2WSKAhNSel4EAt+Q7b4cwCgYIKoZIzj0EAwIw\n"
    "FzEVMBMGA1UEAwwMc2VsZi5leGFtcGxlMB4XDTI2MTIwMTE2MTgyOFoXDTM2MTEy\n"
    "ODE2MTgyOFowFzEVMBMGA1UEAwwMc2VsZi5leGFtcGxlMFkwEwYHKoZIzj0CAQYI\n"
    "KoZIzj0DAQcDQgAEx02FidQ9aloGdU/u2K2Gmkz1ZaEixX0UAWoxavWOnALiLVPq\n"
    "2bprpqaR6gT0n9IqgbPo+Gs8FR23WgOKjJxrGqNTMFEwHQYDVR0OBBYEFISrnZ2E\n"
    "nJgpV4IFoKBDcKmZ82OrMB8GA1UdIwQYMBaAFISrnZ2EnJgpV4IFoKBDcKmZ82Or\n"
    "MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAJ2BWoMYXcbammFp\n"
    "QjAuPva4pfboytp3jBcAoLySWEaWAiEA1k5h6/w9WfydF7TUNzoNaUo83lqFH4pk\n"
    "qYi5itTEsNs=\n"
    "-----END CERTIFICATE-----\n";

#define LEAF_SHA256 \
    "e8808920430a87482952c4a87359df722ab35db08848fc4f6f4f9f659a412c77"

static char	 ca_path[] = "/tmp/opsd-test-cert.XXXXXX";

static int
parse(const char *pem, struct cert_info *ci, char *err, size_t len)
{
	return (cert_parse_pem(pem, strlen(pem), ci, err, len));
}

static void
test_parse_leaf(void)
{
	struct cert_info	ci;
	char			err[256];

	CHECK_INT(parse(LEAF_CRT, &ci, err, sizeof err), 0);
	CHECK_STR(ci.sha256, LEAF_SHA256);
	CHECK_STR(ci.serial, "1F2E");
	CHECK_STR(ci.subject, "CN = a.example");
	CHECK_STR(ci.issuer, "CN = unit CA");
	CHECK_UINT(ci.nnames, 3);
	CHECK_STR(ci.names[0], "a.example");
	CHECK_STR(ci.names[1], "*.b.example");
	CHECK_STR(ci.names[2], "127.0.0.1");
	CHECK_STR(ci.key_type, "EC");
	CHECK_INT(ci.key_bits, 256);
	CHECK_STR(ci.sig_alg, "ecdsa-with-SHA256");
	CHECK_INT(ci.not_after - ci.not_before, 3650 * 86400);
	CHECK_INT(ci.self_signed, 0);
	CHECK_UINT(ci.nextra, 0);
}

static void
test_parse_bundle_and_cn(void)
{
	struct cert_info	ci;
	char			err[256], buf[8192];

	/* a fullchain: the leaf is the first, the rest is counted */
	snprintf(buf, sizeof buf, "%s%s", LEAF_CRT, CA_CRT);
	CHECK_INT(parse(buf, &ci, err, sizeof err), 0);
	CHECK_STR(ci.sha256, LEAF_SHA256);
	CHECK_UINT(ci.nextra, 1);
	/* no subjectAltName: the CN is the name */
	CHECK_INT(parse(CNONLY_CRT, &ci, err, sizeof err), 0);
	CHECK_UINT(ci.nnames, 1);
	CHECK_STR(ci.names[0], "cn-only.example");
	CHECK_INT(parse(SELF_CRT, &ci, err, sizeof err), 0);
	CHECK_INT(ci.self_signed, 1);
	/* a key file before the certificate is skipped, as PEM readers do */
	snprintf(buf, sizeof buf, "%s%s", LEAF_KEY, LEAF_CRT);
	CHECK_INT(parse(buf, &ci, err, sizeof err), 0);
	CHECK_STR(ci.sha256, LEAF_SHA256);
}

static void
test_parse_garbage(void)
{
	struct cert_info	ci;
	char			err[256], buf[4096];
	size_t			n;

	CHECK_INT(cert_parse_pem("", 0, &ci, err, sizeof err), -EBADMSG);
	CHECK_CONTAINS(err, "empty");
	CHECK_INT(parse("hello\n", &ci, err, sizeof err), -EBADMSG);
	CHECK_CONTAINS(err, "no PEM certificate");
	CHECK_INT(parse(LEAF_KEY, &ci, err, sizeof err), -EBADMSG);
	CHECK_INT(parse("-----BEGIN CERTIFICATE-----\nAAAA\n"
	    "-----END CERTIFICATE-----\n", &ci, err, sizeof err), -EBADMSG);
	/* cut in the middle */
	n = strlen(LEAF_CRT) / 2;
	memcpy(buf, LEAF_CRT, n);
	CHECK_INT(cert_parse_pem(buf, n, &ci, err, sizeof err), -EBADMSG);
	/* not NUL-terminated: only len bytes are read */
	memcpy(buf, LEAF_CRT, strlen(LEAF_CRT));
	memset(buf + strlen(LEAF_CRT), 'x', 16);
	CHECK_INT(cert_parse_pem(buf, strlen(LEAF_CRT), &ci, err, sizeof err),
	    0);
	CHECK_INT(cert_parse_pem(buf, CERT_FILE_MAX + 1, &ci, err, sizeof err),
	    -EBADMSG);
}

static void
test_key_match(void)
{
	char	err[256];

	CHECK_INT(cert_key_match(LEAF_CRT, strlen(LEAF_CRT), LEAF_KEY,
	    strlen(LEAF_KEY), err, sizeof err), 0);
	CHECK_INT(cert_key_match(LEAF_CRT, strlen(LEAF_CRT), OTHER_KEY,
	    strlen(OTHER_KEY), err, sizeof err), -EKEYREJECTED);
	CHECK_CONTAINS(err, "does not belong");
	CHECK_INT(cert_key_match(LEAF_CRT, strlen(LEAF_CRT), "x", 1, err,
	    sizeof err), -EBADMSG);
	CHECK_INT(cert_key_match("x", 1, LEAF_KEY, strlen(LEAF_KEY), err,
	    sizeof err), -EBADMSG);
	/* one file with both, as some servers take them */
	{
		char	both[8192];

		snprintf(both, sizeof both, "%s%s", LEAF_CRT, LEAF_KEY);
		CHECK_INT(cert_key_match(both, strlen(both), both,
		    strlen(both), err, sizeof err), 0);
	}
}

static void
test_verify(void)
{
	struct cert_info	ci;
	char			err[256];
	int64_t			now;

	CHECK_INT(parse(LEAF_CRT, &ci, err, sizeof err), 0);
	now = ci.not_before + 86400;
	CHECK_INT(cert_verify(LEAF_CRT, strlen(LEAF_CRT), NULL, 0, ca_path,
	    now, err, sizeof err), 0);
	/* the chain file may hold the CA too: still fine */
	CHECK_INT(cert_verify(LEAF_CRT, strlen(LEAF_CRT), CA_CRT,
	    strlen(CA_CRT), ca_path, now, err, sizeof err), 0);
	/* before not-before, after not-after */
	CHECK_INT(cert_verify(LEAF_CRT, strlen(LEAF_CRT), NULL, 0, ca_path,
	    ci.not_before - 86400, err, sizeof err), -EBADMSG);
	CHECK_CONTAINS(err, "not yet valid");
	CHECK_INT(cert_verify(LEAF_CRT, strlen(LEAF_CRT), NULL, 0, ca_path,
	    ci.not_after + 86400, err, sizeof err), -EBADMSG);
	CHECK_CONTAINS(err, "expired");
	/* a self-signed certificate is not issued by the CA */
	CHECK_INT(cert_verify(SELF_CRT, strlen(SELF_CRT), NULL, 0, ca_path,
	    now, err, sizeof err), -EBADMSG);
	CHECK_CONTAINS(err, "does not verify");
	CHECK_INT(cert_verify(LEAF_CRT, strlen(LEAF_CRT), NULL, 0,
	    "/nonexistent/ca.pem", now, err, sizeof err), -EBADMSG);
	CHECK_CONTAINS(err, "ca_file");
}

static void
test_names_cover(void)
{
	struct cert_info	a, b;
	char			missing[256];

	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	snprintf(a.names[a.nnames++], CERT_NAME_LEN, "www.b.example");
	snprintf(a.names[a.nnames++], CERT_NAME_LEN, "A.example");
	snprintf(b.names[b.nnames++], CERT_NAME_LEN, "a.example");
	snprintf(b.names[b.nnames++], CERT_NAME_LEN, "*.b.example");
	CHECK_INT(cert_names_cover(&a, &b, missing, sizeof missing), 1);
	/* a wildcard covers one label, never the bare domain or two */
	snprintf(a.names[a.nnames++], CERT_NAME_LEN, "b.example");
	CHECK_INT(cert_names_cover(&a, &b, missing, sizeof missing), 0);
	CHECK_STR(missing, "b.example");
	a.nnames--;
	snprintf(a.names[a.nnames++], CERT_NAME_LEN, "x.y.b.example");
	CHECK_INT(cert_names_cover(&a, &b, missing, sizeof missing), 0);
	CHECK_STR(missing, "x.y.b.example");
	/* nothing is covered by an empty certificate, and nothing needed */
	memset(&b, 0, sizeof b);
	CHECK_INT(cert_names_cover(&b, &a, missing, sizeof missing), 1);
}

static void
test_renew_at(void)
{
	struct cert_info	ci;

	memset(&ci, 0, sizeof ci);
	/* 90 days: 30 days before the end */
	ci.not_before = 1000000000;
	ci.not_after = ci.not_before + 90 * 86400;
	CHECK_INT(cert_renew_at(&ci, 0), ci.not_after - 30 * 86400);
	CHECK_INT(cert_renew_at(&ci, 10), ci.not_after - 10 * 86400);
	/* 6 days: half */
	ci.not_after = ci.not_before + 6 * 86400;
	CHECK_INT(cert_renew_at(&ci, 0), ci.not_before + 3 * 86400);
	/* nonsense dates: due at once, no overflow */
	ci.not_after = ci.not_before - 5;
	CHECK_INT(cert_renew_at(&ci, 0), ci.not_after);
}

static void
test_endpoints(void)
{
	struct cert_endpoint	ep;
	char			err[256];

	CHECK_INT(cert_endpoint_parse("127.0.0.1:8443", &ep, err, sizeof err),
	    0);
	CHECK_STR(ep.host, "127.0.0.1");
	CHECK_STR(ep.port, "8443");
	CHECK_INT(ep.kind, CERT_EP_TLS);
	CHECK_INT(cert_endpoint_parse("[::1]:443", &ep, err, sizeof err), 0);
	CHECK_STR(ep.host, "::1");
	CHECK_STR(ep.port, "443");
	CHECK_INT(cert_endpoint_parse("https://www.example.org/health?x=1",
	    &ep, err, sizeof err), 0);
	CHECK_STR(ep.host, "www.example.org");
	CHECK_STR(ep.port, "443");
	CHECK_INT(cert_endpoint_parse("https://[::1]:8443/", &ep, err,
	    sizeof err), 0);
	CHECK_STR(ep.host, "::1");
	CHECK_STR(ep.port, "8443");
	CHECK_INT(cert_endpoint_parse("postgres://db.internal", &ep, err,
	    sizeof err), 0);
	CHECK_INT(ep.kind, CERT_EP_POSTGRES);
	CHECK_STR(ep.port, "5432");
	CHECK_INT(cert_endpoint_parse("postgresql://db:6432", &ep, err,
	    sizeof err), 0);
	CHECK_STR(ep.port, "6432");
	CHECK_STR(ep.text, "postgresql://db:6432");
	CHECK_INT(cert_endpoint_parse("localhost", &ep, err, sizeof err),
	    -EINVAL);
	CHECK_CONTAINS(err, "no port");
	CHECK_INT(cert_endpoint_parse("ftp://x:21", &ep, err, sizeof err),
	    -EINVAL);
	CHECK_INT(cert_endpoint_parse("h:0", &ep, err, sizeof err), -EINVAL);
	CHECK_INT(cert_endpoint_parse("h:65536", &ep, err, sizeof err),
	    -EINVAL);
	CHECK_INT(cert_endpoint_parse("h:44x", &ep, err, sizeof err), -EINVAL);
	CHECK_INT(cert_endpoint_parse(":443", &ep, err, sizeof err), -EINVAL);
	CHECK_INT(cert_endpoint_parse("a b:443", &ep, err, sizeof err),
	    -EINVAL);
	CHECK_INT(cert_endpoint_parse("::1:443", &ep, err, sizeof err),
	    -EINVAL);
	CHECK_INT(cert_endpoint_parse("[::1", &ep, err, sizeof err), -EINVAL);
	CHECK_INT(cert_endpoint_parse("[::1]x", &ep, err, sizeof err),
	    -EINVAL);
	CHECK_INT(cert_endpoint_parse("h:443/path", &ep, err, sizeof err),
	    -EINVAL);
}

static void
test_meta_parse(void)
{
	struct cert_meta	m;
	char			err[256];
	const char		*ok = "{\"last_ok\": 1796094000, \"last_result\": "
				    "\"ok\", \"last_at\": 1796094000, "
				    "\"last_error\": \"\", \"last_op\": \"x\", "
				    "\"n_ok\": 3, \"n_failed\": 1, "
				    "\"n_rolled_back\": 2}";

	CHECK_INT(cert_meta_parse(ok, strlen(ok), &m, err, sizeof err), 0);
	CHECK_INT(m.last_ok, 1796094000);
	CHECK_STR(m.last_result, "ok");
	CHECK_UINT(m.n_ok, 3);
	CHECK_UINT(m.n_rolled_back, 2);
	CHECK_INT(cert_meta_parse("{}", 2, &m, err, sizeof err), 0);
	CHECK_INT(cert_meta_parse("[]", 2, &m, err, sizeof err), -EBADMSG);
	CHECK_INT(cert_meta_parse("{\"n_ok\": -1}", 12, &m, err, sizeof err),
	    -EBADMSG);
	CHECK_CONTAINS(err, "n_ok");
	CHECK_INT(cert_meta_parse("{\"last_result\": 5}", 18, &m, err,
	    sizeof err), -EBADMSG);
	CHECK_INT(cert_meta_parse("{\"last_result\": \"a\\u0000b\"}", 27, &m,
	    err, sizeof err), -EBADMSG);
	CHECK_INT(cert_meta_parse("{\"n_ok\": 1, \"n_ok\": 2}", 22, &m, err,
	    sizeof err), -EBADMSG);
	CHECK_UINT(m.n_ok, 0);
}

int
main(void)
{
	FILE	*f;
	int	 fd, r;

	if ((fd = mkstemp(ca_path)) == -1 || (f = fdopen(fd, "w")) == NULL ||
	    fputs(CA_CRT, f) < 0 || fclose(f) != 0) {
		perror(ca_path);
		return (1);
	}
	RUN(test_parse_leaf);
	RUN(test_parse_bundle_and_cn);
	RUN(test_parse_garbage);
	RUN(test_key_match);
	RUN(test_verify);
	RUN(test_names_cover);
	RUN(test_renew_at);
	RUN(test_endpoints);
	RUN(test_meta_parse);
	r = tap_done();
	unlink(ca_path);
	return (r);
}
