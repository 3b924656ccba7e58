/*
 * The job timer. A run is due at the schedule's next time plus a random
 * delay drawn once per slot. Timers wait at most a minute and then look at
 * the wall clock again, so a clock that jumps (NTP, suspend) is followed.
 */
#include <sys/queue.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "jobs.h"
#include "state.h"
#include "util.h"

#define JOBS_STATE	"jobs.json"
#define MAX_WAIT	60

struct job {
	struct opsd		*opsd;
	char			*name;
	struct sched_spec	 spec;
	uint64_t		 random_delay_ms;
	int			 persistent;
	job_run_cb		 run;
	void			*arg;
	struct event		*timer;
	int64_t			 next;		/* with the random delay */
	int64_t			 slot;		/* the schedule's own time */
	int64_t			 last_run;
	int64_t			 prev_last_run;	/* before the run in flight */
	int64_t			 last_slot;
	int			 last_ok;
	char			 last_result[256];
	int			 running;
	LIST_ENTRY(job)		 entry;
};

/* Every job of the daemon (o->jobs). */
struct job_set {
	LIST_HEAD(, job)	 all;
};

static struct job_set *
job_set(struct opsd *o)
{
	if (o->jobs == NULL) {
		o->jobs = xcalloc(1, sizeof *o->jobs);
		LIST_INIT(&o->jobs->all);
	}
	return (o->jobs);
}

static void	job_arm(struct job *);
static void	job_plan(struct job *, int64_t);

int64_t
job_next(const struct job *j)
{
	return (j->next);
}

static void
jobs_save(struct opsd *o)
{
	struct job	*j;
	json_t		*all;
	int		 r;

	all = json_object();
	LIST_FOREACH(j, &job_set(o)->all, entry) {
		if (j->last_run == 0)
			continue;
		json_object_set_new(all, j->name, json_pack("{s:I, s:I, s:i, "
		    "s:s}", "last_run", (json_int_t)j->last_run, "last_slot",
		    (json_int_t)j->last_slot, "last_ok", j->last_ok,
		    "last_result", j->last_result));
	}
	if ((r = state_write_json(o->conf->state_dir, JOBS_STATE, all)) != 0)
		log_warn("jobs.state", "cannot save %s: %s", JOBS_STATE,
		    strerror(-r));
	json_decref(all);
}

#define STATE_MIN_TIME	INT64_C(946684800)	/* 2000-01-01 */
#define STATE_MAX_SIZE	(4 << 20)

static void
note_add(char *note, size_t notelen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
note_add(char *note, size_t notelen, const char *fmt, ...)
{
	va_list	ap;
	size_t	n = strlen(note);

	if (n + 3 >= notelen)
		return;
	if (n > 0) {
		memcpy(note + n, "; ", 3);
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(note + n, notelen - n, fmt, ap);
	va_end(ap);
}

/* A time field: 0 when absent, wrong or before 2000; clamped to now. */
static int64_t
state_time(const json_t *e, const char *key, int64_t now, char *note,
    size_t notelen)
{
	const json_t	*v = json_object_get(e, key);
	json_int_t	 t;

	if (v == NULL)
		return (0);
	if (!json_is_integer(v)) {
		note_add(note, notelen, "%s is not an integer; ignored", key);
		return (0);
	}
	t = json_integer_value(v);
	if (t == 0)		/* what opsd writes for "none yet" */
		return (0);
	if (t < STATE_MIN_TIME) {
		note_add(note, notelen, "%s %lld is before 2000; ignored", key,
		    (long long)t);
		return (0);
	}
	if (t > now) {
		note_add(note, notelen, "%s %lld is in the future; clamped to "
		    "now (%lld)", key, (long long)t, (long long)now);
		return (now);
	}
	return ((int64_t)t);
}

int
jobs_state_parse(const char *text, size_t len, const char *name,
    int64_t now, struct job_state *st, char *note, size_t notelen)
{
	json_error_t	 jerr;
	json_t		*all, *e, *v;
	json_int_t	 ok;

	memset(st, 0, sizeof *st);
	if (notelen > 0)
		note[0] = '\0';
	all = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (all == NULL || !json_is_object(all)) {
		note_add(note, notelen, "not a JSON object (%s at line %d); "
		    "all of it ignored", all == NULL ? jerr.text : "another "
		    "type", all == NULL ? jerr.line : 1);
		json_decref(all);
		return (-EBADMSG);
	}
	if ((e = json_object_get(all, name)) == NULL) {
		json_decref(all);
		return (0);
	}
	if (!json_is_object(e)) {
		note_add(note, notelen, "the entry is not an object; ignored");
		json_decref(all);
		return (1);
	}
	st->last_run = state_time(e, "last_run", now, note, notelen);
	st->last_slot = state_time(e, "last_slot", now, note, notelen);
	if ((v = json_object_get(e, "last_ok")) != NULL) {
		ok = json_is_integer(v) ? json_integer_value(v) : 99;
		if (ok >= -1 && ok <= 1)
			st->last_ok = (int)ok;
		else
			note_add(note, notelen, "last_ok is not -1, 0 or 1; "
			    "ignored");
	}
	if ((v = json_object_get(e, "last_result")) != NULL) {
		if (json_is_string(v))
			snprintf(st->last_result, sizeof st->last_result, "%s",
			    json_string_value(v));
		else
			note_add(note, notelen, "last_result is not a string; "
			    "ignored");
	}
	json_decref(all);
	return (1);
}

/* jobs.json's entry for j, checked; what was wrong with it is logged. */
static void
job_restore(struct job *j, int64_t now)
{
	struct job_state st;
	FILE		*f;
	char		*path, *text, note[512];
	size_t		 len;
	int		 r;

	xasprintf(&path, "%s/%s", j->opsd->conf->state_dir, JOBS_STATE);
	f = fopen(path, "re");
	free(path);
	if (f == NULL)
		return;		/* none yet */
	text = xmalloc(STATE_MAX_SIZE + 1);
	len = fread(text, 1, STATE_MAX_SIZE + 1, f);
	fclose(f);
	if (len > STATE_MAX_SIZE) {
		log_warn("jobs.state", "%s is larger than %d bytes; ignored",
		    JOBS_STATE, STATE_MAX_SIZE);
		free(text);
		return;
	}
	r = jobs_state_parse(text, len, j->name, now, &st, note, sizeof note);
	free(text);
	if (note[0] != '\0')
		log_warn("jobs.state", "%s, job %s: %s", JOBS_STATE, j->name,
		    note);
	if (r != 1)
		return;
	j->last_run = st.last_run;
	j->last_slot = st.last_slot;
	j->last_ok = st.last_ok;
	memcpy(j->last_result, st.last_result, sizeof j->last_result);
}

static int64_t
job_random_delay(const struct job *j)
{
	uint32_t	rnd = 0;

	if (j->random_delay_ms == 0)
		return (0);
	util_random(&rnd, sizeof rnd);
	return ((int64_t)(rnd % (j->random_delay_ms / 1000 + 1)));
}

static void
job_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job	*j = arg;
	int64_t		 now = (int64_t)time(NULL);

	(void)fd;
	(void)what;
	if (now < j->next) {
		job_arm(j);
		return;
	}
	if (j->running) {
		evt_log_about(LOG_WARNING, "jobs.overlap", "job", j->name,
		    "job %s is still running at its next time; skipping this "
		    "run", j->name);
		j->last_slot = j->slot;
		job_plan(j, now);
		job_arm(j);
		return;
	}
	j->last_slot = j->slot;
	job_started(j);
	j->run(j, j->arg);
}

static void
job_plan(struct job *j, int64_t from)
{
	j->slot = sched_next(&j->spec, from);
	j->next = j->slot;
	if (j->slot > 0)
		j->next += job_random_delay(j);
}

static void
job_arm(struct job *j)
{
	struct timeval	tv = { 0, 0 };
	int64_t		now = (int64_t)time(NULL), wait;

	if (j->next < 0)
		return;		/* never fires */
	wait = j->next - now;
	if (wait > MAX_WAIT)
		wait = MAX_WAIT;
	if (wait > 0)
		tv.tv_sec = (time_t)wait;
	evtimer_add(j->timer, &tv);
}

void
job_started(struct job *j)
{
	j->running = 1;
	j->prev_last_run = j->last_run;
	j->last_run = (int64_t)time(NULL);
	/* plan the next slot now: the run may take longer than the gap */
	job_plan(j, j->last_run);
	job_arm(j);
}

/*
 * A run cut short by a stop does not count as run: a persistent job
 * whose time passed runs again at the next start.
 */
void
job_interrupted(struct job *j)
{
	j->running = 0;
	j->last_run = j->prev_last_run;
	jobs_save(j->opsd);
}

void
job_finished(struct job *j, int ok, const char *fmt, ...)
{
	va_list	ap;

	j->running = 0;
	j->last_ok = ok;
	va_start(ap, fmt);
	vsnprintf(j->last_result, sizeof j->last_result, fmt, ap);
	va_end(ap);
	jobs_save(j->opsd);
}

struct job *
job_add(struct opsd *o, const char *name, const struct sched_spec *spec,
    uint64_t random_delay_ms, int persistent, job_run_cb run, void *arg)
{
	struct job	*j;
	int64_t		 now = (int64_t)time(NULL), missed;

	j = xcalloc(1, sizeof *j);
	j->opsd = o;
	j->name = xstrdup(name);
	j->spec = *spec;
	j->spec.tz = spec->tz != NULL ? xstrdup(spec->tz) : NULL;
	j->random_delay_ms = random_delay_ms;
	j->persistent = persistent;
	j->run = run;
	j->arg = arg;
	j->timer = evtimer_new(o->base, job_timer_cb, j);
	LIST_INSERT_HEAD(&job_set(o)->all, j, entry);

	job_restore(j, now);

	job_plan(j, now);
	if (spec->interval && j->last_run > 0) {
		/*
		 * "every" counts from the last run, across restarts too
		 * (a last run in the future was clamped to now), and waits
		 * its random delay like any other slot.
		 */
		j->slot = j->last_run + (int64_t)(spec->every_ms / 1000);
		if (j->slot <= now) {
			j->slot = now;
			if (!persistent)
				j->slot += (int64_t)(spec->every_ms / 1000);
		}
		j->next = j->slot + job_random_delay(j);
	} else if (persistent && j->last_run > 0) {
		missed = sched_next(&j->spec, j->last_run);
		if (missed > 0 && missed <= now) {
			evt_log_about(LOG_NOTICE, "jobs.catchup", "job", name,
			    "job %s missed its run at %lld while opsd was "
			    "down; running it now", name, (long long)missed);
			j->slot = missed;
			j->next = now;
		}
	}
	job_arm(j);
	return (j);
}

void
job_remove(struct job *j)
{
	LIST_REMOVE(j, entry);
	event_free(j->timer);
	sched_free(&j->spec);
	free(j->name);
	free(j);
}

json_t *
jobs_json(struct opsd *o)
{
	struct job	*j;
	json_t		*list;
	char		 next[32], last[32];

	list = json_array();
	LIST_FOREACH(j, &job_set(o)->all, entry) {
		util_iso_time(j->next, next, sizeof next);
		util_iso_time(j->last_run, last, sizeof last);
		json_array_append_new(list, json_pack("{s:s, s:s, s:s?, s:s?, "
		    "s:s?, s:b}", "name", j->name, "next_run", next,
		    "last_run", j->last_run > 0 ? last : NULL,
		    "last_result", j->last_run > 0 ? (j->last_ok > 0 ? "ok" :
		    j->last_ok < 0 ? "skipped" : "failed") : NULL,
		    "last_message", j->last_run > 0 ? j->last_result : NULL,
		    "running", j->running));
	}
	return (list);
}

void
jobs_stop_all(struct opsd *o)
{
	if (o->jobs == NULL)
		return;
	while (!LIST_EMPTY(&o->jobs->all))
		job_remove(LIST_FIRST(&o->jobs->all));
	free(o->jobs);
	o->jobs = NULL;
}
