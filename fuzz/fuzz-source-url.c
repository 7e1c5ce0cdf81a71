/* libFuzzer harness for source URLs and refs (`seed source add NAME URL --ref REF`):
 * the input is URL, a NUL, then REF (absent: no ref). Checked for the contract: an
 * error with a message, or a parse whose URI is flake-style and whose ref is valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "source/fetch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    size_t ul = strlen(s);
    const char *ref = ul < size ? s + ul + 1 : NULL;
    seed_fetch_url u = {0};
    seed_error *err = NULL;
    int r = seed_fetch_url_parse(s, ref, &u, &err);
    if (r < 0) {
        if (!err || !err->msg || !*err->msg)
            abort();
    } else {
        if (!u.url || !u.uri)
            abort();
        if (strncmp(u.uri, "path:", 5) != 0 && strncmp(u.uri, "git+", 4) != 0)
            abort();
        const char *why = NULL;
        if (u.ref && !seed_fetch_ref_valid(u.ref, &why))
            abort();
        char *red = seed_fetch_url_redact(u.url);
        free(red);
    }
    seed_error_free(err);
    seed_fetch_url_clear(&u);
    free(s);
    return 0;
}
