/*
 * The maintenance room's state file parser (daemon/maint/maint-file.c):
 * a file opsd wrote goes back to the same windows; every kind of bad one
 * is refused with a reason and leaves nothing behind; names and reasons
 * are held to their shapes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "maint.h"
#include "tap.h"

static struct maint_window	v[MAINT_MAX], back[MAINT_MAX];

static void
test_round_trip(void)
{
	unsigned int	 n, m;
	json_t		*j;
	char		*text, err[256];

	memset(v, 0, sizeof v);
	snprintf(v[0].name, sizeof v[0].name, "api");
	snprintf(v[0].source, sizeof v[0].source, "cli");
	snprintf(v[0].reason, sizeof v[0].reason, "db upgrade \xc3\xa9");
	v[0].started = 1764612000;
	v[0].until = 1764613800;
	v[0].uid = 0;
	snprintf(v[1].name, sizeof v[1].name, "*");
	snprintf(v[1].source, sizeof v[1].source, "deploy");
	v[1].started = 1764612000;
	v[1].until = 0;
	v[1].uid = -1;
	n = 2;
	j = maint_file_json(v, n);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	CHECK_INT(maint_parse(text, strlen(text), back, &m, err, sizeof err),
	    0);
	CHECK_INT(m, 2);
	CHECK(memcmp(back, v, sizeof v[0] * 2) == 0);
	free(text);
}

static void
refuse(const char *text, const char *why)
{
	unsigned int	n = 99;
	char		err[256] = "";

	memset(back, 0x5a, sizeof back);
	if (maint_parse(text, strlen(text), back, &n, err, sizeof err) == 0)
		tap_diag("accepted: %s", text);
	CHECK(n == 0);
	CHECK(err[0] != '\0');
	if (strstr(err, why) == NULL)
		tap_diag("'%s' for %s, expected '%s'", err, text, why);
	CHECK(strstr(err, why) != NULL);
	CHECK(back[0].name[0] == '\0');
}

#define W(body)	"{\"version\":1,\"windows\":[{" body "}]}"
#define GOOD	"\"source\":\"cli\",\"started\":1,\"until\":2,\"uid\":0"

static void
test_refused(void)
{
	refuse("", "not JSON");
	refuse("[]", "not an object");
	refuse("{\"version\":2,\"windows\":[]}", "version");
	refuse("{\"version\":1}", "windows");
	refuse("{\"version\":1,\"windows\":[1]}", "not an object");
	refuse(W("\"name\":\"a/b\"," GOOD), "bad name");
	refuse(W("\"name\":\"../x\"," GOOD), "bad name");
	refuse(W("\"name\":\"\"," GOOD), "bad name");
	refuse(W("\"name\":\"a\",\"source\":\"x\",\"started\":1,\"until\":2,"
	    "\"uid\":0"), "bad source");
	refuse(W("\"name\":\"a\",\"reason\":\"a\\nb\"," GOOD), "bad reason");
	refuse(W("\"name\":\"a\",\"source\":\"cli\",\"started\":5,"
	    "\"until\":2,\"uid\":0"), "bad until");
	refuse(W("\"name\":\"a\",\"source\":\"cli\",\"started\":-1,"
	    "\"until\":2,\"uid\":0"), "bad started");
	refuse(W("\"name\":\"a\",\"source\":\"cli\",\"started\":1,"
	    "\"until\":2,\"uid\":-5"), "bad uid");
	refuse("{\"version\":1,\"windows\":[{\"name\":\"a\"," GOOD "},"
	    "{\"name\":\"a\"," GOOD "}]}", "twice");
	refuse("{\"version\":1,\"version\":1,\"windows\":[]}", "not JSON");
}

static void
test_shapes(void)
{
	char	long_reason[MAINT_REASON_MAX + 2];

	CHECK(maint_name_ok("api"));
	CHECK(maint_name_ok("*"));
	CHECK(maint_name_ok("a.b-c_d"));
	CHECK(!maint_name_ok("a b"));
	CHECK(!maint_name_ok("**"));
	CHECK(maint_reason_ok(""));
	CHECK(!maint_reason_ok("\x01"));
	CHECK(!maint_reason_ok("\xff"));
	memset(long_reason, 'x', sizeof long_reason - 1);
	long_reason[sizeof long_reason - 1] = '\0';
	CHECK(!maint_reason_ok(long_reason));
	long_reason[MAINT_REASON_MAX] = '\0';
	CHECK(maint_reason_ok(long_reason));
}

int
main(void)
{
	RUN(test_round_trip);
	RUN(test_refused);
	RUN(test_shapes);
	return (tap_done());
}
