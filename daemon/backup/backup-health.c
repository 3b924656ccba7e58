/*
 * The backups' health callback (core/subsys.h), for opsd.health. It reads
 * the list behind backup.list, so it says about each backup exactly what
 * 'opsd-cli backup list' shows: stale is critical (there is no recent
 * backup to restore); no verified backup yet, or a newest verification
 * that failed, is a warning (a backup exists, its worth is unknown).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "backup-int.h"
#include "backup.h"
#include "daemon.h"
#include "jobs.h"
#include "status.h"
#include "subsys.h"

/* "26h": short enough for a one-line check, exact enough to act on. */
static void
health_age(json_int_t s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "no good backup yet");
	else if (s < 3600)
		snprintf(buf, len, "%lldm", (long long)s / 60);
	else if (s < 72 * 3600)
		snprintf(buf, len, "%lldh", (long long)s / 3600);
	else
		snprintf(buf, len, "%lldd", (long long)s / 86400);
}

/* "ok", "failed" or "never": the newest verification among the good ones. */
static const char *
health_verified(json_t *items)
{
	json_t		*m;
	const char	*v;
	size_t		 i;

	/* oldest first; unreadable ones carry "error" and were never tried */
	for (i = json_array_size(items); i-- > 0;) {
		m = json_array_get(items, i);
		if (json_object_get(m, "error") != NULL)
			continue;
		v = json_string_value(json_object_get(m, "verified"));
		if (v != NULL && strcmp(v, "ok") == 0)
			return ("ok");
		if (v != NULL && strcmp(v, "FAILED") == 0)
			return ("failed");
	}
	return ("never");
}

enum health_status
backup_health(struct opsd *o, struct health *h)
{
	const struct backup_conf *bc;
	json_t		*list, *b, *out;
	const char	*name, *verified;
	json_int_t	 age;
	enum health_status worst = HEALTH_OK;
	unsigned int	 good = 0, stale = 0, unverified = 0, off = 0;
	size_t		 i;
	char		 agebuf[32];
	int		 is_stale, checked;

	list = backup_list_json(o, NULL);
	out = json_array();
	json_array_foreach(list, i, b) {
		name = json_string_value(json_object_get(b, "name"));
		bc = config_find(o->conf, &backup_section, name);
		checked = bc == NULL || bc->verify != BACKUP_VERIFY_NEVER;
		verified = checked ? health_verified(json_object_get(b,
		    "backups")) : "off";
		age = json_integer_value(json_object_get(b, "age_seconds"));
		is_stale = json_is_true(json_object_get(b, "stale"));
		json_array_append_new(out, json_pack("{s:s, s:b, s:I, s:I, "
		    "s:s}", "name", name, "stale", is_stale, "age_seconds",
		    age, "max_age_seconds", json_integer_value(
		    json_object_get(b, "max_age_seconds")), "verified",
		    verified));
		if (is_stale) {
			health_age(age, agebuf, sizeof agebuf);
			health_problem(h, "backup %s stale (%s)", name, agebuf);
			worst = HEALTH_CRITICAL;
			stale++;
		} else if (strcmp(verified, "failed") == 0) {
			health_problem(h, "backup %s: last verification "
			    "failed", name);
			if (worst < HEALTH_WARNING)
				worst = HEALTH_WARNING;
			unverified++;
		} else if (strcmp(verified, "never") == 0) {
			health_problem(h, "backup %s never verified", name);
			if (worst < HEALTH_WARNING)
				worst = HEALTH_WARNING;
			unverified++;
		} else {
			good++;
			off += strcmp(verified, "off") == 0;
		}
	}
	json_decref(list);
	json_object_set_new(h->result, "backups", json_pack("{s:I, s:i, s:i, "
	    "s:i, s:o}", "total", (json_int_t)json_array_size(out), "good", good,
	    "stale", stale, "unverified", unverified, "list", out));
	/* verify = never: fresh, but nothing proved it restores */
	if (good > off)
		health_fine(h, "%u backup%s verified", good - off, good - off ==
		    1 ? "" : "s");
	if (off > 0)
		health_fine(h, "%u backup%s fresh, not verified (verify = "
		    "never)", off, off == 1 ? "" : "s");
	return (worst);
}

/*
 * What item_summary() (backup-manifest.c) says of a manifest's verify or
 * upload member: "ok", "FAILED", or "-" when there is none.
 */
static const char *
outcome(json_t *m, const char *key)
{
	json_t	*v = json_object_get(m, key);

	if (!json_is_object(v))
		return ("-");
	return (json_is_true(json_object_get(v, "ok")) ? "ok" : "FAILED");
}

/*
 * The status page's section: the row 'opsd-cli backup list' prints of
 * each backup, judged as backup_health() judges it. Read from the
 * manifests in memory (b->items, the good ones, oldest first), not from
 * backup_list_json(): that also reads each backup's directory for files
 * that are not good backups, which the page does not show.
 */
json_t *
backup_status(struct opsd *o)
{
	struct backup	*b;
	json_t		*items, *sec, *m, *it;
	const char	*verified, *uploaded, *level, *v;
	int64_t		 good, age, now = (int64_t)time(NULL);
	size_t		 k;
	unsigned int	 i;
	char		 agebuf[32], newest[32], next[32];

	if (backup_count(o) == 0)
		return (NULL);
	sec = status_section("Backups", "no backups");
	items = json_object_get(sec, "items");
	for (i = 0; i < backup_count(o); i++) {
		b = BACKUPS(o)->v[i];
		/* health_verified(): the newest verdict among the good ones */
		verified = b->conf->verify == BACKUP_VERIFY_NEVER ? "off" :
		    "never";
		for (k = json_array_size(b->items); k-- > 0 &&
		    strcmp(verified, "never") == 0;) {
			v = outcome(json_array_get(b->items, k), "verify");
			if (strcmp(v, "ok") == 0)
				verified = "ok";
			else if (strcmp(v, "FAILED") == 0)
				verified = "failed";
		}
		m = json_array_get(b->items, json_array_size(b->items) - 1);
		uploaded = b->conf->upload == NULL ? "off" : m != NULL ?
		    outcome(m, "upload") : "-";
		good = backup_newest_good(b);
		age = good > 0 ? now - good : -1;
		status_age(age, agebuf, sizeof agebuf);
		status_iso(good, newest, sizeof newest);
		status_iso(job_next(b->job), next, sizeof next);
		level = b->stale_firing ? "critical" : strcmp(verified,
		    "failed") == 0 || strcmp(verified, "never") == 0 ?
		    "warning" : "ok";
		it = json_pack("{s:s, s:s, s:s, s:s, "
		    "s:b, s:s, s:s, s:s, s:s?, s:s}", "name", b->conf->name,
		    "database", b->conf->database, "newest_good", newest,
		    "age", age < 0 ? "no good backup yet" : agebuf,
		    "stale", b->stale_firing != 0, "verified", verified,
		    "uploaded", uploaded, "next_run", next,
		    "running", b->run != NULL ? b->run->id : NULL,
		    "level", level);
		/* backup_health()'s words */
		if (b->stale_firing) {
			health_age(age, agebuf, sizeof agebuf);
			json_object_set_new(it, "problem", json_sprintf(
			    "backup %s stale (%s)", b->conf->name, agebuf));
		} else if (strcmp(verified, "failed") == 0)
			json_object_set_new(it, "problem", json_sprintf(
			    "backup %s: last verification failed",
			    b->conf->name));
		else if (strcmp(verified, "never") == 0)
			json_object_set_new(it, "problem", json_sprintf(
			    "backup %s never verified", b->conf->name));
		json_array_append_new(items, it);
	}
	return (sec);
}
