/*
 * libFuzzer target for state_dir/maintenance.json: maint_parse() on
 * whatever the state directory holds, the way a start-up reads it. What
 * is accepted has the shapes opsd writes and goes back the way it came
 * through maint_file_json(); a refusal gives a reason and leaves nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "maint.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct maint_window	v[MAINT_MAX], back[MAINT_MAX];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int	 n, m, i;
	json_t		*j;
	char		 err[256], *text;

	err[0] = '\0';
	if (maint_parse((const char *)data, size, v, &n, err,
	    sizeof err) != 0) {
		if (err[0] == '\0' || n != 0 || v[0].name[0] != '\0')
			abort();
		return (0);
	}
	if (n > MAINT_MAX)
		abort();
	for (i = 0; i < n; i++)
		if (!maint_name_ok(v[i].name) || !maint_reason_ok(v[i].reason) ||
		    (v[i].until != 0 && v[i].until < v[i].started))
			abort();
	j = maint_file_json(v, n);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (text == NULL)
		abort();
	memset(back, 0xa5, sizeof back);
	if (maint_parse(text, strlen(text), back, &m, err, sizeof err) != 0 ||
	    m != n || memcmp(back, v, sizeof v[0] * n) != 0)
		abort();
	free(text);
	return (0);
}
