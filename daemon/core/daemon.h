/*
 * The daemon's context, passed to every subsystem (no globals beyond the
 * log state). Fields belong to main.c unless noted.
 */
#ifndef OPSD_DAEMON_H
#define OPSD_DAEMON_H

#include <stdint.h>
#include <time.h>

#include "registry.h"

struct event;
struct event_base;
struct evdns_base;
struct control;
struct metrics;
struct rpc_table;
struct status_cache;
struct op_journal;
struct job_set;
struct http_multi;
struct child_set;
struct config_errors;
struct opsd_config;

/*
 * The kernel's timer slack for opsd (main.c): a timer may fire this much
 * late. Timers that must be on time (the probes' slots, the loop's tick)
 * are set this much early.
 */
#define OPSD_TIMER_SLACK_USEC	2000

struct loop_stats {
	uint64_t	 lag_usec;	/* last tick's lateness */
	uint64_t	 lag_max_usec;	/* worst over the current minute */
	uint64_t	 lag_max_prev;	/* worst over the previous minute */
	double		 cpu_percent;	/* over the last tick interval */
	uint64_t	 cpu_prev_usec;
	uint64_t	 tick_prev_usec;
	uint64_t	 tick_due_usec;	/* the tick's whole second */
	unsigned int	 ticks;
};

struct opsd {
	struct event_base	*base;
	struct opsd_config	*conf;
	char			*conf_path;
	struct control		*control;	/* control/control.c */
	struct rpc_table	*rpc;		/* control/rpc.c */
	struct status_cache	*status;	/* control/rpc-opsd.c */
	struct evdns_base	*dns;		/* names: probes and sessions */
	struct metrics		*metrics;	/* core/metrics.c */
	struct http_multi	*http;		/* core/http.c */
	struct child_set	*children;	/* core/child.c */
	/* each subsystem's own state, by its registry id (subsys.h) */
	void			*sub[SUBSYS_N];
	struct op_journal	*ops;		/* core/op.c */
	struct job_set		*jobs;		/* core/jobs.c */

	uint64_t		 start_usec;	/* monotonic */
	time_t			 start_time;
	int			 stopping;
	unsigned int		 reloads;
	int			 last_reload_ok;	/* 1 until one fails */
	time_t			 last_reload_success;	/* or the start */
	/* the last failed reload's errors and time; NULL after a success */
	struct config_errors	*reload_errors;
	time_t			 last_reload_failure;
	struct loop_stats	 loop;

	uint64_t		 watchdog_usec;	/* 0: no watchdog */
	struct event		*ev_watchdog;
	struct event		*ev_tick;
	struct event		*ev_deadline;
	struct event		*ev_signals[4];
};

/*
 * The life cycle, walking the subsystem registry. opsd_init() sets up the
 * loop and the core mechanisms on a context whose conf and conf_path are
 * set (main.c, the unit tests and the fuzz targets share it);
 * opsd_start() initializes and configures every subsystem in registry
 * order; opsd_free() releases them in reverse and then the core.
 */
int	opsd_init(struct opsd *);
void	opsd_start(struct opsd *);
void	opsd_free(struct opsd *);

/*
 * Loads the configured file and swaps it in if valid. 0, or -1 with the
 * errors in errs and the running config untouched.
 */
int	opsd_reload(struct opsd *, struct config_errors *errs);
void	opsd_shutdown(struct opsd *, const char *why);
void	opsd_maybe_exit(struct opsd *);	/* after work ends while stopping */
void	opsd_status_line(struct opsd *, char *buf, size_t len);
void	opsd_notify_status(struct opsd *);	/* STATUS= to systemd */

#endif
