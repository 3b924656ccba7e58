/*
 * The daemon's context, passed to every subsystem (no globals beyond the
 * log state). Fields belong to main.c unless noted.
 */
#ifndef OPSD_DAEMON_H
#define OPSD_DAEMON_H

#include <stdint.h>
#include <time.h>

struct event;
struct event_base;
struct evdns_base;
struct control;
struct probe_set;
struct alert_set;
struct backup_set;
struct metrics;
struct op_journal;
struct config_errors;
struct opsd_config;

struct loop_stats {
	uint64_t	 lag_usec;	/* last tick's lateness */
	uint64_t	 lag_max_usec;	/* worst over the current minute */
	uint64_t	 lag_max_prev;	/* worst over the previous minute */
	double		 cpu_percent;	/* over the last tick interval */
	uint64_t	 cpu_prev_usec;
	uint64_t	 tick_prev_usec;
	unsigned int	 ticks;
};

struct opsd {
	struct event_base	*base;
	struct opsd_config	*conf;
	char			*conf_path;
	struct control		*control;	/* control.c */
	struct evdns_base	*dns;		/* names for tcp/tls probes */
	struct probe_set	*probes;	/* probe.c */
	struct alert_set	*alerts;	/* alert.c */
	struct backup_set	*backups;	/* backup.c */
	struct metrics		*metrics;	/* metrics.c */
	struct op_journal	*ops;		/* op.c */

	uint64_t		 start_usec;	/* monotonic */
	time_t			 start_time;
	int			 stopping;
	unsigned int		 reloads;
	struct loop_stats	 loop;

	uint64_t		 watchdog_usec;	/* 0: no watchdog */
	struct event		*ev_watchdog;
	struct event		*ev_tick;
	struct event		*ev_deadline;
	struct event		*ev_signals[4];
};

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
