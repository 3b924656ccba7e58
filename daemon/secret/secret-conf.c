/*
 * The [secret NAME] and [env_file NAME] schemas, the checks that need
 * more than one key, and the references across sections: databases,
 * probes, alert routes, env file templates, and [database]
 * password_secret.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "alert.h"
#include "config.h"
#include "db.h"
#include "ini.h"
#include "probe.h"
#include "secret-int.h"
#include "util.h"

static const char *const kind_names[] = {
	"random", "postgres-password", NULL
};
static const char *const encoding_names[] = {
	"base64", "base64url", "hex", "alnum", NULL
};
static const char *const strategy_names[] = {
	"single", "alternating", NULL
};
static const char *const format_names[] = {
	"json", "env", "conninfo", "url", NULL
};
static const char *const lock_names[] = { "none", "advisory", NULL };

/*
 * Role names opsd puts in SQL: an identifier that needs no quoting
 * inside a literal either (the grants query compares them as strings).
 */
static int
role_ok(const char *s)
{
	size_t	i;

	if (s == NULL || s[0] == '\0' || strlen(s) > SECRET_ROLE_MAX ||
	    !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return (0);
	for (i = 1; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return (0);
	return (1);
}

static const char *
validate_role(const char *value, char *buf, size_t len)
{
	if (!role_ok(value)) {
		snprintf(buf, len, "'%s' is not a role name opsd manages "
		    "(letters, digits and '_', not starting with a digit, at "
		    "most %d bytes)", value, SECRET_ROLE_MAX);
		return (buf);
	}
	return (NULL);
}

static const char *
validate_tz(const char *value, char *buf, size_t len)
{
	if (!sched_tz_valid(value)) {
		snprintf(buf, len, "unknown time zone '%s' (e.g. Europe/Berlin,"
		    " UTC or local)", value);
		return (buf);
	}
	return (NULL);
}

#define O(f)	offsetof(struct secret_conf, f)
static const struct ini_key secret_keys[] = {	/* sorted */
	{ .name = "alert", .kind = INI_LIST, .off = O(alert),
	  .off2 = O(nalert) },
	{ .name = "bytes", .kind = INI_UINT, .off = O(bytes), .dflt = "32",
	  .min = 16, .max = SECRET_BYTES_MAX },
	{ .name = "combined_path", .kind = INI_PATH, .off = O(combined_path) },
	{ .name = "database", .kind = INI_STRING, .off = O(database) },
	{ .name = "encoding", .kind = INI_ENUM, .off = O(encoding),
	  .choices = encoding_names, .dflt = "base64" },
	{ .name = "format", .kind = INI_ENUM, .off = O(format),
	  .choices = format_names, .dflt = "json" },
	{ .name = "grace", .kind = INI_DURATION, .off = O(grace),
	  .dflt = "1d" },
	{ .name = "group", .kind = INI_GROUP, .off = O(group),
	  .off2 = O(gid) },
	{ .name = "keep_previous", .kind = INI_UINT, .off = O(keep_previous),
	  .dflt = "0", .max = SECRET_KEEP_MAX },
	{ .name = "kind", .kind = INI_ENUM, .off = O(kind),
	  .choices = kind_names, .flags = INI_REQUIRED },
	{ .name = "lock", .kind = INI_ENUM, .off = O(lock),
	  .choices = lock_names, .dflt = "none" },
	{ .name = "min_interval", .kind = INI_DURATION, .off = O(min_interval),
	  .dflt = "0" },
	{ .name = "mode", .kind = INI_MODE, .off = O(mode), .dflt = "0400" },
	{ .name = "on_rotate", .kind = INI_LIST, .off = O(on_rotate),
	  .off2 = O(non_rotate) },
	{ .name = "on_rotate_timeout", .kind = INI_DURATION,
	  .off = O(on_rotate_timeout), .dflt = "60s", .min = 100 },
	{ .name = "owner", .kind = INI_USER, .off = O(owner), .off2 = O(uid) },
	{ .name = "path", .kind = INI_PATH, .off = O(path),
	  .flags = INI_REQUIRED },
	{ .name = "random_delay", .kind = INI_DURATION,
	  .off = O(random_delay), .dflt = "0", .max = 7ULL * 86400 * 1000 },
	{ .name = "retry_delay", .kind = INI_DURATION, .off = O(retry_delay),
	  .dflt = "1m", .min = 1000 },
	{ .name = "role", .kind = INI_STRING, .off = O(role),
	  .validate = validate_role },
	{ .name = "roles", .kind = INI_LIST, .off = O(roles),
	  .off2 = O(nroles), .validate = validate_role },
	{ .name = "rotate_every", .kind = INI_DURATION, .off = O(rotate_every),
	  .dflt = "0" },
	{ .name = "schedule", .kind = INI_STRING, .off = O(schedule) },
	{ .name = "strategy", .kind = INI_ENUM, .off = O(strategy),
	  .choices = strategy_names, .dflt = "single" },
	{ .name = "timeout", .kind = INI_DURATION, .off = O(timeout),
	  .dflt = "30s", .min = 100 },
	{ .name = "timezone", .kind = INI_STRING, .off = O(timezone),
	  .validate = validate_tz },
	{ .name = "user_path", .kind = INI_PATH, .off = O(user_path) },
	{ .name = "verify_probe", .kind = INI_STRING, .off = O(verify_probe) },
	{ .name = "verify_timeout", .kind = INI_DURATION,
	  .off = O(verify_timeout), .dflt = "60s", .min = 100 },
};
#undef O

static void *
secret_open(void *ctx, const char *name)
{
	struct opsd_config	*conf = ctx;
	struct secret_conf	*s;

	s = xcalloc(1, sizeof *s);
	s->name = xstrdup(name);
	s->uid = (uid_t)-1;
	s->gid = (gid_t)-1;
	if (ini_defaults(&secret_section, s) != 0)
		fatalx("secret: a built-in default does not parse");
	config_add(conf, &secret_section, s);
	return (s);
}

#define KL(k)	ini_keyline(&secret_section, keylines, (k))

static void
secret_check(void *ctx, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct secret_conf	*s = obj;
	char			 err[256];
	static const char *const pg_only[] = {
		"database", "role", "roles", "strategy", "user_path",
		"combined_path", "format", "lock", NULL
	};
	unsigned int		 i;

	(void)ctx;
	s->line = line;
	s->alert_line = KL("alert");
	s->database_line = KL("database");
	s->verify_probe_line = KL("verify_probe");
	if (s->kind == SECRET_POSTGRES && KL("encoding") == 0)
		s->encoding = SECRET_ENC_ALNUM;
	if (s->rotate_every != 0 && s->schedule != NULL)
		ini_error(errs, file, KL("schedule"), "rotate_every and "
		    "schedule: set one or the other");
	if (s->rotate_every != 0 && s->rotate_every < 1000)
		ini_error(errs, file, KL("rotate_every"), "rotate_every must "
		    "be at least 1s (or 0 for no automatic rotation)");
	if (s->schedule != NULL && sched_parse(s->schedule, s->timezone,
	    &s->spec, err, sizeof err) != 0)
		ini_error(errs, file, KL("schedule"), "schedule: %s", err);
	if (s->timezone != NULL && s->schedule == NULL)
		ini_error(errs, file, KL("timezone"), "timezone applies to a "
		    "schedule, and there is none");
	if (s->mode & 0002)
		ini_error(errs, file, KL("mode"), "mode %04o lets anyone write "
		    "the secret file", (unsigned int)s->mode);
	if (s->mode & 0111)
		ini_error(errs, file, KL("mode"), "mode %04o makes the secret "
		    "file executable", (unsigned int)s->mode);
	if ((s->mode & 0400) == 0 && s->uid != 0 && s->uid != (uid_t)-1)
		ini_error(errs, file, KL("mode"), "mode %04o: the owner cannot "
		    "read the secret file", (unsigned int)s->mode);
	if (s->kind == SECRET_RANDOM) {
		for (i = 0; pg_only[i] != NULL; i++)
			if (KL(pg_only[i]) != 0)
				ini_error(errs, file, KL(pg_only[i]), "%s is for "
				    "kind = postgres-password", pg_only[i]);
		return;
	}
	/* postgres-password */
	if (s->database == NULL)
		ini_error(errs, file, line, "kind = postgres-password needs "
		    "database (a [database] section whose admin connection "
		    "may ALTER ROLE)");
	if (s->strategy == SECRET_SINGLE) {
		if (s->role == NULL)
			ini_error(errs, file, line, "kind = postgres-password "
			    "needs role");
		if (s->nroles != 0)
			ini_error(errs, file, KL("roles"), "roles is for "
			    "strategy = alternating (set role for single)");
		s->role_a = s->role != NULL ? xstrdup(s->role) : NULL;
	} else {
		if (s->nroles != 0 && s->nroles != 2)
			ini_error(errs, file, KL("roles"), "roles names exactly "
			    "two roles that take turns (roles = app_a, then "
			    "roles = app_b)");
		else if (s->nroles == 2) {
			if (strcmp(s->roles[0], s->roles[1]) == 0)
				ini_error(errs, file, KL("roles"), "the two "
				    "roles are the same");
			s->role_a = xstrdup(s->roles[0]);
			s->role_b = xstrdup(s->roles[1]);
		} else if (s->role == NULL)
			ini_error(errs, file, line, "strategy = alternating "
			    "needs role (ROLE_a and ROLE_b take turns) or "
			    "roles");
		else if (strlen(s->role) + 2 > SECRET_ROLE_MAX)
			ini_error(errs, file, KL("role"), "role '%s' is too "
			    "long to add _a and _b", s->role);
		else {
			xasprintf(&s->role_a, "%s_a", s->role);
			xasprintf(&s->role_b, "%s_b", s->role);
		}
		if (KL("min_interval") == 0)
			s->min_interval = 3600 * 1000;
	}
	if (KL("format") != 0 && s->combined_path == NULL)
		ini_error(errs, file, KL("format"), "format is the format of "
		    "combined_path, and there is none");
	if (s->user_path != NULL && strcmp(s->user_path, s->path) == 0)
		ini_error(errs, file, KL("user_path"), "user_path is the same "
		    "file as path");
}

#undef KL

const struct ini_section secret_section = {
	"secret", 1, secret_keys, nitems(secret_keys), secret_open,
	secret_check, secret_conf_free, "secrets"
};

void
secret_conf_free(void *obj)
{
	struct secret_conf	*s = obj;

	if (s == NULL)
		return;
	ini_free(&secret_section, s);
	sched_free(&s->spec);
	free(s->role_a);
	free(s->role_b);
	free(s->name);
	free(s);
}

struct secret_conf *
secret_conf_copy(const struct secret_conf *src)
{
	struct secret_conf	*s;
	char			 err[256];

	s = ini_copy(&secret_section, src, sizeof *src);
	s->name = xstrdup(src->name);
	s->role_a = src->role_a != NULL ? xstrdup(src->role_a) : NULL;
	s->role_b = src->role_b != NULL ? xstrdup(src->role_b) : NULL;
	memset(&s->spec, 0, sizeof s->spec);
	if (s->schedule != NULL && sched_parse(s->schedule, s->timezone,
	    &s->spec, err, sizeof err) != 0)
		fatalx("secret %s: a checked schedule does not parse: %s",
		    s->name, err);
	return (s);
}

/* --- [env_file NAME] ---------------------------------------------------- */

#define E(f)	offsetof(struct env_conf, f)
static const struct ini_key env_keys[] = {	/* sorted */
	{ .name = "group", .kind = INI_GROUP, .off = E(group),
	  .off2 = E(gid) },
	{ .name = "mode", .kind = INI_MODE, .off = E(mode), .dflt = "0600" },
	{ .name = "owner", .kind = INI_USER, .off = E(owner), .off2 = E(uid) },
	{ .name = "path", .kind = INI_PATH, .off = E(path),
	  .flags = INI_REQUIRED },
	{ .name = "template", .kind = INI_PATH, .off = E(template),
	  .flags = INI_REQUIRED, .validate = ini_validate_readable },
};
#undef E

#define ENV_TEMPLATE_MAX	65536

static void *
env_open(void *ctx, const char *name)
{
	struct opsd_config	*conf = ctx;
	struct env_conf		*e;

	e = xcalloc(1, sizeof *e);
	e->name = xstrdup(name);
	e->uid = (uid_t)-1;
	e->gid = (gid_t)-1;
	if (ini_defaults(&env_section, e) != 0)
		fatalx("env_file: a built-in default does not parse");
	config_add(conf, &env_section, e);
	return (e);
}

/*
 * The placeholders of a template: {{secret:NAME}} and
 * {{secret_user:NAME}}. Anything else between braces is left as it is.
 * Calls fn for each with the name, its line and whether it is the user
 * form; returns the first malformed one's message or NULL.
 */
int
secret_env_scan(const char *text, void (*fn)(const char *name, size_t len,
    int user, int line, void *arg), void *arg, int *bad_line)
{
	const char	*p = text, *q, *end;
	int		 line = 1, user;
	size_t		 n;

	while (*p != '\0') {
		if (*p == '\n') {
			line++;
			p++;
			continue;
		}
		if (strncmp(p, "{{secret:", 9) == 0)
			user = 0, q = p + 9;
		else if (strncmp(p, "{{secret_user:", 14) == 0)
			user = 1, q = p + 14;
		else {
			p++;
			continue;
		}
		if ((end = strstr(q, "}}")) == NULL ||
		    memchr(q, '\n', (size_t)(end - q)) != NULL) {
			*bad_line = line;
			return (-1);
		}
		n = (size_t)(end - q);
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)q[i]) && q[i] != '-' &&
			    q[i] != '_' && q[i] != '.') {
				*bad_line = line;
				return (-1);
			}
		if (n == 0) {
			*bad_line = line;
			return (-1);
		}
		if (fn != NULL)
			fn(q, n, user, line, arg);
		p = end + 2;
	}
	return (0);
}

static void
env_ref(const char *name, size_t len, int user, int line, void *arg)
{
	struct env_conf	*e = arg;

	e->refs = xreallocarray(e->refs, e->nrefs + 1, sizeof *e->refs);
	e->ref_lines = xreallocarray(e->ref_lines, e->nrefs + 1,
	    sizeof *e->ref_lines);
	e->ref_user = xreallocarray(e->ref_user, e->nrefs + 1,
	    sizeof *e->ref_user);
	e->ref_user[e->nrefs] = user;
	e->refs[e->nrefs] = xstrndup(name, len);
	e->ref_lines[e->nrefs++] = line;
}

static void
env_check(void *ctx, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct env_conf	*e = obj;
	struct stat	 st;
	ssize_t		 r;
	int		 fd, bad;

	(void)ctx;
	e->line = line;
	if (e->mode & 0002)
		ini_error(errs, file, ini_keyline(&env_section, keylines,
		    "mode"), "mode %04o lets anyone write the file",
		    (unsigned int)e->mode);
	if (e->template == NULL)
		return;
	/* read once, here: a reload picks up an edited template */
	if ((fd = open(e->template, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > ENV_TEMPLATE_MAX) {
		ini_error(errs, file, ini_keyline(&env_section, keylines,
		    "template"), "template %s: %s", e->template, fd == -1 ?
		    strerror(errno) : !S_ISREG(st.st_mode) ? "not a regular "
		    "file" : "larger than 64 KiB");
		if (fd != -1)
			close(fd);
		return;
	}
	e->text = xmalloc((size_t)st.st_size + 1);
	r = read(fd, e->text, (size_t)st.st_size);
	close(fd);
	if (r != st.st_size) {
		ini_error(errs, file, ini_keyline(&env_section, keylines,
		    "template"), "template %s: short read", e->template);
		r = 0;
	}
	e->text[r] = '\0';
	if (strlen(e->text) != (size_t)r) {
		ini_error(errs, e->template, 1, "a NUL byte in the template");
		return;
	}
	if (secret_env_scan(e->text, env_ref, e, &bad) != 0)
		ini_error(errs, e->template, bad, "a placeholder is "
		    "{{secret:NAME}} or {{secret_user:NAME}} on one line");
}

const struct ini_section env_section = {
	"env_file", 1, env_keys, nitems(env_keys), env_open, env_check,
	env_conf_free, "env_files"
};

void
env_conf_free(void *obj)
{
	struct env_conf	*e = obj;
	unsigned int	 i;

	if (e == NULL)
		return;
	ini_free(&env_section, e);
	for (i = 0; i < e->nrefs; i++)
		free(e->refs[i]);
	free(e->refs);
	free(e->ref_lines);
	free(e->ref_user);
	free(e->text);
	free(e->name);
	free(e);
}

struct env_conf *
env_conf_copy(const struct env_conf *src)
{
	struct env_conf	*e;
	unsigned int	 i;

	e = ini_copy(&env_section, src, sizeof *src);
	e->name = xstrdup(src->name);
	e->text = src->text != NULL ? xstrdup(src->text) : NULL;
	e->refs = xcalloc(src->nrefs + 1, sizeof *e->refs);
	e->ref_lines = xcalloc(src->nrefs + 1, sizeof *e->ref_lines);
	e->ref_user = xcalloc(src->nrefs + 1, sizeof *e->ref_user);
	for (i = 0; i < src->nrefs; i++) {
		e->refs[i] = xstrdup(src->refs[i]);
		e->ref_lines[i] = src->ref_lines[i];
		e->ref_user[i] = src->ref_user[i];
	}
	return (e);
}

/* --- across sections ---------------------------------------------------- */

/* The user= of a conninfo, or NULL (then libpq's default applies). */
static char *
conninfo_user(const char *conninfo)
{
	PQconninfoOption	*opts, *o;
	char			*u = NULL;

	if ((opts = PQconninfoParse(conninfo, NULL)) == NULL)
		return (NULL);
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "user") == 0 && o->val != NULL &&
		    o->val[0] != '\0')
			u = xstrdup(o->val);
	PQconninfoFree(opts);
	return (u);
}

static void
path_claim(const char ***seen, unsigned int *n, const char *path,
    const char *file, int line, struct config_errors *errs)
{
	unsigned int	i;

	if (path == NULL)
		return;
	for (i = 0; i < *n; i++)
		if (strcmp((*seen)[i], path) == 0) {
			ini_error(errs, file, line, "%s is already written by "
			    "another [secret] or [env_file]", path);
			return;
		}
	*seen = xreallocarray(*seen, *n + 1, sizeof **seen);
	(*seen)[(*n)++] = path;
}

static void	probe_password_refs(struct opsd_config *,
		    struct config_errors *);

void
secret_conf_check_refs(struct opsd_config *conf, struct config_errors *errs)
{
	const char		*file = conf->path, **seen = NULL;
	struct secret_conf	*s, *t;
	struct env_conf		*e;
	struct db_conf		*d;
	char			*user = NULL;
	unsigned int		 i, j, n, nseen = 0;

	n = config_count(conf, &secret_section);
	for (i = 0; i < n; i++) {
		s = config_at(conf, &secret_section, i);
		if (s->database != NULL && (d = db_conf_find(conf,
		    s->database)) == NULL)
			ini_error(errs, file, s->database_line, "unknown "
			    "database '%s' (no [database %s] section)",
			    s->database, s->database);
		if (s->verify_probe != NULL && config_find(conf,
		    &probe_section, s->verify_probe) == NULL)
			ini_error(errs, file, s->verify_probe_line, "unknown "
			    "probe '%s' (no [probe %s] section)",
			    s->verify_probe, s->verify_probe);
		for (j = 0; j < s->nalert; j++)
			if (alert_conf_find(conf, s->alert[j]) == NULL)
				ini_error(errs, file, s->alert_line, "unknown "
				    "alert route '%s'", s->alert[j]);
		path_claim(&seen, &nseen, s->path, file, s->line, errs);
		path_claim(&seen, &nseen, s->user_path, file, s->line, errs);
		path_claim(&seen, &nseen, s->combined_path, file, s->line,
		    errs);
	}
	/* two secrets of one role would undo each other's rotations */
	for (i = 0; i < n; i++) {
		s = config_at(conf, &secret_section, i);
		for (j = i + 1; j < n && s->kind == SECRET_POSTGRES; j++) {
			t = config_at(conf, &secret_section, j);
			if (t->kind != SECRET_POSTGRES || s->database == NULL ||
			    t->database == NULL || strcmp(s->database,
			    t->database) != 0)
				continue;
			if ((s->role_a && t->role_a && !strcmp(s->role_a,
			    t->role_a)) || (s->role_a && t->role_b &&
			    !strcmp(s->role_a, t->role_b)) || (s->role_b &&
			    t->role_a && !strcmp(s->role_b, t->role_a)) ||
			    (s->role_b && t->role_b && !strcmp(s->role_b,
			    t->role_b)))
				ini_error(errs, file, t->line, "secrets %s and "
				    "%s both set a password of the same role",
				    s->name, t->name);
		}
	}
	n = config_count(conf, &env_section);
	for (i = 0; i < n; i++) {
		e = config_at(conf, &env_section, i);
		path_claim(&seen, &nseen, e->path, file, e->line, errs);
		for (j = 0; j < e->nrefs; j++) {
			s = config_find(conf, &secret_section, e->refs[j]);
			if (s == NULL)
				ini_error(errs, e->template, e->ref_lines[j],
				    "unknown secret '%s' (no [secret %s] "
				    "section in %s)", e->refs[j], e->refs[j],
				    file);
			else if (e->ref_user[j] && s->kind != SECRET_POSTGRES)
				ini_error(errs, e->template, e->ref_lines[j],
				    "{{secret_user:%s}}: secret %s is a random "
				    "value and has no user", e->refs[j],
				    e->refs[j]);
		}
	}
	free(seen);
	/* [database] password_secret: the role follows the rotations */
	n = config_count(conf, &db_section);
	for (i = 0; i < n; i++) {
		d = config_at(conf, &db_section, i);
		if (d->password_secret == NULL)
			continue;
		s = config_find(conf, &secret_section, d->password_secret);
		if (s == NULL) {
			ini_error(errs, file, d->password_secret_line, "unknown "
			    "secret '%s' (no [secret %s] section)",
			    d->password_secret, d->password_secret);
			continue;
		}
		if (d->password_file != NULL) {
			ini_error(errs, file, d->password_secret_line,
			    "password_secret and password_file: set one or the "
			    "other");
			continue;
		}
		if (s->kind == SECRET_POSTGRES && s->strategy ==
		    SECRET_ALTERNATING && s->user_path == NULL) {
			ini_error(errs, file, d->password_secret_line,
			    "password_secret = %s: an alternating secret needs "
			    "user_path, where the role in use is written",
			    s->name);
			continue;
		}
		if (s->kind == SECRET_POSTGRES && s->strategy ==
		    SECRET_SINGLE && s->role_a != NULL &&
		    (user = conninfo_user(d->conninfo)) != NULL &&
		    strcmp(user, s->role_a) != 0)
			ini_error(errs, file, d->password_secret_line,
			    "password_secret = %s sets the password of role %s, "
			    "but conninfo logs in as %s", s->name, s->role_a,
			    user);
		free(user);
		user = NULL;
		d->password_file = xstrdup(s->path);
		if (s->kind == SECRET_POSTGRES && s->strategy ==
		    SECRET_ALTERNATING)
			d->user_file = xstrdup(s->user_path);
	}
	probe_password_refs(conf, errs);
}

/*
 * A postgres probe's password_secret: the secret's published file, which
 * need not exist yet when the configuration is read (the first value is
 * made at start), unlike a password_file.
 */
static void
probe_password_refs(struct opsd_config *conf, struct config_errors *errs)
{
	struct probe_conf	*pc;
	struct secret_conf	*s;
	unsigned int		 i;

	for (i = 0; (pc = config_at(conf, &probe_section, i)) != NULL; i++) {
		if (pc->password_secret == NULL)
			continue;
		s = config_find(conf, &secret_section, pc->password_secret);
		if (s == NULL)
			ini_error(errs, conf->path, pc->password_secret_line,
			    "unknown secret '%s' (no [secret %s] section)",
			    pc->password_secret, pc->password_secret);
		else if (pc->password_file != NULL)
			ini_error(errs, conf->path, pc->password_secret_line,
			    "password_secret and password_file: set one or "
			    "the other");
		else if (s->kind == SECRET_POSTGRES && s->strategy ==
		    SECRET_ALTERNATING)
			ini_error(errs, conf->path, pc->password_secret_line,
			    "password_secret = %s: an alternating secret "
			    "changes the role too, which conninfo names; use "
			    "a single secret, or a [database] with "
			    "password_secret", s->name);
		else
			pc->password_file = xstrdup(s->path);
	}
}
