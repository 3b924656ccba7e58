/*
 * The maintenance room at run time: the open windows, their state file
 * (rewritten atomically at every start and end), and one timer for the
 * nearest end, so that a window expires on time even where no probe
 * looks at it. Probes ask maint_covering() when they judge a result.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "maint.h"
#include "metrics.h"
#include "op.h"
#include "state.h"
#include "subsys.h"
#include "util.h"

const struct evt_type EVT_MAINT_STARTED = {
	"maintenance.started", "d4dfa238e5d64593bd1f6d005b996afb", LOG_NOTICE };
const struct evt_type EVT_MAINT_ENDED = {
	"maintenance.ended", "f6d2950495824186a123debca0f6e2a7", LOG_NOTICE };

#define MAINT_FILE	"maintenance.json"
#define MAINT_FILE_MAX	(256 * 1024)
/* A deploy's window ends with its cutover; this bounds one left behind. */
#define DEPLOY_WINDOW_MAX	(6 * 3600)

#define MAINT(o)	((struct maint_set *)(o)->sub[SUBSYS_MAINT])

struct maint_set {
	struct opsd		*opsd;
	struct maint_window	 v[MAINT_MAX];
	unsigned int		 n;
	struct event		*timer;
	struct event		*sweep;		/* ends what is marked ending */
	uint64_t		 gen;
	int			 loaded;
};

static int64_t
wall_now(void)
{
	return ((int64_t)(now_realtime_usec() / 1000000));
}

static void
window_event(const struct evt_type *t, const struct maint_window *m,
    const char *why)
{
	struct evt	*ev;
	char		 until[32] = "";

	ev = evt_new(t);
	evt_add(ev, "maintenance", "%s", m->name);
	evt_add(ev, "source", "%s", m->source);
	if (m->reason[0] != '\0')
		evt_add(ev, "reason", "%s", m->reason);
	if (m->until != 0) {
		util_iso_time(m->until, until, sizeof until);
		evt_add(ev, "until", "%s", until);
	}
	if (m->uid >= 0)
		evt_add(ev, "uid", "%lld", (long long)m->uid);
	if (t == &EVT_MAINT_STARTED)
		evt_emit(ev, "maintenance of %s started (%s)%s%s%s%s",
		    strcmp(m->name, "*") == 0 ? "every probe" : m->name,
		    m->source, until[0] ? ", until " : ", until stopped",
		    until, m->reason[0] ? ": " : "", m->reason);
	else {
		evt_add(ev, "why", "%s", why);
		evt_emit(ev, "maintenance of %s ended: %s",
		    strcmp(m->name, "*") == 0 ? "every probe" : m->name, why);
	}
}

static void
maint_save(struct maint_set *set)
{
	json_t	*j;
	int	 e;

	if (set->opsd->conf == NULL || set->opsd->conf->state_dir == NULL)
		return;
	j = maint_file_json(set->v, set->n);
	if ((e = state_write_json(set->opsd->conf->state_dir, MAINT_FILE,
	    j)) != 0)
		log_warn("maintenance", "maintenance: cannot write %s/%s: %s; "
		    "the windows hold until opsd stops",
		    set->opsd->conf->state_dir, MAINT_FILE, strerror(-e));
	json_decref(j);
}

static void	maint_timer_cb(evutil_socket_t, short, void *);

static void
maint_arm(struct maint_set *set)
{
	struct timeval	tv;
	int64_t		next = 0, now = (int64_t)now_realtime_usec(), wait;
	unsigned int	i;

	for (i = 0; i < set->n; i++)
		if (set->v[i].until != 0 && (next == 0 ||
		    set->v[i].until < next))
			next = set->v[i].until;
	evtimer_del(set->timer);
	if (next == 0)
		return;
	/* to the microsecond: an end at 12:30:00 is not a second late */
	wait = next * 1000000 > now ? next * 1000000 - now : 0;
	tv.tv_sec = (time_t)(wait / 1000000);
	tv.tv_usec = (suseconds_t)(wait % 1000000);
	evtimer_add(set->timer, &tv);
}

static void
remove_at(struct maint_set *set, unsigned int i, const char *why)
{
	struct maint_window	m = set->v[i];

	memmove(&set->v[i], &set->v[i + 1], (set->n - i - 1) * sizeof m);
	set->n--;
	set->gen++;
	window_event(&EVT_MAINT_ENDED, &m, why);
}

/* Ends what is due; 1 if anything ended. */
static int
expire(struct maint_set *set, const char *why)
{
	int64_t		now = wall_now();
	unsigned int	i;
	int		any = 0;

	for (i = 0; i < set->n; ) {
		if (set->v[i].until != 0 && set->v[i].until <= now) {
			remove_at(set, i, why);
			any = 1;
		} else
			i++;
	}
	return (any);
}

static void
maint_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct maint_set	*set = arg;

	(void)fd;
	(void)what;
	if (expire(set, "its time is up"))
		maint_save(set);
	maint_arm(set);
}

/* The windows of cutovers that op.finished said ended. */
static void
maint_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct maint_set	*set = arg;
	unsigned int		 i;
	int			 any = 0;

	(void)fd;
	(void)what;
	for (i = 0; i < set->n; ) {
		if (set->v[i].ending) {
			remove_at(set, i, "the deploy's cutover ended");
			any = 1;
		} else
			i++;
	}
	if (any) {
		maint_save(set);
		maint_arm(set);
	}
}

static const char *
field(const struct evt *ev, const char *key)
{
	unsigned int	i;

	for (i = 0; i < ev->nfields; i++)
		if (strcmp(ev->fields[i].key, key) == 0)
			return (ev->fields[i].value);
	return (NULL);
}

/*
 * Sink of every event: a cutover that finished ends its window. Marked
 * here and ended from the loop, since a sink must not emit.
 */
static void
maint_sink(const struct evt *ev, void *arg)
{
	struct maint_set	*set = arg;
	const char		*kind, *object;
	unsigned int		 i;

	if (ev->type != &EVT_OP_FINISHED ||
	    (kind = field(ev, "op_kind")) == NULL ||
	    strcmp(kind, "deploy.cutover") != 0 ||
	    (object = field(ev, "op_object")) == NULL)
		return;
	for (i = 0; i < set->n; i++)
		if (strcmp(set->v[i].source, "deploy") == 0 &&
		    strcmp(set->v[i].name, object) == 0) {
			set->v[i].ending = 1;
			event_active(set->sweep, EV_TIMEOUT, 0);
		}
}

static void
maint_load(struct maint_set *set)
{
	const char	*dir = set->opsd->conf->state_dir;
	char		*path, *bad, *buf, err[256];
	ssize_t		 r;
	size_t		 len = 0;
	unsigned int	 i;
	int		 fd, any;

	xasprintf(&path, "%s/%s", dir, MAINT_FILE);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (errno != ENOENT)
			log_warn("maintenance", "maintenance: cannot read %s: "
			    "%s", path, strerror(errno));
		free(path);
		return;
	}
	buf = xmalloc(MAINT_FILE_MAX + 1);
	while (len <= MAINT_FILE_MAX && (r = read(fd, buf + len,
	    MAINT_FILE_MAX + 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	if (len > MAINT_FILE_MAX ||
	    maint_parse(buf, len, set->v, &set->n, err, sizeof err) != 0) {
		if (len > MAINT_FILE_MAX)
			snprintf(err, sizeof err, "larger than %d bytes",
			    MAINT_FILE_MAX);
		xasprintf(&bad, "%s.bad", path);
		if (rename(path, bad) != 0)
			log_warn("maintenance", "maintenance: cannot move %s "
			    "aside: %s", path, strerror(errno));
		log_warn("maintenance", "maintenance: %s: %s; moved aside as "
		    "%s, no window is open", path, err, bad);
		free(bad);
		set->n = 0;
	}
	free(buf);
	free(path);
	set->gen++;
	any = expire(set, "its time was up while opsd was stopped");
	/*
	 * The journal is loaded before the first apply: a cutover that is
	 * not unfinished any more took its window along.
	 */
	for (i = 0; i < set->n; ) {
		if (strcmp(set->v[i].source, "deploy") == 0 &&
		    op_find(set->opsd, "deploy.cutover", set->v[i].name) ==
		    NULL) {
			remove_at(set, i, "its cutover ended while opsd was "
			    "stopped");
			any = 1;
		} else
			i++;
	}
	if (any)
		maint_save(set);
}

void
maint_apply(struct opsd *o)
{
	struct maint_set	*set = MAINT(o);

	if (set == NULL) {
		set = xcalloc(1, sizeof *set);
		set->opsd = o;
		set->timer = evtimer_new(o->base, maint_timer_cb, set);
		set->sweep = evtimer_new(o->base, maint_sweep_cb, set);
		evt_subscribe(maint_sink, set);
		o->sub[SUBSYS_MAINT] = set;
	}
	if (!set->loaded) {
		/* state_dir does not move on reload */
		set->loaded = 1;
		maint_load(set);
	}
	maint_arm(set);
}

void
maint_free(struct opsd *o)
{
	struct maint_set	*set = MAINT(o);

	if (set == NULL)
		return;
	evt_unsubscribe(maint_sink, set);
	event_free(set->timer);
	event_free(set->sweep);
	free(set);
	o->sub[SUBSYS_MAINT] = NULL;
}

uint64_t
maint_generation(struct opsd *o)
{
	return (MAINT(o) != NULL ? MAINT(o)->gen : 0);
}

const struct maint_window *
maint_covering(struct opsd *o, const char *name, const char *service)
{
	struct maint_set	*set = MAINT(o);
	const struct maint_window *best = NULL;
	int64_t			 now = wall_now();
	unsigned int		 i;

	if (set == NULL)
		return (NULL);
	for (i = 0; i < set->n; i++) {
		const struct maint_window *m = &set->v[i];

		if (m->until != 0 && m->until <= now)
			continue;
		if (strcmp(m->name, "*") != 0 && strcmp(m->name, name) != 0 &&
		    (service == NULL || strcmp(m->name, service) != 0))
			continue;
		/* the one that lasts longest is what a reader wants */
		if (best == NULL || m->until == 0 || (best->until != 0 &&
		    m->until > best->until))
			best = m;
	}
	return (best);
}

int
maint_start(struct opsd *o, const char *name, int64_t until,
    const char *reason, const char *source, int64_t uid, char **err)
{
	struct maint_set	*set = MAINT(o);
	struct maint_window	*m = NULL;
	unsigned int		 i;

	*err = NULL;
	if (set == NULL) {
		xasprintf(err, "maintenance is not set up yet");
		return (-EAGAIN);
	}
	if (!maint_name_ok(name)) {
		xasprintf(err, "'%s' is not a name", name);
		return (-EINVAL);
	}
	if (reason == NULL)
		reason = "";
	if (!maint_reason_ok(reason)) {
		xasprintf(err, "the reason must be at most %d bytes of text "
		    "on one line", MAINT_REASON_MAX);
		return (-EINVAL);
	}
	for (i = 0; i < set->n; i++)
		if (strcmp(set->v[i].name, name) == 0 &&
		    strcmp(set->v[i].source, source) == 0)
			m = &set->v[i];
	if (m == NULL) {
		if (set->n == MAINT_MAX) {
			xasprintf(err, "%d windows are open already",
			    MAINT_MAX);
			return (-ENOSPC);
		}
		m = &set->v[set->n++];
		memset(m, 0, sizeof *m);
		snprintf(m->name, sizeof m->name, "%s", name);
		snprintf(m->source, sizeof m->source, "%s", source);
		m->started = wall_now();
	}
	/* a second start replaces the end and the reason: it extends */
	snprintf(m->reason, sizeof m->reason, "%s", reason);
	m->until = until;
	m->uid = uid;
	set->gen++;
	window_event(&EVT_MAINT_STARTED, m, NULL);
	maint_save(set);
	maint_arm(set);
	return (0);
}

unsigned int
maint_stop(struct opsd *o, const char *name, const char *source,
    const char *why)
{
	struct maint_set	*set = MAINT(o);
	unsigned int		 i, n = 0;

	if (set == NULL)
		return (0);
	for (i = 0; i < set->n; ) {
		if ((name == NULL || strcmp(set->v[i].name, name) == 0) &&
		    (source == NULL || strcmp(set->v[i].source, source) ==
		    0)) {
			remove_at(set, i, why);
			n++;
		} else
			i++;
	}
	if (n > 0) {
		maint_save(set);
		maint_arm(set);
	}
	return (n);
}

json_t *
maint_list_json(struct opsd *o)
{
	struct maint_set	*set = MAINT(o);
	json_t			*list = json_array(), *w;
	int64_t			 now = wall_now();
	unsigned int		 i;
	char			 t[32];

	for (i = 0; set != NULL && i < set->n; i++) {
		if (set->v[i].until != 0 && set->v[i].until <= now)
			continue;
		w = maint_window_json(&set->v[i]);
		util_iso_time(set->v[i].started, t, sizeof t);
		json_object_set_new(w, "started", json_string(t));
		if (set->v[i].until != 0) {
			util_iso_time(set->v[i].until, t, sizeof t);
			json_object_set_new(w, "until", json_string(t));
		} else
			json_object_set_new(w, "until", json_null());
		if (set->v[i].uid < 0)
			json_object_set_new(w, "uid", json_null());
		json_array_append_new(list, w);
	}
	return (json_pack("{s:o}", "windows", list));
}

void
maint_deploy_begin(struct opsd *o, const char *deploy, const char *op)
{
	char	*err = NULL, *why;

	xasprintf(&why, "deploy cutover (op %s)", op);
	if (maint_start(o, deploy, wall_now() + DEPLOY_WINDOW_MAX, why,
	    "deploy", -1, &err) != 0)
		log_warn("maintenance", "maintenance: no window for deploy %s: "
		    "%s", deploy, err);
	free(why);
	free(err);
}


void
maint_metrics(struct opsd *o, struct evbuffer *b)
{
	struct maint_set	*set = MAINT(o);
	int64_t			 now = wall_now();
	unsigned int		 i, n = 0;

	for (i = 0; set != NULL && i < set->n; i++)
		if (set->v[i].until == 0 || set->v[i].until > now)
			n++;
	metrics_head(b, "opsd_maintenance_windows", "gauge", "Maintenance "
	    "windows open now (alerts and restarts held).");
	evbuffer_add_printf(b, "opsd_maintenance_windows %u\n", n);
}
