/*
 * libFuzzer target for jsonrpc_load_fast(), the decoder of the common
 * request shapes that runs before jansson's parser: on every input it
 * takes, jansson (with the flags jsonrpc_load() gives it) must decode
 * the same bytes to an equal tree; on every input it leaves, nothing is
 * built. The corpus is fuzz/corpus/jsonrpc, whose requests are of those
 * shapes and their near misses.
 */
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "jsonrpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t		*fast, *slow;
	json_error_t	 jerr;

	if ((fast = jsonrpc_load_fast((const char *)data, size)) == NULL)
		return (0);
	slow = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES |
	    JSON_DECODE_ANY, &jerr);
	if (slow == NULL || !json_equal(fast, slow) || !json_is_object(fast))
		abort();
	json_decref(fast);
	json_decref(slow);
	return (0);
}
