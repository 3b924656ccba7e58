/*
 * The TLS endpoints of [audit] tls, graded by the certificate room's
 * grader (cert-grade.c, the same as tls.check and kind = tls-grade
 * probes) on the loop, all at once. An endpoint that does not answer is
 * "not checked"; one that does gives its grade and the grader's own
 * findings with their fixes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-int.h"
#include "cert-int.h"
#include "util.h"

void audit_run_tls_gone(struct audit_run *, struct audit_tls *);

struct audit_tls {
	struct audit_run	*run;
	struct grade_run	*g;
	char			 target[300];
	void			(*done)(struct audit_run *);
};

static void
grade_done(const struct cert_endpoint *ep, const struct grade_facts *f,
    const struct grade_result *res, double secs, void *arg)
{
	struct audit_tls	*t = arg;
	struct audit_run	*r = t->run;
	struct audit_input	 in;
	void			(*done)(struct audit_run *) = t->done;
	size_t			 i;

	(void)ep;
	(void)secs;
	t->g = NULL;		/* the grader frees itself after this */
	memset(&in, 0, sizeof in);
	in.path = t->target;
	in.grade_facts = f;
	in.grade_result = res;
	if (f->error[0] != '\0') {
		for (i = 0; i < audit_nchecks; i++)
			if (audit_checks[i].scope == AUDIT_TLS &&
			    audit_selected(r, &audit_checks[i]))
				audit_unchecked(r, audit_checks[i].id, t->target,
				    "no TLS handshake: %s", f->error);
	} else
		for (i = 0; i < audit_nchecks; i++)
			if (audit_checks[i].scope == AUDIT_TLS &&
			    audit_selected(r, &audit_checks[i]))
				audit_checks[i].fn(r, &audit_checks[i], &in);
	audit_run_tls_gone(r, t);
	free(t);
	done(r);
}

struct audit_tls *
audit_tls_start(struct audit_run *r, const char *target, const char *ca_file,
    uint64_t timeout_ms, void (*done)(struct audit_run *))
{
	struct audit_tls	*t;
	struct cert_endpoint	 ep;
	char			 err[256], host[300];
	int			 pg;

	if (cert_endpoint_parse(target, &ep, err, sizeof err) != 0)
		return (NULL);	/* the config check refused it already */
	pg = ep.kind == CERT_EP_POSTGRES;
	if (pg)
		snprintf(host, sizeof host, "%s%s%s:%s", strchr(ep.host, ':') ?
		    "[" : "", ep.host, strchr(ep.host, ':') ? "]" : "", ep.port);
	else
		snprintf(host, sizeof host, "%s", target);
	t = xcalloc(1, sizeof *t);
	t->run = r;
	t->done = done;
	snprintf(t->target, sizeof t->target, "%s", target);
	if (cert_grade_start(audit_run_opsd(r), host, NULL, ca_file, pg, 0,
	    timeout_ms, grade_done, t, &t->g, err, sizeof err) != 0) {
		audit_unchecked(r, "tls.grade", target, "%s", err);
		free(t);
		return (NULL);
	}
	return (t);
}

void
audit_tls_cancel(struct audit_tls *t)
{
	if (t->g != NULL)
		cert_grade_cancel(t->g);
	free(t);
}

const char *
audit_tls_validate(const char *value, char *buf, size_t len)
{
	struct cert_endpoint	ep;
	char			err[256];

	if (cert_endpoint_parse(value, &ep, err, sizeof err) != 0) {
		snprintf(buf, len, "tls %s (host:port, https://host[:port]/ or "
		    "postgres://host[:port])", err);
		return (buf);
	}
	return (NULL);
}

void
audit_chk_tls_grade(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	const struct grade_result	*g = in->grade_result;
	int				 rank = cert_grade_rank(g->grade);
	char				 fix[512];

	/* A and A+ pass; A- low, B to E the check's, F, T and M high */
	if (rank >= cert_grade_rank("A"))
		return;
	snprintf(fix, sizeof fix, "the findings of tls.issue below, or "
	    "opsd-cli tls check %s for the whole report", in->path);
	audit_finding_sev(r, c, rank == cert_grade_rank("A-") ? AUDIT_LOW :
	    rank <= cert_grade_rank("F") ? AUDIT_HIGH : c->sev, in->path, fix,
	    "grade %s (score %d)", g->grade, g->score);
}

void
audit_chk_tls_issue(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	const struct grade_result	*g = in->grade_result;
	unsigned int			 i;
	int				 sev;

	for (i = 0; i < g->nfindings; i++) {
		const struct grade_finding *f = &g->findings[i];

		if (strcmp(f->severity, "critical") == 0)
			sev = AUDIT_CRITICAL;
		else if (strcmp(f->severity, "high") == 0)
			sev = AUDIT_HIGH;
		else if (strcmp(f->severity, "warn") == 0)
			sev = AUDIT_LOW;
		else
			continue;
		audit_finding_sev(r, c, sev, in->path, f->fix, "%s: %s", f->id,
		    f->text);
	}
}
