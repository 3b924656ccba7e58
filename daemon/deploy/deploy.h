/*
 * Deploys: [deploy NAME] blue/green cutovers behind the nginx a host
 * already runs. A new version starts in the idle slot, passes a health
 * gate, and traffic moves by an include file opsd owns, reloaded and
 * confirmed (nginx's workers changed) and verified through the proxy;
 * the old slot drains and stays warm for a rollback window. Each cutover
 * is an op of kind deploy.cutover (op.h), so a kill at any step is
 * finished or rolled back at the next start. docs/deploys.md is the
 * runbook.
 */
#ifndef OPSD_DEPLOY_H
#define OPSD_DEPLOY_H

#include <stddef.h>

#include "rpc.h"

struct evt_type;

/* Documented in docs/opsd.catalog. */
extern const struct evt_type EVT_DEPLOY_STARTED;
extern const struct evt_type EVT_DEPLOY_STEP;
extern const struct evt_type EVT_DEPLOY_SUCCEEDED;
extern const struct evt_type EVT_DEPLOY_FAILED;
extern const struct evt_type EVT_DEPLOY_ROLLED_BACK;
extern const struct evt_type EVT_DEPLOY_RECOVERED;
extern const struct evt_type EVT_DEPLOY_RETIRED;

/* deploy.* methods (rpc-deploy.c) */
extern const struct rpc_method	rpc_deploy_methods[];
extern const size_t		rpc_deploy_nmethods;

#endif
