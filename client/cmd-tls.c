/*
 * tls check: the daemon grades a TLS endpoint the way SSL Labs does
 * (tls.check, run on its loop, so it reaches internal hosts and
 * PostgreSQL ports that SSL Labs cannot) and this prints the verdict:
 * the grade, the protocols, the accepted suites, the certificate, the
 * HTTP headers and every finding with its fix. --min-grade makes it a
 * gate: exit 1 below it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define TLS_M_CHECK	"tls.check"

static const char	*cmd_tls_min;

/* F < E < D < C < B < A- < A < A+; T and M are below every letter */
static int
cmd_tls_rank(const char *g)
{
	static const char *const order[] = {
		"F", "E", "D", "C", "B", "A-", "A", "A+", NULL
	};
	int	i;

	for (i = 0; order[i] != NULL; i++)
		if (strcmp(order[i], g) == 0)
			return (i);
	return (-1);
}

static int
cmd_tls_verdict(json_t *r)
{
	if (cmd_tls_min == NULL)
		return (EXIT_OK);
	return (cmd_tls_rank(out_str(r, "grade")) >= cmd_tls_rank(cmd_tls_min)
	    ? EXIT_OK : EXIT_RPC);
}

static int
cmd_tls_json(json_t *r)
{
	out_show_json(r);
	return (cmd_tls_verdict(r));
}

static int
cmd_tls_show(json_t *r)
{
	static const struct out_col cols[] = {
		{ "PROTOCOL", 0, OUT_GROW },
		{ "SUITE", 0, OUT_GROW },
		{ "BITS", 0, OUT_RIGHT | OUT_GROW },
		{ "FS", 0, OUT_GROW },
		{ "AEAD", 0, 0 },
	};
	json_t		*p = json_object_get(r, "protocols"), *c, *v;
	json_t		*cert = json_object_get(r, "certificate");
	json_t		*http = json_object_get(r, "http");
	json_t		*sc = json_object_get(r, "scores");
	struct out_table *t;
	const char	*k;
	size_t		 i;

	printf("%s: grade %s (score %lld: protocol %lld, key exchange %lld, "
	    "cipher %lld) in %.2fs\n\n", out_str(r, "target"), out_str(r,
	    "grade"), out_int(r, "score"), out_int(sc, "protocol"),
	    out_int(sc, "key_exchange"), out_int(sc, "cipher"),
	    out_real(r, "elapsed_seconds"));
	json_object_foreach(p, k, v)
		out_kv(k, "%s", json_string_value(v) != NULL ?
		    json_string_value(v) : "-");
	if (json_is_object(cert)) {
		out_kv("certificate", "%s %lld bits, %s, %s, expires %s "
		    "(%.1f days)", out_str(cert, "key_type"), out_int(cert,
		    "key_bits"), out_str(cert, "signature"), out_true(cert,
		    "trusted") ? "trusted" : out_str(cert, "verify"),
		    out_when(cert, "not_after"), out_real(cert, "days_left"));
		out_kv("names", "%s", out_true(cert, "name_matches") ?
		    "match the servername" : "DO NOT match the servername");
	}
	out_kv("renegotiation", "%s", out_true(r, "secure_renegotiation") ?
	    "secure" : "not secure");
	if (json_is_object(http)) {
		if (out_true(http, "hsts"))
			out_kv("HSTS", "max-age %lld%s%s%s", out_int(http,
			    "hsts_max_age"), out_true(http,
			    "hsts_include_subdomains") ? ", includeSubDomains" :
			    "", out_true(http, "hsts_preload") ? ", preload" :
			    "", out_true(http, "hsts_on_error") ? "" :
			    " (not on errors)");
		else
			out_kv("HSTS", "none");
	}
	if (json_array_size(json_object_get(r, "ciphers")) > 0) {
		printf("\naccepted suites, in the server's order:\n");
		t = out_table_new(cols, 5, "  ");
		json_array_foreach(json_object_get(r, "ciphers"), i, c) {
			out_table_row(t);
			out_table_cell(t, "%s", out_str(c, "protocol"));
			out_table_cell(t, "%s", out_str(c, "name"));
			out_table_cell(t, "%lld", out_int(c, "bits"));
			out_table_cell(t, "%s", out_true(c, "forward_secrecy") ?
			    "yes" : "NO");
			out_table_cell(t, "%s", out_true(c, "aead") ? "yes" :
			    "no");
		}
		out_table_print(t, 1);
	}
	printf("\nfindings:\n");
	json_array_foreach(json_object_get(r, "findings"), i, c) {
		printf("  %-8s %s\n", out_str(c, "severity"),
		    out_clean(out_str(c, "text")));
		if (json_is_string(json_object_get(c, "fix")))
			printf("           fix: %s\n", out_clean(out_str(c,
			    "fix")));
	}
	return (cmd_tls_verdict(r));
}

static int
cmd_tls_check_exec(struct cli *cli, int argc, char **argv)
{
	json_t	*p = json_object();
	int	 i;
	char	*end;
	long	 port;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--servername") == 0 && i + 1 < argc)
			json_object_set_new(p, "servername",
			    json_string(argv[++i]));
		else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
			json_object_set_new(p, "ca_file",
			    json_string(argv[++i]));
		else if (strcmp(argv[i], "--starttls") == 0 && i + 1 < argc)
			json_object_set_new(p, "starttls",
			    json_string(argv[++i]));
		else if (strcmp(argv[i], "--http-port") == 0 && i + 1 < argc) {
			port = strtol(argv[++i], &end, 10);
			if (*end != '\0' || port < 0 || port > 65535)
				cli_die(EXIT_USAGE, "--http-port: a port, or 0 "
				    "for none");
			json_object_set_new(p, "http_port", json_integer(port ==
			    0 ? -1 : port));
		} else if (strcmp(argv[i], "--min-grade") == 0 && i + 1 < argc) {
			cmd_tls_min = argv[++i];
			if (cmd_tls_rank(cmd_tls_min) < 0)
				cli_die(EXIT_USAGE, "--min-grade: one of A+ A A- "
				    "B C D E F");
		} else if (argv[i][0] == '-')
			cli_die(EXIT_USAGE, "unknown option '%s' (or its value "
			    "is missing)", argv[i]);
		else if (json_object_get(p, "target") == NULL)
			json_object_set_new(p, "target", json_string(argv[i]));
		else
			cli_die(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
	}
	if (json_object_get(p, "target") == NULL)
		cli_die(EXIT_USAGE, "missing HOST:PORT");
	/* --json still exits by --min-grade: the show prints the JSON */
	if (cli->json) {
		cli->json = 0;
		i = conn_call_show(cli, TLS_M_CHECK, p, cmd_tls_json);
		cli->json = 1;
		return (i);
	}
	return (conn_call_show(cli, TLS_M_CHECK, p, cmd_tls_show));
}

const struct cli_cmd cmd_tls_check_entry = {
	"tls", "check", "HOST:PORT [--servername NAME] [--ca FILE] "
	"[--starttls postgres] [--http-port N] [--min-grade G]",
	"grade a TLS endpoint like SSL Labs, with the findings and their "
	"fixes (exit 1 below --min-grade)",
	{ TLS_M_CHECK }, 1, 11, 60000, cmd_tls_check_exec
};
