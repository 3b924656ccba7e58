/*
 * opsd-cli's shared declarations: the command entry each cmd-*.c file
 * exports, the connection state, and the output module that is the only
 * place that prints results.
 */
#ifndef OPSD_CLI_H
#define OPSD_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* The exit code says who failed. */
#define EXIT_OK		0	/* a result */
#define EXIT_RPC	1	/* the daemon answered with an error */
#define EXIT_USAGE	2	/* the command line is wrong */
#define EXIT_CONNECT	3	/* no answer: no socket, refused, timed out */
/* status --check, summary: the Nagios meaning (0 OK ... 2 CRITICAL) */
#define EXIT_UNKNOWN	3	/* the state could not be found out */

#define CLI_MAX_METHODS	4

struct cli {
	const char	*socket;
	int		 json;
	uint64_t	 timeout_ms;
	uint64_t	 deadline;	/* monotonic msec */
	int		 fd;		/* -1 until the first call */
	char		*rbuf;
	size_t		 rlen;
	size_t		 rcap;
	size_t		 used;		/* bytes of the last line returned */
};

struct cli_cmd {
	const char	*family;	/* "probe" in "probe run"; NULL: one word */
	const char	*name;
	const char	*args;		/* usage after the name */
	const char	*help;		/* one line, no final period */
	/*
	 * Every method exec may call, NULL-terminated. The hidden
	 * 'help --methods' prints them so a test can hold them against the
	 * daemon's opsd.methods.
	 */
	const char	*methods[CLI_MAX_METHODS];
	int		 minargs;
	int		 maxargs;
	uint64_t	 timeout_ms;	/* default when --timeout is not given */
	/* argv holds the arguments after the command's words; exit code */
	int		 (*exec)(struct cli *, int argc, char **argv);
};

/* cmd-*.c: one entry per command, listed in opsd-cli.c's table */
extern const struct cli_cmd cmd_alert_test_entry;
extern const struct cli_cmd cmd_audit_entry;
extern const struct cli_cmd cmd_backup_list_entry;
extern const struct cli_cmd cmd_backup_prune_entry;
extern const struct cli_cmd cmd_backup_restore_entry;
extern const struct cli_cmd cmd_backup_run_entry;
extern const struct cli_cmd cmd_backup_show_entry;
extern const struct cli_cmd cmd_backup_verify_entry;
extern const struct cli_cmd cmd_call_entry;
extern const struct cli_cmd cmd_cert_check_entry;
extern const struct cli_cmd cmd_cert_list_entry;
extern const struct cli_cmd cmd_cert_renew_entry;
extern const struct cli_cmd cmd_cert_show_entry;
extern const struct cli_cmd cmd_deploy_abort_entry;
extern const struct cli_cmd cmd_deploy_rollback_entry;
extern const struct cli_cmd cmd_deploy_start_entry;
extern const struct cli_cmd cmd_deploy_status_entry;
extern const struct cli_cmd cmd_jobs_entry;
extern const struct cli_cmd cmd_log_level_entry;
extern const struct cli_cmd cmd_maint_list_entry;
extern const struct cli_cmd cmd_maint_start_entry;
extern const struct cli_cmd cmd_maint_stop_entry;
extern const struct cli_cmd cmd_methods_entry;
extern const struct cli_cmd cmd_op_list_entry;
extern const struct cli_cmd cmd_op_show_entry;
extern const struct cli_cmd cmd_probe_history_entry;
extern const struct cli_cmd cmd_probe_list_entry;
extern const struct cli_cmd cmd_probe_run_entry;
extern const struct cli_cmd cmd_probe_show_entry;
extern const struct cli_cmd cmd_reload_entry;
extern const struct cli_cmd cmd_secret_list_entry;
extern const struct cli_cmd cmd_secret_rotate_entry;
extern const struct cli_cmd cmd_secret_show_entry;
extern const struct cli_cmd cmd_status_entry;
extern const struct cli_cmd cmd_summary_entry;
extern const struct cli_cmd cmd_tls_check_entry;

/* opsd-cli.c */
void	 cli_die(int, const char *, ...)
	    __attribute__((noreturn, format(printf, 2, 3)));
/* From now on a failure is "UNKNOWN: why" on stdout and exit 3. */
void	 cli_check_mode(void);
void	*xmalloc(size_t);
void	*xrealloc(void *, size_t);
char	*xvasprintf(const char *, va_list) __attribute__((format(printf, 1, 0)));

/* cli-conn.c */
json_t	*conn_call(struct cli *, const char *, json_t *);
int	 conn_call_show(struct cli *, const char *, json_t *,
	    int (*)(json_t *));
int	 conn_follow(struct cli *,
	    int (*)(struct cli *, const char *, json_t *, json_t *));
void	 conn_close(struct cli *);

/* cli-out.c: getters that never fail (a missing string reads "-") */
const char *out_str(json_t *, const char *);
long long out_int(json_t *, const char *);
double	 out_real(json_t *, const char *);
int	 out_true(json_t *, const char *);
void	 out_set_utc(int);
const char *out_when(json_t *, const char *);
const char *out_clean(const char *);
void	 out_bytes(double, char *, size_t);
void	 out_uptime(long long, char *, size_t);

/* cli-out.c: printing */
int	 out_result(struct cli *, json_t *, int (*)(json_t *));
void	 out_json_result(json_t *);
int	 out_show_json(json_t *);
void	 out_json_message(json_t *);
int	 out_rpc_error(struct cli *, json_t *, const char *, int,
	    const char *);
void	 out_kv(const char *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

#define OUT_RIGHT	0x1	/* right-aligned */
#define OUT_GROW	0x2	/* as wide as its widest cell or title (width: minimum) */

struct out_col {
	const char	*title;
	int		 width;		/* ignored for the last column */
	int		 flags;
};
struct out_table;

struct out_table *out_table_new(const struct out_col *, size_t,
	    const char *);
void	 out_table_row(struct out_table *);
void	 out_table_cell(struct out_table *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 out_table_note(struct out_table *, size_t, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
void	 out_table_print(struct out_table *, int);

#endif
