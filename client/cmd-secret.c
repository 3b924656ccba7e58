/*
 * Secret commands: what the daemon knows about the secrets it generates
 * and rotates (version, fingerprint, age, next rotation, the files it
 * publishes), and a rotation now. No result carries a value, and nothing
 * here would print one: a secret is shown by its sha256 fingerprint.
 * "secret rotate --follow" keeps reading after the answer, like "backup
 * run --follow": one line per step, then the result, which is the exit
 * code (0 ok, 1 failed or rolled back).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

#define SECRET_M_LIST		"secret.list"
#define SECRET_M_SHOW		"secret.show"
#define SECRET_M_ROTATE		"secret.rotate"
#define SECRET_N_PROGRESS	"secret.progress"
#define SECRET_N_FINISHED	"secret.finished"

/* "3d 4h 5m" for age_seconds; "-" when the daemon has none */
static void
cmd_secret_age(json_t *o, const char *key, char *buf, size_t len)
{
	json_t	*v = json_object_get(o, key);
	double	 d;

	if (!json_is_number(v) || !isfinite(d = json_number_value(v))) {
		snprintf(buf, len, "-");
		return;
	}
	out_uptime(d > 0 ? (long long)d : 0, buf, len);
}

/* An integer member, or "-" for null (a secret with no value yet). */
static const char *
cmd_secret_int(json_t *o, const char *key)
{
	static char	 bufs[2][24];
	static int	 next;
	char		*buf = bufs[next++ % 2];

	if (json_is_integer(json_object_get(o, key)))
		snprintf(buf, sizeof bufs[0], "%lld", out_int(o, key));
	else
		snprintf(buf, sizeof bufs[0], "-");
	return (buf);
}

/* --- list ---------------------------------------------------------------- */

static int
cmd_secret_list_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "NAME", 4, OUT_GROW },
		{ "KIND", 0, OUT_GROW },
		{ "VERSION", 0, OUT_RIGHT | OUT_GROW },
		{ "FINGERPRINT", 0, OUT_GROW },
		{ "AGE", 0, OUT_GROW },
		{ "NEXT", 0, OUT_GROW },
		{ "STATE", 0, 0 },
	};
	struct out_table	*t;
	json_t			*s;
	size_t			 i;
	char			 age[64];

	if (json_array_size(json_object_get(r, "secrets")) == 0) {
		printf("no secrets configured ([secret NAME] sections in "
		    "opsd.conf)\n");
		return (EXIT_OK);
	}
	t = out_table_new(cols, 7, NULL);
	json_array_foreach(json_object_get(r, "secrets"), i, s) {
		cmd_secret_age(s, "age_seconds", age, sizeof age);
		out_table_row(t);
		out_table_cell(t, "%s", out_str(s, "name"));
		out_table_cell(t, "%s", out_str(s, "kind"));
		out_table_cell(t, "%s", cmd_secret_int(s, "version"));
		out_table_cell(t, "%s", out_str(s, "fingerprint"));
		out_table_cell(t, "%s", age);
		out_table_cell(t, "%s", out_when(s, "next_rotation"));
		out_table_cell(t, "%s", out_str(s, "state"));
		/* why a rotation failed, under its secret */
		if (json_is_string(json_object_get(s, "last_error")))
			out_table_note(t, 1, "last error: %s", out_str(s,
			    "last_error"));
	}
	out_table_print(t, 1);
	return (EXIT_OK);
}

static int
cmd_secret_list_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, SECRET_M_LIST, NULL,
	    cmd_secret_list_show));
}

const struct cli_cmd cmd_secret_list_entry = {
	"secret", "list", "",
	"every secret: kind, version, fingerprint, age, next rotation, state",
	{ SECRET_M_LIST }, 0, 0, 0, cmd_secret_list_exec
};

/* --- show ---------------------------------------------------------------- */

static void
cmd_secret_show_versions(json_t *r)
{
	static const struct out_col cols[] = {
		{ "VERSION", 0, OUT_RIGHT | OUT_GROW },
		{ "LABEL", 0, OUT_GROW },
		{ "FINGERPRINT", 0, OUT_GROW },
		{ "CREATED", 0, OUT_GROW },
		{ "RETIRED", 0, 0 },
	};
	struct out_table	*t;
	json_t			*v;
	size_t			 i;

	if (json_array_size(json_object_get(r, "versions")) == 0)
		return;
	printf("\nversions, newest first:\n");
	t = out_table_new(cols, 5, "  ");
	json_array_foreach(json_object_get(r, "versions"), i, v) {
		out_table_row(t);
		out_table_cell(t, "%s", cmd_secret_int(v, "version"));
		out_table_cell(t, "%s", out_str(v, "label"));
		out_table_cell(t, "%s", out_str(v, "fingerprint"));
		out_table_cell(t, "%s", out_when(v, "created"));
		out_table_cell(t, "%s", out_when(v, "retired"));
	}
	out_table_print(t, 1);
}

static void
cmd_secret_show_files(json_t *r)
{
	static const struct out_col cols[] = {
		{ "KIND", 0, OUT_GROW },
		{ "MODE", 0, OUT_GROW },
		{ "OWNER", 0, OUT_GROW },
		{ "GROUP", 0, OUT_GROW },
		{ "PATH", 0, 0 },
	};
	struct out_table	*t;
	json_t			*f;
	size_t			 i;

	if (json_array_size(json_object_get(r, "files")) == 0)
		return;
	printf("\nfiles:\n");
	t = out_table_new(cols, 5, "  ");
	json_array_foreach(json_object_get(r, "files"), i, f) {
		out_table_row(t);
		out_table_cell(t, "%s", out_str(f, "kind"));
		out_table_cell(t, "%s", out_str(f, "mode"));
		out_table_cell(t, "%s", out_str(f, "owner"));
		out_table_cell(t, "%s", out_str(f, "group"));
		out_table_cell(t, "%s", out_str(f, "path"));
	}
	out_table_print(t, 1);
}

static int
cmd_secret_show_show(json_t *r)
{
	json_t		*rot = json_object_get(r, "rotation");
	json_t		*last = json_object_get(r, "last_result");
	json_t		*v;
	const char	*err;
	char		 age[64];
	size_t		 i;

	out_kv("secret", "%s", out_str(r, "name"));
	if (json_is_string(json_object_get(r, "strategy")))
		out_kv("kind", "%s, %s", out_str(r, "kind"),
		    out_str(r, "strategy"));
	else
		out_kv("kind", "%s", out_str(r, "kind"));
	out_kv("state", "%s", out_str(r, "state"));
	if (json_is_string(json_object_get(r, "role")))
		out_kv("role", "%s", out_str(r, "role"));
	out_kv("path", "%s", out_str(r, "path"));
	out_kv("version", "%s", cmd_secret_int(r, "version"));
	out_kv("fingerprint", "%s", out_str(r, "fingerprint"));
	cmd_secret_age(r, "age_seconds", age, sizeof age);
	if (json_is_number(json_object_get(r, "age_seconds")))
		out_kv("created", "%s (%s ago)", out_when(r, "created"), age);
	else
		out_kv("created", "%s", out_when(r, "created"));
	out_kv("next rotation", "%s", out_when(r, "next_rotation"));
	if (json_is_object(rot))
		out_kv("rotating", "op %s, step %s, started %s%s",
		    out_str(rot, "op"), out_str(rot, "step"),
		    out_when(rot, "started"), out_true(rot, "recovered") ?
		    " (interrupted by a crash, being recovered)" : "");
	if (json_is_object(last)) {
		if (json_is_string(json_object_get(last, "error")))
			out_kv("last result", "%s at %s (op %s): %s",
			    out_str(last, "result"), out_when(last, "at"),
			    out_str(last, "op"), out_str(last, "error"));
		else
			out_kv("last result", "%s at %s (op %s)",
			    out_str(last, "result"), out_when(last, "at"),
			    out_str(last, "op"));
	} else
		out_kv("last result", "-");
	/* the last error, unless the last result just said it */
	err = out_str(r, "last_error");
	if (json_is_string(json_object_get(r, "last_error")) &&
	    (!json_is_object(last) || strcmp(err, out_str(last, "error")) != 0))
		out_kv("last error", "%s", err);
	if (out_int(r, "failures") > 0)
		out_kv("failures", "%lld in a row", out_int(r, "failures"));
	/* alternating: the two roles should differ only in their password */
	json_array_foreach(json_object_get(r, "roles_differ"), i, v)
		out_kv(i == 0 ? "roles differ" : "", "%s",
		    json_string_value(v) != NULL ? json_string_value(v) : "-");
	cmd_secret_show_versions(r);
	cmd_secret_show_files(r);
	return (EXIT_OK);
}

static int
cmd_secret_show_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, SECRET_M_SHOW, json_pack("{s:s}", "name",
	    argv[0]), cmd_secret_show_show));
}

const struct cli_cmd cmd_secret_show_entry = {
	"secret", "show", "NAME",
	"one secret: versions, rotation under way, last result, files",
	{ SECRET_M_SHOW }, 1, 1, 0, cmd_secret_show_exec
};

/* --- rotate -------------------------------------------------------------- */

static uint64_t	cmd_secret_t0;		/* monotonic msec of the request */

static uint64_t
cmd_secret_mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

static int
cmd_secret_rotate_show(json_t *r)
{
	printf("rotation of %s started: op %s\n", out_str(r, "secret"),
	    out_str(r, "op"));
	return (EXIT_OK);
}

/*
 * One notification of a followed rotation: a step as it begins, with the
 * time since the request; secret.finished ends the command with its
 * result as the exit code.
 */
static int
cmd_secret_rotate_note(struct cli *cli, const char *method, json_t *p,
    json_t *msg)
{
	double	elapsed;
	int	finished = strcmp(method, SECRET_N_FINISHED) == 0, ok;

	if (!finished && strcmp(method, SECRET_N_PROGRESS) != 0)
		return (-1);
	if (cli->json) {
		out_json_message(msg);
		return (finished ? (strcmp(out_str(p, "result"), "ok") == 0 ?
		    EXIT_OK : EXIT_RPC) : -1);
	}
	elapsed = (double)(cmd_secret_mono_ms() - cmd_secret_t0) / 1000;
	if (!finished) {
		printf("%s  %-12s %6.1fs\n", out_str(p, "secret"),
		    out_str(p, "step"), elapsed);
		fflush(stdout);
		return (-1);
	}
	ok = strcmp(out_str(p, "result"), "ok") == 0;
	printf("%s: %s", out_str(p, "secret"), out_str(p, "result"));
	/*
	 * The new version only: after a failure the notification's version
	 * may be the one that was tried, and 'secret show' says which is
	 * in place.
	 */
	if (ok && json_is_integer(json_object_get(p, "version")))
		printf(", version %lld (%s)", out_int(p, "version"),
		    out_str(p, "fingerprint"));
	if (json_is_string(json_object_get(p, "error")))
		printf(": %s", out_clean(out_str(p, "error")));
	printf("\n");
	return (ok ? EXIT_OK : EXIT_RPC);
}

/* NAME [--follow] [--force], in any order */
static int
cmd_secret_rotate_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*p = json_object();
	int	 i, follow = 0, force = 0, r;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") ==
		    0)
			follow = 1;
		else if (strcmp(argv[i], "--force") == 0)
			force = 1;
		else if (argv[i][0] == '-')
			cli_die(EXIT_USAGE, "unknown option '%s'", argv[i]);
		else if (json_object_get(p, "name") == NULL)
			json_object_set_new(p, "name", json_string(argv[i]));
		else
			cli_die(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
	}
	if (json_object_get(p, "name") == NULL)
		cli_die(EXIT_USAGE, "missing NAME");
	if (follow)
		json_object_set_new(p, "follow", json_true());
	if (force)
		json_object_set_new(p, "force", json_true());
	cmd_secret_t0 = cmd_secret_mono_ms();
	r = conn_call_show(cli, SECRET_M_ROTATE, p, cmd_secret_rotate_show);
	if (r == EXIT_OK && follow)
		r = conn_follow(cli, cmd_secret_rotate_note);
	return (r);
}

const struct cli_cmd cmd_secret_rotate_entry = {
	"secret", "rotate", "NAME [--follow] [--force]",
	"rotate a secret now (--follow: show each step, exit 1 unless it "
	"ends ok; --force: even before min_interval has passed)",
	{ SECRET_M_ROTATE }, 1, 3, 0, cmd_secret_rotate_exec
};
