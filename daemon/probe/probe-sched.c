/*
 * The probes' schedule.
 *
 * Scheduling is fixed-rate: a run is due every interval after the first
 * (which is spread at random over the first interval so a thousand probes
 * do not fire together); a run that overruns its slot makes the next one
 * start when it ends, never two at once. Lateness (start minus due time)
 * is recorded as a histogram.
 *
 * The set has one timer, not one a probe: it fires at the earliest due
 * run and starts every run due within PROBE_COALESCE_USEC of it. The
 * grid after the first run starts on one of ten slots of the interval
 * (at most a second apart, aligned on the clock; more slots when many
 * probes share an interval, see GRID_SLOT_LOAD), so probes of the same
 * interval share their wake-ups: 100 probes at 10 s wake opsd 60 times
 * a minute, not 600, and each wake-up serves ten. The answers of a
 * tick's runs are read together too, at the harvest (below).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "daemon.h"
#include "lazylib.h"
#include "probe.h"
#include "probe-int.h"
#include "util.h"

/* First runs of new probes spread over this long (usec), at most. */
#define FIRST_RUN_SPREAD	(1000 * 1000)
/* Runs due this close to each other share one wake-up (usec). */
#define PROBE_COALESCE_USEC	(3 * 1000)
/*
 * The grid's slots: an interval has this many, at most a second apart,
 * and more (halved until they fit) when the runs that would share a slot
 * would take more than GRID_SLOT_LOAD to start. The runs of a slot start
 * one after the other in one wake-up, so the last one starts that much
 * after its due time. A plain-http run costs one (28 us of CPU at 1,000
 * a second, bench/probes), a run through libcurl four (110 us, bench/probes
 * --https): 100 https runs a slot made the p99 lateness 19 ms, 25 keep
 * it under 10. More slots cost more wake-ups: a plain-http probe set is
 * left with its ten.
 */
#define GRID_SLOTS		10
#define GRID_SLOT_MAX		(1000 * 1000)
#define GRID_SLOT_LOAD		100

const double probe_lateness_bounds[PROBE_LATENESS_BUCKETS] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 5
};

static void	probe_timer_cb(struct probe *, uint64_t);

/*
 * The set's timer at due, unless it fires earlier already; set the
 * timer slack early, so that the run starts on time, not up to 2 ms late
 * (PROBE_COALESCE_USEC covers the difference).
 */
static void
probe_tick_at(struct probe_set *set, uint64_t due)
{
	struct timeval	tv;
	uint64_t	now, wait;

	if (set->in_tick || (evtimer_pending(set->tick, NULL) &&
	    set->tick_due <= due))
		return;
	now = now_usec();
	wait = due > now + OPSD_TIMER_SLACK_USEC ? due - now -
	    OPSD_TIMER_SLACK_USEC : 0;
	tv.tv_sec = (time_t)(wait / 1000000);
	tv.tv_usec = (suseconds_t)(wait % 1000000);
	set->tick_due = due;
	evtimer_add(set->tick, &tv);
}

void
probe_arm(struct probe *p, uint64_t due)
{
	p->due_usec = due;
	p->armed = 1;
	probe_tick_at(PROBES(p->opsd), due);
}

/*
 * Every run due by now (or within PROBE_COALESCE_USEC: started that
 * much early, which counts as on time), then the timer for the next.
 * The probes are few enough (thousands) to be walked at each wake-up.
 */
static void
probe_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe_set	*set = arg;
	struct probe		*p;
	uint64_t		 now = now_usec(), next = UINT64_MAX;
	unsigned int		 i;

	(void)fd;
	(void)what;
	set->in_tick = 1;
	/* a run that ends at once re-arms its probe: set->v stays */
	for (i = 0; i < set->n; i++) {
		p = set->v[i];
		if (p->armed && p->due_usec <= now + PROBE_COALESCE_USEC) {
			p->armed = 0;
			/* each one's own start: the lateness is its own */
			probe_timer_cb(p, now_usec());
		}
	}
	set->in_tick = 0;
	for (i = 0; i < set->n; i++) {
		p = set->v[i];
		if (p->armed && p->due_usec < next)
			next = p->due_usec;
	}
	if (next != UINT64_MAX)
		probe_tick_at(set, next);
}

/*
 * The harvest: runs started together (a tick) have their answers read
 * together. Ten requests sent in one wake-up come back one by one as
 * the server writes them; read as they come, each wakes opsd up, and in
 * a VM each wake-up costs more than the read. A kind that knows about
 * how long its answers take stops watching the socket, asks for a
 * harvest that much later, and reads what came, all in one wake-up; it
 * takes the time the answer arrived from the kernel (SO_TIMESTAMPNS),
 * not from when it was read. The set's one timer is at the latest time
 * asked for.
 */
static void
harvest_arm(struct probe_set *set, uint64_t due)
{
	struct timeval	tv;
	uint64_t	now = now_usec(), wait = due > now ? due - now : 0;

	if (evtimer_pending(set->harvest, NULL) && set->harvest_due >= due)
		return;
	set->harvest_due = due;
	tv.tv_sec = (time_t)(wait / 1000000);
	tv.tv_usec = (suseconds_t)(wait % 1000000);
	evtimer_add(set->harvest, &tv);
}

/*
 * The runs that asked are kept in a list of their own: walking every
 * probe at each harvest touched a cache line of each, which showed as 2%
 * of opsd's samples at 200 probes a second.
 */
void
probe_harvest_at(struct probe *p, uint64_t due)
{
	struct probe_set	*set = PROBES(p->opsd);

	if (!p->harvest) {
		if (set->nhv == set->hvcap) {
			set->hvcap = set->hvcap ? set->hvcap * 2 : 16;
			set->hv = xreallocarray(set->hv, set->hvcap,
			    sizeof *set->hv);
		}
		set->hv[set->nhv++] = p;
	}
	p->harvest = 1;
	p->harvest_due = due;
	harvest_arm(set, due);
}

/* The run ended or was cancelled before its harvest: out of the list. */
void
probe_harvest_drop(struct probe *p)
{
	struct probe_set	*set = PROBES(p->opsd);
	unsigned int		 i;

	if (!p->harvest)
		return;
	p->harvest = 0;
	for (i = 0; i < set->nhv; i++)
		if (set->hv[i] == p)
			set->hv[i] = NULL;
}

static void
probe_harvest_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe_set	*set = arg;
	struct probe		*p;
	uint64_t		 now = now_usec(), next = UINT64_MAX;
	unsigned int		 i, n = set->nhv, k = 0;

	(void)fd;
	(void)what;
	/* what is asked for meanwhile goes past n, for later */
	for (i = 0; i < n; i++) {
		if ((p = set->hv[i]) != NULL &&
		    p->harvest_due <= now + PROBE_COALESCE_USEC) {
			set->hv[i] = NULL;
			p->harvest = 0;
			p->ops->harvest(p);
		}
	}
	for (i = 0; i < set->nhv; i++) {
		if ((p = set->hv[i]) == NULL)
			continue;
		set->hv[k++] = p;
		if (p->harvest_due < next)
			next = p->harvest_due;
	}
	set->nhv = k;
	if (next != UINT64_MAX)
		harvest_arm(set, next);
}

/*
 * The length of a slot of a probe's grid, for probes of its interval
 * whose starts weigh load in all (probe_start_load()); 0 for an interval
 * too short to have slots. Slots are halved
 * until they are few enough, so that each length divides the length for
 * fewer probes: the boundaries of a grid made for fewer probes (before a
 * reload added some) are boundaries of the grid made for more.
 */
uint64_t
probe_grid_slot(uint64_t iv, unsigned int load)
{
	uint64_t	slot = iv / GRID_SLOTS;

	if (slot > GRID_SLOT_MAX)
		slot = GRID_SLOT_MAX;
	/* halved, never cut unevenly: the boundaries must stay shared */
	while (slot >= 2 * PROBE_COALESCE_USEC && slot % 2 == 0 &&
	    (uint64_t)load > iv / slot * GRID_SLOT_LOAD)
		slot /= 2;
	return (slot < PROBE_COALESCE_USEC ? 0 : slot);
}

/* Where a probe's grid starts: one of the slots of its interval. */
static uint64_t
probe_grid_jitter(const struct probe *p, uint32_t rnd)
{
	uint64_t	iv = p->conf->interval * 1000, slot = p->grid_slot;

	if (slot == 0)
		return (iv + (uint64_t)rnd % iv);
	return (iv + (uint64_t)rnd % (iv / slot) * slot);
}

/*
 * The next slot on the fixed grid, skipping slots a run overran. The
 * first run comes right after the probe appears; the grid then starts
 * one interval and a random part of another later: probes spread over
 * their interval, and none runs twice within one.
 */
uint64_t
probe_next_slot(struct probe *p, uint64_t now)
{
	uint64_t	iv = p->conf->interval * 1000;
	uint64_t	next = p->due_usec + iv;

	if (p->jitter_usec != 0) {
		uint64_t	slot = p->grid_slot;

		/* on the slot's boundary of the clock, shared by others */
		next = p->due_usec + p->jitter_usec;
		if (slot != 0)
			next += (slot - next % slot) % slot;
		p->jitter_usec = 0;
	}
	if (next <= now)
		next = now + (iv - (now - p->due_usec) % iv);
	return (next);
}

static void
probe_start(struct probe *p)
{
	struct probe_result	r;
	int			e;

	p->running = 1;
	p->run_start = now_usec();
	p->run_start_wall = (int64_t)now_realtime_usec();
	if ((e = p->ops->start(p)) != 0) {
		memset(&r, 0, sizeof r);
		probe_fail(&r, "cannot start: %s", e == -ELIBACC ?
		    lazylib_error(LAZYLIB_CURL) : strerror(-e));
		probe_done(p, &r);
	}
}

static void
record_lateness(struct probe_lateness *lt, uint64_t late_usec)
{
	double		s = (double)late_usec / 1e6;
	unsigned int	i;

	for (i = 0; i < PROBE_LATENESS_BUCKETS; i++) {
		if (s <= probe_lateness_bounds[i])
			break;
	}
	lt->count[i]++;
	lt->sum += s;
	lt->n++;
}

static void
probe_timer_cb(struct probe *p, uint64_t now)
{
	if (p->running) {
		/* a probe.run is in flight: never overlap, take the next slot */
		probe_arm(p, probe_next_slot(p, now));
		return;
	}
	record_lateness(&PROBES(p->opsd)->lateness, now > p->due_usec ?
	    now - p->due_usec : 0);
	p->manual = 0;
	probe_start(p);
}

int
probe_run_now(struct probe *p, struct rpc_pending *waiter)
{
	if (waiter != NULL) {
		p->waiters = xreallocarray(p->waiters, p->nwaiters + 1,
		    sizeof *p->waiters);
		p->waiters[p->nwaiters++] = waiter;
	}
	if (!p->running) {
		/* the scheduled slot stays where it is */
		p->manual = 1;
		probe_start(p);
	}
	return (0);
}

/* What a run weighs when it starts, for GRID_SLOT_LOAD: curl if libcurl
   makes it (an http probe for which http_probe_needs_curl()). */
unsigned int
probe_start_load(int curl)
{
	return (curl ? 4 : 1);
}

/*
 * A new probe, of an interval whose runs weigh load in all: the first
 * run at once (a bad certificate on an hourly probe alerts in seconds,
 * not hours), spread over at most a second so that a thousand probes do
 * not start together; later runs on one of the slots of the interval's
 * grid.
 */
void
probe_sched_first(struct probe *p, unsigned int load)
{
	uint64_t	iv = p->conf->interval * 1000;
	uint32_t	rnd;

	p->grid_slot = probe_grid_slot(iv, load);
	util_random(&rnd, sizeof rnd);
	p->jitter_usec = probe_grid_jitter(p, rnd);
	util_random(&rnd, sizeof rnd);
	probe_arm(p, now_usec() + (uint64_t)rnd % (iv < FIRST_RUN_SPREAD ?
	    iv : FIRST_RUN_SPREAD));
}

void
probe_sched_init(struct probe_set *set, struct event_base *base)
{
	set->tick = evtimer_new(base, probe_tick_cb, set);
	set->harvest = evtimer_new(base, probe_harvest_cb, set);
	if (set->tick == NULL || set->harvest == NULL)
		fatalx("probe: cannot make the schedule's timers");
}

void
probe_sched_free(struct probe_set *set)
{
	event_free(set->tick);
	event_free(set->harvest);
	free(set->hv);
}

const struct probe_lateness *
probe_lateness(struct opsd *o)
{
	static const struct probe_lateness	none;

	return (PROBES(o) != NULL ? &PROBES(o)->lateness : &none);
}
