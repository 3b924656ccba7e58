/*
 * Scheduled jobs: a name, a schedule, a function that starts a run, and
 * what the last run did. Backups use it now; secret rotation and
 * certificate checks will too. Last-run times live in state_dir/jobs.json,
 * so `persistent` jobs whose time passed while opsd was down run once at
 * start-up, like systemd timers with Persistent=true.
 */
#ifndef OPSD_JOBS_H
#define OPSD_JOBS_H

#include <stdint.h>

#include "schedule.h"

struct opsd;
struct job;

/* Starts a run; the owner calls job_finished() when it ends. */
typedef void (*job_run_cb)(struct job *, void *arg);

struct job *job_add(struct opsd *, const char *name,
	    const struct sched_spec *, uint64_t random_delay_ms,
	    int persistent, job_run_cb, void *arg);
void	 job_remove(struct job *);
/* Records the end of a run (ok: 1, failed: 0, skipped: -1). */
void	 job_finished(struct job *, int ok, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	 job_started(struct job *);
void	 job_interrupted(struct job *);
int64_t	 job_next(const struct job *);

struct json_t *jobs_json(struct opsd *);
void	 jobs_stop_all(struct opsd *);

#endif
