/* Instance identities at rest (node/identity.c): sealed under the node key, bound to
 * their namespace and instance, the key file's permissions checked. Without a TPM
 * (SEED_TPM_TCTI=none); the TPM path is tests/e2e/test_secrets.py's, with swtpm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/identity.h"

static int setup(void **state) {
    static char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/seed-identity-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    setenv("SEED_TPM_TCTI", "none", 1);
    *state = dir;
    return 0;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", (char *)*state);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_store_load_and_binding(void **state) {
    const char *dir = *state;
    seed_node_key k;
    assert_int_equal(seed_node_key_open(dir, &k, NULL), 0);
    assert_non_null(strstr(k.protection, "0600 file"));
    char path[256];
    snprintf(path, sizeof(path), "%s/node.key", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);

    seed_age_identity id, back;
    seed_error *err = NULL;
    assert_int_equal(seed_identity_load(dir, &k, "s-ns", "web", &back, &err), -ENOENT);
    assert_null(err);
    assert_int_equal(seed_age_identity_generate(&id), 0);
    assert_int_equal(seed_identity_store(dir, &k, "s-ns", "web", &id, NULL), 0);
    assert_int_equal(seed_identity_load(dir, &k, "s-ns", "web", &back, NULL), 0);
    assert_memory_equal(back.secret, id.secret, 32);
    assert_memory_equal(back.recipient, id.recipient, 32);
    snprintf(path, sizeof(path), "%s/identities/s-ns/web", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* The file holds no secret byte string in the clear. */
    int fd = open(path, O_RDONLY);
    uint8_t buf[256];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    assert_true(n > 0);
    assert_null(memmem(buf, (size_t)n, id.secret, 32));

    /* The same node key opens it again after a reopen. */
    seed_node_key k2;
    assert_int_equal(seed_node_key_open(dir, &k2, NULL), 0);
    assert_memory_equal(k2.key, k.key, 32);

    /* Copied onto another instance's name, it does not open. */
    char other[256];
    snprintf(other, sizeof(other), "%s/identities/s-ns/api", dir);
    assert_int_equal(link(path, other), 0);
    assert_int_equal(seed_identity_load(dir, &k, "s-ns", "api", &back, &err), -EKEYREJECTED);
    assert_non_null(strstr(err->msg, "does not open with this node's key"));
    seed_error_free(err);
    err = NULL;
    /* Another node key does not open it either. */
    seed_node_key wrong = k;
    wrong.key[0] ^= 1;
    assert_int_equal(seed_identity_load(dir, &wrong, "s-ns", "web", &back, &err), -EKEYREJECTED);
    seed_error_free(err);
    err = NULL;
    /* Names that would leave the directory are refused. */
    assert_true(seed_identity_store(dir, &k, "..", "web", &id, &err) < 0);
    seed_error_free(err);
    err = NULL;
    assert_int_equal(seed_identity_remove(dir, "s-ns", "../web"), -EINVAL);

    assert_int_equal(seed_identity_remove(dir, "s-ns", "web"), 0);
    assert_int_equal(seed_identity_remove(dir, "s-ns", "web"), -ENOENT);
    seed_node_key_clear(&k);
    seed_node_key_clear(&k2);
}

static void test_node_key_permissions(void **state) {
    const char *dir = *state;
    seed_node_key k;
    assert_int_equal(seed_node_key_open(dir, &k, NULL), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/node.key", dir);
    assert_int_equal(chmod(path, 0644), 0);
    seed_error *err = NULL;
    assert_int_equal(seed_node_key_open(dir, &k, &err), -EPERM);
    assert_non_null(strstr(err->msg, "mode 0600"));
    seed_error_free(err);
    err = NULL;
    /* A sealed key without a TPM: refused, saying why. */
    assert_int_equal(chmod(path, 0600), 0);
    snprintf(path, sizeof(path), "%s/node.key.tpm", dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    assert_int_equal(seed_node_key_open(dir, &k, &err), -ENODEV);
    assert_non_null(strstr(err->msg, "this machine has none"));
    seed_error_free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_load_and_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_key_permissions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
