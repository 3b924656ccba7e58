/*
 * ALTER ROLE ... PASSWORD for a rotation, on its admin session (opened if
 * need be), with a SCRAM verifier computed here and the fleet lock taken
 * first when the secret asks for it.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "child.h"
#include "daemon.h"
#include "db.h"
#include "evt.h"
#include "jobs.h"
#include "op.h"
#include "pg.h"
#include "probe.h"
#include "rpc.h"
#include "secret-int.h"
#include "secret-rot-int.h"
#include "util.h"

/* --- the database ------------------------------------------------------- */

struct alter {
	struct rot	*r;
	char		 role[SECRET_ROLE_MAX + 1];
	char		*password;	/* wiped */
	alter_done	 done;
	int		 lock;
};

static void	alter_locked(struct pgq *, const PGresult *, const char *,
		    void *);

void
secret_alter_drop(struct alter *a)
{
	OPENSSL_cleanse(a->password, strlen(a->password));
	free(a->password);
	free(a);
}

static void
alter_finish(struct alter *a, const char *error)
{
	struct rot	*r = a->r;
	alter_done	 done = a->done;

	r->alter = NULL;
	secret_alter_drop(a);
	done(r, error);
}

static void
alter_result(struct pgq *q, const PGresult *res, const char *error, void *arg)
{
	struct alter	*a = arg;
	PGconn		*conn;

	(void)res;
	/*
	 * A statement that timed out is still running on the server (a
	 * client that goes away does not stop it), and one whose connection
	 * broke may have committed: either may yet set the password.
	 */
	if (error != NULL && ((conn = pg_conn(q)) == NULL ||
	    PQtransactionStatus(conn) == PQTRANS_ACTIVE))
		a->r->alter_unknown = 1;
	alter_finish(a, error);
}

static void
alter_send(struct alter *a)
{
	struct rot	*r = a->r;
	char		*verifier, *ident, *sql;
	char		 buf[SECRET_ERROR_MAX];
	PGconn		*conn;
	int		 e;

	if ((conn = pg_conn(r->q)) == NULL) {
		alter_finish(a, "the admin session closed");
		return;
	}
	if ((verifier = pg_scram_verifier(conn, a->role, a->password)) ==
	    NULL) {
		snprintf(buf, sizeof buf, "cannot compute the SCRAM verifier: "
		    "%s", PQerrorMessage(conn));
		alter_finish(a, buf);
		return;
	}
	ident = pg_quote_ident(a->role);
	/* a verifier is [A-Za-z0-9+/=$:-]: nothing to escape in a literal */
	xasprintf(&sql, "ALTER ROLE %s PASSWORD '%s'", ident, verifier);
	OPENSSL_cleanse(verifier, strlen(verifier));
	PQfreemem(verifier);
	free(ident);
	e = pg_exec(r->q, sql, r->s->conf->timeout, alter_result, a);
	OPENSSL_cleanse(sql, strlen(sql));
	free(sql);
	if (e != 0) {
		snprintf(buf, sizeof buf, "cannot send ALTER ROLE: %s",
		    strerror(-e));
		alter_finish(a, buf);
	}
}

static void
alter_connected(struct pgq *q, const PGresult *res, const char *error,
    void *arg)
{
	struct alter	*a = arg;
	struct rot	*r = a->r;
	char		 buf[SECRET_ERROR_MAX];
	int		 e;

	(void)res;
	if (error != NULL) {
		/* a session stays open on an error: close it, keep a */
		r->alter = NULL;
		secret_rot_close_session(r);
		r->alter = a;
		snprintf(buf, sizeof buf, "cannot connect to database %s as "
		    "its admin role: %s", r->s->conf->database, error);
		alter_finish(a, buf);
		return;
	}
	if (a->lock && r->s->conf->lock == 1) {
		if ((e = db_try_lock(q, db_lock_key("secret",
		    r->s->conf->name), r->s->conf->timeout, alter_locked,
		    a)) != 0) {
			snprintf(buf, sizeof buf, "cannot take the advisory "
			    "lock: %s", strerror(-e));
			alter_finish(a, buf);
		}
		return;
	}
	alter_send(a);
}

static void
alter_locked(struct pgq *q, const PGresult *res, const char *error,
    void *arg)
{
	struct alter	*a = arg;
	char		 buf[SECRET_ERROR_MAX];

	(void)q;
	if (error != NULL) {
		snprintf(buf, sizeof buf, "cannot take the advisory lock: %s",
		    error);
		alter_finish(a, buf);
	} else if (!db_lock_held(res)) {
		snprintf(buf, sizeof buf, "another host holds the advisory "
		    "lock opsd.secret.%s and rotates this secret",
		    a->r->s->conf->name);
		alter_finish(a, buf);
	} else
		alter_send(a);
}

/*
 * Sets role's password on the admin session (opened if need be), taking
 * the fleet lock first when lock is set and the secret asks for it.
 */
void
secret_rot_alter(struct rot *r, const char *role, const char *password,
    int lock,
    alter_done done)
{
	struct alter	*a;

	a = xcalloc(1, sizeof *a);
	a->r = r;
	snprintf(a->role, sizeof a->role, "%s", role);
	a->password = xstrdup(password);
	a->done = done;
	a->lock = lock;
	r->alter_unknown = 0;
	if (r->q != NULL && pg_conn(r->q) != NULL) {
		r->alter = a;
		alter_send(a);
		return;
	}
	secret_rot_close_session(r);
	r->alter = a;
	r->q = db_session_open(secret_rot_opsd(r), r->s->db, 1, NULL,
	    r->s->conf->timeout, alter_connected, a);
}

