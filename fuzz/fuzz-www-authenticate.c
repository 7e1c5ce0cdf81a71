/* libFuzzer harness for the WWW-Authenticate parser (image/auth.c): any header value a
 * registry may send. 0 with a scheme, or an error with a message; nothing leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    seed_www_auth a = {0};
    seed_error *err = NULL;
    int r = seed_www_auth_parse(s, &a, &err);
    if (r == 0 && (!a.scheme || !*a.scheme))
        abort();
    if (r < 0 && r != -ENOMEM && (!err || !err->msg))
        abort();
    seed_www_auth_done(&a);
    seed_error_free(err);
    free(s);
    return 0;
}
