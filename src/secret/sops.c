/* sops decryption as sops 3.x does it (sops.go Tree.Decrypt, aes/cipher.go,
 * cmd/sops/common): the data key from an age recipient stanza, every value that the
 * file's rules say is encrypted opened with AES-256-GCM and its path ("a:b:") as
 * additional data, and a SHA-512 over the values in document order compared with
 * sops.mac (itself encrypted, with sops.lastmodified as additional data). */
#include "secret/sops.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/macro.h"
#include "secret/crypto.h"
#include "secret/sops-tree.h"

#define SOPS_MAX_DEPTH 64

/* sops.go MACOnlyEncryptedInitialization: the MAC of a mac_only_encrypted file
 * starts with these bytes. */
static const uint8_t mac_only_init[32] = {0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34,
                                          0xf3, 0xd1, 0x47, 0xbe, 0x0b, 0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f,
                                          0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69};

seed_sops_format seed_sops_format_of(const char *path) {
    const char *dot = strrchr(path, '.');
    if (dot && (streq(dot, ".yaml") || streq(dot, ".yml")))
        return SEED_SOPS_YAML;
    if (dot && streq(dot, ".json"))
        return SEED_SOPS_JSON;
    if (dot && streq(dot, ".env"))
        return SEED_SOPS_DOTENV;
    return SEED_SOPS_BINARY;
}

const char *seed_sops_format_name(seed_sops_format f) {
    static const char *const names[] = {"YAML", "JSON", "dotenv", "binary"};
    return names[f];
}

bool seed_sops_is_sops(const uint8_t *data, size_t len, seed_sops_format f) {
    const char *needle = f == SEED_SOPS_DOTENV ? "sops_mac=" : f == SEED_SOPS_YAML ? "sops:" : "\"sops\"";
    return memmem(data, len, needle, strlen(needle)) != NULL;
}

typedef struct sops_rules {
    const char *unencrypted_suffix, *encrypted_suffix;
    regex_t unencrypted_re, encrypted_re;
    bool has_unencrypted_re, has_encrypted_re;
    bool mac_only_encrypted;
} sops_rules;

static void rules_done(sops_rules *r) {
    if (r->has_unencrypted_re)
        regfree(&r->unencrypted_re);
    if (r->has_encrypted_re)
        regfree(&r->encrypted_re);
}

static const char *meta_str(const sops_node *meta, const char *key) {
    const sops_node *n = sops_node_get(meta, key);
    return n && n->kind == SOPS_SCALAR && n->type != SOPS_NULL && n->len ? n->text : NULL;
}

static int rules_init(const sops_node *meta, sops_rules *r, seed_error **err) {
    *r = (sops_rules){0};
    r->unencrypted_suffix = meta_str(meta, "unencrypted_suffix");
    r->encrypted_suffix = meta_str(meta, "encrypted_suffix");
    const char *ure = meta_str(meta, "unencrypted_regex"), *ere = meta_str(meta, "encrypted_regex");
    const char *mo = meta_str(meta, "mac_only_encrypted");
    r->mac_only_encrypted = mo && (streq(mo, "true") || streq(mo, "True"));
    /* Comment rules depend on comments, which seed does not read. */
    if (meta_str(meta, "unencrypted_comment_regex") || meta_str(meta, "encrypted_comment_regex"))
        return seed_error_set(err, ENOTSUP,
                              "sops files with unencrypted_comment_regex or encrypted_comment_regex are "
                              "not supported (use the suffix or regex rules)");
    /* Go's RE2 and POSIX extended expressions agree on the usual patterns. */
    if (ure) {
        if (regcomp(&r->unencrypted_re, ure, REG_EXTENDED | REG_NOSUB) != 0)
            return seed_error_set(err, EINVAL,
                                  "sops unencrypted_regex '%s' is not a regular expression seed reads", ure);
        r->has_unencrypted_re = true;
    }
    if (ere) {
        if (regcomp(&r->encrypted_re, ere, REG_EXTENDED | REG_NOSUB) != 0)
            return seed_error_set(err, EINVAL,
                                  "sops encrypted_regex '%s' is not a regular expression seed reads", ere);
        r->has_encrypted_re = true;
    }
    return 0;
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && streq(s + a - b, suffix);
}

/* sops.go shouldBeEncrypted, without the comment rules. */
static bool should_be_encrypted(const sops_rules *r, char **path, size_t depth) {
    bool enc = true;
    if (r->unencrypted_suffix)
        for (size_t i = 0; i < depth; i++)
            if (has_suffix(path[i], r->unencrypted_suffix)) {
                enc = false;
                break;
            }
    if (r->encrypted_suffix) {
        enc = false;
        for (size_t i = 0; i < depth; i++)
            if (has_suffix(path[i], r->encrypted_suffix)) {
                enc = true;
                break;
            }
    }
    if (r->has_unencrypted_re)
        for (size_t i = 0; i < depth; i++)
            if (regexec(&r->unencrypted_re, path[i], 0, NULL, 0) == 0) {
                enc = false;
                break;
            }
    if (r->has_encrypted_re) {
        enc = false;
        for (size_t i = 0; i < depth; i++)
            if (regexec(&r->encrypted_re, path[i], 0, NULL, 0) == 0) {
                enc = true;
                break;
            }
    }
    return enc;
}

/* A path "a:b:c:" for messages and additional data (malloc'd). */
static char *join_path(char **path, size_t depth) {
    size_t n = 1;
    for (size_t i = 0; i < depth; i++)
        n += strlen(path[i]) + 1;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    for (size_t i = 0; i < depth; i++)
        p = stpcpy(stpcpy(p, path[i]), ":");
    *p = 0;
    return s;
}

/* Open one ENC[AES256_GCM,data:…,iv:…,tag:…,type:…] value. */
static int open_value(const char *value, const uint8_t key[32], const char *aad, char **ret, size_t *ret_len,
                      char type[16], seed_error **err) {
    static const char prefix[] = "ENC[AES256_GCM,data:";
    size_t vl = strlen(value);
    if (strncmp(value, prefix, strlen(prefix)) != 0 || value[vl - 1] != ']')
        return seed_error_set(err, EINVAL,
                              "is not encrypted (expected ENC[AES256_GCM,data:…,iv:…,tag:…,type:…])");
    const char *data = value + strlen(prefix);
    const char *iv = strstr(data, ",iv:"), *tag = iv ? strstr(iv, ",tag:") : NULL,
               *typ = tag ? strstr(tag, ",type:") : NULL;
    if (!typ)
        return seed_error_set(err, EINVAL,
                              "is not a well-formed ENC[…] value (expected data, iv, tag and type)");
    size_t data_len = (size_t)(iv - data), iv_len = (size_t)(tag - iv - 4), tag_len = (size_t)(typ - tag - 5),
           type_len = (size_t)(value + vl - 1 - typ - 6);
    _cleanup_free_ uint8_t *ct = malloc(data_len + 1);
    uint8_t ivb[64], tagb[24];
    size_t ct_n = 0, iv_n = 0, tag_n = 0;
    if (!ct)
        return -ENOMEM;
    if (iv_len > 84 || tag_len > 24 || type_len >= 16 ||
        seed_b64_decode(data, data_len, true, ct, &ct_n) < 0 ||
        seed_b64_decode(iv + 4, iv_len, true, ivb, &iv_n) < 0 ||
        seed_b64_decode(tag + 5, tag_len, true, tagb, &tag_n) < 0 || tag_n != 16 || iv_n == 0)
        return seed_error_set(err, EINVAL, "is not a well-formed ENC[…] value (bad base64 or lengths)");
    memcpy(type, typ + 6, type_len);
    type[type_len] = 0;
    char *plain = malloc(ct_n + 1);
    if (!plain)
        return -ENOMEM;
    int r = seed_aes_gcm_open(key, ivb, iv_n, (const uint8_t *)aad, strlen(aad), ct, ct_n, tagb,
                              (uint8_t *)plain);
    if (r < 0) {
        free(plain);
        return r == -EBADMSG ? seed_error_set(err, EBADMSG,
                                              "does not decrypt (wrong data key, or the value or its "
                                              "path was altered)")
                             : seed_error_set(err, -r, "cannot be decrypted");
    }
    plain[ct_n] = 0;
    *ret = plain;
    *ret_len = ct_n;
    return 0;
}

typedef struct walk_ctx {
    const uint8_t *key;
    const sops_rules *rules;
    EVP_MD_CTX *mac;
    char *path[SOPS_MAX_DEPTH];
    size_t depth;
} walk_ctx;

static int mac_scalar(walk_ctx *w, const sops_node *n) {
    _cleanup_free_ char *f = NULL;
    const char *t = n->text;
    size_t len = n->len;
    char buf[32];
    if (!n->plain) {
        /* An unencrypted value enters the MAC as sops.go ToBytes writes its type. */
        if (n->type == SOPS_BOOL)
            t = streq(n->text, "true") || streq(n->text, "True") || streq(n->text, "TRUE") ? "True" : "False";
        else if (n->type == SOPS_INT) {
            /* Go's ParseInt with base 0, as yaml.v3 resolves: 0x hex, 0o or 0 octal. */
            const char *s = n->text;
            long long v = s[0] == '0' && s[1] == 'o' ? strtoll(s + 2, NULL, 8) : strtoll(s, NULL, 0);
            snprintf(buf, sizeof(buf), "%lld", v);
            t = buf;
        } else if (n->type == SOPS_FLOAT) {
            if (sops_go_float(n->text, &f) < 0)
                return -ENOMEM;
            t = f;
        }
        len = strlen(t);
    }
    return EVP_DigestUpdate(w->mac, t, len) == 1 ? 0 : -EIO;
}

static int walk(walk_ctx *w, sops_node *n, seed_error **err) {
    if (n->kind == SOPS_MAP) {
        if (w->depth == SOPS_MAX_DEPTH)
            return seed_error_set(err, EINVAL, "document nested deeper than %d levels", SOPS_MAX_DEPTH);
        for (size_t i = 0; i < n->n_kids; i++) {
            w->path[w->depth++] = n->kids[i]->key;
            int r = walk(w, n->kids[i], err);
            w->depth--;
            if (r < 0)
                return r;
        }
        return 0;
    }
    if (n->kind == SOPS_LIST) {
        /* List elements share their list's path (sops.go walkSlice). */
        for (size_t i = 0; i < n->n_kids; i++) {
            int r = walk(w, n->kids[i], err);
            if (r < 0)
                return r;
        }
        return 0;
    }
    if (n->type == SOPS_NULL)
        return 0; /* sops leaves nulls alone and out of the MAC */
    bool enc = should_be_encrypted(w->rules, w->path, w->depth);
    if (enc) {
        _cleanup_free_ char *aad = join_path(w->path, w->depth);
        if (!aad)
            return -ENOMEM;
        if (n->type != SOPS_STR)
            return seed_error_set(err, EINVAL, "value %s is not encrypted (a %s where sops writes ENC[…])",
                                  aad, n->type == SOPS_BOOL ? "boolean" : "number");
        if (n->len) { /* sops leaves empty strings as they are */
            char *plain = NULL, type[16];
            size_t len = 0;
            int r = open_value(n->text, w->key, aad, &plain, &len, type, err);
            if (r < 0)
                return seed_error_prefix(err, "value %s ", aad);
            if (streq(type, "str") || streq(type, "bytes") || streq(type, "time"))
                n->type = SOPS_STR;
            else if (streq(type, "int"))
                n->type = SOPS_INT;
            else if (streq(type, "float"))
                n->type = SOPS_FLOAT;
            else if (streq(type, "bool"))
                n->type = SOPS_BOOL;
            else {
                seed_free_secret(plain, len);
                return seed_error_set(err, EINVAL, "value %s has the unknown type '%s'", aad, type);
            }
            free(n->text);
            n->text = plain;
            n->len = len;
            n->plain = true;
        }
    }
    if (!w->rules->mac_only_encrypted || enc)
        return mac_scalar(w, n);
    return 0;
}

/* The data key from the age recipients (top level or in key groups). */
static int unwrap_data_key(const sops_node *meta, const seed_age_identity *ids, size_t n_ids, uint8_t key[32],
                           seed_error **err) {
    const sops_node *lists[16];
    size_t n_lists = 0;
    const sops_node *age = sops_node_get(meta, "age");
    if (age && age->kind == SOPS_LIST)
        lists[n_lists++] = age;
    const sops_node *groups = sops_node_get(meta, "key_groups");
    if (groups && groups->kind == SOPS_LIST) {
        const char *shamir = meta_str(meta, "shamir_threshold");
        if (groups->n_kids > 1 && shamir && !streq(shamir, "1"))
            return seed_error_set(err, ENOTSUP,
                                  "sops files split with Shamir's secret sharing are not supported");
        for (size_t i = 0; i < groups->n_kids && n_lists < ELEMENTSOF(lists); i++) {
            const sops_node *a = sops_node_get(groups->kids[i], "age");
            if (a && a->kind == SOPS_LIST)
                lists[n_lists++] = a;
        }
    }
    size_t tried = 0;
    _cleanup_free_ char *recipients = strdup("");
    for (size_t l = 0; l < n_lists; l++)
        for (size_t i = 0; i < lists[l]->n_kids; i++) {
            const char *enc = meta_str(lists[l]->kids[i], "enc");
            const char *rcpt = meta_str(lists[l]->kids[i], "recipient");
            if (!enc)
                continue;
            tried++;
            if (rcpt && recipients && strlen(recipients) < 400) {
                char *m = NULL;
                if (asprintf(&m, "%s%s%s", recipients, *recipients ? ", " : "", rcpt) >= 0) {
                    free(recipients);
                    recipients = m;
                }
            }
            seed_age_plain p;
            _cleanup_error_ seed_error *e = NULL;
            int r = seed_age_decrypt((const uint8_t *)enc, strlen(enc), ids, n_ids, &p, &e);
            if (r == -ENOKEY)
                continue;
            if (r < 0)
                return seed_error_set(err, -r, "the data key for %s does not decrypt: %s",
                                      rcpt ? rcpt : "an age key", e ? e->msg : "error");
            if (p.len != 32) {
                seed_age_plain_done(&p);
                return seed_error_set(err, EINVAL, "the data key for %s is %zu bytes (expected 32)",
                                      rcpt ? rcpt : "an age key", p.len);
            }
            memcpy(key, p.data, 32);
            seed_age_plain_done(&p);
            return 0;
        }
    if (!tried)
        return seed_error_set(err, ENOKEY,
                              "the sops file has no age recipient (its data key is for other key types)");
    _cleanup_free_ char *mine = n_ids ? seed_age_recipient_encode(ids[0].recipient) : NULL;
    return seed_error_set(err, ENOKEY, "the sops file is not encrypted to %s (its age recipients: %s)",
                          mine ? mine : "this identity", recipients && *recipients ? recipients : "unnamed");
}

/* The value at a dotted key ("db.password", "hosts.0"). */
static int select_key(const sops_node *root, const char *key, const sops_node **ret, seed_error **err) {
    _cleanup_free_ char *copy = strdup(key);
    if (!copy)
        return -ENOMEM;
    const sops_node *n = root;
    char *save = NULL;
    for (char *t = strtok_r(copy, ".", &save); t; t = strtok_r(NULL, ".", &save)) {
        const sops_node *next = NULL;
        if (n->kind == SOPS_MAP)
            next = sops_node_get(n, t);
        else if (n->kind == SOPS_LIST) {
            char *end;
            unsigned long i = strtoul(t, &end, 10);
            if (!*end && i < n->n_kids)
                next = n->kids[i];
        }
        if (!next || (n == root && streq(t, "sops")))
            return seed_error_set(err, ENOENT, "the document has no key '%s' (stopped at '%s')", key, t);
        n = next;
    }
    if (n->kind != SOPS_SCALAR)
        return seed_error_set(err, EINVAL, "key '%s' holds a %s, not a value", key,
                              n->kind == SOPS_MAP ? "mapping" : "list");
    *ret = n;
    return 0;
}

static int decrypt_tree(sops_node *root, seed_sops_format f, const uint8_t data_key[32], const char *key,
                        seed_age_plain *out, seed_error **err) {
    const sops_node *meta = sops_node_get(root, "sops");
    sops_rules rules;
    int r = rules_init(meta, &rules, err);
    if (r < 0) {
        rules_done(&rules);
        return r;
    }
    walk_ctx w = {.key = data_key, .rules = &rules, .mac = EVP_MD_CTX_new()};
    if (!w.mac || EVP_DigestInit_ex(w.mac, EVP_sha512(), NULL) != 1)
        r = -ENOMEM;
    if (r == 0 && rules.mac_only_encrypted &&
        EVP_DigestUpdate(w.mac, mac_only_init, sizeof(mac_only_init)) != 1)
        r = -EIO;
    for (size_t i = 0; r == 0 && i < root->n_kids; i++) {
        if (streq(root->kids[i]->key, "sops"))
            continue;
        w.path[0] = root->kids[i]->key;
        w.depth = 1;
        r = walk(&w, root->kids[i], err);
    }
    uint8_t digest[64];
    unsigned dl = 0;
    if (r == 0 && EVP_DigestFinal_ex(w.mac, digest, &dl) != 1)
        r = -EIO;
    EVP_MD_CTX_free(w.mac);
    rules_done(&rules);
    if (r < 0)
        return r;

    /* sops.mac: the upper-case hex digest, encrypted with lastmodified (as Go's
     * RFC 3339 writes it: no fractional seconds) as additional data. */
    const char *mac = meta_str(meta, "mac"), *lm = meta_str(meta, "lastmodified");
    if (!mac || !lm)
        return seed_error_set(err, EINVAL, "the sops metadata has no %s", mac ? "lastmodified" : "mac");
    char aad[64];
    const char *frac = strchr(lm, '.');
    if (strlen(lm) >= sizeof(aad))
        return seed_error_set(err, EINVAL, "sops lastmodified '%.40s' is not a timestamp", lm);
    if (frac) {
        size_t k = (size_t)(frac - lm), e = k + 1;
        while (lm[e] >= '0' && lm[e] <= '9')
            e++;
        snprintf(aad, sizeof(aad), "%.*s%s", (int)k, lm, lm + e);
    } else
        snprintf(aad, sizeof(aad), "%s", lm);
    char *file_mac = NULL, type[16];
    size_t fml = 0;
    r = open_value(mac, data_key, aad, &file_mac, &fml, type, err);
    if (r < 0)
        return seed_error_prefix(err, "sops.mac ");
    char hex[129];
    static const char digits[] = "0123456789ABCDEF";
    for (unsigned i = 0; i < 64; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[128] = 0;
    bool ok = fml == 128 && CRYPTO_memcmp(file_mac, hex, 128) == 0;
    free(file_mac);
    if (!ok)
        return seed_error_set(err, EBADMSG, "the sops MAC does not match the values (the file was altered)");

    if (f == SEED_SOPS_BINARY && !key)
        key = "data";
    if (key) {
        const sops_node *n = NULL;
        r = select_key(root, key, &n, err);
        if (r < 0)
            return r;
        const char *t = n->text;
        if (n->type == SOPS_BOOL)
            t = streq(t, "True") || streq(t, "true") || streq(t, "TRUE") ? "true" : "false";
        size_t l = strlen(t);
        out->data = malloc(l + 1);
        if (!out->data)
            return -ENOMEM;
        memcpy(out->data, t, l + 1);
        out->len = l;
        return 0;
    }
    /* The whole document without its metadata. */
    for (size_t i = 0; i < root->n_kids; i++)
        if (streq(root->kids[i]->key, "sops")) {
            sops_node_free(root->kids[i]);
            memmove(&root->kids[i], &root->kids[i + 1], (root->n_kids - i - 1) * sizeof(sops_node *));
            root->n_kids--;
            break;
        }
    char *doc = NULL;
    size_t dlen = 0;
    r = sops_emit(root, f, &doc, &dlen, err);
    if (r < 0)
        return r;
    out->data = (uint8_t *)doc;
    out->len = dlen;
    return 0;
}

static int load_checked(const uint8_t *data, size_t len, seed_sops_format f, sops_node **ret,
                        seed_error **err) {
    _cleanup_(sops_node_freep) sops_node *root = NULL;
    int r = sops_load((const char *)data, len, f, &root, err);
    if (r < 0)
        return r;
    const sops_node *meta = sops_node_get(root, "sops");
    if (!meta || meta->kind != SOPS_MAP || (f == SEED_SOPS_DOTENV && meta->n_kids == 0))
        return seed_error_set(err, EINVAL, "not a sops file: the %s document has no sops metadata",
                              seed_sops_format_name(f));
    if (f == SEED_SOPS_BINARY && !sops_node_get(root, "data"))
        return seed_error_set(err, EINVAL, "not a sops binary file: no \"data\" key");
    *ret = TAKE_PTR(root);
    return 0;
}

int seed_sops_decrypt_with_key(const uint8_t *data, size_t len, seed_sops_format f,
                               const uint8_t data_key[32], const char *key, seed_age_plain *out,
                               seed_error **err) {
    _cleanup_(sops_node_freep) sops_node *root = NULL;
    int r = load_checked(data, len, f, &root, err);
    if (r < 0)
        return r;
    seed_age_plain p = {0};
    r = decrypt_tree(root, f, data_key, key, &p, err);
    if (r < 0) {
        seed_age_plain_done(&p);
        return r;
    }
    *out = p;
    return 0;
}

int seed_sops_decrypt(const uint8_t *data, size_t len, seed_sops_format f, const seed_age_identity *ids,
                      size_t n_ids, const char *key, seed_age_plain *out, seed_error **err) {
    _cleanup_(sops_node_freep) sops_node *root = NULL;
    int r = load_checked(data, len, f, &root, err);
    if (r < 0)
        return r;
    uint8_t data_key[32];
    r = unwrap_data_key(sops_node_get(root, "sops"), ids, n_ids, data_key, err);
    if (r < 0)
        return r;
    seed_age_plain p = {0};
    r = decrypt_tree(root, f, data_key, key, &p, err);
    OPENSSL_cleanse(data_key, sizeof(data_key));
    if (r < 0) {
        seed_age_plain_done(&p);
        return r;
    }
    *out = p;
    return 0;
}
