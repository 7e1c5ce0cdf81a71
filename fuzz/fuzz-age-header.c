/* libFuzzer harness for the age reader: the input is a file an operator commits and
 * seed decrypts (binary or armored). The header must parse or fail with a message,
 * a parsed header must re-encode to the same stanzas, and decryption with a fixed
 * identity must fail cleanly or release plaintext no longer than the payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secret/age.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The identity of the C2SP vectors, so seeds taken from them get past the unwrap. */
    static seed_age_identity id;
    static bool init;
    if (!init) {
        if (seed_age_identity_parse(
                "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0", &id, NULL) < 0)
            abort();
        init = true;
    }
    seed_error *err = NULL;
    seed_age_header *h = NULL;
    int r = seed_age_header_parse(data, size, &h, &err);
    if (r < 0 && r != -ENOMEM && (!err || !err->msg))
        abort();
    seed_error_free(err);
    err = NULL;
    if (r == 0) {
        if (h->len > size || h->mac_input_len > h->len || h->n_stanzas == 0)
            abort();
        for (size_t i = 0; i < h->n_stanzas; i++)
            if (h->stanzas[i].n_args == 0 || !h->stanzas[i].args[0][0])
                abort();
        static const uint8_t key[16];
        char *enc = NULL;
        size_t enc_len = 0;
        /* Everything before the MAC re-encodes byte for byte. */
        if (seed_age_header_encode(h->stanzas, h->n_stanzas, key, &enc, &enc_len) == 0) {
            if (enc_len != h->len || memcmp(enc, data, h->mac_input_len) != 0)
                abort();
            free(enc);
        }
        seed_age_header_free(h);
    }
    seed_age_plain out = {0};
    r = seed_age_decrypt(data, size, &id, 1, &out, &err);
    if (r < 0 && r != -ENOMEM && (!err || !err->msg))
        abort();
    if (r == 0 && out.len > size)
        abort();
    seed_age_plain_done(&out);
    seed_error_free(err);
    return 0;
}
