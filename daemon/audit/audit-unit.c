/*
 * systemd-analyze security for opsd's own unit and [audit] units: the
 * exposure systemd computes from a unit's sandboxing, run as a child on
 * pipes (core/child.c), one per unit, all at once. A unit file is judged
 * offline (--offline=yes), so it works where systemd is not PID 1; a
 * unit name needs the running systemd. Anything that keeps the tool
 * from answering is "not checked".
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit-int.h"
#include "child.h"
#include "util.h"

void audit_run_unit_gone(struct audit_run *, struct audit_unit *);

struct audit_unit {
	struct audit_run	*run;
	struct child		*child;
	char			 unit[512];
	void			(*done)(struct audit_run *);
};

static void
analyze_done(struct child *ch, const struct child_result *res, void *arg)
{
	struct audit_unit	*u = arg;
	struct audit_run	*r = u->run;
	struct audit_input	 in;
	void			(*done)(struct audit_run *) = u->done;
	char			 why[600], *text = NULL;
	const char		*p;
	double			 level = -1;
	size_t			 i;

	(void)ch;
	u->child = NULL;
	if (child_failed(res, why, sizeof why) == 0 && res->out != NULL) {
		text = xstrndup(res->out, res->outlen);
		if ((p = strstr(text, "Overall exposure level for ")) != NULL &&
		    (p = strstr(p, ": ")) != NULL)
			level = strtod(p + 2, NULL);
		if (level < 0)
			snprintf(why, sizeof why, "no exposure level in "
			    "systemd-analyze's output");
	}
	memset(&in, 0, sizeof in);
	in.path = u->unit;
	in.exposure = level;
	for (i = 0; i < audit_nchecks; i++) {
		if (audit_checks[i].scope != AUDIT_UNIT ||
		    !audit_selected(r, &audit_checks[i]))
			continue;
		if (level < 0)
			audit_unchecked(r, audit_checks[i].id, u->unit,
			    "systemd-analyze security: %s", why);
		else
			audit_checks[i].fn(r, &audit_checks[i], &in);
	}
	free(text);
	audit_run_unit_gone(r, u);
	free(u);
	done(r);
}

struct audit_unit *
audit_unit_start(struct audit_run *r, const char *unit, uint64_t timeout_ms,
    void (*done)(struct audit_run *))
{
	struct audit_unit	*u;
	struct child_spec	 spec;
	struct stat		 st;
	const char		*argv[7];
	int			 n = 0, e;

	if (unit[0] != '/' && stat("/run/systemd/system", &st) != 0) {
		audit_unchecked(r, "host.unit_exposure", unit, "systemd does "
		    "not run here; name the unit file instead");
		return (NULL);
	}
	u = xcalloc(1, sizeof *u);
	u->run = r;
	u->done = done;
	snprintf(u->unit, sizeof u->unit, "%s", unit);
	argv[n++] = "systemd-analyze";
	argv[n++] = "security";
	argv[n++] = "--no-pager";
	if (unit[0] == '/')
		argv[n++] = "--offline=yes";
	argv[n++] = u->unit;
	argv[n] = NULL;
	memset(&spec, 0, sizeof spec);
	spec.argv = argv;
	spec.timeout_ms = timeout_ms;
	spec.max_output = 256 * 1024;
	if ((u->child = child_spawn(audit_run_opsd(r), &spec, analyze_done, u,
	    &e)) == NULL) {
		audit_unchecked(r, "host.unit_exposure", unit, "cannot run "
		    "systemd-analyze: %s", strerror(-e));
		free(u);
		return (NULL);
	}
	return (u);
}

void
audit_unit_cancel(struct audit_unit *u)
{
	if (u->child != NULL)
		child_abandon(u->child);
	free(u);
}

void
audit_chk_host_unit_exposure(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	char	fix[700];
	int	sev;

	/* systemd's words: OK below 5, MEDIUM, EXPOSED from 7, UNSAFE from 9 */
	if (in->exposure < 5.0)
		return;
	sev = in->exposure >= 9.0 ? AUDIT_HIGH : in->exposure >= 7.0 ?
	    c->sev : AUDIT_LOW;
	snprintf(fix, sizeof fix, "systemd-analyze security %s%s lists each "
	    "directive; start with NoNewPrivileges=yes, ProtectSystem=strict, "
	    "ProtectHome=yes, PrivateTmp=yes, PrivateDevices=yes and a "
	    "CapabilityBoundingSet=", in->path[0] == '/' ? "--offline=yes " :
	    "", in->path);
	audit_finding_sev(r, c, sev, in->path, fix, "exposure %.1f of 10 "
	    "(%s)", in->exposure, in->exposure >= 9.0 ? "UNSAFE" :
	    in->exposure >= 7.0 ? "EXPOSED" : "MEDIUM");
}
