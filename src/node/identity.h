/* Per-instance age identities at rest (issue 11): one file per instance,
 * <state>/identities/<namespace>/<instance>, 0600, its X25519 secret sealed with
 * AES-256-GCM under the node key (additional data: the namespace and instance, so a
 * file copied onto another instance's name does not open). The node key is 32 random
 * bytes, sealed to the node's TPM in <state>/node.key.tpm when it has one (node/tpm.h),
 * else in <state>/node.key, 0600. Used by the node and, with no node running, by
 * `seed volume rm` (which removes the identity with an instance's last volume). */
#pragma once

#include <stdint.h>

#include "base/error.h"
#include "secret/age.h"

#define SEED_NODE_KEY_FILE "node.key"
#define SEED_IDENTITY_DIR "identities"

typedef struct seed_node_key {
    uint8_t key[32];
    char protection[4400]; /* what protects it, for the node's start message */
} seed_node_key;

/* Load the node key, making it on first use. */
int seed_node_key_open(const char *state_dir, seed_node_key *k, seed_error **err);
void seed_node_key_clear(seed_node_key *k);

/* The instance's identity: -ENOENT (no message) when it has none yet. */
int seed_identity_load(const char *state_dir, const seed_node_key *k, const char *ns, const char *instance,
                       seed_age_identity *id, seed_error **err);
/* Write (or replace) the instance's identity. */
int seed_identity_store(const char *state_dir, const seed_node_key *k, const char *ns, const char *instance,
                        const seed_age_identity *id, seed_error **err);
/* 0 when removed, -ENOENT when there was none. */
int seed_identity_remove(const char *state_dir, const char *ns, const char *instance);
