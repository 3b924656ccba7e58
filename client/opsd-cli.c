/*
 * opsd-cli: the operator's tool. One table of commands, each exported by
 * the cmd-<family>.c file that builds its params and prints its result
 * through the output module (cli-out.c); --json prints the raw result
 * instead, for scripts. This file only picks the command: options, the
 * table walk, and the help, which is generated from the table so that it
 * cannot forget a command. The exit code says who failed: 0 ok, 1 the
 * daemon answered with an error, 2 the command line is wrong, 3 no answer
 * (no socket, refused, timed out).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opsd-parse.h"
#include "opsd-proto.h"

/* Usages longer than this put their help on the next line. */
#define CLI_USAGE_WIDTH	28

/* In any order: the help sorts them. */
static const struct cli_cmd *const cli_cmds[] = {
	&cmd_alert_test_entry,
	&cmd_audit_entry,
	&cmd_backup_list_entry,
	&cmd_backup_prune_entry,
	&cmd_backup_restore_entry,
	&cmd_backup_run_entry,
	&cmd_backup_show_entry,
	&cmd_backup_verify_entry,
	&cmd_call_entry,
	&cmd_cert_check_entry,
	&cmd_cert_list_entry,
	&cmd_cert_renew_entry,
	&cmd_cert_show_entry,
	&cmd_deploy_abort_entry,
	&cmd_deploy_rollback_entry,
	&cmd_deploy_start_entry,
	&cmd_deploy_status_entry,
	&cmd_jobs_entry,
	&cmd_log_level_entry,
	&cmd_maint_list_entry,
	&cmd_maint_start_entry,
	&cmd_maint_stop_entry,
	&cmd_methods_entry,
	&cmd_op_list_entry,
	&cmd_op_show_entry,
	&cmd_probe_history_entry,
	&cmd_probe_list_entry,
	&cmd_probe_run_entry,
	&cmd_probe_show_entry,
	&cmd_reload_entry,
	&cmd_secret_list_entry,
	&cmd_secret_rotate_entry,
	&cmd_secret_show_entry,
	&cmd_status_entry,
	&cmd_summary_entry,
	&cmd_tls_check_entry,
};
#define CLI_NCMDS	(sizeof cli_cmds / sizeof cli_cmds[0])

/* status --check: a check's failures are UNKNOWN, said on stdout. */
static int	check_mode;

void
cli_check_mode(void)
{
	check_mode = 1;
}

void
cli_die(int code, const char *fmt, ...)
{
	va_list	ap;

	if (check_mode) {
		printf("UNKNOWN: ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
		code = EXIT_UNKNOWN;
	}
	fflush(stdout);
	fprintf(stderr, "opsd-cli: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

void *
xmalloc(size_t n)
{
	void	*p;

	if ((p = malloc(n != 0 ? n : 1)) == NULL)
		cli_die(EXIT_CONNECT, "out of memory");
	return (p);
}

void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n != 0 ? n : 1)) == NULL)
		cli_die(EXIT_CONNECT, "out of memory");
	return (p);
}

char *
xvasprintf(const char *fmt, va_list ap)
{
	char	*s;

	if (vasprintf(&s, fmt, ap) == -1)
		cli_die(EXIT_CONNECT, "out of memory");
	return (s);
}

/* "probe run", or "status" */
static void
cli_cmd_name(const struct cli_cmd *c, char *buf, size_t len)
{
	if (c->family != NULL)
		snprintf(buf, len, "%s %s", c->family, c->name);
	else
		snprintf(buf, len, "%s", c->name);
}

static int
cli_cmd_cmp(const void *a, const void *b)
{
	char	x[64], y[64];

	cli_cmd_name(*(const struct cli_cmd *const *)a, x, sizeof x);
	cli_cmd_name(*(const struct cli_cmd *const *)b, y, sizeof y);
	return (strcmp(x, y));
}

/* The table sorted by command name, for everything a person reads. */
static void
cli_sorted(const struct cli_cmd **out)
{
	memcpy(out, cli_cmds, sizeof cli_cmds);
	qsort(out, CLI_NCMDS, sizeof *out, cli_cmd_cmp);
}

/* Matches "status" or "probe run"; *words says how many it used. */
static const struct cli_cmd *
cli_find(int argc, char **argv, int *words)
{
	const struct cli_cmd	*c;
	size_t			 i;

	for (i = 0; i < CLI_NCMDS; i++) {
		c = cli_cmds[i];
		if (c->family == NULL && strcmp(c->name, argv[0]) == 0) {
			*words = 1;
			return (c);
		}
		if (c->family != NULL && argc > 1 &&
		    strcmp(c->family, argv[0]) == 0 &&
		    strcmp(c->name, argv[1]) == 0) {
			*words = 2;
			return (c);
		}
	}
	return (NULL);
}

/* "opsd-cli probe" alone: list what follows it. */
static int
cli_family_usage(const char *word)
{
	const struct cli_cmd	*sorted[CLI_NCMDS];
	size_t			 i, found = 0;

	cli_sorted(sorted);
	for (i = 0; i < CLI_NCMDS; i++) {
		if (sorted[i]->family == NULL ||
		    strcmp(sorted[i]->family, word) != 0)
			continue;
		if (found++ == 0)
			fprintf(stderr, "usage:\n");
		fprintf(stderr, "  opsd-cli %s %s %s\n", sorted[i]->family,
		    sorted[i]->name, sorted[i]->args);
	}
	return (found > 0);
}

static void
cli_usage(FILE *f)
{
	const struct cli_cmd	*sorted[CLI_NCMDS];
	char			 name[64], buf[128];
	size_t			 i;
	int			 n, w = 0;

	fprintf(f,
"usage: opsd-cli [-s SOCKET] [--json] [--utc] [--timeout DURATION] COMMAND\n"
"       [ARGS]\n"
"\n"
"Control a running opsd over its socket.\n"
"\n"
"Options:\n"
"  -s, --socket PATH     control socket (default $OPSD_SOCKET or %s)\n"
"  -j, --json            print the raw JSON result, for scripts\n"
"  -t, --timeout DUR     give up after DUR, e.g. 500ms, 10s (default 10s)\n"
"  -u, --utc             show times in UTC (default: the local zone, TZ)\n"
"  -h, --help            this help; 'opsd-cli COMMAND --help' for one command\n"
"  -V, --version         print the version\n"
"\n"
"Commands:\n", OPSD_DEFAULT_SOCKET);
	cli_sorted(sorted);
	for (i = 0; i < CLI_NCMDS; i++) {
		cli_cmd_name(sorted[i], name, sizeof name);
		n = snprintf(buf, sizeof buf, "%s%s%s", name,
		    *sorted[i]->args ? " " : "", sorted[i]->args);
		if (n <= CLI_USAGE_WIDTH && n > w)
			w = n;
	}
	for (i = 0; i < CLI_NCMDS; i++) {
		cli_cmd_name(sorted[i], name, sizeof name);
		n = snprintf(buf, sizeof buf, "%s%s%s", name,
		    *sorted[i]->args ? " " : "", sorted[i]->args);
		if (n > w)
			fprintf(f, "  %s\n  %-*s  %s\n", buf, w, "",
			    sorted[i]->help);
		else
			fprintf(f, "  %-*s  %s\n", w, buf, sorted[i]->help);
	}
	fprintf(f,
"\n"
"Exit status: 0 ok, 1 opsd returned an error, 2 usage error,\n"
"3 cannot connect or timed out. For status --check and summary, the\n"
"Nagios meaning: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. See opsd-cli(1).\n");
}

static void
cli_cmd_usage(FILE *f, const struct cli_cmd *c)
{
	char	name[64];
	size_t	i;

	cli_cmd_name(c, name, sizeof name);
	fprintf(f, "usage: opsd-cli [OPTIONS] %s %s\n\n%s.\n", name, c->args,
	    c->help);
	for (i = 0; i < CLI_MAX_METHODS && c->methods[i] != NULL; i++)
		fprintf(f, "Calls the JSON-RPC method %s.\n", c->methods[i]);
}

/*
 * help --methods: "COMMAND: METHOD ..." for every command, so that a test
 * can check the table against the daemon's opsd.methods. call lists
 * none: it calls the method it is given.
 */
static void
cli_methods_used(void)
{
	const struct cli_cmd	*sorted[CLI_NCMDS];
	char			 name[64];
	size_t			 i, j;

	cli_sorted(sorted);
	for (i = 0; i < CLI_NCMDS; i++) {
		cli_cmd_name(sorted[i], name, sizeof name);
		printf("%s:", name);
		for (j = 0; j < CLI_MAX_METHODS &&
		    sorted[i]->methods[j] != NULL; j++)
			printf(" %s", sorted[i]->methods[j]);
		putchar('\n');
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "utc", no_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli		 cli;
	const struct cli_cmd	*c;
	int			 ch, r, i, words, timeout_set = 0;

	memset(&cli, 0, sizeof cli);
	cli.fd = -1;
	cli.socket = getenv("OPSD_SOCKET");
	if (cli.socket == NULL || *cli.socket == '\0')
		cli.socket = OPSD_DEFAULT_SOCKET;
	cli.timeout_ms = 10000;

	/* '+': options end at the command, which has its own */
	while ((ch = getopt_long(argc, argv, "+s:jt:uhV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			cli.socket = optarg;
			break;
		case 'j':
			cli.json = 1;
			break;
		case 't':
			if (parse_duration(optarg, &cli.timeout_ms) != 0 ||
			    cli.timeout_ms == 0)
				cli_die(EXIT_USAGE, "--timeout: '%s' is not a "
				    "duration such as 500ms, 10s or 2m", optarg);
			timeout_set = 1;
			break;
		case 'u':
			out_set_utc(1);
			break;
		case 'h':
			cli_usage(stdout);
			return (EXIT_OK);
		case 'V':
			printf("opsd-cli %s (protocol %d)\n", OPSD_VERSION,
			    OPSD_PROTO_VERSION);
			return (EXIT_OK);
		default:
			cli_usage(stderr);
			return (EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		cli_usage(stderr);
		return (EXIT_USAGE);
	}
	if (strcmp(argv[0], "help") == 0) {
		if (argc == 2 && strcmp(argv[1], "--methods") == 0)
			cli_methods_used();
		else if (argc > 1 && (c = cli_find(argc - 1, argv + 1,
		    &words)) != NULL)
			cli_cmd_usage(stdout, c);
		else
			cli_usage(stdout);
		return (EXIT_OK);
	}
	if ((c = cli_find(argc, argv, &words)) == NULL) {
		if (cli_family_usage(argv[0]))
			return (EXIT_USAGE);
		fprintf(stderr, "opsd-cli: unknown command '%s'\n\n", argv[0]);
		cli_usage(stderr);
		return (EXIT_USAGE);
	}
	argc -= words;
	argv += words;

	if (!timeout_set && c->timeout_ms != 0)
		cli.timeout_ms = c->timeout_ms;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") ==
		    0) {
			cli_cmd_usage(stdout, c);
			return (EXIT_OK);
		}
		if (strcmp(argv[i], "--json") == 0) {
			/* accepted after the command too */
			cli.json = 1;
			memmove(&argv[i], &argv[i + 1],
			    (size_t)(argc - i - 1) * sizeof *argv);
			argc--;
			i--;
		}
	}
	if (argc < c->minargs || argc > c->maxargs) {
		cli_cmd_usage(stderr, c);
		return (EXIT_USAGE);
	}
	r = c->exec(&cli, argc, argv);
	conn_close(&cli);
	return (r);
}
