/* The hashes derived from a spec: namespace (from the source URI, Seed's formula),
 * instance identity (a content hash of meta and payload, root directory included)
 * and project generation (over the sorted name=identity lines). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/hash.h"
#include "spec/meta.h"
#include "spec/spec.h"

int seed_namespace_from_uri(const char *uri, char out[16]) {
    char hex[SEED_SHA256_HEX_LEN + 1];
    int r = seed_sha256_hex(uri, strlen(uri), hex);
    if (r < 0)
        return r;
    /* The base32 text of the first 20 hex *characters* (ASCII), as Nix's
     * builtins.hashString + substring + base32 chain does it. */
    char b32[40];
    seed_base32((const uint8_t *)hex, 20, b32);
    out[0] = 's';
    out[1] = '-';
    for (int i = 0; i < 12; i++)
        out[2 + i] = (char)(b32[i] >= 'A' && b32[i] <= 'Z' ? b32[i] - 'A' + 'a' : b32[i]);
    out[14] = 0;
    return 0;
}

int seed_project_generation(const seed_project *p, char out[13]) {
    seed_sha256 *h = seed_sha256_new();
    if (!h)
        return -ENOMEM;
    /* instances are kept sorted by name in byte order */
    for (size_t i = 0; i < p->n_instances; i++) {
        seed_sha256_update(h, p->instances[i].name, strlen(p->instances[i].name));
        seed_sha256_update(h, "=", 1);
        seed_sha256_update(h, p->instances[i].identity, strlen(p->instances[i].identity));
        seed_sha256_update(h, "\n", 1);
    }
    uint8_t d[SEED_SHA256_LEN];
    seed_sha256_final(h, d);
    char hex[SEED_SHA256_HEX_LEN + 1];
    seed_hex(d, sizeof(d), hex);
    memcpy(out, hex, 12);
    out[12] = 0;
    return 0;
}

int seed_instance_identity(const seed_instance *inst, char out[65]) {
    /* The canonical text jansson's JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII
     * writes for the meta, written directly (base/jsonw.h) and hashed in one call. */
    seed_jw w = {.style = SEED_JW_CANONICAL};
    seed_jw_object_begin(&w);
    seed_instance_meta_members(&w, inst, NULL, false);
    if (inst->root_kind == SEED_ROOT_DIR) {
        seed_jw_key(&w, "rootDigest");
        seed_jw_string(&w, inst->root_digest);
    }
    seed_jw_key(&w, "identityVersion");
    seed_jw_int(&w, 1);
    seed_jw_object_end(&w);
    int r = seed_jw_finish(&w);
    if (r == 0)
        r = seed_sha256_hex(w.buf, w.len, out);
    seed_jw_free(&w);
    return r < 0 ? -ENOMEM : 0;
}

/* Tree serialisation, NAR-like: every token is a 64-bit little-endian length and the
 * bytes, so no two different trees serialise alike. Only what a sandbox can observe
 * through a read-only mount and that is stable across machines is included: names,
 * types, the executable bit, contents and link targets (not owners or times). */
static void put_token(seed_sha256 *h, const void *data, size_t n) {
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)n >> (8 * i));
    seed_sha256_update(h, len, sizeof(len));
    seed_sha256_update(h, data, n);
}

static void put_str(seed_sha256 *h, const char *s) {
    put_token(h, s, strlen(s));
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#define TREE_MAX_DEPTH 128
#define TREE_READ_BUF 65536

/* One walk: the tree hash, one read buffer for every file (not one per recursion
 * level: 128 levels of 64 KiB would not fit a default stack) and the message. */
typedef struct tree_walk {
    seed_sha256 *h;
    uint8_t *buf;
    char **errmsg;
} tree_walk;

static int digest_dir(tree_walk *w, int dirfd, const char *rel, int depth);

/* The token of a regular file: its length and the sha256 of its contents. */
static int digest_file(tree_walk *w, int fd) {
    uint64_t total = 0;
    seed_sha256 *fh = seed_sha256_new();
    if (!fh)
        return -ENOMEM;
    for (;;) {
        ssize_t k = read(fd, w->buf, TREE_READ_BUF);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int r = negative_errno();
            seed_sha256_free(fh);
            return r;
        }
        if (k == 0)
            break;
        seed_sha256_update(fh, w->buf, (size_t)k);
        total += (uint64_t)k;
    }
    uint8_t d[SEED_SHA256_LEN];
    seed_sha256_final(fh, d);
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(total >> (8 * i));
    put_token(w->h, le, sizeof(le));
    put_token(w->h, d, sizeof(d));
    return 0;
}

/* An entry that cannot be read: say which. */
static int unreadable(tree_walk *w, const char *rel) {
    int r = negative_errno();
    if (asprintf(w->errmsg, "\"%s\" cannot be read: %s", rel, strerror(-r)) < 0)
        *w->errmsg = NULL;
    return r;
}

static int digest_entry(tree_walk *w, int dirfd, const char *name, const char *rel, int depth) {
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return negative_errno();
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (n < 0)
            return negative_errno();
        put_str(w->h, "symlink");
        put_token(w->h, target, (size_t)n);
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return unreadable(w, rel);
        return digest_dir(w, fd, rel, depth + 1);
    }
    if (S_ISREG(st.st_mode)) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return unreadable(w, rel);
        put_str(w->h, "regular");
        put_str(w->h, (st.st_mode & 0111) ? "executable" : "");
        return digest_file(w, fd);
    }
    if (asprintf(w->errmsg,
                 "contains \"%s\", which is a device, FIFO or socket: root directories may only "
                 "hold files, directories and symlinks",
                 rel) < 0)
        *w->errmsg = NULL;
    return -EINVAL;
}

static int digest_dir(tree_walk *w, int dirfd, const char *rel, int depth) {
    if (depth > TREE_MAX_DEPTH) {
        if (asprintf(w->errmsg, "nests directories deeper than %d levels at \"%s\"", TREE_MAX_DEPTH, rel) < 0)
            *w->errmsg = NULL;
        return -ELOOP;
    }
    int dup_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
    if (dup_fd < 0)
        return negative_errno();
    DIR *d = fdopendir(dup_fd);
    if (!d) {
        close(dup_fd);
        return negative_errno();
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nn = realloc(names, cap * sizeof(char *));
            if (!nn) {
                r = -ENOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            r = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (r == 0) {
        qsort(names, n, sizeof(char *), cmp_str);
        put_str(w->h, "directory");
        for (size_t i = 0; i < n && r == 0; i++) {
            _cleanup_free_ char *child = NULL;
            if (asprintf(&child, "%s%s%s", rel, *rel ? "/" : "", names[i]) < 0) {
                r = -ENOMEM;
                break;
            }
            put_str(w->h, "entry");
            put_str(w->h, names[i]);
            r = digest_entry(w, dirfd, names[i], child, depth);
        }
        put_str(w->h, "end");
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return r;
}

int seed_tree_digest(int dirfd, char out[65], char **errmsg) {
    *errmsg = NULL;
    _cleanup_free_ uint8_t *buf = malloc(TREE_READ_BUF);
    seed_sha256 *h = buf ? seed_sha256_new() : NULL;
    if (!h)
        return -ENOMEM;
    tree_walk w = {.h = h, .buf = buf, .errmsg = errmsg};
    int r = digest_dir(&w, dirfd, "", 0);
    if (r < 0) {
        seed_sha256_free(h);
        return r;
    }
    uint8_t d[SEED_SHA256_LEN];
    seed_sha256_final(h, d);
    seed_hex(d, sizeof(d), out);
    return 0;
}
