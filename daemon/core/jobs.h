/*
 * Scheduled jobs: a name, a schedule, a function that starts a run, and
 * what the last run did. Backups use it now; secret rotation and
 * certificate checks will too. Last-run times live in state_dir/jobs.json,
 * so `persistent` jobs whose time passed while opsd was down run once at
 * start-up, like systemd timers with Persistent=true.
 */
#ifndef OPSD_JOBS_H
#define OPSD_JOBS_H

#include <stddef.h>
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

/*
 * What jobs.json says about one job. The file is read as outside input:
 * jobs_state_parse() takes its text, the job's name and the time now,
 * and fills st with what is usable (zeros otherwise): last_run and
 * last_slot are times after 2000 and not after now (a later one is
 * clamped to now), last_ok is -1, 0 or 1, last_result a string. It
 * returns 1 if the job has an entry, 0 if not, -EBADMSG if the text is
 * not a JSON object; what it ignored or changed is described in note
 * ("" if nothing), for the caller to log. No other effect.
 */
struct job_state {
	int64_t		 last_run;
	int64_t		 last_slot;
	int		 last_ok;
	char		 last_result[256];
};
int	 jobs_state_parse(const char *text, size_t len, const char *name,
	    int64_t now, struct job_state *st, char *note, size_t notelen);

struct json_t *jobs_json(struct opsd *);
void	 jobs_stop_all(struct opsd *);

#endif
