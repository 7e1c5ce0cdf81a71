/* libFuzzer harness for the registry JSON (image/manifest.c): manifests, indexes and
 * image configurations as a registry or an archive may send them. The first byte
 * picks the content type handed along; every descriptor parsed must be valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_desc(const seed_image_desc *d) {
    if (!d->media_type || !seed_image_digest_valid(d->digest) || d->size < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const types[] = {
        NULL,        SEED_MT_OCI_MANIFEST, SEED_MT_OCI_INDEX, SEED_MT_DOCKER_MANIFEST, SEED_MT_DOCKER_LIST,
        "text/plain"};
    if (size < 1)
        return 0;
    const char *ct = types[data[0] % 6];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    seed_image_manifest m = {0};
    seed_error *err = NULL;
    int r = seed_image_manifest_parse(text, len, ct, &m, &err);
    if (r == 0) {
        if (!m.media_type)
            abort();
        if (!m.is_index)
            check_desc(&m.config);
        for (size_t i = 0; i < m.n_layers; i++)
            check_desc(&m.layers[i]);
        for (size_t i = 0; i < m.n_manifests; i++)
            check_desc(&m.manifests[i]);
    } else if (r != -ENOMEM && (!err || !err->msg)) {
        abort();
    }
    seed_image_manifest_done(&m);
    seed_error_free(err);
    err = NULL;
    json_t *j = NULL;
    r = seed_image_config_summary(text, len, &j, &err);
    if (r == 0 && !json_is_object(j))
        abort();
    json_decref(j);
    seed_error_free(err);
    return 0;
}
