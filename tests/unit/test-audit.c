/*
 * The pure parts of the audit room (daemon/audit/audit-env.c): the env
 * file parser (.env syntax with quotes, escapes, export and comments;
 * compose files' environment lists and maps; every malformed line
 * reported with its number and nothing else lost), which keys look like
 * credentials, and the strength of a value (placeholders, references,
 * classes, the estimate in bits, a trailing newline). Also the check
 * table's shape: ids unique, each with a function and a description.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-int.h"
#include "tap.h"

struct got {
	int	line[32];
	char	key[32][64];
	char	val[32][128];
	size_t	vlen[32];
	char	err[32][80];
	int	n;
};

static void
collect(int line, const char *key, const char *value, size_t vlen,
    const char *msg, void *arg)
{
	struct got	*g = arg;

	if (g->n >= 32)
		return;
	g->line[g->n] = line;
	if (key != NULL) {
		snprintf(g->key[g->n], sizeof g->key[0], "%s", key);
		memcpy(g->val[g->n], value, vlen < 127 ? vlen : 127);
		g->val[g->n][vlen < 127 ? vlen : 127] = '\0';
		g->vlen[g->n] = vlen;
	} else
		snprintf(g->err[g->n], sizeof g->err[0], "%s", msg);
	g->n++;
}

static struct got *
parse(const char *text, int flags)
{
	static struct got	g;

	memset(&g, 0, sizeof g);
	audit_env_parse(text, strlen(text), flags, collect, &g);
	return (&g);
}

static void
test_env_plain(void)
{
	struct got *g = parse("# comment\n\nA=1\nexport B = two words  \n"
	    "C=x # trailing comment\nD=a#b\nE=\n", 0);

	CHECK_INT(g->n, 5);
	CHECK_STR(g->key[0], "A");
	CHECK_STR(g->val[0], "1");
	CHECK_INT(g->line[0], 3);
	CHECK_STR(g->key[1], "B");
	CHECK_STR(g->val[1], "two words");
	CHECK_STR(g->val[2], "x");
	CHECK_STR(g->val[3], "a#b");
	CHECK_STR(g->key[4], "E");
	CHECK_UINT(g->vlen[4], 0);
}

static void
test_env_quotes(void)
{
	struct got *g = parse("A=\"a b\\n\\\"c\\\"\"\nB='x\\ny # z'\n"
	    "C=\"unclosed\nD=\"ok\" # comment\nE=\"x\" junk\r\n", 0);

	CHECK_INT(g->n, 5);
	CHECK_STR(g->val[0], "a b\n\"c\"");
	CHECK_STR(g->val[1], "x\\ny # z");
	CHECK_STR(g->key[2], "");
	CHECK_STR(g->err[2], "a quoted value has no closing quote");
	CHECK_INT(g->line[2], 3);
	CHECK_STR(g->val[3], "ok");
	CHECK_STR(g->err[4], "text after a quoted value");
}

static void
test_env_malformed(void)
{
	struct got *g = parse("just words\n=x\n9A=1\nOK=1\n", 0);

	CHECK_INT(g->n, 4);
	CHECK_STR(g->err[0], "not KEY=VALUE");
	CHECK_INT(g->line[1], 2);
	CHECK_STR(g->err[1], "not KEY=VALUE");
	CHECK_STR(g->err[2], "not KEY=VALUE");
	CHECK_STR(g->key[3], "OK");
}

static void
test_env_nul_and_no_newline(void)
{
	static const char buf[] = "A=1\nB=x\0y\nC=3";
	struct got	g;

	memset(&g, 0, sizeof g);
	audit_env_parse(buf, sizeof buf - 1, 0, collect, &g);
	CHECK_INT(g.n, 3);
	CHECK_STR(g.err[1], "a NUL byte");
	CHECK_STR(g.key[2], "C");
	CHECK_STR(g.val[2], "3");
}

static void
test_env_yaml(void)
{
	struct got *g = parse("services:\n  db:\n    image: postgres:15\n"
	    "    environment:\n      - POSTGRES_PASSWORD=changeme\n"
	    "      - \"API_TOKEN=abc\"\n    env:\n      DB_PASSWORD: "
	    "secret123\n      EMPTY:\n", AUDIT_ENV_YAML);

	/* image: postgres:15 is a key too; harmless, it is no credential */
	CHECK_INT(g->n, 4);
	CHECK_STR(g->key[0], "image");
	CHECK_STR(g->key[1], "POSTGRES_PASSWORD");
	CHECK_STR(g->val[1], "changeme");
	CHECK_STR(g->key[2], "API_TOKEN");
	CHECK_STR(g->val[2], "abc");
	CHECK_STR(g->key[3], "DB_PASSWORD");
	CHECK_STR(g->val[3], "secret123");
}

static void
test_credential_keys(void)
{
	CHECK(audit_key_is_credential("DB_PASSWORD"));
	CHECK(audit_key_is_credential("postgres_password"));
	CHECK(audit_key_is_credential("JWT_SECRET"));
	CHECK(audit_key_is_credential("GITHUB_TOKEN"));
	CHECK(audit_key_is_credential("STRIPE_API_KEY"));
	CHECK(audit_key_is_credential("APIKEY"));
	CHECK(audit_key_is_credential("AWS_SECRET_ACCESS_KEY"));
	CHECK(!audit_key_is_credential("DB_PASSWORD_FILE"));
	CHECK(!audit_key_is_credential("TLS_KEY_PATH"));
	CHECK(!audit_key_is_credential("AWS_ACCESS_KEY_ID"));
	CHECK(!audit_key_is_credential("PORT"));
	CHECK(!audit_key_is_credential("MONKEY"));
	CHECK(!audit_key_is_credential(""));
}

static void
test_strength(void)
{
	struct audit_strength	s;

	audit_strength("changeme\n", 9, &s);
	CHECK(s.placeholder);
	CHECK(s.trailing_newline);
	CHECK_UINT(s.length, 8);
	audit_strength("ChangeMe", 8, &s);
	CHECK(s.placeholder);
	audit_strength("your-api-key-here", 17, &s);
	CHECK(s.placeholder);
	audit_strength("${DB_PASSWORD}", 14, &s);
	CHECK(s.placeholder);
	CHECK(s.reference);
	audit_strength("<password>", 10, &s);
	CHECK(s.placeholder);
	audit_strength("secure_password", 15, &s);
	CHECK(s.placeholder);
	audit_strength("xxxxxxxxxxxx", 12, &s);
	CHECK(s.placeholder);
	audit_strength("0123456789012345", 16, &s);
	CHECK(!s.placeholder);
	CHECK_UINT(s.classes, 1);
	CHECK(s.bits > 53 && s.bits < 54);	/* 16 * log2(10) */
	audit_strength("q8Zr2mXv7pL1tK9wB4nC6yD3", 24, &s);
	CHECK(!s.placeholder);
	CHECK_UINT(s.classes, 3);
	CHECK(s.bits > 140);
	CHECK(!s.trailing_newline);
	audit_strength("", 0, &s);
	CHECK_UINT(s.length, 0);
	CHECK(s.bits == 0);
}

static void
test_severities(void)
{
	CHECK_INT(audit_sev_parse("critical"), AUDIT_CRITICAL);
	CHECK_INT(audit_sev_parse("info"), AUDIT_INFO);
	CHECK_INT(audit_sev_parse("severe"), -1);
	CHECK_STR(audit_sev_name(AUDIT_HIGH), "high");
}

static void
test_table(void)
{
	size_t	i, j;

	CHECK(audit_nchecks > 40);
	for (i = 0; i < audit_nchecks; i++) {
		CHECK(audit_checks[i].fn != NULL);
		CHECK(audit_checks[i].desc != NULL &&
		    audit_checks[i].desc[0] != '\0');
		CHECK(strchr(audit_checks[i].id, '.') != NULL);
		CHECK(audit_checks[i].sev >= 0 &&
		    audit_checks[i].sev < AUDIT_NSEV);
		if (audit_checks[i].scope == AUDIT_PG)
			CHECK(audit_checks[i].query >= 0 &&
			    audit_checks[i].query < AQ_N);
		for (j = i + 1; j < audit_nchecks; j++)
			if (strcmp(audit_checks[i].id, audit_checks[j].id) == 0)
				tap_diag("%s twice", audit_checks[i].id);
	}
}

int
main(void)
{
	RUN(test_env_plain);
	RUN(test_env_quotes);
	RUN(test_env_malformed);
	RUN(test_env_nul_and_no_newline);
	RUN(test_env_yaml);
	RUN(test_credential_keys);
	RUN(test_strength);
	RUN(test_severities);
	RUN(test_table);
	return (tap_done());
}
