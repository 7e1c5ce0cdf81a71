/* libFuzzer harness for the sops reader: the first byte picks the format (YAML, JSON,
 * dotenv, binary), the rest is the document, which an operator commits and the node
 * reads. It must decrypt or fail with a message, whatever the structure, metadata or
 * ENC[…] values; a fixed data key gets past the key unwrapping. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secret/sops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    seed_sops_format f = (seed_sops_format)(data[0] % 4);
    static const uint8_t key[32];
    static const char *const keys[] = {NULL, "a", "a.b", "a.0"};
    seed_age_identity id;
    memset(&id, 0x42, sizeof(id));
    for (size_t k = 0; k < 4; k++) {
        seed_error *err = NULL;
        seed_age_plain out = {0};
        int r = seed_sops_decrypt_with_key(data + 1, size - 1, f, key, keys[k], &out, &err);
        if (r < 0 && r != -ENOMEM && (!err || !err->msg))
            abort();
        if (r == 0 && !out.data)
            abort();
        seed_age_plain_done(&out);
        seed_error_free(err);
    }
    seed_error *err = NULL;
    seed_age_plain out = {0};
    int r = seed_sops_decrypt(data + 1, size - 1, f, &id, 1, NULL, &out, &err);
    if (r < 0 && r != -ENOMEM && (!err || !err->msg))
        abort();
    seed_age_plain_done(&out);
    seed_error_free(err);
    return 0;
}
