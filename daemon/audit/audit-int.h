/*
 * What the files of the audit room share. audit.h is its face.
 *
 *   audit.c         the check table, a run (audit.run and the schedule),
 *                   findings, new-finding alerts, events, the state file
 *   audit-conf.c    the [audit] schema
 *   audit-env.c     pure parts: the env file parser, the strength of a
 *                   value, what a credential-looking key is (unit tests,
 *                   fuzz/fuzz-audit-env.c)
 *   audit-files.c   secret files, env files, the host
 *   audit-pg.c      PostgreSQL: settings, pg_hba, roles, indexes, load
 *   audit-subsys.c  the registry entry, /metrics, opsd.health
 *   rpc-audit.c     audit.run, audit.checks
 */
#ifndef OPSD_AUDIT_INT_H
#define OPSD_AUDIT_INT_H

#include <sys/types.h>
#include <sys/stat.h>

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "schedule.h"

struct opsd;
struct job;
struct rpc_pending;
struct opsd_config;
struct config_errors;
struct ini_section;
struct evt_type;
struct db_conf;
struct pgq;
struct rpc_method;

enum audit_sev {
	AUDIT_INFO, AUDIT_LOW, AUDIT_MEDIUM, AUDIT_HIGH, AUDIT_CRITICAL,
	AUDIT_NSEV
};

/* What a check looks at; a run walks the targets of each scope. */
enum audit_scope {
	AUDIT_SECRET,		/* one secret file */
	AUDIT_ENV,		/* one env file */
	AUDIT_PG,		/* one database, through one query */
	AUDIT_HOST,		/* opsd's own files */
	AUDIT_TLS,		/* one endpoint of [audit] tls */
	AUDIT_UNIT,		/* one systemd unit (systemd-analyze) */
};

/* [audit] max_secret_age's default, also without an [audit] section */
#define AUDIT_MAX_AGE_DEFAULT	(90ULL * 86400 * 1000)

/* [audit] (one, unnamed) */
struct audit_conf {
	char		*name;		/* "audit" (config_obj) */
	int		 line;
	char		**secret_files;
	unsigned int	 nsecret_files;
	char		**env_files;
	unsigned int	 nenv_files;
	char		**databases;
	unsigned int	 ndatabases;
	int		 databases_line;
	uint64_t	 min_stats_age;		/* msec */
	uint64_t	 max_secret_age;	/* msec, secret_files */
	uint64_t	 min_length;
	char		*schedule;
	struct sched_spec spec;
	int		 have_spec;
	uint64_t	 random_delay;
	char		**alert;
	unsigned int	 nalert;
	int		 alert_line;
	int		 alert_min;		/* enum audit_sev */
	uint64_t	 timeout;		/* per query */
	int		 require_password_expiry;
	char		*unit_file;
	char		**tls;
	unsigned int	 ntls;
	char		**units;
	unsigned int	 nunits;
	char		*tls_ca_file;
};

extern const struct ini_section audit_section;
void	 audit_conf_free(void *);
struct audit_conf *audit_conf_copy(const struct audit_conf *);
void	 audit_conf_check_refs(struct opsd_config *, struct config_errors *);
/* The [audit] of conf, or NULL. */
struct audit_conf *audit_conf_get(const struct opsd_config *);

/* --- pure parts (audit-env.c) ------------------------------------------- */

const char *audit_sev_name(int);
int	 audit_sev_parse(const char *);		/* -1 if unknown */

/*
 * One line of an env file: a key and its value (quotes removed, escapes
 * of double quotes applied), or a syntax error (key NULL, msg says what).
 * The value is the caller's for the call only.
 */
typedef void (*audit_env_cb)(int line, const char *key, const char *value,
    size_t vlen, const char *msg, void *arg);

#define AUDIT_ENV_YAML	0x1	/* compose files: "KEY: v", "- KEY=v" */

/* Every assignment of buf in order; returns the number of lines. */
int	 audit_env_parse(const char *buf, size_t len, int flags,
	    audit_env_cb, void *arg);

/* *PASSWORD*, *PASSWD*, *SECRET*, *TOKEN*, *KEY* (not *_FILE) ... */
int	 audit_key_is_credential(const char *key);

struct audit_strength {
	size_t		 length;
	unsigned int	 classes;	/* lower, upper, digit, other */
	double		 bits;		/* length * log2(alphabet) */
	int		 placeholder;	/* a known placeholder */
	int		 reference;	/* ${VAR}, $VAR: not a literal */
	int		 trailing_newline;
};
void	 audit_strength(const char *v, size_t len, struct audit_strength *);

/* --- a run (audit.c) ----------------------------------------------------- */

struct audit_run;

/*
 * A check: its stable id (documented in opsd.conf(5) AUDIT CHECKS), its
 * severity, its scope, the query it needs (AUDIT_PG) and the function
 * that reports its findings from what the scope gathered.
 */
struct audit_input;
struct audit_check {
	const char	*id;
	int		 sev;
	int		 scope;
	int		 query;		/* AUDIT_PG: enum audit_query */
	const char	*desc;
	void		(*fn)(struct audit_run *, const struct audit_check *,
			    const struct audit_input *);
};

extern const struct audit_check audit_checks[];
extern const size_t audit_nchecks;

/* The PostgreSQL queries, one per group of checks (audit-pg.c). */
enum audit_query {
	AQ_SETTINGS, AQ_HBA, AQ_AUTHID, AQ_ROLES, AQ_FKEYS, AQ_UNUSED,
	AQ_INVALID, AQ_ACTIVITY, AQ_WRAP, AQ_N
};
extern const char *const audit_queries[AQ_N];

struct audit_input {
	/* AUDIT_SECRET, AUDIT_ENV, AUDIT_HOST */
	const char		*path;
	const struct stat	*st;
	const char		*data;		/* the bytes (secret, env) */
	size_t			 len;
	int			 managed;	/* a [secret]'s file */
	int			 is_value;	/* the file is one value */
	int			 sample;	/* *.sample, *.example */
	const char		*owner;		/* managed: the [secret] */
	int			 env_file;	/* managed: an [env_file] */
	uid_t			 want_uid;	/* managed: its owner */
	gid_t			 want_gid;
	mode_t			 want_mode;
	uint64_t		 max_age;	/* msec, 0: none */
	/* AUDIT_PG */
	const struct db_conf	*db;
	const PGresult		*res;
	const PGresult		*settings;	/* AQ_SETTINGS' result */
	const char		*app_user;	/* the conninfo's role */
	int			 admin;		/* the admin role's session */
	/* AUDIT_TLS: cert-int.h's struct grade_facts and grade_result */
	const void		*grade_facts;
	const void		*grade_result;
	/* AUDIT_UNIT: systemd-analyze's overall exposure, 0 to 10 */
	double			 exposure;
};

/* One finding: where, what, how to fix it; none of it a secret value. */
void	 audit_finding(struct audit_run *, const struct audit_check *,
	    const char *where, const char *fix, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));
/* A finding of another severity than the check's (worse cases). */
void	 audit_finding_sev(struct audit_run *, const struct audit_check *,
	    int sev, const char *where, const char *fix, const char *fmt, ...)
	    __attribute__((format(printf, 6, 7)));
/*
 * For checks that loop over many rows: 1 once the check's listing is
 * full, after counting the n findings left (the caller stops then).
 */
int	 audit_full(struct audit_run *, const struct audit_check *,
	    unsigned int n);
/* "could not check": not a finding, reported apart. */
void	 audit_unchecked(struct audit_run *, const char *id,
	    const char *where, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
int	 audit_selected(const struct audit_run *, const struct audit_check *);
struct opsd *audit_run_opsd(const struct audit_run *);
const struct audit_conf *audit_run_conf(const struct audit_run *);

/* audit-files.c: synchronous, bounded (listed files, SECRETFILE_MAX each) */
void	 audit_files_run(struct audit_run *);

#define AUDIT_FN(f)	void f(struct audit_run *, const struct audit_check *, \
			    const struct audit_input *)
AUDIT_FN(audit_chk_secret_missing);
AUDIT_FN(audit_chk_secret_not_regular);
AUDIT_FN(audit_chk_secret_world_readable);
AUDIT_FN(audit_chk_secret_world_writable);
AUDIT_FN(audit_chk_secret_group_access);
AUDIT_FN(audit_chk_secret_owner);
AUDIT_FN(audit_chk_secret_age);
AUDIT_FN(audit_chk_secret_empty);
AUDIT_FN(audit_chk_secret_placeholder);
AUDIT_FN(audit_chk_secret_short);
AUDIT_FN(audit_chk_secret_weak);
AUDIT_FN(audit_chk_secret_newline);
AUDIT_FN(audit_chk_env_missing);
AUDIT_FN(audit_chk_env_syntax);
AUDIT_FN(audit_chk_env_world_readable);
AUDIT_FN(audit_chk_env_literal);
AUDIT_FN(audit_chk_env_placeholder);
AUDIT_FN(audit_chk_env_weak);
AUDIT_FN(audit_chk_env_empty);
AUDIT_FN(audit_chk_env_duplicate);
AUDIT_FN(audit_chk_host_state_dir);
AUDIT_FN(audit_chk_host_config);
AUDIT_FN(audit_chk_host_unit);
AUDIT_FN(audit_chk_pg_ssl);
AUDIT_FN(audit_chk_pg_ssl_min_protocol);
AUDIT_FN(audit_chk_pg_password_encryption);
AUDIT_FN(audit_chk_pg_listen_all);
AUDIT_FN(audit_chk_pg_log_connections);
AUDIT_FN(audit_chk_pg_log_disconnections);
AUDIT_FN(audit_chk_pg_log_statement);
AUDIT_FN(audit_chk_pg_log_statement_password);
AUDIT_FN(audit_chk_pg_log_line_prefix);
AUDIT_FN(audit_chk_pg_log_file_mode);
AUDIT_FN(audit_chk_pg_stat_statements);
AUDIT_FN(audit_chk_pg_hba_trust);
AUDIT_FN(audit_chk_pg_hba_password);
AUDIT_FN(audit_chk_pg_hba_md5);
AUDIT_FN(audit_chk_pg_hba_open);
AUDIT_FN(audit_chk_pg_hba_no_ssl_reject);
AUDIT_FN(audit_chk_pg_hba_error);
AUDIT_FN(audit_chk_pg_md5_verifier);
AUDIT_FN(audit_chk_pg_statement_timeout);
AUDIT_FN(audit_chk_pg_idle_tx_timeout);
AUDIT_FN(audit_chk_pg_idle_session_timeout);
AUDIT_FN(audit_chk_pg_app_superuser);
AUDIT_FN(audit_chk_pg_app_createrole);
AUDIT_FN(audit_chk_pg_connlimit);
AUDIT_FN(audit_chk_pg_password_expiry);
AUDIT_FN(audit_chk_pg_fk_without_index);
AUDIT_FN(audit_chk_pg_unused_index);
AUDIT_FN(audit_chk_pg_invalid_index);
AUDIT_FN(audit_chk_pg_saturation);
AUDIT_FN(audit_chk_pg_idle_in_transaction);
AUDIT_FN(audit_chk_pg_waiting);
AUDIT_FN(audit_chk_pg_wraparound);
AUDIT_FN(audit_chk_tls_grade);
AUDIT_FN(audit_chk_tls_issue);
AUDIT_FN(audit_chk_host_unit_exposure);

/* audit-unit.c: systemd-analyze security, a child per unit */
struct audit_unit;
struct audit_unit *audit_unit_start(struct audit_run *, const char *unit,
	    uint64_t timeout_ms, void (*done)(struct audit_run *));
void	 audit_unit_cancel(struct audit_unit *);
/* The unit file host.unit reads: unit_file or the first that exists. */
const char *audit_unit_file(const struct audit_conf *);

/* audit-tls.c: the grader of the cert room, one endpoint at a time */
struct audit_tls;
struct audit_tls *audit_tls_start(struct audit_run *, const char *target,
	    const char *ca_file, uint64_t timeout_ms,
	    void (*done)(struct audit_run *));
void	 audit_tls_cancel(struct audit_tls *);
const char *audit_tls_validate(const char *value, char *buf, size_t len);

/* audit-pg.c: one session per database; done() when every one ended */
struct audit_pg;
struct audit_pg *audit_pg_start(struct audit_run *, const struct db_conf *,
	    void (*done)(struct audit_run *));
void	 audit_pg_cancel(struct audit_pg *);

/* --- the room's state (audit.c) ------------------------------------------ */

struct audit_state {
	struct opsd	*opsd;
	struct audit_conf *conf;	/* a copy; NULL: no [audit] */
	struct job	*job;
	struct audit_run *runs;		/* under way */
	/* the last complete run */
	int64_t		 last_run;
	unsigned int	 last_counts[AUDIT_NSEV];
	int		 have_last;
	json_t		*known;		/* keys of the last scheduled run */
	uint64_t	 runs_total;
	uint64_t	 new_total;
};

struct audit_state *audit_state_get(struct opsd *);
void	 audit_apply_config(struct opsd *);
void	 audit_stop_all(struct opsd *);
unsigned int audit_busy(struct opsd *);
void	 audit_free_all(struct opsd *);

/*
 * Starts a run; only (nonly ids or families, none: all) limits the
 * checks, limit the findings listed per check (the rest are counted and
 * summed up in one line: thousands of unused indexes are one problem,
 * and a reply of megabytes would stall the loop while it is encoded).
 * done gets the result object (stolen) and arg. 0 or -errno with *err.
 */
typedef void (*audit_done_cb)(json_t *result, const char *error, void *arg);
#define AUDIT_LIMIT_DEFAULT	50
int	 audit_run_start(struct opsd *, const char *const *only, size_t nonly,
	    unsigned int limit, int scheduled, audit_done_cb, void *arg,
	    char *err, size_t errlen);

extern const struct evt_type EVT_AUDIT_FINISHED;
extern const struct evt_type EVT_AUDIT_NEW_FINDINGS;
extern const struct evt_type EVT_AUDIT_RESOLVED;


#endif
