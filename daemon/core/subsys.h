/*
 * The subsystem registry. A subsystem (probes, alerts, backups, ...) is a
 * folder under daemon/ and one `const struct subsys` describing all that
 * the rest of the daemon needs to know of it: its config sections, the
 * checks across sections, its life cycle, its health, its metrics, its
 * RPC methods and its event types. Config, reload, shutdown, /metrics, opsd.methods
 * and the catalog check walk subsys_table[]; nothing else lists
 * subsystems by hand.
 *
 * The table is generated from the `subsystems` list in daemon/meson.build
 * (registry.c, registry.h in the build tree), in start order: a subsystem
 * may use those before it (probes raise alerts, so alerts come first).
 * Stopping walks it in reverse. Every callback is optional.
 */
#ifndef OPSD_SUBSYS_H
#define OPSD_SUBSYS_H

#include <stddef.h>

#include "registry.h"

struct opsd;
struct opsd_config;
struct config_errors;
struct ini_section;
struct rpc_method;
struct evt_type;
struct evbuffer;
struct op_kind;
struct json_t;

/*
 * opsd.health, what a monitoring check or a script reads. Each subsystem
 * with a health callback adds its own member to result ("probes") and
 * says in a few words what is wrong (problems: "probe api down") and
 * what is well (fine: "3 probes up"); the words end up in one Nagios
 * line, so they name the object and leave out the why, which the member
 * holds. The callback returns the worst it found.
 */
enum health_status {
	HEALTH_OK,
	HEALTH_WARNING,
	HEALTH_CRITICAL,
};

struct health {
	struct json_t	*result;	/* {status, problems, fine, ...} */
	struct json_t	*problems;	/* strings, worst first is not kept */
	struct json_t	*fine;		/* strings */
};

/* control/rpc-opsd.c */
void	health_problem(struct health *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	health_fine(struct health *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* The whole of opsd.health (the reload, then each subsystem's). */
struct json_t *health_collect(struct opsd *);

struct subsys {
	const char			*name;

	/* Config: section types (NULL-terminated) and whole-config checks. */
	const struct ini_section *const	*sections;
	void	(*check_refs)(struct opsd_config *, struct config_errors *);

	/* Once at start-up, before the first apply. 0 or -errno. */
	int	(*init)(struct opsd *);
	/* At start-up and after every accepted reload: make it so. */
	void	(*apply)(struct opsd *);
	/* The stop begins: fail waiting callers, start no new work. */
	void	(*stop)(struct opsd *);
	/* Work the stop waits for (deliveries in flight, ...). */
	unsigned int (*busy)(struct opsd *);
	/* After the loop ended: release everything. */
	void	(*free)(struct opsd *);

	/* opsd.health: its member, problems and status (above). */
	enum health_status (*health)(struct opsd *, struct health *);

	/*
	 * Its section of the status page (core/status.h): a new object
	 * {"title", "items": [...]}, one flat object per thing shown, read
	 * from what health and the list methods already keep. Never a
	 * secret value. NULL: nothing to show.
	 */
	struct json_t *(*status)(struct opsd *);

	/* Renders the subsystem's metric families for /metrics. */
	void	(*metrics)(struct opsd *, struct evbuffer *);

	/* RPC methods (merged into one sorted table by control/rpc.c). */
	const struct rpc_method		*methods;
	const size_t			*nmethods;

	/* Event types with a MESSAGE_ID (docs/opsd.catalog), NULL-ended. */
	const struct evt_type *const	*events;

	/*
	 * Kinds of multi-step operation it runs through the op journal
	 * (op.h), NULL-ended: registered before init, so that start-up
	 * recovery, after every subsystem's first apply, finds them.
	 */
	const struct op_kind *const	*op_kinds;
};

/* In start order; SUBSYS_N entries. */
extern const struct subsys *const subsys_table[SUBSYS_N];

/* The subsystem's per-daemon state (struct opsd's sub[id]). */
#define SUBSYS_STATE(o, id)	((o)->sub[(id)])

#endif
