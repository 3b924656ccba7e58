/*
 * A table-driven INI reader. Why not inih: opsd reports every error with
 * its line, including errors found after a key was read (a bad value, a
 * duplicate, a missing required key), and checks values by type against
 * a sorted keyword table; inih as packaged hands no line numbers to the
 * handler and truncates long lines.
 *
 * Syntax: "[type]" or "[type name]" opens a section; "key = value" sets a
 * key; lines starting with '#' or ';' and blank lines are ignored. A value
 * may be wrapped in double quotes to keep leading or trailing blanks.
 * There are no comments after a value: a '#' there is part of it (URL
 * fragments, passwords), and a rejected value with a '#' after a blank
 * says that comments go on their own line.
 */
#ifndef OPSD_INI_H
#define OPSD_INI_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum ini_kind {
	INI_STRING,	/* char * */
	INI_PATH,	/* char *, absolute */
	INI_DURATION,	/* uint64_t msec */
	INI_SIZE,	/* uint64_t bytes */
	INI_UINT,	/* uint64_t */
	INI_MODE,	/* mode_t */
	INI_BOOL,	/* int */
	INI_LOGLEVEL,	/* int, syslog priority */
	INI_GROUP,	/* char * name at off, gid_t at off2 */
	INI_USER,	/* char * name at off, uid_t at off2 */
	INI_ENUM,	/* int: index into choices */
	INI_LIST,	/* char ** at off, count (unsigned int) at off2; the
			   key may repeat, each line adds one entry */
};

#define INI_REQUIRED	0x1

struct ini_key {
	const char	*name;
	enum ini_kind	 kind;
	size_t		 off;
	size_t		 off2;
	const char	*dflt;		/* parsed like a value; NULL: none */
	uint64_t	 min;		/* for numbers, durations, sizes */
	uint64_t	 max;		/* 0: no limit */
	unsigned int	 flags;
	const char *const *choices;	/* INI_ENUM, NULL-terminated */
	/* Extra check of the raw value: NULL or a message. May be NULL. */
	const char	*(*validate)(const char *value, char *buf,
			    size_t len);
};

struct ini_section {
	const char		*name;
	int			 named;		/* "[type NAME]" */
	const struct ini_key	*keys;		/* sorted by name */
	size_t			 nkeys;
	/* Returns the object the keys' offsets point into. */
	void			*(*open)(void *ctx, const char *name);
	/*
	 * Checks across keys; reports with ini_error(). keylines[i] is the
	 * line that set keys[i], 0 if unset. May be NULL.
	 */
	void			 (*check)(void *ctx, void *obj, const char *file,
				    int line, const int *keylines,
				    struct config_errors *);
	/*
	 * Named sections: the object's destructor, and the plural that
	 * opsd.status counts them under ("probes"). Objects of a named
	 * section start with struct config_obj (name, line).
	 */
	void			 (*free)(void *obj);
	const char		*plural;
};

int	 ini_parse(const char *file, const char *buf, size_t len,
	    const struct ini_section *types, size_t ntypes, void *ctx,
	    struct config_errors *errs);
/* Fills every key that has a default; 0 or -1 if a default is bad. */
int	 ini_defaults(const struct ini_section *, void *obj);
void	 ini_free(const struct ini_section *, void *obj);
/*
 * A deep copy of a size-byte object of this section type: every string
 * and list the key table names is duplicated (other pointers are not).
 */
void	*ini_copy(const struct ini_section *, const void *src, size_t size);
/* 1 if every key the table names has the same value in a and b. */
int	 ini_equal(const struct ini_section *, const void *a, const void *b);
/* The line that set key, or 0 (for check callbacks). */
int	 ini_keyline(const struct ini_section *, const int *keylines,
	    const char *key);
/*
 * In a check callback: the value of key as the file wrote it, for
 * messages that echo it ("timeout 20s", not 20000), or NULL when the
 * file did not set it (then format the default: format_duration()).
 */
const char *ini_written(const struct ini_section *, const int *keylines,
	    const char *key);
void	 ini_error(struct config_errors *, const char *file, int line,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/*
 * A validate function for a file opsd reads (a CA bundle, a credential):
 * an absolute path that is readable now, so a typo fails the config check
 * rather than the first run.
 */
const char *ini_validate_readable(const char *value, char *buf, size_t len);

#endif
