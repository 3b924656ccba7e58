/*
 * Cron expressions and the next-fire computation. Candidate wall-clock
 * times are walked day by day in the schedule's zone; each is turned into
 * the real instant(s) it names, which is where DST gaps and repeats are
 * decided (see sched.h).
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
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
	int	lo, hi, step, v, r, range;

	*set = 0;
	*star = strcmp(s, "*") == 0;
	for (;;) {
		step = 1;
		range = 0;
		if (*s == '*') {
			lo = f->lo;
			hi = f->hi;
			s++;
		} else {
			if ((r = field_value(f, &s, &lo)) != 0)
				goto bad;
			hi = lo;
			if (*s == '-') {
				range = 1;
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
			/* "5/15" means 5-max/15; "3-3/2" is just 3 */
			if (!range)
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

/*
 * Time zones without the C library's zone. glibc converts to and from a
 * named zone only through the process-wide TZ variable and tzset(), which
 * also rewrite the timezone, daylight and tzname globals: the schedules
 * used to switch TZ around every computation (two setenv() and two
 * tzset() per call, each tzset() re-reading the TZif file because the
 * name changed), under anything else in the process that formats local
 * time. So a zone's TZif file (RFC 8536) is read once, when a schedule
 * names it, and converted here: its transition table, then the POSIX TZ
 * rule of its footer for times after the last transition (what glibc's
 * tzfile.c does too). Loaded zones are shared by name and never freed,
 * so a struct sched_spec can still be copied by value.
 */
#define TZ_DIR		"/usr/share/zoneinfo"
#define TZ_MAXFILE	(1 << 20)
#define TZ_MAXOFF	(26 * 3600)
#define TZ_MAXTRANS	(1 << 16)
#define TZ_TLIMIT	(INT64_C(1) << 40)	/* 35,000 years */

struct tz_rule {
	int	kind;		/* 'J': 1-365, no Feb 29; 'D': 0-365; 'M' */
	int	m, w, d;	/* M: month, week 1-5 (5: last), weekday */
	int32_t	secs;		/* local time of day of the change */
};

struct sched_zone {
	char			*name;
	dev_t			 dev;
	ino_t			 ino;
	struct timespec		 mtime;
	off_t			 size;
	size_t			 ntrans;
	int64_t			*trans;
	uint8_t			*idx;
	size_t			 ntypes;
	int32_t			*off;
	int32_t			 before;	/* offset before trans[0] */
	int			 has_footer;
	int			 has_dst;
	int32_t			 std_off;	/* footer: seconds east */
	int32_t			 dst_off;
	struct tz_rule		 start, end;
	struct sched_zone	*next;
};

static const struct sched_zone	 utc_zone = { .name = "UTC" };
static struct sched_zone	*zones;		/* loaded, never freed */

static int64_t
floordiv(int64_t a, int64_t b)
{
	return (a / b - (a % b != 0 && (a < 0) != (b < 0)));
}

static int
is_leap(int64_t y)
{
	return (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t	era, yoe, doy, doe;

	y -= m <= 2;
	era = floordiv(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + doe - 719468);
}

static int64_t
year_of_days(int64_t z)
{
	int64_t	era, doe, yoe, doy, mp;

	z += 719468;
	era = floordiv(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	return (yoe + era * 400 + (mp >= 10));
}

/* The day (since the epoch) a footer rule names in year y. */
static int64_t
rule_day(const struct tz_rule *r, int64_t y)
{
	static const int	mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31,
	    30, 31, 30, 31 };
	int64_t			first, d;
	int			wd, len;

	if (r->kind == 'J')
		return (days_from_civil(y, 1, 1) + r->d - 1 +
		    (is_leap(y) && r->d >= 60));
	if (r->kind == 'D')
		return (days_from_civil(y, 1, 1) + r->d);
	first = days_from_civil(y, r->m, 1);
	wd = (int)(((first % 7) + 7 + 4) % 7);	/* 1970-01-01: Thursday */
	d = first + (r->d - wd + 7) % 7 + (int64_t)(r->w - 1) * 7;
	len = mdays[r->m - 1] + (r->m == 2 && is_leap(y));
	while (d >= first + len)
		d -= 7;
	return (d);
}

static int32_t
footer_offset(const struct sched_zone *z, int64_t t)
{
	int64_t	y, s, e;

	if (!z->has_dst)
		return (z->std_off);
	/* the UTC year, as glibc's __tz_compute() takes it */
	y = year_of_days(floordiv(t, 86400));
	s = rule_day(&z->start, y) * 86400 + z->start.secs - z->std_off;
	e = rule_day(&z->end, y) * 86400 + z->end.secs - z->dst_off;
	if (s < e)
		return (t >= s && t < e ? z->dst_off : z->std_off);
	return (t >= e && t < s ? z->std_off : z->dst_off);
}

int32_t
sched_zone_offset(const struct sched_zone *z, int64_t t)
{
	size_t	lo, hi, mid;

	if (t < -TZ_TLIMIT)
		t = -TZ_TLIMIT;
	if (t > TZ_TLIMIT)
		t = TZ_TLIMIT;
	if (z->ntrans == 0 || t >= z->trans[z->ntrans - 1]) {
		if (z->has_footer)
			return (footer_offset(z, t));
		if (z->ntrans == 0)
			return (z->before);
		return (z->off[z->idx[z->ntrans - 1]]);
	}
	if (t < z->trans[0])
		return (z->before);
	lo = 0;			/* trans[lo] <= t < trans[hi] */
	hi = z->ntrans - 1;
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return (z->off[z->idx[lo]]);
}

/* --- the POSIX TZ string of a TZif footer --------------------------------- */

static int
posix_num(const char **sp, int lo, int hi, int *v)
{
	const char	*s = *sp;
	int		 n = 0, digits = 0;

	while (isdigit((unsigned char)*s)) {
		n = n * 10 + (*s++ - '0');
		if (++digits > 3)
			return (-1);
	}
	if (digits == 0 || n < lo || n > hi)
		return (-1);
	*v = n;
	*sp = s;
	return (0);
}

static int
posix_name(const char **sp)
{
	const char	*s = *sp;
	size_t		 n = 0;

	if (*s == '<') {
		for (s++; *s != '>'; s++, n++)
			if (!isalnum((unsigned char)*s) && *s != '+' &&
			    *s != '-')
				return (-1);
		s++;
	} else {
		for (; isalpha((unsigned char)*s); s++)
			n++;
	}
	if (n < 3)
		return (-1);
	*sp = s;
	return (0);
}

/* [+-]hh[:mm[:ss]], hh up to maxh; seconds with the sign. */
static int
posix_secs(const char **sp, int maxh, int32_t *out)
{
	const char	*s = *sp;
	int		 sign = 1, h, m = 0, sec = 0;

	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	if (posix_num(&s, 0, maxh, &h) != 0)
		return (-1);
	if (*s == ':') {
		s++;
		if (posix_num(&s, 0, 59, &m) != 0)
			return (-1);
		if (*s == ':') {
			s++;
			if (posix_num(&s, 0, 59, &sec) != 0)
				return (-1);
		}
	}
	*out = sign * (h * 3600 + m * 60 + sec);
	*sp = s;
	return (0);
}

static int
posix_rule(const char **sp, struct tz_rule *r)
{
	const char	*s = *sp;

	memset(r, 0, sizeof *r);
	if (*s == 'J') {
		s++;
		r->kind = 'J';
		if (posix_num(&s, 1, 365, &r->d) != 0)
			return (-1);
	} else if (*s == 'M') {
		s++;
		r->kind = 'M';
		if (posix_num(&s, 1, 12, &r->m) != 0 || *s++ != '.' ||
		    posix_num(&s, 1, 5, &r->w) != 0 || *s++ != '.' ||
		    posix_num(&s, 0, 6, &r->d) != 0)
			return (-1);
	} else {
		r->kind = 'D';
		if (posix_num(&s, 0, 365, &r->d) != 0)
			return (-1);
	}
	r->secs = 7200;
	/* RFC 8536 3.3.1: the time may be -167 to 167 hours */
	if (*s == '/' && (s++, posix_secs(&s, 167, &r->secs) != 0))
		return (-1);
	*sp = s;
	return (0);
}

static int
posix_tz(const char *s, struct sched_zone *z)
{
	int32_t	off;

	if (*s == '\0')
		return (0);	/* no rule: the last transition's type */
	if (posix_name(&s) != 0 || posix_secs(&s, 24, &off) != 0)
		return (-1);
	z->std_off = -off;	/* POSIX counts west of Greenwich */
	z->has_footer = 1;
	if (*s == '\0')
		return (0);
	if (posix_name(&s) != 0)
		return (-1);
	z->has_dst = 1;
	z->dst_off = z->std_off + 3600;
	if (*s != ',' && *s != '\0') {
		if (posix_secs(&s, 24, &off) != 0)
			return (-1);
		z->dst_off = -off;
	}
	if (*s == '\0') {
		/* no dates: glibc and tzcode take the US rules */
		z->start = (struct tz_rule){ 'M', 3, 2, 0, 7200 };
		z->end = (struct tz_rule){ 'M', 11, 1, 0, 7200 };
		return (0);
	}
	if (*s != ',')
		return (-1);
	s++;
	if (posix_rule(&s, &z->start) != 0 || *s != ',')
		return (-1);
	s++;
	if (posix_rule(&s, &z->end) != 0 || *s != '\0')
		return (-1);
	return (0);
}

/* --- TZif ----------------------------------------------------------------- */

static uint32_t
be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3]);
}

static int64_t
be64(const uint8_t *p)
{
	return ((int64_t)((uint64_t)be32(p) << 32 | be32(p + 4)));
}

void
sched_zone_free(struct sched_zone *z)
{
	if (z == NULL)
		return;
	free(z->name);
	free(z->trans);
	free(z->idx);
	free(z->off);
	free(z);
}

#define TZ_FAIL(...)	do {						\
	snprintf(err, errlen, __VA_ARGS__);				\
	sched_zone_free(z);						\
	return (NULL);							\
} while (0)

struct sched_zone *
sched_zone_parse(const void *buf, size_t len, char *err, size_t errlen)
{
	const uint8_t		*p = buf, *end = p + len, *ty;
	struct sched_zone	*z = NULL;
	uint32_t		 c[6];	/* isut, isstd, leap, time, type, char */
	size_t			 i, w = 4, need, flen;
	char			 footer[256];
	int			 version;

	for (;;) {
		if ((size_t)(end - p) < 44 || memcmp(p, "TZif", 4) != 0)
			TZ_FAIL("not a TZif file");
		version = p[4];
		if (version != 0 && (version < '2' || version > '4'))
			TZ_FAIL("TZif version %d is not known", version);
		for (i = 0; i < 6; i++)
			c[i] = be32(p + 20 + 4 * i);
		if (c[3] > TZ_MAXTRANS || c[4] == 0 || c[4] > 256 ||
		    c[5] == 0 || c[5] > 65536 || c[2] > 65536 ||
		    (c[0] != 0 && c[0] != c[4]) || (c[1] != 0 && c[1] != c[4]))
			TZ_FAIL("TZif header: impossible counts");
		p += 44;
		need = c[3] * (w + 1) + c[4] * 6 + c[5] + c[2] * (w + 4) +
		    c[1] + c[0];
		if ((size_t)(end - p) < need)
			TZ_FAIL("TZif data cut short");
		if (w == 8 || version == 0)
			break;
		p += need;	/* skip the 32-bit data of a v2+ file */
		w = 8;
	}
	if (c[2] != 0)
		TZ_FAIL("zones with leap seconds are not supported");
	z = xcalloc(1, sizeof *z);
	z->ntrans = c[3];
	z->ntypes = c[4];
	z->trans = xcalloc(z->ntrans + 1, sizeof *z->trans);
	z->idx = xcalloc(z->ntrans + 1, 1);
	z->off = xcalloc(z->ntypes, sizeof *z->off);
	for (i = 0; i < z->ntrans; i++) {
		z->trans[i] = w == 8 ? be64(p + 8 * i) :
		    (int64_t)(int32_t)be32(p + 4 * i);
		if (i > 0 && z->trans[i] <= z->trans[i - 1])
			TZ_FAIL("TZif transitions out of order");
		if (z->trans[i] < -TZ_TLIMIT || z->trans[i] > TZ_TLIMIT)
			TZ_FAIL("TZif transition out of range");
	}
	p += z->ntrans * w;
	for (i = 0; i < z->ntrans; i++) {
		z->idx[i] = p[i];
		if (p[i] >= z->ntypes)
			TZ_FAIL("TZif transition to type %u of %zu", p[i],
			    z->ntypes);
	}
	p += z->ntrans;
	ty = p;
	z->before = -1;
	for (i = 0; i < z->ntypes; i++, p += 6) {
		z->off[i] = (int32_t)be32(p);
		if (z->off[i] < -TZ_MAXOFF || z->off[i] > TZ_MAXOFF ||
		    p[4] > 1 || p[5] >= c[5])
			TZ_FAIL("TZif local time type %zu is invalid", i);
	}
	/* before the first transition: the first standard type (glibc) */
	for (i = 0; i < z->ntypes && z->before == -1; i++)
		if (ty[6 * i + 4] == 0)
			z->before = z->off[i];
	if (z->before == -1)
		z->before = z->off[0];
	p += c[5] + c[2] * (w + 4) + c[1] + c[0];
	if (version != 0) {
		/* "\n" POSIX-TZ "\n" */
		if (p >= end || *p != '\n')
			TZ_FAIL("TZif footer missing");
		for (flen = 0; p + 1 + flen < end && p[1 + flen] != '\n';
		    flen++)
			if (p[1 + flen] == '\0' || flen >= sizeof footer - 1)
				TZ_FAIL("TZif footer is not a TZ string");
		if (p + 1 + flen >= end)
			TZ_FAIL("TZif footer not terminated");
		memcpy(footer, p + 1, flen);
		footer[flen] = '\0';
		if (posix_tz(footer, z) != 0)
			TZ_FAIL("TZif footer '%s' is not a POSIX TZ rule",
			    footer);
	}
	return (z);
}

/*
 * The zone called name, read from TZ_DIR once and again only when the
 * file changed (a tzdata update and a reload). 0 or -errno with err.
 */
static int
zone_load(const char *name, const struct sched_zone **out, char *err,
    size_t errlen)
{
	struct sched_zone	*z;
	struct stat		 st;
	char			 path[512], *buf;
	const char		*c;
	ssize_t			 n;
	size_t			 got = 0;
	int			 fd, e;

	if (strcmp(name, "UTC") == 0) {
		*out = &utc_zone;
		return (0);
	}
	for (c = name; *c != '\0'; c++)
		if (!isalnum((unsigned char)*c) && strchr("/_+-.", *c) == NULL)
			break;
	if (*name == '\0' || *name == '/' || *c != '\0' ||
	    strstr(name, "..") != NULL || strlen(name) > 255) {
		snprintf(err, errlen, "not a zone name");
		return (-EINVAL);
	}
	snprintf(path, sizeof path, TZ_DIR "/%s", name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		e = errno;
		snprintf(err, errlen, "%.200s: %s", path, strerror(e));
		return (-e);
	}
	if (fstat(fd, &st) == -1) {
		e = errno;
		snprintf(err, errlen, "%.200s: %s", path, strerror(e));
		close(fd);
		return (-e);
	}
	/* a directory ("Europe") would silently mean UTC to the C library */
	if (!S_ISREG(st.st_mode) || st.st_size > TZ_MAXFILE) {
		snprintf(err, errlen, "%.200s: not a zone file", path);
		close(fd);
		return (S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL);
	}
	for (z = zones; z != NULL; z = z->next) {
		if (strcmp(z->name, name) == 0 && z->dev == st.st_dev &&
		    z->ino == st.st_ino && z->size == st.st_size &&
		    z->mtime.tv_sec == st.st_mtim.tv_sec &&
		    z->mtime.tv_nsec == st.st_mtim.tv_nsec) {
			close(fd);
			*out = z;
			return (0);
		}
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	z = sched_zone_parse(buf, got, err, errlen);
	free(buf);
	if (z == NULL)
		return (-EINVAL);
	z->name = xstrdup(name);
	z->dev = st.st_dev;
	z->ino = st.st_ino;
	z->size = st.st_size;
	z->mtime = st.st_mtim;
	z->next = zones;
	zones = z;
	*out = z;
	return (0);
}

int
sched_tz_valid(const char *tz)
{
	const struct sched_zone	*z;
	char			 err[256];

	if (tz == NULL || strcmp(tz, "local") == 0)
		return (1);
	return (zone_load(tz, &z, err, sizeof err) == 0);
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
	const struct sched_zone	*zone = NULL;
	char		*copy, *tok[6], *save = NULL, why[256];
	uint64_t	 set;
	int		 n = 0, star, r;
	size_t		 i;

	memset(sp, 0, sizeof *sp);
	if (tz != NULL && strcmp(tz, "local") != 0 &&
	    (r = zone_load(tz, &zone, why, sizeof why)) != 0) {
		if (r == -ENOENT || r == -EISDIR || r == -ENOTDIR)
			snprintf(err, errlen, "unknown time zone '%s' (a name "
			    "under /usr/share/zoneinfo, e.g. Europe/Berlin, "
			    "or UTC)", tz);
		else
			snprintf(err, errlen, "unknown time zone '%s': %s",
			    tz, why);
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
			/* crontab(5): restricted means not starting with '*' */
			sp->mday_star = tok[i][0] == '*';
			break;
		case 3:
			sp->months = (uint16_t)set;
			break;
		case 4:
			if (set & (1ULL << 7))	/* 7 is Sunday too */
				set |= 1;
			sp->wdays = (uint8_t)(set & 0x7f);
			sp->wday_star = tok[i][0] == '*';
			break;
		}
	}
	free(copy);
	if (zone != NULL) {
		sp->tz = xstrdup(tz);
		sp->zone = zone;
	}
	return (0);
}

void
sched_free(struct sched_spec *sp)
{
	free(sp->tz);
	sp->tz = NULL;
	sp->zone = NULL;	/* shared, never freed */
}

/*
 * The UTC offset of the schedule's zone at t. A spec without a zone
 * ("local") follows the process's own zone through localtime_r(), which
 * reads TZ but never changes it.
 */
static long
spec_gmtoff(const struct sched_spec *sp, time_t t)
{
	struct tm	lt;

	if (sp->zone != NULL)
		return (sched_zone_offset(sp->zone, (int64_t)t));
	localtime_r(&t, &lt);
	return (lt.tm_gmtoff);
}

/* Like localtime_r() in the schedule's zone. */
static void
spec_localtime(const struct sched_spec *sp, time_t t, struct tm *tm)
{
	time_t	w = t + (time_t)spec_gmtoff(sp, t);

	gmtime_r(&w, tm);
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
wall_instants(const struct sched_spec *sp, const struct tm *w, time_t t[2])
{
	struct tm	copy = *w, lt;
	time_t		g, cand[2];
	long		off[2];
	int		n = 0, i;

	copy.tm_sec = 0;
	copy.tm_isdst = 0;
	g = timegm(&copy);
	off[0] = spec_gmtoff(sp, g - 86400);
	off[1] = spec_gmtoff(sp, g + 86400);
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
		spec_localtime(sp, cand[i], &lt);
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
	struct tm	 start, day;
	time_t		 a = (time_t)after, t[2], base;
	int64_t		 found = -1;
	int		 d, h, m, n, i;

	if (sp->interval)
		return (after + (int64_t)((sp->every_ms + 999) / 1000));
	spec_localtime(sp, a, &start);
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
				n = wall_instants(sp, &day, t);
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
