/*
 * Maintenance windows: while a window covers a probe (by its name, its
 * `service`, or every probe), the probe keeps running and reporting but
 * its alerts and its restarts are held. A window is opened by
 * `opsd-cli maintenance start` (maintenance.start) or by a deploy for its
 * cutover, ends when stopped, when its time is up, or when the deploy
 * ends, and survives a restart of opsd (state_dir/maintenance.json).
 */
#ifndef OPSD_MAINT_H
#define OPSD_MAINT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct opsd;
struct evt_type;
struct evbuffer;
struct rpc_method;

extern const struct evt_type EVT_MAINT_STARTED;
extern const struct evt_type EVT_MAINT_ENDED;

#define MAINT_NAME_MAX		127	/* a configured name, or "*" */
#define MAINT_REASON_MAX	200	/* bytes of UTF-8 */
#define MAINT_MAX		256	/* windows at once */

struct maint_window {
	char		 name[MAINT_NAME_MAX + 1];	/* "*": every probe */
	char		 source[16];	/* "cli" or "deploy" */
	char		 reason[MAINT_REASON_MAX + 1];
	int64_t		 started;	/* wall clock, seconds */
	int64_t		 until;		/* wall clock, seconds; 0: until stopped */
	int64_t		 uid;		/* who opened it; -1: opsd itself */
	int		 ending;	/* at run time: its end is due */
};

/* The state file, pure: bytes in, windows out (maint-file.c). */
int	 maint_name_ok(const char *);
int	 maint_reason_ok(const char *);
/* 0 with *n windows in v (room for MAINT_MAX), or -1, err, v cleared. */
int	 maint_parse(const char *buf, size_t len, struct maint_window *v,
	    unsigned int *n, char *err, size_t errlen);
json_t	*maint_window_json(const struct maint_window *);
json_t	*maint_file_json(const struct maint_window *, unsigned int n);

/*
 * The window that covers a probe named name with service (NULL: none),
 * or NULL; one not yet expired (a window whose time is up is not
 * honoured even before its timer removed it).
 */
const struct maint_window *maint_covering(struct opsd *, const char *name,
	    const char *service);
/* Changes whenever a window starts or ends (probe texts follow it). */
uint64_t maint_generation(struct opsd *);
/*
 * Opens (or extends) the window on name ("*" for all) from source; until
 * 0 lasts until stopped. 0, or -errno with *err (free() it).
 */
int	 maint_start(struct opsd *, const char *name, int64_t until,
	    const char *reason, const char *source, int64_t uid, char **err);
/*
 * Ends the windows on name (NULL: all) from source (NULL: any); why goes
 * into the event. Returns how many ended.
 */
unsigned int maint_stop(struct opsd *, const char *name, const char *source,
	    const char *why);
json_t	*maint_list_json(struct opsd *);

/*
 * A deploy's cutover: its own window on the deploy's name, ended when the
 * op finishes however it does (op.finished of deploy.cutover), also when
 * a start-up recovery abandons it.
 */
void	 maint_deploy_begin(struct opsd *, const char *deploy, const char *op);

/* Registry glue (maint.c). */
void	 maint_apply(struct opsd *);
void	 maint_free(struct opsd *);
void	 maint_metrics(struct opsd *, struct evbuffer *);

#endif
