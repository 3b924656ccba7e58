/*
 * Certificates: [cert NAME] files opsd watches (expiry, the certificate
 * each endpoint serves) and renews through a command, confirming on the
 * wire that the new certificate is the one served. docs/certificates.md
 * is the runbook.
 */
#ifndef OPSD_CERT_H
#define OPSD_CERT_H

#include <stddef.h>

#include "rpc.h"

struct evt_type;

/* Documented in docs/opsd.catalog. */
extern const struct evt_type EVT_CERT_EXPIRING;
extern const struct evt_type EVT_CERT_UNREADABLE;
extern const struct evt_type EVT_CERT_RENEWED;
extern const struct evt_type EVT_CERT_RENEWAL_FAILED;
extern const struct evt_type EVT_CERT_SERVED_DIFFERS;
extern const struct evt_type EVT_CERT_SERVED_UNCHECKED;
extern const struct evt_type EVT_CERT_OVERDUE;
extern const struct evt_type EVT_CERT_RECOVERED;

/* cert.* methods (rpc-cert.c) */
extern const struct rpc_method	rpc_cert_methods[];
extern const size_t		rpc_cert_nmethods;

#endif
