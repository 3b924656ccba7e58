/*
 * opsd.conf: INI with sections. [opsd] holds the daemon's own keys; later
 * subsystems add named sections ("[probe api]"). Each section type has a
 * sorted keyword table; every error is reported as "FILE:LINE: message" and
 * all errors of a file are collected, not only the first.
 */
#ifndef OPSD_CONFIG_H
#define OPSD_CONFIG_H

#include <sys/types.h>

#include <stdint.h>

struct ini_section;

struct config_errors {
	char		**v;	/* "FILE:LINE: message" */
	unsigned int	  n;
};

struct opsd_config {
	char		*path;

	/* [opsd] */
	char		*socket;
	mode_t		 socket_mode;
	char		*socket_group;		/* NULL: the daemon's group */
	gid_t		 socket_gid;
	char		*admin_group;		/* NULL: only root mutates */
	gid_t		 admin_gid;
	char		*state_dir;
	int		 log_level;
	uint64_t	 idle_timeout;		/* msec, 0 = never */
	uint64_t	 max_connections;
	uint64_t	 client_buffer;		/* bytes of unsent output */
	uint64_t	 output_buffer_total;	/* the same, all connections */
	uint64_t	 shutdown_timeout;	/* msec */
	char		*metrics_listen;	/* host:port, NULL if off */
	uint64_t	 metrics_max_connections;
	char		*metrics_auth_file;	/* "user:password"; NULL: none */
	char		*metrics_tls_cert;	/* PEM; NULL: plain http */
	char		*metrics_tls_key;
	int		 status_page;		/* / and /status.json */
	uint64_t	 status_cache;		/* msec a page is sent again */

	/*
	 * The objects of every section type the registered subsystems
	 * declare ([probe NAME], [backup NAME], ...), one list per type;
	 * config.c knows none of them.
	 */
	struct config_list *lists;
	unsigned int	 nlists;
};

/* Every named section's object starts with these two members. */
struct config_obj {
	char		*name;
	int		 line;
};

struct config_list {
	const struct ini_section *sec;
	void		**v;
	unsigned int	  n;
};

/* For a section's open callback: the new object joins its type's list. */
void		 config_add(struct opsd_config *, const struct ini_section *,
		    void *obj);
unsigned int	 config_count(const struct opsd_config *,
		    const struct ini_section *);
void		*config_at(const struct opsd_config *,
		    const struct ini_section *, unsigned int i);
/* The object of that type named name, or NULL. */
void		*config_find(const struct opsd_config *,
		    const struct ini_section *, const char *name);

/*
 * Loads and checks a whole file. Returns the config, or NULL with every
 * error in errs (and nothing else changed).
 */
struct opsd_config *config_load(const char *path, struct config_errors *errs);
/* Same, from a buffer (tests, fuzzing); name is used in messages. */
struct opsd_config *config_parse(const char *name, const char *buf,
		    size_t len, struct config_errors *errs);
void		 config_free(struct opsd_config *);

void		 config_errors_clear(struct config_errors *);

/* Objects configured, by section type, for opsd.status. */
struct json_t;
struct json_t	*config_counts(const struct opsd_config *);

#endif
