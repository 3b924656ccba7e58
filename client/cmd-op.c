/*
 * Op journal commands: what the daemon's multi-step changes (a backup
 * run, a rotation, a cutover) did, step by step, including those cut
 * short by a crash and finished by start-up recovery. Read-only, unlike
 * most families: the journal is changed by running ops, never from here.
 * A daemon that predates the journal answers "method not found", which
 * is printed like any other error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define CMD_OP_ERROR_WIDTH	40	/* op show has the whole message */

/* "--kind K" or "--kind=K"; advances *i past the value */
static const char *
cmd_op_value(int argc, char **argv, int *i, const char *opt)
{
	size_t	len = strlen(opt);

	if (strcmp(argv[*i], opt) == 0) {
		if (*i + 1 >= argc)
			cli_die(EXIT_USAGE, "op list: %s needs a value", opt);
		return (argv[++*i]);
	}
	if (strncmp(argv[*i], opt, len) == 0 && argv[*i][len] == '=')
		return (argv[*i] + len + 1);
	return (NULL);
}

static int
cmd_op_list_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "ID", 2, OUT_GROW },
		{ "KIND", 4, OUT_GROW },
		{ "OBJECT", 6, OUT_GROW },
		{ "STEP", 4, OUT_GROW },
		{ "STATE", 5, OUT_GROW },
		{ "STARTED", 0, OUT_GROW },
		{ "FINISHED", 0, OUT_GROW },
		{ "ERROR", 0, 0 },
	};
	struct out_table	*t;
	json_t			*op;
	const char		*err;
	size_t			 i;
	int			 recovered = 0;

	if (json_array_size(json_object_get(r, "ops")) == 0) {
		printf("no ops recorded\n");
		return (EXIT_OK);
	}
	t = out_table_new(cols, 8, NULL);
	json_array_foreach(json_object_get(r, "ops"), i, op) {
		out_table_row(t);
		out_table_cell(t, "%s", out_str(op, "id"));
		out_table_cell(t, "%s", out_str(op, "kind"));
		out_table_cell(t, "%s", out_str(op, "object"));
		out_table_cell(t, "%s", out_str(op, "step"));
		out_table_cell(t, "%s%s", out_str(op, "state"),
		    out_true(op, "recovered") ? "*" : "");
		out_table_cell(t, "%s", out_when(op, "started"));
		out_table_cell(t, "%s", out_when(op, "finished"));
		err = out_str(op, "error");
		if (strlen(err) > CMD_OP_ERROR_WIDTH)
			out_table_cell(t, "%.*s...", CMD_OP_ERROR_WIDTH - 3,
			    err);
		else
			out_table_cell(t, "%s", err);
		recovered |= out_true(op, "recovered");
	}
	out_table_print(t, 1);
	if (recovered)
		printf("* finished by start-up recovery after a crash\n");
	return (EXIT_OK);
}

/* [--kind K] [--object NAME] [--limit N], in any order */
static int
cmd_op_list_exec(struct cli *cli, int argc, char **argv)
{
	json_t		*p = json_object();
	const char	*v;
	char		*end;
	long		 n;
	int		 i;

	for (i = 0; i < argc; i++) {
		if ((v = cmd_op_value(argc, argv, &i, "--kind")) != NULL)
			json_object_set_new(p, "kind", json_string(v));
		else if ((v = cmd_op_value(argc, argv, &i, "--object")) != NULL)
			json_object_set_new(p, "object", json_string(v));
		else if ((v = cmd_op_value(argc, argv, &i, "--limit")) != NULL) {
			n = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || n < 1 || n > 1000000)
				cli_die(EXIT_USAGE, "op list: --limit '%s' is "
				    "not a positive number", v);
			json_object_set_new(p, "limit", json_integer(n));
		} else if (argv[i][0] == '-')
			cli_die(EXIT_USAGE, "unknown option '%s'", argv[i]);
		else
			cli_die(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
	}
	return (conn_call_show(cli, "op.list", p, cmd_op_list_show));
}

const struct cli_cmd cmd_op_list_entry = {
	"op", "list", "[--kind K] [--object NAME] [--limit N]",
	"multi-step changes, newest first, unfinished ones included",
	{ "op.list" }, 0, 6, 0, cmd_op_list_exec
};

static int
cmd_op_show_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "TIME", 0, OUT_GROW },
		{ "STEP", 0, 0 },
	};
	struct out_table	*t;
	json_t			*s;
	size_t			 i;

	out_kv("op", "%s", out_str(r, "id"));
	out_kv("kind", "%s", out_str(r, "kind"));
	out_kv("object", "%s", out_str(r, "object"));
	out_kv("state", "%s%s", out_str(r, "state"),
	    out_true(r, "recovered") ? " (finished by start-up recovery "
	    "after a crash)" : "");
	out_kv("step", "%s", out_str(r, "step"));
	out_kv("started", "%s", out_when(r, "started"));
	out_kv("finished", "%s", out_when(r, "finished"));
	if (json_is_string(json_object_get(r, "error")))
		out_kv("error", "%s", out_str(r, "error"));
	if (json_array_size(json_object_get(r, "steps")) == 0)
		return (EXIT_OK);
	printf("\n");
	t = out_table_new(cols, 2, "  ");
	json_array_foreach(json_object_get(r, "steps"), i, s) {
		out_table_row(t);
		out_table_cell(t, "%s", out_when(s, "at"));
		out_table_cell(t, "%s", out_str(s, "name"));
	}
	out_table_print(t, 1);
	return (EXIT_OK);
}

static int
cmd_op_show_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, "op.show", json_pack("{s:s}", "id",
	    argv[0]), cmd_op_show_show));
}

const struct cli_cmd cmd_op_show_entry = {
	"op", "show", "ID",
	"one op: its state, error and every step with its time",
	{ "op.show" }, 1, 1, 0, cmd_op_show_exec
};
