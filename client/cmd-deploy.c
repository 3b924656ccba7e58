/*
 * Deploy commands: what serves (slot, version, the warm previous one),
 * a cutover to a new version, a rollback to the previous one, an abort of
 * the cutover under way. "start" and "rollback" answer with the op id;
 * with --follow they keep reading, one line per step and per health
 * check, then the result, which is the exit code (0 ok; 1 failed or
 * rolled back). Every way a deploy can end prints how to roll back, so
 * nobody has to look it up at night.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

#define DEPLOY_M_LIST		"deploy.list"
#define DEPLOY_M_STATUS		"deploy.status"
#define DEPLOY_M_START		"deploy.start"
#define DEPLOY_M_ROLLBACK	"deploy.rollback"
#define DEPLOY_M_ABORT		"deploy.abort"
#define DEPLOY_N_PROGRESS	"deploy.progress"
#define DEPLOY_N_FINISHED	"deploy.finished"

/* "1.2s", "850 ms", "3m 4s" */
static const char *
cmd_deploy_ms(long long ms)
{
	static char	 bufs[4][32];
	static int	 next;
	char		*buf = bufs[next++ % 4];

	if (ms < 0)
		snprintf(buf, sizeof bufs[0], "-");
	else if (ms < 1000)
		snprintf(buf, sizeof bufs[0], "%lld ms", ms);
	else if (ms < 60000)
		snprintf(buf, sizeof bufs[0], "%.1fs", (double)ms / 1000);
	else
		snprintf(buf, sizeof bufs[0], "%lldm %llds", ms / 60000,
		    (ms / 1000) % 60);
	return (buf);
}

static const char *
cmd_deploy_int_ms(json_t *o, const char *key)
{
	if (!json_is_integer(json_object_get(o, key)))
		return ("-");
	return (cmd_deploy_ms(out_int(o, key)));
}

/* "green 2.0" for {slot, version} */
static const char *
cmd_deploy_slot(json_t *o)
{
	static char	 bufs[2][128];
	static int	 next;
	char		*buf = bufs[next++ % 2];

	if (!json_is_object(o))
		return ("-");
	snprintf(buf, sizeof bufs[0], "%s %s", out_str(o, "slot"),
	    out_str(o, "version"));
	return (buf);
}

/* --- status -------------------------------------------------------------- */

static int
cmd_deploy_list_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "NAME", 4, OUT_GROW },
		{ "STATE", 0, OUT_GROW },
		{ "ACTIVE", 0, OUT_GROW },
		{ "PREVIOUS", 0, OUT_GROW },
		{ "LAST", 0, 0 },
	};
	struct out_table	*t;
	json_t			*d, *prev, *op, *last;
	size_t			 i;

	if (json_array_size(json_object_get(r, "deploys")) == 0) {
		printf("no deploys configured ([deploy NAME] sections in "
		    "opsd.conf)\n");
		return (EXIT_OK);
	}
	t = out_table_new(cols, 5, NULL);
	json_array_foreach(json_object_get(r, "deploys"), i, d) {
		prev = json_object_get(d, "previous");
		op = json_object_get(d, "operation");
		last = json_object_get(d, "last");
		out_table_row(t);
		out_table_cell(t, "%s", out_str(d, "name"));
		out_table_cell(t, "%s", out_str(d, "state"));
		out_table_cell(t, "%s", cmd_deploy_slot(json_object_get(d,
		    "active")));
		if (json_is_object(prev))
			out_table_cell(t, "%s%s", cmd_deploy_slot(prev),
			    out_true(prev, "running") ? " (warm)" : "");
		else
			out_table_cell(t, "-");
		if (json_is_object(last))
			out_table_cell(t, "%s %s, %s", out_str(last, "result"),
			    out_str(last, "version"), out_when(last,
			    "started"));
		else
			out_table_cell(t, "-");
		if (json_is_object(op))
			out_table_note(t, 1, "%s of %s to %s: step %s, op %s",
			    out_str(op, "mode"), out_str(op, "version"),
			    out_str(op, "slot"), out_str(op, "step"),
			    out_str(op, "op"));
		if (json_is_string(json_object_get(d, "degraded")))
			out_table_note(t, 1, "degraded: %s", out_str(d,
			    "degraded"));
	}
	out_table_print(t, 1);
	return (EXIT_OK);
}

static void
cmd_deploy_history(json_t *r)
{
	static const struct out_col cols[] = {
		{ "STARTED", 0, OUT_GROW },
		{ "MODE", 0, OUT_GROW },
		{ "VERSION", 0, OUT_GROW },
		{ "FROM", 0, OUT_GROW },
		{ "SLOT", 0, OUT_GROW },
		{ "RESULT", 0, OUT_GROW },
		{ "DURATION", 0, OUT_RIGHT | OUT_GROW },
		{ "CUTOVER", 0, OUT_RIGHT | OUT_GROW },
		{ "OP", 0, 0 },
	};
	struct out_table	*t;
	json_t			*h;
	size_t			 i;

	if (json_array_size(json_object_get(r, "deploys")) == 0)
		return;
	printf("\ndeploys, newest first:\n");
	t = out_table_new(cols, 9, "  ");
	json_array_foreach(json_object_get(r, "deploys"), i, h) {
		out_table_row(t);
		out_table_cell(t, "%s", out_when(h, "started"));
		out_table_cell(t, "%s", out_str(h, "mode"));
		out_table_cell(t, "%s", out_str(h, "version"));
		out_table_cell(t, "%s", out_str(h, "from_version"));
		out_table_cell(t, "%s", out_str(h, "slot"));
		out_table_cell(t, "%s", out_str(h, "result"));
		out_table_cell(t, "%s", cmd_deploy_int_ms(h, "duration_ms"));
		out_table_cell(t, "%s", cmd_deploy_int_ms(h, "cutover_ms"));
		out_table_cell(t, "%s", out_str(h, "op"));
		if (json_is_string(json_object_get(h, "error")))
			out_table_note(t, 1, "at %s: %s", out_str(h, "step"),
			    out_clean(out_str(h, "error")));
	}
	out_table_print(t, 1);
}

static int
cmd_deploy_status_show(json_t *r)
{
	json_t		*a = json_object_get(r, "active");
	json_t		*p = json_object_get(r, "previous");
	json_t		*op = json_object_get(r, "operation");
	json_t		*rb = json_object_get(r, "rollback");
	json_t		*c = json_object_get(r, "counts"), *k;
	size_t		 i;

	out_kv("deploy", "%s", out_str(r, "name"));
	out_kv("state", "%s", out_str(r, "state"));
	out_kv("active", "slot %s (port %lld), version %s, since %s",
	    out_str(a, "slot"), out_int(a, "port"), out_str(a, "version"),
	    out_when(a, "since"));
	if (out_true(a, "irreversible"))
		out_kv("", "its migration cannot be undone");
	if (json_is_object(p)) {
		if (out_true(p, "running"))
			out_kv("previous", "slot %s (port %lld), version %s, "
			    "warm%s%s", out_str(p, "slot"), out_int(p, "port"),
			    out_str(p, "version"),
			    json_is_null(json_object_get(p, "stop_at")) ? "" :
			    " until ", json_is_null(json_object_get(p,
			    "stop_at")) ? "" : out_when(p, "stop_at"));
		else
			out_kv("previous", "slot %s (port %lld), version %s, "
			    "stopped", out_str(p, "slot"), out_int(p, "port"),
			    out_str(p, "version"));
	} else
		out_kv("previous", "-");
	if (json_is_string(json_object_get(r, "degraded")))
		out_kv("degraded", "%s", out_str(r, "degraded"));
	if (json_is_object(op)) {
		out_kv("under way", "%s of %s to slot %s: step %s, %s so far "
		    "(op %s%s%s)", out_str(op, "mode"), out_str(op, "version"),
		    out_str(op, "slot"), out_str(op, "step"),
		    cmd_deploy_int_ms(op, "elapsed_ms"), out_str(op, "op"),
		    out_true(op, "recovered") ? ", resumed after a restart" :
		    "", out_true(op, "rolling_back") ? ", rolling back" : "");
		json_array_foreach(json_object_get(op, "checks"), i, k) {
			if (out_true(k, "ok"))
				out_kv(i == 0 ? "checks" : "", "%s ok (%lld, "
				    "version %s, %lld ms)", out_when(k, "at"),
				    out_int(k, "status"), out_str(k, "version"),
				    out_int(k, "ms"));
			else
				out_kv(i == 0 ? "checks" : "", "%s failed: %s",
				    out_when(k, "at"), out_str(k, "error"));
		}
	}
	if (json_is_object(rb))
		out_kv("rollback", "%s (to %s on slot %s, %s)", out_str(rb,
		    "command"), out_str(rb, "version"), out_str(rb, "slot"),
		    out_true(rb, "instant") ? "instant: the slot is warm" :
		    "started again through the health gate");
	else
		out_kv("rollback", "- (no version served before)");
	if (json_is_object(c))
		out_kv("deploys", "%lld ok, %lld failed, %lld rolled back",
		    out_int(c, "ok"), out_int(c, "failed"),
		    out_int(c, "rolled_back"));
	cmd_deploy_history(r);
	return (EXIT_OK);
}

static int
cmd_deploy_status_exec(struct cli *cli, int argc, char **argv)
{
	if (argc == 0)
		return (conn_call_show(cli, DEPLOY_M_LIST, NULL,
		    cmd_deploy_list_show));
	return (conn_call_show(cli, DEPLOY_M_STATUS, json_pack("{s:s}",
	    "name", argv[0]), cmd_deploy_status_show));
}

const struct cli_cmd cmd_deploy_status_entry = {
	"deploy", "status", "[NAME]",
	"what serves: active and previous slot and version, the cutover "
	"under way, the last deploys with durations and outcomes",
	{ DEPLOY_M_LIST, DEPLOY_M_STATUS }, 0, 1, 0, cmd_deploy_status_exec
};

/* --- start, rollback ------------------------------------------------------- */

static int
cmd_deploy_started_show(json_t *r)
{
	printf("%s of %s started: version %s to slot %s, op %s\n",
	    out_str(r, "mode"), out_str(r, "deploy"), out_str(r, "version"),
	    out_str(r, "slot"), out_str(r, "op"));
	if (!out_true(r, "follow"))
		printf("follow it: opsd-cli deploy status %s; roll back: "
		    "opsd-cli deploy rollback %s\n", out_str(r, "deploy"),
		    out_str(r, "deploy"));
	return (EXIT_OK);
}

/*
 * One notification of a followed cutover: a step as it begins (or a
 * health check, a verify answer) with the time since the start;
 * deploy.finished ends the command with its result as the exit code.
 */
static int
cmd_deploy_note(struct cli *cli, const char *method, json_t *p, json_t *msg)
{
	json_t		*rb;
	const char	*res;
	int		 ok;

	if (strcmp(method, DEPLOY_N_PROGRESS) == 0) {
		if (cli->json) {
			out_json_message(msg);
			return (-1);
		}
		if (json_is_string(json_object_get(p, "detail")))
			printf("%7s  %-12s  %s\n", cmd_deploy_int_ms(p,
			    "elapsed_ms"), out_str(p, "step"),
			    out_clean(out_str(p, "detail")));
		else
			printf("%7s  %s\n", cmd_deploy_int_ms(p, "elapsed_ms"),
			    out_str(p, "step"));
		fflush(stdout);
		return (-1);
	}
	if (strcmp(method, DEPLOY_N_FINISHED) != 0)
		return (-1);
	res = out_str(p, "result");
	ok = strcmp(res, "ok") == 0;
	if (cli->json) {
		out_json_message(msg);
		return (ok ? EXIT_OK : EXIT_RPC);
	}
	rb = json_object_get(p, "rollback");
	if (ok)
		printf("%s: ok: version %s serves on slot %s, in %s%s%s\n",
		    out_str(p, "deploy"), out_str(p, "version"),
		    out_str(p, "slot"), cmd_deploy_int_ms(p, "duration_ms"),
		    json_is_integer(json_object_get(p, "cutover_ms")) ?
		    ", healthy to verified in " : "",
		    json_is_integer(json_object_get(p, "cutover_ms")) ?
		    cmd_deploy_int_ms(p, "cutover_ms") : "");
	else
		printf("%s: %s at %s: %s\n", out_str(p, "deploy"), res,
		    out_str(p, "step"), out_clean(out_str(p, "error")));
	if (json_is_string(json_object_get(p, "degraded")))
		printf("DEGRADED: traffic is on slot %s (version %s), which "
		    "failed its checks; both slots keep running\n",
		    out_str(p, "active_slot"), out_str(p, "active_version"));
	else if (!ok)
		printf("serving: version %s on slot %s\n",
		    out_str(p, "active_version"), out_str(p, "active_slot"));
	if (json_is_object(rb))
		printf("roll back: %s (to %s on slot %s%s)\n", out_str(rb,
		    "command"), out_str(rb, "version"), out_str(rb, "slot"),
		    out_true(rb, "instant") ? ", instant" : "");
	return (ok ? EXIT_OK : EXIT_RPC);
}

/* NAME [--version V] [--follow] [--force], in any order */
static int
cmd_deploy_cutover(struct cli *cli, int argc, char **argv, const char *method,
    int want_version, int allow_force)
{
	json_t	*p = json_object();
	int	 i, follow = 0, force = 0, r;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") ==
		    0)
			follow = 1;
		else if (allow_force && strcmp(argv[i], "--force") == 0)
			force = 1;
		else if (want_version && strcmp(argv[i], "--version") == 0) {
			if (i + 1 >= argc)
				cli_die(EXIT_USAGE, "--version needs a value");
			json_object_set_new(p, "version",
			    json_string(argv[++i]));
		} else if (want_version && strncmp(argv[i], "--version=", 10) ==
		    0)
			json_object_set_new(p, "version",
			    json_string(argv[i] + 10));
		else if (argv[i][0] == '-')
			cli_die(EXIT_USAGE, "unknown option '%s'", argv[i]);
		else if (json_object_get(p, "name") == NULL)
			json_object_set_new(p, "name", json_string(argv[i]));
		else
			cli_die(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
	}
	if (json_object_get(p, "name") == NULL)
		cli_die(EXIT_USAGE, "missing NAME");
	if (want_version && json_object_get(p, "version") == NULL)
		cli_die(EXIT_USAGE, "missing --version VERSION");
	if (follow)
		json_object_set_new(p, "follow", json_true());
	if (force)
		json_object_set_new(p, "force", json_true());
	r = conn_call_show(cli, method, p, cmd_deploy_started_show);
	if (r == EXIT_OK && follow)
		r = conn_follow(cli, cmd_deploy_note);
	return (r);
}

static int
cmd_deploy_start_exec(struct cli *cli, int argc, char **argv)
{
	return (cmd_deploy_cutover(cli, argc, argv, DEPLOY_M_START, 1, 0));
}

const struct cli_cmd cmd_deploy_start_entry = {
	"deploy", "start", "NAME --version VERSION [--follow]",
	"start VERSION in the idle slot, gate it on its health, move nginx to "
	"it (--follow: each step; exit 1 unless it ends ok; 'deploy "
	"rollback NAME' undoes it)",
	{ DEPLOY_M_START }, 2, 4, 0, cmd_deploy_start_exec
};

static int
cmd_deploy_rollback_exec(struct cli *cli, int argc, char **argv)
{
	return (cmd_deploy_cutover(cli, argc, argv, DEPLOY_M_ROLLBACK, 0, 1));
}

const struct cli_cmd cmd_deploy_rollback_entry = {
	"deploy", "rollback", "NAME [--follow] [--force]",
	"send traffic back to the version that served before (instant while "
	"its slot is warm; --force after a migration that cannot be undone)",
	{ DEPLOY_M_ROLLBACK }, 1, 3, 0, cmd_deploy_rollback_exec
};

/* --- abort ------------------------------------------------------------------ */

static int
cmd_deploy_abort_show(json_t *r)
{
	printf("%s: op %s is being undone (opsd-cli deploy status %s)\n",
	    out_str(r, "deploy"), out_str(r, "op"), out_str(r, "deploy"));
	return (EXIT_OK);
}

static int
cmd_deploy_abort_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*p = json_object();
	int	 i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0)
			json_object_set_new(p, "force", json_true());
		else if (argv[i][0] == '-')
			cli_die(EXIT_USAGE, "unknown option '%s'", argv[i]);
		else if (json_object_get(p, "name") == NULL)
			json_object_set_new(p, "name", json_string(argv[i]));
		else
			cli_die(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
	}
	if (json_object_get(p, "name") == NULL)
		cli_die(EXIT_USAGE, "missing NAME");
	return (conn_call_show(cli, DEPLOY_M_ABORT, p, cmd_deploy_abort_show));
}

const struct cli_cmd cmd_deploy_abort_entry = {
	"deploy", "abort", "NAME [--force]",
	"stop the cutover under way and undo it from where it is (--force: "
	"even after a migration that cannot be undone)",
	{ DEPLOY_M_ABORT }, 1, 2, 0, cmd_deploy_abort_exec
};
