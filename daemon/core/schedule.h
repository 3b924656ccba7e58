/*
 * Schedules: 5-field cron expressions in a time zone, or fixed intervals
 * ("every 6h"). The next-fire computation is a pure function of the spec
 * and a time, so it is tested with a fixed clock.
 *
 * Daylight saving time, like Vixie cron: a wall-clock time that does not
 * exist because the clocks jump forward runs as if they had not jumped
 * (02:30 becomes 03:30); a time that happens twice because they jump back
 * runs once, at its first occurrence, unless the hour field is '*', in
 * which case both real hours run. A daily job is never skipped or doubled.
 */
#ifndef OPSD_SCHED_H
#define OPSD_SCHED_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct sched_zone;

struct sched_spec {
	int		 interval;	/* "every DURATION" */
	uint64_t	 every_ms;
	/* cron fields as bit sets */
	uint64_t	 minutes;	/* bits 0-59 */
	uint32_t	 hours;		/* bits 0-23 */
	uint32_t	 mdays;		/* bits 1-31 */
	uint16_t	 months;	/* bits 1-12 */
	uint8_t		 wdays;		/* bits 0-6, Sunday = 0 */
	int		 mday_star;
	int		 wday_star;
	int		 hour_star;
	char		*tz;		/* NULL: local time */
	const struct sched_zone *zone;	/* tz loaded; shared, never freed */
};

/* 0, or -EINVAL with a message in err. tz may be NULL. */
int	 sched_parse(const char *expr, const char *tz, struct sched_spec *,
	    char *err, size_t errlen);
void	 sched_free(struct sched_spec *);
/*
 * Checks that a zone name is known: a TZif file under /usr/share/zoneinfo
 * that reads (no "..", no leading '/'), or UTC or local.
 */
int	 sched_tz_valid(const char *tz);

/*
 * A zone from the bytes of a TZif file (RFC 8536, versions 1-4), or NULL
 * with a message in err; for tests and the fuzzer (schedules load theirs
 * through sched_parse). The caller frees it with sched_zone_free().
 */
struct sched_zone *sched_zone_parse(const void *, size_t, char *err,
	    size_t errlen);
void	 sched_zone_free(struct sched_zone *);
/* The zone's UTC offset at t, in seconds east of Greenwich. */
int32_t	 sched_zone_offset(const struct sched_zone *, int64_t t);

/*
 * The first fire time strictly after `after` (unix seconds), or -1 if
 * none within nine years (e.g. 30 February). For intervals: after +
 * interval.
 */
int64_t	 sched_next(const struct sched_spec *, int64_t after);
/* Typical distance between runs, for the default max_age. */
int64_t	 sched_period(const struct sched_spec *);

#endif
