/*
 * Maintenance commands: start, stop and list windows in which probes keep
 * running and reporting while their alerts and restarts are held.
 * "maintenance start api --for 30m --reason 'db upgrade'", "maintenance
 * start --all", "maintenance stop api", "maintenance stop" (every one).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static int
cmd_maint_list_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "NAME", 4, OUT_GROW },
		{ "SOURCE", 0, OUT_GROW },
		{ "SINCE", 0, OUT_GROW },
		{ "UNTIL", 0, OUT_GROW },
		{ "REASON", 0, 0 },
	};
	struct out_table	*t;
	json_t			*w;
	size_t			 i;

	if (json_array_size(json_object_get(r, "windows")) == 0) {
		printf("no maintenance window is open\n");
		return (EXIT_OK);
	}
	t = out_table_new(cols, 5, NULL);
	json_array_foreach(json_object_get(r, "windows"), i, w) {
		out_table_row(t);
		out_table_cell(t, "%s", strcmp(out_str(w, "name"), "*") == 0 ?
		    "(all probes)" : out_str(w, "name"));
		out_table_cell(t, "%s", out_str(w, "source"));
		out_table_cell(t, "%s", out_when(w, "started"));
		out_table_cell(t, "%s", json_is_string(json_object_get(w,
		    "until")) ? out_when(w, "until") : "until stopped");
		out_table_cell(t, "%s", out_clean(out_str(w, "reason")));
	}
	out_table_print(t, 1);
	return (EXIT_OK);
}

static int
cmd_maint_list_exec(struct cli *cli, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return (conn_call_show(cli, "maintenance.list", NULL,
	    cmd_maint_list_show));
}

const struct cli_cmd cmd_maint_list_entry = {
	"maintenance", "list", "",
	"the open maintenance windows (alerts and restarts held)",
	{ "maintenance.list" }, 0, 0, 0, cmd_maint_list_exec
};

/* NAME|--all [--for DURATION] [--reason TEXT], in any order */
static int
cmd_maint_start_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*p = json_object();
	int	 i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0)
			json_object_set_new(p, "all", json_true());
		else if (strcmp(argv[i], "--for") == 0 && i + 1 < argc)
			json_object_set_new(p, "for", json_string(argv[++i]));
		else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc)
			json_object_set_new(p, "reason",
			    json_string(argv[++i]));
		else if (argv[i][0] == '-')
			cli_die(EXIT_USAGE, "unknown option '%s' (or it "
			    "lacks its value)", argv[i]);
		else if (json_object_get(p, "name") == NULL)
			json_object_set_new(p, "name", json_string(argv[i]));
		else
			cli_die(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
	}
	if ((json_object_get(p, "name") == NULL) ==
	    (json_object_get(p, "all") == NULL))
		cli_die(EXIT_USAGE, "give NAME or --all");
	return (conn_call_show(cli, "maintenance.start", p,
	    cmd_maint_list_show));
}

const struct cli_cmd cmd_maint_start_entry = {
	"maintenance", "start", "NAME|--all [--for DURATION] [--reason TEXT]",
	"hold the alerts and restarts of a probe, a service or all probes "
	"(until stopped, or for DURATION); probes keep running",
	{ "maintenance.start" }, 1, 5, 0, cmd_maint_start_exec
};

static int
cmd_maint_stop_show(json_t *r)
{
	printf("%lld window%s ended\n", out_int(r, "stopped"),
	    out_int(r, "stopped") == 1 ? "" : "s");
	return (EXIT_OK);
}

static int
cmd_maint_stop_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*p = json_object();

	if (argc == 1 && strcmp(argv[0], "--all") == 0)
		json_object_set_new(p, "all", json_true());
	else if (argc == 1 && argv[0][0] != '-')
		json_object_set_new(p, "name", json_string(argv[0]));
	else if (argc == 1)
		cli_die(EXIT_USAGE, "unknown option '%s'", argv[0]);
	return (conn_call_show(cli, "maintenance.stop", p,
	    cmd_maint_stop_show));
}

const struct cli_cmd cmd_maint_stop_entry = {
	"maintenance", "stop", "[NAME|--all]",
	"end a maintenance window (without NAME or with --all: every one)",
	{ "maintenance.stop" }, 0, 1, 0, cmd_maint_stop_exec
};
