/* SHA-256 through OpenSSL's EVP interface, plus hex and base32 encoders. */
#include "base/hash.h"

#include <errno.h>
#include <openssl/evp.h>

struct seed_sha256 {
    EVP_MD_CTX *ctx;
};

seed_sha256 *seed_sha256_new(void) {
    seed_sha256 *h = malloc(sizeof(*h));
    if (!h)
        return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void seed_sha256_update(seed_sha256 *h, const void *data, size_t n) {
    /* EVP_DigestUpdate on an initialised SHA-256 context cannot fail. */
    (void)EVP_DigestUpdate(h->ctx, data, n);
}

void seed_sha256_final(seed_sha256 *h, uint8_t out[SEED_SHA256_LEN]) {
    unsigned len = SEED_SHA256_LEN;
    (void)EVP_DigestFinal_ex(h->ctx, out, &len);
    seed_sha256_free(h);
}

void seed_sha256_free(seed_sha256 *h) {
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

static int sha256_digest(const void *data, size_t n, uint8_t out[SEED_SHA256_LEN]) {
    unsigned len = SEED_SHA256_LEN;
    if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1)
        return -ENOMEM;
    return 0;
}

int seed_sha256_hex(const void *data, size_t n, char out[SEED_SHA256_HEX_LEN + 1]) {
    uint8_t d[SEED_SHA256_LEN];
    int r = sha256_digest(data, n, d);
    if (r < 0)
        return r;
    seed_hex(d, sizeof(d), out);
    return 0;
}

void seed_hex(const uint8_t *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

size_t seed_base32(const uint8_t *in, size_t n, char *out) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    size_t o = 0;
    uint32_t buffer = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        buffer = (buffer << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = alphabet[(buffer >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = alphabet[(buffer << (5 - bits)) & 31];
    out[o] = 0;
    return o;
}
