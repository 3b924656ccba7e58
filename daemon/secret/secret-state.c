/*
 * state_dir/secrets/ (0700): NAME.json says which version is current and
 * what happened last; NAME.vN holds version N's value (0600): the
 * current one, the previous ones kept, and during a rotation the pending
 * one, so a rotation can always be finished or undone from here. The
 * published files (path, its previous files, user_path, combined_path,
 * env files) are copies made by secret_publish().
 *
 * NAME.json is read as outside input (secret_meta_parse): the state
 * directory may hold anything, and what does not parse is set aside.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "evt.h"
#include "secret-int.h"
#include "state.h"
#include "util.h"

/* --- NAME.json ------------------------------------------------------------ */

static int
fp_ok(const char *s)
{
	size_t	i;

	if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 16)
		return (0);
	for (i = 7; s[i] != '\0'; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper(
		    (unsigned char)s[i]))
			return (0);
	return (1);
}

static int
role_word_ok(const char *s)
{
	size_t	i;

	if (strlen(s) > SECRET_ROLE_MAX)
		return (0);
	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return (0);
	return (1);
}

#define TIME_MAX	((json_int_t)1 << 40)	/* far beyond any clock */

static int
get_int(json_t *o, const char *key, int64_t *v, int64_t max, int required)
{
	json_t	*j = json_object_get(o, key);

	if (j == NULL)
		return (required ? -1 : 0);
	if (!json_is_integer(j) || json_integer_value(j) < 0 ||
	    json_integer_value(j) > max)
		return (-1);
	*v = json_integer_value(j);
	return (0);
}

static int
get_str(json_t *o, const char *key, char *buf, size_t len, int required)
{
	json_t	*j = json_object_get(o, key);

	if (j == NULL || json_is_null(j)) {
		buf[0] = '\0';
		return (required ? -1 : 0);
	}
	if (!json_is_string(j) || json_string_length(j) >= len)
		return (-1);
	memcpy(buf, json_string_value(j), json_string_length(j) + 1);
	return (strlen(buf) == json_string_length(j) ? 0 : -1);
}

int
secret_meta_parse(const char *buf, size_t len, struct secret_meta *m,
    char *err, size_t errlen)
{
	json_error_t	 je;
	json_t		*root, *h, *e, *last, *counts;
	int64_t		 v;
	size_t		 i;
	const char	*bad = NULL;

	memset(m, 0, sizeof *m);
	if ((root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je)) ==
	    NULL) {
		snprintf(err, errlen, "not JSON: %s (line %d)", je.text,
		    je.line);
		return (-EBADMSG);
	}
	if (!json_is_object(root))
		bad = "not a JSON object";
	else if (get_int(root, "version", &m->version, (int64_t)1 << 53, 1))
		bad = "version is not a whole number";
	else if (get_str(root, "fingerprint", m->fp, sizeof m->fp, 0) ||
	    (m->fp[0] != '\0' && !fp_ok(m->fp)))
		bad = "fingerprint is not sha256:HEX16";
	else if (get_int(root, "created", &m->created, TIME_MAX, 0))
		bad = "created is not a time";
	else if (get_str(root, "role", m->role, sizeof m->role, 0) ||
	    !role_word_ok(m->role))
		bad = "role is not a role name";
	else if (get_str(root, "origin", m->origin, sizeof m->origin, 0) ||
	    (m->origin[0] != '\0' && strcmp(m->origin, "generated") != 0 &&
	    strcmp(m->origin, "imported") != 0))
		bad = "origin is not generated or imported";
	else if ((m->version > 0) != (m->fp[0] != '\0'))
		bad = "a version needs a fingerprint, and no version none";
	if (bad == NULL && (h = json_object_get(root, "history")) != NULL) {
		if (!json_is_array(h) || json_array_size(h) > SECRET_HISTORY)
			bad = "history is not a list of at most 20 versions";
		json_array_foreach(h, i, e) {
			struct secret_version *sv = &m->hist[m->nhist];

			if (bad != NULL)
				break;
			if (!json_is_object(e) || get_int(e, "version",
			    &sv->version, (int64_t)1 << 53, 1) ||
			    get_str(e, "fingerprint", sv->fp, sizeof sv->fp,
			    1) || !fp_ok(sv->fp) || get_int(e, "created",
			    &sv->created, TIME_MAX, 0) || get_int(e,
			    "retired", &sv->retired, TIME_MAX, 0))
				bad = "a history entry is malformed";
			else
				m->nhist++;
		}
	}
	if (bad == NULL && (last = json_object_get(root, "last")) != NULL) {
		if (!json_is_object(last) || get_str(last, "result",
		    m->last_result, sizeof m->last_result, 1) ||
		    (strcmp(m->last_result, "ok") != 0 && strcmp(
		    m->last_result, "failed") != 0 && strcmp(m->last_result,
		    "rolled_back") != 0) || get_int(last, "at", &m->last_at,
		    TIME_MAX, 0) || get_str(last, "error", m->last_error,
		    sizeof m->last_error, 0) || get_str(last, "op",
		    m->last_op, sizeof m->last_op, 0))
			bad = "last is malformed";
	}
	if (bad == NULL && get_int(root, "failures", &v, 1000000, 0) == 0)
		m->failures = (unsigned int)(json_object_get(root,
		    "failures") != NULL ? v : 0);
	else if (bad == NULL)
		bad = "failures is not a whole number";
	if (bad == NULL && (counts = json_object_get(root, "counts")) !=
	    NULL) {
		int64_t	a = 0, b = 0, c = 0;

		if (!json_is_object(counts) || get_int(counts, "ok", &a,
		    (int64_t)1 << 53, 0) || get_int(counts, "failed", &b,
		    (int64_t)1 << 53, 0) || get_int(counts, "rolled_back", &c,
		    (int64_t)1 << 53, 0))
			bad = "counts is malformed";
		m->n_ok = (uint64_t)a;
		m->n_failed = (uint64_t)b;
		m->n_rolled_back = (uint64_t)c;
	}
	json_decref(root);
	if (bad != NULL) {
		snprintf(err, errlen, "%s", bad);
		memset(m, 0, sizeof *m);
		return (-EBADMSG);
	}
	return (0);
}

json_t *
secret_meta_json(const struct secret_meta *m)
{
	json_t		*root, *h;
	unsigned int	 i;

	h = json_array();
	for (i = 0; i < m->nhist; i++)
		json_array_append_new(h, json_pack("{s:I, s:s, s:I, s:I}",
		    "version", (json_int_t)m->hist[i].version, "fingerprint",
		    m->hist[i].fp, "created", (json_int_t)m->hist[i].created,
		    "retired", (json_int_t)m->hist[i].retired));
	root = json_pack("{s:I, s:s?, s:I, s:s, s:s, s:o, s:I, s:{s:I, s:I, "
	    "s:I}}", "version", (json_int_t)m->version, "fingerprint",
	    m->fp[0] ? m->fp : NULL, "created", (json_int_t)m->created,
	    "role", m->role, "origin", m->origin, "history", h, "failures",
	    (json_int_t)m->failures, "counts", "ok", (json_int_t)m->n_ok,
	    "failed", (json_int_t)m->n_failed, "rolled_back",
	    (json_int_t)m->n_rolled_back);
	if (root != NULL && m->last_result[0] != '\0')
		json_object_set_new(root, "last", json_pack("{s:s, s:I, s:s?, "
		    "s:s}", "result", m->last_result, "at",
		    (json_int_t)m->last_at, "error", m->last_error[0] ?
		    m->last_error : NULL, "op", m->last_op));
	if (root == NULL)
		fatalx("secret: cannot build the state's JSON");
	return (root);
}

/* --- files in the state --------------------------------------------------- */

char *
secret_state_dir(struct opsd *o)
{
	char	*dir;

	xasprintf(&dir, "%s/secrets", o->conf->state_dir);
	state_mkdir(dir, 0700);
	return (dir);
}

int
secret_meta_load(struct opsd *o, const char *name, struct secret_meta *m,
    char *err, size_t errlen)
{
	char	*dir, *file, *path, *bad, buf[65536];
	FILE	*f;
	size_t	 n;
	int	 rc;

	memset(m, 0, sizeof *m);
	dir = secret_state_dir(o);
	xasprintf(&file, "%s.json", name);
	xasprintf(&path, "%s/%s", dir, file);
	if ((f = fopen(path, "re")) == NULL) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	if (n == sizeof buf) {
		snprintf(err, errlen, "%s: larger than 64 KiB", path);
		rc = -EFBIG;
	} else
		rc = secret_meta_parse(buf, n, m, err, errlen);
	if (rc != 0) {
		/* kept for a look, out of the way of the next save */
		xasprintf(&bad, "%s.bad", path);
		rename(path, bad);
		free(bad);
	}
out:
	free(path);
	free(file);
	free(dir);
	return (rc);
}

int
secret_meta_save(struct opsd *o, const char *name,
    const struct secret_meta *m)
{
	char	*dir, *file;
	json_t	*j = secret_meta_json(m);
	int	 rc;

	dir = secret_state_dir(o);
	xasprintf(&file, "%s.json", name);
	rc = state_write_json(dir, file, j);
	json_decref(j);
	free(file);
	free(dir);
	return (rc);
}

static char *
value_path(struct opsd *o, const char *name, const char *label)
{
	char	*dir, *path;

	dir = secret_state_dir(o);
	xasprintf(&path, "%s/%s.%s", dir, name, label);
	free(dir);
	return (path);
}

int
secret_value_read(struct opsd *o, const char *name, const char *label,
    char *buf, size_t len)
{
	char	*path = value_path(o, name, label);
	int	 rc;

	/* exactly the bytes written: the file has no newline to lose */
	rc = secretfile_read(path, buf, len, SECRETFILE_ONE_LINE |
	    SECRETFILE_STRICT_MODE, NULL);
	free(path);
	return (rc);
}

int
secret_value_write(struct opsd *o, const char *name, const char *label,
    const char *value)
{
	char	*path = value_path(o, name, label);
	int	 rc;

	rc = secretfile_write(path, value, strlen(value), 0600, (uid_t)-1,
	    (gid_t)-1);
	free(path);
	return (rc);
}

void
secret_value_remove(struct opsd *o, const char *name, const char *label)
{
	char	*path = value_path(o, name, label);

	unlink(path);
	free(path);
}

int
secret_value_rename(struct opsd *o, const char *name, const char *from,
    const char *to)
{
	char	*a = value_path(o, name, from), *b = value_path(o, name, to);
	int	 rc;

	rc = rename(a, b) == 0 ? 0 : -errno;
	free(a);
	free(b);
	return (rc);
}

/* --- the published files ---------------------------------------------------- */

static char *
pct(const char *s)
{
	char	*out = xmalloc(3 * strlen(s) + 1), *p = out;

	for (; *s != '\0'; s++) {
		if (isalnum((unsigned char)*s) || strchr("-._~", *s) != NULL)
			*p++ = *s;
		else
			p += sprintf(p, "%%%02X", (unsigned char)*s);
	}
	*p = '\0';
	return (out);
}

static char *
cq(const char *s)	/* a conninfo value in quotes */
{
	char	*out = xmalloc(2 * strlen(s) + 3), *p = out;

	*p++ = '\'';
	for (; *s != '\0'; s++) {
		if (*s == '\'' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p++ = '\'';
	*p = '\0';
	return (out);
}

char *
secret_combined(const struct secret_conf *c, const struct db_conf *d,
    const char *user, const char *password)
{
	PQconninfoOption	*opts = NULL, *opt;
	const char		*host = NULL, *port = NULL, *dbname = NULL;
	char			*out = NULL, *a, *b;
	json_t			*j;

	if (d != NULL && (opts = PQconninfoParse(d->conninfo, NULL)) != NULL)
		for (opt = opts; opt->keyword != NULL; opt++) {
			if (opt->val == NULL || opt->val[0] == '\0')
				continue;
			if (strcmp(opt->keyword, "host") == 0)
				host = opt->val;
			else if (strcmp(opt->keyword, "port") == 0)
				port = opt->val;
			else if (strcmp(opt->keyword, "dbname") == 0)
				dbname = opt->val;
		}
	switch (c->format) {
	case SECRET_FMT_JSON:
		j = json_pack("{s:s, s:s, s:s?, s:s?, s:s?}", "user", user,
		    "password", password, "host", host, "port", port, "dbname",
		    dbname);
		if (j == NULL)
			break;
		out = json_dumps(j, JSON_COMPACT);
		/* jansson keeps no copy but the object's: wipe that too */
		OPENSSL_cleanse((char *)json_string_value(json_object_get(j,
		    "password")), strlen(password));
		json_decref(j);
		break;
	case SECRET_FMT_ENV:
		xasprintf(&out, "PGUSER=%s\nPGPASSWORD=%s\n%s%s%s%s%s%s%s%s%s",
		    user, password, host ? "PGHOST=" : "", host ? host : "",
		    host ? "\n" : "", port ? "PGPORT=" : "", port ? port : "",
		    port ? "\n" : "", dbname ? "PGDATABASE=" : "",
		    dbname ? dbname : "", dbname ? "\n" : "");
		break;
	case SECRET_FMT_CONNINFO:
		a = cq(password);
		b = cq(user);
		xasprintf(&out, "user=%s password=%s%s%s%s%s%s%s", b, a,
		    host ? " host=" : "", host ? host : "", port ? " port=" :
		    "", port ? port : "", dbname ? " dbname=" : "",
		    dbname ? dbname : "");
		OPENSSL_cleanse(a, strlen(a));
		free(a);
		free(b);
		break;
	default:
		a = pct(password);
		b = pct(user);
		xasprintf(&out, "postgresql://%s:%s@%s%s%s/%s", b, a,
		    host ? host : "", port ? ":" : "", port ? port : "",
		    dbname ? dbname : "");
		OPENSSL_cleanse(a, strlen(a));
		free(a);
		free(b);
		break;
	}
	PQconninfoFree(opts);
	return (out);
}

/* The role a secret's user placeholder and files name. */
static const char *
current_role(const struct secret *s)
{
	if (s->conf->kind != SECRET_POSTGRES)
		return (NULL);
	if (s->conf->strategy == SECRET_ALTERNATING && s->meta.role[0] != '\0')
		return (s->meta.role);
	return (s->conf->role_a);
}

char *
secret_env_render(struct opsd *o, const struct env_conf *e,
    const struct secret *with, const char *with_value, const char *with_role,
    int *missing, char *err, size_t errlen)
{
	const char	*p = e->text, *q, *end;
	struct secret	*t;
	char		*out, value[SECRET_VALUE_MAX], name[256], label[32];
	const char	*ins;
	size_t		 cap, len = 0, n;
	int		 user;

	*missing = 0;
	cap = strlen(e->text) + 1;
	out = xmalloc(cap);
	while (*p != '\0') {
		user = -1;
		if (strncmp(p, "{{secret:", 9) == 0)
			user = 0, q = p + 9;
		else if (strncmp(p, "{{secret_user:", 14) == 0)
			user = 1, q = p + 14;
		if (user < 0 || (end = strstr(q, "}}")) == NULL ||
		    (size_t)(end - q) >= sizeof name) {
			if (len + 2 > cap)
				out = xreallocarray(out, cap *= 2, 1);
			out[len++] = *p++;
			continue;
		}
		n = (size_t)(end - q);
		memcpy(name, q, n);
		name[n] = '\0';
		ins = NULL;
		value[0] = '\0';
		if ((t = secret_find(o, name)) == NULL) {
			snprintf(err, errlen, "%s: unknown secret '%s'",
			    e->template, name);
		} else if (user) {
			ins = t == with && with_role != NULL ? with_role :
			    current_role(t);
			if (ins == NULL)
				snprintf(err, errlen, "%s: secret %s has no "
				    "user (only postgres-password secrets do)",
				    e->template, name);
		} else if (t == with)
			ins = with_value;
		else if (t->meta.version > 0 && (secret_version_label(
		    t->meta.version, label, sizeof label), secret_value_read(o,
		    name, label, value, sizeof value) == 0))
			ins = value;
		else {
			snprintf(err, errlen, "%s: secret %s has no value yet",
			    e->template, name);
			*missing = 1;
		}
		if (ins == NULL) {
			OPENSSL_cleanse(out, cap);
			free(out);
			return (NULL);
		}
		n = strlen(ins);
		while (len + n + 1 > cap)
			out = xreallocarray(out, cap *= 2, 1);
		memcpy(out + len, ins, n);
		len += n;
		OPENSSL_cleanse(value, sizeof value);
		p = end + 2;
	}
	out[len] = '\0';
	return (out);
}

static int
publish_one(const char *path, const char *data, mode_t mode, uid_t uid,
    gid_t gid, char *err, size_t errlen)
{
	char	*dir, *slash;
	int	 rc;

	rc = secretfile_write(path, data, strlen(data), mode, uid, gid);
	if (rc == -ENOENT) {
		/* /run/secrets is empty after a boot: make the directory */
		dir = xstrdup(path);
		if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
			*slash = '\0';
			if (state_mkdir(dir, 0755) == 0)
				rc = secretfile_write(path, data, strlen(data),
				    mode, uid, gid);
		}
		free(dir);
	}
	if (rc != 0)
		snprintf(err, errlen, "cannot write %s: %s", path,
		    strerror(-rc));
	return (rc);
}

int
secret_publish(struct secret *s, const char *value, const char *role,
    char *const *prev, unsigned int nprev, char *err, size_t errlen)
{
	struct secret_conf	*c = s->conf;
	struct secret_set	*set = secret_set_get(s->opsd);
	struct env_conf		*e;
	char			*path, *data;
	unsigned int		 k, i, j;
	int			 rc, missing;

	if (role == NULL)
		role = current_role(s);
	/*
	 * Previous values first: a consumer that checks with the current
	 * and the previous value never finds neither.
	 */
	/* up to the most keep_previous allows: a lowered one drops the rest */
	for (k = 1; k <= SECRET_KEEP_MAX; k++) {
		if (k == 1)
			xasprintf(&path, "%s.previous", c->path);
		else
			xasprintf(&path, "%s.previous.%u", c->path, k);
		if (k <= c->keep_previous && k <= nprev && prev[k - 1] != NULL)
			rc = publish_one(path, prev[k - 1], c->mode, c->uid,
			    c->gid, err, errlen);
		else
			rc = unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
		free(path);
		if (rc != 0)
			return (rc);
	}
	if ((rc = publish_one(c->path, value, c->mode, c->uid, c->gid, err,
	    errlen)) != 0)
		return (rc);
	if (c->user_path != NULL && role != NULL && (rc = publish_one(
	    c->user_path, role, c->mode, c->uid,
	    c->gid, err, errlen)) != 0)
		return (rc);
	if (c->combined_path != NULL && role != NULL) {
		data = secret_combined(c, s->db, role, value);
		if (data == NULL) {
			snprintf(err, errlen, "cannot render %s",
			    c->combined_path);
			return (-EINVAL);
		}
		rc = publish_one(c->combined_path, data, c->mode, c->uid,
		    c->gid, err, errlen);
		OPENSSL_cleanse(data, strlen(data));
		free(data);
		if (rc != 0)
			return (rc);
	}
	for (i = 0; i < set->nenvs; i++) {
		e = set->envs[i];
		for (j = 0; j < e->nrefs; j++)
			if (strcmp(e->refs[j], c->name) == 0)
				break;
		if (j == e->nrefs)
			continue;
		/*
		 * Rendered once every secret it names has a value: at the
		 * first start, the last one to be made writes it.
		 */
		if ((data = secret_env_render(s->opsd, e, s, value, role,
		    &missing, err, errlen)) == NULL) {
			if (missing) {
				err[0] = '\0';
				continue;
			}
			return (-EINVAL);
		}
		rc = publish_one(e->path, data, e->mode, e->uid, e->gid, err,
		    errlen);
		OPENSSL_cleanse(data, strlen(data));
		free(data);
		if (rc != 0)
			return (rc);
	}
	return (0);
}

void
secret_env_sync(struct secret *s)
{
	struct secret_set	*set = secret_set_get(s->opsd);
	struct env_conf		*e;
	char			 err[SECRET_ERROR_MAX], old[SECRETFILE_MAX];
	char			*data;
	unsigned int		 i, j;
	int			 missing;

	for (i = 0; i < set->nenvs; i++) {
		e = set->envs[i];
		for (j = 0; j < e->nrefs; j++)
			if (strcmp(e->refs[j], s->conf->name) == 0)
				break;
		if (j == e->nrefs)
			continue;
		if ((data = secret_env_render(s->opsd, e, NULL, NULL, NULL,
		    &missing, err, sizeof err)) == NULL)
			continue;
		if (secretfile_read(e->path, old, sizeof old, 0, NULL) != 0 ||
		    strcmp(old, data) != 0) {
			if (publish_one(e->path, data, e->mode, e->uid, e->gid,
			    err, sizeof err) != 0)
				evt_log_about(LOG_ERR, "secret.publish",
				    "env_file", e->name, "env_file %s: %s",
				    e->name, err);
		}
		OPENSSL_cleanse(old, sizeof old);
		OPENSSL_cleanse(data, strlen(data));
		free(data);
	}
}
