/*
 * Retention (grandfather-father-son) as a pure function the unit tests
 * call, and pruning: what it does not keep goes from the directory and,
 * with remote_retention, from the bucket.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backup-int.h"
#include "daemon.h"
#include "evt.h"
#include "util.h"

static int
idx_cmp_desc(const void *a, const void *b, void *arg)
{
	const int64_t	*ts = arg;
	int64_t		 x = ts[*(const unsigned int *)a];
	int64_t		 y = ts[*(const unsigned int *)b];

	return ((x < y) - (x > y));
}

static void
keep_buckets(const int64_t *ts, const unsigned int *order, unsigned int n,
    int *keep, uint64_t count, int kind)
{
	struct tm	tm;
	time_t		t;
	long		last = -1, key;
	unsigned int	i;
	uint64_t	have = 0;

	for (i = 0; i < n && have < count; i++) {
		t = (time_t)ts[order[i]];
		gmtime_r(&t, &tm);
		switch (kind) {
		case 'd':
			key = (tm.tm_year + 1900) * 1000L + tm.tm_yday;
			break;
		case 'w': {
			/* ISO 8601 week: Thursday decides the year */
			char buf[16];
			strftime(buf, sizeof buf, "%G%V", &tm);
			key = strtol(buf, NULL, 10);
			break;
		}
		default:
			key = (tm.tm_year + 1900) * 100L + tm.tm_mon;
			break;
		}
		if (key == last)
			continue;
		last = key;
		keep[order[i]] = 1;	/* the newest of its period */
		have++;
	}
}

void
backup_retention(const struct retention *r, const int64_t *ts,
    const int *verified, unsigned int n, int *keep)
{
	unsigned int	*order, i;

	order = xcalloc(n + 1, sizeof *order);
	for (i = 0; i < n; i++) {
		order[i] = i;
		keep[i] = 0;
	}
	qsort_r(order, n, sizeof *order, idx_cmp_desc, (void *)ts);
	for (i = 0; i < n && i < r->keep_last; i++)
		keep[order[i]] = 1;
	keep_buckets(ts, order, n, keep, r->keep_daily, 'd');
	keep_buckets(ts, order, n, keep, r->keep_weekly, 'w');
	keep_buckets(ts, order, n, keep, r->keep_monthly, 'm');
	/* the newest backup known to restore is never deleted */
	for (i = 0; i < n; i++) {
		if (verified[order[i]]) {
			keep[order[i]] = 1;
			break;
		}
	}
	free(order);
}

/*
 * Removes one backup's own files: ID.dump and ID.json, names derived
 * from an id that is NAME-YYYYMMDDTHHMMSSZ for this backup and nothing a
 * manifest says, relative to the directory's fd (unlinkat removes a
 * symlink itself, never what it points to), and with remote_retention
 * the same two keys under the bucket's prefix.
 */
static void
remove_own(struct backup *b, int dfd, const char *id, const char *why)
{
	static const char *const sfx[] = { ".dump", ".json" };
	char	 name[200];
	size_t	 i;

	if (!backup_own_name(b->conf->name, id, "")) {
		backup_log(b, LOG_WARNING, "backup.prune", NULL, "not removing "
		    "'%s': not a backup id of %s", id, b->conf->name);
		return;
	}
	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof name, "%s%s", id, sfx[i]);
		if (dfd != -1 && unlinkat(dfd, name, 0) == -1 &&
		    errno != ENOENT)
			backup_log(b, LOG_WARNING, "backup.prune", id,
			    "cannot remove %s/%s: %s", b->conf->dir, name,
			    strerror(errno));
		if (b->conf->remote_retention && b->conf->upload != NULL)
			backup_remote_delete(b, name);
	}
	backup_log(b, LOG_INFO, "backup.prune", id, "removed %s (%s)", id,
	    why);
}

int
backup_prune(struct opsd *o, const char *name, int dry_run, json_t **result,
    char **msg)
{
	struct backup		*b;
	struct retention	 pol;
	json_t			*m, *gone, *kept, *keepers, *bad;
	int64_t			*ts;
	int			*ver, *keep, dfd = -1;
	size_t			 i, n, ngood;

	if ((b = backup_find(o, name)) == NULL) {
		xasprintf(msg, "no backup named '%s'", name);
		return (-ENOENT);
	}
	/*
	 * The own files whose manifest is unreadable or invalid take part
	 * as unverified backups of the time their name says: kept while
	 * the policy keeps that time, removed (their derived names only)
	 * once it does not.
	 */
	bad = backup_items_invalid(b);
	ngood = json_array_size(b->items);
	n = ngood + json_array_size(bad);
	ts = xcalloc(n + 1, sizeof *ts);
	ver = xcalloc(n + 1, sizeof *ver);
	keep = xcalloc(n + 1, sizeof *keep);
	json_array_foreach(b->items, i, m) {
		ts[i] = json_integer_value(json_object_get(m, "start"));
		/* without verification every written backup is "good" */
		ver[i] = b->conf->verify == BACKUP_VERIFY_NEVER ? 1 :
		    m_verified(m);
	}
	json_array_foreach(bad, i, m)
		ts[ngood + i] = json_integer_value(json_object_get(m,
		    "start"));
	pol.keep_last = b->conf->keep_last;
	pol.keep_daily = b->conf->keep_daily;
	pol.keep_weekly = b->conf->keep_weekly;
	pol.keep_monthly = b->conf->keep_monthly;
	backup_retention(&pol, ts, ver, (unsigned int)n, keep);
	if (!dry_run && (dfd = open(b->conf->dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1 && errno != ENOENT)
		backup_log(b, LOG_WARNING, "backup.prune", NULL, "cannot open "
		    "%s: %s", b->conf->dir, strerror(errno));
	gone = json_array();
	kept = json_array();
	keepers = json_array();
	json_array_foreach(b->items, i, m) {
		if (keep[i]) {
			json_array_append_new(kept, json_string(m_str(m, "id")));
			json_array_append(keepers, m);
			continue;
		}
		/* a run or a verify in flight holds its manifest */
		if ((b->run != NULL && b->run->manifest == m) ||
		    (b->verify != NULL && b->verify->manifest == m)) {
			json_array_append(keepers, m);
			continue;
		}
		json_array_append_new(gone, json_string(m_str(m, "id")));
		if (dry_run) {
			json_array_append(keepers, m);
			continue;
		}
		remove_own(b, dfd, m_str(m, "id"), "retention");
	}
	json_array_foreach(bad, i, m) {
		if (keep[ngood + i]) {
			json_array_append_new(kept, json_string(m_str(m, "id")));
			continue;
		}
		json_array_append_new(gone, json_string(m_str(m, "id")));
		if (!dry_run)
			remove_own(b, dfd, m_str(m, "id"), m_str(m, "error"));
	}
	if (dfd != -1)
		close(dfd);
	json_decref(bad);
	json_decref(b->items);
	b->items = keepers;
	backup_items_stats(b);
	free(ts);
	free(ver);
	free(keep);
	*result = json_pack("{s:s, s:b, s:o, s:o}", "backup", name, "dry_run",
	    dry_run, "removed", gone, "kept", kept);
	return (0);
}
