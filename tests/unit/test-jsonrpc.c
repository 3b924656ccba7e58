/*
 * JSON-RPC 2.0 envelopes (proto/jsonrpc.c): what the decoder accepts, each
 * way a request can be malformed and the code it gets, duplicate keys,
 * parse errors, and the reply builders and response parser opsd-cli uses.
 */
#include <string.h>

#include "jsonrpc.h"
#include "opsd-proto.h"
#include "tap.h"

static json_t *
load(const char *s)
{
	char	err[256];

	return (jsonrpc_load(s, strlen(s), err, sizeof err));
}

/* Loads s and checks it as a request; returns the code. */
static int
parse(const char *s, struct rpc_request *req, char *err, size_t errlen,
    json_t **msgp)
{
	json_t	*msg;

	err[0] = '\0';
	if ((msg = jsonrpc_load(s, strlen(s), err, errlen)) == NULL) {
		tap_diag("does not load: %s: %s", s, err);
		*msgp = NULL;
		return (-1);
	}
	*msgp = msg;
	return (jsonrpc_parse_request(msg, req, err, errlen));
}

static void
test_valid_object_params(void)
{
	struct rpc_request	 req;
	json_t			*msg;
	char			 err[256];

	CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\","
	    "\"params\":{\"a\":1},\"id\":7}", &req, err, sizeof err, &msg), 0);
	CHECK_STR(req.method, "opsd.status");
	CHECK(json_is_object(req.params));
	CHECK(json_integer_value(json_object_get(req.params, "a")) == 1);
	CHECK(json_is_integer(req.id) && json_integer_value(req.id) == 7);
	json_decref(msg);
}

static void
test_valid_array_params(void)
{
	struct rpc_request	 req;
	json_t			*msg;
	char			 err[256];

	CHECK_INT(parse("{\"id\":\"abc\",\"params\":[1,\"x\"],"
	    "\"method\":\"m\",\"jsonrpc\":\"2.0\"}", &req, err, sizeof err,
	    &msg), 0);
	CHECK(json_is_array(req.params) && json_array_size(req.params) == 2);
	CHECK_STR(json_string_value(req.id), "abc");
	json_decref(msg);
}

static void
test_valid_ids(void)
{
	struct rpc_request	 req;
	json_t			*msg;
	char			 err[256];

	CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":null}",
	    &req, err, sizeof err, &msg), 0);
	CHECK(req.id != NULL && json_is_null(req.id));
	json_decref(msg);
	CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":-3}",
	    &req, err, sizeof err, &msg), 0);
	CHECK(json_integer_value(req.id) == -3);
	json_decref(msg);
	CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1.5}",
	    &req, err, sizeof err, &msg), 0);
	CHECK(json_is_real(req.id));
	json_decref(msg);
	CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":\"\"}",
	    &req, err, sizeof err, &msg), 0);
	CHECK(json_is_string(req.id));
	json_decref(msg);
}

static void
test_notification(void)
{
	struct rpc_request	 req;
	json_t			*msg;
	char			 err[256];

	CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\"method\":\"m\"}", &req, err,
	    sizeof err, &msg), 0);
	CHECK(req.id == NULL);
	CHECK(req.params == NULL);
	CHECK_STR(req.method, "m");
	json_decref(msg);
}

struct bad {
	const char	*json;
	const char	*msg;		/* substring of the error */
	int		 has_id;	/* req.id filled for the error reply */
};

static void
check_bad(const struct bad *b, size_t n)
{
	struct rpc_request	 req;
	json_t			*msg;
	char			 err[256];
	size_t			 i;
	int			 code;

	for (i = 0; i < n; i++) {
		code = parse(b[i].json, &req, err, sizeof err, &msg);
		if (code != RPC_INVALID_REQUEST)
			tap_diag("input: %s", b[i].json);
		CHECK_INT(code, RPC_INVALID_REQUEST);
		CHECK_CONTAINS(err, b[i].msg);
		if (b[i].has_id != (req.id != NULL))
			tap_diag("input: %s: id %s", b[i].json,
			    req.id ? "set" : "not set");
		CHECK(b[i].has_id == (req.id != NULL));
		json_decref(msg);
	}
}

static void
test_not_object(void)
{
	static const struct bad b[] = {
		{ "1", "must be a JSON object", 0 },
		{ "\"str\"", "must be a JSON object", 0 },
		{ "null", "must be a JSON object", 0 },
		{ "true", "must be a JSON object", 0 },
		{ "[]", "must be a JSON object", 0 },
		{ "[{\"jsonrpc\":\"2.0\",\"method\":\"m\"}]",
		    "must be a JSON object", 0 },
	};

	check_bad(b, sizeof b / sizeof b[0]);
}

static void
test_bad_version(void)
{
	static const struct bad b[] = {
		{ "{\"method\":\"m\",\"id\":1}", "\"jsonrpc\"", 1 },
		{ "{\"jsonrpc\":\"1.0\",\"method\":\"m\",\"id\":1}",
		    "\"jsonrpc\" must be exactly \"2.0\"", 1 },
		{ "{\"jsonrpc\":2.0,\"method\":\"m\",\"id\":1}", "\"jsonrpc\"",
		    1 },
		{ "{\"jsonrpc\":\"2.0 \",\"method\":\"m\"}", "\"jsonrpc\"", 0 },
		{ "{\"jsonrpc\":null,\"method\":\"m\"}", "\"jsonrpc\"", 0 },
	};

	check_bad(b, sizeof b / sizeof b[0]);
}

static void
test_bad_method(void)
{
	static const struct bad b[] = {
		{ "{\"jsonrpc\":\"2.0\",\"id\":1}", "\"method\"", 1 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":5,\"id\":1}",
		    "\"method\" must be a non-empty string", 1 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"\",\"id\":1}",
		    "\"method\" must be a non-empty string", 1 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":null}", "\"method\"", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":[\"m\"]}", "\"method\"", 0 },
	};

	check_bad(b, sizeof b / sizeof b[0]);
}

static void
test_bad_params(void)
{
	static const struct bad b[] = {
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":5,\"id\":1}",
		    "\"params\" must be an object or an array", 1 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":\"x\"}",
		    "\"params\"", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":true}",
		    "\"params\"", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":null}",
		    "\"params\"", 0 },
	};

	check_bad(b, sizeof b / sizeof b[0]);
}

static void
test_bad_id(void)
{
	static const struct bad b[] = {
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":true}",
		    "\"id\" must be a string, a number or null", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":false}",
		    "\"id\"", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":{}}",
		    "\"id\"", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":[1]}",
		    "\"id\"", 0 },
	};

	check_bad(b, sizeof b / sizeof b[0]);
}

static void
test_unknown_member(void)
{
	static const struct bad b[] = {
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"x\":1}",
		    "unknown member \"x\" in request", 1 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"result\":1}",
		    "unknown member \"result\"", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"ID\":1}",
		    "unknown member \"ID\"", 0 },
	};

	check_bad(b, sizeof b / sizeof b[0]);
}

static void
test_duplicate_keys(void)
{
	static const char *dups[] = {
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"id\":2}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"method\":\"b\"}",
		"{\"params\":{\"k\":1,\"k\":2},\"method\":\"m\"}",
	};
	json_t	*msg;
	char	 err[256];
	size_t	 i;

	for (i = 0; i < sizeof dups / sizeof dups[0]; i++) {
		err[0] = '\0';
		msg = jsonrpc_load(dups[i], strlen(dups[i]), err, sizeof err);
		CHECK(msg == NULL);
		json_decref(msg);
		CHECK_CONTAINS(err, "invalid JSON at byte");
		CHECK_CONTAINS(err, "duplicate");
	}
}

static void
test_parse_errors(void)
{
	static const char *bad[] = {
		"", " ", "{", "{\"a\":}", "nul", "{} x", "{\"a\":1,}",
		"[1,2", "\"unterminated", "{'a':1}", "{\"a\":01}",
		"\"\xff\xfe\"", "\"\\u0000\"", "\"\\ud800\"",
	};
	json_t	*msg;
	char	 err[256];
	size_t	 i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		msg = jsonrpc_load(bad[i], strlen(bad[i]), err, sizeof err);
		if (msg != NULL)
			tap_diag("accepted: %s", bad[i]);
		CHECK(msg == NULL);
		json_decref(msg);
		CHECK_CONTAINS(err, "invalid JSON at byte ");
	}

	/* a raw NUL byte inside the line */
	msg = jsonrpc_load("{\"a\":1}\0", 8, err, sizeof err);
	CHECK(msg == NULL);
	json_decref(msg);

	/* the position points at the offending byte */
	jsonrpc_load("{\"a\":1,x}", 9, err, sizeof err);
	CHECK_CONTAINS(err, "at byte 8");

	/* only the first len bytes are read */
	msg = jsonrpc_load("{}garbage", 2, err, sizeof err);
	CHECK(json_is_object(msg));
	json_decref(msg);
}

static void
test_scalars_load(void)
{
	json_t	*msg;

	/* any JSON value loads; the request check rejects non-objects */
	msg = load("42");
	CHECK(json_is_integer(msg));
	json_decref(msg);
	msg = load("[]");
	CHECK(json_is_array(msg));
	json_decref(msg);
}

static void
test_builders(void)
{
	json_t	*id, *r, *e;
	char	*s;
	size_t	 len = 0;

	id = json_integer(3);
	r = jsonrpc_result(id, json_pack("{s:i}", "x", 1));
	s = jsonrpc_dump(r, &len);
	CHECK_STR(s, "{\"jsonrpc\":\"2.0\",\"result\":{\"x\":1},\"id\":3}");
	CHECK_UINT(len, s ? strlen(s) : 0);
	free(s);
	json_decref(r);
	/* the id is borrowed: still ours */
	CHECK(id->refcount == 1);

	r = jsonrpc_result(NULL, NULL);
	CHECK(json_is_null(json_object_get(r, "result")));
	CHECK(json_is_null(json_object_get(r, "id")));
	json_decref(r);

	r = jsonrpc_error(id, RPC_INVALID_PARAMS, "bad \"x\"",
	    json_pack("{s:s}", "field", "x"));
	e = json_object_get(r, "error");
	CHECK_INT(json_integer_value(json_object_get(e, "code")), -32602);
	CHECK_STR(json_string_value(json_object_get(e, "message")),
	    "bad \"x\"");
	CHECK_STR(json_string_value(json_object_get(json_object_get(e, "data"),
	    "field")), "x");
	CHECK_INT(json_integer_value(json_object_get(r, "id")), 3);
	json_decref(r);

	/* a message that is not UTF-8 falls back to the code's name */
	r = jsonrpc_error(NULL, RPC_METHOD_NOT_FOUND, "bad \xff byte", NULL);
	e = json_object_get(r, "error");
	CHECK(e != NULL);
	CHECK_STR(json_string_value(json_object_get(e, "message")),
	    "method not found");
	CHECK(json_is_null(json_object_get(r, "id")));
	json_decref(r);
	json_decref(id);

	/* one message is one line, whatever the strings hold */
	e = json_pack("{s:s}", "t", "a\nb");
	r = jsonrpc_notification("n", e);
	/* params are borrowed */
	CHECK(e->refcount == 2);
	json_decref(e);
	CHECK(json_object_get(r, "id") == NULL);
	s = jsonrpc_dump(r, NULL);
	CHECK(s != NULL && strchr(s, '\n') == NULL);
	free(s);
	json_decref(r);
}

static void
test_request_round_trip(void)
{
	struct rpc_request	 req;
	json_t			*params, *msg;
	char			 err[256], *s;

	params = json_pack("{s:s}", "level", "debug");
	msg = jsonrpc_request(12, "opsd.log_level", params);
	json_decref(params);
	s = jsonrpc_dump(msg, NULL);
	json_decref(msg);
	msg = load(s);
	free(s);
	CHECK_INT(jsonrpc_parse_request(msg, &req, err, sizeof err), 0);
	CHECK_STR(req.method, "opsd.log_level");
	CHECK(json_integer_value(req.id) == 12);
	CHECK_STR(json_string_value(json_object_get(req.params, "level")),
	    "debug");
	json_decref(msg);

	msg = jsonrpc_request(1, "m", NULL);
	CHECK(json_object_get(msg, "params") == NULL);
	CHECK_INT(jsonrpc_parse_request(msg, &req, err, sizeof err), 0);
	json_decref(msg);
}

static void
test_parse_response(void)
{
	json_t		*msg, *result;
	const char	*message;
	int		 code;

	msg = load("{\"jsonrpc\":\"2.0\",\"result\":{\"ok\":true},\"id\":1}");
	CHECK_INT(jsonrpc_parse_response(msg, &result, &code, &message), 0);
	CHECK(json_is_true(json_object_get(result, "ok")));
	json_decref(msg);

	msg = load("{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":1}");
	CHECK_INT(jsonrpc_parse_response(msg, &result, &code, &message), 0);
	CHECK(json_is_null(result));
	json_decref(msg);

	msg = load("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,"
	    "\"message\":\"no such method\"},\"id\":1}");
	CHECK_INT(jsonrpc_parse_response(msg, &result, &code, &message), 1);
	CHECK_INT(code, -32601);
	CHECK_STR(message, "no such method");
	json_decref(msg);

	/* no message: the code's name */
	msg = load("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32000},"
	    "\"id\":1}");
	CHECK_INT(jsonrpc_parse_response(msg, &result, &code, &message), 1);
	CHECK_STR(message, "permission denied");
	json_decref(msg);

	msg = load("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":\"x\","
	    "\"message\":\"m\"},\"id\":1}");
	CHECK_INT(jsonrpc_parse_response(msg, &result, &code, &message), -1);
	json_decref(msg);
	msg = load("{\"jsonrpc\":\"2.0\",\"error\":\"boom\",\"id\":1}");
	CHECK_INT(jsonrpc_parse_response(msg, &result, &code, &message), -1);
	json_decref(msg);
	msg = load("{\"jsonrpc\":\"2.0\",\"method\":\"n\"}");
	CHECK_INT(jsonrpc_parse_response(msg, &result, &code, &message), -1);
	json_decref(msg);
	msg = load("[1]");
	CHECK_INT(jsonrpc_parse_response(msg, &result, &code, &message), -1);
	json_decref(msg);
}

static void
test_error_names(void)
{
	CHECK_STR(rpc_error_name(RPC_PARSE_ERROR), "parse error");
	CHECK_STR(rpc_error_name(RPC_INVALID_REQUEST), "invalid request");
	CHECK_STR(rpc_error_name(RPC_METHOD_NOT_FOUND), "method not found");
	CHECK_STR(rpc_error_name(RPC_INVALID_PARAMS), "invalid params");
	CHECK_STR(rpc_error_name(RPC_INTERNAL_ERROR), "internal error");
	CHECK_STR(rpc_error_name(OPSD_ERR_DENIED), "permission denied");
	CHECK_STR(rpc_error_name(OPSD_ERR_CONFIG), "configuration rejected");
	CHECK_STR(rpc_error_name(OPSD_ERR_NOT_FOUND), "not found");
	CHECK_STR(rpc_error_name(OPSD_ERR_BUSY), "busy");
	CHECK_STR(rpc_error_name(OPSD_ERR_SHUTTING_DOWN), "shutting down");
	CHECK_STR(rpc_error_name(OPSD_ERR_FAILED), "failed");
	CHECK_STR(rpc_error_name(12345), "error");
}

/* The fast decoder: the same tree as jansson's, or NULL (jansson's turn). */
static void
test_fast_agrees(void)
{
	static const char *const same[] = {
		"{\"jsonrpc\":\"2.0\",\"method\":\"opsd.status\",\"id\":1}",
		"{\"id\":7,\"method\":\"probe.list\",\"jsonrpc\":\"2.0\"}",
		" { \"jsonrpc\" : \"2.0\" ,\t\"method\":\"a\", \"id\": -0 }\r\n",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{},\"id\":0}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[ ],"
		    "\"id\":\"x-1\"}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\"}",
		"{\"jsonrpc\":\"1.0\",\"method\":\"\",\"id\":123456789012345678}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":-42}",
	};
	static const char *const other[] = {
		"{}",
		"[{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1}]",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1.5}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1e3}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":01}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1234567890123456789}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":null}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\\u0041\",\"id\":1}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"\xc3\xa9\",\"id\":1}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"a\":1}}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[1]}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"id\":2}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"extra\":1}",
		"{\"jsonrpc\":\"2.0\",\"method\":7}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1} x",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",}",
		"{\"jsonrpc\":\"2.0\"\"method\":\"m\"}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":-}",
		"",
	};
	json_t		*fast, *slow;
	json_error_t	 jerr;
	size_t		 i;

	for (i = 0; i < sizeof same / sizeof same[0]; i++) {
		fast = jsonrpc_load_fast(same[i], strlen(same[i]));
		slow = json_loadb(same[i], strlen(same[i]),
		    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
		if (fast == NULL)
			tap_diag("not taken: %s", same[i]);
		CHECK(fast != NULL && slow != NULL && json_equal(fast, slow));
		json_decref(fast);
		json_decref(slow);
	}
	for (i = 0; i < sizeof other / sizeof other[0]; i++) {
		fast = jsonrpc_load_fast(other[i], strlen(other[i]));
		if (fast != NULL)
			tap_diag("taken: %s", other[i]);
		CHECK(fast == NULL);
		json_decref(fast);
	}
	/* a NUL inside: never the fast path's */
	CHECK(jsonrpc_load_fast("{\"jsonrpc\":\"2.0\",\"method\":\"m\0\"}",
	    31) == NULL);
}

int
main(void)
{
	RUN(test_valid_object_params);
	RUN(test_fast_agrees);
	RUN(test_valid_array_params);
	RUN(test_valid_ids);
	RUN(test_notification);
	RUN(test_not_object);
	RUN(test_bad_version);
	RUN(test_bad_method);
	RUN(test_bad_params);
	RUN(test_bad_id);
	RUN(test_unknown_member);
	RUN(test_duplicate_keys);
	RUN(test_parse_errors);
	RUN(test_scalars_load);
	RUN(test_builders);
	RUN(test_request_round_trip);
	RUN(test_parse_response);
	RUN(test_error_names);
	return (tap_done());
}
