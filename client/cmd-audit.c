/*
 * audit: the production checklist, run by the daemon on its loop
 * (audit.run), printed worst first with where each finding is and the
 * exact fix. --fail-on makes it a gate for CI or a deploy: exit 1 when a
 * finding is at or above that severity. What the daemon could not check
 * is listed apart and never counts as passed or failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define AUDIT_M_RUN	"audit.run"
#define AUDIT_M_CHECKS	"audit.checks"

static const char *const cmd_audit_sevs[] = {
	"info", "low", "medium", "high", "critical", NULL
};

static int	cmd_audit_fail = -1;

static int
cmd_audit_rank(const char *s)
{
	int	i;

	for (i = 0; cmd_audit_sevs[i] != NULL; i++)
		if (strcmp(cmd_audit_sevs[i], s) == 0)
			return (i);
	return (-1);
}

static int
cmd_audit_verdict(json_t *r)
{
	json_t	*f;
	size_t	 i;

	if (cmd_audit_fail < 0)
		return (EXIT_OK);
	json_array_foreach(json_object_get(r, "findings"), i, f)
		if (cmd_audit_rank(out_str(f, "severity")) >= cmd_audit_fail)
			return (EXIT_RPC);
	return (EXIT_OK);
}

static int
cmd_audit_json(json_t *r)
{
	out_show_json(r);
	return (cmd_audit_verdict(r));
}

/*
 * One line per place and reason: a database that does not answer is
 * one line naming its checks, not thirty.
 */
static void
cmd_audit_unchecked(json_t *list)
{
	json_t	*f, *g;
	size_t	 i, j, n = json_array_size(list), k;
	char	*done = calloc(n + 1, 1);

	if (done == NULL)
		cli_die(EXIT_RPC, "out of memory");
	for (i = 0; i < n; i++) {
		if (done[i])
			continue;
		f = json_array_get(list, i);
		printf("  %s", out_str(f, "id"));
		for (j = i + 1, k = 1; j < n; j++) {
			g = json_array_get(list, j);
			if (done[j] || strcmp(out_str(f, "where"), out_str(g,
			    "where")) != 0 || strcmp(out_str(f, "what"),
			    out_str(g, "what")) != 0)
				continue;
			done[j] = 1;
			if (k++ < 4)
				printf(", %s", out_str(g, "id"));
		}
		if (k > 4)
			printf(" and %zu more", k - 4);
		printf("  %s: %s\n", out_clean(out_str(f, "where")),
		    out_clean(out_str(f, "what")));
	}
	free(done);
}

static int
cmd_audit_show(json_t *r)
{
	json_t	*f, *c = json_object_get(r, "counts");
	size_t	 i, n = json_array_size(json_object_get(r, "findings"));

	json_array_foreach(json_object_get(r, "findings"), i, f) {
		printf("%-8s %s  %s\n", out_str(f, "severity"), out_str(f, "id"),
		    out_clean(out_str(f, "where")));
		printf("         %s\n", out_clean(out_str(f, "what")));
		if (*out_str(f, "fix") != '\0' && strcmp(out_str(f, "fix"),
		    "-") != 0)
			printf("         fix: %s\n", out_clean(out_str(f, "fix")));
	}
	if (json_array_size(json_object_get(r, "unchecked")) > 0) {
		printf("%snot checked:\n", n > 0 ? "\n" : "");
		cmd_audit_unchecked(json_object_get(r, "unchecked"));
	}
	printf("%s%zu finding%s: %lld critical, %lld high, %lld medium, %lld "
	    "low, %lld info (%.2fs)\n", n > 0 || json_array_size(
	    json_object_get(r, "unchecked")) > 0 ? "\n" : "", n, n == 1 ? "" :
	    "s", out_int(c, "critical"), out_int(c, "high"), out_int(c,
	    "medium"), out_int(c, "low"), out_int(c, "info"),
	    out_real(r, "elapsed_seconds"));
	return (cmd_audit_verdict(r));
}

static int
cmd_audit_checks_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "ID", 0, OUT_GROW },
		{ "SEVERITY", 0, OUT_GROW },
		{ "SCOPE", 0, OUT_GROW },
		{ "DESCRIPTION", 0, 0 },
	};
	struct out_table	*t;
	json_t			*c;
	size_t			 i;

	t = out_table_new(cols, 4, "");
	json_array_foreach(json_object_get(r, "checks"), i, c) {
		out_table_row(t);
		out_table_cell(t, "%s", out_str(c, "id"));
		out_table_cell(t, "%s", out_str(c, "severity"));
		out_table_cell(t, "%s", out_str(c, "scope"));
		out_table_cell(t, "%s", out_str(c, "description"));
	}
	out_table_print(t, 1);
	return (EXIT_OK);
}

static int
cmd_audit_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*p = json_object(), *only = NULL;
	int	 i, list = 0;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--fail-on") == 0 && i + 1 < argc) {
			if ((cmd_audit_fail = cmd_audit_rank(argv[++i])) < 0)
				cli_die(EXIT_USAGE, "--fail-on: one of info low "
				    "medium high critical");
		} else if (strcmp(argv[i], "--only") == 0) {
			if (only == NULL)
				only = json_array();
			while (i + 1 < argc && argv[i + 1][0] != '-')
				json_array_append_new(only,
				    json_string(argv[++i]));
			if (json_array_size(only) == 0)
				cli_die(EXIT_USAGE, "--only: give check ids or "
				    "families (opsd-cli audit --checks lists "
				    "them)");
		} else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
			char	*end;
			long	 n = strtol(argv[++i], &end, 10);

			if (*end != '\0' || n < 0 || n > 100000)
				cli_die(EXIT_USAGE, "--limit: findings a check, "
				    "0 for all");
			json_object_set_new(p, "limit", json_integer(n));
		} else if (strcmp(argv[i], "--checks") == 0)
			list = 1;
		else
			cli_die(EXIT_USAGE, "unknown argument '%s' (or its value "
			    "is missing)", argv[i]);
	}
	if (list) {
		json_decref(p);
		json_decref(only);
		return (conn_call_show(cli, AUDIT_M_CHECKS, NULL,
		    cmd_audit_checks_show));
	}
	if (only != NULL)
		json_object_set_new(p, "only", only);
	/* --json still exits by --fail-on: the show prints the JSON */
	if (cli->json) {
		cli->json = 0;
		i = conn_call_show(cli, AUDIT_M_RUN, p, cmd_audit_json);
		cli->json = 1;
		return (i);
	}
	return (conn_call_show(cli, AUDIT_M_RUN, p, cmd_audit_show));
}

const struct cli_cmd cmd_audit_entry = {
	NULL, "audit", "[--fail-on SEVERITY] [--only ID...] [--limit N] "
	"[--checks]",
	"run the production checklist: secrets, env files, databases, this "
	"host (exit 1 with a finding at or above --fail-on)",
	{ AUDIT_M_RUN, AUDIT_M_CHECKS }, 0, 64, 120000, cmd_audit_exec
};
