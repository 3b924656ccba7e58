/*
 * libFuzzer target for a secret's state file, state_dir/secrets/NAME.json:
 * secret_meta_parse() on whatever the state directory holds, the way a
 * start-up reads it. Besides crashes it checks that what is accepted is
 * what the daemon could have written and goes back the way it came: a
 * version has a fingerprint of the right shape, the history fits, a role
 * holds nothing to quote, and secret_meta_json() of the result parses
 * back to the same struct, byte for byte. A refusal gives a reason and
 * leaves the struct cleared.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "secret-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
fp_shape(const char *fp)
{
	size_t	i;

	if (strncmp(fp, "sha256:", 7) != 0 || strlen(fp) != 23)
		return (0);
	for (i = 7; i < 23; i++)
		if (!isdigit((unsigned char)fp[i]) && (fp[i] < 'a' ||
		    fp[i] > 'f'))
			return (0);
	return (1);
}

static void
check(const struct secret_meta *m)
{
	unsigned int	i;
	const char	*p;

	if (m->version < 0 || (m->version > 0) != (m->fp[0] != '\0') ||
	    (m->fp[0] != '\0' && !fp_shape(m->fp)) ||
	    m->nhist > SECRET_HISTORY)
		abort();
	for (i = 0; i < m->nhist; i++)
		if (!fp_shape(m->hist[i].fp) || m->hist[i].version < 0)
			abort();
	for (p = m->role; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			abort();
	if (m->origin[0] != '\0' && strcmp(m->origin, "generated") != 0 &&
	    strcmp(m->origin, "imported") != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct secret_meta zero;
	struct secret_meta	 m, back;
	json_t			*j;
	char			 err[256], *text;

	err[0] = '\0';
	if (secret_meta_parse((const char *)data, size, &m, err,
	    sizeof err) != 0) {
		if (err[0] == '\0' || memcmp(&m, &zero, sizeof m) != 0)
			abort();
		return (0);
	}
	check(&m);
	j = secret_meta_json(&m);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (text == NULL)
		abort();
	memset(&back, 0xa5, sizeof back);
	if (secret_meta_parse(text, strlen(text), &back, err,
	    sizeof err) != 0 || memcmp(&back, &m, sizeof m) != 0)
		abort();
	free(text);
	return (0);
}
