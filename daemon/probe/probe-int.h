/*
 * Inside the probe room: the set of probes, shared by the core
 * (probe.c, which makes it from the configuration) and the schedule
 * (probe-sched.c, which runs it).
 */
#ifndef OPSD_PROBE_INT_H
#define OPSD_PROBE_INT_H

#include <stdint.h>

#include "probe.h"

struct event;
struct event_base;

struct probe_set {
	struct probe		**v;
	unsigned int		  n;
	struct probe_lateness	  lateness;	/* kept across reloads */
	struct event		 *tick;		/* the earliest due run */
	uint64_t		  tick_due;	/* while tick is pending */
	int			  in_tick;	/* probe_tick_cb() is running */
	struct event		 *harvest;	/* probe_harvest_at() */
	uint64_t		  harvest_due;	/* while harvest is pending */
	struct probe		**hv;		/* the runs that asked */
	unsigned int		  nhv;
	unsigned int		  hvcap;
};

/* This subsystem's state in the daemon context (subsys.h). */
#define PROBES(o)	((struct probe_set *)(o)->sub[SUBSYS_PROBE])

/* probe-sched.c */
void	 probe_sched_init(struct probe_set *, struct event_base *);
void	 probe_sched_free(struct probe_set *);
void	 probe_sched_first(struct probe *, unsigned int load);
unsigned int probe_start_load(int curl);
uint64_t probe_grid_slot(uint64_t interval_usec, unsigned int load);
void	 probe_arm(struct probe *, uint64_t due_usec);
uint64_t probe_next_slot(struct probe *, uint64_t now_usec);
void	 probe_harvest_drop(struct probe *);

#endif
