/*
 * What the files of the deploy room share. deploy.h is its face.
 *
 *   deploy.c          the set, reload, events, the retire timer of a
 *                     warm old slot, the list/status views
 *   deploy-conf.c     the [deploy NAME] schema and its checks, the
 *                     templates ({slot} {version} {port} {deploy})
 *   deploy-state.c    state_dir/deploy/NAME.json (what serves, what
 *                     served before, the last deploys) and NAME.prev
 *                     (the include file as it was before a cutover)
 *   deploy-proc.c     pid files and nginx's workers, read from /proc
 *   deploy-check.c    health and verify requests on the curl multi handle
 *   deploy-run.c      a cutover, an op of kind deploy.cutover: its steps,
 *                     its rollback, abort and recovery after a crash
 *   deploy-metrics.c  /metrics and opsd.health
 *   rpc-deploy.c      deploy.list, deploy.status, deploy.start,
 *                     deploy.rollback, deploy.abort
 */
#ifndef OPSD_DEPLOY_INT_H
#define OPSD_DEPLOY_INT_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "child.h"
#include "deploy.h"
#include "subsys.h"

struct opsd;
struct op;
struct event;
struct child;
struct drun;
struct rpc_pending;
struct ini_section;
struct opsd_config;
struct config_errors;
struct op_kind;
struct evbuffer;
struct health;

enum deploy_slot { SLOT_BLUE, SLOT_GREEN };

#define DEPLOY_VERSION_MAX	64	/* bytes of a version, without NUL */
/* The version before opsd's first deploy, when active_version is not set */
#define DEPLOY_UNKNOWN		"unknown"
#define DEPLOY_HISTORY		20	/* deploys remembered in NAME.json */
#define DEPLOY_ERROR_MAX	512
#define DEPLOY_INCLUDE_MAX	(64 * 1024)	/* upstream_file and template */
#define DEPLOY_STATE_MAX	(256 * 1024)	/* NAME.json */
#define DEPLOY_OP_ID_MAX	64
#define DEPLOY_CHECKS_KEPT	5	/* health results a failure reports */

/* --- configuration (deploy-conf.c) ------------------------------------- */

struct deploy_conf {
	char		*name;
	int		 line;
	char		*start;
	char		*stop;
	uint64_t	 start_timeout;
	uint64_t	 stop_timeout;
	uint64_t	 blue_port;
	uint64_t	 green_port;
	int		 active;		/* before opsd's first deploy */
	char		*active_version;
	char		*health;
	char		*health_host;
	uint64_t	 health_start_delay;
	uint64_t	 health_interval;
	uint64_t	 health_timeout;
	uint64_t	 health_rise;
	uint64_t	 health_fall;
	uint64_t	 health_deadline;
	char		*pid_file;
	char		*version_header;
	char		*upstream_file;
	char		*upstream_template;
	char		*template_text;		/* read at load time */
	char		*proxy_test;
	char		*proxy_reload;
	char		*proxy_pid_file;	/* NULL: "none" */
	uint64_t	 proxy_timeout;
	char		*verify_url;
	char		*verify_host;
	char		*verify_body;
	uint64_t	 verify_timeout;
	char		*migrate;
	int		 migrate_reversible;
	uint64_t	 migrate_timeout;
	uint64_t	 drain;
	uint64_t	 rollback_window;
	uint64_t	 watch;
	int		 auto_rollback;
	char		**alert;
	unsigned int	 nalert;
	int		 alert_line;
};

extern const struct ini_section deploy_section;
void	 deploy_conf_free(void *);
struct deploy_conf *deploy_conf_copy(const struct deploy_conf *);
void	 deploy_conf_check_refs(struct opsd_config *, struct config_errors *);

/* "blue", "green"; deploy_slot_parse: the slot or -1 */
const char *deploy_slot_name(int slot);
int	 deploy_slot_parse(const char *);
int	 deploy_other(int slot);
uint64_t deploy_port(const struct deploy_conf *, int slot);

/*
 * A version opsd puts into commands and files: [A-Za-z0-9] first, then
 * [A-Za-z0-9._+-], at most DEPLOY_VERSION_MAX bytes. Nothing in it means
 * anything to a shell, a URL or nginx.
 */
int	 deploy_version_ok(const char *);

/*
 * The placeholders of a template: {deploy}, {slot}, {version} and
 * {port}. Anything else (nginx's own braces) is copied as it is. A new
 * string (xmalloc).
 */
struct deploy_vars {
	const char	*deploy;
	const char	*slot;
	const char	*version;
	uint64_t	 port;
};
char	*deploy_expand(const char *tmpl, const struct deploy_vars *);
/* The built-in upstream_template. */
extern const char deploy_default_template[];

/* --- state (deploy-state.c) --------------------------------------------- */

/* One finished deploy (or rollback), newest first in the state. */
struct deploy_entry {
	char		 op[DEPLOY_OP_ID_MAX];
	char		 mode[16];		/* deploy, rollback */
	char		 version[DEPLOY_VERSION_MAX + 1];
	char		 from_version[DEPLOY_VERSION_MAX + 1];
	int		 slot;
	char		 result[16];		/* ok, failed, rolled_back */
	char		 step[32];		/* where it failed */
	int64_t		 started;
	int64_t		 duration_ms;
	int64_t		 cutover_ms;		/* healthy -> verified; -1 */
	char		 error[DEPLOY_ERROR_MAX];
};

/* state_dir/deploy/NAME.json */
struct deploy_state {
	int		 known;			/* read from a file */
	int		 active_slot;
	char		 active_version[DEPLOY_VERSION_MAX + 1];
	int64_t		 active_since;
	int		 irreversible;		/* active's migration */
	int		 has_previous;
	int		 prev_slot;
	char		 prev_version[DEPLOY_VERSION_MAX + 1];
	int		 prev_running;		/* warm for a rollback */
	int64_t		 prev_until;		/* stopped then; 0: kept */
	char		 degraded[DEPLOY_ERROR_MAX];	/* "": not */
	char		 pending_op[DEPLOY_OP_ID_MAX];	/* NAME.prev is its */
	int		 pending_existed;	/* upstream_file was there */
	uint64_t	 n_ok, n_failed, n_rolled_back;
	struct deploy_entry hist[DEPLOY_HISTORY];
	unsigned int	 nhist;
};

/*
 * The pure parser of NAME.json for the tests and the fuzz target: every
 * field is checked for type, shape and bound. 0, or -EBADMSG with why in
 * err (and st zeroed).
 */
int	 deploy_state_parse(const char *buf, size_t len, struct deploy_state *,
	    char *err, size_t errlen);
json_t	*deploy_state_json(const struct deploy_state *);
/* state_dir/deploy, created 0700 */
char	*deploy_state_dir(struct opsd *);
/* 0, -ENOENT, or -EBADMSG (moved aside as NAME.json.bad) */
int	 deploy_state_load(struct opsd *, const char *name,
	    struct deploy_state *, char *err, size_t errlen);
int	 deploy_state_save(struct opsd *, const char *name,
	    const struct deploy_state *);
/* Newest first, at most DEPLOY_HISTORY. */
void	 deploy_state_add(struct deploy_state *, const struct deploy_entry *);
/* NAME.prev: the include file's bytes before a cutover. */
int	 deploy_prev_save(struct opsd *, const char *name, const char *buf,
	    size_t len);
/* 0 with *buf (free() it), or -errno */
int	 deploy_prev_load(struct opsd *, const char *name, char **buf,
	    size_t *len);
void	 deploy_prev_remove(struct opsd *, const char *name);

/* --- processes (deploy-proc.c) ------------------------------------------ */

/* "1234\n" -> 1234: decimal, > 1, trailing blanks only. 0 or -EINVAL. */
int	 deploy_pid_parse(const char *buf, size_t len, pid_t *);
/*
 * The pids of /proc/PID/task/PID/children ("12 13 "), at most max of
 * them; the count found. Anything that is not a pid ends the list.
 */
size_t	 deploy_children_parse(const char *buf, size_t len, pid_t *out,
	    size_t max);
/* Reads a pid file (small, on the loop): 0 or -errno. */
int	 deploy_pid_file(const char *path, pid_t *);
/* 1 if pid is a process that has not exited (not a zombie). */
int	 deploy_pid_alive(pid_t);

#define DEPLOY_WORKERS_MAX	256
struct deploy_workers {
	pid_t		 master;		/* 0: unknown */
	pid_t		 v[DEPLOY_WORKERS_MAX];
	size_t		 n;
};
/* The master (from its pid file) and its children now. 0 or -errno. */
int	 deploy_workers_read(const char *pid_file, struct deploy_workers *);
/*
 * 1 once a reload took effect: another master, or a child that was not
 * there before.
 */
int	 deploy_workers_changed(const struct deploy_workers *before,
	    const struct deploy_workers *now);
/* 1 once none of the children before is a child of the master now. */
int	 deploy_workers_gone(const struct deploy_workers *before,
	    const struct deploy_workers *now);

/* --- checks (deploy-check.c) ---------------------------------------------- */

struct deploy_check_result {
	int		 ok;
	long		 status;		/* HTTP status, 0: none */
	char		 version[DEPLOY_VERSION_MAX + 1];	/* served */
	char		 error[256];		/* why not ok */
	uint64_t	 ms;
	int64_t		 at;			/* unix time */
};
typedef void (*deploy_check_cb)(const struct deploy_check_result *,
    void *arg);

struct deploy_check_spec {
	const char	*url;
	const char	*host;			/* Host header, or NULL */
	uint64_t	 timeout_ms;
	const char	*version_header;	/* NULL: not checked */
	const char	*want_version;
	const char	*body;			/* must contain; NULL: any */
};
struct deploy_check;
/*
 * A GET on a fresh connection; 2xx (and the version and body asked for)
 * is ok. cb runs once, from the loop, unless the check is cancelled. NULL
 * when the request could not start (*why says so).
 */
struct deploy_check *deploy_check_start(struct opsd *,
	    const struct deploy_check_spec *, deploy_check_cb, void *arg,
	    char *why, size_t whylen);
void	 deploy_check_cancel(struct deploy_check *);
json_t	*deploy_check_json(const struct deploy_check_result *);

/* --- the running deploy (deploy.c) ---------------------------------------- */

struct deploy {
	struct opsd		*opsd;
	struct deploy_conf	*conf;		/* owned copy */
	struct deploy_state	 st;
	struct drun		*run;		/* a cutover under way */
	struct event		*retire_ev;	/* the warm old slot's end */
	struct child		*retire_child;
	int			 alert_firing;	/* degraded alert */
};

struct deploy_set {
	struct deploy		**v;
	unsigned int		 n;
	int			 started;
};

struct deploy_set *deploy_set_get(struct opsd *);
void		 deploy_apply_config(struct opsd *);
void		 deploy_stop_all(struct opsd *);
void		 deploy_free_all(struct opsd *);
struct deploy	*deploy_find(struct opsd *, const char *name);
/* idle, deploying, rolling_back, recovering, degraded */
const char	*deploy_state_word(const struct deploy *);
/*
 * An event about d with its deploy, slot and version fields; alert: 0
 * none, 1 a notice to the routes, 2 firing (traffic on a slot that failed
 * its checks), 3 resolved (or a notice if nothing fired).
 */
void		 deploy_event(struct deploy *, const struct evt_type *,
		    const char *op, const char *step, int slot,
		    const char *version, int alert, const char *fmt, ...)
		    __attribute__((format(printf, 8, 9)));
/* Saves d->st; logs a failure (returns it). */
int		 deploy_save(struct deploy *);
/* Arms or clears the timer that stops the warm old slot. */
void		 deploy_retire_schedule(struct deploy *);
json_t		*deploy_json(struct deploy *, int full);
/* Runs a command template of d for slot with version (/bin/sh -c). */
struct child	*deploy_command(struct deploy *, const char *tmpl, int slot,
		    const char *version, uint64_t timeout_ms,
		    child_done_cb done, void *arg, int *err);

/* --- the cutover (deploy-run.c) ------------------------------------------- */

extern const struct op_kind deploy_cutover_kind;

enum deploy_mode { DEPLOY_MODE_DEPLOY, DEPLOY_MODE_ROLLBACK };

/*
 * Starts a cutover of d to version (rollback: to the previous slot and
 * version). follower (may be NULL) gets deploy.progress and
 * deploy.finished. 0 with the op id in *id; -EBUSY, -ESHUTDOWN, -ENOENT,
 * -EINVAL... with *err (free() both).
 */
int	 deploy_run_start(struct deploy *, int mode, const char *version,
	    int force, struct rpc_pending *follower, char **id, char **err);
/* Aborts the cutover under way: undone from where it is. */
int	 deploy_run_abort(struct deploy *, int force, char **id, char **err);
/* op recovery at start-up, or a deploy back with an unfinished op */
void	 deploy_run_recover(struct opsd *, struct op *);
/* Forgets a cutover whose deploy goes away (reload, stop). */
void	 deploy_run_abandon(struct deploy *);
/* The cutover's view for deploy.status, or NULL. */
json_t	*deploy_run_json(const struct deploy *);
int	 deploy_run_recovering(const struct deploy *);
int	 deploy_run_rolling_back(const struct deploy *);

/* --- metrics (deploy-metrics.c) ------------------------------------------- */

void	 deploy_metrics(struct opsd *, struct evbuffer *);
enum health_status deploy_health(struct opsd *, struct health *);
json_t	*deploy_status(struct opsd *);

#endif
