/*
 * The secret room's /metrics collector and opsd.health member. Neither
 * says anything of a value but its age and version.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "daemon.h"
#include "metrics.h"
#include "secret-int.h"
#include "status.h"
#include "subsys.h"
#include "util.h"

void
secret_metrics(struct opsd *o, struct evbuffer *buf)
{
	struct secret_set	*set = secret_set_get(o);
	struct secret		*s;
	int64_t			 now = (int64_t)time(NULL), next;
	unsigned int		 i;

	if (set->n == 0)
		return;
	/* secret names are [A-Za-z0-9._-]: no escaping */
	metrics_head(buf, "opsd_secret_age_seconds", "gauge",
	    "Age of the secret's current version.");
	for (i = 0; i < set->n; i++) {
		s = set->v[i];
		if (s->meta.version > 0)
			evbuffer_add_printf(buf, "opsd_secret_age_seconds{secret="
			    "\"%s\"} %lld\n", s->conf->name, (long long)(now -
			    s->meta.created));
	}
	metrics_head(buf, "opsd_secret_version", "gauge",
	    "The secret's current version (0: no value yet).");
	for (i = 0; i < set->n; i++)
		evbuffer_add_printf(buf, "opsd_secret_version{secret=\"%s\"} "
		    "%lld\n", set->v[i]->conf->name,
		    (long long)set->v[i]->meta.version);
	metrics_head(buf, "opsd_secret_rotations_total", "counter",
	    "Rotations by result (rolled_back: undone, the old value kept).");
	for (i = 0; i < set->n; i++) {
		s = set->v[i];
		evbuffer_add_printf(buf, "opsd_secret_rotations_total{secret="
		    "\"%s\",result=\"ok\"} %llu\n"
		    "opsd_secret_rotations_total{secret=\"%s\",result="
		    "\"failed\"} %llu\n"
		    "opsd_secret_rotations_total{secret=\"%s\",result="
		    "\"rolled_back\"} %llu\n", s->conf->name,
		    (unsigned long long)s->meta.n_ok, s->conf->name,
		    (unsigned long long)s->meta.n_failed, s->conf->name,
		    (unsigned long long)s->meta.n_rolled_back);
	}
	metrics_head(buf, "opsd_secret_next_rotation_timestamp_seconds",
	    "gauge", "When the next rotation is planned (absent: none).");
	for (i = 0; i < set->n; i++)
		if ((next = secret_next(set->v[i])) > 0)
			evbuffer_add_printf(buf, "opsd_secret_next_rotation_"
			    "timestamp_seconds{secret=\"%s\"} %lld\n",
			    set->v[i]->conf->name, (long long)next);
	metrics_head(buf, "opsd_secret_overdue", "gauge",
	    "1 while the secret is older than its policy and grace allow.");
	for (i = 0; i < set->n; i++)
		evbuffer_add_printf(buf, "opsd_secret_overdue{secret=\"%s\"} "
		    "%d\n", set->v[i]->conf->name,
		    secret_overdue(set->v[i], now));
}

/*
 * No value is critical (a consumer has nothing to read); overdue, or a
 * last rotation that failed, is a warning (the value in place works).
 */
enum health_status
secret_health(struct opsd *o, struct health *h)
{
	struct secret_set	*set = secret_set_get(o);
	struct secret		*s;
	enum health_status	 worst = HEALTH_OK;
	json_t			*list;
	const char		*st;
	unsigned int		 i, ok = 0;

	if (set->n == 0)
		return (HEALTH_OK);
	list = json_array();
	for (i = 0; i < set->n; i++) {
		s = set->v[i];
		st = secret_state_word(s);
		json_array_append_new(list, json_pack("{s:s, s:s}", "name",
		    s->conf->name, "state", st));
		/*
		 * A rotation under way (a retry, say) changes nothing until
		 * it ends: judged by the value there is, or the check would
		 * flap to OK at every attempt.
		 */
		if (strcmp(st, "rotating") == 0)
			st = s->meta.version == 0 ? "missing" :
			    secret_overdue(s, (int64_t)time(NULL)) ? "overdue" :
			    s->meta.failures > 0 ? "failed" : st;
		if (strcmp(st, "missing") == 0) {
			health_problem(h, "secret %s has no value", s->conf->name);
			worst = HEALTH_CRITICAL;
		} else if (strcmp(st, "overdue") == 0 || strcmp(st, "failed") ==
		    0 || strcmp(st, "recovering") == 0) {
			health_problem(h, "secret %s %s", s->conf->name,
			    strcmp(st, "failed") == 0 ? "rotation failed" : st);
			if (worst < HEALTH_WARNING)
				worst = HEALTH_WARNING;
		} else
			ok++;
	}
	json_object_set_new(h->result, "secrets", json_pack("{s:I, s:o}",
	    "total", (json_int_t)set->n, "list", list));
	if (ok > 0)
		health_fine(h, "%u secret%s current", ok, ok == 1 ? "" : "s");
	return (worst);
}

/*
 * The status page's section: what 'opsd-cli secret list' shows, the
 * version and its age, never a value nor its fingerprint.
 */
json_t *
secret_status(struct opsd *o)
{
	struct secret_set	*set = secret_set_get(o);
	struct secret		*s;
	json_t			*sec, *items, *it;
	const char		*st, *judged, *level;
	int64_t			 now = (int64_t)time(NULL), next;
	unsigned int		 i;
	char			 age[32], nextbuf[32];

	if (set->n == 0)
		return (NULL);
	sec = status_section("Secrets", "no secrets");
	items = json_object_get(sec, "items");
	for (i = 0; i < set->n; i++) {
		s = set->v[i];
		st = judged = secret_state_word(s);
		/* secret_health(): a rotation is judged by the value there is */
		if (strcmp(st, "rotating") == 0)
			judged = s->meta.version == 0 ? "missing" :
			    secret_overdue(s, now) ? "overdue" :
			    s->meta.failures > 0 ? "failed" : st;
		level = strcmp(judged, "missing") == 0 ? "critical" :
		    strcmp(judged, "overdue") == 0 || strcmp(judged, "failed") ==
		    0 || strcmp(judged, "recovering") == 0 ? "warning" :
		    strcmp(judged, "rotating") == 0 ? "unknown" : "ok";
		status_age(s->meta.version > 0 ? now - s->meta.created : -1,
		    age, sizeof age);
		next = secret_next(s);
		util_iso_time(next, nextbuf, sizeof nextbuf);
		it = json_pack("{s:s, s:s, s:s, s:o, "
		    "s:s, s:s?, s:o, s:s}", "name", s->conf->name, "kind",
		    s->conf->kind == SECRET_POSTGRES ? "postgres-password" :
		    "random", "state", st, "version", s->meta.version > 0 ?
		    json_integer(s->meta.version) : json_null(), "age", age,
		    "next_rotation", next > 0 ? nextbuf : NULL,
		    "last_error", s->meta.failures > 0 &&
		    s->meta.last_error[0] != '\0' ?
		    util_jstring(s->meta.last_error) : json_null(),
		    "level", level);
		if (strcmp(judged, "missing") == 0)
			json_object_set_new(it, "problem", json_sprintf(
			    "secret %s has no value", s->conf->name));
		else if (strcmp(level, "warning") == 0)
			json_object_set_new(it, "problem", json_sprintf(
			    "secret %s %s", s->conf->name, strcmp(judged,
			    "failed") == 0 ? "rotation failed" : judged));
		json_array_append_new(items, it);
	}
	return (sec);
}
