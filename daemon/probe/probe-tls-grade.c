/*
 * tls-grade probes: the grade of opsd-cli tls check (cert-grade.c), on a
 * schedule. The probe is up while the endpoint grades min_grade or better
 * and down, with the grade and the findings that cost it, when it drops:
 * the alert of a changed nginx include, a certificate replaced by one
 * without its intermediate, TLS 1.0 switched back on. It runs a dozen
 * handshakes, so its interval is long (an hour by default elsewhere is
 * sensible; the default of every probe applies).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cert-int.h"
#include "daemon.h"
#include "probe.h"
#include "util.h"

struct grade_probe {
	struct grade_run	*run;
};

static void
grade_cancel(struct probe *p)
{
	struct grade_probe	*t = p->kstate;

	if (t != NULL && t->run != NULL) {
		cert_grade_cancel(t->run);
		t->run = NULL;
	}
}

static void
grade_free_kind(struct probe *p)
{
	grade_cancel(p);
	free(p->kstate);
	p->kstate = NULL;
}

static void
grade_done(const struct cert_endpoint *ep, const struct grade_facts *f,
    const struct grade_result *r, double secs, void *arg)
{
	struct probe		*p = arg;
	struct grade_probe	*t = p->kstate;
	struct probe_result	 res;
	const char		*min = p->conf->min_grade;
	char			 why[200];
	unsigned int		 i;
	size_t			 o = 0;

	(void)ep;
	(void)secs;
	t->run = NULL;
	memset(&res, 0, sizeof res);
	res.ok = 1;
	if (f->have_cert)
		res.cert_not_after = f->not_after;
	res.cert_verified = f->verify_ok;
	why[0] = '\0';
	for (i = 0; i < r->nfindings && o < sizeof why; i++)
		if (strcmp(r->findings[i].severity, "info") != 0)
			o += (size_t)snprintf(why + o, sizeof why - o, "%s%s",
			    o ? "; " : "", r->findings[i].text);
	if (cert_grade_rank(r->grade) < cert_grade_rank(min))
		probe_fail(&res, "grade %s, below %s: %s", r->grade, min,
		    o ? why : "no finding above info");
	else
		snprintf(res.reason, sizeof res.reason, "grade %s (score %d)",
		    r->grade, r->score);
	probe_done(p, &res);
}

static int
grade_start(struct probe *p)
{
	struct grade_probe	*t = p->kstate;
	char			 err[256];

	if (t == NULL)
		t = p->kstate = xcalloc(1, sizeof *t);
	if (cert_grade_start(p->opsd, p->conf->address, p->conf->servername,
	    p->conf->ca_file, p->conf->starttls_pg, 0, p->conf->timeout,
	    grade_done, p, &t->run, err, sizeof err) != 0)
		return (-EINVAL);
	return (0);
}

const struct probe_ops probe_tls_grade_ops = {
	"tls-grade", grade_start, grade_cancel, grade_free_kind, NULL
};
