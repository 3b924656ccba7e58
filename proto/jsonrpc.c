/*
 * JSON-RPC 2.0 envelope handling. The decoder is the first code that sees
 * bytes from a client, so it accepts nothing it has not checked: the version
 * string, the method's type, the params' type and the id's type, each with a
 * message that names what is wrong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrpc.h"
#include "opsd-proto.h"

/* JSON_COMPACT never emits a raw newline, so one message is one line. */
#define nitems_(a)	(sizeof (a) / sizeof (a)[0])

#define JSONRPC_DUMP_FLAGS	(JSON_COMPACT | JSON_REAL_PRECISION(10))

/*
 * The shape of nearly every request, {"jsonrpc":"2.0","method":"NAME",
 * "id":7} with "params" absent, {} or [], decoded without jansson's
 * parser (which was 41% of a call): the four members in any order, each
 * once, string values of printable ASCII without escapes, an id that is
 * such a string or an integer of at most 18 digits. Anything else is
 * NULL, and jansson decodes it as before, errors and all. Its trees are
 * json_equal() to jansson's (fuzz/fuzz-jsonrpc-fast.c checks it).
 */
static int
fast_ws(const char *p, const char *end, const char **q)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
	    *p == '\r'))
		p++;
	*q = p;
	return (p < end);
}

/* A string of printable ASCII without escapes: its bytes, or -1. */
static int
fast_string(const char **pp, const char *end, const char **s, size_t *n)
{
	const char	*p = *pp;

	if (p >= end || *p != '"')
		return (-1);
	*s = ++p;
	for (; p < end && *p != '"'; p++) {
		if (*p < 0x20 || *p > 0x7e || *p == '\\')
			return (-1);
	}
	if (p >= end)
		return (-1);
	*n = (size_t)(p - *s);
	*pp = p + 1;
	return (0);
}

static json_t *
fast_value(const char **pp, const char *end, int key)
{
	const char	*p = *pp, *s;
	size_t		 n;
	json_int_t	 v = 0;
	int		 neg = 0, digits = 0;

	if (key == 3) {			/* params: {} or [] only */
		char	close;

		if (p >= end || (*p != '{' && *p != '['))
			return (NULL);
		close = *p == '{' ? '}' : ']';
		if (!fast_ws(p + 1, end, &p) || *p != close)
			return (NULL);
		*pp = p + 1;
		return (close == '}' ? json_object() : json_array());
	}
	if (p < end && *p == '"') {
		if (fast_string(pp, end, &s, &n) != 0)
			return (NULL);
		return (json_stringn_nocheck(s, n));
	}
	if (key != 2)			/* jsonrpc and method: strings */
		return (NULL);
	if (p < end && *p == '-') {
		neg = 1;
		p++;
	}
	if (p < end && *p == '0')
		digits = 1, p++;
	else {
		for (; p < end && *p >= '0' && *p <= '9' && digits < 18;
		    p++, digits++)
			v = v * 10 + (*p - '0');
	}
	/* no fraction, exponent or more digits: those are jansson's */
	if (digits == 0 || digits > 18 || (p < end && ((*p >= '0' &&
	    *p <= '9') || *p == '.' || *p == 'e' || *p == 'E')))
		return (NULL);
	*pp = p;
	return (json_integer(neg ? -v : v));
}

json_t *
jsonrpc_load_fast(const char *line, size_t len)
{
	static const char *const keys[] = { "jsonrpc", "method", "id",
	    "params" };
	const char	*p = line, *end = line + len, *k;
	json_t		*o, *v;
	size_t		 kn;
	unsigned int	 seen = 0, i;

	if (!fast_ws(p, end, &p) || *p != '{')
		return (NULL);
	o = json_object();
	p++;
	for (;;) {
		if (!fast_ws(p, end, &p) || fast_string(&p, end, &k, &kn) != 0)
			goto fail;
		for (i = 0; i < nitems_(keys); i++) {
			if (strlen(keys[i]) == kn &&
			    memcmp(keys[i], k, kn) == 0)
				break;
		}
		if (i == nitems_(keys) || (seen & (1U << i)))
			goto fail;	/* unknown or twice: jansson's to say */
		seen |= 1U << i;
		if (!fast_ws(p, end, &p) || *p != ':' ||
		    !fast_ws(p + 1, end, &p) ||
		    (v = fast_value(&p, end, (int)i)) == NULL)
			goto fail;
		json_object_set_new_nocheck(o, keys[i], v);
		if (!fast_ws(p, end, &p))
			goto fail;
		if (*p == '}')
			break;
		if (*p != ',')
			goto fail;
		p++;
	}
	fast_ws(p + 1, end, &p);
	if (p != end)
		goto fail;
	return (o);
fail:
	json_decref(o);
	return (NULL);
}

json_t *
jsonrpc_load(const char *line, size_t len, char *err, size_t errlen)
{
	json_error_t	 jerr;
	json_t		*msg;

	if ((msg = jsonrpc_load_fast(line, len)) != NULL)
		return (msg);
	/* JSON_REJECT_DUPLICATES: {"id":1,"id":2} is ambiguous, refuse it. */
	msg = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    &jerr);
	if (msg == NULL)
		snprintf(err, errlen, "invalid JSON at byte %d: %s",
		    jerr.position, jerr.text);
	return (msg);
}

int
jsonrpc_parse_request(json_t *msg, struct rpc_request *req, char *err,
    size_t errlen)
{
	json_t		*v, *id, *method, *params;
	const char	*key;

	memset(req, 0, sizeof *req);
	if (!json_is_object(msg)) {
		snprintf(err, errlen, "request must be a JSON object");
		return (RPC_INVALID_REQUEST);
	}
	id = json_object_get(msg, "id");
	if (id != NULL) {
		if (!json_is_string(id) && !json_is_integer(id) &&
		    !json_is_real(id) && !json_is_null(id)) {
			snprintf(err, errlen,
			    "\"id\" must be a string, a number or null");
			return (RPC_INVALID_REQUEST);
		}
		req->id = id;
	}
	v = json_object_get(msg, "jsonrpc");
	if (v == NULL || !json_is_string(v) ||
	    strcmp(json_string_value(v), "2.0") != 0) {
		snprintf(err, errlen, "\"jsonrpc\" must be exactly \"2.0\"");
		return (RPC_INVALID_REQUEST);
	}
	method = json_object_get(msg, "method");
	if (method == NULL || !json_is_string(method) ||
	    json_string_length(method) == 0) {
		snprintf(err, errlen, "\"method\" must be a non-empty string");
		return (RPC_INVALID_REQUEST);
	}
	params = json_object_get(msg, "params");
	if (params != NULL && !json_is_object(params) &&
	    !json_is_array(params)) {
		snprintf(err, errlen, "\"params\" must be an object or an array");
		return (RPC_INVALID_REQUEST);
	}
	json_object_foreach(msg, key, v) {
		if (strcmp(key, "jsonrpc") != 0 && strcmp(key, "method") != 0 &&
		    strcmp(key, "params") != 0 && strcmp(key, "id") != 0) {
			snprintf(err, errlen, "unknown member \"%.64s\" in request",
			    key);
			return (RPC_INVALID_REQUEST);
		}
	}
	req->method = json_string_value(method);
	req->params = params;
	return (0);
}

json_t *
jsonrpc_result(json_t *id, json_t *result)
{
	return (json_pack("{s:s, s:o, s:O}", "jsonrpc", "2.0", "result",
	    result != NULL ? result : json_null(),
	    "id", id != NULL ? id : json_null()));
}

json_t *
jsonrpc_error(json_t *id, int code, const char *message, json_t *data)
{
	json_t	*e;

	e = json_pack("{s:i, s:s}", "code", code, "message", message);
	if (e == NULL) {
		/* message was not valid UTF-8: keep the code, drop the text */
		e = json_pack("{s:i, s:s}", "code", code,
		    "message", rpc_error_name(code));
	}
	if (data != NULL)
		json_object_set_new(e, "data", data);
	return (json_pack("{s:s, s:o, s:O}", "jsonrpc", "2.0", "error", e,
	    "id", id != NULL ? id : json_null()));
}

json_t *
jsonrpc_request(json_int_t id, const char *method, json_t *params)
{
	json_t	*msg;

	msg = json_pack("{s:s, s:s, s:I}", "jsonrpc", "2.0", "method", method,
	    "id", id);
	if (msg != NULL && params != NULL)
		json_object_set(msg, "params", params);
	return (msg);
}

json_t *
jsonrpc_notification(const char *method, json_t *params)
{
	json_t	*msg;

	msg = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
	if (msg != NULL && params != NULL)
		json_object_set(msg, "params", params);
	return (msg);
}

int
jsonrpc_parse_response(json_t *msg, json_t **result, int *code,
    const char **message)
{
	json_t	*e, *c, *m;

	if (!json_is_object(msg))
		return (-1);
	if ((*result = json_object_get(msg, "result")) != NULL)
		return (0);
	e = json_object_get(msg, "error");
	if (!json_is_object(e))
		return (-1);
	c = json_object_get(e, "code");
	m = json_object_get(e, "message");
	if (!json_is_integer(c))
		return (-1);
	*code = (int)json_integer_value(c);
	*message = json_is_string(m) ? json_string_value(m) :
	    rpc_error_name(*code);
	return (1);
}

char *
jsonrpc_dump(const json_t *msg, size_t *len)
{
	char	*s;

	s = json_dumps(msg, JSONRPC_DUMP_FLAGS);
	if (s != NULL && len != NULL)
		*len = strlen(s);
	return (s);
}

struct dumpbuf {
	char	*data;		/* the caller's buffer, then heap */
	size_t	 size;
	size_t	 used;
	char	*heap;
};

static int
dump_cb(const char *s, size_t n, void *arg)
{
	struct dumpbuf	*d = arg;
	size_t		 size;
	char		*p;

	if (n > d->size - d->used) {
		size = d->size > n ? d->size * 2 : d->size + n * 2;
		if (size < d->size || (p = realloc(d->heap, size)) == NULL)
			return (-1);
		if (d->heap == NULL && d->used > 0)
			memcpy(p, d->data, d->used);
		d->heap = d->data = p;
		d->size = size;
	}
	memcpy(d->data + d->used, s, n);
	d->used += n;
	return (0);
}

/*
 * jansson's json_dumpb() goes on counting once buf is full, so a message
 * that does not fit costs a second encoding into a bigger buffer; a
 * probe.list of 300 probes (100 KB) spent half its time that way. Here
 * the encoder's output moves to the heap where buf ends.
 */
char *
jsonrpc_dumpb(const json_t *msg, char *buf, size_t size, size_t *len)
{
	struct dumpbuf	d = { buf, size, 0, NULL };

	if (json_dump_callback(msg, dump_cb, &d, JSONRPC_DUMP_FLAGS) != 0) {
		free(d.heap);
		return (NULL);
	}
	*len = d.used;
	return (d.data);
}

const char *
rpc_error_name(int code)
{
	switch (code) {
	case RPC_PARSE_ERROR:
		return ("parse error");
	case RPC_INVALID_REQUEST:
		return ("invalid request");
	case RPC_METHOD_NOT_FOUND:
		return ("method not found");
	case RPC_INVALID_PARAMS:
		return ("invalid params");
	case RPC_INTERNAL_ERROR:
		return ("internal error");
	case OPSD_ERR_DENIED:
		return ("permission denied");
	case OPSD_ERR_CONFIG:
		return ("configuration rejected");
	case OPSD_ERR_NOT_FOUND:
		return ("not found");
	case OPSD_ERR_BUSY:
		return ("busy");
	case OPSD_ERR_SHUTTING_DOWN:
		return ("shutting down");
	case OPSD_ERR_FAILED:
		return ("failed");
	}
	return ("error");
}
