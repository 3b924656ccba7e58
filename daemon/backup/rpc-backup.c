/*
 * backup.* methods and opsd.jobs. backup.run answers at once with the run
 * id; with follow it keeps the connection for backup.progress and
 * backup.finished notifications. verify and restore answer when done.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include <jansson.h>

#include "backup-int.h"
#include "daemon.h"
#include "jobs.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "util.h"

struct name_params {
	const char	*name;
	int		 follow;
	int		 dry_run;
};

struct id_params {
	const char	*id;
	const char	*into;
	int		 create;
	int		 force;
};

static int
backup_list_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct name_params	*p = params;
	json_t			*list;

	list = backup_list_json(call->opsd, p->name);
	if (p->name != NULL && json_array_size(list) == 0) {
		json_decref(list);
		return (rpc_error(call, OPSD_ERR_NOT_FOUND, "no backup named "
		    "'%s'", p->name));
	}
	*result = json_pack("{s:o}", "backups", list);
	return (0);
}

static int
backup_show_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct id_params	*p = params;

	if ((*result = backup_show_json(call->opsd, p->id)) == NULL)
		return (rpc_error(call, OPSD_ERR_NOT_FOUND, "no backup with id "
		    "'%s' (backup list shows them)", p->id));
	return (0);
}

static int
backup_run_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct name_params	*p = params;
	struct rpc_pending	*f = NULL;
	char			*id = NULL, *msg = NULL;
	int			 code;

	if (p->follow && call->in_batch)
		return (rpc_error(call, RPC_INVALID_REQUEST, "backup.run with "
		    "follow keeps the connection for notifications and cannot "
		    "be part of a batch"));
	if (p->follow && call->conn != NULL)
		f = rpc_defer(call);
	if ((code = backup_rpc_run(call->opsd, p->name, f, &id, &msg)) != 0) {
		if (f != NULL)
			rpc_pending_release(f);
		code = rpc_error(call, rpc_errno_code(code), "%s", msg);
		free(msg);
		return (code);
	}
	if (f != NULL) {
		/* the reply now, the notifications after it */
		rpc_pending_reply_keep(f, json_pack("{s:s, s:b}", "run", id,
		    "follow", 1));
		free(id);
		return (RPC_DEFERRED);
	}
	*result = json_pack("{s:s, s:b}", "run", id, "follow", 0);
	free(id);
	return (0);
}

static int
backup_verify_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct id_params	*p = params;
	struct rpc_pending	*w;
	char			*msg = NULL;
	int			 code;

	(void)result;
	w = rpc_defer(call);
	if ((code = backup_rpc_verify(call->opsd, p->id, w, &msg)) != 0) {
		rpc_pending_error(w, rpc_errno_code(code), NULL, "%s", msg);
		free(msg);
	}
	return (RPC_DEFERRED);
}

static int
backup_restore_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct id_params	*p = params;
	struct rpc_pending	*w;
	char			*msg = NULL;
	int			 code;

	(void)result;
	if (p->into == NULL)
		return (rpc_error(call, RPC_INVALID_PARAMS, "missing required "
		    "parameter 'into' (string)"));
	w = rpc_defer(call);
	if ((code = backup_rpc_restore(call->opsd, p->id, p->into, p->create,
	    p->force, w, &msg)) != 0) {
		rpc_pending_error(w, rpc_errno_code(code), NULL, "%s", msg);
		free(msg);
	}
	return (RPC_DEFERRED);
}

static int
backup_prune_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct name_params	*p = params;
	char			*msg = NULL;
	int			 code;

	if ((code = backup_prune(call->opsd, p->name, p->dry_run, result,
	    &msg)) != 0) {
		code = rpc_error(call, rpc_errno_code(code), "%s", msg);
		free(msg);
	}
	return (code);
}

static int
jobs_rpc(struct rpc_call *call, void *params, json_t **result)
{
	(void)params;
	*result = json_pack("{s:o}", "jobs", jobs_json(call->opsd));
	return (0);
}

#define NP(f)	offsetof(struct name_params, f)
#define IP(f)	offsetof(struct id_params, f)
static const struct rpc_param list_params[] = {
	{ "name", RPC_P_STRING, NP(name), 0, "only this backup" },
};
static const struct rpc_param run_params[] = {
	{ "name", RPC_P_STRING, NP(name), 1, "the backup, as in [backup NAME]" },
	{ "follow", RPC_P_BOOL, NP(follow), 0, "send backup.progress and "
	    "backup.finished notifications on this connection" },
};
static const struct rpc_param prune_params[] = {
	{ "name", RPC_P_STRING, NP(name), 1, "the backup, as in [backup NAME]" },
	{ "dry_run", RPC_P_BOOL, NP(dry_run), 0, "list what would go, remove "
	    "nothing" },
};
static const struct rpc_param id_params[] = {
	{ "id", RPC_P_STRING, IP(id), 1, "a backup id from backup.list" },
};
static const struct rpc_param restore_params[] = {
	{ "id", RPC_P_STRING, IP(id), 1, "a backup id from backup.list" },
	{ "into", RPC_P_STRING, IP(into), 1, "the target database" },
	{ "create", RPC_P_BOOL, IP(create), 0, "create the database if it "
	    "does not exist" },
	{ "force", RPC_P_BOOL, IP(force), 0, "restore over a non-empty "
	    "database (pg_restore --clean)" },
};

const struct rpc_method rpc_backup_methods[] = {
	{ "backup.list", RPC_READ,
	    "Backups with their schedule, age, staleness and stored copies",
	    RPC_PARAMS(list_params), sizeof (struct name_params),
	    "{backups: [{name, next_run, newest_good, stale, backups: [...]}]}",
	    backup_list_rpc },
	{ "backup.prune", RPC_ADMIN,
	    "Apply the retention policy now (or list what it would remove)",
	    RPC_PARAMS(prune_params), sizeof (struct name_params),
	    "{backup, dry_run, removed: [id], kept: [id]}", backup_prune_rpc },
	{ "backup.restore", RPC_ADMIN | RPC_ASYNC,
	    "Restore a backup into a database after checking its checksum",
	    RPC_PARAMS(restore_params), sizeof (struct id_params),
	    "{id, into, created, forced, bytes, seconds}", backup_restore_rpc },
	{ "backup.run", RPC_ADMIN | RPC_NOT_STOPPING,
	    "Start a backup now; answers with the run id at once",
	    RPC_PARAMS(run_params), sizeof (struct name_params),
	    "{run, follow}; then backup.progress / backup.finished "
	    "notifications", backup_run_rpc },
	{ "backup.show", RPC_READ,
	    "One backup's manifest: checksum, versions, verify and upload",
	    RPC_PARAMS(id_params), sizeof (struct id_params),
	    "the manifest object", backup_show_rpc },
	{ "backup.verify", RPC_ADMIN | RPC_ASYNC,
	    "Verify a backup now: checksum, restore into a scratch database, "
	    "checks", RPC_PARAMS(id_params), sizeof (struct id_params),
	    "{id, verify: {ok, at, checks, error}}", backup_verify_rpc },
	{ "opsd.jobs", RPC_READ,
	    "Every scheduled job with its next and last run and last result",
	    RPC_NOPARAMS, "{jobs: [{name, next_run, last_run, last_result}]}",
	    jobs_rpc },
};
const size_t rpc_backup_nmethods = nitems(rpc_backup_methods);
