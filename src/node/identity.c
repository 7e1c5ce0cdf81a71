/* Instance identities sealed under the node key, and the node key itself: sealed to
 * the TPM when the node has one (node/tpm.h), else in a 0600 file. */
#include "node/identity.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/fileio.h"
#include "base/log.h"
#include "node/tpm.h"
#include "secret/crypto.h"
#include "spec/names.h"

#define IDENTITY_MAGIC "seed-identity-v1"
#define MAGIC_LEN 16
#define SEALED_LEN (MAGIC_LEN + 12 + 32 + 16)

void seed_node_key_clear(seed_node_key *k) {
    OPENSSL_cleanse(k, sizeof(*k));
}

/* Write data to path atomically, 0600. */
static int write_private(const char *path, const void *data, size_t len) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return negative_errno();
    if (fchmod(fd, 0600) < 0 || write(fd, data, len) != (ssize_t)len || fsync(fd) < 0) {
        int r = negative_errno();
        unlink(tmp);
        return r;
    }
    if (rename(tmp, path) < 0) {
        int r = negative_errno();
        unlink(tmp);
        return r;
    }
    return 0;
}

static int read_exact(const char *path, void *buf, size_t len) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return negative_errno();
    char *d = NULL;
    size_t n = 0;
    int r = seed_read_fd(fd, len + 1, &d, &n);
    if (r < 0)
        return r;
    if (n != len) {
        seed_free_secret(d, n);
        return -EBADMSG;
    }
    memcpy(buf, d, len);
    seed_free_secret(d, n);
    return 0;
}

/* The plain key file: read it, or make it when create is set. 0, or -ENOENT. */
static int plain_key(const char *path, bool create, uint8_t key[32], seed_error **err) {
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode) || (st.st_mode & 077) || st.st_uid != geteuid())
            return seed_error_set(
                err, EPERM,
                "%s must be a regular file of the node's user with mode 0600 (it holds the key "
                "that protects the instances' identities)",
                path);
        int r = read_exact(path, key, 32);
        if (r < 0)
            return seed_error_setp(err, -r == EBADMSG ? EBADMSG : -r, "reading the node key %s%s", path,
                                   r == -EBADMSG ? " (expected 32 bytes)" : "");
        return 0;
    }
    if (!create)
        return -ENOENT;
    int r = seed_random_bytes(key, 32);
    if (r == 0)
        r = write_private(path, key, 32);
    return r < 0 ? seed_error_setp(err, -r, "creating the node key %s", path) : 0;
}

int seed_node_key_open(const char *state_dir, seed_node_key *k, seed_error **err) {
    char path[4200], sealed[4200];
    snprintf(path, sizeof(path), "%s/" SEED_NODE_KEY_FILE, state_dir);
    snprintf(sealed, sizeof(sealed), "%s/" SEED_NODE_KEY_FILE ".tpm", state_dir);
    const char *tcti = seed_tpm_tcti();
    int r;
    _cleanup_close_ int fd = open(sealed, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        /* Sealed: only the TPM that sealed it opens it. */
        if (!tcti)
            return seed_error_set(
                err, ENODEV,
                "the node key is sealed to a TPM (%s) and this machine has none (no /dev/tpmrm0; "
                "SEED_TPM_TCTI names another): the instances' identities cannot be opened",
                sealed);
        char *blob = NULL;
        size_t len = 0;
        if ((r = seed_read_fd(fd, 65536, &blob, &len)) < 0)
            return seed_error_setp(err, -r, "reading %s", sealed);
        r = seed_tpm_unseal(tcti, (uint8_t *)blob, len, k->key, err);
        free(blob);
        if (r < 0)
            return seed_error_prefix(err, "%s: ", sealed);
        snprintf(k->protection, sizeof(k->protection), "node key sealed to the TPM (%s) in %s", tcti, sealed);
        return 0;
    }
    if (tcti) {
        /* A TPM: seal the key to it (the existing file's, which then goes). */
        r = plain_key(path, false, k->key, err);
        if (r == -ENOENT)
            r = seed_random_bytes(k->key, sizeof(k->key));
        if (r < 0)
            return r;
        uint8_t *blob = NULL;
        size_t len = 0;
        if ((r = seed_tpm_seal(tcti, k->key, &blob, &len, err)) < 0)
            return seed_error_prefix(err, "sealing the node key: ");
        r = write_private(sealed, blob, len);
        free(blob);
        if (r < 0)
            return seed_error_setp(err, -r, "writing %s", sealed);
        if (unlink(path) == 0)
            log_info("node key: %s now sealed to the TPM (%s) and removed", path, tcti);
        snprintf(k->protection, sizeof(k->protection), "node key sealed to the TPM (%s) in %s", tcti, sealed);
        return 0;
    }
    if ((r = plain_key(path, true, k->key, err)) < 0)
        return r;
    snprintf(k->protection, sizeof(k->protection),
             "node key in %s (a 0600 file; no TPM, so a copy of the state directory reveals the identities)",
             path);
    return 0;
}

static int identity_path(const char *state_dir, const char *ns, const char *instance, char *buf, size_t size,
                         bool make_dir) {
    /* Names come from the spec (checked there) or a client: refuse anything that could
     * climb out of the directory. */
    if (!*ns || !*instance || strchr(ns, '/') || strchr(instance, '/') || ns[0] == '.' || instance[0] == '.')
        return -EINVAL;
    int n = snprintf(buf, size, "%s/" SEED_IDENTITY_DIR "/%s", state_dir, ns);
    if (n < 0 || (size_t)n >= size)
        return -ENAMETOOLONG;
    if (make_dir) {
        int r = seed_mkdir_p(buf, 0700);
        if (r < 0)
            return r;
    }
    n = snprintf(buf, size, "%s/" SEED_IDENTITY_DIR "/%s/%s", state_dir, ns, instance);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static void aad_of(const char *ns, const char *instance, char *buf, size_t size) {
    snprintf(buf, size, "seed identity %s/%s", ns, instance);
}

int seed_identity_load(const char *state_dir, const seed_node_key *k, const char *ns, const char *instance,
                       seed_age_identity *id, seed_error **err) {
    char path[4200], aad[300];
    int r = identity_path(state_dir, ns, instance, path, sizeof(path), false);
    if (r < 0)
        return seed_error_set(err, -r, "no identity can be named %s/%s", ns, instance);
    uint8_t sealed[SEALED_LEN];
    r = read_exact(path, sealed, sizeof(sealed));
    if (r == -ENOENT)
        return -ENOENT;
    if (r < 0 || memcmp(sealed, IDENTITY_MAGIC, MAGIC_LEN) != 0)
        return seed_error_set(err, r < 0 && r != -EBADMSG ? -r : EBADMSG,
                              "the identity file %s cannot be read (%s)", path,
                              r < 0 && r != -EBADMSG ? strerror(-r) : "not a seed identity file");
    aad_of(ns, instance, aad, sizeof(aad));
    r = seed_aes_gcm_open(k->key, sealed + MAGIC_LEN, 12, (const uint8_t *)aad, strlen(aad),
                          sealed + MAGIC_LEN + 12, 32, sealed + MAGIC_LEN + 12 + 32, id->secret);
    if (r < 0)
        return seed_error_set(
            err, EKEYREJECTED,
            "the identity file %s does not open with this node's key (it was sealed by another "
            "node key, or for another instance)",
            path);
    r = seed_x25519_public(id->secret, id->recipient);
    return r < 0 ? seed_error_set(err, -r, "computing the recipient of %s/%s", ns, instance) : 0;
}

int seed_identity_store(const char *state_dir, const seed_node_key *k, const char *ns, const char *instance,
                        const seed_age_identity *id, seed_error **err) {
    char path[4200], aad[300];
    int r = identity_path(state_dir, ns, instance, path, sizeof(path), true);
    if (r < 0)
        return seed_error_setp(err, -r, "storing the identity of %s/%s", ns, instance);
    uint8_t sealed[SEALED_LEN];
    memcpy(sealed, IDENTITY_MAGIC, MAGIC_LEN);
    aad_of(ns, instance, aad, sizeof(aad));
    r = seed_random_bytes(sealed + MAGIC_LEN, 12);
    if (r == 0)
        r = seed_aes_gcm_seal(k->key, sealed + MAGIC_LEN, 12, (const uint8_t *)aad, strlen(aad), id->secret,
                              32, sealed + MAGIC_LEN + 12, sealed + MAGIC_LEN + 12 + 32);
    if (r == 0)
        r = write_private(path, sealed, sizeof(sealed));
    return r < 0 ? seed_error_setp(err, -r, "storing the identity of %s/%s in %s", ns, instance, path) : 0;
}

int seed_identity_remove(const char *state_dir, const char *ns, const char *instance) {
    char path[4200];
    int r = identity_path(state_dir, ns, instance, path, sizeof(path), false);
    if (r < 0)
        return r;
    return unlink(path) < 0 ? negative_errno() : 0;
}
