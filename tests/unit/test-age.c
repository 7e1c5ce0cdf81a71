/* age: the C2SP community test vectors (tests/unit/data/age, from github.com/C2SP/CCTV
 * age/testdata, used as data), Bech32 keys, and encrypt/decrypt round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "base/fileio.h"
#include "base/hash.h"
#include "secret/age.h"
#include "secret/bech32.h"
#include "secret/crypto.h"

#define VECTORS SEED_TEST_DATA "/age"

typedef struct vector {
    char name[256];
    char expect[32];
    char payload[65];
    uint8_t file_key[16];
    seed_age_identity ids[4];
    size_t n_ids;
    bool armored, compressed, skip;
    const char *skip_why;
    uint8_t *data;
    size_t len;
} vector;

static int unhex(const char *s, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (sscanf(s + 2 * i, "%2hhx", &out[i]) != 1)
            return -1;
    return 0;
}

static void inflate_all(const uint8_t *in, size_t len, uint8_t **ret, size_t *ret_len) {
    z_stream z = {0};
    assert_int_equal(inflateInit(&z), Z_OK);
    size_t cap = 1 << 20, n = 0;
    uint8_t *out = malloc(cap);
    z.next_in = (uint8_t *)in;
    z.avail_in = (uInt)len;
    int r;
    do {
        if (n == cap) {
            cap *= 2;
            out = realloc(out, cap);
        }
        z.next_out = out + n;
        z.avail_out = (uInt)(cap - n);
        r = inflate(&z, Z_NO_FLUSH);
        assert_true(r == Z_OK || r == Z_STREAM_END);
        n = cap - z.avail_out;
    } while (r != Z_STREAM_END);
    inflateEnd(&z);
    *ret = out;
    *ret_len = n;
}

static void load(const char *name, vector *v) {
    memset(v, 0, sizeof(*v));
    snprintf(v->name, sizeof(v->name), "%s", name);
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", VECTORS, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    char *raw = NULL;
    size_t len = 0;
    assert_int_equal(seed_read_fd(fd, 64 << 20, &raw, &len), 0);
    close(fd);
    size_t p = 0;
    for (;;) {
        char *nl = memchr(raw + p, '\n', len - p);
        assert_non_null(nl);
        size_t l = (size_t)(nl - raw - p);
        if (l == 0) {
            p++;
            break;
        }
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)l, raw + p);
        char *val = strstr(line, ": ");
        assert_non_null(val);
        *val = 0;
        val += 2;
        if (streq(line, "expect"))
            snprintf(v->expect, sizeof(v->expect), "%s", val);
        else if (streq(line, "payload"))
            snprintf(v->payload, sizeof(v->payload), "%s", val);
        else if (streq(line, "file key"))
            assert_int_equal(unhex(val, v->file_key, 16), 0);
        else if (streq(line, "armored"))
            v->armored = streq(val, "yes");
        else if (streq(line, "compressed"))
            v->compressed = streq(val, "zlib");
        else if (streq(line, "passphrase")) {
            v->skip = true;
            v->skip_why = "passphrase (scrypt) recipients are not implemented (not needed: issue 11, item 7)";
        } else if (streq(line, "identity")) {
            if (strncmp(val, "AGE-SECRET-KEY-PQ-", 18) == 0) {
                v->skip = true;
                v->skip_why = "post-quantum (ML-KEM-768 + X25519) identities are not implemented";
            } else {
                assert_true(v->n_ids < 4);
                assert_int_equal(seed_age_identity_parse(val, &v->ids[v->n_ids++], NULL), 0);
            }
        }
        p += l + 1;
    }
    if (v->compressed)
        inflate_all((uint8_t *)raw + p, len - p, &v->data, &v->len);
    else {
        v->len = len - p;
        v->data = malloc(v->len + 1);
        memcpy(v->data, raw + p, v->len);
    }
    free(raw);
}

static const char *class_of(int r) {
    switch (-r) {
    case 0:
        return "success";
    case SEED_AGE_EARMOR:
        return "armor failure";
    case SEED_AGE_EHEADER:
        return "header failure";
    case SEED_AGE_ENOMATCH:
        return "no match";
    case SEED_AGE_EHMAC:
        return "HMAC failure";
    case SEED_AGE_EPAYLOAD:
        return "payload failure";
    default:
        return "other";
    }
}

/* Run one vector: the outcome class, the released plaintext, and the round trips
 * the vectors' README describes (armor, header, STREAM). */
static void run_vector(vector *v) {
    uint8_t *bin = v->data;
    size_t len = v->len;
    _cleanup_free_ uint8_t *dearmored = NULL;
    seed_error *err = NULL;
    int r = 0;
    if (v->armored) {
        r = seed_age_armor_decode(v->data, v->len, &dearmored, &len, &err);
        bin = dearmored;
    }
    seed_age_header *h = NULL;
    if (r == 0)
        r = seed_age_header_parse(bin, len, &h, &err);
    uint8_t key[16];
    if (r == 0)
        r = seed_age_unwrap(bin, h, v->ids, v->n_ids, key, &err);
    seed_age_plain plain = {0};
    if (r == 0) {
        r = seed_age_stream_open(key, bin + h->len, len - h->len, &plain, &err);
        assert_memory_equal(key, v->file_key, 16);
    }
    if (!streq(class_of(r), v->expect))
        fail_msg("%s: expected %s, got %s (%s)", v->name, v->expect, class_of(r),
                 err ? err->msg : "no error");
    /* Every failure says why. */
    assert_true(r == 0 || (err && err->msg && *err->msg));
    if (streq(v->expect, "success") || streq(v->expect, "payload failure")) {
        char hex[65];
        seed_sha256_hex(plain.data ? plain.data : (uint8_t *)"", plain.len, hex);
        if (!streq(hex, v->payload))
            fail_msg("%s: released plaintext hashes to %s, expected %s", v->name, hex, v->payload);
    }
    /* Header round trip (vectors that are not header failures): re-encoding the
     * parsed stanzas with the file key gives the
     * same bytes, MAC included. */
    if (h && !streq(v->expect, "HMAC failure") && !streq(v->expect, "header failure")) {
        char *enc = NULL;
        size_t enc_len = 0;
        assert_int_equal(seed_age_header_encode(h->stanzas, h->n_stanzas, v->file_key, &enc, &enc_len), 0);
        if (enc_len != h->len || memcmp(enc, bin, enc_len) != 0)
            fail_msg("%s: header does not round-trip", v->name);
        free(enc);
    }
    /* STREAM round trip: sealing the plaintext with the file's nonce gives the payload. */
    if (r == 0) {
        uint8_t *sealed = NULL;
        size_t sealed_len = 0;
        assert_int_equal(
            seed_age_stream_seal(v->file_key, bin + h->len, plain.data, plain.len, &sealed, &sealed_len), 0);
        assert_int_equal(sealed_len, len - h->len);
        assert_memory_equal(sealed, bin + h->len, sealed_len);
        free(sealed);
        /* And the whole-file entry point agrees. */
        seed_age_plain again = {0};
        assert_int_equal(seed_age_decrypt(v->data, v->len, v->ids, v->n_ids, &again, NULL), 0);
        assert_int_equal(again.len, plain.len);
        seed_age_plain_done(&again);
    }
    /* Armor round trip: encoding the decoded bytes gives the file, up to CRLF and
     * whitespace around the block. */
    if (v->armored && dearmored) {
        char *a = seed_age_armor_encode(dearmored, len);
        assert_non_null(a);
        char *canon = malloc(v->len + 2);
        size_t o = 0, s = 0, e = v->len;
        while (s < e && strchr(" \t\r\n", v->data[s]))
            s++;
        while (e > s && strchr(" \t\r\n", v->data[e - 1]))
            e--;
        for (size_t i = s; i < e; i++)
            if (!(v->data[i] == '\r' && i + 1 < e && v->data[i + 1] == '\n'))
                canon[o++] = (char)v->data[i];
        canon[o++] = '\n';
        canon[o] = 0;
        if (!streq(a, canon))
            fail_msg("%s: armor does not round-trip", v->name);
        free(a);
        free(canon);
    }
    seed_age_plain_done(&plain);
    seed_age_header_free(h);
    seed_error_free(err);
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void test_cctv_vectors(void **state) {
    struct dirent **list = NULL;
    int n = scandir(VECTORS, &list, NULL, by_name);
    assert_true(n > 100);
    int ran = 0, skipped = 0;
    for (int i = 0; i < n; i++) {
        /* Vector names have no dot; README.seed says where they come from. */
        if (strchr(list[i]->d_name, '.')) {
            free(list[i]);
            continue;
        }
        vector v;
        load(list[i]->d_name, &v);
        if (v.skip) {
            printf("# skip %s: %s\n", v.name, v.skip_why);
            skipped++;
        } else {
            run_vector(&v);
            ran++;
        }
        free(v.data);
        free(list[i]);
    }
    free(list);
    printf("# %d age vectors passed, %d skipped\n", ran, skipped);
    /* Every X25519, armor, header, HMAC and STREAM vector runs. */
    assert_true(ran >= 95);
}

static void test_spec_keys(void **state) {
    /* The examples of c2sp.org/age, "The X25519 recipient type". */
    seed_age_identity id;
    assert_int_equal(
        seed_age_identity_parse("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX",
                                &id, NULL),
        0);
    for (int i = 0; i < 32; i++)
        assert_int_equal(id.secret[i], 0x42);
    char *rcpt = seed_age_recipient_encode(id.recipient);
    assert_string_equal(rcpt, "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj");
    uint8_t pub[32];
    assert_int_equal(seed_age_recipient_parse(rcpt, pub, NULL), 0);
    assert_memory_equal(pub, id.recipient, 32);
    free(rcpt);
    char *sec = seed_age_identity_encode(&id);
    assert_string_equal(sec, "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX");
    free(sec);
}

static void test_bech32_rejects(void **state) {
    char hrp[32];
    uint8_t out[64];
    size_t n;
    /* BIP 173's valid and invalid examples. */
    assert_int_equal(seed_bech32_decode("A12UEL5L", hrp, sizeof(hrp), out, sizeof(out), &n), 0);
    assert_string_equal(hrp, "a");
    assert_int_equal(n, 0);
    assert_int_equal(seed_bech32_decode("a12uel5l", hrp, sizeof(hrp), out, sizeof(out), &n), 0);
    assert_int_equal(seed_bech32_decode("A12uEL5L", hrp, sizeof(hrp), out, sizeof(out), &n), -EINVAL);
    assert_int_equal(seed_bech32_decode("a12uel5m", hrp, sizeof(hrp), out, sizeof(out), &n), -EINVAL);
    assert_int_equal(seed_bech32_decode("pzry9x0s0muk", hrp, sizeof(hrp), out, sizeof(out), &n), -EINVAL);
    assert_int_equal(seed_bech32_decode("1pzry9x0s0muk", hrp, sizeof(hrp), out, sizeof(out), &n), -EINVAL);
    assert_int_equal(seed_bech32_decode("x1b4n0q5v", hrp, sizeof(hrp), out, sizeof(out), &n), -EINVAL);
    assert_int_equal(seed_bech32_decode("li1dgmt3", hrp, sizeof(hrp), out, sizeof(out), &n), -EINVAL);
    seed_error *err = NULL;
    uint8_t pub[32];
    /* A recipient with one character changed fails its checksum, with a message. */
    assert_int_equal(
        seed_age_recipient_parse("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwk", pub, &err),
        -EINVAL);
    assert_non_null(strstr(err->msg, "not an age X25519 recipient"));
    seed_error_free(err);
    err = NULL;
    seed_age_identity id;
    assert_int_equal(
        seed_age_identity_parse("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj", &id, &err),
        -EINVAL);
    seed_error_free(err);
}

static void test_keygen_file(void **state) {
    seed_age_identity id, *ids = NULL;
    size_t n = 0;
    assert_int_equal(seed_age_identity_generate(&id), 0);
    char *file = NULL;
    assert_int_equal(seed_age_keygen_file(&id, 1700000000, &file), 0);
    assert_memory_equal(file, "# created: 2023-11-14T22:13:20Z\n# public key: age1", 50);
    char *line3 = strchr(strchr(file, '\n') + 1, '\n') + 1;
    assert_memory_equal(line3, "AGE-SECRET-KEY-1", 16);
    assert_int_equal(seed_age_identities_parse(file, strlen(file), &ids, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(ids[0].secret, id.secret, 32);
    assert_memory_equal(ids[0].recipient, id.recipient, 32);
    seed_free_secret(ids, n * sizeof(*ids));
    free(file);
    seed_error *err = NULL;
    assert_int_equal(seed_age_identities_parse("# only a comment\n\n", 18, &ids, &n, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "no age identity"));
    seed_error_free(err);
    err = NULL;
    assert_int_equal(seed_age_identities_parse("# c\nnot-a-key\n", 14, &ids, &n, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "line 2"));
    seed_error_free(err);
}

static void test_round_trip(void **state) {
    seed_age_identity a, b, c;
    assert_int_equal(seed_age_identity_generate(&a), 0);
    assert_int_equal(seed_age_identity_generate(&b), 0);
    assert_int_equal(seed_age_identity_generate(&c), 0);
    uint8_t rcpts[2][32];
    memcpy(rcpts[0], a.recipient, 32);
    memcpy(rcpts[1], b.recipient, 32);
    static const size_t sizes[] = {
        0, 1, SEED_AGE_CHUNK - 1, SEED_AGE_CHUNK, SEED_AGE_CHUNK + 1, 3 * SEED_AGE_CHUNK};
    for (size_t s = 0; s < ELEMENTSOF(sizes); s++)
        for (int armor = 0; armor < 2; armor++) {
            uint8_t *plain = malloc(sizes[s] + 1);
            for (size_t i = 0; i < sizes[s]; i++)
                plain[i] = (uint8_t)(i * 7 + s);
            uint8_t *enc = NULL;
            size_t enc_len = 0;
            assert_int_equal(seed_age_encrypt(plain, sizes[s], rcpts, 2, armor, &enc, &enc_len), 0);
            assert_int_equal(seed_age_is_armored(enc, enc_len), armor);
            assert_true(seed_age_is_age(enc, enc_len));
            seed_age_plain out;
            assert_int_equal(seed_age_decrypt(enc, enc_len, &b, 1, &out, NULL), 0);
            assert_int_equal(out.len, sizes[s]);
            if (sizes[s])
                assert_memory_equal(out.data, plain, sizes[s]);
            seed_age_plain_done(&out);
            /* Not a recipient: no match, naming the identity's recipient. */
            seed_error *err = NULL;
            assert_int_equal(seed_age_decrypt(enc, enc_len, &c, 1, &out, &err), -ENOKEY);
            char *rc = seed_age_recipient_encode(c.recipient);
            assert_non_null(strstr(err->msg, rc));
            free(rc);
            seed_error_free(err);
            /* One flipped payload bit: payload failure. */
            if (!armor) {
                enc[enc_len - 1] ^= 1;
                assert_int_equal(seed_age_decrypt(enc, enc_len, &a, 1, &out, NULL), -EBADMSG);
            }
            free(enc);
            free(plain);
        }
}

/* Run a shell command, feeding it in and collecting its stdout. */
static int run(const char *cmd, const void *in, size_t in_len, char **out, size_t *out_len) {
    char tmpl[] = "/tmp/seed-age-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, in, in_len), (ssize_t)in_len);
    close(fd);
    char *full = NULL;
    assert_true(asprintf(&full, "%s < %s", cmd, tmpl) > 0);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, p);
    buf[n] = 0;
    int st = pclose(p);
    unlink(tmpl);
    free(full);
    *out = buf;
    *out_len = n;
    return st;
}

/* The real age command (Debian's age) both ways, when it is installed. */
static void test_age_cli_interop(void **state) {
    if (access("/usr/bin/age", X_OK) != 0 || access("/usr/bin/age-keygen", X_OK) != 0) {
        printf("# skip: /usr/bin/age not installed (scripts/deps.sh installs it)\n");
        skip();
    }
    char *keyfile = NULL, *out = NULL;
    size_t klen = 0, olen = 0;
    assert_int_equal(run("age-keygen 2>/dev/null", "", 0, &keyfile, &klen), 0);
    seed_age_identity *ids = NULL;
    size_t n = 0;
    assert_int_equal(seed_age_identities_parse(keyfile, klen, &ids, &n, NULL), 0);
    char *rcpt = seed_age_recipient_encode(ids[0].recipient);
    assert_non_null(strstr(keyfile, rcpt)); /* "# public key: age1…" agrees with ours */

    /* age encrypts (binary and armored), seed decrypts. */
    for (int armor = 0; armor < 2; armor++) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "age %s -r %s", armor ? "-a" : "", rcpt);
        assert_int_equal(run(cmd, "from age\n", 9, &out, &olen), 0);
        seed_age_plain plain;
        assert_int_equal(seed_age_decrypt((uint8_t *)out, olen, ids, n, &plain, NULL), 0);
        assert_int_equal(plain.len, 9);
        assert_memory_equal(plain.data, "from age\n", 9);
        seed_age_plain_done(&plain);
        free(out);
    }

    /* seed encrypts, age decrypts with the age-keygen file. */
    char keypath[] = "/tmp/seed-age-key-XXXXXX";
    int fd = mkstemp(keypath);
    assert_int_equal(write(fd, keyfile, klen), (ssize_t)klen);
    close(fd);
    for (int armor = 0; armor < 2; armor++) {
        uint8_t *enc = NULL;
        size_t enc_len = 0;
        assert_int_equal(
            seed_age_encrypt((const uint8_t *)"from seed\n", 10, &ids[0].recipient, 1, armor, &enc, &enc_len),
            0);
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "age -d -i %s", keypath);
        assert_int_equal(run(cmd, enc, enc_len, &out, &olen), 0);
        assert_int_equal(olen, 10);
        assert_memory_equal(out, "from seed\n", 10);
        free(out);
        free(enc);
    }
    unlink(keypath);
    free(rcpt);
    free(keyfile);
    seed_free_secret(ids, n * sizeof(*ids));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cctv_vectors),   cmocka_unit_test(test_spec_keys),
        cmocka_unit_test(test_bech32_rejects), cmocka_unit_test(test_keygen_file),
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_age_cli_interop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
