/* age for X25519 recipients (c2sp.org/age): keys, header, STREAM payload, armor.
 * Strictness follows the spec's MUSTs and the C2SP test vectors (tests/unit/data/age):
 * canonical base64 everywhere, stanza bodies wrapped at exactly 64 columns, a final
 * STREAM chunk that is non-empty unless the whole payload is. */
#include "secret/age.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "secret/bech32.h"
#include "secret/crypto.h"

#define AGE_V1 "age-encryption.org/v1"
#define X25519_INFO "age-encryption.org/v1/X25519"
#define ARMOR_BEGIN "-----BEGIN AGE ENCRYPTED FILE-----"
#define ARMOR_END "-----END AGE ENCRYPTED FILE-----"
#define CHUNK_CT (SEED_AGE_CHUNK + 16)

int seed_age_identity_generate(seed_age_identity *id) {
    int r = seed_random_bytes(id->secret, sizeof(id->secret));
    if (r < 0)
        return r;
    return seed_x25519_public(id->secret, id->recipient);
}

int seed_age_identity_parse(const char *s, seed_age_identity *id, seed_error **err) {
    char hrp[32];
    size_t n = 0;
    if (seed_bech32_decode(s, hrp, sizeof(hrp), id->secret, sizeof(id->secret), &n) < 0 ||
        strcmp(hrp, "age-secret-key-") != 0 || n != 32) {
        OPENSSL_cleanse(id->secret, sizeof(id->secret));
        return seed_error_set(err, EINVAL,
                              "not an age X25519 identity (expected AGE-SECRET-KEY-1 and 58 Bech32 "
                              "characters with a valid checksum)");
    }
    if (strncmp(s, "AGE-SECRET-KEY-", 15) != 0)
        return seed_error_set(err, EINVAL, "an age identity is written in upper case (AGE-SECRET-KEY-1…)");
    int r = seed_x25519_public(id->secret, id->recipient);
    if (r < 0)
        return seed_error_set(err, -r, "cannot compute the recipient of an age identity");
    return 0;
}

int seed_age_identities_parse(const char *text, size_t len, seed_age_identity **ret, size_t *n_ret,
                              seed_error **err) {
    seed_age_identity *ids = NULL;
    size_t n = 0, line_no = 0;
    int r = 0;
    for (size_t p = 0; p < len;) {
        const char *nl = memchr(text + p, '\n', len - p);
        size_t l = nl ? (size_t)(nl - text - p) : len - p;
        line_no++;
        char line[256];
        if (l && text[p + l - 1] == '\r')
            l--;
        if (l && text[p] != '#') {
            if (l >= sizeof(line)) {
                r = seed_error_set(err, EINVAL, "line %zu: not an age identity (too long)", line_no);
                break;
            }
            memcpy(line, text + p, l);
            line[l] = 0;
            seed_age_identity *m = realloc(ids, (n + 1) * sizeof(*ids));
            if (!m) {
                r = -ENOMEM;
                break;
            }
            ids = m;
            r = seed_age_identity_parse(line, &ids[n], err);
            OPENSSL_cleanse(line, sizeof(line));
            if (r < 0) {
                seed_error_prefix(err, "line %zu: ", line_no);
                break;
            }
            n++;
        }
        p += (nl ? (size_t)(nl - text - p) + 1 : len - p);
    }
    if (r == 0 && n == 0)
        r = seed_error_set(err, EINVAL, "no age identity in the file (expected a line AGE-SECRET-KEY-1…)");
    if (r < 0) {
        seed_free_secret(ids, n * sizeof(*ids));
        return r;
    }
    *ret = ids;
    *n_ret = n;
    return 0;
}

char *seed_age_identity_encode(const seed_age_identity *id) {
    return seed_bech32_encode("age-secret-key-", id->secret, sizeof(id->secret), true);
}

char *seed_age_recipient_encode(const uint8_t recipient[32]) {
    return seed_bech32_encode("age", recipient, 32, false);
}

int seed_age_recipient_parse(const char *s, uint8_t recipient[32], seed_error **err) {
    char hrp[8];
    size_t n = 0;
    if (seed_bech32_decode(s, hrp, sizeof(hrp), recipient, 32, &n) < 0 || strcmp(hrp, "age") != 0 || n != 32)
        return seed_error_set(err, EINVAL,
                              "'%.80s' is not an age X25519 recipient (expected age1 and 58 Bech32 "
                              "characters with a valid checksum)",
                              s);
    return 0;
}

int seed_age_keygen_file(const seed_age_identity *id, time_t created, char **ret) {
    struct tm tm;
    char when[32];
    if (!gmtime_r(&created, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
        return -EINVAL;
    _cleanup_free_ char *pub = seed_age_recipient_encode(id->recipient);
    char *sec = seed_age_identity_encode(id);
    if (!pub || !sec) {
        free(sec);
        return -ENOMEM;
    }
    char *out = NULL;
    int r = asprintf(&out, "# created: %s\n# public key: %s\n%s\n", when, pub, sec);
    OPENSSL_cleanse(sec, strlen(sec));
    free(sec);
    if (r < 0)
        return -ENOMEM;
    *ret = out;
    return 0;
}

/* ---- header ---- */

static void stanza_done(seed_age_stanza *s) {
    if (s->args)
        for (size_t i = 0; i < s->n_args; i++)
            free(s->args[i]);
    free(s->args);
    free(s->body);
}

void seed_age_header_free(seed_age_header *h) {
    if (!h)
        return;
    for (size_t i = 0; i < h->n_stanzas; i++)
        stanza_done(&h->stanzas[i]);
    free(h->stanzas);
    free(h);
}

/* The line at in[p..] without its LF; -1 when there is no LF before the end. */
static ssize_t line_len(const uint8_t *in, size_t len, size_t p) {
    const uint8_t *nl = memchr(in + p, '\n', len - p);
    return nl ? nl - (in + p) : -1;
}

static int parse_stanza(const uint8_t *in, size_t len, size_t *pos, seed_age_stanza *st, seed_error **err) {
    size_t p = *pos + 3; /* after "-> " */
    ssize_t l = line_len(in, len, p);
    if (l < 0)
        return seed_error_set(err, EINVAL, "age header: a stanza line does not end with a line feed");
    for (size_t a = p, end = p + (size_t)l; a <= end;) {
        size_t b = a;
        while (b < end && in[b] != ' ')
            b++;
        if (b == a)
            return seed_error_set(err, EINVAL,
                                  "age header: a stanza argument is empty (arguments are separated by "
                                  "one space)");
        for (size_t i = a; i < b; i++)
            if (in[i] < 0x21 || in[i] > 0x7e)
                return seed_error_set(err, EINVAL,
                                      "age header: a stanza argument holds the byte 0x%02x (expected "
                                      "visible ASCII)",
                                      in[i]);
        char **m = realloc(st->args, (st->n_args + 1) * sizeof(char *));
        if (!m)
            return -ENOMEM;
        st->args = m;
        st->args[st->n_args] = strndup((const char *)in + a, b - a);
        if (!st->args[st->n_args])
            return -ENOMEM;
        st->n_args++;
        a = b + 1;
    }
    p += (size_t)l + 1;

    /* Body lines: full ones of exactly 64 columns, ended by a shorter (maybe empty) one. */
    size_t body_start = p, body_chars = 0;
    for (;;) {
        l = line_len(in, len, p);
        if (l < 0)
            return seed_error_set(err, EINVAL,
                                  "age header: a stanza body does not end with a line shorter than 64 "
                                  "columns");
        if (l > 64)
            return seed_error_set(err, EINVAL, "age header: a stanza body line is longer than 64 columns");
        for (ssize_t i = 0; i < l; i++)
            if (!seed_b64_char((char)in[p + (size_t)i]))
                return seed_error_set(err, EINVAL,
                                      "age header: a stanza body holds a character outside base64");
        body_chars += (size_t)l;
        p += (size_t)l + 1;
        if (l < 64)
            break;
    }
    _cleanup_free_ char *b64 = malloc(body_chars + 1);
    st->body = malloc(body_chars * 3 / 4 + 1);
    if (!b64 || !st->body)
        return -ENOMEM;
    size_t o = 0;
    for (size_t q = body_start; q < p; q++)
        if (in[q] != '\n')
            b64[o++] = (char)in[q];
    if (seed_b64_decode(b64, o, false, st->body, &st->body_len) < 0)
        return seed_error_set(err, EINVAL, "age header: a stanza body is not canonical unpadded base64");
    *pos = p;
    return 0;
}

int seed_age_header_parse(const uint8_t *in, size_t len, seed_age_header **ret, seed_error **err) {
    ssize_t l = line_len(in, len, 0);
    if (l < 0 || (size_t)l < strlen("age-encryption.org/") || memcmp(in, "age-encryption.org/", 19) != 0)
        return seed_error_set(err, EINVAL, "not an age file (expected the line %s)", AGE_V1);
    if ((size_t)l != strlen(AGE_V1) || memcmp(in, AGE_V1, (size_t)l) != 0)
        return seed_error_set(err, EINVAL, "age file of an unsupported version '%.*s' (expected %s)",
                              (int)MIN(l, 60), (const char *)in, AGE_V1);
    _cleanup_(seed_age_header_freep) seed_age_header *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    size_t p = (size_t)l + 1;
    for (;;) {
        if (len - p >= 3 && memcmp(in + p, "-> ", 3) == 0) {
            seed_age_stanza *m = realloc(h->stanzas, (h->n_stanzas + 1) * sizeof(*m));
            if (!m)
                return -ENOMEM;
            h->stanzas = m;
            memset(&h->stanzas[h->n_stanzas], 0, sizeof(*m));
            h->n_stanzas++;
            int r = parse_stanza(in, len, &p, &h->stanzas[h->n_stanzas - 1], err);
            if (r < 0)
                return r;
            continue;
        }
        if (len - p >= 3 && memcmp(in + p, "---", 3) == 0)
            break;
        return seed_error_set(err, EINVAL,
                              "age header: expected a stanza (\"-> \") or the MAC line (\"--- \")");
    }
    if (h->n_stanzas == 0)
        return seed_error_set(err, EINVAL, "age header: no recipient stanza");
    h->mac_input_len = p + 3;
    l = line_len(in, len, p);
    if (l != 3 + 1 + 43 || in[p + 3] != ' ')
        return seed_error_set(err, EINVAL,
                              "age header: the MAC line is not \"--- \" and 43 base64 characters");
    size_t n = 0;
    if (seed_b64_decode((const char *)in + p + 4, 43, false, h->mac, &n) < 0 || n != 32)
        return seed_error_set(err, EINVAL, "age header: the MAC is not canonical unpadded base64");
    h->len = p + (size_t)l + 1;
    *ret = TAKE_PTR(h);
    return 0;
}

/* Append to a growing buffer. */
typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

static int buf_put(buf *b, const void *d, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = MAX(b->cap * 2, b->len + n + 64);
        char *m = realloc(b->data, cap);
        if (!m)
            return -ENOMEM;
        b->data = m;
        b->cap = cap;
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

static int buf_puts(buf *b, const char *s) {
    return buf_put(b, s, strlen(s));
}

/* Base64 of data wrapped at 64 columns, each line ended with LF; the last line is
 * always shorter than 64 (empty when the encoding fills whole lines). */
static int put_wrapped(buf *b, const uint8_t *data, size_t n, bool padded) {
    _cleanup_free_ char *e = seed_b64_encode(data, n, padded);
    if (!e)
        return -ENOMEM;
    size_t el = strlen(e);
    for (size_t i = 0; i <= el; i += 64) {
        size_t k = MIN((size_t)64, el - i);
        if (buf_put(b, e + i, k) < 0 || buf_puts(b, "\n") < 0)
            return -ENOMEM;
        if (k < 64)
            break;
    }
    return 0;
}

static int mac_key(const uint8_t file_key[SEED_AGE_FILE_KEY_LEN], uint8_t key[32]) {
    return seed_hkdf_sha256(file_key, SEED_AGE_FILE_KEY_LEN, NULL, 0, "header", key, 32);
}

int seed_age_header_encode(const seed_age_stanza *stanzas, size_t n,
                           const uint8_t file_key[SEED_AGE_FILE_KEY_LEN], char **ret, size_t *ret_len) {
    buf b = {0};
    int r = buf_puts(&b, AGE_V1 "\n");
    for (size_t i = 0; r == 0 && i < n; i++) {
        r = buf_puts(&b, "->");
        for (size_t a = 0; r == 0 && a < stanzas[i].n_args; a++)
            r = buf_puts(&b, " ") < 0 ? -ENOMEM : buf_puts(&b, stanzas[i].args[a]);
        if (r == 0)
            r = buf_puts(&b, "\n");
        if (r == 0)
            r = put_wrapped(&b, stanzas[i].body, stanzas[i].body_len, false);
    }
    if (r == 0)
        r = buf_puts(&b, "---");
    uint8_t key[32], mac[32];
    if (r == 0)
        r = mac_key(file_key, key);
    if (r == 0)
        r = seed_hmac_sha256(key, sizeof(key), (const uint8_t *)b.data, b.len, mac);
    OPENSSL_cleanse(key, sizeof(key));
    _cleanup_free_ char *m = r == 0 ? seed_b64_encode(mac, sizeof(mac), false) : NULL;
    if (r == 0 && !m)
        r = -ENOMEM;
    if (r == 0)
        r = buf_puts(&b, " ") < 0 ? -ENOMEM : buf_puts(&b, m);
    if (r == 0)
        r = buf_puts(&b, "\n");
    if (r < 0) {
        free(b.data);
        return r;
    }
    *ret = b.data;
    *ret_len = b.len;
    return 0;
}

/* Try one X25519 stanza with one identity: 0 with the file key, -ENOKEY when it is
 * not ours, another error (set in err) when the stanza is malformed. */
static int x25519_unwrap(const seed_age_stanza *st, const seed_age_identity *id, uint8_t file_key[16],
                         seed_error **err) {
    if (st->n_args != 2)
        return seed_error_set(err, EINVAL, "age header: an X25519 stanza has %zu arguments (expected 2)",
                              st->n_args);
    uint8_t share[33];
    size_t n = 0;
    size_t al = strlen(st->args[1]);
    if (al != 43 || seed_b64_decode(st->args[1], al, false, share, &n) < 0 || n != 32)
        return seed_error_set(err, EINVAL,
                              "age header: an X25519 share is not the canonical base64 of 32 bytes");
    if (st->body_len != 32)
        return seed_error_set(err, EINVAL, "age header: an X25519 stanza body is %zu bytes (expected 32)",
                              st->body_len);
    uint8_t shared[32], salt[64], key[32];
    if (seed_x25519_shared(id->secret, share, shared) < 0)
        return seed_error_set(err, EINVAL, "age header: an X25519 share is a low-order point");
    memcpy(salt, share, 32);
    memcpy(salt + 32, id->recipient, 32);
    int r = seed_hkdf_sha256(shared, sizeof(shared), salt, sizeof(salt), X25519_INFO, key, sizeof(key));
    OPENSSL_cleanse(shared, sizeof(shared));
    if (r < 0)
        return seed_error_set(err, -r, "age: key derivation failed");
    static const uint8_t zero_nonce[12];
    r = seed_chacha_open(key, zero_nonce, st->body, st->body_len, file_key);
    OPENSSL_cleanse(key, sizeof(key));
    if (r == -EBADMSG)
        return -ENOKEY;
    if (r < 0)
        return seed_error_set(err, -r, "age: unwrapping the file key failed");
    return 0;
}

int seed_age_unwrap(const uint8_t *in, const seed_age_header *h, const seed_age_identity *ids, size_t n_ids,
                    uint8_t file_key[SEED_AGE_FILE_KEY_LEN], seed_error **err) {
    bool found = false, scrypt = false;
    for (size_t i = 0; i < h->n_stanzas && !found; i++) {
        const seed_age_stanza *st = &h->stanzas[i];
        if (streq(st->args[0], "scrypt")) {
            /* A passphrase must not be mixed with other recipients (the spec's MUST). */
            if (h->n_stanzas > 1)
                return seed_error_set(err, EINVAL, "age header: an scrypt stanza is not the only stanza");
            scrypt = true;
        }
        if (!streq(st->args[0], "X25519"))
            continue;
        for (size_t k = 0; k < n_ids && !found; k++) {
            int r = x25519_unwrap(st, &ids[k], file_key, err);
            if (r == 0)
                found = true;
            else if (r != -ENOKEY)
                return r;
        }
    }
    if (!found) {
        if (scrypt)
            return seed_error_set(err, ENOKEY,
                                  "the file is encrypted with a passphrase (scrypt), which seed does "
                                  "not read (expected a file encrypted to an age1… recipient)");
        if (n_ids == 1) {
            _cleanup_free_ char *r = seed_age_recipient_encode(ids[0].recipient);
            return seed_error_set(err, ENOKEY,
                                  "the file is not encrypted to %s (no recipient stanza opens with its "
                                  "identity)",
                                  r ? r : "this identity");
        }
        return seed_error_set(err, ENOKEY, "the file is not encrypted to any of the %zu identities", n_ids);
    }
    uint8_t key[32], mac[32];
    int r = mac_key(file_key, key);
    if (r == 0)
        r = seed_hmac_sha256(key, sizeof(key), in, h->mac_input_len, mac);
    OPENSSL_cleanse(key, sizeof(key));
    if (r < 0)
        return seed_error_set(err, -r, "age: computing the header MAC failed");
    if (CRYPTO_memcmp(mac, h->mac, 32) != 0) {
        OPENSSL_cleanse(file_key, SEED_AGE_FILE_KEY_LEN);
        return seed_error_set(err, EKEYREJECTED,
                              "age header: the MAC does not match (the header was altered)");
    }
    return 0;
}

/* ---- payload ---- */

void seed_age_plain_done(seed_age_plain *p) {
    if (!p)
        return;
    seed_free_secret(p->data, p->len);
    p->data = NULL;
    p->len = 0;
}

static void stream_nonce(uint8_t nonce[12], uint64_t counter, bool last) {
    memset(nonce, 0, 12);
    for (int i = 0; i < 8; i++)
        nonce[10 - i] = (uint8_t)(counter >> (8 * i));
    nonce[11] = last ? 1 : 0;
}

int seed_age_stream_open(const uint8_t file_key[SEED_AGE_FILE_KEY_LEN], const uint8_t *in, size_t len,
                         seed_age_plain *out, seed_error **err) {
    *out = (seed_age_plain){0};
    if (len < SEED_AGE_NONCE_LEN)
        return seed_error_set(err, EINVAL, "age: the payload nonce is missing or short (%zu of 16 bytes)",
                              len);
    uint8_t key[32];
    int r = seed_hkdf_sha256(file_key, SEED_AGE_FILE_KEY_LEN, in, SEED_AGE_NONCE_LEN, "payload", key,
                             sizeof(key));
    if (r < 0)
        return seed_error_set(err, -r, "age: key derivation failed");
    in += SEED_AGE_NONCE_LEN;
    len -= SEED_AGE_NONCE_LEN;
    out->data = malloc(len ? len : 1);
    if (!out->data) {
        OPENSSL_cleanse(key, sizeof(key));
        return -ENOMEM;
    }
    uint8_t nonce[12];
    uint64_t counter = 0;
    size_t p = 0;
    r = 0;
    for (;;) {
        size_t rest = len - p, n = MIN(rest, (size_t)CHUNK_CT);
        if (rest == 0) {
            r = seed_error_set(err, EBADMSG,
                               counter ? "age payload: the file ends without a final chunk (it was "
                                         "truncated)"
                                       : "age payload: no chunk after the nonce");
            break;
        }
        if (n < SEED_AEAD_TAG_LEN) {
            r = seed_error_set(err, EBADMSG, "age payload: chunk %llu is shorter than its tag",
                               (unsigned long long)counter);
            break;
        }
        bool last = true;
        int o = -EBADMSG;
        if (n == CHUNK_CT) {
            /* A full chunk is final only if nothing follows, but try both so a
             * truncated file still releases what verified and a final chunk with
             * trailing data is named as such. */
            stream_nonce(nonce, counter, false);
            o = seed_chacha_open(key, nonce, in + p, n, out->data + out->len);
            last = o < 0;
        }
        if (last) {
            stream_nonce(nonce, counter, true);
            o = seed_chacha_open(key, nonce, in + p, n, out->data + out->len);
        }
        if (o < 0) {
            r = seed_error_set(err, EBADMSG,
                               "age payload: chunk %llu does not decrypt (the file was altered or "
                               "truncated)",
                               (unsigned long long)counter);
            break;
        }
        if (last && n == SEED_AEAD_TAG_LEN && counter > 0) {
            r = seed_error_set(err, EBADMSG, "age payload: the final chunk is empty");
            break;
        }
        out->len += n - SEED_AEAD_TAG_LEN;
        p += n;
        counter++;
        if (last) {
            if (p != len)
                r = seed_error_set(err, EBADMSG, "age payload: %zu bytes of data after the final chunk",
                                   len - p);
            break;
        }
    }
    OPENSSL_cleanse(key, sizeof(key));
    return r;
}

int seed_age_stream_seal(const uint8_t file_key[SEED_AGE_FILE_KEY_LEN],
                         const uint8_t nonce16[SEED_AGE_NONCE_LEN], const uint8_t *plain, size_t len,
                         uint8_t **ret, size_t *ret_len) {
    size_t chunks = len ? (len + SEED_AGE_CHUNK - 1) / SEED_AGE_CHUNK : 1;
    size_t total = SEED_AGE_NONCE_LEN + len + chunks * SEED_AEAD_TAG_LEN;
    uint8_t *out = malloc(total), key[32], nonce[12];
    if (!out)
        return -ENOMEM;
    memcpy(out, nonce16, SEED_AGE_NONCE_LEN);
    int r =
        seed_hkdf_sha256(file_key, SEED_AGE_FILE_KEY_LEN, nonce16, SEED_AGE_NONCE_LEN, "payload", key, 32);
    size_t o = SEED_AGE_NONCE_LEN;
    for (size_t c = 0; r == 0 && c < chunks; c++) {
        size_t n = MIN(len - c * SEED_AGE_CHUNK, (size_t)SEED_AGE_CHUNK);
        stream_nonce(nonce, c, c + 1 == chunks);
        r = seed_chacha_seal(key, nonce, plain + c * SEED_AGE_CHUNK, n, out + o);
        o += n + SEED_AEAD_TAG_LEN;
    }
    OPENSSL_cleanse(key, sizeof(key));
    if (r < 0) {
        free(out);
        return r;
    }
    *ret = out;
    *ret_len = total;
    return 0;
}

/* ---- whole files ---- */

int seed_age_decrypt(const uint8_t *in, size_t len, const seed_age_identity *ids, size_t n_ids,
                     seed_age_plain *out, seed_error **err) {
    _cleanup_free_ uint8_t *dearmored = NULL;
    if (seed_age_is_armored(in, len)) {
        size_t n = 0;
        int r = seed_age_armor_decode(in, len, &dearmored, &n, err);
        if (r < 0)
            return r;
        in = dearmored;
        len = n;
    }
    _cleanup_(seed_age_header_freep) seed_age_header *h = NULL;
    int r = seed_age_header_parse(in, len, &h, err);
    if (r < 0)
        return r;
    uint8_t file_key[SEED_AGE_FILE_KEY_LEN];
    r = seed_age_unwrap(in, h, ids, n_ids, file_key, err);
    if (r < 0)
        return r;
    seed_age_plain p;
    r = seed_age_stream_open(file_key, in + h->len, len - h->len, &p, err);
    OPENSSL_cleanse(file_key, sizeof(file_key));
    if (r < 0) {
        seed_age_plain_done(&p);
        return r;
    }
    *out = p;
    return 0;
}

int seed_age_encrypt(const uint8_t *plain, size_t len, const uint8_t (*recipients)[32], size_t n, bool armor,
                     uint8_t **ret, size_t *ret_len) {
    if (n == 0)
        return -EINVAL;
    uint8_t file_key[SEED_AGE_FILE_KEY_LEN], nonce[SEED_AGE_NONCE_LEN];
    int r = seed_random_bytes(file_key, sizeof(file_key));
    if (r == 0)
        r = seed_random_bytes(nonce, sizeof(nonce));
    seed_age_stanza *st = calloc(n, sizeof(*st));
    if (!st)
        r = -ENOMEM;
    for (size_t i = 0; r == 0 && i < n; i++) {
        uint8_t eph[32], share[32], shared[32], salt[64], key[32];
        static const uint8_t zero_nonce[12];
        st[i].args = calloc(2, sizeof(char *));
        st[i].body = malloc(32);
        if (!st[i].args || !st[i].body) {
            r = -ENOMEM;
            break;
        }
        st[i].n_args = 2;
        st[i].body_len = 32;
        r = seed_random_bytes(eph, sizeof(eph));
        if (r == 0)
            r = seed_x25519_public(eph, share);
        if (r == 0)
            r = seed_x25519_shared(eph, recipients[i], shared);
        OPENSSL_cleanse(eph, sizeof(eph));
        if (r < 0)
            break;
        memcpy(salt, share, 32);
        memcpy(salt + 32, recipients[i], 32);
        r = seed_hkdf_sha256(shared, 32, salt, 64, X25519_INFO, key, 32);
        OPENSSL_cleanse(shared, sizeof(shared));
        if (r == 0)
            r = seed_chacha_seal(key, zero_nonce, file_key, sizeof(file_key), st[i].body);
        OPENSSL_cleanse(key, sizeof(key));
        st[i].args[0] = strdup("X25519");
        st[i].args[1] = seed_b64_encode(share, 32, false);
        if (r == 0 && (!st[i].args[0] || !st[i].args[1]))
            r = -ENOMEM;
    }
    _cleanup_free_ char *header = NULL;
    size_t hlen = 0;
    _cleanup_free_ uint8_t *payload = NULL;
    size_t plen = 0;
    if (r == 0)
        r = seed_age_header_encode(st, n, file_key, &header, &hlen);
    if (r == 0)
        r = seed_age_stream_seal(file_key, nonce, plain, len, &payload, &plen);
    OPENSSL_cleanse(file_key, sizeof(file_key));
    for (size_t i = 0; st && i < n; i++)
        stanza_done(&st[i]);
    free(st);
    if (r < 0)
        return r;
    uint8_t *bin = malloc(hlen + plen);
    if (!bin)
        return -ENOMEM;
    memcpy(bin, header, hlen);
    memcpy(bin + hlen, payload, plen);
    if (!armor) {
        *ret = bin;
        *ret_len = hlen + plen;
        return 0;
    }
    char *a = seed_age_armor_encode(bin, hlen + plen);
    free(bin);
    if (!a)
        return -ENOMEM;
    *ret = (uint8_t *)a;
    *ret_len = strlen(a);
    return 0;
}

/* ---- armor ---- */

static bool is_space(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool seed_age_is_armored(const uint8_t *in, size_t len) {
    size_t p = 0;
    while (p < len && is_space(in[p]))
        p++;
    /* Any PEM-looking start goes to the armor decoder, which says what is wrong. */
    return len - p >= 5 && memcmp(in + p, "-----", 5) == 0;
}

bool seed_age_is_age(const uint8_t *in, size_t len) {
    return (len >= 19 && memcmp(in, "age-encryption.org/", 19) == 0) || seed_age_is_armored(in, len);
}

/* The next line of an armored file: its content without LF or CRLF. Returns false at
 * the end of the input; *had_eol says whether an end of line followed. */
static bool next_line(const uint8_t *in, size_t len, size_t *p, const uint8_t **line, size_t *l,
                      bool *had_eol) {
    if (*p >= len)
        return false;
    const uint8_t *nl = memchr(in + *p, '\n', len - *p);
    size_t n = nl ? (size_t)(nl - (in + *p)) : len - *p;
    *line = in + *p;
    *had_eol = nl != NULL;
    *p += n + (nl ? 1 : 0);
    if (nl && n && (*line)[n - 1] == '\r')
        n--;
    *l = n;
    return true;
}

int seed_age_armor_decode(const uint8_t *in, size_t len, uint8_t **ret, size_t *ret_len, seed_error **err) {
    size_t p = 0, end = len;
    while (p < len && is_space(in[p]))
        p++;
    while (end > p && is_space(in[end - 1]))
        end--;
    const uint8_t *line;
    size_t l;
    bool eol;
    if (!next_line(in, end, &p, &line, &l, &eol) || l != strlen(ARMOR_BEGIN) ||
        memcmp(line, ARMOR_BEGIN, l) != 0)
        return seed_error_set(err, EILSEQ, "age armor: expected the line %s", ARMOR_BEGIN);
    buf b64 = {0};
    int r = 0;
    bool done = false, short_seen = false;
    while (!done) {
        if (!next_line(in, end, &p, &line, &l, &eol)) {
            r = seed_error_set(err, EILSEQ, "age armor: the file ends without the line %s", ARMOR_END);
            break;
        }
        if (l == strlen(ARMOR_END) && memcmp(line, ARMOR_END, l) == 0) {
            /* Whitespace after the block was trimmed above; anything else is garbage. */
            if (p != end)
                r = seed_error_set(err, EILSEQ, "age armor: data after the line %s", ARMOR_END);
            done = true;
            break;
        }
        if (short_seen) {
            r = seed_error_set(err, EILSEQ, "age armor: a line shorter than 64 columns before the last one");
            break;
        }
        if (l == 0 || l > 64) {
            r = seed_error_set(err, EILSEQ, "age armor: a line of %zu columns (expected 1 to 64)", l);
            break;
        }
        for (size_t i = 0; i < l && r == 0; i++)
            if (!seed_b64_char((char)line[i]) && line[i] != '=')
                r = seed_error_set(err, EILSEQ, "age armor: the byte 0x%02x is not base64", line[i]);
        if (r < 0)
            break;
        short_seen = l < 64;
        if (buf_put(&b64, line, l) < 0) {
            r = -ENOMEM;
            break;
        }
    }
    uint8_t *out = NULL;
    size_t n = 0;
    if (r == 0) {
        out = malloc(b64.len / 4 * 3 + 1);
        if (!out)
            r = -ENOMEM;
        else if (b64.len && seed_b64_decode(b64.data, b64.len, true, out, &n) < 0)
            r = seed_error_set(err, EILSEQ, "age armor: the body is not canonical padded base64");
    }
    free(b64.data);
    if (r < 0) {
        free(out);
        return r;
    }
    *ret = out;
    *ret_len = n;
    return 0;
}

char *seed_age_armor_encode(const uint8_t *in, size_t len) {
    buf b = {0};
    _cleanup_free_ char *e = seed_b64_encode(in, len, true);
    int r = e ? buf_puts(&b, ARMOR_BEGIN "\n") : -ENOMEM;
    size_t el = e ? strlen(e) : 0;
    for (size_t i = 0; r == 0 && i < el; i += 64) {
        r = buf_put(&b, e + i, MIN((size_t)64, el - i));
        if (r == 0)
            r = buf_puts(&b, "\n");
    }
    if (r == 0)
        r = buf_puts(&b, ARMOR_END "\n");
    if (r < 0) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
