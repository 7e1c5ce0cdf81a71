/* The primitives age and sops are built from, over OpenSSL 3's libcrypto: X25519,
 * HKDF-SHA-256, HMAC-SHA-256, ChaCha20-Poly1305 and AES-256-GCM, plus strict base64
 * (RFC 4648 section 4) that rejects non-canonical encodings. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEED_X25519_LEN 32
#define SEED_AEAD_TAG_LEN 16

/* Fill buf with n bytes from the system CSPRNG. */
int seed_random_bytes(void *buf, size_t n);

/* The public key (X25519(secret, basepoint)) of a 32-byte secret. */
int seed_x25519_public(const uint8_t secret[SEED_X25519_LEN], uint8_t out[SEED_X25519_LEN]);
/* X25519(secret, peer). Fails with -EINVAL when the result is all zeros (a low-order
 * peer point), which age requires implementations to refuse. */
int seed_x25519_shared(const uint8_t secret[SEED_X25519_LEN], const uint8_t peer[SEED_X25519_LEN],
                       uint8_t out[SEED_X25519_LEN]);

/* HKDF-SHA-256 (RFC 5869), extract with salt (may be empty) then expand with info. */
int seed_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                     const char *info, uint8_t *out, size_t out_len);
int seed_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len, uint8_t out[32]);

/* ChaCha20-Poly1305 (RFC 8439) with a 12-byte nonce. seal writes len + 16 bytes
 * (ciphertext then tag); open reads len >= 16 bytes and writes len - 16, failing
 * with -EBADMSG when the tag does not verify. */
int seed_chacha_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *in, size_t len,
                     uint8_t *out);
int seed_chacha_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *in, size_t len,
                     uint8_t *out);

/* AES-256-GCM with a nonce of any length (sops uses 32 bytes) and additional data;
 * the tag is separate. open fails with -EBADMSG when the tag does not verify. */
int seed_aes_gcm_seal(const uint8_t key[32], const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                      size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                      uint8_t tag[SEED_AEAD_TAG_LEN]);
int seed_aes_gcm_open(const uint8_t key[32], const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                      size_t aad_len, const uint8_t *in, size_t len, const uint8_t tag[SEED_AEAD_TAG_LEN],
                      uint8_t *out);

/* Base64 with the standard alphabet. padded selects "=" padding. Decoding is strict:
 * only alphabet characters (and, when padded, exactly the right padding), with the
 * unused bits of the last character zero; anything else fails with -EINVAL.
 * encode returns a malloc'd NUL-terminated string (NULL when out of memory); decode
 * writes at most len * 3 / 4 bytes into out and returns the count. */
char *seed_b64_encode(const uint8_t *in, size_t len, bool padded);
int seed_b64_decode(const char *in, size_t len, bool padded, uint8_t *out, size_t *out_len);
/* True when c belongs to the standard base64 alphabet (padding excluded). */
bool seed_b64_char(char c);

/* Free memory that held key material or plaintext after overwriting it. */
void seed_free_secret(void *p, size_t len);
