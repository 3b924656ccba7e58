/*
 * Alert commands. Only a test message for now: routes and the active set
 * are seen through status and the journal. The daemon makes one attempt
 * and answers when it is done, hence the longer default timeout.
 */
#include <stdio.h>

#include <jansson.h>

#include "cli.h"

static int
cmd_alert_test_show(json_t *r)
{
	printf("test alert delivered through %s (%lld attempt%s)\n",
	    out_str(r, "route"), out_int(r, "attempts"),
	    out_int(r, "attempts") == 1 ? "" : "s");
	return (EXIT_OK);
}

static int
cmd_alert_test_exec(struct cli *cli, int argc, char **argv)
{
	return (conn_call_show(cli, "alert.test", json_pack("{s:s}", "name",
	    argv[0]), cmd_alert_test_show));
}

const struct cli_cmd cmd_alert_test_entry = {
	"alert", "test", "NAME",
	"send a test message through an alert route",
	{ "alert.test" }, 1, 1, 60000, cmd_alert_test_exec
};
