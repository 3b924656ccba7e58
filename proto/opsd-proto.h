/*
 * opsd wire contract: what a client and the daemon agree on.
 *
 * Transport: an AF_UNIX stream socket. Framing: one JSON-RPC 2.0 object (or
 * batch array) per line, terminated by '\n', at most OPSD_MAX_MESSAGE bytes
 * before the newline. Everything a third-party client needs is in this file
 * and docs/protocol.md; the method names and their parameters come from the
 * daemon's method table (opsd.methods).
 */
#ifndef OPSD_PROTO_H
#define OPSD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define OPSD_PROTO_VERSION	1
#define OPSD_DEFAULT_SOCKET	"/run/opsd/opsd.sock"
#define OPSD_DEFAULT_CONFIG	"/etc/opsd/opsd.conf"

/* Largest request or response line, newline excluded. */
#define OPSD_MAX_MESSAGE	(1024 * 1024)
/* Most requests in one batch, so that the replies fit in one message. */
#define OPSD_MAX_BATCH		100

/* Standard JSON-RPC 2.0 error codes. */
#define RPC_PARSE_ERROR		-32700	/* invalid JSON */
#define RPC_INVALID_REQUEST	-32600	/* not a valid request object */
#define RPC_METHOD_NOT_FOUND	-32601
#define RPC_INVALID_PARAMS	-32602
#define RPC_INTERNAL_ERROR	-32603

/*
 * opsd's own codes, -32000 to -32099, in blocks of ten per subsystem.
 *   -32000..-32009  control plane and daemon core
 *   -32010..-32019  probes
 *   -32020..-32029  alerts
 *   -32030..-32039  backups
 */
#define OPSD_ERR_DENIED		-32000	/* caller may not use this method */
#define OPSD_ERR_CONFIG		-32001	/* new configuration rejected */
#define OPSD_ERR_NOT_FOUND	-32002	/* named object does not exist */
#define OPSD_ERR_BUSY		-32003	/* operation already running */
#define OPSD_ERR_SHUTTING_DOWN	-32004	/* daemon is stopping */
#define OPSD_ERR_FAILED		-32005	/* operation ran and failed */

/* Method names of the core (later subsystems add theirs to the table). */
#define OPSD_M_STATUS		"opsd.status"
#define OPSD_M_RELOAD		"opsd.reload"
#define OPSD_M_LOG_LEVEL	"opsd.log_level"
#define OPSD_M_METHODS		"opsd.methods"

const char	*rpc_error_name(int code);

/*
 * Line framing. A reader feeds bytes in; complete lines come out through
 * the callback. A line longer than the limit is reported once as
 * FRAME_TOO_LONG and its remaining bytes are skipped up to the next newline,
 * so the stream stays in sync and the next request is read normally.
 */
enum frame_kind {
	FRAME_LINE,
	FRAME_TOO_LONG,
};

struct frame_reader {
	size_t	 max;		/* limit per line */
	char	*buf;		/* partial line, not NUL-terminated */
	size_t	 len;
	size_t	 cap;
	int	 skipping;	/* inside an oversized line */
};

typedef int (*frame_cb)(void *arg, enum frame_kind kind, const char *line,
    size_t len);

void	frame_init(struct frame_reader *, size_t max);
void	frame_free(struct frame_reader *);
/*
 * Returns 0 with all of data consumed, or the first non-zero value a
 * callback returned, with *used set to the bytes consumed up to and
 * including that line: the caller keeps the rest for later.
 */
int	frame_feed(struct frame_reader *, const char *data, size_t len,
	    frame_cb cb, void *arg, size_t *used);

#endif
