/*
 * libFuzzer target for the plain http:// URL splitter
 * (daemon/probe/http-url.c). The input is a URL. Besides crashes it
 * checks the splitter's promise against libcurl's own URL API: whatever
 * it takes, libcurl takes too and splits into the same host, port, path
 * and query; a difference aborts with both sides.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http-url.h"
#include "lazylib.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*url, why[512];

	if (size > 4096 || memchr(data, '\0', size) != NULL)
		return (0);
	if (lazylib_curl() != 0)
		abort();	/* nothing to compare with */
	url = malloc(size + 1);
	memcpy(url, data, size);
	url[size] = '\0';
	if (http_url_check(url, why, sizeof why) != 0) {
		fprintf(stderr, "%s: %s\n", url, why);
		abort();
	}
	free(url);
	return (0);
}
