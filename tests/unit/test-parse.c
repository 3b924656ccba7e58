/*
 * Value syntaxes (proto/parse.c) shared by opsd.conf, RPC params and
 * opsd-cli: durations, sizes, booleans, modes, bounded integers.
 */
#include <errno.h>
#include <stdint.h>

#include "opsd-parse.h"
#include "tap.h"

struct dcase {
	const char	*in;
	int		 r;
	uint64_t	 ms;
};

static void
check_durations(const struct dcase *c, size_t n)
{
	uint64_t	ms;
	size_t		i;
	int		r;

	for (i = 0; i < n; i++) {
		ms = 0xdeadbeef;
		r = parse_duration(c[i].in, &ms);
		if (r != c[i].r || (r == 0 && ms != c[i].ms))
			tap_diag("parse_duration(\"%s\")", c[i].in);
		CHECK_INT(r, c[i].r);
		if (r == 0 && c[i].r == 0)
			CHECK_UINT(ms, c[i].ms);
		if (r != 0)	/* untouched on error */
			CHECK_UINT(ms, 0xdeadbeef);
	}
}

static void
test_duration_units(void)
{
	static const struct dcase c[] = {
		{ "250ms", 0, 250 },
		{ "0ms", 0, 0 },
		{ "30s", 0, 30000 },
		{ "5m", 0, 300000 },
		{ "2h", 0, 7200000 },
		{ "7d", 0, 7 * 86400000ULL },
		{ "2w", 0, 14 * 86400000ULL },
		{ "1s", 0, 1000 },
		{ "1m", 0, 60000 },
	};

	check_durations(c, sizeof c / sizeof c[0]);
}

static void
test_duration_combos(void)
{
	static const struct dcase c[] = {
		{ "1h30m", 0, 5400000 },
		{ "1m30s", 0, 90000 },
		{ "1d2h3m4s5ms", 0, 86400000 + 7200000 + 180000 + 4000 + 5 },
		{ "1w1d", 0, 8 * 86400000ULL },
		{ "1s500ms", 0, 1500 },
		{ "10m10ms", 0, 600010 },
	};

	check_durations(c, sizeof c / sizeof c[0]);
}

static void
test_duration_bare_seconds(void)
{
	static const struct dcase c[] = {
		{ "0", 0, 0 },
		{ "1", 0, 1000 },
		{ "90", 0, 90000 },
		{ "3600", 0, 3600000 },
		{ "007", 0, 7000 },
		/* a bare number after a unit is ambiguous */
		{ "1h30", -EINVAL, 0 },
		{ "1m5", -EINVAL, 0 },
	};

	check_durations(c, sizeof c / sizeof c[0]);
}

static void
test_duration_overflow(void)
{
	static const struct dcase c[] = {
		{ "18446744073709551616", -ERANGE, 0 },
		{ "99999999999999999999999ms", -ERANGE, 0 },
		/* the number fits, the number of milliseconds does not */
		{ "18446744073709552", -ERANGE, 0 },
		{ "18446744073709552s", -ERANGE, 0 },
		{ "30500568905w", -ERANGE, 0 },
		{ "213503982334602d", -ERANGE, 0 },
		/* each group fits, the sum does not */
		{ "18446744073709551s616ms", -ERANGE, 0 },
		{ "18446744073709551s615ms", 0, UINT64_MAX },
	};

	check_durations(c, sizeof c / sizeof c[0]);
}

static void
test_duration_garbage(void)
{
	static const struct dcase c[] = {
		{ "", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "ms", -EINVAL, 0 },
		{ "-5s", -EINVAL, 0 },
		{ "+5s", -EINVAL, 0 },
		{ " 5s", -EINVAL, 0 },
		{ "5s ", -EINVAL, 0 },
		{ "5 s", -EINVAL, 0 },
		{ "1h 30m", -EINVAL, 0 },
		{ "1.5h", -EINVAL, 0 },
		{ "5x", -EINVAL, 0 },
		{ "5S", -EINVAL, 0 },
		{ "5min", -EINVAL, 0 },
		{ "5sec", -EINVAL, 0 },
		{ "5mss", -EINVAL, 0 },
		{ "h", -EINVAL, 0 },
		{ "1hh", -EINVAL, 0 },
		{ "0x10", -EINVAL, 0 },
	};
	uint64_t	ms;

	check_durations(c, sizeof c / sizeof c[0]);
	CHECK_INT(parse_duration(NULL, &ms), -EINVAL);
}

struct scase {
	const char	*in;
	int		 r;
	uint64_t	 bytes;
};

static void
test_sizes(void)
{
	static const struct scase c[] = {
		{ "0", 0, 0 },
		{ "512", 0, 512 },
		{ "1K", 0, 1024 },
		{ "1k", 0, 1024 },
		{ "512K", 0, 512 * 1024 },
		{ "1M", 0, 1 << 20 },
		{ "64m", 0, 64 << 20 },
		{ "1G", 0, 1ULL << 30 },
		{ "2T", 0, 2ULL << 40 },
		{ "1t", 0, 1ULL << 40 },
		{ "512KB", 0, 512 * 1024 },
		{ "1kb", 0, 1024 },
		{ "1MB", 0, 1 << 20 },
		{ "1GB", 0, 1ULL << 30 },
		{ "1TB", 0, 1ULL << 40 },
		{ "16777215T", 0, 16777215ULL << 40 },
		{ "16777216T", -ERANGE, 0 },
		{ "18446744073709551616", -ERANGE, 0 },
		{ "17179869184G", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "K", -EINVAL, 0 },
		{ "1B", -EINVAL, 0 },
		{ "1P", -EINVAL, 0 },
		{ "1KiB", -EINVAL, 0 },
		{ "1KBB", -EINVAL, 0 },
		{ "1 K", -EINVAL, 0 },
		{ "1.5G", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "1K2", -EINVAL, 0 },
	};
	uint64_t	b;
	size_t		i;
	int		r;

	for (i = 0; i < sizeof c / sizeof c[0]; i++) {
		b = 0xdeadbeef;
		r = parse_size(c[i].in, &b);
		if (r != c[i].r || (r == 0 && b != c[i].bytes))
			tap_diag("parse_size(\"%s\")", c[i].in);
		CHECK_INT(r, c[i].r);
		if (r == 0 && c[i].r == 0)
			CHECK_UINT(b, c[i].bytes);
	}
	CHECK_INT(parse_size(NULL, &b), -EINVAL);
}

static void
test_bool(void)
{
	static const char *yes[] = { "yes", "true", "on", "1", "YES", "True",
	    "oN" };
	static const char *no[] = { "no", "false", "off", "0", "NO", "False",
	    "OFF" };
	static const char *bad[] = { "", "y", "n", "2", "yes ", " no", "enable",
	    "nope", "00" };
	size_t	i;
	int	v;

	for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		v = -1;
		CHECK_INT(parse_bool(yes[i], &v), 0);
		CHECK_INT(v, 1);
	}
	for (i = 0; i < sizeof no / sizeof no[0]; i++) {
		v = -1;
		CHECK_INT(parse_bool(no[i], &v), 0);
		CHECK_INT(v, 0);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = -1;
		if (parse_bool(bad[i], &v) != -EINVAL)
			tap_diag("parse_bool(\"%s\")", bad[i]);
		CHECK_INT(parse_bool(bad[i], &v), -EINVAL);
		CHECK_INT(v, -1);
	}
}

static void
test_mode(void)
{
	static const struct {
		const char	*in;
		int		 r;
		mode_t		 mode;
	} c[] = {
		{ "0660", 0, 0660 },
		{ "660", 0, 0660 },
		{ "0", 0, 0 },
		{ "0600", 0, 0600 },
		{ "07777", 0, 07777 },
		{ "4755", 0, 04755 },
		{ "000000640", 0, 0640 },
		{ "10000", -EINVAL, 0 },
		{ "0778", -EINVAL, 0 },
		{ "8", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "+644", -EINVAL, 0 },
		{ " 644", -EINVAL, 0 },
		{ "0644 ", -EINVAL, 0 },
		{ "0x1a4", -EINVAL, 0 },
		{ "rw-r--r--", -EINVAL, 0 },
		{ "u+rw", -EINVAL, 0 },
		{ "77777777777777777777777", -EINVAL, 0 },
	};
	mode_t	m;
	size_t	i;
	int	r;

	for (i = 0; i < sizeof c / sizeof c[0]; i++) {
		m = 01234;
		r = parse_mode(c[i].in, &m);
		if (r != c[i].r)
			tap_diag("parse_mode(\"%s\")", c[i].in);
		CHECK_INT(r, c[i].r);
		if (r == 0 && c[i].r == 0)
			CHECK_UINT(m, c[i].mode);
		if (r != 0)
			CHECK_UINT(m, 01234);
	}
}

static void
test_uint(void)
{
	uint64_t	v;

	CHECK_INT(parse_uint("0", 0, 10, &v), 0);
	CHECK_UINT(v, 0);
	CHECK_INT(parse_uint("10", 0, 10, &v), 0);
	CHECK_UINT(v, 10);
	CHECK_INT(parse_uint("11", 0, 10, &v), -ERANGE);
	CHECK_INT(parse_uint("4", 5, 10, &v), -ERANGE);
	CHECK_INT(parse_uint("", 0, 10, &v), -EINVAL);
	CHECK_INT(parse_uint("1x", 0, 10, &v), -EINVAL);
	CHECK_INT(parse_uint("-1", 0, 10, &v), -EINVAL);
	CHECK_INT(parse_uint(" 1", 0, 10, &v), -EINVAL);
	CHECK_INT(parse_uint("18446744073709551616", 0, UINT64_MAX, &v),
	    -ERANGE);
	CHECK_INT(parse_uint("18446744073709551609", 0, UINT64_MAX, &v), 0);
	CHECK_UINT(v, 18446744073709551609ULL);
}

static void
test_number_max(void)
{
	uint64_t	v = 0;

	/*
	 * UINT64_MAX itself is in range. parse_number() gives up one digit
	 * early: it refuses any n > (UINT64_MAX - 9) / 10 before the last
	 * digit, which wrongly rejects 18446744073709551610..615.
	 */
	CHECK_INT(parse_uint("18446744073709551615", 0, UINT64_MAX, &v), 0);
	CHECK_UINT(v, UINT64_MAX);
	CHECK_INT(parse_uint("18446744073709551610", 0, UINT64_MAX, &v), 0);
	CHECK_UINT(v, 18446744073709551610ULL);
	v = 0;
	CHECK_INT(parse_duration("18446744073709551615ms", &v), 0);
	CHECK_UINT(v, UINT64_MAX);
	v = 0;
	CHECK_INT(parse_size("18446744073709551615", &v), 0);
	CHECK_UINT(v, UINT64_MAX);
}

static void
test_format_duration(void)
{
	static const struct {
		uint64_t	 ms;
		const char	*out;
	} c[] = {
		{ 0, "0ms" },
		{ 1, "1ms" },
		{ 1500, "1500ms" },
		{ 1000, "1s" },
		{ 90000, "90s" },
		{ 60000, "1m" },
		{ 5400000, "90m" },
		{ 7200000, "2h" },
		{ 86400000, "1d" },
		{ 7 * 86400000ULL, "7d" },
	};
	char		buf[32];
	uint64_t	back;
	size_t		i;

	for (i = 0; i < sizeof c / sizeof c[0]; i++) {
		format_duration(c[i].ms, buf, sizeof buf);
		CHECK_STR(buf, c[i].out);
		/* what is printed parses back to the same value */
		CHECK_INT(parse_duration(buf, &back), 0);
		CHECK_UINT(back, c[i].ms);
	}
}

int
main(void)
{
	RUN(test_duration_units);
	RUN(test_duration_combos);
	RUN(test_duration_bare_seconds);
	RUN(test_duration_overflow);
	RUN(test_duration_garbage);
	RUN(test_sizes);
	RUN(test_bool);
	RUN(test_mode);
	RUN(test_uint);
	RUN(test_number_max);
	RUN(test_format_duration);
	return (tap_done());
}
