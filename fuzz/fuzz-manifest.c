/*
 * libFuzzer target for backup_manifest_parse: any bytes, as a manifest of
 * backup "app" with and without the id its file name gives. What it
 * accepts must name its own dump and nothing else.
 *
 *   build-fuzz/fuzz/fuzz-manifest -max_total_time=60 fuzz/corpus/manifest
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backup-int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const char *const ids[] = { "app-20260131T020000Z", NULL };
	char		 err[320];
	const char	*id, *file;
	json_t		*m;
	size_t		 i, il;

	for (i = 0; i < 2; i++) {
		m = backup_manifest_parse("app", ids[i], data, len, err,
		    sizeof err);
		if (m == NULL) {
			for (const char *p = err; *p != '\0'; p++) {
				if (*p < 0x20 || *p > 0x7e)
					abort();
			}
			continue;
		}
		id = m_str(m, "id");
		file = m_str(m, "file");
		il = strlen(id);
		if (!backup_own_name("app", id, "") || strchr(file, '/') ||
		    strncmp(file, id, il) != 0 || strcmp(file + il, ".dump") ||
		    (ids[i] != NULL && strcmp(id, ids[i]) != 0) ||
		    backup_id_time("app", id) < 0)
			abort();
		json_decref(m);
	}
	return (0);
}
