/*
 * The deploy room's pure parts: versions, templates, pid files and
 * /proc's children lists, nginx's workers before and after a reload, and
 * the parser of state_dir/deploy/NAME.json against what the daemon
 * writes and against hostile files.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "deploy-int.h"
#include "tap.h"
#include "util.h"

#define OPID	"20261201T160928Z-b89a57ff"

static void
test_version_ok(void)
{
	char	long_v[80];

	CHECK(deploy_version_ok("1"));
	CHECK(deploy_version_ok("2.0.1"));
	CHECK(deploy_version_ok("v2.0-rc.1+build_7"));
	CHECK(!deploy_version_ok(""));
	CHECK(!deploy_version_ok(NULL));
	CHECK(!deploy_version_ok(".1"));
	CHECK(!deploy_version_ok("-1"));
	CHECK(!deploy_version_ok("1 2"));
	CHECK(!deploy_version_ok("1;rm"));
	CHECK(!deploy_version_ok("1/2"));
	CHECK(!deploy_version_ok("$(x)"));
	CHECK(!deploy_version_ok("a:b"));
	memset(long_v, 'a', 64);
	long_v[64] = '\0';
	CHECK(deploy_version_ok(long_v));
	long_v[64] = 'a';
	long_v[65] = '\0';
	CHECK(!deploy_version_ok(long_v));
}

static void
test_expand(void)
{
	struct deploy_vars	v = { "api", "green", "2.0", 8002 };
	char			*s;

	s = deploy_expand("systemctl start api@{slot} --v {version} "
	    ":{port} {deploy}", &v);
	CHECK_STR(s, "systemctl start api@green --v 2.0 :8002 api");
	free(s);
	/* nginx's own braces and unknown names stay */
	s = deploy_expand("upstream {deploy} {\n server x:{port}; {nope} {\n}",
	    &v);
	CHECK_STR(s, "upstream api {\n server x:8002; {nope} {\n}");
	free(s);
	s = deploy_expand("", &v);
	CHECK_STR(s, "");
	free(s);
	s = deploy_expand("{port}{port}{port}{port}{port}{port}{port}{port}"
	    "{port}{port}{port}{port}{port}{port}{port}{port}{port}", &v);
	CHECK_INT((int)strlen(s), 17 * 4);
	free(s);
	s = deploy_expand("{", &v);
	CHECK_STR(s, "{");
	free(s);
	s = deploy_expand(deploy_default_template, &v);
	CHECK_CONTAINS(s, "upstream api {");
	CHECK_CONTAINS(s, "server 127.0.0.1:8002;");
	free(s);
}

static void
test_pid_parse(void)
{
	pid_t	pid = 0;

	CHECK_INT(deploy_pid_parse("1234\n", 5, &pid), 0);
	CHECK_INT(pid, 1234);
	CHECK_INT(deploy_pid_parse("  77 \r\n", 7, &pid), 0);
	CHECK_INT(pid, 77);
	CHECK_INT(deploy_pid_parse("", 0, &pid), -EINVAL);
	CHECK_INT(deploy_pid_parse("\n", 1, &pid), -EINVAL);
	CHECK_INT(deploy_pid_parse("1\n", 2, &pid), -EINVAL);
	CHECK_INT(deploy_pid_parse("0", 1, &pid), -EINVAL);
	CHECK_INT(deploy_pid_parse("-5", 2, &pid), -EINVAL);
	CHECK_INT(deploy_pid_parse("12x", 3, &pid), -EINVAL);
	CHECK_INT(deploy_pid_parse("12 13", 5, &pid), -EINVAL);
	CHECK_INT(deploy_pid_parse("99999999999", 11, &pid), -EINVAL);
	CHECK_INT(deploy_pid_parse("12\0", 3, &pid), -EINVAL);
}

static void
test_children_parse(void)
{
	pid_t	v[4];

	CHECK_UINT(deploy_children_parse("12 13 ", 6, v, 4), 2);
	CHECK_INT(v[0], 12);
	CHECK_INT(v[1], 13);
	CHECK_UINT(deploy_children_parse("", 0, v, 4), 0);
	CHECK_UINT(deploy_children_parse("5 6 7 8 9 10", 12, v, 4), 4);
	CHECK_UINT(deploy_children_parse("5 x 7", 5, v, 4), 1);
	CHECK_UINT(deploy_children_parse("5 7x", 4, v, 4), 1);
	CHECK_UINT(deploy_children_parse("1 2", 3, v, 4), 0);
	CHECK_UINT(deploy_children_parse("44\n", 3, v, 4), 1);
	CHECK_UINT(deploy_children_parse("99999999999 3", 13, v, 4), 0);
}

static void
test_workers_changed(void)
{
	struct deploy_workers	a, b;

	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	a.master = b.master = 100;
	a.v[0] = 101;
	a.v[1] = 102;
	a.n = 2;
	b = a;
	CHECK(!deploy_workers_changed(&a, &b));
	/* the old ones still draining, a new one started: took effect */
	b.v[2] = 103;
	b.n = 3;
	CHECK(deploy_workers_changed(&a, &b));
	/* old ones gone, none new (a reload refused, workers died) */
	b.n = 1;
	CHECK(!deploy_workers_changed(&a, &b));
	/* another master: a restart or a binary upgrade */
	b = a;
	b.master = 200;
	CHECK(deploy_workers_changed(&a, &b));
	b.master = 0;
	CHECK(!deploy_workers_changed(&a, &b));
}

static const char good_state[] =
    "{\"format\": 1,"
    " \"active\": {\"slot\": \"green\", \"version\": \"2.0\", \"since\": "
    "1796140000, \"irreversible\": true},"
    " \"previous\": {\"slot\": \"blue\", \"version\": \"1.0\", \"running\": "
    "true, \"until\": 1796140600},"
    " \"pending\": {\"op\": \"" OPID "\", \"existed\": true},"
    " \"counts\": {\"ok\": 3, \"failed\": 1, \"rolled_back\": 2},"
    " \"history\": [{\"op\": \"" OPID "\", \"mode\": \"deploy\", "
    "\"version\": \"2.0\", \"from_version\": \"1.0\", \"slot\": \"green\", "
    "\"result\": \"ok\", \"step\": \"\", \"started\": 1796140000, "
    "\"duration_ms\": 840, \"cutover_ms\": 259}]}";

static void
test_state_parse(void)
{
	struct deploy_state	st, st2;
	char			err[160], *text;
	json_t			*j;

	CHECK_INT(deploy_state_parse(good_state, strlen(good_state), &st, err,
	    sizeof err), 0);
	CHECK(st.known);
	CHECK_INT(st.active_slot, SLOT_GREEN);
	CHECK_STR(st.active_version, "2.0");
	CHECK(st.irreversible);
	CHECK(st.has_previous);
	CHECK_INT(st.prev_slot, SLOT_BLUE);
	CHECK(st.prev_running);
	CHECK_INT(st.prev_until, 1796140600);
	CHECK_STR(st.pending_op, OPID);
	CHECK(st.pending_existed);
	CHECK_UINT(st.n_rolled_back, 2);
	CHECK_UINT(st.nhist, 1);
	CHECK_INT(st.hist[0].cutover_ms, 259);
	CHECK_STR(st.hist[0].from_version, "1.0");
	/* what the daemon writes reads back the same */
	j = deploy_state_json(&st);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	CHECK_INT(deploy_state_parse(text, strlen(text), &st2, err,
	    sizeof err), 0);
	CHECK(memcmp(&st, &st2, sizeof st) == 0);
	free(text);
	/* the smallest state: active only */
	CHECK_INT(deploy_state_parse("{\"format\":1,\"active\":{\"slot\":"
	    "\"blue\"}}", 37, &st, err, sizeof err), 0);
	CHECK_STR(st.active_version, "");
	CHECK(!st.has_previous);
	CHECK_INT(deploy_state_parse("{\"format\":1,\"active\":{\"slot\":"
	    "\"blue\"},\"previous\":null}", 53, &st, err, sizeof err), 0);
	CHECK(!st.has_previous);
}

static void
bad(const char *text, const char *why)
{
	struct deploy_state	st;
	char			err[160];

	memset(&st, 0xa5, sizeof st);
	if (deploy_state_parse(text, strlen(text), &st, err, sizeof err) !=
	    -EBADMSG)
		tap_diag("accepted: %s", text);
	else if (strstr(err, why) == NULL)
		tap_diag("'%s': error '%s', not '%s'", text, err, why);
	else if (st.known || st.nhist != 0 || st.active_version[0] != '\0')
		tap_diag("'%s': state not cleared", text);
	else
		return;
	tap_case_failed = 1;
}

#define ACT	"\"active\":{\"slot\":\"blue\",\"version\":\"1.0\"}"

static void
test_state_hostile(void)
{
	char	*big, *p;
	int	 i;

	bad("", "not JSON");
	bad("[]", "not a JSON object");
	bad("{\"format\":2," ACT "}", "format");
	bad("{" ACT "}", "format");
	bad("{\"format\":1}", "active is missing");
	bad("{\"format\":1,\"active\":{\"slot\":\"red\"}}", "active.slot");
	bad("{\"format\":1,\"active\":{\"slot\":\"blue\",\"version\":"
	    "\"1;rm -rf /\"}}", "active.version");
	bad("{\"format\":1,\"active\":{\"slot\":\"blue\",\"since\":-1}}",
	    "active.since");
	bad("{\"format\":1,\"active\":{\"slot\":\"blue\",\"irreversible\":1}}",
	    "irreversible");
	bad("{\"format\":1," ACT ",\"previous\":{\"slot\":\"blue\","
	    "\"version\":\"0.9\"}}", "same slot");
	bad("{\"format\":1," ACT ",\"previous\":{\"slot\":\"green\"}}",
	    "previous.version");
	bad("{\"format\":1," ACT ",\"previous\":{\"slot\":\"green\","
	    "\"version\":\"../x\"}}", "previous.version");
	bad("{\"format\":1," ACT ",\"previous\":{\"slot\":\"green\","
	    "\"version\":\"1\",\"running\":\"yes\"}}", "previous.running");
	bad("{\"format\":1," ACT ",\"pending\":{\"op\":\"../../etc\"}}",
	    "pending.op");
	bad("{\"format\":1," ACT ",\"counts\":{\"ok\":-1}}", "counts");
	bad("{\"format\":1," ACT ",\"degraded\":7}", "degraded");
	bad("{\"format\":1," ACT ",\"history\":{}}", "history");
	bad("{\"format\":1," ACT ",\"history\":[{\"op\":\"x\"}]}",
	    "op id");
	bad("{\"format\":1," ACT ",\"history\":[{\"op\":\"" OPID "\","
	    "\"mode\":\"deploy\",\"version\":\"2\",\"slot\":\"green\","
	    "\"result\":\"maybe\",\"started\":1,\"duration_ms\":1}]}",
	    "result");
	bad("{\"format\":1," ACT ",\"history\":[{\"op\":\"" OPID "\","
	    "\"mode\":\"deploy\",\"version\":\"2\",\"slot\":\"green\","
	    "\"result\":\"ok\",\"step\":\"../x\",\"started\":1,"
	    "\"duration_ms\":1}]}", "step");
	bad("{\"format\":1,\"format\":1," ACT "}", "not JSON");
	bad("{\"format\":1,\"active\":{\"slot\":\"blue\",\"version\":"
	    "\"a\\u0000b\"}}", "not JSON");
	/* more than 20 history entries */
	big = xmalloc(64 * 1024);
	p = big + sprintf(big, "{\"format\":1," ACT ",\"history\":[");
	for (i = 0; i < 21; i++)
		p += sprintf(p, "%s{\"op\":\"" OPID "\",\"mode\":\"deploy\","
		    "\"version\":\"2\",\"slot\":\"green\",\"result\":\"ok\","
		    "\"started\":1,\"duration_ms\":1}", i ? "," : "");
	sprintf(p, "]}");
	bad(big, "at most 20");
	free(big);
	/* larger than the bound, whatever it holds */
	big = xmalloc(DEPLOY_STATE_MAX + 2);
	memset(big, ' ', DEPLOY_STATE_MAX + 1);
	big[DEPLOY_STATE_MAX + 1] = '\0';
	bad(big, "larger than");
	free(big);
}

static void
test_state_add(void)
{
	struct deploy_state	st;
	struct deploy_entry	e;
	int			i;

	memset(&st, 0, sizeof st);
	memset(&e, 0, sizeof e);
	for (i = 0; i < DEPLOY_HISTORY + 5; i++) {
		e.started = i;
		deploy_state_add(&st, &e);
	}
	CHECK_UINT(st.nhist, DEPLOY_HISTORY);
	CHECK_INT(st.hist[0].started, DEPLOY_HISTORY + 4);
	CHECK_INT(st.hist[DEPLOY_HISTORY - 1].started, 5);
}

int
main(void)
{
	RUN(test_version_ok);
	RUN(test_expand);
	RUN(test_pid_parse);
	RUN(test_children_parse);
	RUN(test_workers_changed);
	RUN(test_state_parse);
	RUN(test_state_hostile);
	RUN(test_state_add);
	return (tap_done());
}
