/*
 * The cron parser and next-run computation against an independent
 * reference: cron-table.txt holds random expressions (ranges, steps,
 * lists, names, macros, the day-of-month / day-of-week rule), a start
 * time and the next five fire times in UTC, written by gen-cron-table.py
 * from crontab(5) alone. Every row must match. The table's path is the
 * first argument.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"
#include "tap.h"

static const char	*table_path;

static void
test_cron_table(void)
{
	struct sched_spec	 sp;
	FILE			*f;
	char			 line[1024], err[256], *expr, *start, *want,
				*tok, *save;
	int64_t			 t, w;
	int			 lineno = 0, rows = 0, bad = 0, k;

	if ((f = fopen(table_path, "r")) == NULL) {
		tap_fail(__FILE__, __LINE__, table_path);
		return;
	}
	while (fgets(line, sizeof line, f) != NULL && bad < 20) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		expr = strtok_r(line, "\t", &save);
		start = strtok_r(NULL, "\t", &save);
		want = strtok_r(NULL, "\t", &save);
		if (expr == NULL || start == NULL || want == NULL) {
			tap_diag("%s:%d: not a row", table_path, lineno);
			tap_case_failed = 1;
			bad++;
			continue;
		}
		rows++;
		if (sched_parse(expr, "UTC", &sp, err, sizeof err) != 0) {
			tap_diag("%s:%d: '%s': %s", table_path, lineno, expr,
			    err);
			tap_case_failed = 1;
			bad++;
			continue;
		}
		t = strtoll(start, NULL, 10);
		for (k = 0, tok = strtok_r(want, " ", &save); tok != NULL;
		    tok = strtok_r(NULL, " ", &save), k++) {
			w = strtoll(tok, NULL, 10);
			t = sched_next(&sp, t);
			if (t != w) {
				tap_diag("%s:%d: '%s' run %d at %" PRId64
				    ", expected %" PRId64, table_path, lineno,
				    expr, k, t, w);
				tap_case_failed = 1;
				bad++;
				break;
			}
			if (t < 0)
				break;
		}
		sched_free(&sp);
	}
	fclose(f);
	CHECK(rows >= 3000);
}

int
main(int argc, char **argv)
{
	table_path = argc > 1 ? argv[1] : "tests/unit/cron-table.txt";
	RUN(test_cron_table);
	return (tap_done());
}
