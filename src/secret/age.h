/* age (age-encryption.org/v1, c2sp.org/age) for X25519 recipients: identities and
 * recipients in their Bech32 forms and the file age-keygen writes, the header
 * (parse, encode, unwrap), the STREAM payload, and the ASCII armor. Passphrase
 * (scrypt) and post-quantum recipients are not implemented: files for them do not
 * match any identity. Everything works on whole files in memory. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/error.h"

#define SEED_AGE_FILE_KEY_LEN 16
#define SEED_AGE_NONCE_LEN 16
#define SEED_AGE_CHUNK (64 * 1024)

/* How decryption fails, as the errno code of the seed_error (and the return value):
 * the classes of the C2SP test vectors. */
#define SEED_AGE_EARMOR EILSEQ      /* the ASCII armor is malformed */
#define SEED_AGE_EHEADER EINVAL     /* the header is malformed (or a stanza for us is) */
#define SEED_AGE_ENOMATCH ENOKEY    /* no stanza is for any of the identities */
#define SEED_AGE_EHMAC EKEYREJECTED /* the header MAC does not match */
#define SEED_AGE_EPAYLOAD EBADMSG   /* the payload does not decrypt to its end */

typedef struct seed_age_identity {
    uint8_t secret[32];
    uint8_t recipient[32]; /* X25519(secret, basepoint) */
} seed_age_identity;

/* A fresh identity from the CSPRNG. */
int seed_age_identity_generate(seed_age_identity *id);
/* One "AGE-SECRET-KEY-1…" string. */
int seed_age_identity_parse(const char *s, seed_age_identity *id, seed_error **err);
/* An identity file as age -i reads it: identities one per line, blank lines and
 * lines starting with '#' ignored. *ret is malloc'd (free with seed_free_secret). */
int seed_age_identities_parse(const char *text, size_t len, seed_age_identity **ret, size_t *n_ret,
                              seed_error **err);
/* "AGE-SECRET-KEY-1…" and "age1…" (malloc'd; NULL when out of memory). */
char *seed_age_identity_encode(const seed_age_identity *id);
char *seed_age_recipient_encode(const uint8_t recipient[32]);
int seed_age_recipient_parse(const char *s, uint8_t recipient[32], seed_error **err);
/* The file age-keygen writes: "# created: <RFC 3339 UTC>", "# public key: age1…",
 * then the identity, each on its own line. */
int seed_age_keygen_file(const seed_age_identity *id, time_t created, char **ret);

typedef struct seed_age_stanza {
    char **args; /* n_args >= 1 */
    size_t n_args;
    uint8_t *body;
    size_t body_len;
} seed_age_stanza;

typedef struct seed_age_header {
    seed_age_stanza *stanzas;
    size_t n_stanzas;
    uint8_t mac[32];
    size_t mac_input_len; /* bytes the MAC covers: up to and including "---" */
    size_t len;           /* the header's length, MAC line included */
} seed_age_header;

/* Parse the header at the start of a binary age file. Fails with SEED_AGE_EHEADER. */
int seed_age_header_parse(const uint8_t *in, size_t len, seed_age_header **ret, seed_error **err);
void seed_age_header_free(seed_age_header *h);
DEFINE_CLEANUP_FUNC(seed_age_header, seed_age_header_free)
/* The header text for stanzas with its MAC under file_key. */
int seed_age_header_encode(const seed_age_stanza *stanzas, size_t n,
                           const uint8_t file_key[SEED_AGE_FILE_KEY_LEN], char **ret, size_t *ret_len);
/* The file key from the first X25519 stanza one of ids opens, and the header MAC
 * checked with it. */
int seed_age_unwrap(const uint8_t *in, const seed_age_header *h, const seed_age_identity *ids, size_t n_ids,
                    uint8_t file_key[SEED_AGE_FILE_KEY_LEN], seed_error **err);

/* Plaintext in memory; seed_age_plain_done overwrites and frees it. */
typedef struct seed_age_plain {
    uint8_t *data;
    size_t len;
} seed_age_plain;
void seed_age_plain_done(seed_age_plain *p);

/* The payload (nonce then STREAM chunks) under file_key. On SEED_AGE_EPAYLOAD, out
 * holds the chunks that verified before the failure (what a streaming reader would
 * have released); callers wanting all or nothing discard it. A missing or short
 * nonce is SEED_AGE_EHEADER, as the test vectors class it. */
int seed_age_stream_open(const uint8_t file_key[SEED_AGE_FILE_KEY_LEN], const uint8_t *in, size_t len,
                         seed_age_plain *out, seed_error **err);
/* nonce || STREAM(plain) into a malloc'd buffer. */
int seed_age_stream_seal(const uint8_t file_key[SEED_AGE_FILE_KEY_LEN],
                         const uint8_t nonce[SEED_AGE_NONCE_LEN], const uint8_t *plain, size_t len,
                         uint8_t **ret, size_t *ret_len);

/* A whole file, binary or armored. out is only kept on success. */
int seed_age_decrypt(const uint8_t *in, size_t len, const seed_age_identity *ids, size_t n_ids,
                     seed_age_plain *out, seed_error **err);
/* Encrypt to X25519 recipients (n >= 1), armored or binary, into a malloc'd buffer. */
int seed_age_encrypt(const uint8_t *plain, size_t len, const uint8_t (*recipients)[32], size_t n, bool armor,
                     uint8_t **ret, size_t *ret_len);

/* In starts (after optional whitespace) with the armor's BEGIN line / is an age file. */
bool seed_age_is_armored(const uint8_t *in, size_t len);
bool seed_age_is_age(const uint8_t *in, size_t len);
/* Strict PEM (RFC 7468 figure 3) with the label "AGE ENCRYPTED FILE": 64-column
 * lines, canonical padded base64, LF or CRLF, whitespace only outside the block.
 * Fails with SEED_AGE_EARMOR. */
int seed_age_armor_decode(const uint8_t *in, size_t len, uint8_t **ret, size_t *ret_len, seed_error **err);
char *seed_age_armor_encode(const uint8_t *in, size_t len);
