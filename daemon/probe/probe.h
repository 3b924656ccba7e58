/*
 * Health probes. A probe runs on a fixed grid (first runs spread over the
 * interval, never overlapping with itself; the set shares one timer:
 * probe-sched.c), one kind-specific file does the check (probe-http.c,
 * probe-tcp.c, probe-pg.c, probe-tls.c, probe-tls-grade.c, probe-exec.c),
 * and every run ends in probe_done() (probe.c): the single place that
 * keeps the rise/fall counters, the state, the history, and emits the
 * state-change event that logging, metrics and alerts hang off. The
 * [probe NAME] schema is probe-conf.c.
 */
#ifndef OPSD_PROBE_H
#define OPSD_PROBE_H

#include <stdint.h>
#include <time.h>

#include "config.h"

struct opsd;
struct evt_type;
struct probe;
struct rpc_pending;

enum probe_kind {
	PROBE_HTTP,
	PROBE_TCP,
	PROBE_POSTGRES,
	PROBE_TLS,
	PROBE_EXEC,
	PROBE_TLS_GRADE,
};

enum probe_state {
	PROBE_UNKNOWN,
	PROBE_UP,
	PROBE_DOWN,
};

#define PROBE_MAX_STATUS	16
#define PROBE_HISTORY		32

struct probe_conf {
	char		*name;
	int		 line;
	int		 kind;
	uint64_t	 interval;	/* msec */
	uint64_t	 timeout;	/* msec */
	uint64_t	 rise;
	uint64_t	 fall;
	char		**alert;	/* route names */
	unsigned int	 nalert;
	int		 alert_line;

	/* http */
	char		*url;
	char		*method;
	char		*expect_status;
	struct {
		int	 lo, hi;
	}		 status[PROBE_MAX_STATUS];
	unsigned int	 nstatus;
	char		*expect_body;
	char		**expect_header;
	unsigned int	 nexpect_header;
	char		*host_header;
	char		*ca_file;
	int		 tls_verify;
	int		 follow_redirects;

	/* tcp, tls */
	char		*address;	/* host:port */
	char		*host;		/* parsed from address */
	int		 port;
	char		*send;
	char		*expect;
	char		*servername;
	uint64_t	 warn_days;

	/* postgres */
	char		*conninfo;
	char		*password_file;
	char		*password_secret;	/* [secret NAME]: its path */
	int		 password_secret_line;
	char		*query;

	/* exec */
	char		*command;

	/* tls-grade */
	char		*min_grade;
	char		*starttls;
	int		 starttls_pg;

	/* recovery (probe-recover.c) */
	int		 on_down;	/* enum probe_on_down */
	char		*restart;	/* the command */
	uint64_t	 restart_timeout;	/* msec */
	uint64_t	 restart_grace;		/* msec */
	char		*restart_limit;		/* "3 in 10m" */
	uint64_t	 restart_max;		/* parsed from it */
	uint64_t	 restart_window;	/* msec */
	uint64_t	 restart_backoff;	/* msec, doubles */
	uint64_t	 restart_cooldown;	/* msec, 0: the window */
	char		**depends_on;
	unsigned int	 ndepends_on;
	int		 depends_line;
	char		*service;	/* op lock and maintenance name */
};

enum probe_on_down {
	PROBE_ON_DOWN_NONE,
	PROBE_ON_DOWN_RESTART,
	PROBE_ON_DOWN_EXEC,
};

struct probe_result {
	int64_t		 ts_usec;	/* wall clock, start of the run */
	int		 ok;
	double		 latency_ms;
	char		 reason[256];	/* why it failed, or a short note */
	int		 http_status;
	/* tls and https: the served certificate */
	int64_t		 cert_not_after;	/* 0 if unknown */
	char		 cert_subject[256];
	char		 cert_issuer[256];
	int		 cert_verified;
	/* postgres */
	char		 server_version[32];
};

/*
 * One run in the history ring: the figures, and the texts (the reason;
 * for tls, https and postgres probes the certificate's subject and issuer
 * and the server version) packed in one allocation of their real length,
 * or in the entry itself when they are short (a run that went well).
 * A whole struct probe_result is 840 bytes, 27 KB a probe for the ring.
 */
struct probe_hist {
	int64_t		 ts_usec;
	double		 latency_ms;
	int64_t		 cert_not_after;
	int		 http_status;
	unsigned char	 ok;
	unsigned char	 cert_verified;
	unsigned char	 text_inline;	/* the texts fit in inl */
	/* reason\0subject\0issuer\0server_version\0 */
	union {
		char	*text;
		char	 inl[16];	/* "HTTP 200\0\0\0\0": no allocation */
	};
};

struct probe_ops {
	const char	*name;
	/* Starts one run; it ends with probe_done(). 0 or -errno. */
	int		(*start)(struct probe *);
	/* Aborts the run in flight without calling probe_done(). */
	void		(*cancel)(struct probe *);
	/* Releases what the kind keeps between runs. */
	void		(*free)(struct probe *);
	/* Reads what has come for the run, at the harvest it asked for. */
	void		(*harvest)(struct probe *);
};

/*
 * What probe_json() shows of a probe, to tell whether its text is still
 * current. Plain 64-bit members: memcmp sees no padding.
 */
struct probe_text_key {
	uint64_t		 conf;		/* the owned copy, in... */
	uint64_t		 reloads;	/* ...this configuration */
	uint64_t		 state;
	uint64_t		 since;
	uint64_t		 runs_ok;	/* a new last result */
	uint64_t		 runs_failed;
	uint64_t		 has_last;
	uint64_t		 state_changes;
	uint64_t		 running;
	uint64_t		 ok_streak;
	uint64_t		 fail_streak;
	uint64_t		 recover;	/* probe_recover_generation() */
};

struct probe {
	struct opsd		*opsd;
	struct probe_conf	*conf;		/* owned copy */
	const struct probe_ops	*ops;
	void			*kstate;	/* the kind's own */

	enum probe_state	 state;
	int64_t			 since;		/* wall clock, seconds */
	unsigned int		 ok_streak;
	unsigned int		 fail_streak;
	int			 has_last;	/* hist holds the last run */
	struct probe_hist	 hist[PROBE_HISTORY];
	unsigned int		 nhist;
	unsigned int		 hist_next;
	int64_t			 cert_not_after;
	int			 secret_warned;	/* loose mode, said once */

	int			 armed;		/* due_usec is a scheduled run */
	uint64_t		 due_usec;	/* monotonic */
	uint64_t		 jitter_usec;	/* grid offset after the 1st run */
	uint64_t		 grid_slot;	/* usec; 0: no slots */
	int			 running;
	int			 manual;	/* started by probe.run */
	uint64_t		 run_start;	/* monotonic */
	int64_t			 run_start_wall;
	int			 harvest;	/* probe_harvest_at() */
	uint64_t		 harvest_due;	/* monotonic */

	uint64_t		 runs_ok;
	uint64_t		 runs_failed;
	uint64_t		 state_changes;
	double			 last_duration;	/* seconds */

	struct rpc_pending	**waiters;	/* probe.run callers */
	unsigned int		 nwaiters;

	struct probe_recover	*rec;		/* probe-recover.c */

	char			*text;		/* probe_json(), encoded */
	size_t			 textlen;
	struct probe_text_key	 text_key;	/* what it shows */
};

/* The last run (has_last): the newest entry of the ring, and its reason. */
static inline const struct probe_hist *
probe_last(const struct probe *p)
{
	return (&p->hist[(p->hist_next + PROBE_HISTORY - 1) % PROBE_HISTORY]);
}

static inline const char *
probe_last_reason(const struct probe *p)
{
	const struct probe_hist	*h = probe_last(p);

	if (!p->has_last)
		return ("");
	return (h->text_inline ? h->inl : h->text);
}

extern const struct evt_type EVT_PROBE_STATE;	/* up <-> down */

extern const struct probe_ops probe_http_ops;
extern const struct probe_ops probe_tcp_ops;
extern const struct probe_ops probe_pg_ops;
extern const struct probe_ops probe_tls_ops;
extern const struct probe_ops probe_exec_ops;
extern const struct probe_ops probe_tls_grade_ops;	/* cert room */

/* Config: the [probe NAME] section type and its cleanup. */
extern const struct ini_section probe_section;
void	 probe_conf_free(struct probe_conf *);
/* Checks that need the whole config (alert routes exist). */
void	 probe_conf_check_refs(struct opsd_config *, struct config_errors *);

/* The registry's collector for /metrics. */
struct evbuffer;
void	 probe_metrics(struct opsd *, struct evbuffer *);

/* Runtime. */
void	 probe_apply_config(struct opsd *);	/* start, after reload */
/*
 * A run whose answer can wait: the kind's harvest() is called at the
 * set's next harvest, no sooner than due_usec (monotonic), with the
 * other runs that asked (one wake-up reads them all). Ended by
 * probe_done() and by a cancel.
 */
void	 probe_harvest_at(struct probe *, uint64_t due_usec);
/* Does this http probe run through libcurl (https, redirects, ...)? */
int	 http_probe_needs_curl(const struct probe_conf *);
void	 probe_stop_all(struct opsd *);
struct probe *probe_find(struct opsd *, const char *name);
unsigned int probe_count(struct opsd *);
struct probe *probe_at(struct opsd *, unsigned int);
/* Runs now (or joins the run in flight); waiter gets the result. */
int	 probe_run_now(struct probe *, struct rpc_pending *);
void	 probe_done(struct probe *, struct probe_result *);

const char *probe_state_name(enum probe_state);
const char *probe_kind_name(int kind);
struct json_t *probe_result_json(const struct probe_result *);
/* The i-th newest run of the history (0: the last one), i < nhist. */
void	 probe_hist_get(const struct probe *, unsigned int,
	    struct probe_result *);
struct json_t *probe_json(const struct probe *);
/* The same as compact JSON text, kept until the probe changes; or NULL. */
const char *probe_json_text(struct probe *, size_t *len);

/* Lateness of runs against their schedule, for metrics and the bench. */
#define PROBE_LATENESS_BUCKETS	12
extern const double probe_lateness_bounds[PROBE_LATENESS_BUCKETS];
struct probe_lateness {
	uint64_t	 count[PROBE_LATENESS_BUCKETS + 1];	/* +Inf last */
	double		 sum;
	uint64_t	 n;
};
const struct probe_lateness *probe_lateness(struct opsd *);

/*
 * Recovery (probe-recover.c): restarts, dependencies, maintenance. The
 * core calls these where a result is judged and an alert is raised.
 */
struct json_t;
struct ini_section;
struct config_errors;
struct op_kind;
extern const struct evt_type EVT_PROBE_RESTART;
extern const struct evt_type EVT_PROBE_FLAPPING;
extern const struct evt_type EVT_PROBE_HELD;
extern const struct op_kind probe_restart_kind;
void	 probe_recover_conf_check(struct probe_conf *, const char *file,
	    const int *keylines, struct config_errors *);
void	 probe_recover_check_refs(struct opsd_config *,
	    struct config_errors *);
/* A failed result not to judge: a restart runs or is in its grace. */
int	 probe_recover_grace(struct probe *);
/* Whether the state change's alert goes out (else it is held). */
int	 probe_recover_alert(struct probe *, enum probe_state prev);
/* After every judged run: restarts, flapping, released holds. */
void	 probe_recover_done(struct probe *, enum probe_state prev);
void	 probe_recover_free(struct probe *);
void	 probe_recover_json(struct probe *, struct json_t *);
uint64_t probe_recover_generation(struct probe *);
void	 probe_recover_metrics(struct opsd *, struct evbuffer *);
/* A probe, or a probe's service, of that name exists. */
int	 probe_name_known(struct opsd *, const char *name);

/* Small helpers shared by the kinds. */
void	 probe_fail(struct probe_result *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
