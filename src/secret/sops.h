/* Reading sops-encrypted files (github.com/getsops/sops, file format of sops 3.x):
 * YAML, JSON, dotenv and binary documents whose data key is wrapped for age
 * recipients. Values are ENC[AES256_GCM,data:…,iv:…,tag:…,type:…] with the key path as
 * additional data; sops.mac is checked before anything is returned. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "secret/age.h"

typedef enum seed_sops_format {
    SEED_SOPS_YAML,
    SEED_SOPS_JSON,
    SEED_SOPS_DOTENV,
    SEED_SOPS_BINARY,
} seed_sops_format;

/* The format sops would use for path (by its extension, as sops does: .yaml/.yml,
 * .json, .env, anything else binary). */
seed_sops_format seed_sops_format_of(const char *path);
const char *seed_sops_format_name(seed_sops_format f);
/* data looks like a sops file of format f (it has the sops metadata). */
bool seed_sops_is_sops(const uint8_t *data, size_t len, seed_sops_format f);

/* Decrypt a sops document with age identities. With key (a dotted path such as
 * "db.password", list elements by index) the result is that one value's text;
 * without, the whole document in its own format without the sops metadata (the
 * "data" of a binary file). Errors name what is wrong: not encrypted to these
 * identities, MAC mismatch, a value that does not decrypt, a missing key. */
int seed_sops_decrypt(const uint8_t *data, size_t len, seed_sops_format f, const seed_age_identity *ids,
                      size_t n_ids, const char *key, seed_age_plain *out, seed_error **err);
/* The same with the data key given (tests decrypt sops's own example files, whose
 * data key is wrapped for PGP, with it). */
int seed_sops_decrypt_with_key(const uint8_t *data, size_t len, seed_sops_format f,
                               const uint8_t data_key[32], const char *key, seed_age_plain *out,
                               seed_error **err);
