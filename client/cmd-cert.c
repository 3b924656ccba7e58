/*
 * Certificate commands: what the daemon sees in each [cert] file (subject,
 * issuer, expiry, next renewal) and whether every served_at endpoint
 * serves that file, a check now, and a renewal now. "cert renew --follow"
 * prints one line per step like "secret rotate --follow", and the result
 * is the exit code (0 ok, 1 failed or rolled back).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

#define CERT_M_LIST		"cert.list"
#define CERT_M_SHOW		"cert.show"
#define CERT_M_CHECK		"cert.check"
#define CERT_M_RENEW		"cert.renew"
#define CERT_N_PROGRESS		"cert.progress"
#define CERT_N_FINISHED		"cert.finished"

/* "yes", "NO", or "-" when no endpoint was checked (or none is set) */
static const char *
cmd_cert_matches(json_t *o)
{
	json_t	*v = json_object_get(o, "served_matches");

	if (json_is_true(v))
		return ("yes");
	if (json_is_false(v))
		return ("NO");
	return ("-");
}

static const char *
cmd_cert_days(json_t *o)
{
	static char	buf[32];
	json_t		*v = json_object_get(o, "days_left");

	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return ("-");
	snprintf(buf, sizeof buf, "%.1f", json_number_value(v));
	return (buf);
}

/* --- list ---------------------------------------------------------------- */

static int
cmd_cert_list_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "NAME", 4, OUT_GROW },
		{ "SUBJECT", 0, OUT_GROW },
		{ "ISSUER", 0, OUT_GROW },
		{ "NOT AFTER", 0, OUT_GROW },
		{ "DAYS", 0, OUT_RIGHT | OUT_GROW },
		{ "NEXT RENEWAL", 0, OUT_GROW },
		{ "SERVED", 0, OUT_GROW },
		{ "STATE", 0, 0 },
	};
	struct out_table	*t;
	json_t			*c;
	size_t			 i;

	if (json_array_size(json_object_get(r, "certs")) == 0) {
		printf("no certificates configured ([cert NAME] sections in "
		    "opsd.conf)\n");
		return (EXIT_OK);
	}
	t = out_table_new(cols, 8, NULL);
	json_array_foreach(json_object_get(r, "certs"), i, c) {
		out_table_row(t);
		out_table_cell(t, "%s", out_str(c, "name"));
		out_table_cell(t, "%s", out_clean(out_str(c, "subject")));
		out_table_cell(t, "%s", out_clean(out_str(c, "issuer")));
		out_table_cell(t, "%s", out_when(c, "not_after"));
		out_table_cell(t, "%s", cmd_cert_days(c));
		out_table_cell(t, "%s", out_when(c, "next_renewal"));
		out_table_cell(t, "%s", cmd_cert_matches(c));
		out_table_cell(t, "%s", out_str(c, "state"));
		if (json_is_string(json_object_get(c, "file_error")))
			out_table_note(t, 1, "file: %s", out_clean(out_str(c,
			    "file_error")));
		else if (json_is_string(json_object_get(c, "last_error")))
			out_table_note(t, 1, "last error: %s",
			    out_clean(out_str(c, "last_error")));
	}
	out_table_print(t, 1);
	return (EXIT_OK);
}

static int
cmd_cert_list_exec(struct cli *cli, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return (conn_call_show(cli, CERT_M_LIST, NULL, cmd_cert_list_show));
}

const struct cli_cmd cmd_cert_list_entry = {
	"cert", "list", "",
	"every certificate: subject, issuer, expiry, days left, next "
	"renewal, served matches file",
	{ CERT_M_LIST }, 0, 0, 0, cmd_cert_list_exec
};

/* --- show / check ---------------------------------------------------------- */

static int
cmd_cert_show_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "ENDPOINT", 0, OUT_GROW },
		{ "MATCHES", 0, OUT_GROW },
		{ "CHECKED", 0, OUT_GROW },
		{ "SERIAL", 0, 0 },
	};
	struct out_table	*t;
	json_t			*v, *last = json_object_get(r, "last_result");
	json_t			*ren = json_object_get(r, "renewal");
	json_t			*e;
	size_t			 i;
	char			 names[1024];
	size_t			 o = 0;

	out_kv("cert", "%s", out_str(r, "name"));
	out_kv("path", "%s", out_str(r, "path"));
	out_kv("state", "%s", out_str(r, "state"));
	if (json_is_string(json_object_get(r, "file_error")))
		out_kv("file error", "%s", out_clean(out_str(r, "file_error")));
	out_kv("subject", "%s", out_clean(out_str(r, "subject")));
	out_kv("issuer", "%s", out_clean(out_str(r, "issuer")));
	names[0] = '\0';
	json_array_foreach(json_object_get(r, "names"), i, v)
		if (json_is_string(v) && o < sizeof names)
			o += (size_t)snprintf(names + o, sizeof names - o,
			    "%s%s", i ? ", " : "", json_string_value(v));
	out_kv("names", "%s", o ? out_clean(names) : "-");
	out_kv("valid", "%s to %s (%s days left)", out_when(r, "not_before"),
	    out_when(r, "not_after"), cmd_cert_days(r));
	if (json_is_string(json_object_get(r, "key_type")))
		out_kv("key", "%s %lld bits, signature %s", out_str(r,
		    "key_type"), out_int(r, "key_bits"), out_str(r,
		    "signature"));
	out_kv("sha256", "%s", out_str(r, "sha256"));
	out_kv("serial", "%s", out_str(r, "serial"));
	out_kv("next renewal", "%s", json_is_true(json_object_get(r, "renew")) ?
	    out_when(r, "next_renewal") : "- (no renew command)");
	out_kv("last check", "%s", out_when(r, "checked_at"));
	out_kv("served matches", "%s", cmd_cert_matches(r));
	if (json_is_object(ren))
		out_kv("renewing", "op %s, step %s, started %s%s",
		    out_str(ren, "op"), out_str(ren, "step"),
		    out_when(ren, "started"), out_true(ren, "recovered") ?
		    " (interrupted by a restart, being recovered)" : "");
	if (json_is_object(last)) {
		if (json_is_string(json_object_get(last, "error")))
			out_kv("last renewal", "%s at %s (op %s): %s",
			    out_str(last, "result"), out_when(last, "at"),
			    out_str(last, "op"), out_clean(out_str(last,
			    "error")));
		else
			out_kv("last renewal", "%s at %s (op %s)",
			    out_str(last, "result"), out_when(last, "at"),
			    out_str(last, "op"));
	} else
		out_kv("last renewal", "-");
	v = json_object_get(r, "renewals");
	out_kv("renewals", "%lld ok, %lld failed, %lld rolled back",
	    out_int(v, "ok"), out_int(v, "failed"), out_int(v, "rolled_back"));
	if (json_array_size(json_object_get(r, "served")) == 0)
		return (EXIT_OK);
	printf("\nserved at:\n");
	t = out_table_new(cols, 4, "  ");
	json_array_foreach(json_object_get(r, "served"), i, e) {
		out_table_row(t);
		out_table_cell(t, "%s", out_str(e, "endpoint"));
		out_table_cell(t, "%s", json_is_true(json_object_get(e,
		    "matches")) ? "yes" : json_is_false(json_object_get(e,
		    "matches")) ? "NO" : json_is_false(json_object_get(e,
		    "answered")) ? "unknown" : "-");
		out_table_cell(t, "%s", out_when(e, "checked_at"));
		out_table_cell(t, "%s", out_str(e, "serial"));
		if (json_is_string(json_object_get(e, "error")))
			out_table_note(t, 1, "%s", out_clean(out_str(e,
			    "error")));
	}
	out_table_print(t, 1);
	return (EXIT_OK);
}

static int
cmd_cert_show_exec(struct cli *cli, int argc, char **argv)
{
	(void)argc;
	return (conn_call_show(cli, CERT_M_SHOW, json_pack("{s:s}", "name",
	    argv[0]), cmd_cert_show_show));
}

const struct cli_cmd cmd_cert_show_entry = {
	"cert", "show", "NAME",
	"one certificate: names, key, validity, each endpoint, renewals",
	{ CERT_M_SHOW }, 1, 1, 0, cmd_cert_show_exec
};

static int
cmd_cert_check_show(json_t *r)
{
	cmd_cert_show_show(r);
	/* like status --check: the verdict is the exit code */
	return (strcmp(out_str(r, "state"), "ok") == 0 ? EXIT_OK : EXIT_RPC);
}

static int
cmd_cert_check_exec(struct cli *cli, int argc, char **argv)
{
	(void)argc;
	return (conn_call_show(cli, CERT_M_CHECK, json_pack("{s:s}", "name",
	    argv[0]), cmd_cert_check_show));
}

const struct cli_cmd cmd_cert_check_entry = {
	"cert", "check", "NAME",
	"read the file and ask every endpoint for its certificate now "
	"(exit 1 unless the state is ok)",
	{ CERT_M_CHECK }, 1, 1, 0, cmd_cert_check_exec
};

/* --- renew ------------------------------------------------------------------ */

static uint64_t	cmd_cert_t0;

static uint64_t
cmd_cert_mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

static int
cmd_cert_renew_show(json_t *r)
{
	printf("renewal of %s started: op %s\n", out_str(r, "cert"),
	    out_str(r, "op"));
	return (EXIT_OK);
}

static int
cmd_cert_renew_note(struct cli *cli, const char *method, json_t *p,
    json_t *msg)
{
	double	elapsed;
	int	finished = strcmp(method, CERT_N_FINISHED) == 0, ok;

	if (!finished && strcmp(method, CERT_N_PROGRESS) != 0)
		return (-1);
	if (cli->json) {
		out_json_message(msg);
		return (finished ? (strcmp(out_str(p, "result"), "ok") == 0 ?
		    EXIT_OK : EXIT_RPC) : -1);
	}
	elapsed = (double)(cmd_cert_mono_ms() - cmd_cert_t0) / 1000;
	if (!finished) {
		printf("%s  %-10s %6.1fs\n", out_str(p, "cert"),
		    out_str(p, "step"), elapsed);
		fflush(stdout);
		return (-1);
	}
	ok = strcmp(out_str(p, "result"), "ok") == 0;
	printf("%s: %s", out_str(p, "cert"), out_str(p, "result"));
	if (json_is_string(json_object_get(p, "error")))
		printf(" at %s: %s", out_str(p, "step"),
		    out_clean(out_str(p, "error")));
	printf("\n");
	return (ok ? EXIT_OK : EXIT_RPC);
}

static int
cmd_cert_renew_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*p = json_object();
	int	 i, follow = 0, r;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") ==
		    0)
			follow = 1;
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
	cmd_cert_t0 = cmd_cert_mono_ms();
	r = conn_call_show(cli, CERT_M_RENEW, p, cmd_cert_renew_show);
	if (r == EXIT_OK && follow)
		r = conn_follow(cli, cmd_cert_renew_note);
	return (r);
}

const struct cli_cmd cmd_cert_renew_entry = {
	"cert", "renew", "NAME [--follow]",
	"renew a certificate now (--follow: show each step, exit 1 unless "
	"it ends ok)",
	{ CERT_M_RENEW }, 1, 2, 0, cmd_cert_renew_exec
};
