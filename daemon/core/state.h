/*
 * Durable state: small files in state_dir, each replaced atomically.
 * A reader sees the old content or the new one, never a mix, also after
 * a crash or power loss: write a temp file in the same directory, fsync
 * it, rename it over the target, fsync the directory.
 */
#ifndef OPSD_STATE_H
#define OPSD_STATE_H

#include <sys/types.h>

#include <stddef.h>

#include <jansson.h>

/* Creates dir (and parents) with mode if missing; 0 or -errno. */
int	 state_mkdir(const char *dir, mode_t mode);

/* Replaces dir/name with data; 0 or -errno, and the old file untouched. */
int	 state_write(const char *dir, const char *name, const void *data,
	    size_t len, mode_t mode);
int	 state_write_json(const char *dir, const char *name, const json_t *);
/*
 * The same replacement (mode before the first byte, rename into place)
 * without any fsync: for throw-away files a crash may lose, such as the
 * password file a child reads once. No stall on the loop for nothing.
 */
int	 state_write_scratch(const char *dir, const char *name,
	    const void *data, size_t len, mode_t mode);

/* Returns a new reference, or NULL with *err = -errno (-EBADMSG: bad JSON). */
json_t	*state_read_json(const char *dir, const char *name, int *err);

#endif
