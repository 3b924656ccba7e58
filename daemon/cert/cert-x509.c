/*
 * The pure part of the certificate room: bytes in, facts out. A renew
 * command writes the files these functions read, so they are parsers of
 * outside input (tests/unit/test-cert.c, fuzz/fuzz-cert.c): every length
 * is bounded, nothing is trusted to be NUL-terminated, and OpenSSL's
 * error queue is emptied before returning.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert-int.h"
#include "util.h"

static void
ossl_why(char *err, size_t errlen, const char *what)
{
	unsigned long	e = ERR_peek_last_error();
	char		buf[256];

	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof buf);
		snprintf(err, errlen, "%s: %s", what, buf);
	} else
		snprintf(err, errlen, "%s", what);
	ERR_clear_error();
}

static BIO *
mem_bio(const char *buf, size_t len)
{
	if (len > CERT_FILE_MAX)
		return (NULL);
	return (BIO_new_mem_buf(buf, (int)len));
}

static void
name_oneline(X509_NAME *name, char *buf, size_t len)
{
	BIO	*bio = BIO_new(BIO_s_mem());
	int	 n;
	size_t	 i;

	buf[0] = '\0';
	if (bio == NULL)
		return;
	X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
	n = BIO_read(bio, buf, (int)len - 1);
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(bio);
	/* control characters would reach logs and terminals */
	for (i = 0; buf[i] != '\0'; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
}

static int64_t
asn1_unix(const ASN1_TIME *t)
{
	struct tm	tm;

	memset(&tm, 0, sizeof tm);
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return (0);
	return ((int64_t)timegm(&tm));
}

/* Only printable names are kept: they end up in messages and JSON. */
static int
name_printable(const unsigned char *s, int len)
{
	int	i;

	if (len <= 0 || len >= CERT_NAME_LEN)
		return (0);
	for (i = 0; i < len; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return (0);
	return (1);
}

static void
add_name(struct cert_info *ci, const char *s)
{
	unsigned int	i;

	if (ci->nnames >= CERT_NAMES_MAX)
		return;
	for (i = 0; i < ci->nnames; i++)
		if (strcasecmp(ci->names[i], s) == 0)
			return;
	snprintf(ci->names[ci->nnames++], CERT_NAME_LEN, "%s", s);
}

static void
collect_names(X509 *x, struct cert_info *ci)
{
	GENERAL_NAMES		*sans;
	const GENERAL_NAME	*g;
	const unsigned char	*p;
	char			 buf[CERT_NAME_LEN];
	int			 i, n, len;

	sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	n = sans != NULL ? sk_GENERAL_NAME_num(sans) : 0;
	for (i = 0; i < n; i++) {
		g = sk_GENERAL_NAME_value(sans, i);
		if (g->type == GEN_DNS) {
			p = ASN1_STRING_get0_data(g->d.dNSName);
			len = ASN1_STRING_length(g->d.dNSName);
			if (!name_printable(p, len))
				continue;
			memcpy(buf, p, (size_t)len);
			buf[len] = '\0';
			add_name(ci, buf);
		} else if (g->type == GEN_IPADD) {
			p = ASN1_STRING_get0_data(g->d.iPAddress);
			len = ASN1_STRING_length(g->d.iPAddress);
			if (len == 4)
				snprintf(buf, sizeof buf, "%u.%u.%u.%u", p[0],
				    p[1], p[2], p[3]);
			else if (len == 16) {
				int	k, o = 0;

				for (k = 0; k < 16; k += 2)
					o += snprintf(buf + o, sizeof buf -
					    (size_t)o, "%s%x", k ? ":" : "",
					    (unsigned int)(p[k] << 8 | p[k + 1]));
			} else
				continue;
			add_name(ci, buf);
		}
	}
	GENERAL_NAMES_free(sans);
	if (ci->nnames == 0) {
		/* no SAN: the CN, as old certificates have it */
		X509_NAME	*sn = X509_get_subject_name(x);
		int		 idx = X509_NAME_get_index_by_NID(sn,
				    NID_commonName, -1);
		ASN1_STRING	*d;

		if (idx >= 0 && (d = X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(sn, idx))) != NULL &&
		    ASN1_STRING_type(d) != V_ASN1_BMPSTRING &&
		    name_printable(ASN1_STRING_get0_data(d),
		    ASN1_STRING_length(d))) {
			len = ASN1_STRING_length(d);
			memcpy(buf, ASN1_STRING_get0_data(d), (size_t)len);
			buf[len] = '\0';
			add_name(ci, buf);
		}
	}
}

void
cert_info_x509(struct x509_st *x, struct cert_info *ci)
{
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 mdlen = 0, i;
	const ASN1_INTEGER	*sn;
	BIGNUM			*bn;
	char			*hex;
	EVP_PKEY		*pk;
	int			 nid;

	memset(ci, 0, sizeof *ci);
	if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1)
		for (i = 0; i < mdlen && i < 32; i++)
			snprintf(ci->sha256 + 2 * i, 3, "%02x", md[i]);
	if ((sn = X509_get0_serialNumber(x)) != NULL &&
	    (bn = ASN1_INTEGER_to_BN(sn, NULL)) != NULL) {
		if ((hex = BN_bn2hex(bn)) != NULL) {
			snprintf(ci->serial, sizeof ci->serial, "%s", hex);
			OPENSSL_free(hex);
		}
		BN_free(bn);
	}
	name_oneline(X509_get_subject_name(x), ci->subject, sizeof ci->subject);
	name_oneline(X509_get_issuer_name(x), ci->issuer, sizeof ci->issuer);
	ci->not_before = asn1_unix(X509_get0_notBefore(x));
	ci->not_after = asn1_unix(X509_get0_notAfter(x));
	collect_names(x, ci);
	if ((pk = X509_get0_pubkey(x)) != NULL) {
		switch (EVP_PKEY_get_base_id(pk)) {
		case EVP_PKEY_RSA:
			snprintf(ci->key_type, sizeof ci->key_type, "RSA");
			break;
		case EVP_PKEY_EC:
			snprintf(ci->key_type, sizeof ci->key_type, "EC");
			break;
		case EVP_PKEY_ED25519:
			snprintf(ci->key_type, sizeof ci->key_type, "ED25519");
			break;
		case EVP_PKEY_ED448:
			snprintf(ci->key_type, sizeof ci->key_type, "ED448");
			break;
		default:
			snprintf(ci->key_type, sizeof ci->key_type, "other");
			break;
		}
		ci->key_bits = EVP_PKEY_get_bits(pk);
	}
	nid = X509_get_signature_nid(x);
	snprintf(ci->sig_alg, sizeof ci->sig_alg, "%s", nid != NID_undef ?
	    OBJ_nid2sn(nid) : "unknown");
	ci->self_signed = X509_check_issued(x, x) == X509_V_OK;
	ERR_clear_error();
}

int
cert_parse_pem(const char *buf, size_t len, struct cert_info *ci, char *err,
    size_t errlen)
{
	BIO	*bio;
	X509	*x, *extra;

	memset(ci, 0, sizeof *ci);
	if (len == 0) {
		snprintf(err, errlen, "the file is empty");
		return (-EBADMSG);
	}
	if ((bio = mem_bio(buf, len)) == NULL) {
		snprintf(err, errlen, "more than %d bytes", CERT_FILE_MAX);
		return (-EBADMSG);
	}
	if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		BIO_free(bio);
		ossl_why(err, errlen, "no PEM certificate");
		return (-EBADMSG);
	}
	cert_info_x509(x, ci);
	X509_free(x);
	while (ci->nextra < 32 && (extra = PEM_read_bio_X509(bio, NULL, NULL,
	    NULL)) != NULL) {
		ci->nextra++;
		X509_free(extra);
	}
	BIO_free(bio);
	ERR_clear_error();
	return (0);
}

int
cert_key_match(const char *certpem, size_t certlen, const char *keypem,
    size_t keylen, char *err, size_t errlen)
{
	BIO		*b;
	X509		*x = NULL;
	EVP_PKEY	*k = NULL;
	int		 r = -EBADMSG;

	if ((b = mem_bio(certpem, certlen)) != NULL) {
		x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	if (x == NULL) {
		ossl_why(err, errlen, "no PEM certificate");
		return (-EBADMSG);
	}
	if ((b = mem_bio(keypem, keylen)) != NULL) {
		/* an empty passphrase callback: never a prompt */
		k = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"");
		BIO_free(b);
	}
	if (k == NULL)
		ossl_why(err, errlen, "no PEM private key (or an encrypted one)");
	else if (X509_check_private_key(x, k) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "the private key does not belong to the "
		    "certificate");
		r = -EKEYREJECTED;
	} else
		r = 0;
	EVP_PKEY_free(k);
	X509_free(x);
	ERR_clear_error();
	return (r);
}

static void
push_all(STACK_OF(X509) *sk, const char *pem, size_t len, int skip_first)
{
	BIO	*b;
	X509	*x;
	int	 n = 0;

	if (pem == NULL || (b = mem_bio(pem, len)) == NULL)
		return;
	while (n < 64 && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (n++ == 0 && skip_first)
			X509_free(x);
		else if (!sk_X509_push(sk, x))
			X509_free(x);
	}
	BIO_free(b);
	ERR_clear_error();
}

int
cert_verify(const char *certpem, size_t certlen, const char *chainpem,
    size_t chainlen, const char *ca_file, int64_t now, char *err,
    size_t errlen)
{
	X509_STORE	*store;
	X509_STORE_CTX	*ctx;
	STACK_OF(X509)	*untrusted;
	X509		*leaf = NULL;
	BIO		*b;
	int		 r = -EBADMSG, vr;

	if ((b = mem_bio(certpem, certlen)) != NULL) {
		leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	if (leaf == NULL) {
		ossl_why(err, errlen, "no PEM certificate");
		return (-EBADMSG);
	}
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	untrusted = sk_X509_new_null();
	if (store == NULL || ctx == NULL || untrusted == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (ca_file != NULL) {
		if (X509_STORE_load_file(store, ca_file) != 1) {
			ossl_why(err, errlen, "cannot load ca_file");
			goto out;
		}
	} else
		X509_STORE_set_default_paths(store);
	push_all(untrusted, certpem, certlen, 1);
	push_all(untrusted, chainpem, chainlen, 0);
	if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
		ossl_why(err, errlen, "cannot set up the verification");
		goto out;
	}
	X509_STORE_CTX_set_time(ctx, 0, (time_t)now);
	if (X509_verify_cert(ctx) == 1)
		r = 0;
	else {
		vr = X509_STORE_CTX_get_error(ctx);
		snprintf(err, errlen, "does not verify: %s",
		    X509_verify_cert_error_string(vr));
	}
out:
	sk_X509_pop_free(untrusted, X509_free);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(leaf);
	ERR_clear_error();
	return (r);
}

static int
covered(const char *name, const struct cert_info *ci)
{
	const char	*dot;
	unsigned int	 i;

	for (i = 0; i < ci->nnames; i++) {
		if (strcasecmp(ci->names[i], name) == 0)
			return (1);
		/* "*.example.org" covers "a.example.org", one label */
		if (ci->names[i][0] == '*' && ci->names[i][1] == '.' &&
		    (dot = strchr(name, '.')) != NULL && dot != name &&
		    strcasecmp(dot, ci->names[i] + 1) == 0)
			return (1);
	}
	return (0);
}

int
cert_names_cover(const struct cert_info *old, const struct cert_info *new,
    char *missing, size_t len)
{
	unsigned int	i;

	for (i = 0; i < old->nnames; i++)
		if (!covered(old->names[i], new)) {
			snprintf(missing, len, "%s", old->names[i]);
			return (0);
		}
	return (1);
}

int64_t
cert_renew_at(const struct cert_info *ci, uint64_t renew_days)
{
	int64_t	life = ci->not_after - ci->not_before;

	if (renew_days > 0)
		return (ci->not_after - (int64_t)(renew_days > 36500 ? 36500 :
		    renew_days) * 86400);
	if (life <= 0)
		return (ci->not_after);
	if (life < 10 * 86400)
		return (ci->not_after - life / 2);
	return (ci->not_after - life / 3);
}

static int
host_ok(const char *h)
{
	size_t	i;

	if (h[0] == '\0')
		return (0);
	for (i = 0; h[i] != '\0'; i++)
		if (!isalnum((unsigned char)h[i]) && strchr(".-_:", h[i]) ==
		    NULL)
			return (0);
	return (1);
}

int
cert_endpoint_parse(const char *s, struct cert_endpoint *ep, char *err,
    size_t errlen)
{
	const char	*p = s, *end, *colon;
	const char	*dflt = NULL;
	size_t		 hl;
	char		*e;
	unsigned long	 port;

	memset(ep, 0, sizeof *ep);
	if ((hl = strlen(s)) >= sizeof ep->text) {
		snprintf(err, errlen, "endpoint too long");
		return (-EINVAL);
	}
	memcpy(ep->text, s, hl + 1);
	ep->kind = CERT_EP_TLS;
	if (strncmp(p, "postgres://", 11) == 0 || strncmp(p, "postgresql://",
	    13) == 0) {
		ep->kind = CERT_EP_POSTGRES;
		p = strstr(p, "://") + 3;
		dflt = "5432";
	} else if (strncmp(p, "https://", 8) == 0) {
		p += 8;
		dflt = "443";
	} else if (strstr(p, "://") != NULL) {
		snprintf(err, errlen, "'%s': only https:// and postgres:// "
		    "URLs, or host:port", s);
		return (-EINVAL);
	}
	/* the authority ends at a path (URLs only) */
	end = p + strcspn(p, "/?#");
	if (*end != '\0' && dflt == NULL) {
		snprintf(err, errlen, "'%s' is not host:port", s);
		return (-EINVAL);
	}
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (rb == NULL) {
			snprintf(err, errlen, "'%s': no ']'", s);
			return (-EINVAL);
		}
		hl = (size_t)(rb - p - 1);
		if (hl == 0 || hl >= sizeof ep->host)
			goto badhost;
		memcpy(ep->host, p + 1, hl);
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		if (rb + 1 < end && colon == NULL)
			goto badhost;
	} else {
		colon = NULL;
		for (const char *q = p; q < end; q++)
			if (*q == ':')
				colon = q;
		hl = (size_t)((colon != NULL ? colon : end) - p);
		if (hl == 0 || hl >= sizeof ep->host)
			goto badhost;
		memcpy(ep->host, p, hl);
		if (strchr(ep->host, ':') != NULL)
			goto badhost;
	}
	if (!host_ok(ep->host))
		goto badhost;
	if (colon == NULL) {
		if (dflt == NULL) {
			snprintf(err, errlen, "'%s' has no port (host:port)", s);
			return (-EINVAL);
		}
		snprintf(ep->port, sizeof ep->port, "%s", dflt);
		return (0);
	}
	errno = 0;
	port = strtoul(colon + 1, &e, 10);
	if (e == colon + 1 || e != end || port == 0 || port > 65535 ||
	    errno != 0) {
		snprintf(err, errlen, "'%s': bad port", s);
		return (-EINVAL);
	}
	snprintf(ep->port, sizeof ep->port, "%lu", port);
	return (0);
badhost:
	snprintf(err, errlen, "'%s': bad host", s);
	return (-EINVAL);
}

char *
cert_read_file(const char *path, size_t *len, int *e)
{
	struct stat	 st;
	char		*buf;
	ssize_t		 n;
	size_t		 got = 0;
	int		 fd;

	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		*e = -errno;
		return (NULL);
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		*e = S_ISREG(st.st_mode) ? -errno : -EINVAL;
		close(fd);
		return (NULL);
	}
	if (st.st_size > CERT_FILE_MAX) {
		*e = -EFBIG;
		close(fd);
		return (NULL);
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	return (buf);
}
