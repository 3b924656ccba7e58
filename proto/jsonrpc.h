/*
 * JSON-RPC 2.0 envelopes over jansson: decoding requests and responses and
 * building replies. Shared by the daemon, opsd-cli and the fuzz target; no
 * I/O and no libevent here.
 */
#ifndef OPSD_JSONRPC_H
#define OPSD_JSONRPC_H

#include <jansson.h>

struct rpc_request {
	json_t		*id;		/* borrowed; NULL for a notification */
	const char	*method;	/* borrowed */
	json_t		*params;	/* borrowed object or array, or NULL */
};

/*
 * Parses one line of JSON. Returns a new reference, or NULL with a message
 * naming the position of the error in err.
 */
json_t	*jsonrpc_load(const char *line, size_t len, char *err, size_t errlen);
/*
 * The common request shapes only, without jansson's parser: NULL for
 * anything else (which jsonrpc_load() then hands to jansson).
 */
json_t	*jsonrpc_load_fast(const char *line, size_t len);

/*
 * Checks one request object (not a batch). Returns 0, or a JSON-RPC error
 * code with a message in err. The id is filled in as soon as it is known to
 * be valid, so an error reply can carry it.
 */
int	 jsonrpc_parse_request(json_t *msg, struct rpc_request *req, char *err,
	    size_t errlen);

/* Replies and requests; each returns a new reference. id may be NULL. */
json_t	*jsonrpc_result(json_t *id, json_t *result);	/* steals result */
json_t	*jsonrpc_error(json_t *id, int code, const char *message,
	    json_t *data);				/* steals data */
json_t	*jsonrpc_request(json_int_t id, const char *method, json_t *params);
json_t	*jsonrpc_notification(const char *method, json_t *params);

/*
 * Checks a response object. Returns 0 with *result borrowed, 1 with *code
 * and *message filled from an error reply, or -1 if msg is not a response.
 */
int	 jsonrpc_parse_response(json_t *msg, json_t **result, int *code,
	    const char **message);

/* Compact one-line serialization, newline not included; free() the result. */
char	*jsonrpc_dump(const json_t *msg, size_t *len);
/*
 * The same in one pass, into buf while it fits, without a NUL. Returns
 * buf, or a malloc()ed copy (free it) if the message is longer than size,
 * or NULL on error; *len is the message's length.
 */
char	*jsonrpc_dumpb(const json_t *msg, char *buf, size_t size,
	    size_t *len);

#endif
