/* Nix store closures for images: which store paths a store path needs (nix-store, from
 * Debian's nix-bin), how they refer to each other, and the order nixpkgs' layered
 * images give them (most referred-to first), so that each popular path is a layer of
 * its own and a change re-uploads only the paths it touched. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define SEED_NIX_STORE "/nix/store"

typedef struct seed_nix_path {
    char *path; /* /nix/store/<hash>-<name> */
    uint64_t nar_size;
    size_t *refs; /* indices into the closure; a path's reference to itself left out */
    size_t n_refs;
} seed_nix_path;

typedef struct seed_nix_closure {
    seed_nix_path *p; /* sorted by path */
    size_t n;
    char *registration; /* seed_nix_closure_of: what nix-store --dump-db printed (for --load-db) */
} seed_nix_closure;

void seed_nix_closure_free(seed_nix_closure *c);
DEFINE_CLEANUP_FUNC(seed_nix_closure, seed_nix_closure_free)

/* Whether s is /nix/store/<32 nix-base32 characters>-<name> and nothing more. */
bool seed_nix_is_store_path(const char *s);

/* Parse what `nix-store --dump-db PATHS` prints: per path its name, hash, NAR size,
 * deriver, the count of references and the references. Every reference must be one of
 * the paths (a closure). */
int seed_nix_parse_registration(const char *text, size_t len, seed_nix_closure **ret, seed_error **err);

/* The closure of store path `path` in this machine's store, asking nix-store. what
 * names it in errors ("toplevel"). */
int seed_nix_closure_of(const char *what, const char *path, seed_nix_closure **ret, seed_error **err);

/* Index of the store path that path lies in (/nix/store/x-y/bin/z: /nix/store/x-y),
 * or (size_t)-1. */
size_t seed_nix_find(const seed_nix_closure *c, const char *path);

/* The paths, most popular first: a path's popularity is how many paths of the closure
 * need it (itself included); ties go by path. *ret has c->n indices. */
int seed_nix_rank(const seed_nix_closure *c, size_t **ret);

/* The first store path text names (/nix/store/<hash>-<name>) that is not in the
 * closure, as a new string in *ret; *ret NULL when there is none. */
int seed_nix_first_outside(const seed_nix_closure *c, const char *text, char **ret);
