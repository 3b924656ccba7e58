/*
 * The audit: the production checklist as a table of checks (audit-int.h
 * has the shapes), run on the loop by audit.run and [audit] schedule.
 * docs/audit.md is the runbook.
 */
#ifndef OPSD_AUDIT_H
#define OPSD_AUDIT_H

#include <stddef.h>

#include "rpc.h"

/* audit.* methods (rpc-audit.c) */
extern const struct rpc_method	rpc_audit_methods[];
extern const size_t		rpc_audit_nmethods;

#endif
