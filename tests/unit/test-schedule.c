/*
 * Schedules (daemon/core/schedule.c): cron parsing, the next-fire computation
 * across month ends, leap days and the day-of-month / day-of-week rule,
 * and daylight saving time in Europe/Berlin and America/New_York as
 * schedule.h documents it (a skipped wall time runs after the jump, a
 * repeated one runs once unless the hour field is '*', a daily job is
 * never skipped or doubled).
 *
 * The clock is fixed: every case passes its `after` explicitly, and every
 * spec names its zone. The process zone is set to Pacific/Chatham
 * (UTC+12:45/+13:45), so a computation that leaks the machine's zone shows.
 * Expected instants are written in UTC; local dates are derived here from
 * the 2026 transition instants, not from the C library.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "schedule.h"
#include "tap.h"

#define PROCESS_TZ	"Pacific/Chatham"

/* Unix time of a UTC date and time. */
static int64_t
utc(int y, int mo, int d, int h, int mi)
{
	struct tm	tm;

	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return ((int64_t)timegm(&tm));
}

static char *
fmt_utc(int64_t t, char *buf, size_t len)
{
	struct tm	tm;
	time_t		tt = (time_t)t;

	if (t < 0) {
		snprintf(buf, len, "%jd", (intmax_t)t);
		return (buf);
	}
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return (buf);
}

#define CHECK_TIME(got, want) do {					\
	int64_t tg_ = (got), tw_ = (want);				\
	char bg_[40], bw_[40];						\
	if (tg_ != tw_) {						\
		tap_diag("%s:%d: %s is %s, expected %s", __FILE__,	\
		    __LINE__, #got, fmt_utc(tg_, bg_, sizeof bg_),	\
		    fmt_utc(tw_, bw_, sizeof bw_));			\
		tap_case_failed = 1;					\
	}								\
} while (0)

/*
 * UTC offsets in 2026, from the rules rather than tzdata:
 * EU: CEST from the last Sunday of March 01:00 UTC to the last Sunday of
 * October 01:00 UTC; US: EDT from the second Sunday of March 02:00 EST to
 * the first Sunday of November 02:00 EDT.
 */
enum zone { BERLIN, NEW_YORK };
static const char *const zone_names[] = { "Europe/Berlin", "America/New_York" };

static long
offset_2026(enum zone z, int64_t t)
{
	if (t < utc(2026, 1, 1, 0, 0) - 86400 || t > utc(2027, 1, 1, 0, 0)) {
		tap_fail(__FILE__, __LINE__, "offset_2026: outside 2026");
		return (0);
	}
	if (z == BERLIN)
		return (t >= utc(2026, 3, 29, 1, 0) &&
		    t < utc(2026, 10, 25, 1, 0) ? 7200 : 3600);
	return (t >= utc(2026, 3, 8, 7, 0) &&
	    t < utc(2026, 11, 1, 6, 0) ? -14400 : -18000);
}

/* Local wall time of t in z (fields as gmtime_r fills them). */
static void
local_2026(enum zone z, int64_t t, struct tm *tm)
{
	time_t	w = (time_t)(t + offset_2026(z, t));

	gmtime_r(&w, tm);
}

/* Days since 1970-01-01 of a local date. */
static long
local_daynum(enum zone z, int64_t t)
{
	return ((long)((t + offset_2026(z, t)) / 86400));
}

static int
parse(const char *expr, const char *tz, struct sched_spec *sp)
{
	char	err[256] = "";
	int	r;

	r = sched_parse(expr, tz, sp, err, sizeof err);
	if (r != 0)
		tap_diag("sched_parse(\"%s\", %s): %d %s", expr,
		    tz ? tz : "NULL", r, err);
	return (r);
}

#define PARSE_OK(expr, tz, sp)	CHECK_INT(parse((expr), (tz), (sp)), 0)

/* sched_parse must fail with -EINVAL and a message containing each want. */
static void
parse_fails(const char *expr, const char *tz, const char *want1,
    const char *want2)
{
	struct sched_spec	sp;
	char			err[256] = "";
	int			r;

	r = sched_parse(expr, tz, &sp, err, sizeof err);
	if (r != -EINVAL)
		tap_diag("sched_parse(\"%s\", %s) returned %d, expected "
		    "-EINVAL", expr, tz ? tz : "NULL", r);
	CHECK_INT(r, -EINVAL);
	if (r == 0) {
		sched_free(&sp);
		return;
	}
	CHECK(err[0] != '\0');
	if (want1 != NULL)
		CHECK_CONTAINS(err, want1);
	if (want2 != NULL)
		CHECK_CONTAINS(err, want2);
}

static uint64_t
bits(const int *v, int n)
{
	uint64_t	set = 0;
	int		i;

	for (i = 0; i < n; i++)
		set |= 1ULL << v[i];
	return (set);
}
#define BITS(...)	bits((const int[]){ __VA_ARGS__ },		\
	    (int)(sizeof (const int[]){ __VA_ARGS__ } / sizeof (int)))

static uint64_t
range_bits(int lo, int hi)
{
	uint64_t	set = 0;

	for (; lo <= hi; lo++)
		set |= 1ULL << lo;
	return (set);
}

/* After every call the process zone is what main() set. */
static void
check_process_tz(void)
{
	CHECK_STR(getenv("TZ"), PROCESS_TZ);
}

/* --- parsing ------------------------------------------------------------- */

static void
test_parse_lists_and_ranges(void)
{
	struct sched_spec	sp;

	PARSE_OK("0,15,30 1,2,23 1,15,31 1,6,12 0,3", "UTC", &sp);
	CHECK_UINT(sp.minutes, BITS(0, 15, 30));
	CHECK_UINT(sp.hours, BITS(1, 2, 23));
	CHECK_UINT(sp.mdays, BITS(1, 15, 31));
	CHECK_UINT(sp.months, BITS(1, 6, 12));
	CHECK_UINT(sp.wdays, BITS(0, 3));
	CHECK_INT(sp.interval, 0);
	CHECK_INT(sp.mday_star, 0);
	CHECK_INT(sp.wday_star, 0);
	CHECK_INT(sp.hour_star, 0);
	sched_free(&sp);

	PARSE_OK("10-12 9-17 1-5 3-4 1-5", "UTC", &sp);
	CHECK_UINT(sp.minutes, range_bits(10, 12));
	CHECK_UINT(sp.hours, range_bits(9, 17));
	CHECK_UINT(sp.mdays, range_bits(1, 5));
	CHECK_UINT(sp.months, range_bits(3, 4));
	CHECK_UINT(sp.wdays, range_bits(1, 5));
	sched_free(&sp);

	/* a mix of both, and a one-value range */
	PARSE_OK("0-4,30,50-59 7-7 * * *", "UTC", &sp);
	CHECK_UINT(sp.minutes, range_bits(0, 4) | BITS(30) |
	    range_bits(50, 59));
	CHECK_UINT(sp.hours, BITS(7));
	sched_free(&sp);

	/* all stars: every bit, and the star flags */
	PARSE_OK("* * * * *", "UTC", &sp);
	CHECK_UINT(sp.minutes, range_bits(0, 59));
	CHECK_UINT(sp.hours, range_bits(0, 23));
	CHECK_UINT(sp.mdays, range_bits(1, 31));
	CHECK_UINT(sp.months, range_bits(1, 12));
	CHECK_UINT(sp.wdays, range_bits(0, 6));
	CHECK_INT(sp.mday_star, 1);
	CHECK_INT(sp.wday_star, 1);
	CHECK_INT(sp.hour_star, 1);
	sched_free(&sp);

	/* tabs and repeated blanks separate fields too */
	PARSE_OK("  5\t4  *\t* *  ", "UTC", &sp);
	CHECK_UINT(sp.minutes, BITS(5));
	CHECK_UINT(sp.hours, BITS(4));
	sched_free(&sp);
}

static void
test_parse_steps(void)
{
	struct sched_spec	sp;

	PARSE_OK("*/15 */6 */10 */3 */2", "UTC", &sp);
	CHECK_UINT(sp.minutes, BITS(0, 15, 30, 45));
	CHECK_UINT(sp.hours, BITS(0, 6, 12, 18));
	CHECK_UINT(sp.mdays, BITS(1, 11, 21, 31));
	CHECK_UINT(sp.months, BITS(1, 4, 7, 10));
	CHECK_UINT(sp.wdays, BITS(0, 2, 4, 6));
	CHECK_INT(sp.hour_star, 0);	/* "*" with a step is not "*" */
	sched_free(&sp);

	/* "5/20" is 5-59/20 */
	PARSE_OK("5/20 3/8 * * *", "UTC", &sp);
	CHECK_UINT(sp.minutes, BITS(5, 25, 45));
	CHECK_UINT(sp.hours, BITS(3, 11, 19));
	sched_free(&sp);

	PARSE_OK("10-30/10 9-17/4 1-31/7 * 1-5/2", "UTC", &sp);
	CHECK_UINT(sp.minutes, BITS(10, 20, 30));
	CHECK_UINT(sp.hours, BITS(9, 13, 17));
	CHECK_UINT(sp.mdays, BITS(1, 8, 15, 22, 29));
	CHECK_UINT(sp.wdays, BITS(1, 3, 5));
	sched_free(&sp);

	/* a step larger than the range: only the start */
	PARSE_OK("7/60 * * * *", "UTC", &sp);
	CHECK_UINT(sp.minutes, BITS(7));
	sched_free(&sp);

	/* a one-value range with a step is that value, not value-max */
	PARSE_OK("55 15 * 3-3/2 4", "UTC", &sp);
	CHECK_UINT(sp.months, BITS(3));
	/* after the last Thursday of March 2026: March 2027, not July */
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 26, 15, 55)),
	    utc(2027, 3, 4, 15, 55));
	sched_free(&sp);
	PARSE_OK("10-10/5 3-3/1 * * *", "UTC", &sp);
	CHECK_UINT(sp.minutes, BITS(10));
	CHECK_UINT(sp.hours, BITS(3));
	sched_free(&sp);

	/*
	 * crontab(5): a day field is restricted when it does not start with
	 * '*'; a stepped star is not, so the day of week alone decides here.
	 */
	PARSE_OK("0 0 */2 * 1", "UTC", &sp);
	CHECK_INT(sp.mday_star, 1);
	/* Monday 2026-01-05 is odd: it runs; Monday the 12th is even */
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 1, 0, 0)),
	    utc(2026, 1, 5, 0, 0));
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 5, 0, 0)),
	    utc(2026, 1, 19, 0, 0));
	sched_free(&sp);

	parse_fails("*/0 * * * *", "UTC", "minute", NULL);
	parse_fails("*/ * * * *", "UTC", "minute", NULL);
	parse_fails("*/x * * * *", "UTC", "minute", NULL);
}

static void
test_parse_names(void)
{
	struct sched_spec	sp;

	PARSE_OK("0 0 * jan,jun-aug,DEC mon-fri", "UTC", &sp);
	CHECK_UINT(sp.months, BITS(1, 6, 7, 8, 12));
	CHECK_UINT(sp.wdays, range_bits(1, 5));
	sched_free(&sp);

	PARSE_OK("0 0 * Feb Sun,sat", "UTC", &sp);
	CHECK_UINT(sp.months, BITS(2));
	CHECK_UINT(sp.wdays, BITS(0, 6));
	sched_free(&sp);

	/* every month and day name */
	PARSE_OK("0 0 * jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec "
	    "sun,mon,tue,wed,thu,fri,sat", "UTC", &sp);
	CHECK_UINT(sp.months, range_bits(1, 12));
	CHECK_UINT(sp.wdays, range_bits(0, 6));
	CHECK_INT(sp.wday_star, 0);
	sched_free(&sp);

	/* names belong to their fields; no full names, no abbreviations */
	parse_fails("0 0 * mon *", "UTC", "month", NULL);
	parse_fails("0 0 * * jan", "UTC", "day of week", NULL);
	parse_fails("0 0 * january *", "UTC", "month", NULL);
	parse_fails("0 0 * * mo", "UTC", "day of week", NULL);
	parse_fails("jan 0 * * *", "UTC", "minute", NULL);
	parse_fails("0 0 * * fri-mon", "UTC", "goes backwards", NULL);
}

static void
test_parse_sunday_is_0_and_7(void)
{
	struct sched_spec	sp, sp0;

	PARSE_OK("0 0 * * 7", "UTC", &sp);
	CHECK_UINT(sp.wdays, BITS(0));
	PARSE_OK("0 0 * * 0", "UTC", &sp0);
	CHECK_UINT(sp.wdays, sp0.wdays);
	/* 2026-03-01 is a Sunday */
	CHECK_TIME(sched_next(&sp, utc(2026, 2, 25, 0, 0)),
	    utc(2026, 3, 1, 0, 0));
	CHECK_TIME(sched_next(&sp0, utc(2026, 2, 25, 0, 0)),
	    utc(2026, 3, 1, 0, 0));
	sched_free(&sp);
	sched_free(&sp0);

	PARSE_OK("0 0 * * 5-7", "UTC", &sp);
	CHECK_UINT(sp.wdays, BITS(0, 5, 6));
	sched_free(&sp);

	PARSE_OK("0 0 * * 0,7", "UTC", &sp);
	CHECK_UINT(sp.wdays, BITS(0));
	sched_free(&sp);

	parse_fails("0 0 * * 8", "UTC", "day of week", "8");
	check_process_tz();
}

static void
check_same(const struct sched_spec *a, const struct sched_spec *b)
{
	CHECK_INT(a->interval, b->interval);
	CHECK_UINT(a->minutes, b->minutes);
	CHECK_UINT(a->hours, b->hours);
	CHECK_UINT(a->mdays, b->mdays);
	CHECK_UINT(a->months, b->months);
	CHECK_UINT(a->wdays, b->wdays);
	CHECK_INT(a->mday_star, b->mday_star);
	CHECK_INT(a->wday_star, b->wday_star);
	CHECK_INT(a->hour_star, b->hour_star);
}

static void
test_parse_macros(void)
{
	static const struct {
		const char	*macro;
		const char	*cron;
	} m[] = {
		{ "@hourly", "0 * * * *" },
		{ "@daily", "0 0 * * *" },
		{ "@midnight", "0 0 * * *" },
		{ "@weekly", "0 0 * * 0" },
		{ "@monthly", "0 0 1 * *" },
		{ "@yearly", "0 0 1 1 *" },
		{ "@annually", "0 0 1 1 *" },
	};
	struct sched_spec	a, b;
	size_t			i;

	for (i = 0; i < sizeof m / sizeof m[0]; i++) {
		if (parse(m[i].macro, "Europe/Berlin", &a) != 0) {
			tap_fail(__FILE__, __LINE__, m[i].macro);
			continue;
		}
		PARSE_OK(m[i].cron, "Europe/Berlin", &b);
		check_same(&a, &b);
		CHECK_STR(a.tz, "Europe/Berlin");
		sched_free(&a);
		sched_free(&b);
	}

	/* and they fire where they should (UTC, from Wed 2026-01-14 10:20) */
	PARSE_OK("@hourly", "UTC", &a);
	CHECK_TIME(sched_next(&a, utc(2026, 1, 14, 10, 20)),
	    utc(2026, 1, 14, 11, 0));
	sched_free(&a);
	PARSE_OK("@daily", "UTC", &a);
	CHECK_TIME(sched_next(&a, utc(2026, 1, 14, 10, 20)),
	    utc(2026, 1, 15, 0, 0));
	sched_free(&a);
	PARSE_OK("@weekly", "UTC", &a);
	CHECK_TIME(sched_next(&a, utc(2026, 1, 14, 10, 20)),
	    utc(2026, 1, 18, 0, 0));
	sched_free(&a);
	PARSE_OK("@monthly", "UTC", &a);
	CHECK_TIME(sched_next(&a, utc(2026, 1, 14, 10, 20)),
	    utc(2026, 2, 1, 0, 0));
	sched_free(&a);
	PARSE_OK("@yearly", "UTC", &a);
	CHECK_TIME(sched_next(&a, utc(2026, 1, 14, 10, 20)),
	    utc(2027, 1, 1, 0, 0));
	sched_free(&a);

	parse_fails("@often", "UTC", "unknown schedule '@often'", "@daily");
	parse_fails("@Daily", "UTC", "unknown schedule", NULL);
}

static void
test_parse_every(void)
{
	struct sched_spec	sp;
	int64_t			t0 = utc(2026, 5, 5, 5, 5);

	PARSE_OK("every 6h", "UTC", &sp);
	CHECK_INT(sp.interval, 1);
	CHECK_UINT(sp.every_ms, 6 * 3600 * 1000ULL);
	CHECK_TIME(sched_next(&sp, t0), t0 + 6 * 3600);
	CHECK_TIME(sched_next(&sp, t0 + 1), t0 + 1 + 6 * 3600);
	CHECK_INT(sched_period(&sp), 6 * 3600);
	sched_free(&sp);

	/* no zone needed, and none leaks from the process zone */
	PARSE_OK("every 90s", NULL, &sp);
	CHECK_UINT(sp.every_ms, 90000);
	CHECK_TIME(sched_next(&sp, t0), t0 + 90);
	sched_free(&sp);

	PARSE_OK("every 1d", "Europe/Berlin", &sp);
	/* an interval is real time: 24 h even across the spring change */
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 28, 12, 0)),
	    utc(2026, 3, 29, 12, 0));
	sched_free(&sp);

	parse_fails("every 0s", "UTC", "every", "6h");
	parse_fails("every 500ms", "UTC", "at least 1s", NULL);
	parse_fails("every six hours", "UTC", "every", NULL);
	parse_fails("every ", "UTC", "every", NULL);
	check_process_tz();
}

static void
test_parse_errors(void)
{
	parse_fails("61 * * * *", "UTC", "minute", "61");
	parse_fails("60 * * * *", "UTC", "minute", "0 and 59");
	parse_fails("* * * *", "UTC", "'* * * *'", "5 cron fields");
	parse_fails("* * * * * *", "UTC", "5 cron fields", NULL);
	parse_fails("", "UTC", "5 cron fields", NULL);
	parse_fails("5-1 * * * *", "UTC", "minute", "5-1 goes backwards");
	parse_fails("0 24 * * *", "UTC", "hour", "24");
	parse_fails("0 0 0 * *", "UTC", "day of month", "1 and 31");
	parse_fails("0 0 32 * *", "UTC", "day of month", "32");
	parse_fails("0 0 * 0 *", "UTC", "month", "1 and 12");
	parse_fails("0 0 * 13 *", "UTC", "month", "13");
	parse_fails("1,,2 * * * *", "UTC", "minute", NULL);
	parse_fails("1, * * * *", "UTC", "minute", NULL);
	parse_fails("-1 * * * *", "UTC", "minute", NULL);
	parse_fails("1-x * * * *", "UTC", "minute", NULL);
	parse_fails("99999999999 * * * *", "UTC", "minute", NULL);
	parse_fails("0 0 * * * extra", "UTC", "5 cron fields", NULL);
}

static void
test_parse_zones(void)
{
	struct sched_spec	sp;

	parse_fails("0 3 * * *", "Mars/Olympus_Mons",
	    "unknown time zone 'Mars/Olympus_Mons'", NULL);
	parse_fails("0 3 * * *", "../../etc/passwd", "unknown time zone",
	    NULL);
	parse_fails("0 3 * * *", "/usr/share/zoneinfo/UTC",
	    "unknown time zone", NULL);
	/* an interval is checked too */
	parse_fails("every 6h", "Nowhere/Special", "unknown time zone", NULL);

	PARSE_OK("0 3 * * *", "Europe/Berlin", &sp);
	CHECK_STR(sp.tz, "Europe/Berlin");
	sched_free(&sp);
	PARSE_OK("0 3 * * *", "UTC", &sp);
	sched_free(&sp);
	PARSE_OK("0 3 * * *", "Etc/UTC", &sp);
	sched_free(&sp);
	/* "local" is the machine's zone: no zone recorded */
	PARSE_OK("0 3 * * *", "local", &sp);
	CHECK(sp.tz == NULL);
	sched_free(&sp);
	CHECK(sched_tz_valid("America/New_York"));
	CHECK(!sched_tz_valid("America/Nowhere"));
}

/*
 * A directory under /usr/share/zoneinfo is not a zone: TZ=Europe makes the
 * C library fall back to UTC without a word, so a job meant for Berlin
 * would run an hour or two off.
 */
static void
test_parse_zone_directory(void)
{
	CHECK(!sched_tz_valid("Europe"));
	CHECK(!sched_tz_valid("America/"));
	CHECK(!sched_tz_valid(""));
	parse_fails("0 3 * * *", "Europe", "unknown time zone 'Europe'",
	    NULL);
}

/* --- next fire time ---------------------------------------------------------- */

static void
test_next_strictly_after(void)
{
	struct sched_spec	sp;

	PARSE_OK("30 4 * * *", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 6, 1, 4, 29)),
	    utc(2026, 6, 1, 4, 30));
	CHECK_TIME(sched_next(&sp, utc(2026, 6, 1, 4, 30) - 1),
	    utc(2026, 6, 1, 4, 30));
	CHECK_TIME(sched_next(&sp, utc(2026, 6, 1, 4, 30)),
	    utc(2026, 6, 2, 4, 30));
	CHECK_TIME(sched_next(&sp, utc(2026, 6, 1, 4, 30) + 1),
	    utc(2026, 6, 2, 4, 30));
	sched_free(&sp);

	PARSE_OK("* * * * *", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 6, 1, 4, 29) + 59),
	    utc(2026, 6, 1, 4, 30));
	CHECK_TIME(sched_next(&sp, utc(2026, 12, 31, 23, 59)),
	    utc(2027, 1, 1, 0, 0));
	sched_free(&sp);
	check_process_tz();
}

static void
test_next_month_ends(void)
{
	struct sched_spec	sp;

	/* Jan 31 -> Feb 1 */
	PARSE_OK("0 0 * * *", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 31, 0, 0)),
	    utc(2026, 2, 1, 0, 0));
	sched_free(&sp);
	PARSE_OK("15 10 1 * *", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 31, 12, 0)),
	    utc(2026, 2, 1, 10, 15));
	sched_free(&sp);

	/* the 31st: February, April, June are passed over */
	PARSE_OK("0 12 31 * *", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 31, 12, 0)),
	    utc(2026, 3, 31, 12, 0));
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 31, 12, 0)),
	    utc(2026, 5, 31, 12, 0));
	CHECK_TIME(sched_next(&sp, utc(2026, 7, 31, 12, 0)),
	    utc(2026, 8, 31, 12, 0));
	CHECK_TIME(sched_next(&sp, utc(2026, 12, 31, 12, 0)),
	    utc(2027, 1, 31, 12, 0));
	sched_free(&sp);

	/* the 30th skips February */
	PARSE_OK("0 0 30 * *", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 30, 0, 0)),
	    utc(2026, 3, 30, 0, 0));
	sched_free(&sp);

	/* the same in a zone: Berlin midnight is 23:00 UTC the day before */
	PARSE_OK("0 0 1 * *", "Europe/Berlin", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 31, 12, 0)),
	    utc(2026, 1, 31, 23, 0));
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 15, 0, 0)),
	    utc(2026, 3, 31, 22, 0));	/* CEST by then */
	sched_free(&sp);
	check_process_tz();
}

static void
test_next_leap_day(void)
{
	struct sched_spec	sp;

	PARSE_OK("0 0 29 2 *", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2025, 1, 1, 0, 0)),
	    utc(2028, 2, 29, 0, 0));
	CHECK_TIME(sched_next(&sp, utc(2028, 2, 29, 0, 0)),
	    utc(2032, 2, 29, 0, 0));
	/* 2100 is not a leap year: 2096 -> 2104 */
	CHECK_TIME(sched_next(&sp, utc(2096, 2, 29, 0, 0)),
	    utc(2104, 2, 29, 0, 0));
	sched_free(&sp);

	/* never: 30 February */
	PARSE_OK("0 0 30 2 *", "UTC", &sp);
	CHECK_INT(sched_next(&sp, utc(2026, 1, 1, 0, 0)), -1);
	sched_free(&sp);
	PARSE_OK("0 0 31 4,6,9,11 *", "UTC", &sp);
	CHECK_INT(sched_next(&sp, utc(2026, 1, 1, 0, 0)), -1);
	sched_free(&sp);

	/* Feb 28 in a leap year goes to the 29th, then March */
	PARSE_OK("0 6 * 2,3 *", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2028, 2, 28, 6, 0)),
	    utc(2028, 2, 29, 6, 0));
	CHECK_TIME(sched_next(&sp, utc(2026, 2, 28, 6, 0)),
	    utc(2026, 3, 1, 6, 0));
	sched_free(&sp);
	check_process_tz();
}

/* Both day fields restricted: either matches (cron); one star: only the other. */
static void
test_next_mday_wday_or(void)
{
	struct sched_spec	sp;
	static const int	or_days[] = { 2, 9, 13, 16, 23, 30 };
	int64_t			t;
	size_t			i;

	/* January 2026: Thursday the 1st, so Fridays 2, 9, 16, 23, 30 */
	PARSE_OK("0 0 13 * 5", "UTC", &sp);
	t = utc(2026, 1, 1, 0, 0);
	for (i = 0; i < sizeof or_days / sizeof or_days[0]; i++) {
		t = sched_next(&sp, t);
		CHECK_TIME(t, utc(2026, 1, or_days[i], 0, 0));
	}
	/* Friday the 13th of February 2026 runs once */
	CHECK_TIME(sched_next(&sp, utc(2026, 2, 12, 0, 0)),
	    utc(2026, 2, 13, 0, 0));
	CHECK_TIME(sched_next(&sp, utc(2026, 2, 13, 0, 0)),
	    utc(2026, 2, 20, 0, 0));
	sched_free(&sp);

	PARSE_OK("0 0 * * 5", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 9, 0, 0)),
	    utc(2026, 1, 16, 0, 0));
	sched_free(&sp);

	PARSE_OK("0 0 13 * *", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 9, 0, 0)),
	    utc(2026, 1, 13, 0, 0));
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 13, 0, 0)),
	    utc(2026, 2, 13, 0, 0));
	sched_free(&sp);

	/* "first Monday" written the cron way: days 1-7 OR any Monday */
	PARSE_OK("0 9 1-7 * mon", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 7, 9, 0)),
	    utc(2026, 1, 12, 9, 0));
	sched_free(&sp);

	/* the month restricts both */
	PARSE_OK("0 0 13 feb 5", "UTC", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 1, 1, 0, 0)),
	    utc(2026, 2, 6, 0, 0));
	sched_free(&sp);
	check_process_tz();
}

/* --- daylight saving time ------------------------------------------------------ */

/* A daily job in the gap runs once, after the jump; the next day as usual. */
static void
test_dst_spring_daily(void)
{
	struct sched_spec	sp;

	/* Berlin, Sunday 2026-03-29: 02:00 CET -> 03:00 CEST */
	PARSE_OK("30 2 * * *", "Europe/Berlin", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 28, 12, 0)),
	    utc(2026, 3, 29, 1, 30));			/* 03:30 CEST */
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 29, 1, 30)),
	    utc(2026, 3, 30, 0, 30));			/* 02:30 CEST */
	/* the day before, still CET */
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 27, 12, 0)),
	    utc(2026, 3, 28, 1, 30));
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 28, 1, 30)),
	    utc(2026, 3, 29, 1, 30));
	sched_free(&sp);

	PARSE_OK("0 2 * * *", "Europe/Berlin", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 28, 12, 0)),
	    utc(2026, 3, 29, 1, 0));			/* 03:00 CEST */
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 29, 1, 0)),
	    utc(2026, 3, 30, 0, 0));
	sched_free(&sp);

	/* New York, Sunday 2026-03-08: 02:00 EST -> 03:00 EDT */
	PARSE_OK("30 2 * * *", "America/New_York", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 7, 12, 0)),
	    utc(2026, 3, 8, 7, 30));			/* 03:30 EDT */
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 8, 7, 30)),
	    utc(2026, 3, 9, 6, 30));			/* 02:30 EDT */
	CHECK_TIME(sched_next(&sp, utc(2026, 3, 6, 12, 0)),
	    utc(2026, 3, 7, 7, 30));			/* 02:30 EST */
	sched_free(&sp);
	check_process_tz();
}

/* A daily job in the repeated hour runs once, at the first occurrence. */
static void
test_dst_fall_daily(void)
{
	struct sched_spec	sp;

	/* Berlin, Sunday 2026-10-25: 03:00 CEST -> 02:00 CET */
	PARSE_OK("30 2 * * *", "Europe/Berlin", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 10, 24, 12, 0)),
	    utc(2026, 10, 25, 0, 30));			/* 02:30 CEST */
	CHECK_TIME(sched_next(&sp, utc(2026, 10, 25, 0, 30)),
	    utc(2026, 10, 26, 1, 30));			/* 02:30 CET, Mon */
	/* woken between the two 02:30s: the first is gone, no second */
	CHECK_TIME(sched_next(&sp, utc(2026, 10, 25, 0, 45)),
	    utc(2026, 10, 26, 1, 30));
	CHECK_TIME(sched_next(&sp, utc(2026, 10, 23, 12, 0)),
	    utc(2026, 10, 24, 0, 30));			/* 02:30 CEST */
	sched_free(&sp);

	/* New York, Sunday 2026-11-01: 02:00 EDT -> 01:00 EST */
	PARSE_OK("30 2 * * *", "America/New_York", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 10, 31, 12, 0)),
	    utc(2026, 11, 1, 7, 30));			/* 02:30 EST */
	CHECK_TIME(sched_next(&sp, utc(2026, 11, 1, 7, 30)),
	    utc(2026, 11, 2, 7, 30));
	CHECK_TIME(sched_next(&sp, utc(2026, 10, 30, 12, 0)),
	    utc(2026, 10, 31, 6, 30));			/* 02:30 EDT */
	sched_free(&sp);

	/* 01:30 happens twice in New York that night: once only */
	PARSE_OK("30 1 * * *", "America/New_York", &sp);
	CHECK_TIME(sched_next(&sp, utc(2026, 10, 31, 12, 0)),
	    utc(2026, 11, 1, 5, 30));			/* 01:30 EDT */
	CHECK_TIME(sched_next(&sp, utc(2026, 11, 1, 5, 30)),
	    utc(2026, 11, 2, 6, 30));			/* Mon 01:30 EST */
	CHECK_TIME(sched_next(&sp, utc(2026, 11, 1, 6, 0)),
	    utc(2026, 11, 2, 6, 30));
	sched_free(&sp);
	check_process_tz();
}

/*
 * Walks consecutive runs of spec over the local day that starts at
 * day_start (a UTC instant of local midnight) and checks they are exactly
 * want[0..n) (UTC instants).
 */
static void
walk_local_day(const char *expr, enum zone z, int64_t day_start,
    const int64_t *want, int n)
{
	struct sched_spec	sp;
	int64_t			t;
	long			day = local_daynum(z, day_start);
	int			i, bad = 0;
	char			b1[40], b2[40];

	if (parse(expr, zone_names[z], &sp) != 0) {
		tap_fail(__FILE__, __LINE__, expr);
		return;
	}
	t = day_start - 1;
	for (i = 0;; i++) {
		t = sched_next(&sp, t);
		if (t < 0 || local_daynum(z, t) != day)
			break;
		/* the first difference says it; the rest follow from it */
		if (i < n && t != want[i] && bad++ == 0) {
			tap_diag("'%s' in %s: run %d at %s, expected %s",
			    expr, zone_names[z], i, fmt_utc(t, b1, sizeof b1),
			    fmt_utc(want[i], b2, sizeof b2));
			tap_case_failed = 1;
		}
	}
	if (i != n)
		tap_diag("'%s' in %s: %d runs on the local day, expected %d",
		    expr, zone_names[z], i, n);
	CHECK_INT(i, n);
	sched_free(&sp);
}

/* Every step minutes of real time from t0, n runs. */
static int64_t *
steps_from(int64_t t0, int step, int n)
{
	static int64_t	v[128];
	int		i;

	for (i = 0; i < n && i < 128; i++)
		v[i] = t0 + (int64_t)i * step * 60;
	return (v);
}

/* Hour '*': both real hours run when the clocks go back; no duplicate in spring. */
static void
test_dst_hourly(void)
{
	/* Berlin fall: 25 hours, every real hour from 00:00 CEST */
	walk_local_day("0 * * * *", BERLIN, utc(2026, 10, 24, 22, 0),
	    steps_from(utc(2026, 10, 24, 22, 0), 60, 25), 25);
	/* Berlin spring: 23 hours, 02:00 does not exist and 03:00 runs once */
	walk_local_day("0 * * * *", BERLIN, utc(2026, 3, 28, 23, 0),
	    steps_from(utc(2026, 3, 28, 23, 0), 60, 23), 23);
	/* New York fall: both 01:00s */
	walk_local_day("0 * * * *", NEW_YORK, utc(2026, 11, 1, 4, 0),
	    steps_from(utc(2026, 11, 1, 4, 0), 60, 25), 25);
	/* New York spring */
	walk_local_day("0 * * * *", NEW_YORK, utc(2026, 3, 8, 5, 0),
	    steps_from(utc(2026, 3, 8, 5, 0), 60, 23), 23);
	check_process_tz();
}

/*
 * The same with more than one minute in the hour: in the repeated hour
 * every minute of the first pass runs before the second pass starts
 * (02:00, 02:30 CEST, then 02:00, 02:30 CET), i.e. one run every 30 real
 * minutes all day.
 */
static void
test_dst_half_hourly_fall(void)
{
	walk_local_day("*/30 * * * *", BERLIN, utc(2026, 10, 24, 22, 0),
	    steps_from(utc(2026, 10, 24, 22, 0), 30, 50), 50);
	walk_local_day("15,45 * * * *", NEW_YORK, utc(2026, 11, 1, 4, 0),
	    steps_from(utc(2026, 11, 1, 4, 15), 30, 50), 50);
	/* spring: 46 runs, 30 min apart */
	walk_local_day("*/30 * * * *", BERLIN, utc(2026, 3, 28, 23, 0),
	    steps_from(utc(2026, 3, 28, 23, 0), 30, 46), 46);
	check_process_tz();
}

/*
 * 60 consecutive runs of a daily 02:30 job from 30 days before a change:
 * one run on each local calendar day, none skipped or doubled, at 02:30
 * local (03:30 on a spring day in the gap).
 */
static void
walk_daily(enum zone z, int64_t change_day_noon, int gap_day)
{
	struct sched_spec	sp;
	struct tm		tm;
	int64_t			t, prev;
	long			day, change_day, first;
	int			i, bad = 0;

	if (parse("30 2 * * *", zone_names[z], &sp) != 0) {
		tap_fail(__FILE__, __LINE__, zone_names[z]);
		return;
	}
	change_day = local_daynum(z, change_day_noon);
	t = change_day_noon - 30 * 86400;
	first = local_daynum(z, t) + 1;
	for (i = 0; i < 60 && bad < 5; i++) {
		prev = t;
		t = sched_next(&sp, t);
		if (t <= prev) {
			tap_diag("%s: run %d at %jd is not after %jd",
			    zone_names[z], i, (intmax_t)t, (intmax_t)prev);
			tap_case_failed = 1;
			break;
		}
		day = local_daynum(z, t);
		local_2026(z, t, &tm);
		if (day != first + i) {
			tap_diag("%s: run %d on %04d-%02d-%02d, expected local "
			    "day %+ld from the first", zone_names[z], i,
			    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			    (long)i);
			tap_case_failed = 1;
			bad++;
		}
		if (tm.tm_min != 30 || tm.tm_hour !=
		    (gap_day && day == change_day ? 3 : 2)) {
			tap_diag("%s: run %d at %04d-%02d-%02d %02d:%02d local",
			    zone_names[z], i, tm.tm_year + 1900, tm.tm_mon + 1,
			    tm.tm_mday, tm.tm_hour, tm.tm_min);
			tap_case_failed = 1;
			bad++;
		}
	}
	/* the walk really crossed the change */
	CHECK(local_daynum(z, t) > change_day);
	sched_free(&sp);
}

static void
test_dst_60_day_walks(void)
{
	walk_daily(BERLIN, utc(2026, 3, 29, 12, 0), 1);
	walk_daily(BERLIN, utc(2026, 10, 25, 12, 0), 0);
	walk_daily(NEW_YORK, utc(2026, 3, 8, 12, 0), 1);
	walk_daily(NEW_YORK, utc(2026, 11, 1, 12, 0), 0);
	check_process_tz();
}

/* A zone far from the process zone, and the process zone left as it was. */
static void
test_zone_isolation(void)
{
	struct sched_spec	a, b, l;

	PARSE_OK("0 9 * * *", "UTC", &a);
	PARSE_OK("0 9 * * *", "America/New_York", &b);
	CHECK_TIME(sched_next(&a, utc(2026, 1, 10, 0, 0)),
	    utc(2026, 1, 10, 9, 0));
	CHECK_TIME(sched_next(&b, utc(2026, 1, 10, 0, 0)),
	    utc(2026, 1, 10, 14, 0));
	CHECK_TIME(sched_next(&b, utc(2026, 7, 10, 0, 0)),
	    utc(2026, 7, 10, 13, 0));
	check_process_tz();
	/* a spec without a zone follows the process zone (Chatham +13:45) */
	PARSE_OK("0 9 * * *", NULL, &l);
	CHECK_TIME(sched_next(&l, utc(2026, 1, 10, 0, 0)),
	    utc(2026, 1, 10, 19, 15));
	check_process_tz();
	sched_free(&a);
	sched_free(&b);
	sched_free(&l);
}

/* --- period --------------------------------------------------------------------- */

static void
test_period(void)
{
	struct sched_spec	sp;

	/* weekdays: the weekend gap, Friday 03:00 -> Monday 03:00 */
	PARSE_OK("0 3 * * 1-5", "UTC", &sp);
	CHECK_INT(sched_period(&sp), 3 * 86400);
	sched_free(&sp);

	PARSE_OK("every 6h", "UTC", &sp);
	CHECK_INT(sched_period(&sp), 6 * 3600);
	sched_free(&sp);

	PARSE_OK("0 3 * * *", "UTC", &sp);
	CHECK_INT(sched_period(&sp), 86400);
	sched_free(&sp);

	PARSE_OK("*/15 * * * *", "UTC", &sp);
	CHECK_INT(sched_period(&sp), 900);
	sched_free(&sp);

	PARSE_OK("@weekly", "UTC", &sp);
	CHECK_INT(sched_period(&sp), 7 * 86400);
	sched_free(&sp);
	check_process_tz();
}

/* --- zones without the process's TZ ------------------------------------------ */

/*
 * The computation as it was before schedules read TZif files themselves:
 * TZ switched for each call and the C library asked. It is the reference
 * the zone table is checked against; only this test process's TZ moves.
 */
static void
ref_tz_set(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static int
ref_day_matches(const struct sched_spec *sp, const struct tm *tm)
{
	int	dom = (sp->mdays >> tm->tm_mday) & 1;
	int	dow = (sp->wdays >> tm->tm_wday) & 1;

	if (!((sp->months >> (tm->tm_mon + 1)) & 1))
		return (0);
	if (!sp->mday_star && !sp->wday_star)
		return (dom || dow);
	return (dom && dow);
}

static int
ref_same_wall(const struct tm *a, const struct tm *b)
{
	return (a->tm_year == b->tm_year && a->tm_mon == b->tm_mon &&
	    a->tm_mday == b->tm_mday && a->tm_hour == b->tm_hour &&
	    a->tm_min == b->tm_min);
}

static int
ref_wall_instants(const struct tm *w, time_t t[2])
{
	struct tm	copy = *w, lt;
	time_t		g, cand[2], x;
	long		off[2];
	int		n = 0, i;

	copy.tm_sec = 0;
	copy.tm_isdst = 0;
	g = timegm(&copy);
	localtime_r(&(time_t){ g - 86400 }, &lt);
	off[0] = lt.tm_gmtoff;
	localtime_r(&(time_t){ g + 86400 }, &lt);
	off[1] = lt.tm_gmtoff;
	cand[0] = g - off[0];
	cand[1] = g - off[1];
	if (cand[1] < cand[0]) {
		x = cand[0];
		cand[0] = cand[1];
		cand[1] = x;
	}
	for (i = 0; i < 2; i++) {
		if (i == 1 && cand[1] == cand[0])
			break;
		localtime_r(&cand[i], &lt);
		if (ref_same_wall(&lt, w))
			t[n++] = cand[i];
	}
	if (n == 0)
		t[n++] = g - off[0];
	return (n);
}

/* The old sched_next(), in the zone ref_tz_set() chose. */
static int64_t
ref_next(const struct sched_spec *sp, int64_t after)
{
	struct tm	start, day;
	time_t		a = (time_t)after, t[2], base;
	int64_t		found = -1;
	int		d, h, m, n, i;

	localtime_r(&a, &start);
	for (d = -1; d < 9 * 366 && found < 0; d++) {
		memset(&day, 0, sizeof day);
		day.tm_year = start.tm_year;
		day.tm_mon = start.tm_mon;
		day.tm_mday = start.tm_mday + d;
		day.tm_hour = 12;
		base = timegm(&day);
		gmtime_r(&base, &day);
		if (!ref_day_matches(sp, &day))
			continue;
		for (h = 0; h < 24 && found < 0; h++) {
			if (!((sp->hours >> h) & 1))
				continue;
			for (m = 0; m < 60; m++) {
				if (!((sp->minutes >> m) & 1))
					continue;
				day.tm_hour = h;
				day.tm_min = m;
				n = ref_wall_instants(&day, t);
				if (!sp->hour_star)
					n = 1;
				for (i = 0; i < n; i++)
					if (t[i] > a && (found < 0 ||
					    (int64_t)t[i] < found))
						found = (int64_t)t[i];
			}
		}
	}
	return (found);
}

static long
ref_gmtoff(int64_t t)
{
	struct tm	lt;
	time_t		tt = (time_t)t;

	localtime_r(&tt, &lt);
	return (lt.tm_gmtoff);
}

/*
 * Europe/Berlin, America/New_York, Australia/Lord_Howe (DST of 30
 * minutes), Asia/Kathmandu (+5:45 since 1986), UTC and Pacific/Apia
 * (no 30 December 2011): every offset change from 1980 to 2045 (after
 * 2037 the files' POSIX rule decides), and for each, runs of a few
 * schedules walked from a day before it and started just around it, the
 * same as the old computation. The zone offsets themselves too.
 */
static void
test_zone_table_matches_libc(void)
{
	static const char *const zones[] = { "Europe/Berlin",
	    "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
	    "UTC", "Pacific/Apia" };
	static const char *const exprs[] = { "30 2 * * *", "0 * * * *",
	    "*/15 * * * *", "0,30 1-3 * * *", "45 0 * * *", "0 12 * * *",
	    "15 3 * * 0", "59 23 * * *", "0 0 29-31 12 *" };
	static const int	probes[] = { -3601, -1801, -1, 0, 1, 1799, 3600 };
	struct sched_spec	sp[sizeof exprs / sizeof exprs[0]];
	int64_t			t, lo, hi, mid, a, b, changes[400];
	size_t			z, e, nchg, c, k;
	int			bad = 0, compared = 0;
	char			b1[40], b2[40];

	for (z = 0; z < sizeof zones / sizeof zones[0] && bad < 10; z++) {
		for (e = 0; e < sizeof exprs / sizeof exprs[0]; e++)
			if (parse(exprs[e], zones[z], &sp[e]) != 0)
				return;
		ref_tz_set(zones[z]);
		/* the offset changes, found every 6 hours and narrowed */
		nchg = 0;
		for (t = utc(1980, 1, 1, 0, 0); t < utc(2045, 1, 1, 0, 0) &&
		    nchg < 398; t += 6 * 3600) {
			if (ref_gmtoff(t) == ref_gmtoff(t + 6 * 3600))
				continue;
			for (lo = t, hi = t + 6 * 3600; hi - lo > 1;) {
				mid = lo + (hi - lo) / 2;
				if (ref_gmtoff(mid) == ref_gmtoff(lo))
					lo = mid;
				else
					hi = mid;
			}
			changes[nchg++] = hi;
		}
		/* zones without changes: a few ordinary days */
		changes[nchg++] = utc(2026, 1, 15, 0, 0);
		changes[nchg++] = utc(2040, 7, 15, 0, 0);
		for (c = 0; c < nchg && bad < 10; c++) {
			if (ref_gmtoff(changes[c]) != sched_zone_offset(
			    sp[0].zone, changes[c]) || ref_gmtoff(changes[c] -
			    1) != sched_zone_offset(sp[0].zone, changes[c] -
			    1)) {
				tap_diag("%s: offset at %s is %ld, expected "
				    "%ld", zones[z], fmt_utc(changes[c], b1,
				    sizeof b1), (long)sched_zone_offset(
				    sp[0].zone, changes[c]),
				    ref_gmtoff(changes[c]));
				tap_case_failed = 1;
				bad++;
			}
			for (e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
				/* a walk from a day before */
				t = changes[c] - 30 * 3600;
				for (k = 0; k < 12 + 20 * (e == 2) && bad < 10;
				    k++) {
					a = ref_next(&sp[e], t);
					b = sched_next(&sp[e], t);
					compared++;
					if (a != b) {
						tap_diag("'%s' in %s after %s: "
						    "%s, expected %s",
						    exprs[e], zones[z],
						    fmt_utc(t, b1, sizeof b1),
						    fmt_utc(b, b2, sizeof b2),
						    fmt_utc(a, b1, sizeof b1));
						tap_case_failed = 1;
						bad++;
					}
					if (a < 0)
						break;
					t = a;
				}
				for (k = 0; k < sizeof probes / sizeof
				    probes[0] && bad < 10; k++) {
					t = changes[c] + probes[k];
					a = ref_next(&sp[e], t);
					b = sched_next(&sp[e], t);
					compared++;
					if (a != b) {
						tap_diag("'%s' in %s after %s: "
						    "%s, expected %s",
						    exprs[e], zones[z],
						    fmt_utc(t, b1, sizeof b1),
						    fmt_utc(b, b2, sizeof b2),
						    fmt_utc(a, b1, sizeof b1));
						tap_case_failed = 1;
						bad++;
					}
				}
			}
		}
		for (e = 0; e < sizeof exprs / sizeof exprs[0]; e++)
			sched_free(&sp[e]);
	}
	ref_tz_set(PROCESS_TZ);
	CHECK(compared > 10000);
}

/* Pacific/Apia went from Thursday 29 to Saturday 31 December 2011. */
static void
test_zone_apia_skipped_day(void)
{
	struct sched_spec	sp;

	PARSE_OK("0 12 * * *", "Pacific/Apia", &sp);
	/* noon on the 29th was UTC-10 (DST), on the 31st UTC+14 */
	CHECK_TIME(sched_next(&sp, utc(2011, 12, 29, 12, 0)),
	    utc(2011, 12, 29, 22, 0));
	CHECK_TIME(sched_next(&sp, utc(2011, 12, 29, 22, 0)),
	    utc(2011, 12, 30, 22, 0));
	sched_free(&sp);
	/* a run on the missing day comes after the jump, like 02:30 in March */
	PARSE_OK("0 12 30 12 *", "Pacific/Apia", &sp);
	CHECK_TIME(sched_next(&sp, utc(2011, 12, 1, 0, 0)),
	    utc(2011, 12, 30, 22, 0));
	CHECK_TIME(sched_next(&sp, utc(2011, 12, 30, 22, 0)),
	    utc(2012, 12, 29, 22, 0));
	sched_free(&sp);
}

/*
 * Schedule computations leave the process's zone alone: the TZ variable
 * is the very same string (setenv() would have replaced it), and the
 * C library's timezone, daylight and tzname are what tzset() made of it.
 */
static void
test_zone_process_state_untouched(void)
{
	static const char *const zones[] = { "Europe/Berlin",
	    "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
	    "UTC", "Pacific/Apia" };
	struct sched_spec	sp;
	const char		*tz_before;
	char			n0[32], n1[32];
	long			tzone;
	int			dl;
	size_t			z;

	ref_tz_set(PROCESS_TZ);
	tz_before = getenv("TZ");
	tzone = timezone;
	dl = daylight;
	snprintf(n0, sizeof n0, "%s", tzname[0]);
	snprintf(n1, sizeof n1, "%s", tzname[1]);
	for (z = 0; z < sizeof zones / sizeof zones[0]; z++) {
		PARSE_OK("30 2 * * *", zones[z], &sp);
		CHECK(sched_next(&sp, utc(2026, 3, 1, 0, 0)) > 0);
		CHECK(sched_period(&sp) > 0);
		sched_free(&sp);
	}
	CHECK(getenv("TZ") == tz_before);
	CHECK_STR(getenv("TZ"), PROCESS_TZ);
	CHECK_INT(timezone, tzone);
	CHECK_INT(timezone, -(12 * 3600 + 45 * 60));	/* Chatham */
	CHECK_INT(daylight, dl);
	CHECK_STR(tzname[0], n0);
	CHECK_STR(tzname[1], n1);
}

/* --- TZif files from outside ----------------------------------------------- */

static size_t
read_all(const char *path, unsigned char *buf, size_t max)
{
	FILE	*f = fopen(path, "rb");
	size_t	 n;

	if (f == NULL)
		return (0);
	n = fread(buf, 1, max, f);
	fclose(f);
	return (n);
}

static void
test_tzif_hostile(void)
{
	static unsigned char	buf[65536], bad[65536];
	struct sched_zone	*z;
	char			 err[256];
	size_t			 n, cut;

	n = read_all("/usr/share/zoneinfo/Europe/Berlin", buf, sizeof buf);
	CHECK(n > 44);
	z = sched_zone_parse(buf, n, err, sizeof err);
	CHECK(z != NULL);
	if (z != NULL) {
		CHECK_INT(sched_zone_offset(z, utc(2026, 1, 1, 0, 0)), 3600);
		CHECK_INT(sched_zone_offset(z, utc(2026, 7, 1, 0, 0)), 7200);
		/* past 2037: the footer's rule */
		CHECK_INT(sched_zone_offset(z, utc(2100, 7, 1, 0, 0)), 7200);
		CHECK_INT(sched_zone_offset(z, INT64_MAX), 3600);
		CHECK_INT(sched_zone_offset(z, INT64_MIN),
		    sched_zone_offset(z, utc(1800, 1, 1, 0, 0)));
		sched_zone_free(z);
	}
	/* every truncation fails cleanly or parses (a v1 prefix) */
	for (cut = 0; cut < n; cut++) {
		z = sched_zone_parse(buf, cut, err, sizeof err);
		if (z == NULL)
			CHECK(err[0] != '\0');
		sched_zone_free(z);
	}
	z = sched_zone_parse("TZif", 4, err, sizeof err);
	CHECK(z == NULL);
	CHECK_CONTAINS(err, "TZif");
	memcpy(bad, buf, n);
	bad[0] = 'X';
	CHECK(sched_zone_parse(bad, n, err, sizeof err) == NULL);
	/* a footer that is not a TZ rule */
	memcpy(bad, buf, n);
	memcpy(bad + n - 5, "X,Y\n", 4);
	CHECK(sched_zone_parse(bad, n - 1, err, sizeof err) == NULL);
	/* huge counts */
	memcpy(bad, buf, n);
	memset(bad + 32, 0xff, 4);
	CHECK(sched_zone_parse(bad, n, err, sizeof err) == NULL);

	/* names that are not zones, and what is not a zone file */
	CHECK(!sched_tz_valid("../etc/passwd"));
	CHECK(!sched_tz_valid("Europe/../../etc/passwd"));
	CHECK(!sched_tz_valid("/etc/localtime"));
	CHECK(!sched_tz_valid("zone.tab"));
	CHECK(!sched_tz_valid("Europe/Berlin "));
	parse_fails("0 3 * * *", "zone.tab", "unknown time zone", NULL);
}

int
main(void)
{
	setenv("TZ", PROCESS_TZ, 1);
	tzset();

	RUN(test_parse_lists_and_ranges);
	RUN(test_parse_steps);
	RUN(test_parse_names);
	RUN(test_parse_sunday_is_0_and_7);
	RUN(test_parse_macros);
	RUN(test_parse_every);
	RUN(test_parse_errors);
	RUN(test_parse_zones);
	RUN(test_parse_zone_directory);
	RUN(test_next_strictly_after);
	RUN(test_next_month_ends);
	RUN(test_next_leap_day);
	RUN(test_next_mday_wday_or);
	RUN(test_dst_spring_daily);
	RUN(test_dst_fall_daily);
	RUN(test_dst_hourly);
	RUN(test_dst_half_hourly_fall);
	RUN(test_dst_60_day_walks);
	RUN(test_zone_isolation);
	RUN(test_period);
	RUN(test_zone_process_state_untouched);
	RUN(test_zone_table_matches_libc);
	RUN(test_zone_apia_skipped_day);
	RUN(test_tzif_hostile);
	return (tap_done());
}
