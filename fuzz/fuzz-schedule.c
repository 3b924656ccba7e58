/*
 * libFuzzer target for the schedule parsers: the first byte picks one.
 * Even: the bytes are a TZif file (what /usr/share/zoneinfo holds, read
 * by sched_zone_parse()); an accepted zone is asked for offsets over
 * four centuries and at the ends of time, which must stay within a day.
 * Odd: the rest is a cron expression or "every" schedule (in UTC, or
 * after a 'B' in Europe/Berlin); an accepted one is asked for its next runs, which must move forward.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_tzif(const uint8_t *data, size_t size)
{
	struct sched_zone	*z;
	char			 err[256];
	int64_t			 t;
	int32_t			 off;

	if ((z = sched_zone_parse(data, size, err, sizeof err)) == NULL) {
		if (err[0] == '\0')
			abort();
		return;
	}
	for (t = -INT64_C(12622780800); t < INT64_C(12622780800);
	    t += INT64_C(86400) * 97) {
		off = sched_zone_offset(z, t);
		if (off < -26 * 3600 || off > 26 * 3600)
			abort();
	}
	off = sched_zone_offset(z, INT64_MIN);
	off += sched_zone_offset(z, INT64_MAX);
	if (off < -52 * 3600 || off > 52 * 3600)
		abort();
	sched_zone_free(z);
}

static void
fuzz_expr(const uint8_t *data, size_t size)
{
	struct sched_spec	 sp;
	char			*s, err[256];
	int64_t			 t = INT64_C(1780000000), n;
	int			 i;

	s = malloc(size + 1);
	if (s == NULL)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	/* a leading 'B': in Europe/Berlin, through its DST changes */
	if (sched_parse(s[0] == 'B' ? s + 1 : s, s[0] == 'B' ?
	    "Europe/Berlin" : "UTC", &sp, err, sizeof err) == 0) {
		for (i = 0; i < 3; i++) {
			n = sched_next(&sp, t);
			if (n < 0)
				break;
			if (n <= t)
				abort();
			t = n;
		}
		sched_free(&sp);
	} else if (err[0] == '\0')
		abort();
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return (0);
	if (data[0] % 2 == 0)
		fuzz_tzif(data + 1, size - 1);
	else
		fuzz_expr(data + 1, size - 1);
	return (0);
}
