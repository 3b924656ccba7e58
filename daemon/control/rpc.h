/*
 * The method table and the dispatcher. Each family of methods lives in its
 * own rpc-<family>.c and exports a table of struct rpc_method; rpc.c merges
 * them into one sorted table, from which opsd.methods, opsd-cli's help and
 * docs/protocol.md are derived.
 *
 * Handlers never see raw JSON params: each method declares its parameters
 * (name, type, offset into a params struct, required) and the dispatcher
 * fills that struct or answers -32602 naming the field.
 */
#ifndef OPSD_RPC_H
#define OPSD_RPC_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct opsd;
struct ctl_conn;

#define RPC_READ	0x0	/* any member of the socket's group */
#define RPC_ADMIN	0x1	/* root or the admin group; audited */
#define RPC_ASYNC	0x2	/* may answer later (rpc_defer); not in batches */
#define RPC_NOT_STOPPING 0x4	/* starts work: refused once opsd is stopping */

/* Returned by a handler that called rpc_defer(). */
#define RPC_DEFERRED	1

enum rpc_ptype {
	RPC_P_STRING,		/* const char *, borrowed from the request */
	RPC_P_INT,		/* int64_t */
	RPC_P_BOOL,		/* int */
	RPC_P_DURATION,		/* uint64_t msec; "30s" or seconds */
	RPC_P_JSON,		/* json_t *, borrowed: any value */
};

struct rpc_param {
	const char	*name;
	enum rpc_ptype	 type;
	size_t		 off;
	int		 required;
	const char	*help;
};

struct rpc_call {
	struct opsd		*opsd;
	struct ctl_conn		*conn;		/* NULL when called internally */
	const struct rpc_method	*method;
	struct rpc_stats	*stats;		/* the method's counters */
	json_t			*id;		/* borrowed */
	int			 in_batch;
	int			 code;		/* set by rpc_error() */
	char			*message;
	json_t			*data;
	/*
	 * A handler on a hot path may answer with the result already as
	 * JSON text (malloc'd) instead of *result; it is spliced into the
	 * reply without being encoded again.
	 */
	char			*raw;
	size_t			 rawlen;
};

struct rpc_method {
	const char		*name;
	unsigned int		 flags;
	const char		*help;
	const struct rpc_param	*params;
	size_t			 nparams;
	size_t			 psize;		/* size of the params struct */
	const char		*result;	/* one line: what comes back */
	/* 0 with *result set, or the code returned by rpc_error(). */
	int			(*exec)(struct rpc_call *, void *params,
				    json_t **result);
};

#define RPC_PARAMS(a)	(a), (sizeof (a) / sizeof (a)[0])
#define RPC_NOPARAMS	NULL, 0, 0

/*
 * A call answered later: a probe run, a delivery. If the client goes away
 * first, conn becomes NULL and the reply is dropped.
 */
struct rpc_pending {
	struct ctl_conn			*conn;
	json_t				*id;
	struct rpc_stats		*stats;		/* its method's */
	LIST_ENTRY(rpc_pending)		 entry;		/* control.c */
};

struct rpc_pending *rpc_defer(struct rpc_call *);
/* For followers: a notification on the caller's connection, if open. */
void	 rpc_pending_notify(struct rpc_pending *, const char *method,
	    json_t *params);				/* steals params */
/* Drops a follower without a reply (its reply was already sent). */
void	 rpc_pending_release(struct rpc_pending *);
/*
 * The callers that follow one piece of work (--follow): a progress
 * notification to each, then the last one and their release at the end.
 * Zeroed is empty.
 */
struct rpc_followers {
	struct rpc_pending	**v;
	unsigned int		  n;
};

void	 rpc_followers_add(struct rpc_followers *, struct rpc_pending *);
void	 rpc_followers_notify(struct rpc_followers *, const char *method,
	    json_t *params);				/* steals params */
/* Notifies each (if params), releases them all and empties the set. */
void	 rpc_followers_end(struct rpc_followers *, const char *method,
	    json_t *params);				/* steals params */

/* Sends the reply now but keeps p for notifications (a follower). */
void	 rpc_pending_reply_keep(struct rpc_pending *, json_t *result);
void	 rpc_pending_reply(struct rpc_pending *, json_t *result); /* steals */
void	 rpc_pending_error(struct rpc_pending *, int code, json_t *data,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/*
 * The same for a subsystem's own failure, err being -errno: this layer
 * picks the JSON-RPC code (-ENOENT not found, -EBUSY busy, -ESHUTDOWN
 * stopping, -EINVAL bad params, -EPERM/-EACCES denied, else failed).
 */
void	 rpc_pending_fail(struct rpc_pending *, int err, json_t *data,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int	 rpc_errno_code(int err);

/*
 * Families (rpc-*.c). The core's are listed in rpc.c; a subsystem's
 * table is named by its registry entry (subsys.h).
 */
extern const struct rpc_method	rpc_opsd_methods[];
extern const size_t		rpc_opsd_nmethods;
extern const struct rpc_method	rpc_probe_methods[];
extern const size_t		rpc_probe_nmethods;
extern const struct rpc_method	rpc_alert_methods[];
extern const size_t		rpc_alert_nmethods;
extern const struct rpc_method	rpc_backup_methods[];
extern const size_t		rpc_backup_nmethods;
extern const struct rpc_method	rpc_op_methods[];
extern const size_t		rpc_op_nmethods;

/* Releases opsd.status's cache (rpc-opsd.c). */
void	 rpc_opsd_free(struct opsd *);

/* Builds the daemon's sorted method table (o->rpc). */
void	 rpc_init(struct opsd *);
void	 rpc_free(struct opsd *);
const struct rpc_method *rpc_lookup(struct opsd *, const char *name);
size_t	 rpc_count(struct opsd *);
const struct rpc_method *rpc_at(struct opsd *, size_t);

/* Records an error for the reply; returns code for the handler to return. */
int	 rpc_error(struct rpc_call *, int code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/*
 * Handles one decoded message (request, notification or batch) from conn.
 * Returns the reply to send, or NULL when there is none (notifications).
 */
json_t	*rpc_handle(struct opsd *, struct ctl_conn *, json_t *msg);
/*
 * The same, but a single request whose handler answered in text comes
 * back as the whole reply line in *text (free() it) and NULL is returned.
 */
json_t	*rpc_handle_text(struct opsd *, struct ctl_conn *, json_t *msg,
	    char **text, size_t *textlen);

/* Counters per method and outcome (for opsd.status and metrics). */
struct rpc_stats {
	uint64_t	ok;
	uint64_t	error;
	uint64_t	denied;
};
const struct rpc_stats *rpc_stats_at(struct opsd *, size_t);
uint64_t rpc_requests_total(struct opsd *);

json_t	*rpc_describe(const struct rpc_method *);

#endif
