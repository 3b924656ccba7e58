/*
 * The two roles of an alternating secret, compared: memberships, table
 * privileges and ownerships in the secret's database. What differs is
 * kept for secret.show and logged as secret.roles_differ; it warns and
 * never stops a rotation.
 */
#include <string.h>
#include <syslog.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db.h"
#include "evt.h"
#include "pg.h"
#include "secret-int.h"
#include "util.h"

static void
differ_done(struct pgq *q, const PGresult *res, const char *error, void *arg)
{
	struct secret		*s = arg;
	const char		*a = s->conf->role_a, *b = s->conf->role_b;
	json_t			*list;
	int			 i, j, n, found;
	char			*line;

	(void)q;
	s->differ_q = NULL;
	if (error != NULL) {
		evt_log_about(LOG_WARNING, "secret.roles", "secret",
		    s->conf->name, "secret %s: cannot compare roles %s and %s: "
		    "%s", s->conf->name, a, b, error);
		return;
	}
	list = json_array();
	n = PQntuples(res);
	for (i = 0; i < n && json_array_size(list) < 20; i++) {
		const char *what = PQgetvalue(res, i, 0);
		const char *who = PQgetvalue(res, i, 1);

		found = 0;
		for (j = 0; j < n && !found; j++)
			found = j != i && strcmp(PQgetvalue(res, j, 0), what) ==
			    0 && strcmp(PQgetvalue(res, j, 1), who) != 0;
		if (found)
			continue;
		xasprintf(&line, "%s is %s, %s is not", who, what,
		    strcmp(who, a) == 0 ? b : a);
		json_array_append_new(list, json_string(line));
		free(line);
	}
	json_decref(s->differ);
	s->differ = list;
	if (json_array_size(list) > 0)
		secret_event(s, &EVT_SECRET_ROLES_DIFFER, NULL, 0, NULL,
		    "secret %s: roles %s and %s differ (%s%s): objects one "
		    "creates may be unreadable by the other; let a group role "
		    "own them and grant it to both", s->conf->name, a, b,
		    json_string_value(json_array_get(list, 0)),
		    json_array_size(list) > 1 ? ", ..." : "");
}

/*
 * What the two roles of an alternating pair are allowed and own, in the
 * secret's database: memberships, table privileges, ownerships. Asked at
 * each rotation; a difference warns, it does not stop the rotation.
 */
void
secret_roles_compare(struct secret *s)
{
	PQconninfoOption	*opts, *opt;
	const char		*dbname = NULL;
	char			*sql;

	if (s->conf->strategy != SECRET_ALTERNATING || s->differ_q != NULL)
		return;
	if ((opts = PQconninfoParse(s->db->conninfo, NULL)) != NULL)
		for (opt = opts; opt->keyword != NULL; opt++)
			if (strcmp(opt->keyword, "dbname") == 0 && opt->val)
				dbname = opt->val;
	/* role names are [A-Za-z0-9_]: safe in a literal (secret-conf.c) */
	xasprintf(&sql,
	    "SELECT 'member of ' || b.rolname, r.rolname FROM pg_auth_members m"
	    " JOIN pg_roles r ON m.member = r.oid JOIN pg_roles b ON"
	    " m.roleid = b.oid WHERE r.rolname IN ('%s', '%s')"
	    " UNION ALL SELECT 'allowed ' || privilege_type || ' on ' ||"
	    " table_schema || '.' || table_name, grantee FROM"
	    " information_schema.role_table_grants WHERE grantee IN"
	    " ('%s', '%s') AND grantor <> grantee"
	    " UNION ALL SELECT 'owner of ' || n.nspname || '.' || c.relname,"
	    " r.rolname FROM pg_class c JOIN pg_namespace n ON"
	    " c.relnamespace = n.oid JOIN pg_roles r ON c.relowner = r.oid"
	    " WHERE r.rolname IN ('%s', '%s') AND c.relkind IN"
	    " ('r', 'v', 'm', 'S', 'f', 'p') ORDER BY 1, 2",
	    s->conf->role_a, s->conf->role_b, s->conf->role_a,
	    s->conf->role_b, s->conf->role_a, s->conf->role_b);
	s->differ_q = db_query(s->opsd, s->db, 1, dbname, sql,
	    s->conf->timeout, differ_done, s);
	PQconninfoFree(opts);
	free(sql);
}

