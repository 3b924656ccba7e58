/*
 * Dispatch (daemon/control/rpc.c) on a daemon context set up the way main() does
 * it, minus the control socket and /metrics, with no connection (conn
 * NULL: an internal call, so no authorization): the method table, the
 * error codes and messages for bad calls, batches and notifications, and
 * the opsd.* methods' replies, reload included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/event.h>

#include "alert.h"
#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "jsonrpc.h"
#include "opsd-proto.h"
#include "probe.h"
#include "rpc.h"
#include "tap.h"

static struct opsd	 o;
static char		 confdir[] = "/tmp/opsd-test-rpc.XXXXXX";
static char		 confpath[256];

static void
write_conf(const char *text)
{
	FILE	*f;

	if ((f = fopen(confpath, "w")) == NULL) {
		tap_fail(__FILE__, __LINE__, "cannot write the config");
		return;
	}
	fputs(text, f);
	fclose(f);
}

static int
setup(void)
{
	static const char	 text[] = "[opsd]\nsocket = /run/opsd-test.sock\n"
	    "state_dir = /var/lib/opsd-test\nlog_level = warning\n"
	    "metrics_listen = off\n";
	struct config_errors	 errs = { NULL, 0 };

	if (mkdtemp(confdir) == NULL)
		return (-1);
	snprintf(confpath, sizeof confpath, "%s/opsd.conf", confdir);
	memset(&o, 0, sizeof o);
	o.conf = config_parse("test.conf", text, sizeof text - 1, &errs);
	if (o.conf == NULL)
		return (-1);
	o.conf_path = confpath;
	o.start_time = time(NULL);
	write_conf(text);
	log_set_level(LOG_WARNING);	/* quiet unless something is wrong */
	/* what main() sets up before it accepts a client, minus the socket */
	if (opsd_init(&o) != 0)
		return (-1);
	opsd_start(&o);
	return (0);
}

static void
teardown(void)
{
	opsd_free(&o);
	config_free(o.conf);
	unlink(confpath);
	rmdir(confdir);
}

/* Decodes s and dispatches it; returns the reply (or NULL). */
static json_t *
call(const char *s)
{
	json_t	*msg, *reply;
	char	 err[256];

	if ((msg = jsonrpc_load(s, strlen(s), err, sizeof err)) == NULL) {
		tap_diag("test input does not load: %s", err);
		tap_case_failed = 1;
		return (NULL);
	}
	reply = rpc_handle(&o, NULL, msg);
	json_decref(msg);
	return (reply);
}

/*
 * The same through rpc_handle_text(), as the control socket calls it.
 * Returns the reply as a tree either way: parsed from the text line when
 * the handler answered in text (*was_text set), which must then be one
 * line of JSON.
 */
static json_t *
call_text(const char *s, int *was_text)
{
	json_t	*msg, *reply;
	char	 err[256], *text = NULL;
	size_t	 len = 0;

	*was_text = 0;
	if ((msg = jsonrpc_load(s, strlen(s), err, sizeof err)) == NULL) {
		tap_fail(__FILE__, __LINE__, "test input does not load");
		return (NULL);
	}
	reply = rpc_handle_text(&o, NULL, msg, &text, &len);
	json_decref(msg);
	if (text == NULL)
		return (reply);
	*was_text = 1;
	CHECK(reply == NULL);
	json_decref(reply);
	CHECK_UINT(len, strlen(text));
	CHECK(memchr(text, '\n', len) == NULL);
	reply = jsonrpc_load(text, len, err, sizeof err);
	if (reply == NULL)
		tap_diag("text reply is not JSON (%s): %s", err, text);
	CHECK(reply != NULL);
	free(text);
	return (reply);
}

static int
err_code(json_t *reply)
{
	json_t	*e = json_object_get(reply, "error");

	if (!json_is_object(e))
		return (0);
	return ((int)json_integer_value(json_object_get(e, "code")));
}

static const char *
err_msg(json_t *reply)
{
	return (json_string_value(json_object_get(json_object_get(reply,
	    "error"), "message")));
}

/* Checks reply is a single error with code, id and message substring. */
#define CHECK_ERROR(reply, code, id, msgpart) do {			\
	json_t *r_ = (reply);						\
									\
	CHECK(json_is_object(r_));					\
	CHECK_STR(json_string_value(json_object_get(r_, "jsonrpc")),	\
	    "2.0");							\
	CHECK(json_object_get(r_, "result") == NULL);			\
	CHECK_INT(err_code(r_), (code));				\
	CHECK_CONTAINS(err_msg(r_), (msgpart));				\
	if ((id) < 0)							\
		CHECK(json_is_null(json_object_get(r_, "id")));		\
	else								\
		CHECK_INT(json_integer_value(json_object_get(r_, "id")),\
		    (id));						\
} while (0)

static void
test_table(void)
{
	const struct rpc_method	*m;
	size_t			 i;

	CHECK(rpc_count(&o) >= 4);
	for (i = 1; i < rpc_count(&o); i++)
		CHECK(strcmp(rpc_at(&o, i - 1)->name, rpc_at(&o, i)->name) < 0);
	CHECK(rpc_at(&o, rpc_count(&o)) == NULL);
	m = rpc_lookup(&o, OPSD_M_STATUS);
	CHECK(m != NULL && strcmp(m->name, OPSD_M_STATUS) == 0);
	CHECK(rpc_lookup(&o, OPSD_M_RELOAD) != NULL);
	CHECK(rpc_lookup(&o, OPSD_M_LOG_LEVEL) != NULL);
	CHECK(rpc_lookup(&o, OPSD_M_METHODS) != NULL);
	CHECK(rpc_lookup(&o, "opsd.nope") == NULL);
	CHECK(rpc_lookup(&o, "") == NULL);
	/* every method says what it is for */
	for (i = 0; i < rpc_count(&o); i++) {
		m = rpc_at(&o, i);
		CHECK(m->help != NULL && m->help[0] != '\0');
		CHECK(m->exec != NULL);
		CHECK(m->nparams == 0 || m->params != NULL);
	}
}

static void
test_unknown_method(void)
{
	json_t	*r;

	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"backup.nope\",\"id\":4}");
	CHECK_ERROR(r, RPC_METHOD_NOT_FOUND, 4, "unknown method 'backup.nope'");
	json_decref(r);
}

static void
test_invalid_request(void)
{
	json_t	*r;

	/* an invalid request is answered, with the id when it is valid */
	r = call("{\"jsonrpc\":\"1.0\",\"method\":\"opsd.status\",\"id\":9}");
	CHECK_ERROR(r, RPC_INVALID_REQUEST, 9, "\"jsonrpc\"");
	json_decref(r);
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":true}");
	CHECK_ERROR(r, RPC_INVALID_REQUEST, -1, "\"id\"");
	json_decref(r);
	/* without an id it is still an error to report, not a notification */
	r = call("{\"jsonrpc\":\"2.0\",\"method\":7}");
	CHECK_ERROR(r, RPC_INVALID_REQUEST, -1, "\"method\"");
	json_decref(r);
	r = call("42");
	CHECK_ERROR(r, RPC_INVALID_REQUEST, -1, "JSON object");
	json_decref(r);
}

static void
test_status(void)
{
	json_t	*r, *res;

	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\",\"id\":1}");
	CHECK(r != NULL && json_object_get(r, "error") == NULL);
	res = json_object_get(r, "result");
	CHECK(json_is_object(res));
	CHECK_STR(json_string_value(json_object_get(res, "version")),
	    OPSD_VERSION);
	CHECK_INT(json_integer_value(json_object_get(res, "protocol")),
	    OPSD_PROTO_VERSION);
	CHECK_INT(json_integer_value(json_object_get(res, "pid")), getpid());
	CHECK_STR(json_string_value(json_object_get(res, "socket")),
	    "/run/opsd-test.sock");
	CHECK_STR(json_string_value(json_object_get(res, "state_dir")),
	    "/var/lib/opsd-test");
	CHECK_STR(json_string_value(json_object_get(res, "config")), confpath);
	CHECK(json_is_object(json_object_get(res, "loop")));
	CHECK(json_is_false(json_object_get(res, "socket_activated")));
	CHECK_CONTAINS(json_string_value(json_object_get(res, "summary")),
	    "running");
	CHECK_INT(json_integer_value(json_object_get(r, "id")), 1);
	json_decref(r);

	/* string ids come back as they were, an explicit null id too */
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":\"req-1\",\"params\":{}}");
	CHECK_STR(json_string_value(json_object_get(r, "id")), "req-1");
	CHECK(json_object_get(r, "result") != NULL);
	json_decref(r);
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":null,\"params\":[]}");
	CHECK(r != NULL);
	CHECK(json_is_null(json_object_get(r, "id")));
	CHECK(json_object_get(r, "result") != NULL);
	json_decref(r);
}

/* Members that do not change from one call to the next. */
static const char *const status_fixed[] = {
	"version", "protocol", "pid", "started", "config", "state_dir",
	"socket", "socket_activated", "log_level", "log_target", "objects",
	"reloads", "watchdog_usec", "stopping",
};

static void
test_status_text(void)
{
	json_t		*tree, *text, *rt, *rx, *v;
	const char	*key;
	size_t		 i;
	int		 was_text;

	/* the text answer and the tree answer carry the same members */
	tree = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":1}");
	text = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":1}", &was_text);
	CHECK(was_text);
	rt = json_object_get(tree, "result");
	rx = json_object_get(text, "result");
	CHECK(json_is_object(rt) && json_is_object(rx));
	CHECK_UINT(json_object_size(rt), json_object_size(rx));
	json_object_foreach(rt, key, v) {
		if (json_object_get(rx, key) == NULL)
			tap_diag("text reply lacks '%s'", key);
		CHECK(json_object_get(rx, key) != NULL);
	}
	for (i = 0; i < sizeof status_fixed / sizeof status_fixed[0]; i++) {
		if (!json_equal(json_object_get(rt, status_fixed[i]),
		    json_object_get(rx, status_fixed[i])))
			tap_diag("'%s' differs", status_fixed[i]);
		CHECK(json_equal(json_object_get(rt, status_fixed[i]),
		    json_object_get(rx, status_fixed[i])));
	}
	CHECK_INT(json_integer_value(json_object_get(text, "id")), 1);
	json_decref(tree);
	json_decref(text);

	/* ids come back exactly, whatever they hold */
	text = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":\"a \\\"quoted\\\" \\u00e9 \\n id\"}", &was_text);
	CHECK_STR(json_string_value(json_object_get(text, "id")),
	    "a \"quoted\" \u00e9 \n id");
	json_decref(text);
	text = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":-1.5}", &was_text);
	CHECK(json_is_real(json_object_get(text, "id")));
	json_decref(text);
	{
		char	req[2048], id[1201];

		memset(id, 'x', sizeof id - 1);
		id[sizeof id - 1] = '\0';
		snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"method\":"
		    "\"opsd.status\",\"id\":\"%s\"}", id);
		text = call_text(req, &was_text);
		CHECK_STR(json_string_value(json_object_get(text, "id")), id);
		CHECK(json_object_get(json_object_get(text, "result"),
		    "version") != NULL);
		json_decref(text);
	}

	/* a notification gets nothing, in text or not */
	CHECK(call_text("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\"}",
	    &was_text) == NULL);
	CHECK(!was_text);

	/* in a batch: a tree, with the same result */
	text = call_text("[{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":7}]", &was_text);
	CHECK(!was_text);
	CHECK(json_is_array(text) && json_array_size(text) == 1);
	CHECK_STR(json_string_value(json_object_get(json_object_get(
	    json_array_get(text, 0), "result"), "version")), OPSD_VERSION);
	json_decref(text);
}

static void
test_status_follows_changes(void)
{
	json_t	*r, *res;
	int	 was_text;

	/* what the text answer keeps between calls follows the daemon */
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":1}", &was_text);
	CHECK_STR(json_string_value(json_object_get(json_object_get(r,
	    "result"), "log_level")), "warning");
	json_decref(r);
	log_set_level(LOG_DEBUG);
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":1}", &was_text);
	CHECK_STR(json_string_value(json_object_get(json_object_get(r,
	    "result"), "log_level")), "debug");
	json_decref(r);
	log_set_level(LOG_WARNING);

	o.stopping = 1;
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":1}", &was_text);
	res = json_object_get(r, "result");
	CHECK(json_is_true(json_object_get(res, "stopping")));
	CHECK_CONTAINS(json_string_value(json_object_get(res, "summary")),
	    "stopping");
	json_decref(r);
	o.stopping = 0;

	/* requests_total counts this call too, as in the tree answer */
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"id\":1}", &was_text);
	CHECK_UINT(json_integer_value(json_object_get(json_object_get(r,
	    "result"), "requests_total")), rpc_requests_total(&o));
	json_decref(r);
}

static void
test_methods(void)
{
	json_t	*r, *list, *m, *p;
	size_t	 i;
	int	 found = 0;

	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.methods\",\"id\":1}");
	list = json_object_get(json_object_get(r, "result"), "methods");
	CHECK(json_is_array(list));
	CHECK_UINT(json_array_size(list), rpc_count(&o));
	json_array_foreach(list, i, m) {
		if (strcmp(json_string_value(json_object_get(m, "name")),
		    OPSD_M_LOG_LEVEL) != 0)
			continue;
		found = 1;
		CHECK_STR(json_string_value(json_object_get(m, "access")),
		    "admin");
		p = json_array_get(json_object_get(m, "params"), 0);
		CHECK_STR(json_string_value(json_object_get(p, "name")),
		    "level");
		CHECK_STR(json_string_value(json_object_get(p, "type")),
		    "string");
		CHECK(json_is_true(json_object_get(p, "required")));
	}
	CHECK(found);
	json_decref(r);
}

static void
test_param_wrong_type(void)
{
	json_t	*r;

	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"params\":{\"level\":5},\"id\":2}");
	CHECK_ERROR(r, RPC_INVALID_PARAMS, 2,
	    "parameter 'level' must be of type string");
	json_decref(r);
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"params\":[null],\"id\":3}");
	CHECK_ERROR(r, RPC_INVALID_PARAMS, 3, "'level'");
	json_decref(r);
}

static void
test_param_unknown(void)
{
	json_t	*r;

	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"params\":{\"level\":\"info\",\"lvl\":1},\"id\":2}");
	CHECK_ERROR(r, RPC_INVALID_PARAMS, 2,
	    "unknown parameter 'lvl' for opsd.log_level");
	json_decref(r);
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"params\":{\"verbose\":true},\"id\":2}");
	CHECK_ERROR(r, RPC_INVALID_PARAMS, 2, "unknown parameter 'verbose'");
	json_decref(r);
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"params\":[\"info\",\"extra\"],\"id\":5}");
	CHECK_ERROR(r, RPC_INVALID_PARAMS, 5,
	    "opsd.log_level takes at most 1 parameters, got 2");
	json_decref(r);
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"params\":[1],\"id\":5}");
	CHECK_ERROR(r, RPC_INVALID_PARAMS, 5, "takes at most 0");
	json_decref(r);
}

static void
test_param_missing(void)
{
	json_t	*r;

	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"params\":{},\"id\":6}");
	CHECK_ERROR(r, RPC_INVALID_PARAMS, 6,
	    "missing required parameter 'level' (string)");
	json_decref(r);
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"id\":7}");
	CHECK_ERROR(r, RPC_INVALID_PARAMS, 7, "'level'");
	json_decref(r);
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"params\":[],\"id\":8}");
	CHECK_ERROR(r, RPC_INVALID_PARAMS, 8, "'level'");
	json_decref(r);
}

static void
test_log_level(void)
{
	json_t	*r, *res;

	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"params\":{\"level\":\"loud\"},\"id\":1}");
	CHECK_ERROR(r, RPC_INVALID_PARAMS, 1, "unknown log level 'loud'");
	json_decref(r);
	CHECK_INT(log_get_level(), LOG_WARNING);

	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"params\":[\"error\"],\"id\":1}");
	res = json_object_get(r, "result");
	CHECK_STR(json_string_value(json_object_get(res, "level")), "error");
	CHECK_STR(json_string_value(json_object_get(res, "previous")),
	    "warning");
	CHECK_INT(log_get_level(), LOG_ERR);
	json_decref(r);
	log_set_level(LOG_WARNING);
}

static void
test_reload(void)
{
	json_t	*r, *errs;
	char	 want[300];

	write_conf("[opsd]\nsocket = /run/opsd-test.sock\nbogus = 1\n"
	    "idle_timeout = never\n");
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.reload\",\"id\":3}");
	CHECK_ERROR(r, OPSD_ERR_CONFIG, 3, "has 2 errors; the daemon keeps "
	    "running on the previous configuration");
	errs = json_object_get(json_object_get(json_object_get(r, "error"),
	    "data"), "errors");
	CHECK(json_is_array(errs) && json_array_size(errs) == 2);
	snprintf(want, sizeof want, "%s:3: unknown key 'bogus'", confpath);
	CHECK_CONTAINS(json_string_value(json_array_get(errs, 0)), want);
	snprintf(want, sizeof want, "%s:4: idle_timeout", confpath);
	CHECK_CONTAINS(json_string_value(json_array_get(errs, 1)), want);
	CHECK_UINT(o.reloads, 0);
	json_decref(r);

	write_conf("[opsd]\nsocket = /run/opsd-test.sock\n"
	    "state_dir = /var/lib/opsd-test\nmax_connections = 7\n"
	    "log_level = warning\nmetrics_listen = off\n");
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.reload\",\"id\":4}");
	CHECK(json_is_true(json_object_get(json_object_get(r, "result"),
	    "reloaded")));
	CHECK_INT(json_integer_value(json_object_get(json_object_get(r,
	    "result"), "reloads")), 1);
	CHECK_UINT(o.conf->max_connections, 7);
	json_decref(r);
}

static void
test_notification(void)
{
	json_t		*r;
	uint64_t	 before = rpc_requests_total(&o);

	/* no reply to a notification, whatever comes of it */
	CHECK(call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\"}") ==
	    NULL);
	CHECK(call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.nope\"}") == NULL);
	CHECK(call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"params\":{\"level\":7}}") == NULL);
	CHECK(call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\"}") ==
	    NULL);
	CHECK_UINT(rpc_requests_total(&o), before + 4);
	/* but an id of null is a request */
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.nope\",\"id\":null}");
	CHECK_ERROR(r, RPC_METHOD_NOT_FOUND, -1, "opsd.nope");
	json_decref(r);
}

static void
test_batch(void)
{
	json_t	*r, *e;

	r = call("[{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\",\"id\":1},"
	    "{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\"},"
	    "{\"jsonrpc\":\"2.0\",\"method\":\"x.y\",\"id\":2},"
	    "5,"
	    "{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\",\"id\":3},"
	    "[]]");
	CHECK(json_is_array(r));
	CHECK_UINT(json_array_size(r), 5);
	if (json_array_size(r) == 5) {
		e = json_array_get(r, 0);
		CHECK(json_object_get(e, "result") != NULL);
		CHECK_INT(json_integer_value(json_object_get(e, "id")), 1);
		CHECK_ERROR(json_array_get(r, 1), RPC_METHOD_NOT_FOUND, 2,
		    "x.y");
		CHECK_ERROR(json_array_get(r, 2), RPC_INVALID_REQUEST, -1,
		    "JSON object");
		CHECK_ERROR(json_array_get(r, 3), RPC_INVALID_PARAMS, 3,
		    "'level'");
		CHECK_ERROR(json_array_get(r, 4), RPC_INVALID_REQUEST, -1,
		    "JSON object");
	}
	json_decref(r);

	/* a batch of one is still a batch */
	r = call("[{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\",\"id\":1}]");
	CHECK(json_is_array(r) && json_array_size(r) == 1);
	json_decref(r);
}

static void
test_empty_batch(void)
{
	json_t	*r;

	r = call("[]");
	CHECK(!json_is_array(r));
	CHECK_ERROR(r, RPC_INVALID_REQUEST, -1, "empty batch");
	json_decref(r);
}

static void
test_batch_of_notifications(void)
{
	CHECK(call("[{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\"},"
	    "{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}]") == NULL);
}

static void
test_stats(void)
{
	const struct rpc_stats	*st = NULL;
	uint64_t		 ok, error, total;
	size_t			 i;
	json_t			*r;

	for (i = 0; i < rpc_count(&o); i++)
		if (strcmp(rpc_at(&o, i)->name, OPSD_M_LOG_LEVEL) == 0)
			st = rpc_stats_at(&o, i);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	ok = st->ok;
	error = st->error;
	total = rpc_requests_total(&o);
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"params\":[\"warning\"],\"id\":1}");
	json_decref(r);
	r = call("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.log_level\","
	    "\"params\":[1],\"id\":1}");
	json_decref(r);
	CHECK_UINT(st->ok, ok + 1);
	CHECK_UINT(st->error, error + 1);
	CHECK_UINT(st->denied, 0);
	CHECK_UINT(rpc_requests_total(&o), total + 2);
	CHECK(rpc_stats_at(&o, rpc_count(&o)) == NULL);
}

int
main(void)
{
	if (setup() != 0) {
		printf("Bail out! cannot set up the daemon context\n");
		return (1);
	}
	RUN(test_table);
	RUN(test_unknown_method);
	RUN(test_invalid_request);
	RUN(test_status);
	RUN(test_status_text);
	RUN(test_status_follows_changes);
	RUN(test_methods);
	RUN(test_param_wrong_type);
	RUN(test_param_unknown);
	RUN(test_param_missing);
	RUN(test_log_level);
	RUN(test_reload);
	RUN(test_notification);
	RUN(test_batch);
	RUN(test_empty_batch);
	RUN(test_batch_of_notifications);
	RUN(test_stats);
	teardown();
	return (tap_done());
}
