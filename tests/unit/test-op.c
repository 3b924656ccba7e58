/*
 * The op journal (daemon/core/op.c): files written at each step and
 * removed at the finish, the bounded history, one op per kind and object,
 * recovery of an op left at each step (a crash is a journal closed without
 * op_finish, then opened again), unknown kinds and steps abandoned, and
 * hostile state directories: bad names, ids that do not match, paths in
 * fields, truncated and huge files, links, FIFOs, directories. With
 * -Dfault_injection=true, also the kill points (in a forked child).
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "op.h"
#include "tap.h"
#include "util.h"

static char			 top[] = "/tmp/opsd-test-op.XXXXXX";
static int			 ncase;
static char			 dir[256];
static struct opsd		 o;
static struct opsd_config	 conf;

static const char *const test_steps[] = { "one", "two", "three" };

/* What the fake kinds were asked to do. */
static struct {
	int		 resumed;
	int		 rolled_back;
	unsigned int	 step;
	char		 run[64];
	int		 recovered;
	struct op	*later;		/* to finish asynchronously */
} calls;

static void
fake_resume(struct opsd *ctx, struct op *op)
{
	const char	*run = op_get(op, "run");

	calls.resumed++;
	calls.step = op_step_index(op);
	calls.recovered = op_recovered(op);
	snprintf(calls.run, sizeof calls.run, "%s", run ? run : "");
	/* the kind decides by the step: past "two" it goes on */
	if (op_step_index(op) == 2)
		calls.later = op;
	else if (op_step_index(op) == 1) {
		op_step(op, 2);
		op_finish(op, OP_OK, NULL);
	} else
		op_finish(op, OP_ROLLED_BACK, "undone at %s",
		    op_step_name(op));
}

static void
fake_rollback(struct opsd *ctx, struct op *op)
{
	calls.rolled_back++;
	calls.step = op_step_index(op);
	op_finish(op, OP_ROLLED_BACK, "rolled back");
}

static const struct op_kind kind_resume = {
	"test.resume", test_steps, 3, fake_resume, NULL, 0
};
static const struct op_kind kind_rollback = {
	"test.rollback", test_steps, 3, NULL, fake_rollback, 0
};
static const struct op_kind kind_none = {
	"test.none", test_steps, 3, NULL, NULL, 0
};
static const struct op_kind kind_gone = {
	"test.gone", test_steps, 3, NULL, NULL, 0
};
/* a cutover and a restart of one service: they exclude each other */
static const struct op_kind kind_svc_a = {
	"test.svc-a", test_steps, 3, NULL, fake_rollback, 1
};
static const struct op_kind kind_svc_b = {
	"test.svc-b", test_steps, 3, NULL, fake_rollback, 1
};
static const struct op_kind *const all_kinds[] = {
	&kind_resume, &kind_rollback, &kind_none, &kind_svc_a, &kind_svc_b,
	NULL
};

/* Events seen, by type. */
static struct {
	int	steps;
	int	finished;
	int	interrupted;
	char	outcome[32];
	char	action[32];
	char	recovered[8];
	char	last_step[32];
} seen;

/* A field of the event, or "" */
static const char *
field(const struct evt *ev, const char *key)
{
	unsigned int	i;

	for (i = 0; i < ev->nfields; i++)
		if (strcmp(ev->fields[i].key, key) == 0)
			return (ev->fields[i].value);
	return ("");
}

static void
sink(const struct evt *ev, void *arg)
{
	const char	*v;

	if (ev->type == &EVT_OP_STEP) {
		seen.steps++;
		v = field(ev, "op_step");
		snprintf(seen.last_step, sizeof seen.last_step, "%s", v);
	} else if (ev->type == &EVT_OP_FINISHED) {
		seen.finished++;
		snprintf(seen.outcome, sizeof seen.outcome, "%s",
		    field(ev, "outcome"));
		snprintf(seen.recovered, sizeof seen.recovered, "%s",
		    field(ev, "recovered"));
	} else if (ev->type == &EVT_OP_INTERRUPTED) {
		seen.interrupted++;
		snprintf(seen.action, sizeof seen.action, "%s",
		    field(ev, "action"));
	}
}

/* A fresh state dir and journal for one case. */
static void
open_case(void)
{
	snprintf(dir, sizeof dir, "%s/c%d", top, ++ncase);
	if (mkdir(dir, 0750) == -1)
		tap_diag("mkdir %s: %s", dir, strerror(errno));
	memset(&o, 0, sizeof o);
	memset(&conf, 0, sizeof conf);
	conf.state_dir = dir;
	o.conf = &conf;
	memset(&seen, 0, sizeof seen);
	memset(&calls, 0, sizeof calls);
	CHECK_INT(op_journal_open(&o), 0);
	op_kind_register_all(&o, all_kinds);
}

/* A restart: the journal forgotten without finishing, read again. */
static void
reopen(int with_kinds)
{
	op_journal_close(&o);
	CHECK(o.ops == NULL);
	CHECK_INT(op_journal_open(&o), 0);
	if (with_kinds)
		op_kind_register_all(&o, all_kinds);
}

static int
exists(const char *name)
{
	char		path[512];
	struct stat	st;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	return (lstat(path, &st) == 0);
}

static void
put(const char *name, const char *text)
{
	char	 path[512];
	FILE	*f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL) {
		tap_diag("cannot create %s: %s", path, strerror(errno));
		return;
	}
	fputs(text, f);
	fclose(f);
}

static char *
slurp(const char *name)
{
	char	 path[512], *buf;
	FILE	*f;
	long	 n;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((f = fopen(path, "r")) == NULL)
		return (NULL);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	buf[n] = '\0';
	fclose(f);
	return (buf);
}

static int
count_ops(const char *kind, const char *object)
{
	json_t	*l;
	int	 n;

	l = op_journal_list(&o, kind, object, 100000);
	n = (int)json_array_size(json_object_get(l, "ops"));
	json_decref(l);
	return (n);
}

/* state of op id as op.show says, in buf */
static const char *
show_state(const char *id, char *buf, size_t len)
{
	json_t	*s;

	if ((s = op_journal_show(&o, id)) == NULL)
		return (NULL);
	snprintf(buf, len, "%s", json_string_value(json_object_get(s,
	    "state")));
	json_decref(s);
	return (buf);
}

static char *
file_of(const char *id)
{
	static char	name[128];

	snprintf(name, sizeof name, "op-%s.json", id);
	return (name);
}

static void
test_begin_step_finish(void)
{
	struct op	*op;
	char		*err = NULL, id[64], fname[128], *s, buf[32];
	json_t		*j, *steps;

	open_case();
	CHECK_INT(op_begin(&o, &kind_resume, "app", &op, &err), 0);
	CHECK(err == NULL);
	snprintf(id, sizeof id, "%s", op_id(op));
	CHECK(op_id_ok(id));
	snprintf(fname, sizeof fname, "%s", file_of(id));
	CHECK(op_file_name_ok(fname));
	CHECK_UINT(op_step_index(op), OP_NO_STEP);
	CHECK_STR(op_step_name(op), "");
	/* nothing on disk before the first step */
	CHECK(!exists(fname));
	CHECK_INT(op_set(op, "run", "app-20261201T123456Z"), 0);
	CHECK(!exists(fname));

	CHECK_INT(op_step(op, 0), 0);
	CHECK(exists(fname));
	CHECK_INT(seen.steps, 1);
	CHECK_STR(seen.last_step, "one");
	s = slurp(fname);
	CHECK_CONTAINS(s, "\"step\": \"one\"");
	CHECK_CONTAINS(s, "app-20261201T123456Z");
	free(s);
	CHECK_INT(op_step(op, 1), 0);
	CHECK_INT(op_set(op, "upload", "abc"), 0);
	s = slurp(fname);
	CHECK_CONTAINS(s, "\"step\": \"two\"");
	CHECK_CONTAINS(s, "\"upload\": \"abc\"");
	free(s);
	CHECK_INT(op_set(op, "upload", NULL), 0);
	CHECK(op_get(op, "upload") == NULL);
	CHECK_INT(op_set(op, "Bad-Key", "x"), -EINVAL);
	CHECK_INT(op_set(op, "k", "line\nbreak"), -EINVAL);
	CHECK_INT(seen.steps, 2);
	CHECK_STR(show_state(id, buf, sizeof buf), "running");

	op_finish(op, OP_OK, NULL);
	CHECK(!exists(fname));
	CHECK(exists("ops-history.json"));
	CHECK_INT(seen.finished, 1);
	CHECK_STR(seen.outcome, "ok");
	CHECK_STR(seen.recovered, "false");
	CHECK_STR(show_state(id, buf, sizeof buf), "ok");
	j = op_journal_show(&o, id);
	steps = json_object_get(j, "steps");
	CHECK_UINT(json_array_size(steps), 2);
	CHECK_STR(json_string_value(json_object_get(json_array_get(steps, 1),
	    "name")), "two");
	CHECK(json_is_string(json_object_get(j, "finished")));
	CHECK(json_is_null(json_object_get(j, "error")));
	CHECK(json_is_false(json_object_get(j, "recovered")));
	CHECK_STR(json_string_value(json_object_get(j, "step")), "two");
	json_decref(j);

	/* the history survives a restart; nothing is recovered */
	reopen(1);
	CHECK_STR(show_state(id, buf, sizeof buf), "ok");
	op_recover_all(&o);
	CHECK_INT(calls.resumed, 0);
	CHECK_INT(seen.interrupted, 0);
	CHECK(op_journal_show(&o, "20261201T000000Z-00000000") == NULL);
	CHECK(op_journal_show(&o, "../../etc/passwd") == NULL);
	op_journal_close(&o);
}

static void
test_busy(void)
{
	struct op	*a, *b, *c;
	char		*err = NULL;

	open_case();
	CHECK_INT(op_begin(&o, &kind_resume, "app", &a, &err), 0);
	CHECK_INT(op_step(a, 0), 0);
	CHECK_INT(op_begin(&o, &kind_resume, "app", &b, &err), -EBUSY);
	CHECK(b == NULL);
	CHECK_CONTAINS(err, op_id(a));
	free(err);
	err = NULL;
	/* another object, another kind: not the same op */
	CHECK_INT(op_begin(&o, &kind_resume, "web", &b, &err), 0);
	CHECK_INT(op_begin(&o, &kind_rollback, "app", &c, &err), 0);
	CHECK(op_find(&o, "test.resume", "app") == a);
	CHECK_INT(op_begin(&o, &kind_resume, "../etc", &c, &err), -EINVAL);
	free(err);
	err = NULL;
	CHECK_INT(op_begin(&o, &kind_gone, "app", &c, &err), -EINVAL);
	free(err);
	err = NULL;
	op_finish(b, OP_OK, NULL);
	op_finish(op_find(&o, "test.rollback", "app"), OP_FAILED, "no");

	/* still busy after a restart, until the recovered op finishes */
	reopen(1);
	CHECK_INT(op_begin(&o, &kind_resume, "app", &b, &err), -EBUSY);
	free(err);
	err = NULL;
	op_finish(op_find(&o, "test.resume", "app"), OP_ABANDONED, NULL);
	CHECK_INT(op_begin(&o, &kind_resume, "app", &b, &err), 0);
	op_finish(b, OP_OK, NULL);
	op_journal_close(&o);
}

static void
test_service_lock(void)
{
	struct op	*a, *b, *c;
	char		*err = NULL;

	open_case();
	CHECK_INT(op_begin(&o, &kind_svc_a, "api", &a, &err), 0);
	CHECK_INT(op_step(a, 0), 0);
	/* another service kind on the same object waits, told by whom */
	CHECK_INT(op_begin(&o, &kind_svc_b, "api", &b, &err), -EBUSY);
	CHECK(b == NULL);
	CHECK_CONTAINS(err, "test.svc-a on api");
	CHECK_CONTAINS(err, op_id(a));
	free(err);
	err = NULL;
	CHECK(op_find_service(&o, "api") == a);
	CHECK(op_find_service(&o, "web") == NULL);
	/* another object, or a kind without the lock: not held */
	CHECK_INT(op_begin(&o, &kind_svc_b, "web", &b, &err), 0);
	CHECK_INT(op_begin(&o, &kind_resume, "api", &c, &err), 0);
	op_finish(b, OP_OK, NULL);
	op_finish(c, OP_OK, NULL);
	/* held across a restart too, until the recovered op ends */
	reopen(1);
	CHECK_INT(op_begin(&o, &kind_svc_b, "api", &b, &err), -EBUSY);
	free(err);
	err = NULL;
	op_finish(op_find(&o, "test.svc-a", "api"), OP_ABANDONED, NULL);
	CHECK_INT(op_begin(&o, &kind_svc_b, "api", &b, &err), 0);
	op_finish(b, OP_OK, NULL);
	op_journal_close(&o);
}

static void
test_history_bounded(void)
{
	struct op	*op;
	char		*err = NULL, obj[32], *s;
	json_t		*l;
	int		 i;

	open_case();
	for (i = 0; i < 25; i++) {
		CHECK_INT(op_begin(&o, &kind_resume, "app", &op, &err), 0);
		if (op == NULL)
			return;
		op_step(op, 0);
		op_finish(op, i % 2 ? OP_OK : OP_FAILED, "run %d", i);
	}
	CHECK_INT(count_ops("test.resume", "app"), OP_HISTORY_PER_OBJECT);
	/* newest first, and the oldest went */
	l = op_journal_list(&o, NULL, "app", 1);
	s = json_dumps(l, 0);
	CHECK_CONTAINS(s, "run 24");
	free(s);
	json_decref(l);
	for (i = 0; i < 30; i++) {
		snprintf(obj, sizeof obj, "obj%d", i);
		while (count_ops(NULL, obj) < OP_HISTORY_PER_OBJECT) {
			CHECK_INT(op_begin(&o, &kind_rollback, obj, &op, &err),
			    0);
			if (op == NULL)
				return;
			op_finish(op, OP_OK, NULL);
		}
	}
	CHECK_INT(count_ops(NULL, NULL), OP_HISTORY_MAX);
	reopen(1);
	CHECK_INT(count_ops(NULL, NULL), OP_HISTORY_MAX);
	/* the overall bound drops the oldest: "app" went first */
	CHECK_INT(count_ops(NULL, "app"), 0);
	op_journal_close(&o);
}

/* An op of kind left at step, then a restart. */
static char *
crash_at(const struct op_kind *k, unsigned int step)
{
	struct op	*op;
	char		*err = NULL, *id;
	unsigned int	 i;

	CHECK_INT(op_begin(&o, k, "app", &op, &err), 0);
	if (op == NULL)
		return (strdup(""));
	op_set(op, "run", "app-1");
	for (i = 0; i <= step; i++)
		CHECK_INT(op_step(op, i), 0);
	id = strdup(op_id(op));
	reopen(1);
	return (id);
}

static void
test_recover_each_step(void)
{
	char		*id, buf[32];
	json_t		*j;
	unsigned int	 step;

	for (step = 0; step < 3; step++) {
		open_case();
		id = crash_at(&kind_resume, step);
		CHECK_INT(count_ops(NULL, NULL), 1);
		CHECK_STR(show_state(id, buf, sizeof buf), "running");
		op_recover_all(&o);
		CHECK_INT(calls.resumed, 1);
		CHECK_UINT(calls.step, step);
		CHECK_STR(calls.run, "app-1");
		CHECK(calls.recovered);
		CHECK_INT(seen.interrupted, 1);
		CHECK_STR(seen.action, "resume");
		/* a second call does not hand the op over again */
		op_recover_all(&o);
		CHECK_INT(calls.resumed, 1);
		if (step == 2) {
			/* asynchronous: still running, still on disk */
			CHECK(calls.later != NULL);
			CHECK_STR(show_state(id, buf, sizeof buf), "running");
			CHECK(exists(file_of(id)));
			op_finish(calls.later, OP_OK, NULL);
		}
		CHECK(!exists(file_of(id)));
		CHECK_STR(show_state(id, buf, sizeof buf), step == 0 ?
		    "rolled_back" : "ok");
		CHECK_STR(seen.recovered, "true");
		j = op_journal_show(&o, id);
		CHECK(json_is_true(json_object_get(j, "recovered")));
		json_decref(j);
		free(id);
		op_journal_close(&o);

		open_case();
		id = crash_at(&kind_rollback, step);
		op_recover_all(&o);
		CHECK_INT(calls.rolled_back, 1);
		CHECK_UINT(calls.step, step);
		CHECK_STR(seen.action, "rollback");
		CHECK_STR(show_state(id, buf, sizeof buf), "rolled_back");
		CHECK(!exists(file_of(id)));
		free(id);
		op_journal_close(&o);
	}
}

static void
test_unknown_kind_abandoned(void)
{
	struct op	*op;
	char		*err = NULL, *id, buf[32], *s, *p;
	json_t		*j;

	open_case();
	op_kind_register(&o, &kind_gone);
	CHECK_INT(op_begin(&o, &kind_gone, "app", &op, &err), 0);
	if (op == NULL)
		return;
	op_step(op, 1);
	id = strdup(op_id(op));
	reopen(1);		/* test.gone is not registered now */
	op_recover_all(&o);
	CHECK_INT(seen.interrupted, 1);
	CHECK_STR(seen.action, "abandon");
	CHECK_STR(seen.outcome, "abandoned");
	CHECK_STR(show_state(id, buf, sizeof buf), "abandoned");
	j = op_journal_show(&o, id);
	CHECK_CONTAINS(json_string_value(json_object_get(j, "error")),
	    "no op kind test.gone");
	json_decref(j);
	CHECK(!exists(file_of(id)));
	free(id);

	/* a kind that cannot do either */
	id = crash_at(&kind_none, 0);
	op_recover_all(&o);
	CHECK_STR(show_state(id, buf, sizeof buf), "abandoned");
	free(id);

	/* a step this version does not know */
	id = crash_at(&kind_resume, 1);
	s = slurp(file_of(id));
	if (s != NULL && (p = strstr(s, "\"step\": \"two\"")) != NULL) {
		memcpy(p, "\"step\": \"zzz\"", 13);
		put(file_of(id), s);
	}
	free(s);
	reopen(1);
	op_recover_all(&o);
	CHECK_INT(calls.resumed, 0);
	CHECK_STR(show_state(id, buf, sizeof buf), "abandoned");
	free(id);
	op_journal_close(&o);
}

/* A crash between the history write and the removal of the op file. */
static void
test_finished_file_left(void)
{
	struct op	*op;
	char		*err = NULL, id[64], *s;

	open_case();
	CHECK_INT(op_begin(&o, &kind_resume, "app", &op, &err), 0);
	if (op == NULL)
		return;
	op_step(op, 0);
	snprintf(id, sizeof id, "%s", op_id(op));
	s = slurp(file_of(id));
	op_finish(op, OP_OK, NULL);
	put(file_of(id), s);
	free(s);
	reopen(1);
	op_recover_all(&o);
	CHECK_INT(calls.resumed, 0);
	CHECK(!exists(file_of(id)));
	CHECK_INT(count_ops(NULL, NULL), 1);
	op_journal_close(&o);
}

static const char good[] =
    "{\"format\": 1, \"id\": \"20261201T123456Z-3f2a9c1b\", "
    "\"kind\": \"test.resume\", \"object\": \"app\", \"step\": \"two\", "
    "\"started\": \"2026-12-01T12:34:56Z\", \"steps\": [{\"name\": \"one\", "
    "\"at\": \"2026-12-01T12:34:56Z\"}], \"data\": {\"run\": \"x\"}}";

static int
parses(const char *text)
{
	struct op	*op;
	char		 err[160];

	op = op_parse(text, strlen(text), err, sizeof err);
	op_free(op);
	return (op != NULL);
}

/* good with one member replaced */
static char *
with(const char *from, const char *to)
{
	char	*s, *p;

	p = strstr(good, from);
	if (p == NULL)
		return (strdup(good));
	s = malloc(strlen(good) + strlen(to) + 1);
	memcpy(s, good, (size_t)(p - good));
	strcpy(s + (p - good), to);
	strcat(s, p + strlen(from));
	return (s);
}

static void
test_parser(void)
{
	static const char *const bad[][2] = {
		{ "\"format\": 1", "\"format\": 2" },
		{ "3f2a9c1b", "3F2A9C1B" },
		{ "20261201T123456Z-3f2a9c1b", "../../etc/passwd" },
		{ "20261201T123456Z-3f2a9c1b", "20261301T123456Z-3f2a9c1b" },
		{ "\"test.resume\"", "\"Test/Resume\"" },
		{ "\"object\": \"app\"", "\"object\": \"../../etc\"" },
		{ "\"object\": \"app\"", "\"object\": \"/etc/passwd\"" },
		{ "\"object\": \"app\"", "\"object\": \"\"" },
		{ "\"object\": \"app\"", "\"object\": 7" },
		{ "\"step\": \"two\"", "\"step\": \"\"" },
		{ "\"step\": \"two\"", "\"step\": \"t w o\"" },
		{ "2026-12-01T12:34:56Z\", \"steps", "2026-02-30T12:34:56Z\", "
		    "\"steps" },
		{ "2026-12-01T12:34:56Z\", \"steps", "yesterday\", \"steps" },
		{ "\"steps\": [", "\"steps\": [7, " },
		{ "\"run\": \"x\"", "\"Run\": \"x\"" },
		{ "\"run\": \"x\"", "\"run\": 1" },
		{ "\"run\": \"x\"", "\"run\": \"a\\nb\"" },
		{ "\"run\": \"x\"", "\"run\": \"x\", \"run\": \"y\"" },
		{ "\"run\": \"x\"", "\"run\": \"x\\u0000\"" },
		{ "\"run\": \"x\"", "\"run\": \"x\\u0085\"" },
	};
	char		*s, big[300];
	size_t		 i, n, nbad;
	struct op	**v;
	char		 err[160];

	CHECK(parses(good));
	for (i = 0; i < nitems(bad); i++) {
		s = with(bad[i][0], bad[i][1]);
		if (parses(s))
			tap_diag("accepted: %s", s);
		CHECK(!parses(s));
		free(s);
	}
	/* truncated anywhere */
	for (i = 0; i < strlen(good); i++) {
		s = strndup(good, i);
		CHECK(!parses(s));
		free(s);
	}
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	xasprintf(&s, "{\"format\": 1, \"id\": \"20261201T123456Z-3f2a9c1b\", "
	    "\"kind\": \"k\", \"object\": \"%s\", \"step\": \"s\", "
	    "\"started\": \"2026-12-01T12:34:56Z\"}", big);
	CHECK(!parses(s));
	free(s);
	CHECK(!parses("[]"));
	CHECK(!parses("null"));
	CHECK(!parses(""));

	CHECK(op_file_name_ok("op-20261201T123456Z-3f2a9c1b.json"));
	CHECK(!op_file_name_ok("op-20261201T123456Z-3f2a9c1b.json.bad"));
	CHECK(!op_file_name_ok("op-../20261201T123456Z-3f2a9c1.json"));
	CHECK(!op_file_name_ok("op-20261201T123456Z-3f2a9c1g.json"));
	CHECK(!op_file_name_ok("op-.json"));

	/* the history: bad entries are skipped, not fatal */
	s = "{\"format\": 1, \"ops\": [{\"id\": \"20261201T123456Z-3f2a9c1b\", "
	    "\"kind\": \"k\", \"object\": \"o\", \"step\": \"s\", \"state\": "
	    "\"ok\", \"started\": \"2026-12-01T12:34:56Z\", \"finished\": "
	    "\"2026-12-01T12:34:57Z\", \"error\": null, \"recovered\": false, "
	    "\"steps\": []}, {\"id\": \"x\"}, 7, {\"id\": "
	    "\"20261201T123456Z-3f2a9c1c\", \"kind\": \"k\", \"object\": \"o\", "
	    "\"step\": \"s\", \"state\": \"running\", \"started\": "
	    "\"2026-12-01T12:34:56Z\", \"finished\": \"2026-12-01T12:34:57Z\"}]}";
	v = op_history_parse(s, strlen(s), &n, &nbad, err, sizeof err);
	CHECK(v != NULL);
	CHECK_UINT(n, 1);
	CHECK_UINT(nbad, 3);
	for (i = 0; i < n; i++)
		op_free(v[i]);
	free(v);
	v = op_history_parse("{\"ops\": []}", 11, &n, &nbad, err, sizeof err);
	CHECK(v == NULL);
}

static void
test_hostile_dir(void)
{
	char		 outside[512], link[512], path[512], *s, *huge;
	struct stat	 st;
	FILE		*f;
	size_t		 i;

	open_case();
	op_journal_close(&o);
	/* a file outside the state dir that a hostile file points at */
	snprintf(outside, sizeof outside, "%s/outside-c%d", top, ncase);
	if ((f = fopen(outside, "w")) != NULL) {
		fputs("keep me\n", f);
		fclose(f);
	}
	/* a name that is not an op id */
	put("op-bad.json", good);
	/* a name that does not match the id inside */
	put("op-20261201T123456Z-00000000.json", good);
	/* a path as the object */
	s = with("\"object\": \"app\"", "\"object\": \"../../../tmp\"");
	put("op-20261201T123456Z-3f2a9c1b.json", s);
	free(s);
	/* truncated */
	s = strndup(good, strlen(good) / 2);
	put("op-20261201T123456Z-11111111.json", s);
	free(s);
	/* huge */
	huge = malloc(200 * 1024 + 1);
	memset(huge, ' ', 200 * 1024);
	huge[200 * 1024] = '\0';
	memcpy(huge, "{\"format\": 1,", 13);
	put("op-20261201T123456Z-22222222.json", huge);
	free(huge);
	/* a link to the outside file, a directory, a FIFO */
	snprintf(link, sizeof link, "%s/op-20261201T123456Z-33333333.json",
	    dir);
	if (symlink(outside, link) == -1)
		tap_diag("symlink: %s", strerror(errno));
	snprintf(path, sizeof path, "%s/op-20261201T123456Z-44444444.json",
	    dir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/op-20261201T123456Z-55555555.json",
	    dir);
	mkfifo(path, 0600);
	/* garbage history */
	put("ops-history.json", "{\"format\": 1, \"ops\": [");
	/* not ours: left alone */
	put("backup-app.run.json", "{}");

	CHECK_INT(op_journal_open(&o), 0);
	op_kind_register_all(&o, all_kinds);
	op_recover_all(&o);
	CHECK_INT(count_ops(NULL, NULL), 0);
	CHECK_INT(calls.resumed + calls.rolled_back, 0);
	CHECK(exists("op-bad.json.bad"));
	CHECK(exists("op-20261201T123456Z-00000000.json.bad"));
	CHECK(exists("op-20261201T123456Z-3f2a9c1b.json.bad"));
	CHECK(exists("op-20261201T123456Z-11111111.json.bad"));
	CHECK(exists("op-20261201T123456Z-22222222.json.bad"));
	CHECK(exists("op-20261201T123456Z-33333333.json.bad"));
	CHECK(exists("op-20261201T123456Z-44444444.json.bad"));
	CHECK(exists("op-20261201T123456Z-55555555.json.bad"));
	CHECK(exists("ops-history.json.bad"));
	CHECK(exists("backup-app.run.json"));
	/* the link was moved, not followed */
	snprintf(link, sizeof link, "%s/op-20261201T123456Z-33333333.json.bad",
	    dir);
	CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
	s = NULL;
	if ((f = fopen(outside, "r")) != NULL) {
		char line[64] = "";

		if (fgets(line, sizeof line, f) != NULL)
			s = strdup(line);
		fclose(f);
	}
	CHECK_STR(s, "keep me\n");
	free(s);
	/* nothing new beside the state dir */
	snprintf(path, sizeof path, "%s/tmp", top);
	CHECK(lstat(path, &st) == -1);

	/* a second start sees the moved files as not ours */
	reopen(1);
	CHECK_INT(count_ops(NULL, NULL), 0);
	/* and the journal works in that directory */
	for (i = 0; i < 2; i++) {
		struct op	*op;
		char		*err = NULL;

		CHECK_INT(op_begin(&o, &kind_resume, "app", &op, &err), 0);
		if (op != NULL) {
			op_step(op, 0);
			op_finish(op, OP_OK, NULL);
		}
	}
	CHECK_INT(count_ops(NULL, NULL), 2);
	op_journal_close(&o);
}

#ifdef OPSD_FAULT_INJECTION
/* In a child: steps one, two, three, each followed by its "effect". */
static int
run_child(const char *fault)
{
	struct op	*op;
	char		*err = NULL, mark[512];
	pid_t		 pid;
	int		 status;
	unsigned int	 i;
	FILE		*f;

	if ((pid = fork()) == -1)
		return (-1);
	if (pid == 0) {
		setenv("OPSD_FAULT", fault, 1);
		if (op_begin(&o, &kind_resume, "app", &op, &err) != 0)
			_exit(1);
		for (i = 0; i < 3; i++) {
			if (op_step(op, i) != 0)
				_exit(2);
			snprintf(mark, sizeof mark, "%s/effect-%s", dir,
			    test_steps[i]);
			if ((f = fopen(mark, "w")) != NULL)
				fclose(f);
		}
		op_finish(op, OP_OK, NULL);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) == -1 || !WIFEXITED(status))
		return (-1);
	return (WEXITSTATUS(status));
}

static void
test_fault_injection(void)
{
	open_case();
	CHECK_INT(run_child("test.resume:two"), 77);
	CHECK(exists("effect-one"));
	CHECK(!exists("effect-two"));
	reopen(1);
	op_recover_all(&o);
	CHECK_INT(calls.resumed, 1);
	CHECK_UINT(calls.step, 1);
	op_journal_close(&o);

	open_case();
	CHECK_INT(run_child("test.resume:two:after"), 77);
	CHECK(exists("effect-two"));
	CHECK(!exists("effect-three"));
	reopen(1);
	op_recover_all(&o);
	CHECK_UINT(calls.step, 1);
	op_journal_close(&o);

	open_case();
	CHECK_INT(run_child("test.resume:three:after"), 77);
	CHECK(exists("effect-three"));
	reopen(1);
	CHECK_INT(count_ops(NULL, NULL), 1);
	op_recover_all(&o);
	CHECK_UINT(calls.step, 2);
	op_finish(calls.later, OP_OK, NULL);
	op_journal_close(&o);

	/* another kind's fault does not fire */
	open_case();
	CHECK_INT(run_child("test.rollback:two"), 0);
	op_journal_close(&o);
}
#endif

static void
cleanup(void)
{
	char	cmd[512];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
	if (system(cmd) != 0)
		tap_diag("cannot remove %s", top);
}

int
main(void)
{
	if (mkdtemp(top) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	log_set_level(LOG_ERR);		/* the hostile cases warn */
	evt_subscribe(sink, NULL);
	RUN(test_begin_step_finish);
	RUN(test_busy);
	RUN(test_service_lock);
	RUN(test_history_bounded);
	RUN(test_recover_each_step);
	RUN(test_unknown_kind_abandoned);
	RUN(test_finished_file_left);
	RUN(test_parser);
	RUN(test_hostile_dir);
#ifdef OPSD_FAULT_INJECTION
	RUN(test_fault_injection);
#endif
	evt_unsubscribe(sink, NULL);
	cleanup();
	return (tap_done());
}
