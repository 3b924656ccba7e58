/*
 * libFuzzer target for what the deploy room reads from outside: its
 * state file (state_dir/deploy/NAME.json, deploy_state_parse()), a pid
 * file and /proc's children lists. Besides crashes it checks that what is
 * accepted is what the room could have written: versions opsd would
 * deploy, two different slots, a bounded history; and that the state
 * written back from it parses to the same thing.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "deploy-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(const struct deploy_state *st)
{
	unsigned int	i;

	if (st->active_slot != SLOT_BLUE && st->active_slot != SLOT_GREEN)
		abort();
	if (st->active_version[0] != '\0' &&
	    !deploy_version_ok(st->active_version))
		abort();
	if (st->has_previous && (st->prev_slot == st->active_slot ||
	    !deploy_version_ok(st->prev_version)))
		abort();
	if (st->nhist > DEPLOY_HISTORY)
		abort();
	for (i = 0; i < st->nhist; i++)
		if (!deploy_version_ok(st->hist[i].version) ||
		    strchr(st->hist[i].step, '/') != NULL)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct deploy_state	st, again;
	char				err[160], *text;
	json_t				*j;
	pid_t				pid, kids[8];
	size_t				n, i;

	if (deploy_state_parse((const char *)data, size, &st, err,
	    sizeof err) == 0) {
		check(&st);
		j = deploy_state_json(&st);
		text = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		if (text == NULL || deploy_state_parse(text, strlen(text),
		    &again, err, sizeof err) != 0 || memcmp(&st, &again,
		    sizeof st) != 0)
			abort();
		free(text);
	} else if (err[0] == '\0')
		abort();
	if (deploy_pid_parse((const char *)data, size, &pid) == 0 && pid <= 1)
		abort();
	n = deploy_children_parse((const char *)data, size, kids, 8);
	if (n > 8)
		abort();
	for (i = 0; i < n; i++)
		if (kids[i] <= 1)
			abort();
	return (0);
}
