/*
 * exec probes: run a command through /bin/sh -c with the probe's timeout.
 * Exit status 0 passes; the first line of its output (stdout and stderr
 * together) becomes the reason, as with Nagios plugins.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "child.h"
#include "opsd-parse.h"
#include "probe.h"
#include "util.h"

static void
exec_done(struct child *c, const struct child_result *res, void *arg)
{
	struct probe		*p = arg;
	struct probe_result	 r;
	char			 line[200], how[128], t[32];
	size_t			 n;

	(void)c;
	p->kstate = NULL;
	memset(&r, 0, sizeof r);
	/* the first line, cut at a character and made UTF-8 */
	n = strcspn(res->out, "\n");
	util_utf8_sanitize(line, sizeof line, res->out,
	    util_utf8_cut(res->out, n, sizeof line - 1));
	if (res->timed_out) {
		format_duration(p->conf->timeout, t, sizeof t);
		probe_fail(&r, "timeout after %s (killed)%s%s", t,
		    line[0] ? ": " : "", line);
	} else if (WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0) {
		r.ok = 1;
		snprintf(r.reason, sizeof r.reason, "%s", line);
	} else {
		child_describe(res, how, sizeof how);
		if (line[0] != '\0')
			probe_fail(&r, "%s (%s)", line, how);
		else
			probe_fail(&r, "%s", how);
	}
	probe_done(p, &r);
}

static int
exec_start(struct probe *p)
{
	const char		*argv[] = { "/bin/sh", "-c", p->conf->command,
				    NULL };
	struct child_spec	 spec;
	int			 err = 0;

	memset(&spec, 0, sizeof spec);
	spec.argv = argv;
	spec.timeout_ms = p->conf->timeout;
	spec.max_output = 4096;
	spec.merge_stderr = 1;
	if ((p->kstate = child_spawn(p->opsd, &spec, exec_done, p, &err)) == NULL)
		return (err);
	return (0);
}

static void
exec_cancel(struct probe *p)
{
	if (p->kstate != NULL)
		child_abandon(p->kstate);
	p->kstate = NULL;
}

const struct probe_ops probe_exec_ops = {
	"exec", exec_start, exec_cancel, exec_cancel, NULL
};
