/*
 * cert.list, cert.show, cert.check and cert.renew. cert.check answers
 * once the file is read and every endpoint was asked for its certificate;
 * cert.renew answers at once with the op id, and with follow the
 * connection gets cert.progress and cert.finished.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cert-int.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "util.h"

struct cert_params {
	const char	*name;
	int		 follow;
};

static int
not_found(struct rpc_call *call, const char *name)
{
	return (rpc_error(call, OPSD_ERR_NOT_FOUND, "no cert named '%s' "
	    "(cert list shows them)", name));
}

static int
cert_list_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct cert_set	*set = cert_set_get(call->opsd);
	json_t		*list = json_array();
	unsigned int	 i;

	(void)params;
	for (i = 0; i < set->n; i++)
		json_array_append_new(list, cert_json(set->v[i], 0));
	*result = json_pack("{s:o}", "certs", list);
	return (0);
}

static int
cert_show_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct cert_params	*p = params;
	struct cert		*c;

	if ((c = cert_find(call->opsd, p->name)) == NULL)
		return (not_found(call, p->name));
	*result = cert_json(c, 1);
	return (0);
}

static int
cert_check_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct cert_params	*p = params;
	struct cert		*c;
	struct rpc_pending	*w;

	(void)result;
	if ((c = cert_find(call->opsd, p->name)) == NULL)
		return (not_found(call, p->name));
	if (c->ren != NULL)
		return (rpc_error(call, OPSD_ERR_BUSY, "cert %s is being "
		    "renewed; its confirm step checks the endpoints (cert "
		    "show follows it)", p->name));
	w = rpc_defer(call);
	cert_check(c, w);
	return (RPC_DEFERRED);
}

static int
cert_renew_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct cert_params	*p = params;
	struct cert		*c;
	struct rpc_pending	*f = NULL;
	char			*id = NULL, *msg = NULL;
	int			 e;

	if ((c = cert_find(call->opsd, p->name)) == NULL)
		return (not_found(call, p->name));
	if (p->follow && call->in_batch)
		return (rpc_error(call, RPC_INVALID_REQUEST, "cert.renew with "
		    "follow keeps the connection for notifications and cannot "
		    "be part of a batch"));
	if (p->follow && call->conn != NULL)
		f = rpc_defer(call);
	if ((e = cert_renew(c, 1, f, &id, &msg)) != 0) {
		if (f != NULL)
			rpc_pending_release(f);
		e = rpc_error(call, rpc_errno_code(e), "%s", msg);
		free(msg);
		return (e);
	}
	if (f != NULL) {
		rpc_pending_reply_keep(f, json_pack("{s:s, s:s, s:b}", "op", id,
		    "cert", p->name, "follow", 1));
		free(id);
		return (RPC_DEFERRED);
	}
	*result = json_pack("{s:s, s:s, s:b}", "op", id, "cert", p->name,
	    "follow", 0);
	free(id);
	return (0);
}

struct tls_params {
	const char	*target;
	const char	*servername;
	const char	*ca_file;
	const char	*starttls;
	int64_t		 http_port;
	uint64_t	 timeout;
};

static void
tls_check_done(const struct cert_endpoint *ep, const struct grade_facts *f,
    const struct grade_result *r, double secs, void *arg)
{
	rpc_pending_reply(arg, cert_grade_json(ep, f, r, secs));
}

static int
tls_check_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct tls_params	*p = params;
	struct rpc_pending	*w;
	char			 err[256];
	int			 pg = 0, port;

	(void)result;
	if (p->starttls != NULL) {
		if (strcmp(p->starttls, "postgres") != 0)
			return (rpc_error(call, RPC_INVALID_PARAMS, "starttls: "
			    "only 'postgres' is known"));
		pg = 1;
	}
	if (p->http_port < -1 || p->http_port > 65535)
		return (rpc_error(call, RPC_INVALID_PARAMS, "http_port must be "
		    "-1 (not checked) or a port"));
	port = p->http_port == 0 ? 80 : p->http_port < 0 ? 0 :
	    (int)p->http_port;
	if (p->timeout == 0)
		p->timeout = 5000;
	if (p->timeout > 60000)
		return (rpc_error(call, RPC_INVALID_PARAMS, "timeout: at most "
		    "60s"));
	if (p->ca_file != NULL && access(p->ca_file, R_OK) != 0)
		return (rpc_error(call, RPC_INVALID_PARAMS, "ca_file %s: %s",
		    p->ca_file, strerror(errno)));
	w = rpc_defer(call);
	if (cert_grade_start(call->opsd, p->target, p->servername, p->ca_file,
	    pg, pg ? 0 : port, p->timeout, tls_check_done, w, NULL, err,
	    sizeof err) != 0) {
		rpc_pending_error(w, RPC_INVALID_PARAMS, NULL, "target %s",
		    err);
		return (RPC_DEFERRED);
	}
	return (RPC_DEFERRED);
}

#define TP(f)	offsetof(struct tls_params, f)
static const struct rpc_param tls_params[] = {
	{ "target", RPC_P_STRING, TP(target), 1, "host:port, [v6]:port or "
	    "https://host[:port]/" },
	{ "servername", RPC_P_STRING, TP(servername), 0, "the name sent in "
	    "SNI and checked against the certificate (default: the host)" },
	{ "ca_file", RPC_P_STRING, TP(ca_file), 0, "PEM roots to verify "
	    "with, read by the daemon (default: the system's)" },
	{ "starttls", RPC_P_STRING, TP(starttls), 0, "'postgres': "
	    "PostgreSQL's SSLRequest before the handshake" },
	{ "http_port", RPC_P_INT, TP(http_port), 0, "the port whose "
	    "http:// must redirect to https:// (default 80; -1: not checked)" },
	{ "timeout", RPC_P_DURATION, TP(timeout), 0, "per connection "
	    "(default 5s)" },
};
#undef TP

#define CP(f)	offsetof(struct cert_params, f)
static const struct rpc_param name_params[] = {
	{ "name", RPC_P_STRING, CP(name), 1, "the certificate, as in "
	    "[cert NAME]" },
};
static const struct rpc_param renew_params[] = {
	{ "name", RPC_P_STRING, CP(name), 1, "the certificate, as in "
	    "[cert NAME]" },
	{ "follow", RPC_P_BOOL, CP(follow), 0, "send cert.progress and "
	    "cert.finished notifications on this connection" },
};
#undef CP

const struct rpc_method rpc_cert_methods[] = {
	{ "cert.check", RPC_READ | RPC_ASYNC | RPC_NOT_STOPPING,
	    "Read a certificate's file and ask every served_at endpoint for "
	    "its certificate now; answers with cert.show's view",
	    RPC_PARAMS(name_params), sizeof (struct cert_params),
	    "as cert.show", cert_check_rpc },
	{ "cert.list", RPC_READ,
	    "Certificates with subject, issuer, expiry, days left, next "
	    "renewal and whether the endpoints serve the file",
	    RPC_NOPARAMS, "{certs: [{name, path, state, subject, issuer, "
	    "not_after, days_left, sha256, serial, next_renewal, "
	    "served_matches, ...}]}", cert_list_rpc },
	{ "cert.renew", RPC_ADMIN | RPC_NOT_STOPPING,
	    "Renew a certificate now; answers with the op id at once",
	    RPC_PARAMS(renew_params), sizeof (struct cert_params),
	    "{op, cert, follow}; then cert.progress / cert.finished "
	    "notifications", cert_renew_rpc },
	{ "cert.show", RPC_READ,
	    "One certificate: names, key, validity, each endpoint's served "
	    "certificate, renewals and the one under way",
	    RPC_PARAMS(name_params), sizeof (struct cert_params),
	    "{name, names, not_before, not_after, key_type, key_bits, served: "
	    "[{endpoint, matches, sha256, serial, error}], renewals, "
	    "last_result, renewal, ...}", cert_show_rpc },
	{ "tls.check", RPC_ADMIN | RPC_ASYNC | RPC_NOT_STOPPING,
	    "Grade a TLS endpoint like SSL Labs: protocols, cipher suites, "
	    "certificate, HTTP security headers; answers when done",
	    RPC_PARAMS(tls_params), sizeof (struct tls_params),
	    "{target, grade, score, scores, protocols, ciphers, certificate, "
	    "http, findings: [{severity, id, text, fix}], elapsed_seconds}",
	    tls_check_rpc },
};
const size_t rpc_cert_nmethods = nitems(rpc_cert_methods);
