/*
 * [database NAME]: how opsd reaches one PostgreSQL database. Backups use
 * it today, role rotation and probes will; everything that knows how a
 * conninfo, a password file, an advisory lock or a scratch database name
 * is made lives here, so two subsystems never disagree about them (a lock
 * key computed two ways is no lock at all, and start-up recovery drops
 * exactly the scratch databases db_scratch_name() makes).
 */
#ifndef OPSD_DB_H
#define OPSD_DB_H

#include <stddef.h>
#include <stdint.h>

#include "pg.h"

struct opsd;
struct opsd_config;

struct db_conf {
	char		*name;
	int		 line;
	char		*conninfo;
	char		*password_file;
	char		*sslmode;
	char		*sslrootcert;
	char		*admin_conninfo;
	char		*admin_password_file;
	/*
	 * password_secret: a [secret] whose files the ordinary role logs in
	 * with; the secret room's reference check sets password_file (and
	 * user_file, the role in use, for an alternating secret) from it.
	 */
	char		*password_secret;
	int		 password_secret_line;
	char		*user_file;
};

extern const struct ini_section db_section;
/*
 * void *: struct opsd_config holds the [database] sections under another
 * tag until its section lists become generic.
 */
void		 db_conf_free(void *);
struct db_conf	*db_conf_find(struct opsd_config *, const char *name);
/* A deep copy a running subsystem keeps across a reload. */
struct db_conf	*db_conf_copy(const struct db_conf *);

/*
 * The conninfo for the ordinary role, or with admin the admin role (its
 * own conninfo, else the ordinary one on dbname=postgres), with sslmode
 * and sslrootcert, and dbname if not NULL. No password: that goes to
 * libpq as a parameter or through PGPASSFILE. free() the result.
 */
char		*db_conninfo(const struct db_conf *, int admin,
		    const char *dbname);
/* The password file for that role, or NULL if it has none. */
const char	*db_password_file(const struct db_conf *, int admin);

/*
 * A private libpq password file (mode 0600 in STATE_DIR/run, named
 * pgpass-TAG) for one child: the password reaches pg_dump and pg_restore
 * through PGPASSFILE, never argv or the environment. 0 with *path NULL
 * if the role has no password file; -errno with a message in *err.
 */
int		 db_passfile_create(const struct db_conf *,
		    const char *state_dir, const char *tag, int admin,
		    char **path, char **err);
void		 db_passfile_remove(char **path);
/* After a crash: removes every pgpass-PREFIX* left in STATE_DIR/run. */
void		 db_passfile_clean(const char *state_dir,
		    const char *prefix);

/*
 * A session (pg_open) or a one-shot query (pg_query) as the ordinary or
 * the admin role on dbname (NULL: the configured one), the password read
 * from its file and wiped after the hand-over to libpq.
 */
struct pgq	*db_session_open(struct opsd *, const struct db_conf *,
		    int admin, const char *dbname, uint64_t timeout_ms,
		    pg_done_cb, void *arg);
struct pgq	*db_query(struct opsd *, const struct db_conf *,
		    int admin, const char *dbname, const char *sql,
		    uint64_t timeout_ms, pg_done_cb, void *arg);

/*
 * Fleet locks: a session-level advisory lock whose key every host derives
 * the same way from "opsd.KIND.NAME" (e.g. "backup", "app"). It is held
 * until db_unlock or the session ends. db_try_lock's callback gets one
 * row; db_lock_held tells whether the lock was taken.
 */
int64_t		 db_lock_key(const char *kind, const char *name);
int		 db_try_lock(struct pgq *, int64_t key, uint64_t timeout_ms,
		    pg_done_cb, void *arg);
int		 db_unlock(struct pgq *, int64_t key, uint64_t timeout_ms,
		    pg_done_cb, void *arg);
int		 db_lock_held(const PGresult *);

/*
 * Scratch databases: opsd_KIND_OWNER_HHHHHHHH_YYYYMMDDHHMMSS, lower case,
 * at most 63 bytes (PostgreSQL's limit) and derived from the owner and a
 * start time, so a restart finds what a killed run left behind. OWNER is
 * folded to [a-z0-9_] and cut; HHHHHHHH (a hash of the whole owner name)
 * keeps owners apart that differ only in case, punctuation or past the
 * cut. db_scratch_list_sql selects exactly those of one owner, not those
 * of an owner whose name merely starts the same, and (for one release)
 * the hash-less opsd_KIND_OWNER_YYYYMMDDHHMMSS of the previous version.
 * free() both results.
 */
char		*db_scratch_name(const char *kind, const char *owner,
		    int64_t start);
char		*db_scratch_list_sql(const char *kind, const char *owner);

#endif
