/* The JSON documents of an OCI image (oci.c): compact, keys sorted. Each returns 0
 * and malloc'd text in *ret, or -ENOMEM. */
#pragma once

#include "image/image.h"

/* The OCI architecture of a seed system ("x86_64-linux" → "amd64"), or NULL. */
const char *seed_oci_arch(const char *system);
int seed_oci_config(const seed_instance *s, const seed_image_opts *o, const seed_image_layer *layers,
                    size_t n, char **ret);
int seed_oci_manifest(const char *config_digest, uint64_t config_size, const seed_image_layer *layers,
                      size_t n, char **ret);
int seed_oci_index(const char *manifest_digest, uint64_t manifest_size, const char *tag, char **ret);
/* docker-archive's manifest.json, naming the blobs of the layout beside it. */
int seed_docker_manifest(const char *config_digest, const char *repo_tag, const seed_image_layer *layers,
                         size_t n, char **ret);
