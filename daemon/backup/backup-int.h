/*
 * What the files of the backup room share and nothing outside it sees:
 * the running state of one [backup], of a run, of a verification, and
 * the helpers each file lends the others. backup.h is the room's face.
 *
 *   backup.c           the set, reload and stop, jobs, events, staleness
 *   backup-conf.c      the [backup] schema and its checks
 *   backup-run.c       the run state machine, an op of kind backup.run
 *   backup-verify.c    checksum, restore into a scratch database, checks
 *   backup-restore.c   restore into a named database; pg_restore
 *   backup-upload.c    the off-site copy and its removal
 *   backup-retention.c what stays, and pruning the rest
 *   backup-manifest.c  manifests on disk and the list/show views
 *   backup-recover.c   backup.run's roll-back and the start-up sweep
 *   backup-metrics.c   the /metrics collector
 */
#ifndef OPSD_BACKUP_INT_H
#define OPSD_BACKUP_INT_H

#include <stdint.h>

#include <event2/util.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "backup.h"
#include "child.h"
#include "db.h"
#include "pg.h"
#include "rpc.h"

struct brun;
struct verify;
struct restore;
struct recover_drop;
struct run_recovery;
struct op;
struct op_kind;
struct evt_type;
struct job;
struct pgq;
struct rpc_pending;
struct s3_op;

struct backup {
	struct opsd		*opsd;
	struct backup_conf	*conf;		/* owned copy */
	struct db_conf		*db;		/* owned copy */
	struct job		*job;
	struct job		*verify_job;	/* verify_schedule */
	struct brun		*run;
	struct verify		*verify;	/* a standalone verify */
	json_t			*items;		/* manifests, oldest first */
	struct event		*stale_timer;
	int			 stale_firing;
	int			 failed_firing;
	int			 verify_firing;
	int			 upload_firing;
	int			 unverifiable_firing;	/* could not run */
	unsigned int		 verify_failures;	/* in a row */
	int64_t			 appeared;	/* configured since (grace) */
	int64_t			 stale_told;	/* last stale alert sent */
	struct event		*retry_timer;	/* a failed scheduled run */
	unsigned int		 retry_n;	/* retries since it failed */
	int64_t			 last_success;
	int64_t			 last_verified;
	uint64_t		 last_size;
	double			 last_duration;
	uint64_t		 runs_ok;
	uint64_t		 runs_failed;
	uint64_t		 runs_skipped;
	uint64_t		 upload_ok;
	uint64_t		 upload_failed;
	char			*pg_dump_version;
	struct child		*version_child;
	struct pgq		*recover_q;	/* start-up clean-up */
	struct recover_drop	**drops;	/* its DROP DATABASEs */
	unsigned int		 ndrops;
	/* backup.run ops of a previous opsd being rolled back */
	struct run_recovery	**recoveries;
	unsigned int		 nrecoveries;
	/* restores in flight: aborted, not left dangling, when b goes */
	struct restore		**restores;
	unsigned int		 nrestores;
};

struct backup_set {
	struct backup	**v;
	unsigned int	  n;
	int		  recovered;
};

/* The backup set in the daemon context (subsys.h). */
#define BACKUPS(o)	((struct backup_set *)(o)->sub[SUBSYS_BACKUP])

/* ok: 1 verified, 0 FAILED, -1 could not run (nothing was decided) */
typedef void (*verify_done_cb)(struct verify *, int ok, void *arg);

struct verify {
	struct backup	*b;
	json_t		*manifest;
	char		*file;
	char		*scratch;
	char		*passfile;
	struct pgq	*admin;
	struct pgq	*sess;
	struct child	*child;
	unsigned int	 check;
	json_t		*checks;
	char		*error;
	int		 created;
	int		 unavailable;	/* it could not run: no verdict */
	verify_done_cb	 done;
	void		*arg;
	struct rpc_pending *waiter;
};

/* The steps of the backup.run op kind, in order (backup-run.c names them). */
enum brun_step {
	RUN_CONNECT,		/* session for the server version */
	RUN_LOCK,		/* the fleet's advisory lock (lock = advisory) */
	RUN_DUMP,		/* pg_dump into NAME-TS.dump.partial */
	RUN_SYNC,		/* fsync of the partial file */
	RUN_RENAME,		/* rename to NAME-TS.dump, write NAME-TS.json */
	RUN_VERIFY,		/* verify = each: restore into a scratch db */
	RUN_UPLOAD,		/* upload = s3://...: the off-site copy */
	RUN_PRUNE,		/* retention */
	RUN_NSTEPS,
};

struct brun {
	struct backup		*b;
	struct op		*op;		/* backup.run; NULL once finished */
	char			 op_id[64];
	char			 id[128];
	enum brun_step		 step;
	int64_t			 start;		/* wall clock */
	uint64_t		 start_usec;
	char			*partial;
	char			*final;
	char			*passfile;
	int			 fd;		/* the partial, for its size */
	uint64_t		 bytes;
	char			*error;
	/*
	 * The dump: pg_dump (child) writes into the FIFO, the dump writer
	 * (backup-writer.c) copies it into the partial; each one's end is
	 * waited for before the run goes on.
	 */
	struct child		*writer;
	char			*fifo;		/* STATE_DIR/run/dump-NAME.fifo */
	int			 fifo_fd;	/* a reader, so no open blocks */
	int			 fifo_wfd;	/* a writer, until pg_dump ends */
	int			 dump_running;	/* pg_dump not yet reaped */
	char			*dump_why;	/* how pg_dump failed */
	int			 write_ok;	/* the writer gave sha256 */
	char			 sha256[65];
	char			 server_version[32];
	struct pgq		*sess;
	struct child		*child;
	json_t			*manifest;
	struct s3_op		*s3;
	int			 interrupted;
	unsigned int		 lock_tries;
	struct event		*lock_retry;
	unsigned int		 upload_try;
	unsigned int		 dump_tries;
	int			 upload_manifest;
	struct event		*timer;		/* progress, retries */
	struct rpc_followers	 followers;
	struct job		*job;
	int			 scheduled;	/* by the schedule or a retry */
	int			 verify_result;	/* verify_done_cb ok, -2 */
	char			*verify_error;
	json_t			*pruned;	/* ids the prune step removed */
};

/* backup.c: the room's events, each with its journald MESSAGE_ID */
extern const struct evt_type EVT_BACKUP_OK;
extern const struct evt_type EVT_BACKUP_FAILED;
extern const struct evt_type EVT_BACKUP_VERIFIED;
extern const struct evt_type EVT_BACKUP_VERIFY_FAILED;
extern const struct evt_type EVT_BACKUP_UPLOAD_FAILED;
extern const struct evt_type EVT_BACKUP_SKIPPED;
extern const struct evt_type EVT_BACKUP_STALE;
extern const struct evt_type EVT_BACKUP_INTERRUPTED;
extern const struct evt_type EVT_BACKUP_RESTORED;
extern const struct evt_type EVT_BACKUP_VERIFY_UNAVAILABLE;
extern const struct evt_type EVT_BACKUP_RETRY;

struct backup	*backup_find(struct opsd *, const char *name);
/* UTC, 2026-01-31T02:00:00Z: the room's one copy until util has it */
char		*backup_passfile_create(struct backup *, const char *tag,
		    int admin, char **err);
struct pgq	*backup_session_open(struct backup *, int admin,
		    const char *dbname, uint64_t timeout_ms, pg_done_cb,
		    void *arg);
char		*backup_pg_bin(struct backup *, const char *tool);
void		 backup_event(struct backup *, const struct evt_type *,
		    const char *id, const char *alert_object, int firing,
		    const char *fmt, ...)
		    __attribute__((format(printf, 6, 7)));
/*
 * A record without a key type (name such as "backup.prune") that still
 * carries the backup's fields, so one backup's events are all found by
 * OPSD_BACKUP=NAME; id (a backup id) may be NULL.
 */
void		 backup_log(struct backup *, int priority, const char *name,
		    const char *id, const char *fmt, ...)
		    __attribute__((format(printf, 5, 6)));
/* After a run: a failed scheduled one is tried again (retry = ...). */
void		 backup_retry_plan(struct backup *, int failed);
int64_t		 backup_max_age(struct backup *);
int64_t		 backup_newest_good(struct backup *);

/* backup-conf.c */
struct backup_conf *backup_conf_copy(const struct backup_conf *);

/* backup-manifest.c: b->items holds the manifests, oldest first */
void		 backup_items_load(struct backup *);
void		 backup_items_sort(struct backup *);
void		 backup_items_stats(struct backup *);
int		 backup_item_held(struct backup *, json_t *);
json_t		*backup_item_find(struct opsd *, const char *id,
		    struct backup **owner);
int		 backup_manifest_save(struct backup *, json_t *);
int		 backup_own_file(struct backup *, const char *fname,
		    const char *suffix);
/* The own NAME-TS.json files that are not good manifests, oldest first. */
json_t		*backup_items_invalid(struct backup *);

/*
 * The pure part (tests/unit/test-manifest.c, fuzz/fuzz-manifest.c).
 * backup_own_name: is fname NAME-YYYYMMDDTHHMMSSZ + suffix exactly?
 * backup_id_time: the time such an id names, or -1.
 * backup_manifest_parse: bytes -> a good manifest of backup name (new
 * reference), or NULL with a printable reason in err.
 */
#define BACKUP_MANIFEST_MAX	(1 << 20)
int		 backup_own_name(const char *name, const char *fname,
		    const char *suffix);
int64_t		 backup_id_time(const char *name, const char *id);
json_t		*backup_manifest_parse(const char *name, const char *id,
		    const void *buf, size_t len, char *err, size_t errlen);

static inline const char *
m_str(json_t *m, const char *key)
{
	const char	*s = json_string_value(json_object_get(m, key));

	return (s != NULL ? s : "");
}

static inline int
m_verified(json_t *m)
{
	return (json_is_true(json_object_get(json_object_get(m, "verify"),
	    "ok")));
}

/* backup-run.c */
extern const struct op_kind backup_run_kind;
extern const char *const backup_run_steps[RUN_NSTEPS];
/*
 * Starts a run (an op of kind backup.run on the backup's name), follower
 * (may be NULL) attached. NULL with *err set (free() it) and *code
 * -EBUSY when a backup.run op of this backup is unfinished, else -errno.
 */
struct brun	*backup_run_start(struct backup *, struct job *,
		    struct rpc_pending *follower, char **err, int *code);
void		 backup_run_finish(struct brun *, int ok, int skipped);
/* The upload is over (or there is none): prune, then finish. */
void		 backup_run_pruned(struct brun *);
void		 backup_run_tick(evutil_socket_t, short, void *);
/* NAME-YYYYMMDDTHHMMSSZ of this backup: its start time, or -1. */
int64_t		 backup_run_id_time(struct backup *, const char *id);

/* backup-verify.c */
void		 backup_verify_start(struct backup *, json_t *manifest,
		    verify_done_cb, void *arg, struct rpc_pending *);
void		 backup_verify_abort(struct verify *, const char *why);

/* backup-restore.c */
struct child	*backup_pg_restore_spawn(struct backup *, const char *tag,
		    const char *dbname, const char *file, int clean,
		    child_done_cb, void *arg, char **passfile, char **err);

/* backup-upload.c */
void		 backup_run_upload(struct brun *);
void		 backup_remote_delete(struct backup *, const char *file);

/* backup-restore.c: ends every restore of b (b goes away) */
void		 backup_restore_abort_all(struct backup *, const char *why);

/* backup-recover.c */
void		 backup_recover(struct backup *);
/* removed: the backup left the configuration (else opsd stops) */
void		 backup_recover_stop(struct backup *, int removed);
/* backup.run's rollback callback (op.h) */
void		 backup_run_recover(struct opsd *, struct op *);
/* STATE_DIR/run/pgpass-NAME-TAG: the name db_passfile_create gives */
char		*backup_passfile_path(struct backup *, const char *tag);
void		 backup_passfiles_remove(struct backup *);

#endif
