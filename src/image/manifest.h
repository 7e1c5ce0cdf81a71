/* OCI and Docker v2 manifests, indexes and image configurations as JSON: parsed into
 * descriptors and checked (digests are sha256:<64 hex>, sizes non-negative). Fuzzed by
 * fuzz/fuzz-registry-json.c: the text comes from a registry or an archive. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define SEED_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define SEED_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define SEED_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define SEED_MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define SEED_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define SEED_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define SEED_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

/* "sha256:" + 64 hex + NUL */
#define SEED_DIGEST_LEN 72
/* The largest manifest or index read (distribution refuses more than 4 MiB too). */
#define SEED_MANIFEST_MAX (4u << 20)
/* The largest image configuration read. */
#define SEED_CONFIG_MAX (16u << 20)

typedef struct seed_image_desc {
    char *media_type;
    char digest[SEED_DIGEST_LEN];
    int64_t size;
    char *platform; /* index entries: "os/architecture[/variant]", or NULL */
    char *ref_name; /* index entries: org.opencontainers.image.ref.name, or NULL */
} seed_image_desc;

typedef struct seed_image_manifest {
    char *media_type; /* the manifest's own */
    bool is_index;
    seed_image_desc config; /* manifests */
    seed_image_desc *layers;
    size_t n_layers;
    seed_image_desc *manifests; /* indexes */
    size_t n_manifests;
} seed_image_manifest;

/* sha256:<64 lower-case hex>: the only algorithm read or written. */
bool seed_image_digest_valid(const char *d);
/* "sha256:" + hex of the data. */
int seed_image_digest(const void *data, size_t n, char out[SEED_DIGEST_LEN]);

/* Parse a manifest or an index. content_type (the HTTP Content-Type or the referring
 * descriptor's media type) is used when the JSON has no mediaType; may be NULL. */
int seed_image_manifest_parse(const char *data, size_t len, const char *content_type,
                              seed_image_manifest *ret, seed_error **err);
void seed_image_manifest_done(seed_image_manifest *m);

/* The parts of an image configuration a person asks about, as a new JSON object:
 * {os, architecture, created, user, workingDir, entrypoint, cmd, env, exposedPorts,
 * volumes, labels, stopSignal} (members present only when set). */
int seed_image_config_summary(const char *data, size_t len, json_t **ret, seed_error **err);
