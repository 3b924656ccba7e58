/*
 * Secrets: [secret NAME] values opsd generates with OpenSSL, publishes
 * as files with their owner and mode, and rotates on a schedule through
 * the op journal (random values, and PostgreSQL passwords set with a
 * client-side SCRAM verifier, one role or two alternating). A value is
 * shown only as its fingerprint. docs/secrets.md is the runbook.
 */
#ifndef OPSD_SECRET_H
#define OPSD_SECRET_H

struct opsd;
struct secret;
struct evt_type;

/* Documented in docs/opsd.catalog. */
extern const struct evt_type EVT_SECRET_CREATED;
extern const struct evt_type EVT_SECRET_ROTATED;
extern const struct evt_type EVT_SECRET_ROTATION_FAILED;
extern const struct evt_type EVT_SECRET_RECOVERED;
extern const struct evt_type EVT_SECRET_OVERDUE;
extern const struct evt_type EVT_SECRET_ROLES_DIFFER;
extern const struct evt_type EVT_SECRET_FILE_RESTORED;

/* secret.* methods (rpc-secret.c) */
#include <stddef.h>
#include "rpc.h"
extern const struct rpc_method	rpc_secret_methods[];
extern const size_t		rpc_secret_nmethods;

#endif
