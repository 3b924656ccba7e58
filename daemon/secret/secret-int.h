/*
 * What the files of the secret room share. secret.h is its face.
 *
 *   secret.c          the set, reload, start-up adoption, schedules,
 *                     overdue checks, the list/show views, events
 *   secret-conf.c     the [secret] and [env_file] schemas and checks
 *   secret-gen.c      values: RAND_bytes and the encodings
 *   secret-state.c    state_dir/secrets/: metadata and value files, and
 *                     the published files (value, previous, user,
 *                     combined, env files)
 *   secret-roles.c    an alternating pair's two roles compared
 *   secret-rotate.c   a rotation, an op of kind secret.rotate, its
 *                     rollback and its recovery after a crash
 *   secret-metrics.c  /metrics and opsd.health
 *   rpc-secret.c      secret.list, secret.show, secret.rotate
 */
#ifndef OPSD_SECRET_INT_H
#define OPSD_SECRET_INT_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "schedule.h"
#include "secret.h"
#include "secretfile.h"
#include "subsys.h"

struct opsd;
struct op;
struct job;
struct rot;
struct db_conf;
struct event;
struct rpc_pending;
struct pgq;
struct evt_type;
struct ini_section;
struct opsd_config;
struct config_errors;
struct op_kind;

enum secret_kind { SECRET_RANDOM, SECRET_POSTGRES };
enum secret_encoding {
	SECRET_ENC_BASE64, SECRET_ENC_BASE64URL, SECRET_ENC_HEX,
	SECRET_ENC_ALNUM
};
enum secret_strategy { SECRET_SINGLE, SECRET_ALTERNATING };
enum secret_format {
	SECRET_FMT_JSON, SECRET_FMT_ENV, SECRET_FMT_CONNINFO, SECRET_FMT_URL
};

#define SECRET_BYTES_MAX	4096
/* the longest encoding (hex: two characters a byte) and a NUL */
#define SECRET_VALUE_MAX	(2 * SECRET_BYTES_MAX + 1)
#define SECRET_KEEP_MAX		10
#define SECRET_HISTORY		20	/* versions remembered in NAME.json */
#define SECRET_ROLE_MAX		63	/* PostgreSQL's NAMEDATALEN - 1 */
#define SECRET_ERROR_MAX	512

struct secret_conf {
	char		*name;
	int		 line;
	int		 kind;
	uint64_t	 bytes;
	int		 encoding;
	char		*path;
	mode_t		 mode;
	char		*owner;
	uid_t		 uid;		/* (uid_t)-1: the daemon's */
	char		*group;
	gid_t		 gid;		/* (gid_t)-1: the daemon's */
	uint64_t	 keep_previous;
	uint64_t	 rotate_every;	/* msec, 0: none */
	char		*schedule;
	char		*timezone;
	struct sched_spec spec;		/* when schedule is set */
	uint64_t	 random_delay;
	uint64_t	 grace;
	char		**on_rotate;
	unsigned int	 non_rotate;
	uint64_t	 on_rotate_timeout;
	char		*verify_probe;
	int		 verify_probe_line;
	uint64_t	 verify_timeout;
	char		**alert;
	unsigned int	 nalert;
	int		 alert_line;
	uint64_t	 retry_delay;
	uint64_t	 timeout;
	/* postgres-password */
	char		*database;
	int		 database_line;
	char		*role;
	char		**roles;
	unsigned int	 nroles;
	int		 strategy;
	uint64_t	 min_interval;
	char		*user_path;
	char		*combined_path;
	int		 format;
	int		 lock;
	/* derived by the check */
	char		*role_a;	/* single: the role */
	char		*role_b;	/* alternating: the other one */
};

/* [env_file NAME]: a template read at load time. */
struct env_conf {
	char		*name;
	int		 line;
	char		*template;
	char		*path;
	mode_t		 mode;
	char		*owner;
	uid_t		 uid;
	char		*group;
	gid_t		 gid;
	char		*text;		/* the template's bytes */
	char		**refs;		/* secret names it uses */
	int		*ref_lines;
	int		*ref_user;	/* {{secret_user:NAME}} */
	unsigned int	 nrefs;
};

extern const struct ini_section secret_section;
extern const struct ini_section env_section;
void	 secret_conf_free(void *);
void	 env_conf_free(void *);
struct secret_conf *secret_conf_copy(const struct secret_conf *);
struct env_conf *env_conf_copy(const struct env_conf *);
void	 secret_conf_check_refs(struct opsd_config *, struct config_errors *);
/*
 * The placeholders of an env file template, {{secret:NAME}} and
 * {{secret_user:NAME}}: fn (may be NULL) for each; -1 with *bad_line at
 * the first malformed one.
 */
int	 secret_env_scan(const char *text, void (*fn)(const char *name,
	    size_t len, int user, int line, void *arg), void *arg,
	    int *bad_line);

/* --- values (secret-gen.c) --------------------------------------------- */

/*
 * Encodes n raw bytes (base64, base64url, hex; not alnum) into out, a
 * NUL-terminated string. 0, or -ENOSPC if outsz is too small.
 */
int	 secret_encode(const unsigned char *raw, size_t n, int encoding,
	    char *out, size_t outsz);
/* The length of the value secret_generate makes, without the NUL. */
size_t	 secret_value_len(uint64_t bytes, int encoding);
/*
 * A new value of bytes random bytes (OpenSSL's RAND_bytes) in encoding.
 * 0, or -EIO when the generator fails: never a weak value.
 */
int	 secret_generate(uint64_t bytes, int encoding, char *out,
	    size_t outsz);

/* --- the state (secret-state.c) ----------------------------------------- */

struct secret_version {
	int64_t		 version;
	char		 fp[SECRETFILE_FP_LEN];
	int64_t		 created;
	int64_t		 retired;	/* 0: current */
};

/* NAME.json */
struct secret_meta {
	int64_t			 version;	/* 0: no value yet */
	char			 fp[SECRETFILE_FP_LEN];
	int64_t			 created;
	char			 role[SECRET_ROLE_MAX + 1]; /* alternating */
	char			 origin[16];	/* generated, imported */
	struct secret_version	 hist[SECRET_HISTORY];	/* newest first */
	unsigned int		 nhist;
	char			 last_result[16];  /* ok, failed, ... */
	int64_t			 last_at;
	char			 last_error[SECRET_ERROR_MAX];
	char			 last_op[64];
	unsigned int		 failures;	/* in a row */
	uint64_t		 n_ok, n_failed, n_rolled_back;
};

/*
 * The pure parser of NAME.json for the tests and the fuzz target: every
 * field is checked for type and bound; 0, or -EBADMSG with why in err.
 */
int	 secret_meta_parse(const char *buf, size_t len, struct secret_meta *,
	    char *err, size_t errlen);
json_t	*secret_meta_json(const struct secret_meta *);

/* state_dir/secrets, created 0700 */
char	*secret_state_dir(struct opsd *);
int	 secret_meta_load(struct opsd *, const char *name,
	    struct secret_meta *, char *err, size_t errlen);
int	 secret_meta_save(struct opsd *, const char *name,
	    const struct secret_meta *);
/*
 * The value files of the state: label is "current", "pending" or
 * "previous.K". read: 0, -ENOENT, or another -errno.
 */
int	 secret_value_read(struct opsd *, const char *name,
	    const char *label, char *buf, size_t len);
int	 secret_value_write(struct opsd *, const char *name,
	    const char *label, const char *value);
void	 secret_value_remove(struct opsd *, const char *name,
	    const char *label);
int	 secret_value_rename(struct opsd *, const char *name,
	    const char *from, const char *to);

/*
 * Publishes the files of s as they are with value as the secret and role
 * as its user (NULL: the state's current): the value file, its previous
 * files (prev[0] the newest, nprev of them), the user and combined files,
 * and the env files that name it. Each is replaced atomically with owner
 * and mode set before the first byte. 0, or -errno with what failed in
 * err.
 */
int	 secret_publish(struct secret *, const char *value, const char *role,
	    char *const *prev, unsigned int nprev, char *err, size_t errlen);
/*
 * Writes the env files that name s and are not what the current versions
 * render (at the first start, one written before every secret it names
 * had a value).
 */
void	 secret_env_sync(struct secret *);
/* The combined file's content in format; free() after cleansing. */
char	*secret_combined(const struct secret_conf *, const struct db_conf *,
	    const char *user, const char *password);
/*
 * Renders an env file's template with "with" at with_value (and
 * with_role) and the others at their current versions; NULL with why in
 * err, and *missing set if a secret it names has no value yet.
 */
char	*secret_env_render(struct opsd *, const struct env_conf *,
	    const struct secret *with, const char *with_value,
	    const char *with_role, int *missing, char *err, size_t errlen);

/* --- the running secret (secret.c) -------------------------------------- */

struct secret {
	struct opsd		*opsd;
	struct secret_conf	*conf;		/* owned copy */
	struct db_conf		*db;		/* owned copy, postgres */
	struct secret_meta	 meta;
	struct rot		*rot;		/* a rotation under way */
	struct job		*job;		/* schedule */
	struct event		*timer;		/* rotate_every, retries */
	int64_t			 retry_at;	/* 0: none */
	int			 failed_firing;
	int			 overdue_firing;
	json_t			*differ;	/* roles_differ strings */
	int64_t			 last_start;	/* a rotation began */
	struct pgq		*differ_q;	/* the roles compared */
	struct event		*overdue_timer;
	struct event		*first_ev;	/* the first value, soon */
	int			 first;		/* none yet: make one */
	int			 job_running;	/* s->job started it */
	int			 last_manual;	/* the last rotation's */
	const char		*event_error;	/* for secret_event's field */
};

struct secret_set {
	struct secret		**v;
	unsigned int		 n;
	struct env_conf		**envs;		/* owned copies */
	unsigned int		 nenvs;
	struct event		*tick;		/* overdue checks, 60 s */
	int64_t			 last_pg_start;	/* spacing of pg rotations */
	int			 started;
};

struct secret_set *secret_set_get(struct opsd *);
void		 secret_apply_config(struct opsd *);
void		 secret_stop_all(struct opsd *);
unsigned int	 secret_busy(struct opsd *);
void		 secret_free_all(struct opsd *);
struct secret	*secret_find(struct opsd *, const char *name);
/* The next scheduled rotation (unix seconds), or 0. */
int64_t		 secret_next(const struct secret *);
/* The state word of secret.list (ok, rotating, ...). */
const char	*secret_state_word(const struct secret *);
int		 secret_overdue(const struct secret *, int64_t now);
void		 secret_event(struct secret *, const struct evt_type *,
		    const char *alert_object, int firing, const char *op,
		    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* After a rotation ended: counters, alerts, the next schedule. */
void		 secret_rotation_ended(struct secret *, int ok,
		    const char *error);
void		 secret_reschedule(struct secret *);
json_t		*secret_json(struct secret *, int full);

/* --- rotation (secret-rotate.c) ----------------------------------------- */

extern const struct op_kind secret_rotate_kind;

/*
 * Starts a rotation of s. follower (may be NULL) gets secret.progress and
 * secret.finished. 0 with the op id in *id; -EBUSY, -ESHUTDOWN, -EIO...
 * with *err (free() both).
 */
int	 secret_rotate(struct secret *, int manual, int force,
	    struct rpc_pending *follower, char **id, char **err);
/* op recovery at start-up, or a secret back with an unfinished op. */
void	 secret_rotate_recover(struct opsd *, struct op *);
/*
 * 1 while a rotation interrupted by a restart is finished or undone, or
 * while an undo waits to reach the database again.
 */
int	 secret_rotate_recovering(const struct secret *);
/* "v3": the state's file label of a version. */
void	 secret_version_label(int64_t, char *, size_t);
/* Abandons a rotation whose secret goes away (reload, stop). */
void	 secret_rotate_abandon(struct secret *);
/* The unfinished rotation's view for secret.show, or NULL. */
json_t	*secret_rotate_json(const struct secret *);

/* --- the roles of a pair (secret-roles.c) ------------------------------- */

/* Compares an alternating secret's two roles; a no-op for the others. */
void	 secret_roles_compare(struct secret *);

/* --- metrics (secret-metrics.c) ----------------------------------------- */

struct evbuffer;
struct health;
void	 secret_metrics(struct opsd *, struct evbuffer *);
enum health_status secret_health(struct opsd *, struct health *);
json_t		*secret_status(struct opsd *);

#endif
