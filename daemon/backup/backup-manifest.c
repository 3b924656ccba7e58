/*
 * Manifests: one NAME-YYYYMMDDTHHMMSSZ.json beside each dump, the only
 * proof a dump is complete (checksum, versions, verify and upload
 * results). Loaded at start and reload, kept sorted oldest first, and
 * shown by backup.list and backup.show.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backup-int.h"
#include "daemon.h"
#include "evt.h"
#include "jobs.h"
#include "state.h"
#include "util.h"

static int
manifest_cmp(const void *a, const void *b)
{
	int64_t	x = json_integer_value(json_object_get(*(json_t *const *)a,
	    "start"));
	int64_t	y = json_integer_value(json_object_get(*(json_t *const *)b,
	    "start"));

	return ((x > y) - (x < y));
}

/* by "start", oldest first */
static void
sort_by_start(json_t *a)
{
	json_t		**v;
	size_t		  i, n = json_array_size(a);

	v = xcalloc(n + 1, sizeof *v);
	for (i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(a, i));
	qsort(v, n, sizeof *v, manifest_cmp);
	json_array_clear(a);
	for (i = 0; i < n; i++)
		json_array_append_new(a, v[i]);
	free(v);
}

void
backup_items_sort(struct backup *b)
{
	sort_by_start(b->items);
}

void
backup_items_stats(struct backup *b)
{
	json_t	*m;
	size_t	 i;

	b->last_success = b->last_verified = 0;
	b->last_size = 0;
	json_array_foreach(b->items, i, m) {
		b->last_success = json_integer_value(json_object_get(m,
		    "start"));
		b->last_size = (uint64_t)json_integer_value(json_object_get(m,
		    "bytes"));
		if (m_verified(m))
			b->last_verified = json_integer_value(json_object_get(m,
			    "start"));
	}
}

/* ---- the pure part: names and the parser (unit tests, fuzz-manifest) ---- */

/*
 * Is fname NAME-YYYYMMDDTHHMMSSZ followed by suffix? Exact, so backups
 * "app" and "app-2" in one directory never touch each other's files.
 */
int
backup_own_name(const char *name, const char *fname, const char *suffix)
{
	size_t		 nl = strlen(name);
	const char	*p;
	int		 i;

	if (nl == 0 || strncmp(fname, name, nl) != 0 || fname[nl] != '-')
		return (0);
	p = fname + nl + 1;
	for (i = 0; i < 16; i++) {
		if (i == 8 ? p[i] != 'T' : i == 15 ? p[i] != 'Z' :
		    (p[i] < '0' || p[i] > '9'))
			return (0);
	}
	return (strcmp(p + 16, suffix) == 0);
}

/* The start time an own id (NAME-YYYYMMDDTHHMMSSZ) says; -1 if none. */
int64_t
backup_id_time(const char *name, const char *id)
{
	struct tm	 tm;
	const char	*p;
	int		 v[6], i, j;
	static const int w[6] = { 4, 2, 2, 2, 2, 2 };

	if (!backup_own_name(name, id, ""))
		return (-1);
	p = id + strlen(name) + 1;
	for (i = 0; i < 6; i++) {
		if (*p == 'T')
			p++;
		for (v[i] = 0, j = 0; j < w[i]; j++)
			v[i] = v[i] * 10 + (*p++ - '0');
	}
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 ||
	    v[4] > 59 || v[5] > 60)
		return (-1);
	memset(&tm, 0, sizeof tm);
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	return ((int64_t)timegm(&tm));
}

/* Error text for people and terminals: printable ASCII only. */
static void
set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void
set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list	 ap;
	char	*p;

	if (len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	for (p = err; *p != '\0'; p++) {
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	}
}

#define MAX_TIME	INT64_C(253402300799)	/* 9999-12-31T23:59:59Z */

/* key is absent, or present with the right type; 0 or -1 with err */
static int
opt_type(json_t *m, const char *key, json_type t, int nullable, char *err,
    size_t errlen)
{
	json_t	*v = json_object_get(m, key);

	if (v == NULL || json_typeof(v) == t || (nullable && json_is_null(v)))
		return (0);
	set_err(err, errlen, "\"%s\" is not %s", key, t == JSON_STRING ?
	    "a string" : t == JSON_OBJECT ? "an object" : "of the right type");
	return (-1);
}

static int
time_field(json_t *m, const char *key, int required, char *err,
    size_t errlen)
{
	json_t		*v = json_object_get(m, key);
	json_int_t	 t;

	if (v == NULL && !required)
		return (0);
	if (!json_is_integer(v)) {
		set_err(err, errlen, "\"%s\" is %s", key, v == NULL ?
		    "missing" : "not an integer");
		return (-1);
	}
	t = json_integer_value(v);
	if (t < 0 || t > MAX_TIME) {
		set_err(err, errlen, "\"%s\" is out of range", key);
		return (-1);
	}
	return (0);
}

static int
result_field(json_t *m, const char *key, char *err, size_t errlen)
{
	json_t	*v = json_object_get(m, key), *ok;

	if (opt_type(m, key, JSON_OBJECT, 1, err, errlen) != 0)
		return (-1);
	if (!json_is_object(v))
		return (0);
	ok = json_object_get(v, "ok");
	if (ok != NULL && !json_is_boolean(ok)) {
		set_err(err, errlen, "\"%s\".\"ok\" is not a boolean", key);
		return (-1);
	}
	return (0);
}

/*
 * bytes -> a manifest of backup name, or NULL with a message in err.
 * Pure: no files, no clock, no globals. id, if not NULL, is what the
 * file's name says the manifest is (NAME-YYYYMMDDTHHMMSSZ); the manifest
 * must say the same, name its dump exactly ID.dump and carry what list,
 * verify and retention rely on, with the right types. Fields it does not
 * know are kept (a newer opsd may add some).
 */
json_t *
backup_manifest_parse(const char *name, const char *id, const void *buf,
    size_t len, char *err, size_t errlen)
{
	static const char *const strs[] = { "database", "server_version",
	    "start_iso", "end_iso", "status" };
	json_error_t	 jerr;
	json_t		*m;
	const char	*mid, *file, *sha;
	size_t		 i, il;

	if (len > BACKUP_MANIFEST_MAX) {
		set_err(err, errlen, "larger than %d bytes",
		    BACKUP_MANIFEST_MAX);
		return (NULL);
	}
	m = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (m == NULL) {
		set_err(err, errlen, "line %d: %s", jerr.line, jerr.text);
		return (NULL);
	}
	if (!json_is_object(m)) {
		set_err(err, errlen, "not a JSON object");
		goto bad;
	}
	if (!json_is_string(json_object_get(m, "backup"))) {
		set_err(err, errlen, "\"backup\" is missing or not a string");
		goto bad;
	}
	if (strcmp(m_str(m, "backup"), name) != 0) {
		set_err(err, errlen, "another backup's manifest");
		goto bad;
	}
	mid = json_string_value(json_object_get(m, "id"));
	if (mid == NULL) {
		set_err(err, errlen, "\"id\" is missing or not a string");
		goto bad;
	}
	if (backup_id_time(name, mid) < 0) {
		set_err(err, errlen, "\"id\" is not %s-YYYYMMDDTHHMMSSZ", name);
		goto bad;
	}
	if (id != NULL && strcmp(mid, id) != 0) {
		set_err(err, errlen, "\"id\" does not match the file's name");
		goto bad;
	}
	file = json_string_value(json_object_get(m, "file"));
	il = strlen(mid);
	if (file == NULL) {
		set_err(err, errlen, "\"file\" is missing or not a string");
		goto bad;
	}
	if (strncmp(file, mid, il) != 0 || strcmp(file + il, ".dump") != 0) {
		set_err(err, errlen, "\"file\" is not %s.dump", mid);
		goto bad;
	}
	if (time_field(m, "start", 1, err, errlen) != 0 ||
	    time_field(m, "end", 0, err, errlen) != 0)
		goto bad;
	if (!json_is_integer(json_object_get(m, "bytes")) ||
	    json_integer_value(json_object_get(m, "bytes")) < 0) {
		set_err(err, errlen, "\"bytes\" is missing or not a "
		    "non-negative integer");
		goto bad;
	}
	sha = json_string_value(json_object_get(m, "sha256"));
	if (sha == NULL || strlen(sha) != 64 || strspn(sha,
	    "0123456789abcdef") != 64) {
		set_err(err, errlen, "\"sha256\" is missing or not 64 "
		    "lower-case hex digits");
		goto bad;
	}
	for (i = 0; i < sizeof strs / sizeof strs[0]; i++) {
		if (opt_type(m, strs[i], JSON_STRING, 0, err, errlen) != 0)
			goto bad;
	}
	if (opt_type(m, "pg_dump_version", JSON_STRING, 1, err, errlen) != 0 ||
	    result_field(m, "verify", err, errlen) != 0 ||
	    result_field(m, "upload", err, errlen) != 0)
		goto bad;
	return (m);
bad:
	json_decref(m);
	return (NULL);
}

/* ---- manifests on disk ---- */

/*
 * Reads fname from the directory dfd: a regular file (never through a
 * symlink), at most BACKUP_MANIFEST_MAX bytes. 0, or -1 with err.
 */
static int
manifest_read(int dfd, const char *fname, char **buf, size_t *len,
    char *err, size_t errlen)
{
	struct stat	 st;
	ssize_t		 r;
	size_t		 n = 0;
	int		 fd;

	*buf = NULL;
	*len = 0;
	fd = openat(dfd, fname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1) {
		set_err(err, errlen, "%s", errno == ELOOP ?
		    "it is a symbolic link" : strerror(errno));
		return (-1);
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		set_err(err, errlen, "not a regular file");
		close(fd);
		return (-1);
	}
	if (st.st_size > BACKUP_MANIFEST_MAX) {
		set_err(err, errlen, "larger than %d bytes",
		    BACKUP_MANIFEST_MAX);
		close(fd);
		return (-1);
	}
	*buf = xmalloc((size_t)st.st_size + 1);
	while (n < (size_t)st.st_size) {
		r = read(fd, *buf + n, (size_t)st.st_size - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			set_err(err, errlen, "%s", r == 0 ? "short read" :
			    strerror(errno));
			free(*buf);
			*buf = NULL;
			close(fd);
			return (-1);
		}
		n += (size_t)r;
	}
	close(fd);
	*len = n;
	return (0);
}

/*
 * One own NAME-TS.json: the manifest, or NULL with why in err ("manifest
 * unreadable: ..." when it cannot be read or is not JSON, "manifest
 * invalid: ..." when it says something it must not).
 */
static json_t *
manifest_load(struct backup *b, int dfd, const char *fname, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		 id[192], dump[200], why[256], *buf;
	size_t		 len;
	json_t		*m;

	snprintf(id, sizeof id, "%.*s", (int)(strlen(fname) - 5), fname);
	if (manifest_read(dfd, fname, &buf, &len, why, sizeof why) != 0) {
		set_err(err, errlen, "manifest unreadable: %s", why);
		return (NULL);
	}
	m = backup_manifest_parse(b->conf->name, id, buf, len, why,
	    sizeof why);
	free(buf);
	if (m == NULL) {
		set_err(err, errlen, "manifest %s: %s",
		    strncmp(why, "line ", 5) == 0 ? "unreadable" : "invalid",
		    why);
		return (NULL);
	}
	/* the dump it stands for must be a file here, not a way elsewhere */
	snprintf(dump, sizeof dump, "%s.dump", id);
	if (fstatat(dfd, dump, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    !S_ISREG(st.st_mode)) {
		set_err(err, errlen, "manifest invalid: %s is not a regular "
		    "file%s", dump, S_ISLNK(st.st_mode) ?
		    " (a symbolic link)" : "");
		json_decref(m);
		return (NULL);
	}
	return (m);
}

/* Reads NAME-*.json manifests from dir: once at start and on reload. */
void
backup_items_load(struct backup *b)
{
	DIR		*d;
	struct dirent	*de;
	json_t		*m;
	char		 err[320];

	json_decref(b->items);
	b->items = json_array();
	if ((d = opendir(b->conf->dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!backup_own_file(b, de->d_name, ".json"))
			continue;
		m = manifest_load(b, dirfd(d), de->d_name, err, sizeof err);
		if (m != NULL)
			json_array_append_new(b->items, m);
		else
			backup_log(b, LOG_WARNING, "backup.manifest", NULL,
			    "%s/%s: %s (listed, not "
			    "used; backup prune removes its own files)",
			    b->conf->dir, de->d_name, err);
	}
	closedir(d);
	backup_items_sort(b);
	backup_items_stats(b);
}

static int
item_loaded(struct backup *b, const char *id)
{
	json_t	*m;
	size_t	 i;

	json_array_foreach(b->items, i, m) {
		if (strcmp(m_str(m, "id"), id) == 0)
			return (1);
	}
	return (0);
}

/*
 * The own NAME-TS.json files in dir that are not good manifests, read
 * now: [{id, start, error, bytes}], oldest first. Not in b->items, never
 * verified, restored or shown; listed so an operator sees them, and
 * pruned through the names derived from their id only.
 */
json_t *
backup_items_invalid(struct backup *b)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	json_t		*bad, *m;
	char		 id[192], dump[200], err[320];
	int64_t		 t;

	bad = json_array();
	if ((d = opendir(b->conf->dir)) == NULL)
		return (bad);
	while ((de = readdir(d)) != NULL) {
		if (!backup_own_file(b, de->d_name, ".json"))
			continue;
		snprintf(id, sizeof id, "%.*s", (int)(strlen(de->d_name) - 5),
		    de->d_name);
		if (item_loaded(b, id) || (b->run != NULL &&
		    strcmp(b->run->id, id) == 0) ||
		    (t = backup_id_time(b->conf->name, id)) < 0)
			continue;
		m = manifest_load(b, dirfd(d), de->d_name, err, sizeof err);
		if (m != NULL) {
			/* good, but written after the last load */
			json_decref(m);
			continue;
		}
		snprintf(dump, sizeof dump, "%s.dump", id);
		if (fstatat(dirfd(d), dump, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			st.st_size = 0;
		json_array_append_new(bad, json_pack("{s:s, s:I, s:s, s:I}",
		    "id", id, "start", (json_int_t)t, "error", err, "bytes",
		    (json_int_t)st.st_size));
	}
	closedir(d);
	sort_by_start(bad);
	return (bad);
}

int
backup_manifest_save(struct backup *b, json_t *m)
{
	char	name[192];

	snprintf(name, sizeof name, "%s.json", m_str(m, "id"));
	return (state_write_json(b->conf->dir, name, m));
}

json_t *
backup_item_find(struct opsd *o, const char *id, struct backup **owner)
{
	json_t		*m;
	size_t		 i;
	unsigned int	 j;

	for (j = 0; j < backup_count(o); j++) {
		json_array_foreach(BACKUPS(o)->v[j]->items, i, m) {
			if (strcmp(m_str(m, "id"), id) == 0) {
				*owner = BACKUPS(o)->v[j];
				return (m);
			}
		}
	}
	return (NULL);
}

/* backup_own_name for this backup's name */
int
backup_own_file(struct backup *b, const char *fname, const char *suffix)
{
	return (backup_own_name(b->conf->name, fname, suffix));
}

int
backup_item_held(struct backup *b, json_t *m)
{
	json_t	*x;
	size_t	 i;

	json_array_foreach(b->items, i, x) {
		if (x == m)
			return (1);
	}
	return (0);
}

static json_t *
item_summary(json_t *m)
{
	json_t	*v = json_object_get(m, "verify"), *u = json_object_get(m,
		    "upload"), *s;
	json_t	*x = json_object_get(m, "verify_unavailable");

	s = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "id", m_str(m,
	    "id"), "time", m_str(m, "start_iso"), "bytes",
	    json_integer_value(json_object_get(m, "bytes")), "sha256",
	    m_str(m, "sha256"), "verified", json_is_object(v) ?
	    (json_is_true(json_object_get(v, "ok")) ? "ok" : "FAILED") : "-",
	    "uploaded", json_is_object(u) ? (json_is_true(json_object_get(u,
	    "ok")) ? "ok" : "FAILED") : "-");
	/* the newest attempt could not run: "verified" is the verdict before */
	if (json_is_object(x))
		json_object_set_new(s, "verify_note", json_sprintf("could not "
		    "verify: %s (%s)", m_str(x, "error"), m_str(x, "at_iso")));
	return (s);
}

static json_t *
invalid_summary(json_t *x, char *at, size_t len)
{
	util_iso_time(json_integer_value(json_object_get(x, "start")), at,
	    len);
	return (json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "id",
	    m_str(x, "id"), "time", at, "bytes",
	    json_integer_value(json_object_get(x, "bytes")), "sha256", "",
	    "verified", "-", "uploaded", "-", "error", m_str(x, "error")));
}

/*
 * The good manifests and, in time order among them, the own files that
 * are not (with "error" and the fields a good one has, so old clients
 * still print a row).
 */
static json_t *
list_items(struct backup *b)
{
	json_t	*items, *bad, *m, *x;
	size_t	 i, k = 0;
	char	 at[32];

	items = json_array();
	bad = backup_items_invalid(b);
	json_array_foreach(b->items, i, m) {
		for (; (x = json_array_get(bad, k)) != NULL &&
		    json_integer_value(json_object_get(x, "start")) <
		    json_integer_value(json_object_get(m, "start")); k++)
			json_array_append_new(items, invalid_summary(x, at,
			    sizeof at));
		json_array_append_new(items, item_summary(m));
	}
	for (; (x = json_array_get(bad, k)) != NULL; k++)
		json_array_append_new(items, invalid_summary(x, at, sizeof at));
	json_decref(bad);
	return (items);
}

json_t *
backup_list_json(struct opsd *o, const char *name)
{
	struct backup	*b;
	json_t		*list, *items;
	unsigned int	 i;
	char		 next[32], newest[32];
	int64_t		 good, now = (int64_t)time(NULL);

	list = json_array();
	for (i = 0; i < backup_count(o); i++) {
		b = BACKUPS(o)->v[i];
		if (name != NULL && strcmp(name, b->conf->name) != 0)
			continue;
		items = list_items(b);
		strcpy(next, "-");
		strcpy(newest, "-");
		if (job_next(b->job) > 0)
			util_iso_time(job_next(b->job), next, sizeof next);
		good = backup_newest_good(b);
		if (good > 0)
			util_iso_time(good, newest, sizeof newest);
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, "
		    "s:s, s:I, s:b, s:I, s:s?, s:o}", "name", b->conf->name,
		    "database", b->conf->database, "schedule",
		    b->conf->schedule, "next_run", next, "newest_good", newest,
		    "age_seconds", (json_int_t)(good > 0 ? now - good : -1),
		    "stale", b->stale_firing, "max_age_seconds",
		    (json_int_t)backup_max_age(b), "running", b->run ?
		    b->run->id : NULL, "backups", items));
	}
	return (list);
}

json_t *
backup_show_json(struct opsd *o, const char *id)
{
	struct backup	*b = NULL;
	json_t		*m;

	if ((m = backup_item_find(o, id, &b)) == NULL)
		return (NULL);
	return (json_deep_copy(m));
}
