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

#include <jansson.h>

#include "backup.h"
#include "daemon.h"
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
	unsigned int	 good = 0, stale = 0, unverified = 0;
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
		} else
			good++;
	}
	json_decref(list);
	json_object_set_new(h->result, "backups", json_pack("{s:I, s:i, s:i, "
	    "s:i, s:o}", "total", (json_int_t)json_array_size(out), "good", good,
	    "stale", stale, "unverified", unverified, "list", out));
	if (good > 0)
		health_fine(h, "%u backup%s verified", good, good == 1 ? "" :
		    "s");
	return (worst);
}

/* The newest good backup's upload: "ok", "FAILED", "-" or "off". */
static const char *
status_uploaded(json_t *items, int configured)
{
	json_t		*m;
	const char	*v;
	size_t		 i;

	if (!configured)
		return ("off");
	for (i = json_array_size(items); i-- > 0;) {
		m = json_array_get(items, i);
		if (json_object_get(m, "error") != NULL)
			continue;
		v = json_string_value(json_object_get(m, "uploaded"));
		return (v != NULL ? v : "-");
	}
	return ("-");
}

/*
 * The status page's section: the row 'opsd-cli backup list' prints of
 * each backup, judged as backup_health() judges it.
 */
json_t *
backup_status(struct opsd *o)
{
	const struct backup_conf *bc;
	json_t		*list, *b, *items, *sec, *bk;
	const char	*name, *verified, *level, *newest, *next;
	json_int_t	 age;
	size_t		 i;
	char		 agebuf[32];
	int		 is_stale;

	if (backup_count(o) == 0)
		return (NULL);
	sec = status_section("Backups", "no backups");
	items = json_object_get(sec, "items");
	list = backup_list_json(o, NULL);
	json_array_foreach(list, i, b) {
		name = json_string_value(json_object_get(b, "name"));
		bc = config_find(o->conf, &backup_section, name);
		bk = json_object_get(b, "backups");
		verified = bc == NULL || bc->verify != BACKUP_VERIFY_NEVER ?
		    health_verified(bk) : "off";
		age = json_integer_value(json_object_get(b, "age_seconds"));
		is_stale = json_is_true(json_object_get(b, "stale"));
		status_age(age, agebuf, sizeof agebuf);
		level = is_stale ? "critical" : strcmp(verified, "failed") ==
		    0 || strcmp(verified, "never") == 0 ? "warning" : "ok";
		newest = json_string_value(json_object_get(b, "newest_good"));
		next = json_string_value(json_object_get(b, "next_run"));
		json_array_append_new(items, json_pack("{s:s, s:s?, s:s?, "
		    "s:s, s:b, s:s, s:s, s:s?, s:O, s:s}", "name", name,
		    "database", json_string_value(json_object_get(b,
		    "database")), "newest_good", newest,
		    "age", age < 0 ? "no good backup yet" : agebuf,
		    "stale", is_stale, "verified", verified,
		    "uploaded", status_uploaded(bk, bc != NULL &&
		    bc->upload != NULL), "next_run", next,
		    "running", json_object_get(b, "running") != NULL ?
		    json_object_get(b, "running") : json_null(),
		    "level", level));
	}
	json_decref(list);
	return (sec);
}
