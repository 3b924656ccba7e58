/*
 * Cron expressions and the next-fire computation. Candidate wall-clock
 * times are walked day by day in the schedule's zone; each is turned into
 * the real instant(s) it names, which is where DST gaps and repeats are
 * decided (see sched.h).
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "opsd-parse.h"
#include "schedule.h"
#include "util.h"

#define SEARCH_DAYS	(9 * 366)

struct field {
	const char	*name;
	int		 lo;
	int		 hi;
	const char	*const *names;	/* index + names_base = value */
	int		 names_base;
};

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
	"nov", "dec", NULL
};
static const char *const wday_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

static const struct field fields[5] = {
	{ "minute", 0, 59, NULL, 0 },
	{ "hour", 0, 23, NULL, 0 },
	{ "day of month", 1, 31, NULL, 0 },
	{ "month", 1, 12, month_names, 1 },
	{ "day of week", 0, 7, wday_names, 0 },
};

static int
field_value(const struct field *f, const char **sp, int *v)
{
	const char	*s = *sp;
	int		 i, n = 0;

	if (f->names != NULL && isalpha((unsigned char)*s)) {
		for (i = 0; f->names[i] != NULL; i++) {
			if (strncasecmp(s, f->names[i], 3) == 0 &&
			    !isalpha((unsigned char)s[3])) {
				*v = i + f->names_base;
				*sp = s + 3;
				return (0);
			}
		}
		return (-EINVAL);
	}
	if (!isdigit((unsigned char)*s))
		return (-EINVAL);
	while (isdigit((unsigned char)*s)) {
		n = n * 10 + (*s++ - '0');
		if (n > 1000)
			return (-EINVAL);
	}
	if (n < f->lo || n > f->hi)
		return (-ERANGE);
	*v = n;
	*sp = s;
	return (0);
}

/* Parses one field into a 64-bit set. */
static int
field_parse(const struct field *f, const char *s, uint64_t *set, int *star,
    char *err, size_t errlen)
{
	int	lo, hi, step, v, r;

	*set = 0;
	*star = strcmp(s, "*") == 0;
	for (;;) {
		step = 1;
		if (*s == '*') {
			lo = f->lo;
			hi = f->hi;
			s++;
		} else {
			if ((r = field_value(f, &s, &lo)) != 0)
				goto bad;
			hi = lo;
			if (*s == '-') {
				s++;
				if ((r = field_value(f, &s, &hi)) != 0)
					goto bad;
				if (hi < lo) {
					snprintf(err, errlen, "%s: range %d-%d "
					    "goes backwards", f->name, lo, hi);
					return (-EINVAL);
				}
			}
		}
		if (*s == '/') {
			s++;
			if (!isdigit((unsigned char)*s))
				goto bad;
			for (step = 0; isdigit((unsigned char)*s); s++) {
				step = step * 10 + (*s - '0');
				if (step > 1000)
					goto bad;
			}
			if (step == 0)
				goto bad;
			if (hi == lo)	/* "5/15" means 5-max/15 */
				hi = f->hi;
		}
		for (v = lo; v <= hi; v += step)
			*set |= 1ULL << v;
		if (*s == '\0')
			return (0);
		if (*s != ',')
			goto bad;
		s++;
	}
bad:
	snprintf(err, errlen, "%s field: '%s' is not a value, range, list "
	    "or step between %d and %d", f->name, s, f->lo, f->hi);
	return (-EINVAL);
}

int
sched_tz_valid(const char *tz)
{
	struct stat	st;
	char		path[512];

	if (tz == NULL || strcmp(tz, "UTC") == 0 || strcmp(tz, "local") == 0)
		return (1);
	if (tz[0] == '/' || strstr(tz, "..") != NULL)
		return (0);
	snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", tz);
	/* a directory ("Europe") would silently mean UTC */
	return (*tz != '\0' && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    access(path, R_OK) == 0);
}

int
sched_parse(const char *expr, const char *tz, struct sched_spec *sp,
    char *err, size_t errlen)
{
	static const struct {
		const char	*name;
		const char	*cron;
	} macros[] = {
		{ "@hourly", "0 * * * *" }, { "@daily", "0 0 * * *" },
		{ "@midnight", "0 0 * * *" }, { "@weekly", "0 0 * * 0" },
		{ "@monthly", "0 0 1 * *" }, { "@yearly", "0 0 1 1 *" },
		{ "@annually", "0 0 1 1 *" },
	};
	char		*copy, *tok[6], *save = NULL;
	uint64_t	 set;
	int		 n = 0, star, r;
	size_t		 i;

	memset(sp, 0, sizeof *sp);
	if (tz != NULL && !sched_tz_valid(tz)) {
		snprintf(err, errlen, "unknown time zone '%s' (a name under "
		    "/usr/share/zoneinfo, e.g. Europe/Berlin, or UTC)", tz);
		return (-EINVAL);
	}
	if (strncmp(expr, "every ", 6) == 0) {
		if (parse_duration(expr + 6, &sp->every_ms) != 0 ||
		    sp->every_ms < 1000) {
			snprintf(err, errlen, "'%s': 'every' needs a duration "
			    "of at least 1s, e.g. every 6h", expr);
			return (-EINVAL);
		}
		sp->interval = 1;
		return (0);
	}
	for (i = 0; i < nitems(macros); i++) {
		if (strcmp(expr, macros[i].name) == 0) {
			expr = macros[i].cron;
			break;
		}
	}
	if (expr[0] == '@') {
		snprintf(err, errlen, "unknown schedule '%s' (use @hourly, "
		    "@daily, @weekly, @monthly or @yearly)", expr);
		return (-EINVAL);
	}
	copy = xstrdup(expr);
	for (char *t = strtok_r(copy, " \t", &save); t != NULL;
	    t = strtok_r(NULL, " \t", &save)) {
		if (n == 5) {
			n++;
			break;
		}
		tok[n++] = t;
	}
	if (n != 5) {
		snprintf(err, errlen, "'%s' is not a schedule: use 5 cron "
		    "fields (minute hour day month weekday), @daily, or "
		    "'every 6h'", expr);
		free(copy);
		return (-EINVAL);
	}
	for (i = 0; i < 5; i++) {
		if ((r = field_parse(&fields[i], tok[i], &set, &star, err,
		    errlen)) != 0) {
			free(copy);
			return (r);
		}
		switch (i) {
		case 0:
			sp->minutes = set;
			break;
		case 1:
			sp->hours = (uint32_t)set;
			sp->hour_star = star;
			break;
		case 2:
			sp->mdays = (uint32_t)set;
			sp->mday_star = star;
			break;
		case 3:
			sp->months = (uint16_t)set;
			break;
		case 4:
			if (set & (1ULL << 7))	/* 7 is Sunday too */
				set |= 1;
			sp->wdays = (uint8_t)(set & 0x7f);
			sp->wday_star = star;
			break;
		}
	}
	free(copy);
	if (tz != NULL && strcmp(tz, "local") != 0)
		sp->tz = xstrdup(tz);
	return (0);
}

void
sched_free(struct sched_spec *sp)
{
	free(sp->tz);
	sp->tz = NULL;
}

/* The zone is process-wide state: switch it for one computation. */
struct tzsave {
	char	*old;
	int	 had;
	int	 switched;
};

static void
tz_enter(const struct sched_spec *sp, struct tzsave *s)
{
	const char	*cur = getenv("TZ");

	s->switched = sp->tz != NULL;
	if (!s->switched)
		return;
	s->had = cur != NULL;
	s->old = cur != NULL ? xstrdup(cur) : NULL;
	setenv("TZ", sp->tz, 1);
	tzset();
}

static void
tz_leave(struct tzsave *s)
{
	if (!s->switched)
		return;
	if (s->had)
		setenv("TZ", s->old, 1);
	else
		unsetenv("TZ");
	tzset();
	free(s->old);
}

static int
day_matches(const struct sched_spec *sp, const struct tm *tm)
{
	int	dom = (sp->mdays >> tm->tm_mday) & 1;
	int	dow = (sp->wdays >> tm->tm_wday) & 1;

	if (!((sp->months >> (tm->tm_mon + 1)) & 1))
		return (0);
	/* cron: with both restricted, either one matches */
	if (!sp->mday_star && !sp->wday_star)
		return (dom || dow);
	return (dom && dow);
}

static int
same_wall(const struct tm *a, const struct tm *b)
{
	return (a->tm_year == b->tm_year && a->tm_mon == b->tm_mon &&
	    a->tm_mday == b->tm_mday && a->tm_hour == b->tm_hour &&
	    a->tm_min == b->tm_min);
}

/*
 * The instants a local wall time names: none (a gap: mapped past it),
 * one, or two (a repeat). Returns how many were put in t[], ascending.
 */
static int
wall_instants(const struct tm *w, time_t t[2])
{
	struct tm	copy = *w, lt;
	time_t		g, cand[2];
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
		time_t x = cand[0];
		cand[0] = cand[1];
		cand[1] = x;
	}
	for (i = 0; i < 2; i++) {
		if (i == 1 && cand[1] == cand[0])
			break;
		localtime_r(&cand[i], &lt);
		if (same_wall(&lt, w))
			t[n++] = cand[i];
	}
	if (n == 0)		/* skipped by a forward jump: run after it */
		t[n++] = g - off[0];
	return (n);
}

int64_t
sched_next(const struct sched_spec *sp, int64_t after)
{
	struct tzsave	 s;
	struct tm	 start, day;
	time_t		 a = (time_t)after, t[2], base;
	int64_t		 found = -1;
	int		 d, h, m, n, i;

	if (sp->interval)
		return (after + (int64_t)((sp->every_ms + 999) / 1000));
	tz_enter(sp, &s);
	localtime_r(&a, &start);
	/* the day before too: a repeat hour can belong to it in UTC terms */
	for (d = -1; d < SEARCH_DAYS && found < 0; d++) {
		memset(&day, 0, sizeof day);
		day.tm_year = start.tm_year;
		day.tm_mon = start.tm_mon;
		day.tm_mday = start.tm_mday + d;
		day.tm_hour = 12;
		base = timegm(&day);		/* normalizes the date */
		gmtime_r(&base, &day);
		if (!day_matches(sp, &day))
			continue;
		for (h = 0; h < 24 && found < 0; h++) {
			if (!((sp->hours >> h) & 1))
				continue;
			/*
			 * Every minute of the hour: with a repeated hour the
			 * earliest instant is not always the first minute.
			 */
			for (m = 0; m < 60; m++) {
				if (!((sp->minutes >> m) & 1))
					continue;
				day.tm_hour = h;
				day.tm_min = m;
				n = wall_instants(&day, t);
				if (!sp->hour_star)
					n = 1;	/* a repeated hour runs once */
				for (i = 0; i < n; i++) {
					if (t[i] > a && (found < 0 ||
					    (int64_t)t[i] < found))
						found = (int64_t)t[i];
				}
			}
		}
	}
	tz_leave(&s);
	return (found);
}

int64_t
sched_period(const struct sched_spec *sp)
{
	int64_t	t, next, gap = 0;
	int	i;

	if (sp->interval)
		return ((int64_t)(sp->every_ms / 1000));
	/* the largest gap over the next runs: weekends count */
	t = sched_next(sp, (int64_t)time(NULL));
	for (i = 0; i < 16 && t > 0; i++) {
		next = sched_next(sp, t);
		if (next < 0)
			break;
		if (next - t > gap)
			gap = next - t;
		t = next;
	}
	return (gap);
}
