/*
 * Manifests: one NAME-YYYYMMDDTHHMMSSZ.json beside each dump, the only
 * proof a dump is complete (checksum, versions, verify and upload
 * results). Loaded at start and reload, kept sorted oldest first, and
 * shown by backup.list and backup.show.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void
backup_items_sort(struct backup *b)
{
	json_t		**v;
	size_t		  i, n = json_array_size(b->items);

	v = xcalloc(n + 1, sizeof *v);
	for (i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(b->items, i));
	qsort(v, n, sizeof *v, manifest_cmp);
	json_array_clear(b->items);
	for (i = 0; i < n; i++)
		json_array_append_new(b->items, v[i]);
	free(v);
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

/* Reads NAME-*.json manifests from dir: once at start and on reload. */
void
backup_items_load(struct backup *b)
{
	DIR		*d;
	struct dirent	*de;
	json_error_t	 jerr;
	json_t		*m;
	char		*path;

	json_decref(b->items);
	b->items = json_array();
	if ((d = opendir(b->conf->dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!backup_own_file(b, de->d_name, ".json"))
			continue;
		xasprintf(&path, "%s/%s", b->conf->dir, de->d_name);
		m = json_load_file(path, 0, &jerr);
		if (m != NULL && strcmp(m_str(m, "backup"), b->conf->name) ==
		    0)
			json_array_append_new(b->items, m);
		else {
			json_decref(m);
			log_warn("backup.manifest", "ignoring %s: %s", path,
			    m == NULL ? jerr.text : "another backup's manifest");
		}
		free(path);
	}
	closedir(d);
	backup_items_sort(b);
	backup_items_stats(b);
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

/*
 * Is fname NAME-YYYYMMDDTHHMMSSZ followed by suffix? Exact, so backups
 * "app" and "app-2" in one directory never touch each other's files.
 */
int
backup_own_file(struct backup *b, const char *fname, const char *suffix)
{
	size_t		 nl = strlen(b->conf->name);
	const char	*p;
	int		 i;

	if (strncmp(fname, b->conf->name, nl) != 0 || fname[nl] != '-')
		return (0);
	p = fname + nl + 1;
	for (i = 0; i < 16; i++) {
		if (i == 8 ? p[i] != 'T' : i == 15 ? p[i] != 'Z' :
		    (p[i] < '0' || p[i] > '9'))
			return (0);
	}
	return (strcmp(p + 16, suffix) == 0);
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
		    "upload");

	return (json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "id", m_str(m,
	    "id"), "time", m_str(m, "start_iso"), "bytes",
	    json_integer_value(json_object_get(m, "bytes")), "sha256",
	    m_str(m, "sha256"), "verified", json_is_object(v) ?
	    (json_is_true(json_object_get(v, "ok")) ? "ok" : "FAILED") : "-",
	    "uploaded", json_is_object(u) ? (json_is_true(json_object_get(u,
	    "ok")) ? "ok" : "FAILED") : "-"));
}

json_t *
backup_list_json(struct opsd *o, const char *name)
{
	struct backup	*b;
	json_t		*list, *items, *m;
	unsigned int	 i;
	size_t		 k;
	char		 next[32], newest[32];
	int64_t		 good, now = (int64_t)time(NULL);

	list = json_array();
	for (i = 0; i < backup_count(o); i++) {
		b = BACKUPS(o)->v[i];
		if (name != NULL && strcmp(name, b->conf->name) != 0)
			continue;
		items = json_array();
		json_array_foreach(b->items, k, m)
			json_array_append_new(items, item_summary(m));
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
