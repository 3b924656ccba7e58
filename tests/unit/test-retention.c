/*
 * Backup retention and check expectations (the pure functions in
 * daemon/backup/backup.c): backup_retention() over a simulated year of daily
 * backups, and util_expect_match() / util_expect_valid().
 *
 * The clock is fixed: the backups are 365 start times at 03:00 UTC from
 * 2026-01-01. What must survive is worked out here a second way: calendar
 * dates from the day number (no gmtime, no strftime), ISO weeks from the
 * Thursday of each week, and "the newest backup of each of the last N
 * distinct days / ISO weeks / months that have backups" by keeping a list
 * of the periods seen; for the default policy the surviving dates are also
 * written out by hand.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "util.h"
#include "tap.h"

#define DAY	86400
#define MAXN	2048

/* --- dates without the C library ------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t
days_from_civil(int y, int m, int d)
{
	int64_t		era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + doe - 719468);
}

static void
civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t		era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int64_t
ts_at(int y, int m, int d, int h)
{
	return (days_from_civil(y, m, d) * DAY + (int64_t)h * 3600);
}

static int64_t
daynum(int64_t t)
{
	return (t >= 0 ? t / DAY : (t - DAY + 1) / DAY);
}

static int64_t
key_day(int64_t t)
{
	return (daynum(t));
}

static int64_t
key_month(int64_t t)
{
	int	y, m, d;

	civil_from_days(daynum(t), &y, &m, &d);
	return ((int64_t)y * 12 + m);
}

/* ISO 8601: a week is Monday..Sunday, and belongs to its Thursday's year. */
static int64_t
key_isoweek(int64_t t)
{
	int64_t	dn = daynum(t), wd, thu;
	int	y, m, d;

	wd = ((dn + 3) % 7 + 7) % 7;	/* 1970-01-01 was a Thursday; Mon=0 */
	thu = dn - wd + 3;
	civil_from_days(thu, &y, &m, &d);
	return ((int64_t)y * 100 + (thu - days_from_civil(y, 1, 1)) / 7 + 1);
}

static const char *
datestr(int64_t t)
{
	static char	buf[8][32];
	static int	k;
	int		y, m, d;
	char		*b = buf[k++ % 8];

	civil_from_days(daynum(t), &y, &m, &d);
	snprintf(b, 32, "%04d-%02d-%02d %02d:%02d", y, m, d,
	    (int)((t - daynum(t) * DAY) / 3600),
	    (int)((t - daynum(t) * DAY) % 3600 / 60));
	return (b);
}

/* --- the expected set, worked out independently ------------------------------ */

/* order[]: indices by start time, newest first (insertion sort). */
static void
newest_first(const int64_t *ts, unsigned int n, unsigned int *order)
{
	unsigned int	i, j, x;

	for (i = 0; i < n; i++) {
		x = i;
		for (j = i; j > 0 && ts[order[j - 1]] < ts[x]; j--)
			order[j] = order[j - 1];
		order[j] = x;
	}
}

/* Keeps the newest backup of each of the last `count` periods seen. */
static void
model_periods(const int64_t *ts, const unsigned int *order, unsigned int n,
    uint64_t count, int64_t (*key)(int64_t), int *keep)
{
	static int64_t	seen[MAXN];
	unsigned int	i, j, nseen = 0;
	int64_t		k;

	for (i = 0; i < n && nseen < count; i++) {
		k = key(ts[order[i]]);
		for (j = 0; j < nseen && seen[j] != k; j++)
			;
		if (j < nseen)
			continue;	/* an older backup of a period we have */
		seen[nseen++] = k;
		keep[order[i]] = 1;
	}
}

static void
model(const struct retention *r, const int64_t *ts, const int *verified,
    unsigned int n, int *keep)
{
	static unsigned int	order[MAXN];
	unsigned int		i;

	memset(keep, 0, n * sizeof *keep);
	newest_first(ts, n, order);
	for (i = 0; i < n && i < r->keep_last; i++)
		keep[order[i]] = 1;
	model_periods(ts, order, n, r->keep_daily, key_day, keep);
	model_periods(ts, order, n, r->keep_weekly, key_isoweek, keep);
	model_periods(ts, order, n, r->keep_monthly, key_month, keep);
	for (i = 0; i < n; i++) {
		if (verified[order[i]]) {
			keep[order[i]] = 1;
			break;
		}
	}
}

/* Diagnoses every difference between what survived and what should. */
static void
check_keep(const char *what, const int64_t *ts, const int *got,
    const int *want, unsigned int n)
{
	unsigned int	i, bad = 0, ngot = 0, nwant = 0;

	for (i = 0; i < n; i++) {
		ngot += got[i] != 0;
		nwant += want[i] != 0;
		if ((got[i] != 0) == (want[i] != 0))
			continue;
		if (bad++ < 20)
			tap_diag("%s: backup of %s %s", what, datestr(ts[i]),
			    got[i] ? "kept, should go" : "deleted, should stay");
		tap_case_failed = 1;
	}
	if (bad > 0)
		tap_diag("%s: %u kept, expected %u (%u differences)", what,
		    ngot, nwant, bad);
}

/* 365 daily backups at 03:00 UTC from 2026-01-01. */
static unsigned int
year_of_backups(int64_t *ts, int *verified, int all_verified)
{
	unsigned int	i;

	for (i = 0; i < 365; i++) {
		ts[i] = ts_at(2026, 1, 1, 3) + (int64_t)i * DAY;
		verified[i] = all_verified;
	}
	return (365);
}

/* Index in the year of 2026-MM-DD. */
static unsigned int
idx(int m, int d)
{
	return ((unsigned int)(days_from_civil(2026, m, d) -
	    days_from_civil(2026, 1, 1)));
}

/* --- the model itself --------------------------------------------------------- */

/* The date arithmetic of the model against known dates. */
static void
test_model_dates(void)
{
	int	y, m, d;

	CHECK_INT(days_from_civil(1970, 1, 1), 0);
	CHECK_INT(days_from_civil(2026, 1, 1), 20454);
	civil_from_days(days_from_civil(2028, 2, 29), &y, &m, &d);
	CHECK_INT(y * 10000 + m * 100 + d, 20280229);
	/* 2026 starts on a Thursday, so it has 53 ISO weeks */
	CHECK_INT(key_isoweek(ts_at(2026, 1, 1, 3)), 202601);
	CHECK_INT(key_isoweek(ts_at(2025, 12, 29, 3)), 202601);
	CHECK_INT(key_isoweek(ts_at(2025, 12, 28, 3)), 202552);
	CHECK_INT(key_isoweek(ts_at(2026, 12, 27, 3)), 202652);
	CHECK_INT(key_isoweek(ts_at(2026, 12, 28, 3)), 202653);
	CHECK_INT(key_isoweek(ts_at(2027, 1, 3, 3)), 202653);
	CHECK_INT(key_isoweek(ts_at(2027, 1, 4, 3)), 202701);
	CHECK_INT(key_month(ts_at(2026, 12, 31, 23)), 2026 * 12 + 12);
	CHECK_INT(key_day(ts_at(2026, 3, 1, 0)) - key_day(ts_at(2026, 2, 28,
	    23)), 1);
}

/* --- retention ------------------------------------------------------------------- */

static void
test_default_policy_year(void)
{
	static int64_t		ts[365];
	static int		ver[365], keep[365], want[365], hand[365];
	static const int	dates[][2] = {
		/* daily: the last 7 days */
		{ 12, 25 }, { 12, 26 }, { 12, 27 }, { 12, 28 }, { 12, 29 },
		{ 12, 30 }, { 12, 31 },
		/* weekly: 2026-W53 (Dec 31, a Thursday) and W52 are in the
		 * days already; W51 ends Sunday Dec 20, W50 Sunday Dec 13 */
		{ 12, 20 }, { 12, 13 },
		/* monthly: Dec is in; Nov..Jul on their last days */
		{ 11, 30 }, { 10, 31 }, { 9, 30 }, { 8, 31 }, { 7, 31 },
	};
	struct retention	r = { 0, 7, 4, 6 };
	unsigned int		n, i;

	n = year_of_backups(ts, ver, 1);
	backup_retention(&r, ts, ver, n, keep);
	model(&r, ts, ver, n, want);
	check_keep("default, model", ts, keep, want, n);

	memset(hand, 0, sizeof hand);
	for (i = 0; i < sizeof dates / sizeof dates[0]; i++)
		hand[idx(dates[i][0], dates[i][1])] = 1;
	check_keep("default, by hand", ts, keep, hand, n);
	/* and the model agrees with the hand */
	check_keep("model vs hand", ts, want, hand, n);
}

static void
test_keep_last_only(void)
{
	static int64_t		ts[365];
	static int		ver[365], keep[365], want[365];
	struct retention	r = { 10, 0, 0, 0 };
	unsigned int		n, i, kept = 0;

	n = year_of_backups(ts, ver, 1);
	backup_retention(&r, ts, ver, n, keep);
	model(&r, ts, ver, n, want);
	check_keep("keep_last=10", ts, keep, want, n);
	for (i = 0; i < n; i++) {
		kept += keep[i] != 0;
		if (keep[i])
			CHECK(i >= idx(12, 22));
	}
	CHECK_UINT(kept, 10);

	/* more than there are: everything stays */
	r.keep_last = 1000;
	backup_retention(&r, ts, ver, n, keep);
	for (i = 0, kept = 0; i < n; i++)
		kept += keep[i] != 0;
	CHECK_UINT(kept, n);
}

static void
test_all_zero(void)
{
	static int64_t		ts[365];
	static int		ver[365], keep[365], want[365];
	struct retention	r = { 0, 0, 0, 0 };
	unsigned int		n, i, kept;

	/* all verified: only the newest */
	n = year_of_backups(ts, ver, 1);
	backup_retention(&r, ts, ver, n, keep);
	model(&r, ts, ver, n, want);
	check_keep("all zero, all verified", ts, keep, want, n);
	for (i = 0, kept = 0; i < n; i++)
		kept += keep[i] != 0;
	CHECK_UINT(kept, 1);
	CHECK(keep[idx(12, 31)]);

	/* the last eleven unverified: the newest verified is Dec 20 */
	for (i = idx(12, 21); i < n; i++)
		ver[i] = 0;
	backup_retention(&r, ts, ver, n, keep);
	for (i = 0, kept = 0; i < n; i++)
		kept += keep[i] != 0;
	CHECK_UINT(kept, 1);
	CHECK(keep[idx(12, 20)]);

	/* none verified: nothing is held back */
	for (i = 0; i < n; i++)
		ver[i] = 0;
	backup_retention(&r, ts, ver, n, keep);
	for (i = 0, kept = 0; i < n; i++)
		kept += keep[i] != 0;
	CHECK_UINT(kept, 0);
}

/* The newest backup known to restore stays, however old. */
static void
test_newest_verified_kept(void)
{
	static int64_t		ts[365];
	static int		ver[365], keep[365], want[365];
	struct retention	r = { 0, 7, 4, 6 };
	unsigned int		n, i;

	n = year_of_backups(ts, ver, 0);
	/* verification stopped working after March 15 */
	for (i = 0; i <= idx(3, 15); i++)
		ver[i] = 1;
	backup_retention(&r, ts, ver, n, keep);
	model(&r, ts, ver, n, want);
	check_keep("old verified", ts, keep, want, n);
	CHECK(keep[idx(3, 15)]);
	CHECK(!keep[idx(3, 14)]);
	CHECK(!keep[idx(3, 31)]);	/* March is past the 6 months */

	/* only the very first backup verified */
	memset(ver, 0, sizeof ver);
	ver[0] = 1;
	backup_retention(&r, ts, ver, n, keep);
	model(&r, ts, ver, n, want);
	check_keep("first verified", ts, keep, want, n);
	CHECK(keep[0]);
}

/* A fixed shuffle: the result is the same set whatever the order. */
static void
test_unsorted_input(void)
{
	static int64_t		ts[365], sts[365];
	static int		ver[365], sver[365], keep[365], skeep[365];
	static int		want[365];
	static unsigned int	perm[365];
	struct retention	r = { 3, 7, 4, 6 };
	unsigned int		n, i, j, x;
	uint32_t		seed = 12345;

	n = year_of_backups(ts, ver, 0);
	for (i = 0; i < n; i++) {
		ver[i] = i % 3 == 0 && i < 200;
		perm[i] = i;
	}
	for (i = n - 1; i > 0; i--) {		/* Fisher-Yates, an LCG */
		seed = seed * 1103515245u + 12345u;
		j = (seed >> 8) % (i + 1);
		x = perm[i];
		perm[i] = perm[j];
		perm[j] = x;
	}
	for (i = 0; i < n; i++) {
		sts[i] = ts[perm[i]];
		sver[i] = ver[perm[i]];
	}
	backup_retention(&r, ts, ver, n, keep);
	backup_retention(&r, sts, sver, n, skeep);
	for (i = 0; i < n; i++) {
		if (skeep[i] != keep[perm[i]]) {
			tap_diag("shuffled: %s %d, sorted %d", datestr(sts[i]),
			    skeep[i], keep[perm[i]]);
			tap_case_failed = 1;
		}
	}
	model(&r, sts, sver, n, want);
	check_keep("shuffled, model", sts, skeep, want, n);

	/* oldest first */
	for (i = 0; i < n; i++) {
		sts[i] = ts[n - 1 - i];
		sver[i] = ver[n - 1 - i];
	}
	backup_retention(&r, sts, sver, n, skeep);
	for (i = 0; i < n; i++)
		CHECK_INT(skeep[i], keep[n - 1 - i]);
}

/* Several backups a day: the newest of each day counts for the day. */
static void
test_several_a_day(void)
{
	static int64_t		ts[120];
	static int		ver[120], keep[120], want[120];
	struct retention	r = { 0, 7, 0, 0 };
	unsigned int		n = 0, d, h, i, kept = 0;

	for (d = 0; d < 30; d++)
		for (h = 3; h < 24; h += 6)		/* 03 09 15 21 */
			ts[n++] = ts_at(2026, 4, 1, (int)h) + (int64_t)d * DAY;
	memset(ver, 0, sizeof ver);
	backup_retention(&r, ts, ver, n, keep);
	model(&r, ts, ver, n, want);
	check_keep("4 a day", ts, keep, want, n);
	for (i = 0; i < n; i++) {
		if (!keep[i])
			continue;
		kept++;
		CHECK_INT((ts[i] % DAY) / 3600, 21);
		CHECK(ts[i] >= ts_at(2026, 4, 24, 0));
	}
	CHECK_UINT(kept, 7);
}

/* "The last N days" are days that have backups, not calendar days. */
static void
test_gaps(void)
{
	static int64_t		ts[60];
	static int		ver[60], keep[60], want[60];
	struct retention	r = { 0, 7, 2, 2 };
	unsigned int		n = 0, d;

	/* every other day through May and June 2026 */
	for (d = 0; d < 61; d += 2)
		ts[n++] = ts_at(2026, 5, 1, 3) + (int64_t)d * DAY;
	memset(ver, 0, sizeof ver);
	backup_retention(&r, ts, ver, n, keep);
	model(&r, ts, ver, n, want);
	check_keep("every other day", ts, keep, want, n);
	/* June 30 back to June 18: seven backups over thirteen days, and
	 * May 31 for May; the weeks are in those already */
	CHECK_UINT(n, 31);
	for (d = 0; d < n; d++)
		CHECK_INT(keep[d], d >= n - 7 || d == 15);
}

/* Weeks across the new year: 2026-W53 runs into 2027. */
static void
test_iso_week_year_end(void)
{
	static int64_t		ts[40];
	static int		ver[40], keep[40], want[40];
	struct retention	r = { 0, 0, 3, 0 };
	unsigned int		n = 0, i, kept = 0;
	int64_t			t;

	for (t = ts_at(2026, 12, 14, 3); t <= ts_at(2027, 1, 10, 3); t += DAY)
		ts[n++] = t;
	memset(ver, 0, sizeof ver);
	backup_retention(&r, ts, ver, n, keep);
	model(&r, ts, ver, n, want);
	check_keep("ISO weeks at the year end", ts, keep, want, n);
	for (i = 0; i < n; i++) {
		if (!keep[i])
			continue;
		kept++;
		CHECK(ts[i] == ts_at(2027, 1, 10, 3) ||
		    ts[i] == ts_at(2027, 1, 3, 3) ||
		    ts[i] == ts_at(2026, 12, 27, 3));
	}
	CHECK_UINT(kept, 3);

	/* months at the year end */
	r.keep_weekly = 0;
	r.keep_monthly = 2;
	backup_retention(&r, ts, ver, n, keep);
	model(&r, ts, ver, n, want);
	check_keep("months at the year end", ts, keep, want, n);
	CHECK(keep[n - 1]);
	CHECK(keep[idx(12, 31) - idx(12, 14)]);
}

static void
test_empty_and_one(void)
{
	int64_t			ts[1] = { ts_at(2026, 1, 1, 3) };
	int			ver[1] = { 0 }, keep[1] = { 7 };
	struct retention	r = { 0, 7, 4, 6 };
	struct retention	z = { 0, 0, 0, 0 };

	backup_retention(&r, ts, ver, 0, keep);
	CHECK_INT(keep[0], 7);		/* n = 0 touches nothing */
	backup_retention(&r, ts, ver, 1, keep);
	CHECK_INT(keep[0], 1);
	backup_retention(&z, ts, ver, 1, keep);
	CHECK_INT(keep[0], 0);
	ver[0] = 1;
	backup_retention(&z, ts, ver, 1, keep);
	CHECK_INT(keep[0], 1);
}

/* --- expectations --------------------------------------------------------------- */

#define MATCH(e, v)	CHECK_INT(util_expect_match((e), (v)), 1)
#define NOMATCH(e, v)	CHECK_INT(util_expect_match((e), (v)), 0)

static void
test_expect_numeric(void)
{
	MATCH("> 0", "1");
	MATCH("> 0", "0.5");
	MATCH("> 0", "123456789");
	NOMATCH("> 0", "0");
	NOMATCH("> 0", "-1");

	MATCH(">= 10", "10");
	MATCH(">= 10", "10.0");
	MATCH(">= 10", "100");		/* numbers, not strings: "100" < "9" */
	NOMATCH(">= 10", "9");
	NOMATCH(">= 10", "9.99");

	MATCH("= 5", "5");
	MATCH("= 5", "5.0");
	MATCH("= 5", "05");
	NOMATCH("= 5", "6");
	NOMATCH("= 5", "50");
	MATCH("== 5", "5");

	MATCH("!= 0", "1");
	MATCH("!= 0", "-3");
	NOMATCH("!= 0", "0");
	NOMATCH("!= 0", "0.0");

	MATCH("< 3", "2");
	MATCH("< 3", "-5");
	NOMATCH("< 3", "3");
	NOMATCH("< 3", "10");		/* not "10" < "3" */

	MATCH("<= 3", "3");
	NOMATCH("<= 3", "3.5");

	/* spacing around the operator is free */
	MATCH(">=10", "10");
	MATCH("  >  0", "1");
	MATCH("= -1", "-1");
	MATCH("> 1e3", "1001");
}

static void
test_expect_any(void)
{
	MATCH("any", "0");
	MATCH("any", "anything");
	MATCH("any", "");
	NOMATCH("any", NULL);	/* no row, or SQL NULL */
}

static void
test_expect_null(void)
{
	NOMATCH("> 0", NULL);
	NOMATCH(">= 10", NULL);
	NOMATCH("= 5", NULL);
	NOMATCH("!= 0", NULL);
	NOMATCH("< 3", NULL);
	NOMATCH("<= 3", NULL);
}

/* Both sides text: compared as strings (ISO dates order correctly). */
static void
test_expect_text(void)
{
	MATCH("= ok", "ok");
	NOMATCH("= ok", "OK");
	NOMATCH("= ok", "okay");
	MATCH("!= ok", "bad");
	NOMATCH("!= ok", "ok");
	MATCH("= t", "t");		/* a PostgreSQL boolean */
	NOMATCH("= t", "f");
	MATCH(">= 2026-01-01", "2026-03-01");
	NOMATCH(">= 2026-01-01", "2025-12-31");
	MATCH("< 2026-01-01", "2025-12-31 23:59:59+00");
	NOMATCH("= 5", "five");
	NOMATCH("= 5", "");
	NOMATCH("= ok", "5");
}

/*
 * A number on one side only, or NaN: an ordering against a number holds
 * only for a number. Otherwise a check such as "SELECT max(id) FROM t"
 * with "> 0" passes on text ("abc" > "0" as strings) and a restored
 * database that returns NaN passes "= 5", ">= 10" and "<= 3" at once.
 */
static void
test_expect_not_a_number(void)
{
	NOMATCH("> 0", "abc");
	NOMATCH(">= 10", "abc");
	NOMATCH("< 3", "");
	NOMATCH("<= 3", "");
	NOMATCH("= 5", "NaN");
	NOMATCH(">= 10", "NaN");
	NOMATCH("<= 3", "NaN");
	NOMATCH("> 0", "nan");
	MATCH("!= 0", "NaN");
}

static void
test_expect_valid(void)
{
	static const char *const good[] = {
		"> 0", ">= 10", "= 5", "== 5", "!= 0", "< 3", "<= 3", "any",
		">0", "  any", "= ok", "= 2026-01-01",
	};
	static const char *const bad[] = {
		"", "   ", ">", ">= ", "!=", "~ 5", "5", "anything", "ANY",
		"! 5", "is null",
	};
	size_t	i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (!util_expect_valid(good[i]))
			tap_diag("'%s' rejected", good[i]);
		CHECK(util_expect_valid(good[i]));
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (util_expect_valid(bad[i]))
			tap_diag("'%s' accepted", bad[i]);
		CHECK(!util_expect_valid(bad[i]));
		/* and an invalid expectation never matches */
		NOMATCH(bad[i], "5");
	}
}

int
main(void)
{
	RUN(test_model_dates);
	RUN(test_default_policy_year);
	RUN(test_keep_last_only);
	RUN(test_all_zero);
	RUN(test_newest_verified_kept);
	RUN(test_unsorted_input);
	RUN(test_several_a_day);
	RUN(test_gaps);
	RUN(test_iso_week_year_end);
	RUN(test_empty_and_one);
	RUN(test_expect_numeric);
	RUN(test_expect_any);
	RUN(test_expect_null);
	RUN(test_expect_text);
	RUN(test_expect_not_a_number);
	RUN(test_expect_valid);
	return (tap_done());
}
