/*
 * The backup manifest parser (backup_manifest_parse, a pure function:
 * bytes in, a manifest or a reason out), the own-name check retention
 * relies on, and scratch database names (db_scratch_name and the SQL
 * that start-up recovery uses to find them).
 */
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backup-int.h"
#include "db.h"
#include "tap.h"

#define ID	"app-20260131T020000Z"
#define SHA	"0123456789abcdef0123456789abcdef" \
		"0123456789abcdef0123456789abcdef"
#define GOOD	"{\"backup\": \"app\", \"id\": \"" ID "\", \"database\": " \
		"\"main\", \"file\": \"" ID ".dump\", \"server_version\": " \
		"\"15.4\", \"pg_dump_version\": null, \"start\": 1769824800, " \
		"\"start_iso\": \"2026-01-31T02:00:00Z\", \"end\": 1769824805, " \
		"\"end_iso\": \"2026-01-31T02:00:05Z\", \"bytes\": 12345, " \
		"\"sha256\": \"" SHA "\", \"status\": \"ok\", \"verify\": " \
		"null, \"upload\": null}"

static char	err[320];

static json_t *
parse(const char *s)
{
	err[0] = '\0';
	return (backup_manifest_parse("app", ID, s, strlen(s), err,
	    sizeof err));
}

/* GOOD with key replaced by a raw JSON value (NULL: removed) */
static json_t *
parse_with(const char *key, const char *raw)
{
	json_t	*m, *v = NULL;
	char	*s, *out;
	json_t	*r;

	m = json_loads(GOOD, 0, NULL);
	if (raw != NULL)
		v = json_loads(raw, JSON_DECODE_ANY, NULL);
	if (raw != NULL && v == NULL)
		tap_diag("bad test value %s", raw);
	if (v != NULL)
		json_object_set_new(m, key, v);
	else
		json_object_del(m, key);
	s = json_dumps(m, 0);
	json_decref(m);
	out = s;
	r = parse(out);
	free(s);
	return (r);
}

static void
expect_bad(const char *key, const char *raw, const char *why)
{
	json_t	*m = parse_with(key, raw);

	CHECK(m == NULL);
	CHECK_CONTAINS(err, why);
	json_decref(m);
}

static void
test_good(void)
{
	json_t	*m = parse(GOOD);

	CHECK(m != NULL);
	CHECK_STR(err, "");
	CHECK_STR(m_str(m, "file"), ID ".dump");
	json_decref(m);
	/* verify/upload results as the daemon writes them */
	m = parse_with("verify", "{\"ok\": true, \"at\": 1}");
	CHECK(m != NULL && m_verified(m));
	json_decref(m);
	m = parse_with("upload", "{\"ok\": false, \"error\": \"x\"}");
	CHECK(m != NULL);
	json_decref(m);
	/* a field a newer opsd may add is kept */
	m = parse_with("compression", "\"zstd\"");
	CHECK(m != NULL);
	CHECK_STR(m_str(m, "compression"), "zstd");
	json_decref(m);
	/* no id from the file name: the manifest's own must still be one */
	m = backup_manifest_parse("app", NULL, GOOD, strlen(GOOD), err,
	    sizeof err);
	CHECK(m != NULL);
	json_decref(m);
}

static void
test_paths(void)
{
	expect_bad("file", "\"../../../etc/passwd\"", "\"file\" is not");
	expect_bad("file", "\"/etc/passwd\"", "\"file\" is not");
	expect_bad("file", "\"app-20260130T020000Z.dump\"", "\"file\" is not");
	expect_bad("file", "\"other-20260131T020000Z.dump\"",
	    "\"file\" is not");
	expect_bad("file", "\"" ID ".dump/../../x\"", "\"file\" is not");
	expect_bad("file", "\"" ID ".json\"", "\"file\" is not");
	expect_bad("file", "\"" ID "\"", "\"file\" is not");
	expect_bad("file", "\"\"", "\"file\" is not");
	expect_bad("id", "\"app-20260130T020000Z\"", "does not match");
	expect_bad("id", "\"../app-20260131T020000Z\"", "\"id\" is not");
	expect_bad("id", "\"app-2026013XT020000Z\"", "\"id\" is not");
	expect_bad("id", "\"app-20261331T020000Z\"", "\"id\" is not");
	expect_bad("id", "\"app2-20260131T020000Z\"", "\"id\" is not");
	expect_bad("backup", "\"other\"", "another backup");
	expect_bad("backup", "\"App\"", "another backup");
}

static void
test_types(void)
{
	expect_bad("backup", NULL, "\"backup\" is missing");
	expect_bad("id", NULL, "\"id\" is missing");
	expect_bad("file", NULL, "\"file\" is missing");
	expect_bad("start", NULL, "\"start\" is missing");
	expect_bad("bytes", NULL, "\"bytes\" is missing");
	expect_bad("sha256", NULL, "\"sha256\" is missing");
	expect_bad("backup", "42", "not a string");
	expect_bad("id", "[\"" ID "\"]", "not a string");
	expect_bad("file", "{}", "not a string");
	expect_bad("start", "\"1769824800\"", "not an integer");
	expect_bad("start", "1769824800.5", "not an integer");
	expect_bad("start", "-1", "out of range");
	expect_bad("start", "9223372036854775807", "out of range");
	expect_bad("end", "true", "not an integer");
	expect_bad("bytes", "-5", "non-negative");
	expect_bad("bytes", "1e30", "non-negative");
	expect_bad("sha256", "\"" SHA "00\"", "64 lower-case hex");
	expect_bad("sha256", "\"0123456789ABCDEF0123456789abcdef"
	    "0123456789abcdef0123456789abcdef\"", "64 lower-case hex");
	expect_bad("database", "7", "\"database\" is not a string");
	expect_bad("status", "null", "\"status\" is not a string");
	expect_bad("pg_dump_version", "[]", "not a string");
	expect_bad("verify", "\"ok\"", "\"verify\" is not an object");
	expect_bad("verify", "{\"ok\": \"yes\"}", "not a boolean");
	expect_bad("upload", "[true]", "\"upload\" is not an object");
}

static void
test_hostile_bytes(void)
{
	static const char *const bad[] = {
		"", " ", "[]", "\"x\"", "null", "42", "{",
		"{\"backup\": \"app\"",		/* truncated */
		GOOD "x", "{} {}",
		/* a number too big for any integer */
		"{\"backup\": \"app\", \"start\": 99999999999999999999999}",
		/* a duplicate key: which one would count? */
		"{\"backup\": \"app\", \"backup\": \"app\"}",
		/* NUL inside a string */
		"{\"backup\": \"app\\u0000x\"}",
	};
	char	buf[600], big[8192];
	json_t	*m;
	size_t	 i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		m = parse(bad[i]);
		if (m != NULL)
			tap_diag("accepted: %s", bad[i]);
		CHECK(m == NULL);
		CHECK(err[0] != '\0');
		json_decref(m);
	}
	/* not UTF-8, and the reason stays printable ASCII */
	snprintf(buf, sizeof buf, "{\"backup\": \"app\xff\xfe\x1b[31m\"}");
	m = parse(buf);
	CHECK(m == NULL);
	for (i = 0; err[i] != '\0'; i++)
		CHECK(err[i] >= 0x20 && err[i] <= 0x7e);
	/* bytes after a NUL are not ignored */
	memcpy(buf, GOOD, sizeof GOOD);
	m = backup_manifest_parse("app", ID, buf, sizeof GOOD, err,
	    sizeof err);
	CHECK(m == NULL);
	/* deep nesting */
	memset(big, '[', sizeof big);
	m = backup_manifest_parse("app", ID, big, sizeof big, err,
	    sizeof err);
	CHECK(m == NULL);
	/* too large */
	m = backup_manifest_parse("app", ID, big, BACKUP_MANIFEST_MAX + 1,
	    err, sizeof err);
	CHECK(m == NULL);
	CHECK_CONTAINS(err, "larger than");
}

static void
test_own_name(void)
{
	CHECK(backup_own_name("app", ID ".dump", ".dump"));
	CHECK(backup_own_name("app", ID, ""));
	CHECK(!backup_own_name("app", ID ".dump", ".json"));
	CHECK(!backup_own_name("app", "app-2-20260131T020000Z.dump", ".dump"));
	CHECK(!backup_own_name("app", "../" ID ".dump", ".dump"));
	CHECK(!backup_own_name("app", "app-20260131T02000Z.dump", ".dump"));
	CHECK(!backup_own_name("", "-20260131T020000Z", ""));
	CHECK(backup_id_time("app", ID) == 1769824800);
	CHECK(backup_id_time("app", "app-20261301T020000Z") == -1);
	CHECK(backup_id_time("app", "app-20260101T250000Z") == -1);
	CHECK(backup_id_time("other", ID) == -1);
}

/* Does the listing SQL's pattern (either alternative) match name? */
static int
sql_matches(const char *sql, const char *name)
{
	const char	*p = sql;
	char		 pat[256];
	regex_t		 re;
	int		 hit = 0;
	size_t		 n;

	while ((p = strstr(p, "datname ~ '")) != NULL) {
		p += strlen("datname ~ '");
		n = strcspn(p, "'");
		snprintf(pat, sizeof pat, "%.*s", (int)n, p);
		if (regcomp(&re, pat, REG_EXTENDED | REG_NOSUB) != 0) {
			tap_diag("bad pattern %s", pat);
			return (-1);
		}
		hit |= regexec(&re, name, 0, NULL, 0) == 0;
		regfree(&re);
		p += n;
	}
	return (hit);
}

static void
test_scratch_names(void)
{
	static const char *const pairs[][2] = {
		{ "app.x", "app_x" },
		{ "App", "app" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-one",
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-two" },
	};
	char	*a, *b, *sa, *sb;
	size_t	 i;

	for (i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		a = db_scratch_name("verify", pairs[i][0], 1769824800);
		b = db_scratch_name("verify", pairs[i][1], 1769824800);
		sa = db_scratch_list_sql("verify", pairs[i][0]);
		sb = db_scratch_list_sql("verify", pairs[i][1]);
		if (strcmp(a, b) == 0)
			tap_diag("%s and %s share %s", pairs[i][0],
			    pairs[i][1], a);
		CHECK(strcmp(a, b) != 0);
		CHECK(strlen(a) <= 63 && strlen(b) <= 63);
		CHECK(strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789_") ==
		    strlen(a));
		/* recovery finds its own and only its own */
		CHECK_INT(sql_matches(sa, a), 1);
		CHECK_INT(sql_matches(sb, b), 1);
		CHECK_INT(sql_matches(sa, b), 0);
		CHECK_INT(sql_matches(sb, a), 0);
		free(a);
		free(b);
		free(sa);
		free(sb);
	}
	/* stable: the same owner and time give the same name */
	a = db_scratch_name("verify", "app", 1769824800);
	b = db_scratch_name("verify", "app", 1769824800);
	CHECK_STR(a, b);
	CHECK(strncmp(a, "opsd_verify_app_", 16) == 0);
	CHECK(strcmp(a + strlen(a) - 15, "_20260131020000") == 0);
	free(a);
	free(b);
	/* an owner whose name merely starts the same is not found */
	a = db_scratch_name("verify", "app-2", 1769824800);
	sa = db_scratch_list_sql("verify", "app");
	CHECK_INT(sql_matches(sa, a), 0);
	/* the previous version's names are still found, for one release */
	CHECK_INT(sql_matches(sa, "opsd_verify_app_20260131020000"), 1);
	CHECK_INT(sql_matches(sa, "opsd_verify_app_2_20260131020000"), 0);
	free(a);
	free(sa);
}

int
main(void)
{
	RUN(test_good);
	RUN(test_paths);
	RUN(test_types);
	RUN(test_hostile_bytes);
	RUN(test_own_name);
	RUN(test_scratch_names);
	return (tap_done());
}
