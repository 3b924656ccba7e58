/*
 * libFuzzer target for the op journal's files: op_parse() on an
 * unfinished-op file and op_history_parse() on the history, the way a
 * start-up reads whatever the state directory holds. Besides crashes it
 * checks that what is accepted is what the journal could have written: an
 * id that passes op_id_ok(), and a kind, object and step without '/'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(const struct op *op)
{
	if (!op_id_ok(op_id(op)) || strchr(op_object(op), '/') != NULL ||
	    strchr(op_kind_name(op), '/') != NULL ||
	    strchr(op_step_name(op), '/') != NULL ||
	    *op_object(op) == '\0' || *op_kind_name(op) == '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct op	 *op, **v;
	char		  err[160];
	size_t		  n, nbad, i;

	op = op_parse((const char *)data, size, err, sizeof err);
	if (op != NULL) {
		check(op);
		if (op_state(op) != OP_RUNNING || *op_step_name(op) == '\0')
			abort();
		op_free(op);
	} else if (err[0] == '\0')
		abort();
	v = op_history_parse((const char *)data, size, &n, &nbad, err,
	    sizeof err);
	if (v != NULL) {
		for (i = 0; i < n; i++) {
			check(v[i]);
			if (op_state(v[i]) == OP_RUNNING)
				abort();
			op_free(v[i]);
		}
		free(v);
	}
	return (0);
}
