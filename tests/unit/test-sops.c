/* sops: sops's own example files (data/sops/upstream, data keys recovered with the PGP
 * key sops publishes) and fixtures written by data/sops/make-fixtures.py (Python's
 * cryptography and the age command, independent of seed's code) for an age identity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "secret/sops.h"

#define DATA SEED_TEST_DATA "/sops"

static char *slurp(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", DATA, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("cannot open %s", path);
    char *d = NULL;
    assert_int_equal(seed_read_fd(fd, 1 << 20, &d, len), 0);
    close(fd);
    return d;
}

static void upstream_key(const char *file, uint8_t key[32]) {
    size_t len;
    char *keys = slurp("upstream/datakeys", &len);
    char *p = strstr(keys, file);
    assert_non_null(p);
    p += strlen(file) + 1;
    for (int i = 0; i < 32; i++)
        assert_int_equal(sscanf(p + 2 * i, "%2hhx", &key[i]), 1);
    free(keys);
}

/* Decrypt upstream/file (optionally one key) with its recovered data key. */
static int upstream(const char *file, const char *key, seed_age_plain *out, seed_error **err) {
    char name[256];
    snprintf(name, sizeof(name), "upstream/%s", file);
    size_t len;
    char *d = slurp(name, &len);
    uint8_t dk[32];
    upstream_key(file, dk);
    int r = seed_sops_decrypt_with_key((uint8_t *)d, len, seed_sops_format_of(file), dk, key, out, err);
    free(d);
    return r;
}

static void upstream_value(const char *file, const char *key, const char *want) {
    seed_age_plain p = {0};
    seed_error *err = NULL;
    int r = upstream(file, key, &p, &err);
    if (r < 0)
        fail_msg("%s %s: %s", file, key, err ? err->msg : "error");
    assert_int_equal(p.len, strlen(want));
    assert_memory_equal(p.data, want, p.len);
    seed_age_plain_done(&p);
}

static void test_upstream_examples(void **state) {
    /* Every file's MAC verifies (the whole-document decryption checks it) ... */
    static const char *const files[] = {"example.yaml",    "example.json",    "example.txt",
                                        "format.enc.yaml", "format.enc.json", "format.enc.env"};
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        seed_age_plain p = {0};
        seed_error *err = NULL;
        if (upstream(files[i], NULL, &p, &err) < 0)
            fail_msg("%s: %s", files[i], err ? err->msg : "error");
        assert_true(p.len > 0);
        seed_age_plain_done(&p);
    }
    /* ... and values of every type read as sops wrote them. */
    upstream_value("example.yaml", "app2.db.user", "eve");
    upstream_value("example.yaml", "number", "1234568000");
    upstream_value("example.yaml", "somebooleans.0", "true");
    upstream_value("example.yaml", "somebooleans.1", "false");
    upstream_value("example.yaml", "somelist_unencrypted.1", "remain in clear text");
    upstream_value("example.yaml", "this.is.a.nested.value", "with something secret in it");
    upstream_value("example.json", "address.city", "New York");
    upstream_value("example.json", "phoneNumbers.1.type", "office");
    upstream_value("format.enc.yaml", "foo", "bar");
    upstream_value("format.enc.json", "foo", "bar");
    upstream_value("format.enc.env", "foo ", " bar");
    upstream_value("example.json", "age", "25.4");
    upstream_value("example.yaml", "app2.key",
                   "-----BEGIN RSA PRIVATE "
                   "KEY-----"
                   "\nMIIBPAIBAAJBAPTMNIyHuZtpLYc7VsHQtwOkWYobkUblmHWRmbXzlAX6K8tMf3Wf\nImcbNkqAKnELzFAPSBeEM"
                   "hrBN0PyOC9lYlMCAwEAAQJBALXD4sjuBn1E7Y9aGiMz\nbJEBuZJ4wbhYxomVoQKfaCu+kH80uLFZKoSz85/"
                   "ySauWE8LgZcMLIBoiXNhDKfQL\nvHECIQD6tCG9NMFWor69kgbX8vK5Y+QL+kRq+9HK6yZ9a+"
                   "hsLQIhAPn4Ie6HGTjw\nfHSTXWZpGSan7NwTkIu4U5q2SlLjcZh/"
                   "AiEA78NYRRBwGwAYNUqzutGBqyXKUl4u\nErb0xAEyVV7e8J0CIQC8VBY8f8yg+"
                   "Y7Kxbw4zDYGyb3KkXL10YorpeuZR4LuQQIg\nbKGPkMM4w5blyE1tqGN0T7sJwEx+EUOgacRNqM2ljVA=\n-----"
                   "END RSA PRIVATE KEY-----\n");
    upstream_value("example.txt", NULL,
                   "Welcome to SOPS!\n\nSOPS is a manager of encrypted files designed to help distribute "
                   "secrets.\nCheck it out, it's on github: https://github.com/mozilla/sops\n\n");

    /* The wrong data key: the first value does not decrypt, named by its path. */
    size_t len;
    char *d = slurp("upstream/example.yaml", &len);
    uint8_t dk[32];
    upstream_key("example.json", dk);
    seed_age_plain p = {0};
    seed_error *err = NULL;
    assert_int_equal(seed_sops_decrypt_with_key((uint8_t *)d, len, SEED_SOPS_YAML, dk, NULL, &p, &err),
                     -EBADMSG);
    assert_non_null(strstr(err->msg, "value myapp1: does not decrypt"));
    seed_error_free(err);
    free(d);
}

/* ---- fixtures for an age identity ---- */

static seed_age_identity fixture_identity(void) {
    size_t len;
    char *k = slurp("fixtures/key.txt", &len);
    seed_age_identity *ids = NULL;
    size_t n = 0;
    assert_int_equal(seed_age_identities_parse(k, len, &ids, &n, NULL), 0);
    seed_age_identity id = ids[0];
    free(ids);
    free(k);
    return id;
}

static int fixture(const char *file, const char *key, seed_age_plain *out, seed_error **err) {
    char name[256];
    snprintf(name, sizeof(name), "fixtures/%s", file);
    size_t len;
    char *d = slurp(name, &len);
    seed_age_identity id = fixture_identity();
    int r = seed_sops_decrypt((uint8_t *)d, len, seed_sops_format_of(file), &id, 1, key, out, err);
    free(d);
    return r;
}

static void fixture_value(const char *file, const char *key, const char *want) {
    seed_age_plain p = {0};
    seed_error *err = NULL;
    if (fixture(file, key, &p, &err) < 0)
        fail_msg("%s %s: %s", file, key ? key : "(whole)", err ? err->msg : "error");
    if (p.len != strlen(want) || memcmp(p.data, want, p.len) != 0)
        fail_msg("%s %s: got '%.*s', expected '%s'", file, key ? key : "", (int)p.len, p.data, want);
    seed_age_plain_done(&p);
}

static void fixture_error(const char *file, const char *key, int code, const char *msg) {
    seed_age_plain p = {0};
    seed_error *err = NULL;
    int r = fixture(file, key, &p, &err);
    if (r != -code || !err || !strstr(err->msg, msg))
        fail_msg("%s: expected error %d '%s', got %d '%s'", file, code, msg, r, err ? err->msg : "");
    seed_error_free(err);
}

static void test_fixtures_values(void **state) {
    fixture_value("app.yaml", "db.password", "hunter2");
    fixture_value("app.yaml", "db.port", "5432");
    fixture_value("app.yaml", "db.ratio", "0.25");
    fixture_value("app.yaml", "db.tls", "true");
    fixture_value("app.yaml", "hosts.1", "b.example");
    fixture_value("app.yaml", "cert", "-----BEGIN CERT-----\nAAAA\n-----END CERT-----\n");
    fixture_value("app.yaml", "public_unencrypted", "visible");
    fixture_value("app.json", "db.password", "hunter2");
    fixture_value("app.json", "db.port", "5432");
    fixture_value("app.env", "DB_PASSWORD", "hunter2");
    fixture_value("app.env", "MULTI", "line one\nline two");
    fixture_value("blob.bin", NULL, "raw bytes\nof a binary file\n");
    /* Whole documents, in their own format, without the metadata. */
    fixture_value("app.env", NULL, "DB_PASSWORD=hunter2\nMULTI=line one\\nline two\n");
    seed_age_plain p = {0};
    assert_int_equal(fixture("app.json", NULL, &p, NULL), 0);
    assert_non_null(strstr((char *)p.data, "\"password\": \"hunter2\""));
    assert_null(strstr((char *)p.data, "sops"));
    seed_age_plain_done(&p);
    assert_int_equal(fixture("app.yaml", NULL, &p, NULL), 0);
    assert_non_null(strstr((char *)p.data, "password: hunter2"));
    assert_non_null(strstr((char *)p.data, "port: 5432"));
    assert_null(strstr((char *)p.data, "sops"));
    seed_age_plain_done(&p);
    /* A file with mac_only_encrypted and an encrypted_regex. */
    fixture_value("regex.yaml", "data.token", "t0k3n");
    fixture_value("regex.yaml", "name", "plain-name");
}

static void test_fixtures_errors(void **state) {
    fixture_error("app.yaml", "db.nope", ENOENT, "no key 'db.nope'");
    fixture_error("app.yaml", "db", EINVAL, "holds a mapping");
    fixture_error("tampered-mac.yaml", NULL, EBADMSG, "MAC does not match");
    fixture_error("tampered-value.yaml", NULL, EBADMSG, "value db:password: does not decrypt");
    fixture_error("swapped.yaml", NULL, EBADMSG, "does not decrypt");
    fixture_error("plain-injected.yaml", NULL, EINVAL, "value db:port: is not encrypted");
    fixture_error("other-recipient.yaml", NULL, ENOKEY, "not encrypted to age1");
    fixture_error("no-metadata.yaml", NULL, EINVAL, "not a sops file");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upstream_examples),
        cmocka_unit_test(test_fixtures_values),
        cmocka_unit_test(test_fixtures_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
