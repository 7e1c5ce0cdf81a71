/* Cryptographic primitives for age and sops over OpenSSL 3, and strict base64. */
#include "secret/crypto.h"

#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "base/macro.h"

int seed_random_bytes(void *buf, size_t n) {
    if (n > INT32_MAX || RAND_bytes(buf, (int)n) != 1)
        return -EIO;
    return 0;
}

int seed_x25519_public(const uint8_t secret[SEED_X25519_LEN], uint8_t out[SEED_X25519_LEN]) {
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, secret, SEED_X25519_LEN);
    if (!k)
        return -ENOMEM;
    size_t len = SEED_X25519_LEN;
    int ok = EVP_PKEY_get_raw_public_key(k, out, &len) == 1 && len == SEED_X25519_LEN;
    EVP_PKEY_free(k);
    return ok ? 0 : -EIO;
}

int seed_x25519_shared(const uint8_t secret[SEED_X25519_LEN], const uint8_t peer[SEED_X25519_LEN],
                       uint8_t out[SEED_X25519_LEN]) {
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, secret, SEED_X25519_LEN);
    EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, SEED_X25519_LEN);
    EVP_PKEY_CTX *ctx = k ? EVP_PKEY_CTX_new(k, NULL) : NULL;
    int r = -ENOMEM;
    if (k && p && ctx) {
        size_t len = SEED_X25519_LEN;
        /* OpenSSL refuses an all-zero result itself; the check below keeps that
         * guarantee whatever the provider does. */
        if (EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, p) == 1 &&
            EVP_PKEY_derive(ctx, out, &len) == 1 && len == SEED_X25519_LEN) {
            uint8_t acc = 0;
            for (size_t i = 0; i < SEED_X25519_LEN; i++)
                acc |= out[i];
            r = acc ? 0 : -EINVAL;
        } else
            r = -EINVAL;
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(p);
    EVP_PKEY_free(k);
    return r;
}

int seed_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                     const char *info, uint8_t *out, size_t out_len) {
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (!ctx)
        return -ENOMEM;
    OSSL_PARAM params[5], *p = params;
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
    /* An empty salt is HMAC's all-zero key either way (RFC 5869 2.2). */
    if (salt_len)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    *p = OSSL_PARAM_construct_end();
    int ok = EVP_KDF_derive(ctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(ctx);
    return ok ? 0 : -EIO;
}

int seed_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len, uint8_t out[32]) {
    unsigned n = 32;
    if (key_len > INT32_MAX || !HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) || n != 32)
        return -EIO;
    return 0;
}

/* One AEAD operation: seal (enc) or open; the tag is separate. */
static int aead(const EVP_CIPHER *cipher, bool enc, const uint8_t *key, const uint8_t *iv, size_t iv_len,
                const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                uint8_t *tag) {
    if (len > INT32_MAX || aad_len > INT32_MAX)
        return -EFBIG;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return -ENOMEM;
    int r = -EIO, n = 0;
    if (EVP_CipherInit_ex(ctx, cipher, NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, (int)iv_len, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, enc) != 1)
        goto out;
    if (aad_len && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
        goto out;
    if (len && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, SEED_AEAD_TAG_LEN, tag) != 1)
        goto out;
    uint8_t none[16];
    if (EVP_CipherFinal_ex(ctx, len ? out + n : none, &n) != 1) {
        r = enc ? -EIO : -EBADMSG;
        goto out;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, SEED_AEAD_TAG_LEN, tag) != 1)
        goto out;
    r = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return r;
}

int seed_chacha_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *in, size_t len,
                     uint8_t *out) {
    return aead(EVP_chacha20_poly1305(), true, key, nonce, 12, NULL, 0, in, len, out, out + len);
}

int seed_chacha_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *in, size_t len,
                     uint8_t *out) {
    if (len < SEED_AEAD_TAG_LEN)
        return -EBADMSG;
    len -= SEED_AEAD_TAG_LEN;
    return aead(EVP_chacha20_poly1305(), false, key, nonce, 12, NULL, 0, in, len, out, (uint8_t *)in + len);
}

int seed_aes_gcm_seal(const uint8_t key[32], const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                      size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                      uint8_t tag[SEED_AEAD_TAG_LEN]) {
    return aead(EVP_aes_256_gcm(), true, key, iv, iv_len, aad, aad_len, in, len, out, tag);
}

int seed_aes_gcm_open(const uint8_t key[32], const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                      size_t aad_len, const uint8_t *in, size_t len, const uint8_t tag[SEED_AEAD_TAG_LEN],
                      uint8_t *out) {
    return aead(EVP_aes_256_gcm(), false, key, iv, iv_len, aad, aad_len, in, len, out, (uint8_t *)tag);
}

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

bool seed_b64_char(char c) {
    return b64_value(c) >= 0;
}

char *seed_b64_encode(const uint8_t *in, size_t len, bool padded) {
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        out[o++] = b64_alphabet[in[i] >> 2];
        out[o++] = b64_alphabet[(in[i] & 3) << 4];
        if (padded) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[o++] = b64_alphabet[v >> 10];
        out[o++] = b64_alphabet[(v >> 4) & 63];
        out[o++] = b64_alphabet[(v & 15) << 2];
        if (padded)
            out[o++] = '=';
    }
    out[o] = 0;
    return out;
}

int seed_b64_decode(const char *in, size_t len, bool padded, uint8_t *out, size_t *out_len) {
    size_t pad = 0;
    if (padded) {
        if (len % 4)
            return -EINVAL;
        while (pad < 2 && pad < len && in[len - 1 - pad] == '=')
            pad++;
        len -= pad;
        /* "x===" and the like: three padding characters are never valid. */
        if (pad && len % 4 == 1)
            return -EINVAL;
        if ((pad == 1 && len % 4 != 3) || (pad == 2 && len % 4 != 2))
            return -EINVAL;
    }
    if (len % 4 == 1)
        return -EINVAL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Canonical: the bits left over after the last whole byte are zero. */
    if (acc != 0)
        return -EINVAL;
    *out_len = o;
    return 0;
}

void seed_free_secret(void *p, size_t len) {
    if (!p)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}
