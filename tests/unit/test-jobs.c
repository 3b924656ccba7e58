/*
 * jobs.json as outside input (daemon/core/jobs.c, jobs_state_parse()):
 * a state file that was edited, truncated by a full disk or written by
 * another version must never crash the daemon nor be trusted: wrong
 * types, negative, huge and future times are dropped or clamped, and
 * every such change is described for the log.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "jobs.h"
#include "tap.h"

#define NOW	INT64_C(1780000000)	/* 2026-05-28 */
#define JOB	"backup nightly"

static int
parse(const char *text, struct job_state *st, char *note, size_t len)
{
	return (jobs_state_parse(text, strlen(text), JOB, NOW, st, note, len));
}

static void
test_good_entry(void)
{
	struct job_state	st;
	char			note[256];

	CHECK_INT(parse("{\"backup nightly\": {\"last_run\": 1779990000, "
	    "\"last_slot\": 1779989000, \"last_ok\": -1, \"last_result\": "
	    "\"skipped: locked\"}, \"other\": 5}", &st, note, sizeof note), 1);
	CHECK_INT(st.last_run, 1779990000);
	CHECK_INT(st.last_slot, 1779989000);
	CHECK_INT(st.last_ok, -1);
	CHECK_STR(st.last_result, "skipped: locked");
	CHECK_STR(note, "");
}

static void
test_future_is_clamped(void)
{
	struct job_state	st;
	char			note[256];

	CHECK_INT(parse("{\"backup nightly\": {\"last_run\": 1811536000, "
	    "\"last_ok\": 1}}", &st, note, sizeof note), 1);
	CHECK_INT(st.last_run, NOW);
	CHECK_INT(st.last_ok, 1);
	CHECK_CONTAINS(note, "last_run 1811536000 is in the future");
	CHECK_CONTAINS(note, "clamped");
	/* huge, and the largest jansson reads */
	CHECK_INT(parse("{\"backup nightly\": {\"last_run\": "
	    "9223372036854775807}}", &st, note, sizeof note), 1);
	CHECK_INT(st.last_run, NOW);
}

static void
test_wrong_types_and_ranges(void)
{
	struct job_state	st;
	char			note[512];

	CHECK_INT(parse("{\"backup nightly\": {\"last_run\": \"yesterday\", "
	    "\"last_slot\": 1.5e9, \"last_ok\": 7, \"last_result\": 42}}",
	    &st, note, sizeof note), 1);
	CHECK_INT(st.last_run, 0);
	CHECK_INT(st.last_slot, 0);
	CHECK_INT(st.last_ok, 0);
	CHECK_STR(st.last_result, "");
	CHECK_CONTAINS(note, "last_run is not an integer");
	CHECK_CONTAINS(note, "last_slot is not an integer");
	CHECK_CONTAINS(note, "last_ok is not -1, 0 or 1");
	CHECK_CONTAINS(note, "last_result is not a string");

	CHECK_INT(parse("{\"backup nightly\": {\"last_run\": -5, "
	    "\"last_ok\": true}}", &st, note, sizeof note), 1);
	CHECK_INT(st.last_run, 0);
	CHECK_INT(st.last_ok, 0);
	CHECK_CONTAINS(note, "last_run -5 is before 2000");

	CHECK_INT(parse("{\"backup nightly\": [1, 2]}", &st, note,
	    sizeof note), 1);
	CHECK_INT(st.last_run, 0);
	CHECK_CONTAINS(note, "not an object");
	CHECK_INT(parse("{\"backup nightly\": null}", &st, note,
	    sizeof note), 1);
	CHECK_INT(st.last_run, 0);
}

static void
test_unknown_jobs_and_bad_files(void)
{
	static const char *const bad[] = { "", "{", "{\"backup nightly\": {"
	    "\"last_run\": 17", "[]", "42", "\"x\"", "null",
	    "{\"a\": 1, \"a\": 2}", "{\"backup nightly\": {}} trailing",
	    "{\"backup nightly\": {\"last_run\": 99999999999999999999999}}" };
	struct job_state	st;
	char			note[256];
	size_t			i;

	CHECK_INT(parse("{\"backup old\": {\"last_run\": 1779990000}}", &st,
	    note, sizeof note), 0);
	CHECK_INT(st.last_run, 0);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&st, 0x55, sizeof st);
		CHECK_INT(parse(bad[i], &st, note, sizeof note), -EBADMSG);
		CHECK_INT(st.last_run, 0);
		CHECK_CONTAINS(note, "ignored");
	}
	/* a NUL inside, and a note buffer too small for the message */
	CHECK_INT(jobs_state_parse("{\"a\"\0:1}", 8, JOB, NOW, &st, note,
	    sizeof note), -EBADMSG);
	CHECK_INT(parse("{\"backup nightly\": {\"last_run\": \"x\", "
	    "\"last_ok\": 5}}", &st, note, 8), 1);
	CHECK(strlen(note) < 8);
}

int
main(void)
{
	RUN(test_good_entry);
	RUN(test_future_is_clamped);
	RUN(test_wrong_types_and_ranges);
	RUN(test_unknown_jobs_and_bad_files);
	return (tap_done());
}
