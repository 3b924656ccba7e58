/*
 * Probe commands. Unlike the others, "probe run" fails (exit 1) on a
 * result, not only on an error answer: a probe that ran and failed is
 * what a deployment script calling it wants to stop on, with or without
 * --json.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

/*
 * The state, and how far a probe is on its way to the other one: a probe
 * that failed once of fall = 3 is still up, but the operator should see
 * "up, failing 1/3".
 */
static void
cmd_probe_state_cell(struct out_table *t, json_t *p)
{
	const char	*state = out_str(p, "state");
	long long	 ok = out_int(p, "ok_streak");
	long long	 bad = out_int(p, "fail_streak");

	if (strcmp(state, "up") == 0 && bad > 0)
		out_table_cell(t, "up, failing %lld/%lld", bad,
		    out_int(p, "fall"));
	else if (strcmp(state, "down") == 0 && ok > 0)
		out_table_cell(t, "down, rising %lld/%lld", ok,
		    out_int(p, "rise"));
	else if (strcmp(state, "unknown") == 0 && (ok > 0 || bad > 0))
		out_table_cell(t, "unknown, %s %lld/%lld", ok > 0 ? "rising" :
		    "failing", ok > 0 ? ok : bad, out_int(p, ok > 0 ? "rise" :
		    "fall"));
	else if (out_str(p, "note")[0] != '\0')
		/* "down, held: depends on db", "down, maintenance until 12:30" */
		out_table_cell(t, "%s, %s", state, out_clean(out_str(p,
		    "note")));
	else
		out_table_cell(t, "%s", state);
}

static int
cmd_probe_list_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "PROBE", 5, OUT_GROW },
		{ "KIND", 0, OUT_GROW },
		{ "STATE", 7, OUT_GROW },
		{ "SINCE", 0, OUT_GROW },
		{ "LATENCY", 0, OUT_RIGHT | OUT_GROW },
		{ "LAST RESULT", 0, 0 },
	};
	struct out_table	*t;
	json_t			*p, *last;
	size_t			 i;

	if (json_array_size(json_object_get(r, "probes")) == 0) {
		printf("no probes configured ([probe NAME] sections in "
		    "opsd.conf)\n");
		return (EXIT_OK);
	}
	t = out_table_new(cols, 6, NULL);
	json_array_foreach(json_object_get(r, "probes"), i, p) {
		last = json_object_get(p, "last");
		out_table_row(t);
		out_table_cell(t, "%s", out_str(p, "name"));
		out_table_cell(t, "%s", out_str(p, "kind"));
		cmd_probe_state_cell(t, p);
		out_table_cell(t, "%s", out_when(p, "since"));
		if (!json_is_object(last)) {
			out_table_cell(t, "-");
			out_table_cell(t, "-");
			continue;
		}
		out_table_cell(t, "%.1f ms", out_real(last, "latency_ms"));
		out_table_cell(t, "%s%s", out_true(last, "ok") ? "ok: " :
		    "FAILED: ", out_str(last, "reason"));
	}
	out_table_print(t, 1);
	return (EXIT_OK);
}

static int
cmd_probe_list_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, "probe.list", NULL, cmd_probe_list_show));
}

const struct cli_cmd cmd_probe_list_entry = {
	"probe", "list", "",
	"every probe: state, since when, latency, last result",
	{ "probe.list" }, 0, 0, 0, cmd_probe_list_exec
};

static int
cmd_probe_run_show(json_t *r)
{
	json_t	*c;

	printf("%s: %s in %.1f ms: %s (state %s)\n", out_str(r, "probe"),
	    out_true(r, "ok") ? "ok" : "FAILED", out_real(r, "latency_ms"),
	    out_clean(out_str(r, "reason")), out_str(r, "state"));
	if ((c = json_object_get(r, "cert")) != NULL)
		printf("  certificate: %s, expires %s (%.1f days), %s\n",
		    out_clean(out_str(c, "subject")), out_when(c, "not_after"),
		    out_real(c, "days_left"), out_true(c, "verified") ?
		    "verified" : "NOT verified");
	if (json_object_get(r, "server_version") != NULL)
		printf("  server version %s\n", out_str(r, "server_version"));
	return (EXIT_OK);
}

static int
cmd_probe_run_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*r;
	int	 rc;

	r = conn_call(cli, "probe.run", json_pack("{s:s}", "name", argv[0]));
	if (r == NULL)
		return (EXIT_RPC);
	out_result(cli, r, cmd_probe_run_show);
	rc = out_true(r, "ok") ? EXIT_OK : EXIT_RPC;
	json_decref(r);
	return (rc);
}

const struct cli_cmd cmd_probe_run_entry = {
	"probe", "run", "NAME",
	"run a probe now and show the result (exit 1 if it failed)",
	{ "probe.run" }, 1, 1, 3600000, cmd_probe_run_exec
};

static int
cmd_probe_history_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "TIME", 0, OUT_GROW },
		{ "RESULT", 0, OUT_GROW },
		{ "LATENCY", 0, OUT_RIGHT | OUT_GROW },
		{ "REASON", 0, 0 },
	};
	struct out_table	*t;
	json_t			*h;
	size_t			 i;

	printf("probe %s, state %s\n", out_str(r, "probe"),
	    out_str(r, "state"));
	t = out_table_new(cols, 4, NULL);
	json_array_foreach(json_object_get(r, "history"), i, h) {
		out_table_row(t);
		out_table_cell(t, "%s", out_when(h, "time"));
		out_table_cell(t, "%s", out_true(h, "ok") ? "ok" : "FAILED");
		out_table_cell(t, "%.1f ms", out_real(h, "latency_ms"));
		out_table_cell(t, "%s", out_str(h, "reason"));
	}
	out_table_print(t, 1);
	return (EXIT_OK);
}

static int
cmd_probe_history_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, "probe.history", json_pack("{s:s}",
	    "name", argv[0]), cmd_probe_history_show));
}

const struct cli_cmd cmd_probe_history_entry = {
	"probe", "history", "NAME",
	"a probe's last results, newest first",
	{ "probe.history" }, 1, 1, 0, cmd_probe_history_exec
};

/* "probe show NAME": one probe of probe.list, with its recovery */
static int
cmd_probe_show_show(json_t *p)
{
	json_t		*rec, *last, *m;

	printf("probe %s (%s)\n", out_str(p, "name"), out_str(p, "kind"));
	printf("  state:      %s", out_str(p, "state"));
	if (json_is_string(json_object_get(p, "since")))
		printf(" since %s", out_when(p, "since"));
	printf("\n");
	if (out_str(p, "note")[0] != '\0')
		printf("  note:       %s\n", out_clean(out_str(p, "note")));
	if ((last = json_object_get(p, "last")) != NULL &&
	    json_is_object(last))
		printf("  last run:   %s in %.1f ms: %s\n", out_true(last, "ok") ?
		    "ok" : "FAILED", out_real(last, "latency_ms"),
		    out_clean(out_str(last, "reason")));
	if ((m = json_object_get(p, "maintenance")) != NULL)
		printf("  maintenance: %s (%s)%s%s\n",
		    json_is_string(json_object_get(m, "until")) ?
		    out_when(m, "until") : "until stopped", out_str(m, "source"),
		    out_str(m, "reason")[0] ? ": " : "",
		    out_clean(out_str(m, "reason")));
	if (json_object_get(p, "depends_on") != NULL) {
		json_t	*d;
		size_t	 j;

		printf("  depends on:");
		json_array_foreach(json_object_get(p, "depends_on"), j, d)
			printf(" %s", out_clean(json_string_value(d)));
		printf("\n");
	}
	if ((rec = json_object_get(p, "recovery")) != NULL) {
		json_t	*tot = json_object_get(rec, "restarts_total");

		printf("  on down:    %s %s (%s)\n", out_str(rec, "on_down"),
		    out_str(rec, "service"), out_str(rec, "status"));
		printf("  restarts:   %lld in the window, limit %s; %lld ok, "
		    "%lld failed, %lld timed out in all\n", out_int(rec,
		    "restarts"), out_str(rec, "restart_limit"), out_int(tot,
		    "ok"), out_int(tot, "failed"), out_int(tot, "timeout"));
	}
	return (EXIT_OK);
}

/* The probe's own object of probe.list, also with --json. */
static int
cmd_probe_show_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*r, *p;
	size_t	 i;
	int	 rc = EXIT_RPC;

	(void)argc;
	if ((r = conn_call(cli, "probe.list", NULL)) == NULL)
		return (EXIT_RPC);
	json_array_foreach(json_object_get(r, "probes"), i, p) {
		if (strcmp(out_str(p, "name"), argv[0]) == 0) {
			rc = out_result(cli, p, cmd_probe_show_show);
			break;
		}
	}
	if (i == json_array_size(json_object_get(r, "probes")))
		cli_die(EXIT_RPC, "no probe named '%s' (probe list shows them)",
		    argv[0]);
	json_decref(r);
	return (rc);
}

const struct cli_cmd cmd_probe_show_entry = {
	"probe", "show", "NAME",
	"one probe: state, last result, hold (dependency, maintenance) and "
	"restarts",
	{ "probe.list" }, 1, 1, 0, cmd_probe_show_exec
};
