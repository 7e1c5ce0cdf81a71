/* Pushing a local image (layout.h) to a registry (registry.h): the blobs the registry
 * lacks are mounted from another repository of it or uploaded, then the manifest is
 * stored. Nothing counts as pushed before the manifest is. */
#pragma once

#include <jansson.h>

#include "image/layout.h"
#include "image/registry.h"

typedef struct seed_image_push_opts {
    uint64_t chunk_size; /* blobs larger are uploaded in PATCHes of this size; 0: never */
    /* Where the blobs pushed before are remembered (digest -> repository, per registry),
     * to mount them into another repository; NULL: no mounts. */
    const char *mount_cache;
} seed_image_push_opts;

/* Push src to ref. *ret: {"ref", "digest", "uploaded": [...], "skipped": [...],
 * "mounted": [...]} (digests), only on success. */
int seed_image_push(const seed_image_src *src, const seed_image_ref *ref, seed_registry *r,
                    const seed_image_push_opts *o, json_t **ret, seed_error **err);
