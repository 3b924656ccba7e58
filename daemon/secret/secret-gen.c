/*
 * New values: OpenSSL's RAND_bytes, its return value checked (a failure
 * is an error, never a weaker value), and the encodings. Every buffer
 * that held raw bytes is cleansed.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "secret-int.h"

static const char alnum[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/*
 * Characters of [A-Za-z0-9] carrying at least bytes * 8 bits: the ceiling
 * of bytes * 8 / log2(62), never a whole number. No libm: the daemon does
 * not link it, and an unoptimised build would call ceil() and log2().
 */
#define LOG2_62		5.954196310386875

static size_t
alnum_len(uint64_t bytes)
{
	double	x = (double)bytes * 8.0 / LOG2_62;
	size_t	n = (size_t)x;

	return ((double)n < x ? n + 1 : n);
}

size_t
secret_value_len(uint64_t bytes, int encoding)
{
	switch (encoding) {
	case SECRET_ENC_BASE64:
		return ((size_t)((bytes + 2) / 3 * 4));
	case SECRET_ENC_BASE64URL:
		return ((size_t)((bytes * 4 + 2) / 3));
	case SECRET_ENC_HEX:
		return ((size_t)bytes * 2);
	default:
		return (alnum_len(bytes));
	}
}

int
secret_encode(const unsigned char *raw, size_t n, int encoding, char *out,
    size_t outsz)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 need, i;
	char			*p;

	if (encoding == SECRET_ENC_ALNUM)
		return (-EINVAL);
	need = secret_value_len(n, encoding);
	/* EVP_EncodeBlock writes the padded length and a NUL */
	if (outsz < (n + 2) / 3 * 4 + 1 || outsz < need + 1)
		return (-ENOSPC);
	switch (encoding) {
	case SECRET_ENC_HEX:
		for (i = 0; i < n; i++) {
			out[2 * i] = hex[raw[i] >> 4];
			out[2 * i + 1] = hex[raw[i] & 0xf];
		}
		out[2 * n] = '\0';
		return (0);
	case SECRET_ENC_BASE64:
		EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
		return (0);
	default:
		/* RFC 4648 section 5, without the padding */
		EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
		for (p = out; *p != '\0'; p++) {
			if (*p == '+')
				*p = '-';
			else if (*p == '/')
				*p = '_';
			else if (*p == '=') {
				*p = '\0';
				break;
			}
		}
		return (0);
	}
}

int
secret_generate(uint64_t bytes, int encoding, char *out, size_t outsz)
{
	unsigned char	raw[SECRET_BYTES_MAX];
	size_t		need, n = 0, i, draw;
	int		rc = 0;

	if (bytes == 0 || bytes > SECRET_BYTES_MAX)
		return (-EINVAL);
	if (encoding != SECRET_ENC_ALNUM) {
		if (RAND_bytes(raw, (int)bytes) != 1)
			return (-EIO);
		rc = secret_encode(raw, (size_t)bytes, encoding, out, outsz);
		OPENSSL_cleanse(raw, sizeof raw);
		return (rc);
	}
	need = alnum_len(bytes);
	if (outsz < need + 1)
		return (-ENOSPC);
	/*
	 * Rejection sampling: a byte below 248 (= 62 * 4) maps to one of
	 * 62 characters with equal chance; the rest are drawn again.
	 */
	while (n < need && rc == 0) {
		draw = need - n + 16;
		if (draw > sizeof raw)
			draw = sizeof raw;
		if (RAND_bytes(raw, (int)draw) != 1) {
			rc = -EIO;
			break;
		}
		for (i = 0; i < draw && n < need; i++)
			if (raw[i] < 248)
				out[n++] = alnum[raw[i] % 62];
	}
	OPENSSL_cleanse(raw, sizeof raw);
	if (rc != 0) {
		OPENSSL_cleanse(out, outsz);
		return (rc);
	}
	out[n] = '\0';
	return (0);
}
