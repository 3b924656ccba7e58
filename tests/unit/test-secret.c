/*
 * The pure parts of the secret room (daemon/secret/): the encodings
 * against RFC 4648's vectors, the value lengths, generated values of
 * every encoding and size (length, alphabet, decoded size, padding, the
 * alnum draw without bias), the NAME.json parser (a good file round-trips
 * through secret_meta_json; every kind of bad one is refused and leaves
 * nothing behind) and the env file template scanner.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "secret-int.h"
#include "tap.h"

static const int encodings[] = {
	SECRET_ENC_BASE64, SECRET_ENC_BASE64URL, SECRET_ENC_HEX,
	SECRET_ENC_ALNUM
};
static const char *const enc_names[] = {
	"base64", "base64url", "hex", "alnum"
};
static const uint64_t sizes[] = { 16, 17, 31, 32, 4096 };

#define NITEMS(a)	(sizeof (a) / sizeof ((a)[0]))
#define LOG2_62		5.954196310386875	/* no libm in these links */

/* --- secret_encode ------------------------------------------------------- */

static void
check_encode(const char *raw, size_t n, int enc, const char *want)
{
	char	out[64];
	int	rc;

	memset(out, 'X', sizeof out);
	rc = secret_encode((const unsigned char *)raw, n, enc, out,
	    sizeof out);
	if (rc != 0) {
		tap_diag("secret_encode(%zu bytes, %s) = %d", n,
		    enc_names[enc], rc);
		tap_case_failed = 1;
		return;
	}
	if (strcmp(out, want) != 0) {
		tap_diag("secret_encode(\"%.*s\", %s) is \"%s\", expected "
		    "\"%s\"", (int)n, raw, enc_names[enc], out, want);
		tap_case_failed = 1;
	}
	if (secret_value_len(n, enc) != strlen(want)) {
		tap_diag("secret_value_len(%zu, %s) is %zu, expected %zu", n,
		    enc_names[enc], secret_value_len(n, enc), strlen(want));
		tap_case_failed = 1;
	}
}

static void
test_encode_rfc4648_vectors(void)
{
	/* RFC 4648 section 10; base64url is the same without padding */
	static const struct {
		const char *raw, *b64, *b64url, *hex;
	} v[] = {
		{ "", "", "", "" },
		{ "f", "Zg==", "Zg", "66" },
		{ "fo", "Zm8=", "Zm8", "666f" },
		{ "foo", "Zm9v", "Zm9v", "666f6f" },
		{ "foob", "Zm9vYg==", "Zm9vYg", "666f6f62" },
		{ "fooba", "Zm9vYmE=", "Zm9vYmE", "666f6f6261" },
		{ "foobar", "Zm9vYmFy", "Zm9vYmFy", "666f6f626172" },
	};
	size_t	i;

	for (i = 0; i < NITEMS(v); i++) {
		check_encode(v[i].raw, strlen(v[i].raw), SECRET_ENC_BASE64,
		    v[i].b64);
		check_encode(v[i].raw, strlen(v[i].raw), SECRET_ENC_BASE64URL,
		    v[i].b64url);
		check_encode(v[i].raw, strlen(v[i].raw), SECRET_ENC_HEX,
		    v[i].hex);
	}
}

static void
test_encode_url_alphabet(void)
{
	/* the two characters where base64url differs, and a zero byte */
	check_encode("\xfb\xff", 2, SECRET_ENC_BASE64, "+/8=");
	check_encode("\xfb\xff", 2, SECRET_ENC_BASE64URL, "-_8");
	check_encode("\xfb\xef\xbe", 3, SECRET_ENC_BASE64, "++++");
	check_encode("\xfb\xef\xbe", 3, SECRET_ENC_BASE64URL, "----");
	check_encode("\xff\xff\xff", 3, SECRET_ENC_BASE64, "////");
	check_encode("\xff\xff\xff", 3, SECRET_ENC_BASE64URL, "____");
	check_encode("\x00\x01\xfe\xff", 4, SECRET_ENC_HEX, "0001feff");
	check_encode("\x00\x00", 2, SECRET_ENC_BASE64, "AAA=");
	check_encode("\x00\x00", 2, SECRET_ENC_BASE64URL, "AAA");
}

static void
test_encode_space(void)
{
	unsigned char	raw[40];
	char		out[128];
	size_t		n, need;
	unsigned int	e;

	memset(raw, 0xa5, sizeof raw);
	for (e = 0; e < 3; e++)
		for (n = 1; n <= sizeof raw; n++) {
			need = secret_value_len(n, encodings[e]);
			/* no room for the NUL: refused, nothing past it */
			memset(out, '#', sizeof out);
			CHECK_INT(secret_encode(raw, n, encodings[e], out,
			    need), -ENOSPC);
			CHECK(out[need] == '#');
			/* the padded length and a NUL always do */
			CHECK_INT(secret_encode(raw, n, encodings[e], out,
			    (n + 2) / 3 * 4 + 2 * n + 1), 0);
			CHECK_UINT(strlen(out), need);
		}
	CHECK_INT(secret_encode(raw, 16, SECRET_ENC_ALNUM, out, sizeof out),
	    -EINVAL);
}

/* --- secret_value_len ---------------------------------------------------- */

static void
test_value_len(void)
{
	static const struct {
		uint64_t	bytes;
		size_t		b64, b64url, hex, alnum;
	} v[] = {
		/* alnum: ceil(bytes * 8 / log2(62)) */
		{ 16, 24, 22, 32, 22 },
		{ 17, 24, 23, 34, 23 },
		{ 31, 44, 42, 62, 42 },
		{ 32, 44, 43, 64, 43 },
		{ 4096, 5464, 5462, 8192, 5504 },
	};
	size_t		i;
	uint64_t	b;

	for (i = 0; i < NITEMS(v); i++) {
		CHECK_UINT(secret_value_len(v[i].bytes, SECRET_ENC_BASE64),
		    v[i].b64);
		CHECK_UINT(secret_value_len(v[i].bytes, SECRET_ENC_BASE64URL),
		    v[i].b64url);
		CHECK_UINT(secret_value_len(v[i].bytes, SECRET_ENC_HEX),
		    v[i].hex);
		CHECK_UINT(secret_value_len(v[i].bytes, SECRET_ENC_ALNUM),
		    v[i].alnum);
	}
	/* at least the bits drawn, and not one character more */
	for (b = 16; b <= SECRET_BYTES_MAX; b++) {
		size_t	n = secret_value_len(b, SECRET_ENC_ALNUM);

		if ((double)n * LOG2_62 < (double)b * 8 ||
		    (double)(n - 1) * LOG2_62 >= (double)b * 8) {
			tap_diag("alnum length %zu for %ju bytes", n,
			    (uintmax_t)b);
			tap_case_failed = 1;
			break;
		}
	}
	/* the longest fits the buffers the daemon uses */
	CHECK(secret_value_len(SECRET_BYTES_MAX, SECRET_ENC_HEX) <
	    SECRET_VALUE_MAX);
}

/* --- secret_generate ----------------------------------------------------- */

static int
in_alphabet(const char *s, size_t n, int enc)
{
	static const char *const alpha[] = {
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		    "+/",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		    "-_",
		"0123456789abcdef",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	};

	return (strspn(s, alpha[enc]) == n);
}

/* The number of bytes value decodes to, or -1. */
static long
decoded_len(const char *value, int enc)
{
	unsigned char	*raw;
	char		*std;
	size_t		 n = strlen(value), i, pad = 0;
	int		 r;

	if (enc == SECRET_ENC_HEX)
		return (n % 2 == 0 && in_alphabet(value, n, enc) ?
		    (long)(n / 2) : -1);
	std = calloc(1, n + 4);
	memcpy(std, value, n);
	if (enc == SECRET_ENC_BASE64URL) {
		if (strchr(value, '=') != NULL || !in_alphabet(value, n, enc)) {
			free(std);
			return (-1);
		}
		for (i = 0; i < n; i++)
			std[i] = value[i] == '-' ? '+' : value[i] == '_' ? '/' :
			    value[i];
		while (n % 4 != 0)
			std[n++] = '=';
	} else {
		/* padding only at the end, and only to a multiple of 4 */
		while (pad < n && value[n - 1 - pad] == '=')
			pad++;
		if (n % 4 != 0 || pad > 2 || !in_alphabet(value, n - pad,
		    SECRET_ENC_BASE64)) {
			free(std);
			return (-1);
		}
	}
	for (pad = 0; pad < n && std[n - 1 - pad] == '='; pad++)
		;
	raw = malloc(n);
	r = EVP_DecodeBlock(raw, (unsigned char *)std, (int)n);
	free(raw);
	free(std);
	return (r < 0 ? -1 : (long)r - (long)pad);
}

static void
test_generate_every_encoding_and_size(void)
{
	static char	a[SECRET_VALUE_MAX + 16], b[SECRET_VALUE_MAX + 16];
	unsigned int	e, i;
	size_t		len;
	long		dec;

	for (e = 0; e < NITEMS(encodings); e++)
		for (i = 0; i < NITEMS(sizes); i++) {
			int	enc = encodings[e];

			memset(a, '#', sizeof a);
			CHECK_INT(secret_generate(sizes[i], enc, a, sizeof a),
			    0);
			len = strlen(a);
			if (len != secret_value_len(sizes[i], enc)) {
				tap_diag("%s, %ju bytes: %zu characters, "
				    "expected %zu", enc_names[e],
				    (uintmax_t)sizes[i], len,
				    secret_value_len(sizes[i], enc));
				tap_case_failed = 1;
			}
			/* nothing past the value (base64: its padded form) */
			CHECK(a[(enc == SECRET_ENC_BASE64 ||
			    enc == SECRET_ENC_BASE64URL ? (sizes[i] + 2) / 3 *
			    4 : len) + 1] == '#');
			if (enc == SECRET_ENC_ALNUM)
				CHECK(in_alphabet(a, len, enc));
			else {
				dec = decoded_len(a, enc);
				if (dec != (long)sizes[i]) {
					tap_diag("%s, %ju bytes: decodes to "
					    "%ld", enc_names[e],
					    (uintmax_t)sizes[i], dec);
					tap_case_failed = 1;
				}
			}
			if (enc == SECRET_ENC_BASE64) {
				size_t	want = (3 - sizes[i] % 3) % 3, got = 0;

				while (got < len && a[len - 1 - got] == '=')
					got++;
				CHECK_UINT(got, want);
			}
			CHECK(strchr(a, '\n') == NULL);
			/* two draws differ */
			CHECK_INT(secret_generate(sizes[i], enc, b, sizeof b),
			    0);
			CHECK(strcmp(a, b) != 0);
			/* exactly enough room, and one byte less */
			CHECK_INT(secret_generate(sizes[i], enc, b,
			    enc == SECRET_ENC_ALNUM ? len + 1 :
			    (sizes[i] + 2) / 3 * 4 + 2 * sizes[i] + 1), 0);
			CHECK_UINT(strlen(b), len);
			CHECK_INT(secret_generate(sizes[i], enc, b, len),
			    -ENOSPC);
		}
}

static void
test_generate_refuses_bad_sizes(void)
{
	char		out[SECRET_VALUE_MAX];
	unsigned int	e;

	for (e = 0; e < NITEMS(encodings); e++) {
		CHECK_INT(secret_generate(0, encodings[e], out, sizeof out),
		    -EINVAL);
		CHECK_INT(secret_generate(SECRET_BYTES_MAX + 1, encodings[e],
		    out, sizeof out), -EINVAL);
		CHECK_INT(secret_generate(32, encodings[e], out, 4), -ENOSPC);
	}
}

/*
 * Rejection sampling: every one of the 62 characters as likely as the
 * others. A plain byte % 62 would make the first 8 a quarter likelier.
 */
static void
test_alnum_unbiased(void)
{
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	static char	out[SECRET_VALUE_MAX];
	unsigned long	count[256] = { 0 }, total = 0;
	double		expect;
	unsigned int	i;
	const char	*p;

	for (i = 0; i < 200; i++) {
		if (secret_generate(SECRET_BYTES_MAX, SECRET_ENC_ALNUM, out,
		    sizeof out) != 0) {
			tap_fail(__FILE__, __LINE__, "secret_generate failed");
			return;
		}
		for (p = out; *p != '\0'; p++, total++)
			count[(unsigned char)*p]++;
	}
	expect = (double)total / 62;
	for (i = 0; i < 62; i++) {
		double c = (double)count[(unsigned char)alpha[i]];

		/* 5% is more than 6 standard deviations here */
		if (c < expect * 0.95 || c > expect * 1.05) {
			tap_diag("'%c' drawn %.0f times, expected about %.0f",
			    alpha[i], c, expect);
			tap_case_failed = 1;
		}
	}
}

/* --- secret_meta_parse --------------------------------------------------- */

static const char good_meta[] =
    "{\"version\": 7, \"fingerprint\": \"sha256:0123456789abcdef\","
    " \"created\": 1767225600, \"role\": \"app_b\", \"origin\": \"imported\","
    " \"history\": ["
    "  {\"version\": 6, \"fingerprint\": \"sha256:fedcba9876543210\","
    "   \"created\": 1764547200, \"retired\": 1767225600},"
    "  {\"version\": 5, \"fingerprint\": \"sha256:00000000000000ff\","
    "   \"created\": 1761955200, \"retired\": 1764547200}],"
    " \"last\": {\"result\": \"rolled_back\", \"at\": 1767312000,"
    "  \"error\": \"on_rotate 'x' exited with status 1\","
    "  \"op\": \"20260102T000000Z-0a1b2c3d\"},"
    " \"failures\": 2,"
    " \"counts\": {\"ok\": 7, \"failed\": 1, \"rolled_back\": 2}}";

static int
parse(const char *s, struct secret_meta *m, char *err, size_t errlen)
{
	return (secret_meta_parse(s, strlen(s), m, err, errlen));
}

/* m through secret_meta_json and back: equal, to the byte. */
static void
check_round_trip(const struct secret_meta *m)
{
	struct secret_meta	 back;
	json_t			*j = secret_meta_json(m);
	char			*text, err[256];

	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (text == NULL) {
		tap_fail(__FILE__, __LINE__, "json_dumps failed");
		return;
	}
	memset(&back, 0x5a, sizeof back);
	if (parse(text, &back, err, sizeof err) != 0) {
		tap_diag("what secret_meta_json wrote does not parse: %s: %s",
		    err, text);
		tap_case_failed = 1;
	} else if (memcmp(&back, m, sizeof back) != 0) {
		tap_diag("round trip differs: %s", text);
		tap_case_failed = 1;
	}
	free(text);
}

static void
test_meta_good_round_trip(void)
{
	struct secret_meta	m;
	char			err[256] = "";

	CHECK_INT(parse(good_meta, &m, err, sizeof err), 0);
	CHECK_STR(err, "");
	CHECK_INT(m.version, 7);
	CHECK_STR(m.fp, "sha256:0123456789abcdef");
	CHECK_INT(m.created, 1767225600);
	CHECK_STR(m.role, "app_b");
	CHECK_STR(m.origin, "imported");
	CHECK_UINT(m.nhist, 2);
	CHECK_INT(m.hist[0].version, 6);
	CHECK_STR(m.hist[0].fp, "sha256:fedcba9876543210");
	CHECK_INT(m.hist[0].created, 1764547200);
	CHECK_INT(m.hist[0].retired, 1767225600);
	CHECK_INT(m.hist[1].version, 5);
	CHECK_STR(m.last_result, "rolled_back");
	CHECK_INT(m.last_at, 1767312000);
	CHECK_STR(m.last_error, "on_rotate 'x' exited with status 1");
	CHECK_STR(m.last_op, "20260102T000000Z-0a1b2c3d");
	CHECK_UINT(m.failures, 2);
	CHECK_UINT(m.n_ok, 7);
	CHECK_UINT(m.n_failed, 1);
	CHECK_UINT(m.n_rolled_back, 2);
	check_round_trip(&m);
}

static void
test_meta_minimal_and_limits(void)
{
	static char		 big[65536];
	struct secret_meta	 m;
	char			 err[256], *p;
	int			 i;

	/* what a secret with no value yet writes */
	memset(&m, 0, sizeof m);
	check_round_trip(&m);
	CHECK_INT(parse("{\"version\": 0}", &m, err, sizeof err), 0);
	CHECK_INT(m.version, 0);
	CHECK_STR(m.fp, "");
	check_round_trip(&m);
	CHECK_INT(parse("{\"version\": 0, \"fingerprint\": null, \"role\": "
	    "null, \"last\": {\"result\": \"failed\", \"error\": null}}", &m,
	    err, sizeof err), 0);
	CHECK_STR(m.last_result, "failed");
	check_round_trip(&m);
	/* the largest of each number */
	CHECK_INT(parse("{\"version\": 9007199254740992, \"fingerprint\": "
	    "\"sha256:ffffffffffffffff\", \"created\": 1099511627776, "
	    "\"failures\": 1000000, \"counts\": {\"ok\": 9007199254740992}}",
	    &m, err, sizeof err), 0);
	CHECK_INT(m.version, (int64_t)1 << 53);
	check_round_trip(&m);
	/* 20 history entries: the most NAME.json keeps */
	p = big + sprintf(big, "{\"version\": 21, \"fingerprint\": "
	    "\"sha256:0000000000000015\", \"history\": [");
	for (i = 20; i >= 1; i--)
		p += sprintf(p, "%s{\"version\": %d, \"fingerprint\": "
		    "\"sha256:%016x\", \"created\": %d, \"retired\": %d}",
		    i < 20 ? ", " : "", i, i, 1000 + i, 1001 + i);
	strcpy(p, "]}");
	CHECK_INT(parse(big, &m, err, sizeof err), 0);
	CHECK_UINT(m.nhist, SECRET_HISTORY);
	CHECK_INT(m.hist[19].version, 1);
	check_round_trip(&m);
	/* a role as long as PostgreSQL allows, an error as long as kept */
	p = big + sprintf(big, "{\"version\": 0, \"role\": \"");
	memset(p, 'r', SECRET_ROLE_MAX);
	p += SECRET_ROLE_MAX;
	p += sprintf(p, "\", \"last\": {\"result\": \"ok\", \"error\": \"");
	memset(p, 'e', SECRET_ERROR_MAX - 1);
	p += SECRET_ERROR_MAX - 1;
	strcpy(p, "\"}}");
	CHECK_INT(parse(big, &m, err, sizeof err), 0);
	CHECK_UINT(strlen(m.role), SECRET_ROLE_MAX);
	CHECK_UINT(strlen(m.last_error), SECRET_ERROR_MAX - 1);
	check_round_trip(&m);
}

static void
check_bad(const char *buf, size_t len, const char *why)
{
	struct secret_meta	 m, zero;
	char			 err[256];
	int			 rc;

	/* a good parse first: a bad one must leave none of it */
	if (parse(good_meta, &m, err, sizeof err) != 0)
		tap_fail(__FILE__, __LINE__, "the good file does not parse");
	err[0] = '\0';
	rc = secret_meta_parse(buf, len, &m, err, sizeof err);
	memset(&zero, 0, sizeof zero);
	if (rc != -EBADMSG) {
		tap_diag("%s: secret_meta_parse = %d, expected -EBADMSG: %.*s",
		    why, rc, (int)len, buf);
		tap_case_failed = 1;
	} else if (err[0] == '\0') {
		tap_diag("%s: refused without a reason", why);
		tap_case_failed = 1;
	} else if (memcmp(&m, &zero, sizeof m) != 0) {
		tap_diag("%s: refused, but the struct is not cleared", why);
		tap_case_failed = 1;
	}
}

#define BAD(s, why)	check_bad((s), strlen(s), (why))

static void
test_meta_bad(void)
{
	static char	 big[65536];
	char		*p;
	int		 i;

	BAD("", "empty");
	BAD("not json", "not JSON");
	BAD("{\"version\": 1", "truncated");
	BAD("[1, 2]", "an array");
	BAD("7", "a number");
	BAD("{}", "no version");
	/* wrong types */
	BAD("{\"version\": \"1\"}", "version a string");
	BAD("{\"version\": 1.0, \"fingerprint\": \"sha256:0123456789abcdef\"}",
	    "version a real");
	BAD("{\"version\": true}", "version a bool");
	BAD("{\"version\": null}", "version null");
	BAD("{\"version\": 0, \"created\": \"yesterday\"}", "created a string");
	BAD("{\"version\": 0, \"role\": 5}", "role a number");
	BAD("{\"version\": 0, \"origin\": []}", "origin a list");
	BAD("{\"version\": 0, \"history\": {}}", "history an object");
	BAD("{\"version\": 0, \"history\": [1]}", "a history entry a number");
	BAD("{\"version\": 0, \"last\": \"ok\"}", "last a string");
	BAD("{\"version\": 0, \"last\": {\"result\": 1}}", "last.result a number");
	BAD("{\"version\": 0, \"failures\": \"3\"}", "failures a string");
	BAD("{\"version\": 0, \"counts\": []}", "counts a list");
	BAD("{\"version\": 0, \"counts\": {\"ok\": \"1\"}}", "counts.ok a string");
	/* negative and huge numbers */
	BAD("{\"version\": -1}", "version negative");
	BAD("{\"version\": 9007199254740993, \"fingerprint\": "
	    "\"sha256:0123456789abcdef\"}", "version past 2^53");
	BAD("{\"version\": 99999999999999999999}", "version past int64");
	BAD("{\"version\": 1e400}", "version past double");
	BAD("{\"version\": 0, \"created\": -5}", "created negative");
	BAD("{\"version\": 0, \"created\": 1099511627777}", "created past 2^40");
	BAD("{\"version\": 0, \"failures\": -1}", "failures negative");
	BAD("{\"version\": 0, \"failures\": 1000001}", "failures huge");
	BAD("{\"version\": 0, \"counts\": {\"failed\": -1}}", "a count negative");
	BAD("{\"version\": 0, \"last\": {\"result\": \"ok\", \"at\": -1}}",
	    "last.at negative");
	BAD("{\"version\": 0, \"history\": [{\"version\": 1, \"fingerprint\": "
	    "\"sha256:0123456789abcdef\", \"retired\": -1}]}",
	    "retired negative");
	/* fingerprints */
	BAD("{\"version\": 1}", "a version without a fingerprint");
	BAD("{\"version\": 0, \"fingerprint\": \"sha256:0123456789abcdef\"}",
	    "a fingerprint without a version");
	BAD("{\"version\": 1, \"fingerprint\": \"sha256:0123456789ABCDEF\"}",
	    "fingerprint in capitals");
	BAD("{\"version\": 1, \"fingerprint\": \"sha256:0123456789abcde\"}",
	    "fingerprint of 15");
	BAD("{\"version\": 1, \"fingerprint\": \"sha256:0123456789abcdef0\"}",
	    "fingerprint of 17");
	BAD("{\"version\": 1, \"fingerprint\": \"sha256:0123456789abcdeg\"}",
	    "fingerprint not hex");
	BAD("{\"version\": 1, \"fingerprint\": \"md5:0123456789abcdef\"}",
	    "fingerprint of md5");
	BAD("{\"version\": 1, \"fingerprint\": \"0123456789abcdef01234567\"}",
	    "fingerprint without its name");
	BAD("{\"version\": 0, \"history\": [{\"version\": 1, \"fingerprint\": "
	    "\"sha256:XYZ\"}]}", "a history fingerprint");
	BAD("{\"version\": 0, \"history\": [{\"version\": 1}]}",
	    "a history entry without a fingerprint");
	BAD("{\"version\": 0, \"history\": [{\"fingerprint\": "
	    "\"sha256:0123456789abcdef\"}]}",
	    "a history entry without a version");
	/* roles opsd puts in SQL: no quote gets through */
	BAD("{\"version\": 0, \"role\": \"app'; DROP ROLE x; --\"}",
	    "role with a quote");
	BAD("{\"version\": 0, \"role\": \"a\\\"b\"}", "role with a double quote");
	BAD("{\"version\": 0, \"role\": \"a b\"}", "role with a blank");
	BAD("{\"version\": 0, \"role\": \"r\\u00e9le\"}", "role not ASCII");
	BAD("{\"version\": 0, \"origin\": \"stolen\"}", "origin unknown");
	BAD("{\"version\": 0, \"last\": {\"result\": \"maybe\"}}",
	    "last.result unknown");
	BAD("{\"version\": 0, \"last\": {\"at\": 5}}", "last without result");
	/* duplicate keys: which one would count? */
	BAD("{\"version\": 1, \"fingerprint\": \"sha256:0123456789abcdef\", "
	    "\"version\": 2}", "a duplicate key");
	BAD("{\"version\": 0, \"counts\": {\"ok\": 1, \"ok\": 2}}",
	    "a duplicate key inside");
	/* NUL in a string, escaped or raw */
	BAD("{\"version\": 0, \"role\": \"a\\u0000b\"}", "an escaped NUL");
	BAD("{\"version\": 0, \"last\": {\"result\": \"ok\", \"error\": "
	    "\"x\\u0000y\"}}", "an escaped NUL in the error");
	check_bad("{\"version\": 0, \"role\": \"a\0b\"}", 26, "a raw NUL");
	check_bad("{\"version\": 0}\0", 15, "a NUL after the object");
	BAD("{\"version\": 0} {\"version\": 1}", "two objects");
	BAD("{\"version\": 0, \"origin\": \"\xff\"}", "not UTF-8");
	/* strings longer than NAME.json keeps */
	p = big + sprintf(big, "{\"version\": 0, \"role\": \"");
	memset(p, 'r', SECRET_ROLE_MAX + 1);
	strcpy(p + SECRET_ROLE_MAX + 1, "\"}");
	BAD(big, "role of 64");
	p = big + sprintf(big, "{\"version\": 0, \"last\": {\"result\": \"ok\", "
	    "\"error\": \"");
	memset(p, 'e', SECRET_ERROR_MAX);
	strcpy(p + SECRET_ERROR_MAX, "\"}}");
	BAD(big, "an error of 512");
	p = big + sprintf(big, "{\"version\": 0, \"last\": {\"result\": \"ok\", "
	    "\"op\": \"");
	memset(p, 'o', 64);
	strcpy(p + 64, "\"}}");
	BAD(big, "an op id of 64");
	/* 21 history entries */
	p = big + sprintf(big, "{\"version\": 22, \"fingerprint\": "
	    "\"sha256:0000000000000016\", \"history\": [");
	for (i = 21; i >= 1; i--)
		p += sprintf(p, "%s{\"version\": %d, \"fingerprint\": "
		    "\"sha256:%016x\"}", i < 21 ? ", " : "", i, i);
	strcpy(p, "]}");
	BAD(big, "21 history entries");
}

/* --- secret_env_scan ----------------------------------------------------- */

struct refs {
	char	names[8][32];
	int	user[8];
	int	line[8];
	int	n;
};

static void
collect(const char *name, size_t len, int user, int line, void *arg)
{
	struct refs	*r = arg;

	if (r->n >= 8 || len >= sizeof r->names[0])
		return;
	memcpy(r->names[r->n], name, len);
	r->names[r->n][len] = '\0';
	r->user[r->n] = user;
	r->line[r->n++] = line;
}

static int
scan(const char *text, struct refs *r, int *bad)
{
	memset(r, 0, sizeof *r);
	*bad = -7;
	return (secret_env_scan(text, collect, r, bad));
}

static void
test_env_scan_placeholders(void)
{
	struct refs	r;
	int		bad;

	CHECK_INT(scan("# app\nDB_PASSWORD={{secret:db}}\nDB_USER="
	    "{{secret_user:db}}\n\nKEY={{secret:jwt.v-2_x}}{{secret:k}}\n",
	    &r, &bad), 0);
	CHECK_INT(bad, -7);
	CHECK_INT(r.n, 4);
	CHECK_STR(r.names[0], "db");
	CHECK_INT(r.user[0], 0);
	CHECK_INT(r.line[0], 2);
	CHECK_STR(r.names[1], "db");
	CHECK_INT(r.user[1], 1);
	CHECK_INT(r.line[1], 3);
	CHECK_STR(r.names[2], "jwt.v-2_x");
	CHECK_INT(r.line[2], 5);
	CHECK_STR(r.names[3], "k");
	CHECK_INT(r.line[3], 5);
	/* other braces are text */
	CHECK_INT(scan("{{not}} {{secret}} {secret:a} {{ secret:a }} "
	    "{{Secret:a}} $${{x}} {{secret_usr:a}}", &r, &bad), 0);
	CHECK_INT(r.n, 0);
	CHECK_INT(scan("", &r, &bad), 0);
	CHECK_INT(r.n, 0);
	/* one brace too many on either side */
	CHECK_INT(scan("{{{secret:a}}}", &r, &bad), 0);
	CHECK_INT(r.n, 1);
	CHECK_STR(r.names[0], "a");
	/* no callback: only the check */
	bad = 0;
	CHECK_INT(secret_env_scan("A={{secret:a}}\n", NULL, NULL, &bad), 0);
	CHECK_INT(bad, 0);
}

static void
test_env_scan_malformed(void)
{
	static const struct {
		const char	*text;
		int		 line;
	} v[] = {
		{ "{{secret:}}", 1 },
		{ "{{secret_user:}}", 1 },
		{ "ok\n{{secret:a b}}", 2 },
		{ "\n\nX={{secret:abc", 3 },
		{ "{{secret:a\n}}", 1 },
		{ "a\nb\n{{secret:a/b}}\n", 3 },
		{ "{{secret:a'}}", 1 },
		{ "{{secret:a}}\n{{secret:$HOME}}", 2 },
		{ "{{secret:a}", 1 },
		{ "x={{secret_user:db}\ny=}}", 1 },
	};
	struct refs	r;
	size_t		i;
	int		bad, rc;

	for (i = 0; i < NITEMS(v); i++) {
		rc = scan(v[i].text, &r, &bad);
		if (rc != -1 || bad != v[i].line) {
			tap_diag("\"%s\": rc %d line %d, expected -1 at line %d",
			    v[i].text, rc, bad, v[i].line);
			tap_case_failed = 1;
		}
	}
}

int
main(void)
{
	RUN(test_encode_rfc4648_vectors);
	RUN(test_encode_url_alphabet);
	RUN(test_encode_space);
	RUN(test_value_len);
	RUN(test_generate_every_encoding_and_size);
	RUN(test_generate_refuses_bad_sizes);
	RUN(test_alnum_unbiased);
	RUN(test_meta_good_round_trip);
	RUN(test_meta_minimal_and_limits);
	RUN(test_meta_bad);
	RUN(test_env_scan_placeholders);
	RUN(test_env_scan_malformed);
	return (tap_done());
}
