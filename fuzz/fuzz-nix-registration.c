/* libFuzzer harness for what `nix-store --dump-db` prints (image/nix.c): a closure's
 * paths and references. A closure parsed must hold valid, distinct, sorted store paths
 * whose references point inside it, and its popularity order must name each path once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/nix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    seed_nix_closure *c = NULL;
    seed_error *err = NULL;
    int r = seed_nix_parse_registration((const char *)data, size, &c, &err);
    if (r < 0) {
        if (r != -ENOMEM && (!err || !err->msg))
            abort();
        seed_error_free(err);
        return 0;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (!seed_nix_is_store_path(c->p[i].path) || (i && strcmp(c->p[i - 1].path, c->p[i].path) >= 0))
            abort();
        if (seed_nix_find(c, c->p[i].path) != i)
            abort();
        for (size_t k = 0; k < c->p[i].n_refs; k++)
            if (c->p[i].refs[k] >= c->n || c->p[i].refs[k] == i)
                abort();
    }
    size_t *rank = NULL;
    if (seed_nix_rank(c, &rank) == 0) {
        uint8_t *seen = calloc(c->n ? c->n : 1, 1);
        for (size_t i = 0; seen && i < c->n; i++) {
            if (rank[i] >= c->n || seen[rank[i]]++)
                abort();
        }
        free(seen);
        free(rank);
    }
    seed_nix_closure_free(c);
    return 0;
}
