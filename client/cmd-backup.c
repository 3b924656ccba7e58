/*
 * Backup commands. Their options after the command (--follow, --dry-run,
 * --into, ...) are parsed here by hand in any order, since getopt
 * stopped at the command. "backup run --follow" keeps reading after the
 * answer (as "secret rotate --follow" does): the daemon sends progress
 * notifications until the run ends.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

/* NAME plus one optional flag, which sets key to true */
static json_t *
cmd_backup_name_flag(int argc, char **argv, const char *lng, const char *shrt,
    const char *key)
{
	json_t	*p = json_object();
	int	 i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], lng) == 0 || strcmp(argv[i], shrt) == 0)
			json_object_set_new(p, key, json_true());
		else if (argv[i][0] == '-')
			cli_die(EXIT_USAGE, "unknown option '%s'", argv[i]);
		else if (json_object_get(p, "name") == NULL)
			json_object_set_new(p, "name", json_string(argv[i]));
		else
			cli_die(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
	}
	if (json_object_get(p, "name") == NULL)
		cli_die(EXIT_USAGE, "missing NAME");
	return (p);
}

static int
cmd_backup_list_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "ID", 0, OUT_GROW },
		{ "TIME", 0, OUT_GROW },
		{ "SIZE", 0, OUT_RIGHT | OUT_GROW },
		{ "VERIFIED", 0, OUT_GROW },
		{ "UPLOADED", 0, OUT_GROW },
		{ "SHA256", 0, 0 },
	};
	struct out_table	*t;
	json_t			*b, *it;
	size_t			 i, j;
	char			 sz[32];

	if (json_array_size(json_object_get(r, "backups")) == 0) {
		printf("no backups configured ([backup NAME] sections in "
		    "opsd.conf)\n");
		return (EXIT_OK);
	}
	json_array_foreach(json_object_get(r, "backups"), i, b) {
		printf("%sbackup %s (database %s, schedule '%s')\n", i ? "\n" :
		    "", out_str(b, "name"), out_str(b, "database"),
		    out_str(b, "schedule"));
		printf("  next run %s; newest good %s%s%s\n",
		    out_when(b, "next_run"), out_when(b, "newest_good"),
		    out_true(b, "stale") ?
		    "  ** STALE: older than max_age **" : "",
		    json_is_string(json_object_get(b, "running")) ?
		    "  (running now)" : "");
		if (json_array_size(json_object_get(b, "backups")) == 0) {
			printf("  no backups yet\n");
			continue;
		}
		t = out_table_new(cols, 6, "  ");
		json_array_foreach(json_object_get(b, "backups"), j, it) {
			out_bytes((double)out_int(it, "bytes"), sz, sizeof sz);
			out_table_row(t);
			out_table_cell(t, "%s", out_str(it, "id"));
			out_table_cell(t, "%s", out_when(it, "time"));
			out_table_cell(t, "%s", sz);
			out_table_cell(t, "%s", out_str(it, "verified"));
			out_table_cell(t, "%s", out_str(it, "uploaded"));
			/* an own file that is not a good manifest: why */
			if (json_is_string(json_object_get(it, "error")))
				out_table_cell(t, "%s", out_str(it, "error"));
			else
				out_table_cell(t, "%.12s", out_str(it,
				    "sha256"));
		}
		out_table_print(t, 1);
		/* the newest verification that could not run: no verdict */
		json_array_foreach(json_object_get(b, "backups"), j, it) {
			if (json_is_string(json_object_get(it, "verify_note")))
				printf("  %s: %s\n", out_str(it, "id"),
				    out_clean(out_str(it, "verify_note")));
		}
	}
	return (EXIT_OK);
}

static int
cmd_backup_list_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, "backup.list", argc > 0 ?
	    json_pack("{s:s}", "name", argv[0]) : json_object(),
	    cmd_backup_list_show));
}

const struct cli_cmd cmd_backup_list_entry = {
	"backup", "list", "[NAME]",
	"backups: schedule, newest good copy, staleness, stored files",
	{ "backup.list" }, 0, 1, 0, cmd_backup_list_exec
};

static int
cmd_backup_prune_show(json_t *r)
{
	json_t	*v;
	size_t	 i;
	int	 dry = out_true(r, "dry_run");

	if (json_array_size(json_object_get(r, "removed")) == 0)
		printf("nothing to remove for %s\n", out_str(r, "backup"));
	json_array_foreach(json_object_get(r, "removed"), i, v)
		printf("%s %s\n", dry ? "would remove" : "removed",
		    json_string_value(v));
	printf("%zu kept\n", json_array_size(json_object_get(r, "kept")));
	return (EXIT_OK);
}

static int
cmd_backup_prune_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, "backup.prune", cmd_backup_name_flag(argc,
	    argv, "--dry-run", "-n", "dry_run"), cmd_backup_prune_show));
}

const struct cli_cmd cmd_backup_prune_entry = {
	"backup", "prune", "NAME [--dry-run]",
	"apply the retention policy now (--dry-run: only list)",
	{ "backup.prune" }, 1, 2, 0, cmd_backup_prune_exec
};

static int
cmd_backup_restore_show(json_t *r)
{
	char	sz[32];

	out_bytes((double)out_int(r, "bytes"), sz, sizeof sz);
	printf("restored %s (%s, sha256 %.12s... checked) into database %s%s%s "
	    "in %.1fs\n", out_str(r, "id"), sz, out_str(r, "sha256"),
	    out_str(r, "into"), out_true(r, "created") ? " (created)" : "",
	    out_true(r, "forced") ? " (existing objects replaced)" : "",
	    out_real(r, "seconds"));
	return (EXIT_OK);
}

/* ID --into DB [--create] [--force], in any order */
static int
cmd_backup_restore_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*p = json_object();
	int	 i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--into") == 0 && i + 1 < argc)
			json_object_set_new(p, "into", json_string(argv[++i]));
		else if (strncmp(argv[i], "--into=", 7) == 0)
			json_object_set_new(p, "into", json_string(argv[i] + 7));
		else if (strcmp(argv[i], "--create") == 0)
			json_object_set_new(p, "create", json_true());
		else if (strcmp(argv[i], "--force") == 0)
			json_object_set_new(p, "force", json_true());
		else if (argv[i][0] == '-')
			cli_die(EXIT_USAGE, "unknown option '%s'", argv[i]);
		else if (json_object_get(p, "id") == NULL)
			json_object_set_new(p, "id", json_string(argv[i]));
		else
			cli_die(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
	}
	if (json_object_get(p, "id") == NULL || json_object_get(p, "into") ==
	    NULL)
		cli_die(EXIT_USAGE, "usage: opsd-cli backup restore ID --into "
		    "DBNAME [--create] [--force]");
	return (conn_call_show(cli, "backup.restore", p,
	    cmd_backup_restore_show));
}

const struct cli_cmd cmd_backup_restore_entry = {
	"backup", "restore", "ID --into DB [--create] [--force]",
	"check a backup's checksum and restore it into a database",
	{ "backup.restore" }, 1, 5, 86400000, cmd_backup_restore_exec
};

static int
cmd_backup_run_show(json_t *r)
{
	printf("backup started: run %s\n", out_str(r, "run"));
	return (EXIT_OK);
}

/*
 * One progress notification of a followed run; the backup.finished one
 * ends the command, with its result as the exit code.
 */
static int
cmd_backup_run_note(struct cli *cli, const char *method, json_t *p,
    json_t *msg)
{
	char		 sz[32], rate[32];
	const char	*v;
	json_t		*x;
	size_t		 i;
	int		 tty = isatty(1), r;

	if (cli->json)
		out_json_message(msg);
	else {
		out_bytes((double)out_int(p, "bytes"), sz, sizeof sz);
		out_bytes(out_real(p, "rate_bytes_per_second"), rate,
		    sizeof rate);
		printf("%s%s  %-10s %10s  %10s/s  %6.1fs%s", tty ? "\r" : "",
		    out_str(p, "run"), out_str(p, "step"), sz, rate,
		    out_real(p, "elapsed_seconds"), tty ? "   " : "\n");
		fflush(stdout);
	}
	if (strcmp(method, "backup.finished") != 0)
		return (-1);
	/* skipped: another host of the fleet runs it */
	r = strcmp(out_str(p, "result"), "ok") == 0 ||
	    strcmp(out_str(p, "result"), "skipped") == 0 ? EXIT_OK : EXIT_RPC;
	/*
	 * Written but not proven to restore (verification failed or could
	 * not run): exit 1 too, so that "backup run --follow" gates a deploy.
	 */
	v = out_str(p, "verification");
	if (r == EXIT_OK && (strcmp(v, "failed") == 0 ||
	    strcmp(v, "unavailable") == 0))
		r = EXIT_RPC;
	if (!cli->json) {
		printf("%s%s: %s", tty ? "\n" : "", out_str(p, "run"),
		    out_str(p, "result"));
		if (strcmp(v, "failed") == 0)
			printf(" (verification FAILED: %s)",
			    out_clean(out_str(p, "verify_error")));
		else if (strcmp(v, "unavailable") == 0)
			printf(" (verification could not run: %s)",
			    out_clean(out_str(p, "verify_error")));
		if (json_object_get(p, "error") != NULL)
			printf(": %s", out_clean(out_str(p, "error")));
		printf("\n");
		if (json_array_size(json_object_get(p, "pruned")) > 0) {
			printf("pruned by the retention policy:");
			json_array_foreach(json_object_get(p, "pruned"), i, x)
				printf(" %s", json_string_value(x));
			printf("\n");
		}
	}
	return (r);
}

static int
cmd_backup_run_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*p;
	int	 follow, r;

	p = cmd_backup_name_flag(argc, argv, "--follow", "-f", "follow");
	follow = json_object_get(p, "follow") != NULL;
	r = conn_call_show(cli, "backup.run", p, cmd_backup_run_show);
	if (r == EXIT_OK && follow)
		r = conn_follow(cli, cmd_backup_run_note);
	return (r);
}

const struct cli_cmd cmd_backup_run_entry = {
	"backup", "run", "NAME [--follow]",
	"start a backup now (--follow: show progress, exit 1 if it fails "
	"or its verification does not pass)",
	{ "backup.run" }, 1, 2, 0, cmd_backup_run_exec
};

static int
cmd_backup_show_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, "backup.show", json_pack("{s:s}", "id",
	    argv[0]), out_show_json));
}

const struct cli_cmd cmd_backup_show_entry = {
	"backup", "show", "ID",
	"one backup's manifest",
	{ "backup.show" }, 1, 1, 0, cmd_backup_show_exec
};

static int
cmd_backup_verify_show(json_t *r)
{
	json_t	*v = json_object_get(r, "verify"), *c;
	size_t	 i;

	printf("%s verified: checksum ok, restored into a scratch database"
	    "\n", out_str(r, "id"));
	json_array_foreach(json_object_get(v, "checks"), i, c)
		printf("  check %s: got %s, expected %s: %s\n",
		    out_str(c, "check"), out_str(c, "got"),
		    out_str(c, "expect"), out_true(c, "ok") ? "ok" : "FAILED");
	return (EXIT_OK);
}

static int
cmd_backup_verify_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, "backup.verify", json_pack("{s:s}", "id",
	    argv[0]), cmd_backup_verify_show));
}

const struct cli_cmd cmd_backup_verify_entry = {
	"backup", "verify", "ID",
	"verify a backup now: checksum, restore into a scratch database, "
	"checks",
	{ "backup.verify" }, 1, 1, 86400000, cmd_backup_verify_exec
};
