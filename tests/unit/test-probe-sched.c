/*
 * The probes' grid (daemon/probe/probe-sched.c): how long a slot is for
 * an interval and the load of the runs that share it, and what a run
 * weighs. Ten slots an interval, at most a second each; halved while a
 * slot would hold more than 100 (one per plain-http run, four per run
 * through libcurl); never under 3 ms; each length divides the lengths
 * for smaller loads, so that grids made before a reload share their
 * boundaries with grids made after.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "probe-int.h"
#include "tap.h"

#define MS	1000ULL
#define S	(1000 * MS)

static void
test_ten_slots(void)
{
	CHECK_UINT(probe_grid_slot(1 * S, 1), 100 * MS);
	CHECK_UINT(probe_grid_slot(1 * S, 1000), 100 * MS);
	CHECK_UINT(probe_grid_slot(10 * S, 100), 1 * S);
	/* at most a second: a 30 s interval has thirty */
	CHECK_UINT(probe_grid_slot(30 * S, 3000), 1 * S);
}

static void
test_halved_when_full(void)
{
	CHECK_UINT(probe_grid_slot(1 * S, 1001), 50 * MS);
	CHECK_UINT(probe_grid_slot(1 * S, 2000), 50 * MS);
	/* 1,000 https probes a second: 25 a slot */
	CHECK_UINT(probe_grid_slot(1 * S, 4000), 25 * MS);
	CHECK_UINT(probe_grid_slot(1 * S, 4001), 12500);
	CHECK_UINT(probe_grid_slot(30 * S, 3001), 500 * MS);
	/* 15.625 ms is not halved again: 7.8125 would not divide a second */
	CHECK_UINT(probe_grid_slot(10 * S, 100000000), 15625);
}

static void
test_short_intervals(void)
{
	/* 2 ms slots are within one wake-up's reach: none */
	CHECK_UINT(probe_grid_slot(20 * MS, 1), 0);
	CHECK_UINT(probe_grid_slot(100 * MS, 1), 10 * MS);
	/* never halved under 3 ms, however full */
	CHECK_UINT(probe_grid_slot(50 * MS, 1000000), 5 * MS);
	CHECK_UINT(probe_grid_slot(100 * MS, 1000000), 5 * MS);
}

static void
test_lengths_divide(void)
{
	static const uint64_t	ivs[] = { 100 * MS, 1 * S, 10 * S, 30 * S,
	    3600 * S };
	unsigned int		i, a, b;
	uint64_t		la, lb;

	for (i = 0; i < sizeof ivs / sizeof ivs[0]; i++) {
		for (a = 1; a < 20000000; a = a * 3 + 7) {
			for (b = a; b < 40000000; b = b * 2 + 13) {
				la = probe_grid_slot(ivs[i], a);
				lb = probe_grid_slot(ivs[i], b);
				if (lb == 0 || la % lb != 0) {
					tap_diag("interval %llu us: %llu for "
					    "%u, %llu for %u",
					    (unsigned long long)ivs[i],
					    (unsigned long long)la, a,
					    (unsigned long long)lb, b);
					CHECK(0);
					return;
				}
			}
		}
	}
}

/* As probe_apply_config() weighs a probe. */
static unsigned int
load_of(const struct probe_conf *pc)
{
	return (probe_start_load(pc->kind == PROBE_HTTP &&
	    http_probe_needs_curl(pc)));
}

static void
test_start_load(void)
{
	struct probe_conf	pc;

	memset(&pc, 0, sizeof pc);
	pc.kind = PROBE_HTTP;
	pc.method = "GET";
	pc.url = "http://127.0.0.1:8080/health";
	CHECK_UINT(load_of(&pc), 1);
	pc.url = "https://127.0.0.1:8443/health";
	CHECK_UINT(load_of(&pc), 4);
	pc.url = "http://127.0.0.1:8080/health";
	pc.follow_redirects = 1;
	CHECK_UINT(load_of(&pc), 4);
	memset(&pc, 0, sizeof pc);
	pc.kind = PROBE_TCP;
	CHECK_UINT(load_of(&pc), 1);
}

int
main(void)
{
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	RUN(test_ten_slots);
	RUN(test_halved_when_full);
	RUN(test_short_intervals);
	RUN(test_lengths_divide);
	RUN(test_start_load);
	return (tap_done());
}
