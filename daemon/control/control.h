/*
 * The control socket: listening (created, or passed by systemd), accepting,
 * reading framed requests and writing replies with a bounded output buffer
 * per connection, peer credentials for authorization.
 */
#ifndef OPSD_CONTROL_H
#define OPSD_CONTROL_H

#include <sys/types.h>

#include <jansson.h>

struct opsd;
struct ctl_conn;

struct peer {
	uid_t	 uid;
	gid_t	 gid;
	pid_t	 pid;
	gid_t	*groups;	/* supplementary groups (SO_PEERGROUPS) */
	int	 ngroups;
	char	 comm[64];	/* from /proc, for the audit trail */
};

int	 control_init(struct opsd *);		/* 0 or -errno, logged */
void	 control_reconfigure(struct opsd *);	/* after a reload */
void	 control_stop(struct opsd *);		/* stop accepting, drain */
void	 control_free(struct opsd *);
unsigned int control_nconns(struct opsd *);
int	 control_activated(struct opsd *);
const char *control_path(struct opsd *);

const struct peer *control_peer(struct ctl_conn *);
int	 control_may_admin(struct opsd *, struct ctl_conn *);
/* Deferred calls of a connection: orphaned when it closes. */
struct rpc_pending;
void	 control_track(struct ctl_conn *, struct rpc_pending *);
void	 control_untrack(struct rpc_pending *);
/* Queues one message (a notification) on conn; 0 or -errno. */
int	 control_send(struct ctl_conn *, json_t *msg);

#endif
