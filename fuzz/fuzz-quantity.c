/* libFuzzer harness for the storage quantity parser: any byte string, checked for
 * the documented contract (0 with a positive size, or an error with a message). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    uint64_t v = 0;
    char *msg = NULL;
    int r = seed_parse_quantity(s, &v, &msg);
    if (r == 0 && (v == 0 || v > INT64_MAX))
        abort();
    if (r < 0 && !msg)
        abort();
    free(msg);
    free(s);
    return 0;
}
