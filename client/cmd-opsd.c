/*
 * Commands about the daemon itself rather than an object it manages:
 * status (with its health summary), summary (the same as status --check,
 * a monitoring check), reload, log-level, methods and jobs, plus call, the escape
 * hatch that reaches any method by name for what has no command yet.
 * They take at most one argument, so each reads argv directly.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "opsd-proto.h"

#define OPSD_M_HEALTH	"opsd.health"

static int
cmd_status_show(json_t *r)
{
	json_t		*loop = json_object_get(r, "loop");
	json_t		*objs = json_object_get(r, "objects"), *v;
	const char	*key;
	char		 up[64], list[512] = "";
	size_t		 off = 0;

	out_uptime(out_int(r, "uptime_seconds"), up, sizeof up);
	printf("opsd %s, pid %lld, up %s%s\n", out_str(r, "version"),
	    out_int(r, "pid"), up, out_true(r, "stopping") ? " (stopping)" :
	    "");
	out_kv("config", "%s", out_str(r, "config"));
	out_kv("state dir", "%s", out_str(r, "state_dir"));
	out_kv("socket", "%s%s", out_str(r, "socket"),
	    out_true(r, "socket_activated") ? " (socket-activated)" : "");
	out_kv("log", "%s to %s", out_str(r, "log_level"),
	    out_str(r, "log_target"));
	out_kv("connections", "%lld", out_int(loop, "connections"));
	out_kv("requests", "%lld", out_int(r, "requests_total"));
	out_kv("loop", "lag %.2f ms (max %.2f ms), cpu %.1f%%",
	    out_real(loop, "lag_ms"), out_real(loop, "lag_max_ms"),
	    out_real(loop, "cpu_percent"));
	out_kv("reloads", "%lld", out_int(r, "reloads"));
	if (out_int(r, "watchdog_usec") > 0)
		out_kv("watchdog", "%.1fs",
		    (double)out_int(r, "watchdog_usec") / 1e6);
	json_object_foreach(objs, key, v) {
		off += (size_t)snprintf(list + off, off < sizeof list ?
		    sizeof list - off : 0, "%s%s %lld", off ? ", " : "", key,
		    (long long)json_integer_value(v));
		if (off >= sizeof list)
			break;
	}
	out_kv("objects", "%s", off ? list : "none configured");
	return (EXIT_OK);
}

/* --- health ------------------------------------------------------------- */

/* "ok" -> 0 ... "critical" -> 2; anything else is UNKNOWN (3). */
static int
health_code(json_t *h)
{
	static const char *const names[] = { "ok", "warning", "critical" };
	const char	*s = out_str(h, "status");
	int		 i;

	for (i = 0; i < 3; i++)
		if (strcmp(s, names[i]) == 0)
			return (i);
	return (EXIT_UNKNOWN);
}

/*
 * The Nagios line: "CRITICAL: probe api down; backup app stale (26h)",
 * or what is well when nothing is wrong ("OK: 3 probes up, 1 backup
 * verified").
 */
static void
health_line(json_t *h, char *buf, size_t len)
{
	static const char *const words[] = { "OK", "WARNING", "CRITICAL",
	    "UNKNOWN" };
	json_t		*list, *v;
	const char	*sep;
	size_t		 i, off;
	int		 code = health_code(h);

	list = json_object_get(h, code == 0 ? "fine" : "problems");
	sep = code == 0 ? ", " : "; ";
	off = (size_t)snprintf(buf, len, "%s:", words[code]);
	json_array_foreach(list, i, v) {
		if (off >= len)
			break;
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
		    i > 0 ? sep : " ", out_clean(json_string_value(v)));
	}
	if (json_array_size(list) == 0 && off < len)
		snprintf(buf + off, len - off, " %s", code == 0 ? "opsd "
		    "running, nothing configured to check" : "see opsd-cli "
		    "--json summary");
}

static int
cmd_health_check_show(json_t *h)
{
	char	line[2048];

	health_line(h, line, sizeof line);
	printf("%s\n", line);
	return (health_code(h));
}

/*
 * status --check and summary. Every outcome has its Nagios meaning: the
 * state as the exit code, and no answer, an error answer or a bad
 * command line are UNKNOWN (3), on stdout as one line too.
 */
static int
cmd_health_check(struct cli *cli)
{
	json_t	*h;
	int	 r;

	cli_check_mode();
	if ((h = conn_call(cli, OPSD_M_HEALTH, NULL)) == NULL) {
		printf("UNKNOWN: opsd answered %s with an error\n",
		    OPSD_M_HEALTH);
		return (EXIT_UNKNOWN);
	}
	if (cli->json) {
		out_json_result(h);
		r = health_code(h);
	} else
		r = cmd_health_check_show(h);
	json_decref(h);
	return (r);
}

/* After status's own lines: the state, then each problem. */
static void
cmd_status_health(json_t *h)
{
	json_t	*v;
	size_t	 i;
	char	 line[2048];

	if (health_code(h) == 0) {
		health_line(h, line, sizeof line);
		out_kv("health", "%s", line);
		return;
	}
	json_array_foreach(json_object_get(h, "problems"), i, v)
		out_kv(i == 0 ? "health" : "", "%s%s", i == 0 ?
		    (health_code(h) == 1 ? "WARNING: " : "CRITICAL: ") : "",
		    json_string_value(v));
}

static int
cmd_status_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*st, *h;
	int	 r;

	if (argc == 1 && strcmp(argv[0], "--check") == 0)
		return (cmd_health_check(cli));
	if (argc == 1)
		cli_die(EXIT_USAGE, "status: unknown argument '%s' (only "
		    "--check)", argv[0]);
	if ((st = conn_call(cli, OPSD_M_STATUS, NULL)) == NULL)
		return (EXIT_RPC);
	if ((h = conn_call(cli, OPSD_M_HEALTH, NULL)) == NULL) {
		json_decref(st);
		return (EXIT_RPC);
	}
	if (cli->json) {
		/* opsd.status's members as they were, and the summary */
		json_object_set(st, "health", h);
		out_json_result(st);
		r = EXIT_OK;
	} else {
		r = cmd_status_show(st);
		cmd_status_health(h);
	}
	json_decref(st);
	json_decref(h);
	return (r);
}

const struct cli_cmd cmd_status_entry = {
	NULL, "status", "[--check]",
	"show version, uptime, configuration, load and health "
	"(--check: one Nagios line, exit 0-3)",
	{ OPSD_M_STATUS, OPSD_M_HEALTH }, 0, 1, 0, cmd_status_exec
};

static int
cmd_summary_exec(struct cli *cli, int argc, char **argv)
{
	return (cmd_health_check(cli));
}

const struct cli_cmd cmd_summary_entry = {
	NULL, "summary", "",
	"health in one Nagios line: exit 0 OK, 1 WARNING, 2 CRITICAL, "
	"3 UNKNOWN",
	{ OPSD_M_HEALTH }, 0, 0, 0, cmd_summary_exec
};

static int
cmd_reload_show(json_t *r)
{
	printf("reloaded %s\n", out_str(r, "config"));
	return (EXIT_OK);
}

static int
cmd_reload_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, OPSD_M_RELOAD, NULL, cmd_reload_show));
}

const struct cli_cmd cmd_reload_entry = {
	NULL, "reload", "",
	"re-read the configuration; on errors the old one stays",
	{ OPSD_M_RELOAD }, 0, 0, 0, cmd_reload_exec
};

static int
cmd_log_level_show(json_t *r)
{
	printf("log level %s (was %s)\n", out_str(r, "level"),
	    out_str(r, "previous"));
	return (EXIT_OK);
}

static int
cmd_log_level_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, OPSD_M_LOG_LEVEL, json_pack("{s:s}",
	    "level", argv[0]), cmd_log_level_show));
}

const struct cli_cmd cmd_log_level_entry = {
	NULL, "log-level", "LEVEL",
	"set the log level: error, warning, notice, info or debug",
	{ OPSD_M_LOG_LEVEL }, 1, 1, 0, cmd_log_level_exec
};

static int
cmd_methods_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "METHOD", 0, OUT_GROW },
		{ "ACCESS", 6, 0 },
		{ "WHAT IT DOES", 0, 0 },
	};
	struct out_table	*t;
	json_t			*m, *p;
	size_t			 i, j;

	t = out_table_new(cols, 3, NULL);
	json_array_foreach(json_object_get(r, "methods"), i, m) {
		out_table_row(t);
		out_table_cell(t, "%s", out_str(m, "name"));
		out_table_cell(t, "%s", out_str(m, "access"));
		out_table_cell(t, "%s", out_str(m, "help"));
		/* "?" marks an optional parameter */
		json_array_foreach(json_object_get(m, "params"), j, p)
			out_table_note(t, 2, "%s%s (%s): %s",
			    out_str(p, "name"), out_true(p, "required") ? "" :
			    "?", out_str(p, "type"), out_str(p, "help"));
	}
	out_table_print(t, 1);
	return (EXIT_OK);
}

static int
cmd_methods_names(json_t *r)
{
	json_t	*m;
	size_t	 i;

	json_array_foreach(json_object_get(r, "methods"), i, m)
		printf("%s\n", out_str(m, "name"));
	return (EXIT_OK);
}

static int
cmd_methods_exec(struct cli *cli, int argc, char **argv)
{
	int	quiet = 0;

	if (argc == 1 && strcmp(argv[0], "-q") == 0)
		quiet = 1;
	else if (argc == 1)
		cli_die(EXIT_USAGE, "methods: unknown argument '%s' (only -q)",
		    argv[0]);
	return (conn_call_show(cli, OPSD_M_METHODS, NULL, quiet ?
	    cmd_methods_names : cmd_methods_show));
}

const struct cli_cmd cmd_methods_entry = {
	NULL, "methods", "[-q]",
	"list the daemon's methods, their params and who may call them "
	"(-q: names only)",
	{ OPSD_M_METHODS }, 0, 1, 0, cmd_methods_exec
};

static int
cmd_jobs_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "JOB", 4, OUT_GROW },
		{ "NEXT RUN", 0, OUT_GROW },
		{ "LAST RUN", 0, OUT_GROW },
		{ "RESULT", 0, OUT_GROW },
		{ "MESSAGE", 0, 0 },
	};
	struct out_table	*t;
	json_t			*j;
	size_t			 i;

	t = out_table_new(cols, 5, NULL);
	json_array_foreach(json_object_get(r, "jobs"), i, j) {
		out_table_row(t);
		out_table_cell(t, "%s", out_str(j, "name"));
		out_table_cell(t, "%s", out_when(j, "next_run"));
		out_table_cell(t, "%s", out_when(j, "last_run"));
		out_table_cell(t, "%s", out_str(j, "last_result"));
		out_table_cell(t, "%s", out_str(j, "last_message"));
	}
	out_table_print(t, 1);
	return (EXIT_OK);
}

static int
cmd_jobs_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, "opsd.jobs", NULL, cmd_jobs_show));
}

const struct cli_cmd cmd_jobs_entry = {
	NULL, "jobs", "",
	"scheduled jobs with their next and last run and last result",
	{ "opsd.jobs" }, 0, 0, 0, cmd_jobs_exec
};

static int
cmd_call_exec(struct cli *cli, int argc, char **argv)
{
	json_error_t	 jerr;
	json_t		*p = NULL;

	if (argc > 1) {
		p = json_loads(argv[1], 0, &jerr);
		if (p == NULL || (!json_is_object(p) && !json_is_array(p)))
			cli_die(EXIT_USAGE, "call: PARAMS must be a JSON object "
			    "or array, e.g. '{\"level\":\"debug\"}'%s%s",
			    p == NULL ? ": " : "", p == NULL ? jerr.text : "");
	}
	return (conn_call_show(cli, argv[0], p, out_show_json));
}

/* Calls whatever method it is given, so it lists none. */
const struct cli_cmd cmd_call_entry = {
	NULL, "call", "METHOD [JSON-PARAMS]",
	"call any method with raw JSON params; prints the result",
	{ NULL }, 1, 2, 0, cmd_call_exec
};
