/* SHA-256 (OpenSSL's EVP) and the encodings seed's hashes are printed in:
 * lower-case hex and RFC 4648 base32 without padding. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SEED_SHA256_LEN 32
#define SEED_SHA256_HEX_LEN 64

typedef struct seed_sha256 seed_sha256;

/* Streaming interface. new() returns NULL only when out of memory. */
seed_sha256 *seed_sha256_new(void);
void seed_sha256_update(seed_sha256 *h, const void *data, size_t n);
/* Writes the digest and frees the context. */
void seed_sha256_final(seed_sha256 *h, uint8_t out[SEED_SHA256_LEN]);
void seed_sha256_free(seed_sha256 *h);

/* One-shot digest as 64 lower-case hex characters plus NUL. */
int seed_sha256_hex(const void *data, size_t n, char out[SEED_SHA256_HEX_LEN + 1]);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void seed_hex(const uint8_t *in, size_t n, char *out);
/* RFC 4648 base32 (upper-case alphabet, no padding) of n bytes. out must hold
 * (n*8+4)/5 + 1 bytes. Returns the encoded length. */
size_t seed_base32(const uint8_t *in, size_t n, char *out);
