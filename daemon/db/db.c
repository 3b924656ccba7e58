/*
 * [database NAME] and what is derived from it: conninfo strings, password
 * files, sessions, fleet locks and scratch database names. See db.h.
 */
#include <sys/types.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "ini.h"
#include "pg.h"
#include "probe.h"
#include "state.h"
#include "secretfile.h"
#include "lazylib.h"
#include "subsys.h"
#include "util.h"

static const char *
validate_conninfo(const char *value, char *buf, size_t len)
{
	return (pg_conninfo_check(value, buf, len));
}

#define O(f)	offsetof(struct db_conf, f)
static const struct ini_key db_keys[] = {	/* sorted */
	{ .name = "admin_conninfo", .kind = INI_STRING,
	  .off = O(admin_conninfo), .validate = validate_conninfo },
	{ .name = "admin_password_file", .kind = INI_PATH,
	  .off = O(admin_password_file), .validate = ini_validate_readable },
	{ .name = "conninfo", .kind = INI_STRING, .off = O(conninfo),
	  .validate = validate_conninfo, .flags = INI_REQUIRED },
	{ .name = "password_file", .kind = INI_PATH, .off = O(password_file),
	  .validate = ini_validate_readable },
	{ .name = "password_secret", .kind = INI_STRING,
	  .off = O(password_secret) },
	{ .name = "sslmode", .kind = INI_STRING, .off = O(sslmode) },
	{ .name = "sslrootcert", .kind = INI_PATH, .off = O(sslrootcert),
	  .validate = ini_validate_readable },
	{ .name = "user_file", .kind = INI_PATH, .off = O(user_file) },
};
#undef O

static void *
db_open(void *ctx, const char *name)
{
	struct opsd_config	*conf = ctx;
	struct db_conf		*d;

	d = xcalloc(1, sizeof *d);
	d->name = xstrdup(name);
	config_add(conf, &db_section, d);
	return (d);
}

static void
db_check(void *ctx, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct db_conf	*d = obj;

	(void)ctx;
	d->line = line;
	d->password_secret_line = ini_keyline(&db_section, keylines,
	    "password_secret");
	if (d->admin_password_file != NULL && d->admin_conninfo == NULL)
		ini_error(errs, file, ini_keyline(&db_section, keylines,
		    "admin_password_file"), "admin_password_file needs "
		    "admin_conninfo");
}

const struct ini_section db_section = {
	"database", 1, db_keys, nitems(db_keys), db_open, db_check,
	db_conf_free, "databases"
};

void
db_conf_free(void *obj)
{
	struct db_conf	*d = obj;

	if (d == NULL)
		return;
	ini_free(&db_section, d);
	free(d->name);
	free(d);
}

struct db_conf *
db_conf_find(struct opsd_config *conf, const char *name)
{
	return (config_find(conf, &db_section, name));
}

struct db_conf *
db_conf_copy(const struct db_conf *src)
{
	struct db_conf	*d;

	d = ini_copy(&db_section, src, sizeof *src);
	d->name = xstrdup(src->name);
	d->password_secret_line = src->password_secret_line;
	return (d);
}

/* Appends " key='value'" to *s, quoted as conninfo strings want. */
static void
conninfo_append(char **s, const char *key, const char *value)
{
	char	*q, *t, *full;

	q = xmalloc(2 * strlen(value) + 3);
	t = q;
	*t++ = '\'';
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\'' || *p == '\\')
			*t++ = '\\';
		*t++ = *p;
	}
	*t++ = '\'';
	*t = '\0';
	xasprintf(&full, "%s %s=%s", *s, key, q);
	free(q);
	free(*s);
	*s = full;
}

char *
db_conninfo(const struct db_conf *d, int admin, const char *dbname)
{
	char	*s, user[256];

	/* sslmode and sslrootcert apply to both connections */
	xasprintf(&s, "%s%s%s%s%s%s", admin && d->admin_conninfo != NULL ?
	    d->admin_conninfo : d->conninfo,
	    admin && d->admin_conninfo == NULL ? " dbname=postgres" : "",
	    d->sslmode ? " sslmode=" : "", d->sslmode ? d->sslmode : "",
	    d->sslrootcert ? " sslrootcert=" : "",
	    d->sslrootcert ? d->sslrootcert : "");
	/*
	 * The role in use of an alternating secret (password_secret): a
	 * small file read when a session starts, so a rotation is followed
	 * at once. Unreadable, the conninfo's own user stays.
	 */
	if (!admin && d->user_file != NULL && secretfile_read(d->user_file,
	    user, sizeof user, SECRETFILE_ONE_LINE, NULL) == 0 &&
	    user[0] != '\0')
		conninfo_append(&s, "user", user);
	/* later keywords win in a conninfo string */
	if (dbname != NULL)
		conninfo_append(&s, "dbname", dbname);
	return (s);
}

const char *
db_password_file(const struct db_conf *d, int admin)
{
	if (admin && d->admin_conninfo != NULL)
		return (d->admin_password_file);
	return (d->password_file);
}

/* 1: no password file, 0: read into buf, -1: cannot read it */
static int
db_password(const struct db_conf *d, int admin, char *buf, size_t len)
{
	const char	*f = db_password_file(d, admin);

	if (f == NULL)
		return (1);
	return (secretfile_read(f, buf, len, SECRETFILE_ONE_LINE, NULL) == 0 ?
	    0 : -1);
}

int
db_passfile_create(const struct db_conf *d, const char *state_dir,
    const char *tag, int admin, char **path, char **err)
{
	const char	*pwfile = db_password_file(d, admin);
	char		 pw[1024], *line, *dir, *p, *q, name[160];
	int		 r;

	*path = NULL;
	if (pwfile == NULL)
		return (0);
	if ((r = secretfile_read(pwfile, pw, sizeof pw, SECRETFILE_ONE_LINE,
	    NULL)) != 0) {
		xasprintf(err, "cannot read %s: %s", pwfile, strerror(-r));
		return (r);
	}
	line = xmalloc(2 * strlen(pw) + 16);
	strcpy(line, "*:*:*:*:");
	for (p = pw, q = line + strlen(line); *p != '\0'; p++) {
		if (*p == ':' || *p == '\\')
			*q++ = '\\';
		*q++ = *p;
	}
	*q++ = '\n';
	*q = '\0';
	explicit_bzero(pw, sizeof pw);
	xasprintf(&dir, "%s/run", state_dir);
	state_mkdir(dir, 0700);
	snprintf(name, sizeof name, "pgpass-%s", tag);
	/* throw-away (removed after the child's run): not worth an fsync */
	r = state_write_scratch(dir, name, line, strlen(line), 0600);
	explicit_bzero(line, strlen(line));
	free(line);
	if (r != 0) {
		xasprintf(err, "cannot write a password file in %s: %s", dir,
		    strerror(-r));
		free(dir);
		return (r);
	}
	xasprintf(path, "%s/%s", dir, name);
	free(dir);
	return (0);
}

void
db_passfile_remove(char **path)
{
	if (*path != NULL) {
		unlink(*path);
		free(*path);
		*path = NULL;
	}
}

void
db_passfile_clean(const char *state_dir, const char *prefix)
{
	DIR		*d;
	struct dirent	*de;
	char		*path, pfx[160];

	xasprintf(&path, "%s/run", state_dir);
	if ((d = opendir(path)) != NULL) {
		snprintf(pfx, sizeof pfx, "pgpass-%s", prefix);
		while ((de = readdir(d)) != NULL) {
			if (strncmp(de->d_name, pfx, strlen(pfx)) == 0)
				unlinkat(dirfd(d), de->d_name, 0);
		}
		closedir(d);
	}
	free(path);
}

/* Host names are resolved with the daemon's evdns first (pg.h). */
static struct pgq *
db_connect(struct opsd *o, const struct db_conf *d, int admin,
    const char *dbname, const char *sql, uint64_t timeout_ms, pg_done_cb cb,
    void *arg)
{
	struct pg_spec	 spec;
	struct pgq	*q;
	char		 pw[1024];
	char		*ci;

	memset(&spec, 0, sizeof spec);
	ci = db_conninfo(d, admin, dbname);
	spec.conninfo = ci;
	spec.query = sql;
	spec.timeout_ms = timeout_ms;
	spec.dns = o->dns;
	if (db_password(d, admin, pw, sizeof pw) == 0)
		spec.password = pw;
	if (sql != NULL)
		q = pg_query(o->base, &spec, cb, arg);
	else
		q = pg_open(o->base, &spec, cb, arg);
	explicit_bzero(pw, sizeof pw);
	free(ci);
	return (q);
}

struct pgq *
db_session_open(struct opsd *o, const struct db_conf *d, int admin,
    const char *dbname, uint64_t timeout_ms, pg_done_cb cb, void *arg)
{
	return (db_connect(o, d, admin, dbname, NULL, timeout_ms, cb, arg));
}

struct pgq *
db_query(struct opsd *o, const struct db_conf *d, int admin,
    const char *dbname, const char *sql, uint64_t timeout_ms, pg_done_cb cb,
    void *arg)
{
	return (db_connect(o, d, admin, dbname, sql, timeout_ms, cb, arg));
}

/* FNV-1a: the same kind and name give the same key on every host */
int64_t
db_lock_key(const char *kind, const char *name)
{
	uint64_t	h = 1469598103934665603ULL;
	const char	*p;

	for (p = "opsd."; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (p = kind; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ (unsigned char)'.') * 1099511628211ULL;
	for (p = name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return ((int64_t)(h >> 1));
}

int
db_try_lock(struct pgq *q, int64_t key, uint64_t timeout_ms, pg_done_cb cb,
    void *arg)
{
	char	sql[128];

	snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(%lld)",
	    (long long)key);
	return (pg_exec(q, sql, timeout_ms, cb, arg));
}

int
db_unlock(struct pgq *q, int64_t key, uint64_t timeout_ms, pg_done_cb cb,
    void *arg)
{
	char	sql[128];

	snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%lld)",
	    (long long)key);
	return (pg_exec(q, sql, timeout_ms, cb, arg));
}

int
db_lock_held(const PGresult *res)
{
	return (res != NULL && PQntuples(res) > 0 &&
	    strcmp(PQgetvalue(res, 0, 0), "t") == 0);
}

/* [a-z0-9_] only: what is not a letter or a digit becomes '_' */
static void
scratch_fold(char *s)
{
	for (; *s != '\0'; s++)
		*s = isalnum((unsigned char)*s) ? (char)tolower(
		    (unsigned char)*s) : '_';
}

/*
 * opsd_KIND_OWNER_HHHHHHHH_: OWNER folded to [a-z0-9_] and cut so that
 * 14 digits still fit in 63 bytes, HHHHHHHH the first 32 bits of the
 * SHA-256 of the whole owner name as it is. The fold and the cut alone
 * made "app.x" and "app_x", "App" and "app", or two long names with the
 * same first 27 bytes share one scratch database; the hash keeps them
 * apart.
 */
static char *
scratch_prefix(const char *kind, const char *owner)
{
	unsigned char	 md[32];
	char		*s, *folded;
	int		 room = 63 - 14 - 5 - 1 - 1 - 8 - 1 - (int)strlen(kind);

	SHA256((const unsigned char *)owner, strlen(owner), md);
	xasprintf(&folded, "%s_%.*s", kind, room > 0 ? room : 0, owner);
	scratch_fold(folded);
	xasprintf(&s, "opsd_%s_%02x%02x%02x%02x_", folded, md[0], md[1],
	    md[2], md[3]);
	free(folded);
	return (s);
}

/* Before the hash (one release: recovery still finds what it left). */
static char *
scratch_prefix_old(const char *kind, const char *owner)
{
	char	*s;
	int	 room = 63 - 14 - 7 - (int)strlen(kind);

	xasprintf(&s, "opsd_%s_%.*s_", kind, room > 0 ? room : 0, owner);
	scratch_fold(s);
	return (s);
}

char *
db_scratch_name(const char *kind, const char *owner, int64_t start)
{
	char		 ts[32], *pfx, *s;
	struct tm	 tm;
	time_t		 t = (time_t)start;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof ts, "%Y%m%d%H%M%S", &tm);
	pfx = scratch_prefix(kind, owner);
	xasprintf(&s, "%s%s", pfx, ts);
	free(pfx);
	return (s);
}

char *
db_scratch_list_sql(const char *kind, const char *owner)
{
	char	*pfx, *old, *sql;

	/*
	 * exactly PREFIX + 14 digits; the prefixes are [a-z0-9_] only. The
	 * old, hash-less form is still matched so that an upgrade cleans up
	 * what the previous version left; it can name another owner's
	 * database only when that one too was made by the previous version.
	 */
	pfx = scratch_prefix(kind, owner);
	old = scratch_prefix_old(kind, owner);
	xasprintf(&sql, "SELECT datname FROM pg_database WHERE "
	    "datname ~ '^%s[0-9]{14}$' OR datname ~ '^%s[0-9]{14}$'", pfx,
	    old);
	free(pfx);
	free(old);
	return (sql);
}

/*
 * The registry entry: the [database] sections only. Sessions, password
 * files and locks are used by the subsystems that connect (backups now;
 * rotation and the audit later); the room itself runs nothing, it only
 * remembers the daemon's resolver for their sessions.
 */
static const struct ini_section *const db_sections[] = {
	&db_section, NULL
};

/* A configured database is used soon: load libpq now, not on the loop. */
static void
db_apply(struct opsd *o)
{
	if (config_count(o->conf, &db_section) > 0)
		lazylib_pq();
}

const struct subsys db_subsys = {
	.name = "db",
	.sections = db_sections,
	.apply = db_apply,
};
