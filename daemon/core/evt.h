/*
 * Events: the one way a subsystem reports what happened. An event has a
 * type (name such as "rpc.denied", a fixed journald MESSAGE_ID for the key
 * types, a default priority), fields and a message. evt_emit() hands it to
 * every sink: the log (journald or JSON on stderr) and whoever subscribed
 * (metrics, alerts, clients following an operation). Subsystems never call
 * the logger, the alerter and the metrics registry one by one.
 */
#ifndef OPSD_EVT_H
#define OPSD_EVT_H

#include <stdarg.h>
#include <syslog.h>

struct evt_type {
	const char	*name;		/* subsystem.event */
	const char	*message_id;	/* 32 hex digits, or NULL */
	int		 priority;	/* syslog priority */
};

/*
 * Key event types of the core, each documented in docs/opsd.catalog;
 * subsystems declare theirs in their own headers and list them in their
 * registry entry (subsys.h).
 */
extern const struct evt_type EVT_STARTED;
extern const struct evt_type EVT_STOPPED;
extern const struct evt_type EVT_RELOADED;
extern const struct evt_type EVT_RELOAD_FAILED;
extern const struct evt_type EVT_UNCLEAN_SHUTDOWN;
extern const struct evt_type EVT_RPC_AUDIT;
extern const struct evt_type EVT_RPC_DENIED;
extern const struct evt_type EVT_LOG_LEVEL;

/* The core's key types, NULL-terminated (opsd --list-events). */
extern const struct evt_type *const evt_core_types[];

struct evt_field {
	char	*key;		/* lower-case; the journal gets OPSD_<KEY> */
	char	*value;
};

/* What evt_alert() attaches: the alert sink delivers it. */
struct evt_alert_info {
	const char *const	*routes;	/* borrowed until emitted */
	unsigned int		 nroutes;
	const char		*source;	/* "probe", "backup", ... */
	const char		*object;	/* its name */
	int			 firing;	/* 0: resolved */
	/*
	 * Deployment-style notifications (evt_alert_notice): 2 sends a
	 * "notice" that neither fires nor resolves; 1 makes a resolved
	 * event a notice on the routes where nothing was firing.
	 */
	int			 notice;
};

struct evt {
	const struct evt_type	*type;
	struct evt_alert_info	*alert;		/* NULL: no alert */
	const char		*name;		/* type->name unless generic */
	int			 priority;
	char			*message;
	struct evt_field	*fields;
	unsigned int		 nfields;
	int			 force;		/* logged whatever the level */
};

enum log_target {
	LOG_TARGET_AUTO,
	LOG_TARGET_JOURNAL,
	LOG_TARGET_STDERR,
};

typedef void (*evt_sink)(const struct evt *, void *arg);

void	 log_init(enum log_target);
void	 log_set_level(int priority);
int	 log_get_level(void);
int	 log_level_parse(const char *name);	/* -1 if unknown */
const char *log_level_name(int priority);
enum log_target log_get_target(void);

struct evt *evt_new(const struct evt_type *);
/* Adds a field; values are formatted, keys are lower-case identifiers. */
void	 evt_add(struct evt *, const char *key, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	 evt_set_priority(struct evt *, int priority);
/* Marks the event as an alert for routes (fired or resolved). */
void	 evt_alert(struct evt *, const char *const *routes,
	    unsigned int nroutes, const char *source, const char *object,
	    int firing);
/*
 * After evt_alert(): the message is also sent where no alert is active,
 * as a "notice" (always: every route gets one and the active set is left
 * alone; else only a resolved event where nothing fired gets one).
 */
void	 evt_alert_notice(struct evt *, int always);
/* Sets the message, hands the event to every sink, frees it. */
void	 evt_emit(struct evt *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* A record without a key type: name is "subsystem.event". */
void	 evt_log(int priority, const char *name, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/*
 * The same about one object: key=value (probe=api, route=ops) becomes a
 * field, so that `journalctl OPSD_PROBE=api` finds the record.
 */
void	 evt_log_about(int priority, const char *name, const char *key,
	    const char *value, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));

void	 evt_subscribe(evt_sink, void *arg);
void	 evt_unsubscribe(evt_sink, void *arg);

#define log_err(name, ...)	evt_log(LOG_ERR, name, __VA_ARGS__)
#define log_warn(name, ...)	evt_log(LOG_WARNING, name, __VA_ARGS__)
#define log_notice(name, ...)	evt_log(LOG_NOTICE, name, __VA_ARGS__)
#define log_info(name, ...)	evt_log(LOG_INFO, name, __VA_ARGS__)
#define log_debug(name, ...)	evt_log(LOG_DEBUG, name, __VA_ARGS__)

#endif
