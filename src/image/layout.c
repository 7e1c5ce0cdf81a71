/* Reading local images (see layout.h): OCI layouts, oci-archives and docker-archives.
 * Tar members are indexed once (name, offset, size) and read with pread. */
#include "image/layout.h"

#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/hash.h"

struct seed_tar_member {
    char *name;
    off_t off;
    uint64_t size;
};

void seed_image_src_free(seed_image_src *s) {
    if (!s)
        return;
    free(s->path);
    if (s->fd >= 0)
        close(s->fd);
    for (size_t i = 0; i < s->n_members; i++)
        free(s->members[i].name);
    free(s->members);
    free(s->manifest);
    if (s->docker_files)
        for (size_t i = 0; i < s->n_docker_files; i++)
            free(s->docker_files[i]);
    free(s->docker_files);
    seed_image_manifest_done(&s->m);
    free(s->config);
    free(s);
}

static int read_full_at(int fd, void *buf, size_t n, off_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, off + (off_t)got);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return negative_errno();
        }
        if (k == 0)
            return -EIO; /* shorter than announced */
        got += (size_t)k;
    }
    return 0;
}

static uint64_t tar_number(const char *f, size_t n) {
    if ((unsigned char)f[0] & 0x80) { /* base-256, for sizes over 8 GiB */
        uint64_t v = (unsigned char)f[0] & 0x7f;
        for (size_t i = 1; i < n; i++)
            v = (v << 8) | (unsigned char)f[i];
        return v;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n && f[i]; i++) {
        if (f[i] == ' ')
            continue;
        if (f[i] < '0' || f[i] > '7')
            break;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    return v;
}

static char *tar_clean_name(const char *n) {
    while (n[0] == '.' && n[1] == '/')
        n += 2;
    while (*n == '/')
        n++;
    char *s = strdup(n);
    size_t l = s ? strlen(s) : 0;
    while (l > 0 && s[l - 1] == '/')
        s[--l] = '\0';
    return s;
}

/* The "path" record of a pax extended header. */
static char *pax_path(const char *d, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t len = 0, j = i;
        while (j < n && d[j] >= '0' && d[j] <= '9')
            len = len * 10 + (size_t)(d[j++] - '0');
        if (len == 0 || i + len > n || j >= n || d[j] != ' ')
            return NULL;
        const char *kv = d + j + 1, *end = d + i + len - 1; /* end: the '\n' */
        if (end - kv > 5 && strncmp(kv, "path=", 5) == 0)
            return strndup(kv + 5, (size_t)(end - kv - 5));
        i += len;
    }
    return NULL;
}

static int tar_index(seed_image_src *s, seed_error **err) {
    struct stat st;
    if (fstat(s->fd, &st) < 0)
        return seed_error_setp(err, errno, "cannot stat %s", s->path);
    off_t off = 0;
    _cleanup_free_ char *long_name = NULL;
    size_t cap = 0;
    for (;;) {
        char h[512];
        if (off + 512 > st.st_size)
            return seed_error_set(err, EINVAL, "%s: truncated tar archive (no end marker)", s->path);
        int r = read_full_at(s->fd, h, sizeof(h), off);
        if (r < 0)
            return seed_error_setp(err, -r, "cannot read %s", s->path);
        bool zero = true;
        for (size_t i = 0; i < sizeof(h) && zero; i++)
            zero = h[i] == 0;
        if (zero)
            return 0;
        unsigned sum = 0;
        for (size_t i = 0; i < sizeof(h); i++)
            sum += (i >= 148 && i < 156) ? ' ' : (unsigned char)h[i];
        if (sum != tar_number(h + 148, 8))
            return seed_error_set(err, EINVAL, "%s: not a tar archive (bad header checksum at byte %lld)",
                                  s->path, (long long)off);
        uint64_t size = tar_number(h + 124, 12);
        off_t data = off + 512;
        if (size > (uint64_t)(st.st_size - data))
            return seed_error_set(err, EINVAL, "%s: tar member at byte %lld runs past the end", s->path,
                                  (long long)off);
        off = data + (off_t)((size + 511) & ~(uint64_t)511);
        char type = h[156];
        if (type == 'L' || type == 'x') {
            if (size > 65536)
                return seed_error_set(err, EINVAL, "%s: tar extended header over 64 KiB", s->path);
            _cleanup_free_ char *d = malloc(size + 1);
            if (!d)
                return -ENOMEM;
            if ((r = read_full_at(s->fd, d, size, data)) < 0)
                return seed_error_setp(err, -r, "cannot read %s", s->path);
            d[size] = '\0';
            char *n = type == 'L' ? strndup(d, size) : pax_path(d, size);
            if (n) {
                free(long_name);
                long_name = n;
            }
            continue;
        }
        if (type == 'g')
            continue;
        char name[256 + 2];
        if (memcmp(h + 257, "ustar", 5) == 0 && h[345])
            snprintf(name, sizeof(name), "%.155s/%.100s", h + 345, h);
        else
            snprintf(name, sizeof(name), "%.100s", h);
        if (type != '0' && type != '\0') {
            free(long_name);
            long_name = NULL;
            continue; /* directories, links: images are made of regular members */
        }
        if (s->n_members == cap) {
            cap = cap ? cap * 2 : 32;
            seed_tar_member *m = realloc(s->members, cap * sizeof(*m));
            if (!m)
                return -ENOMEM;
            s->members = m;
        }
        char *clean = tar_clean_name(long_name ? long_name : name);
        free(long_name);
        long_name = NULL;
        if (!clean)
            return -ENOMEM;
        s->members[s->n_members++] = (seed_tar_member){clean, data, size};
    }
}

static const seed_tar_member *tar_find(const seed_image_src *s, const char *name) {
    /* The last one wins, as when the archive is extracted. */
    for (size_t i = s->n_members; i > 0; i--)
        if (streq(s->members[i - 1].name, name))
            return &s->members[i - 1];
    return NULL;
}

/* Locate a file of the image by its name in the layout or the archive. */
static int locate(const seed_image_src *s, const char *name, int *ret_fd, off_t *ret_off, uint64_t *ret_size,
                  int *ret_own_fd, seed_error **err) {
    *ret_own_fd = -1;
    if (s->kind == SEED_IMAGE_SRC_LAYOUT) {
        int fd;
        int r = seed_open_beneath(s->fd, name, O_RDONLY, &fd);
        if (r < 0)
            return seed_error_setp(err, -r, "%s: cannot open %s", s->path, name);
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return seed_error_set(err, EINVAL, "%s: %s is not a regular file", s->path, name);
        }
        *ret_fd = *ret_own_fd = fd;
        *ret_off = 0;
        *ret_size = (uint64_t)st.st_size;
        return 0;
    }
    const seed_tar_member *m = tar_find(s, name);
    if (!m)
        return seed_error_set(err, ENOENT, "%s: the archive has no %s", s->path, name);
    *ret_fd = s->fd;
    *ret_off = m->off;
    *ret_size = m->size;
    return 0;
}

static int read_file(const seed_image_src *s, const char *name, size_t max, char **ret, size_t *ret_len,
                     seed_error **err) {
    int fd;
    _cleanup_close_ int own = -1;
    off_t off;
    uint64_t size;
    int r = locate(s, name, &fd, &off, &size, &own, err);
    if (r < 0)
        return r;
    if (size > max)
        return seed_error_set(err, EFBIG, "%s: %s has %llu bytes, more than the %zu expected at most",
                              s->path, name, (unsigned long long)size, max);
    char *buf = malloc(size + 1);
    if (!buf)
        return -ENOMEM;
    r = read_full_at(fd, buf, size, off);
    if (r < 0) {
        free(buf);
        return seed_error_setp(err, -r, "%s: cannot read %s", s->path, name);
    }
    buf[size] = '\0';
    *ret = buf;
    *ret_len = size;
    return 0;
}

static int hash_range(int fd, off_t off, uint64_t size, char out[SEED_DIGEST_LEN], uint8_t head[2]) {
    seed_sha256 *h = seed_sha256_new();
    if (!h)
        return -ENOMEM;
    _cleanup_free_ char *buf = malloc(1 << 20);
    if (!buf) {
        seed_sha256_free(h);
        return -ENOMEM;
    }
    for (uint64_t done = 0; done < size;) {
        size_t n = (size_t)MIN(size - done, (uint64_t)(1 << 20));
        int r = read_full_at(fd, buf, n, off + (off_t)done);
        if (r < 0) {
            seed_sha256_free(h);
            return r;
        }
        if (done == 0 && head && n >= 2)
            memcpy(head, buf, 2);
        seed_sha256_update(h, buf, n);
        done += n;
    }
    uint8_t d[SEED_SHA256_LEN];
    seed_sha256_final(h, d);
    memcpy(out, "sha256:", 7);
    seed_hex(d, sizeof(d), out + 7);
    return 0;
}

int seed_image_src_blob(const seed_image_src *s, const char *digest, int *ret_fd, off_t *ret_off,
                        uint64_t *ret_size, seed_error **err) {
    if (!seed_image_digest_valid(digest))
        return seed_error_set(err, EINVAL, "blob digest '%.80s' is not sha256:<64 hex digits>", digest);
    char name[128];
    snprintf(name, sizeof(name), "blobs/sha256/%s", digest + 7);
    const char *file = name;
    if (s->kind == SEED_IMAGE_SRC_DOCKER_ARCHIVE) {
        file = NULL;
        for (size_t i = 0; i <= s->m.n_layers && !file; i++)
            if (streq(i < s->m.n_layers ? s->m.layers[i].digest : s->m.config.digest, digest))
                file = s->docker_files[i];
        if (!file)
            return seed_error_set(err, ENOENT, "%s: no layer %s", s->path, digest);
    }
    int fd, own;
    int r = locate(s, file, &fd, ret_off, ret_size, &own, err);
    if (r < 0)
        return r;
    if (own < 0 && (own = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
        return seed_error_setp(err, errno, "dup");
    *ret_fd = own;
    return 0;
}

int seed_image_src_verify(const seed_image_src *s, const char *digest, seed_error **err) {
    _cleanup_close_ int fd = -1;
    off_t off;
    uint64_t size;
    int r = seed_image_src_blob(s, digest, &fd, &off, &size, err);
    if (r < 0)
        return r;
    char got[SEED_DIGEST_LEN];
    r = hash_range(fd, off, size, got, NULL);
    if (r < 0)
        return seed_error_setp(err, -r, "%s: cannot read blob %s", s->path, digest);
    if (!streq(got, digest))
        return seed_error_set(err, EBADMSG, "%s: blob %s is corrupt: its content hashes to %s", s->path,
                              digest, got);
    return 0;
}

/* The descriptor's size must be the file's: a cheap check of every blob up front. */
static int check_size(const seed_image_src *s, const seed_image_desc *d, seed_error **err) {
    int fd;
    off_t off;
    uint64_t size;
    int r = seed_image_src_blob(s, d->digest, &fd, &off, &size, err);
    if (r < 0)
        return r;
    close(fd);
    if (size != (uint64_t)d->size)
        return seed_error_set(err, EBADMSG, "%s: blob %s has %llu bytes, its descriptor says %lld", s->path,
                              d->digest, (unsigned long long)size, (long long)d->size);
    return 0;
}

static int read_blob(const seed_image_src *s, const seed_image_desc *d, size_t max, char **ret,
                     size_t *ret_len, seed_error **err) {
    char name[128];
    snprintf(name, sizeof(name), "blobs/sha256/%s", d->digest + 7);
    int r = read_file(s, name, max, ret, ret_len, err);
    if (r < 0)
        return r;
    char got[SEED_DIGEST_LEN];
    if ((r = seed_image_digest(*ret, *ret_len, got)) < 0)
        return r;
    if (!streq(got, d->digest) || *ret_len != (size_t)d->size) {
        free(TAKE_PTR(*ret));
        return seed_error_set(err, EBADMSG,
                              "%s: blob %s is corrupt: %zu bytes hashing to %s (descriptor: %lld bytes)",
                              s->path, d->digest, *ret_len, got, (long long)d->size);
    }
    return 0;
}

/* index.json to the manifest: the only one, or the one named tag. */
static int open_oci(seed_image_src *s, const char *tag, seed_error **err) {
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = read_file(s, "oci-layout", 4096, &text, &len, err);
    if (r < 0)
        return r;
    json_t *ol = json_loadb(text, len, 0, NULL);
    bool ok = json_is_string(json_object_get(ol, "imageLayoutVersion"));
    json_decref(ol);
    if (!ok)
        return seed_error_set(err, EINVAL,
                              "%s: oci-layout has no imageLayoutVersion: not an OCI image layout", s->path);
    free(TAKE_PTR(text));
    if ((r = read_file(s, "index.json", SEED_MANIFEST_MAX, &text, &len, err)) < 0)
        return r;
    seed_image_manifest idx = {0};
    r = seed_image_manifest_parse(text, len, SEED_MT_OCI_INDEX, &idx, err);
    if (r < 0)
        return seed_error_prefix(err, "%s: index.json: ", s->path);
    const seed_image_desc *pick = NULL;
    if (!idx.is_index)
        r = seed_error_set(err, EINVAL, "%s: index.json is not an image index", s->path);
    else if (idx.n_manifests == 0)
        r = seed_error_set(err, ENOENT, "%s: index.json lists no image", s->path);
    for (size_t i = 0; r >= 0 && i < idx.n_manifests; i++) {
        const seed_image_desc *d = &idx.manifests[i];
        if (tag ? (d->ref_name && streq(d->ref_name, tag)) : idx.n_manifests == 1)
            pick = d;
    }
    if (r >= 0 && !pick)
        r = tag ? seed_error_set(err, ENOENT, "%s: index.json has no image tagged '%s'", s->path, tag)
                : seed_error_set(err, EINVAL, "%s: index.json lists %zu images: name one as %s:TAG", s->path,
                                 idx.n_manifests, s->path);
    if (r >= 0 && !streq(pick->media_type, SEED_MT_OCI_MANIFEST) &&
        !streq(pick->media_type, SEED_MT_DOCKER_MANIFEST))
        r = seed_error_set(err, ENOTSUP,
                           "%s: the image is a %s: only single-platform image manifests are pushed", s->path,
                           pick->media_type);
    if (r >= 0)
        r = read_blob(s, pick, SEED_MANIFEST_MAX, &s->manifest, &s->manifest_len, err);
    if (r >= 0) {
        memcpy(s->manifest_digest, pick->digest, SEED_DIGEST_LEN);
        r = seed_image_manifest_parse(s->manifest, s->manifest_len, pick->media_type, &s->m, err);
        if (r < 0)
            seed_error_prefix(err, "%s: manifest %s: ", s->path, pick->digest);
    }
    seed_image_manifest_done(&idx);
    if (r >= 0 && s->m.is_index)
        r = seed_error_set(err, ENOTSUP, "%s: nested image indexes are not supported", s->path);
    if (r >= 0)
        r = read_blob(s, &s->m.config, SEED_CONFIG_MAX, &s->config, &s->config_len, err);
    for (size_t i = 0; r >= 0 && i < s->m.n_layers; i++)
        r = check_size(s, &s->m.layers[i], err);
    return r;
}

/* docker save's layout: manifest.json names the config and the layer tars; an OCI
 * manifest is written for them (their digests computed here). */
static int open_docker(seed_image_src *s, const char *tag, seed_error **err) {
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = read_file(s, "manifest.json", SEED_MANIFEST_MAX, &text, &len, err);
    if (r < 0)
        return r;
    json_t *j = json_loadb(text, len, 0, NULL), *e = NULL;
    size_t i;
    json_t *v;
    json_array_foreach (j, i, v) {
        json_t *t;
        size_t k;
        json_array_foreach (json_object_get(v, "RepoTags"), k, t) {
            const char *rt = json_string_value(t);
            const char *c = rt ? strrchr(rt, ':') : NULL;
            if (tag && rt && (streq(rt, tag) || (c && streq(c + 1, tag))))
                e = v;
        }
    }
    if (!tag && json_array_size(j) == 1)
        e = json_array_get(j, 0);
    const char *cfg = json_string_value(json_object_get(e, "Config"));
    json_t *layers = json_object_get(e, "Layers");
    if (!json_is_array(j))
        r = seed_error_set(err, EINVAL, "%s: manifest.json is not a JSON array", s->path);
    else if (!e)
        r = tag ? seed_error_set(err, ENOENT, "%s: manifest.json has no image tagged '%s'", s->path, tag)
                : seed_error_set(err, EINVAL, "%s: manifest.json lists %zu images: name one as %s:TAG",
                                 s->path, json_array_size(j), s->path);
    else if (!cfg || !json_is_array(layers))
        r = seed_error_set(err, EINVAL, "%s: manifest.json has no Config or Layers", s->path);
    json_t *man = NULL, *ls = json_array();
    size_t n = json_array_size(layers);
    /* docker_files[n]: the configuration's member */
    if (r >= 0 && !(s->docker_files = calloc(n + 1, sizeof(char *))))
        r = -ENOMEM;
    else if (r >= 0)
        s->n_docker_files = n + 1;
    if (r >= 0) {
        s->docker_files[n] = tar_clean_name(cfg);
        r = s->docker_files[n]
                ? read_file(s, s->docker_files[n], SEED_CONFIG_MAX, &s->config, &s->config_len, err)
                : -ENOMEM;
    }
    char cdigest[SEED_DIGEST_LEN];
    if (r >= 0)
        r = seed_image_digest(s->config, s->config_len, cdigest);
    for (i = 0; r >= 0 && i < n; i++) {
        const char *lf = json_string_value(json_array_get(layers, i));
        s->docker_files[i] = lf ? tar_clean_name(lf) : NULL;
        const seed_tar_member *m = s->docker_files[i] ? tar_find(s, s->docker_files[i]) : NULL;
        if (!m) {
            r = seed_error_set(err, ENOENT, "%s: layer %zu (%s) is not in the archive", s->path, i,
                               lf ? lf : "not a string");
            break;
        }
        char d[SEED_DIGEST_LEN];
        uint8_t head[2] = {0};
        if ((r = hash_range(s->fd, m->off, m->size, d, head)) < 0) {
            seed_error_setp(err, -r, "%s: cannot read %s", s->path, s->docker_files[i]);
            break;
        }
        bool gz = m->size >= 2 && head[0] == 0x1f && head[1] == 0x8b;
        json_array_append_new(ls, json_pack("{s:s, s:s, s:I}", "mediaType",
                                            gz ? SEED_MT_OCI_LAYER_GZIP : SEED_MT_OCI_LAYER, "digest", d,
                                            "size", (json_int_t)m->size));
    }
    if (r >= 0) {
        man = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:O}", "schemaVersion", 2, "mediaType",
                        SEED_MT_OCI_MANIFEST, "config", "mediaType", SEED_MT_OCI_CONFIG, "digest", cdigest,
                        "size", (json_int_t)s->config_len, "layers", ls);
        s->manifest = man ? json_dumps(man, JSON_COMPACT) : NULL;
        if (!s->manifest)
            r = -ENOMEM;
    }
    json_decref(man);
    json_decref(ls);
    json_decref(j);
    if (r < 0)
        return r;
    s->manifest_len = strlen(s->manifest);
    if ((r = seed_image_digest(s->manifest, s->manifest_len, s->manifest_digest)) < 0)
        return r;
    r = seed_image_manifest_parse(s->manifest, s->manifest_len, NULL, &s->m, err);
    return r;
}

int seed_image_src_open(const char *src, seed_image_src **ret, seed_error **err) {
    _cleanup_free_ char *path = strdup(src);
    if (!path)
        return -ENOMEM;
    const char *tag = NULL;
    struct stat st;
    if (stat(path, &st) < 0) {
        /* PATH:TAG, when PATH exists. */
        char *c = strrchr(path, ':');
        if (c) {
            *c = '\0';
            tag = c + 1;
        }
        if (!c || !*tag || stat(path, &st) < 0)
            return seed_error_setp(err, ENOENT, "no image at %s", src);
    }
    _cleanup_(seed_image_src_freep) seed_image_src *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->fd = -1;
    if (!(s->path = strdup(path)))
        return -ENOMEM;
    int r;
    if (S_ISDIR(st.st_mode)) {
        s->kind = SEED_IMAGE_SRC_LAYOUT;
        if ((s->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            return seed_error_setp(err, errno, "cannot open %s", path);
        r = open_oci(s, tag, err);
    } else if (S_ISREG(st.st_mode)) {
        if ((s->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            return seed_error_setp(err, errno, "cannot open %s", path);
        if ((r = tar_index(s, err)) < 0)
            return r;
        if (tar_find(s, "oci-layout")) {
            s->kind = SEED_IMAGE_SRC_OCI_ARCHIVE;
            r = open_oci(s, tag, err);
        } else if (tar_find(s, "manifest.json")) {
            s->kind = SEED_IMAGE_SRC_DOCKER_ARCHIVE;
            r = open_docker(s, tag, err);
        } else {
            r = seed_error_set(err, EINVAL,
                               "%s is a tar with neither oci-layout nor manifest.json: not an "
                               "oci-archive or docker-archive",
                               path);
        }
    } else {
        r = seed_error_set(err, EINVAL, "%s is neither a directory (OCI layout) nor a file (archive)", path);
    }
    if (r < 0)
        return r;
    *ret = TAKE_PTR(s);
    return 0;
}
