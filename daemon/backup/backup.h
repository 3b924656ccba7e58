/*
 * Scheduled, verified PostgreSQL backups. A run is a state machine whose
 * step is written to state_dir before each side effect, so a kill -9 at
 * any point is cleaned up at the next start: lock (optional advisory lock
 * for fleets) -> dump (pg_dump streamed through SHA-256 into a .partial
 * file) -> sync -> rename + manifest -> verify (checksum, restore into a
 * scratch database, checks, drop) -> upload -> prune.
 */
#ifndef OPSD_BACKUP_H
#define OPSD_BACKUP_H

#include <stdint.h>

#include "config.h"
#include "db.h"		/* a [backup] names a [database] */
#include "schedule.h"
#include "subsys.h"

struct opsd;
struct rpc_pending;
struct json_t;
struct evbuffer;

enum backup_verify {
	BACKUP_VERIFY_EACH,
	BACKUP_VERIFY_NEVER,
};

enum backup_lock {
	BACKUP_LOCK_NONE,
	BACKUP_LOCK_ADVISORY,
};

#define BACKUP_RETRY_MAX	8

struct backup_conf {
	char		*name;
	int		 line;
	char		*database;
	char		*schedule;
	char		*timezone;
	struct sched_spec spec;
	uint64_t	 random_delay;
	int		 persistent;
	char		*dir;
	char		*pg_dump_args;
	char		*pg_bin_dir;
	uint64_t	 timeout;
	uint64_t	 keep_last;
	uint64_t	 keep_daily;
	uint64_t	 keep_weekly;
	uint64_t	 keep_monthly;
	int		 verify;
	uint64_t	 verify_timeout;
	char		*verify_schedule;	/* re-verify the newest too */
	struct sched_spec verify_spec;
	char		**check;
	unsigned int	 ncheck;
	char		**expect;
	unsigned int	 nexpect;
	uint64_t	 max_age;	/* msec; 0: twice the period */
	char		*upload;
	char		*s3_endpoint;
	char		*s3_region;
	char		*s3_access_key_file;
	char		*s3_secret_key_file;
	int		 remote_retention;
	int		 lock;
	char		**alert;
	unsigned int	 nalert;
	int		 alert_line;
	int		 database_line;
	uint64_t	 upload_connect_timeout;	/* msec */
	uint64_t	 upload_stall_timeout;		/* msec */
	char		*retry;		/* "5m 15m 1h", or "no" */
	uint64_t	 retry_ms[BACKUP_RETRY_MAX];	/* parsed from retry */
	unsigned int	 nretry;
};

extern const struct ini_section backup_section;
void	 backup_conf_free(struct backup_conf *);
void	 backup_conf_check_refs(struct opsd_config *, struct config_errors *);

void	 backup_apply_config(struct opsd *);
void	 backup_stop_all(struct opsd *);

/*
 * RPC entry points; each returns 0, or -errno with a message in *msg:
 * -ENOENT no such backup, -EBUSY already running, -EINVAL a bad argument,
 * -EIO it ran and failed. rpc-backup.c turns that into the wire code.
 */
int	 backup_rpc_run(struct opsd *, const char *name,
	    struct rpc_pending *follower, char **run_id, char **msg);
int	 backup_rpc_verify(struct opsd *, const char *id,
	    struct rpc_pending *waiter, char **msg);
int	 backup_rpc_restore(struct opsd *, const char *id, const char *into,
	    int create, int force, struct rpc_pending *waiter, char **msg);
struct json_t *backup_list_json(struct opsd *, const char *name);
struct json_t *backup_show_json(struct opsd *, const char *id);
int	 backup_prune(struct opsd *, const char *name, int dry_run,
	    struct json_t **result, char **msg);
unsigned int backup_count(struct opsd *);
void	 backup_metrics(struct opsd *, struct evbuffer *);
/* The registry's health callback (opsd.health). */
enum health_status backup_health(struct opsd *, struct health *);
/* Its section of the status page (core/status.h). */
struct json_t *backup_status(struct opsd *);

/*
 * opsd --dump-writer FIFO FILE (argv[0] is "--dump-writer"): the child a
 * backup run copies pg_dump's output to disk with; backup-writer.c.
 */
int	 backup_dump_writer(int argc, char **argv);

/* Key event types (docs/opsd.catalog). */
struct evt_type;
extern const struct evt_type EVT_BACKUP_OK, EVT_BACKUP_FAILED,
    EVT_BACKUP_VERIFIED, EVT_BACKUP_VERIFY_FAILED, EVT_BACKUP_UPLOAD_FAILED,
    EVT_BACKUP_SKIPPED, EVT_BACKUP_STALE, EVT_BACKUP_INTERRUPTED,
    EVT_BACKUP_RESTORED;

/*
 * Retention (grandfather-father-son), a pure function for tests: ts[] are
 * the backups' start times (any order), verified[] whether each verified
 * good. Sets keep[i] to 1 for what stays. Days, weeks (ISO) and months
 * are counted in UTC.
 */
struct retention {
	uint64_t	keep_last;
	uint64_t	keep_daily;
	uint64_t	keep_weekly;
	uint64_t	keep_monthly;
};
void	 backup_retention(const struct retention *, const int64_t *ts,
	    const int *verified, unsigned int n, int *keep);


#endif
