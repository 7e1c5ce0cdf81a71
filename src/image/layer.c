/* Layers: the root directory scanned once, checked, and split into layers on a stable
 * rule; each layer written as a normalised tar (sorted entries, numeric owner 0, one
 * mtime, modes as seed's identity sees them), gzip'd deterministically, hashed on the
 * way out. The same tree gives the same bytes on any machine, in any directory.
 *
 * The split: every top-level directory is a unit; a directory holding more than
 * SEED_IMAGE_SPLIT_BYTES is split further, each subdirectory a unit and its own loose
 * files one more; files directly under / are one unit. A unit is a layer; when there
 * are more units than layers allowed, the largest keep their own and the rest share
 * one. Changing a file changes the one layer its unit is in. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/fileio.h"
#include "base/hash.h"
#include "image/image.h"

#define NONE ((size_t)-1)
#define MAX_DEPTH 256
#define IO_BUF (128u << 10)
#define GZIP_LEVEL 6 /* fixed: the level decides the bytes */

/* ---- blobs: gzip'd (or not), hashed, written to a file of the layout ---- */

struct seed_blob {
    int fd;
    bool gz;
    z_stream z;
    seed_sha256 *raw, *out; /* of the uncompressed and the written bytes */
    uint64_t out_size;
    int err; /* the first write error (positive errno) */
    char tmp[32];
    unsigned char zbuf[IO_BUF];
};

static int blob_emit(seed_blob *b, const void *p, size_t n) {
    seed_sha256_update(b->out, p, n);
    b->out_size += n;
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(b->fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            b->err = w < 0 ? errno : ENOSPC;
            return -b->err;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int blob_deflate(seed_blob *b, const void *p, size_t n, int flush) {
    b->z.next_in = (unsigned char *)p;
    b->z.avail_in = (unsigned)n;
    do {
        b->z.next_out = b->zbuf;
        b->z.avail_out = sizeof(b->zbuf);
        int r = deflate(&b->z, flush);
        if (r == Z_STREAM_ERROR) {
            b->err = EIO;
            return -EIO;
        }
        int k = blob_emit(b, b->zbuf, sizeof(b->zbuf) - b->z.avail_out);
        if (k < 0)
            return k;
        if (flush == Z_FINISH && r == Z_STREAM_END)
            break;
    } while (b->z.avail_out == 0 || (flush == Z_FINISH));
    return 0;
}

static int blob_write(seed_blob *b, const void *p, size_t n) {
    if (b->err)
        return -b->err;
    seed_sha256_update(b->raw, p, n);
    if (!b->gz)
        return blob_emit(b, p, n);
    /* avail_in is an unsigned int: feed big writes in pieces. */
    const char *c = p;
    while (n > 0) {
        size_t k = MIN(n, (size_t)1 << 30);
        int r = blob_deflate(b, c, k, Z_NO_FLUSH);
        if (r < 0)
            return r;
        c += k;
        n -= k;
    }
    return 0;
}

static void blob_free(seed_blob *b, int blobdir) {
    if (!b)
        return;
    if (b->fd >= 0) {
        close(b->fd);
        unlinkat(blobdir, b->tmp, 0);
    }
    if (b->gz)
        deflateEnd(&b->z);
    if (b->raw)
        seed_sha256_free(b->raw);
    if (b->out)
        seed_sha256_free(b->out);
    free(b);
}

static int blob_open(int blobdir, bool gz, seed_blob **ret, seed_error **err) {
    static unsigned counter;
    seed_blob *b = calloc(1, sizeof(*b));
    if (!b)
        return seed_error_set(err, ENOMEM, "out of memory");
    b->fd = -1;
    b->raw = seed_sha256_new();
    b->out = seed_sha256_new();
    /* windowBits 16 + 15: a gzip wrapper. Without a header given, zlib writes no
     * name, mtime 0 and its OS code: the same bytes every time. */
    if (!b->raw || !b->out ||
        (gz && deflateInit2(&b->z, GZIP_LEVEL, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)) {
        blob_free(b, blobdir);
        return seed_error_set(err, ENOMEM, "out of memory");
    }
    b->gz = gz;
    snprintf(b->tmp, sizeof(b->tmp), ".partial-%u", counter++);
    b->fd = openat(blobdir, b->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (b->fd < 0) {
        int e = errno;
        blob_free(b, blobdir);
        return seed_error_setp(err, e, "creating a blob of the image");
    }
    *ret = b;
    return 0;
}

static void digest_of(seed_sha256 **h, char out[SEED_IMAGE_DIGEST_LEN]) {
    uint8_t d[SEED_SHA256_LEN];
    seed_sha256_final(*h, d);
    *h = NULL;
    memcpy(out, "sha256:", 7);
    seed_hex(d, sizeof(d), out + 7);
}

/* Finish the blob and give it its name: the digest. Frees b. */
static int blob_finish(seed_blob *b, int blobdir, char digest[SEED_IMAGE_DIGEST_LEN],
                       char raw_digest[SEED_IMAGE_DIGEST_LEN], uint64_t *size, seed_error **err) {
    int r = b->err ? -b->err : 0;
    if (r == 0 && b->gz)
        r = blob_deflate(b, NULL, 0, Z_FINISH);
    if (r == 0 && fsync(b->fd) < 0)
        r = -errno;
    if (r < 0) {
        blob_free(b, blobdir);
        return seed_error_setp(err, -r, "writing a blob of the image");
    }
    digest_of(&b->out, digest);
    if (raw_digest)
        digest_of(&b->raw, raw_digest);
    *size = b->out_size;
    if (renameat(blobdir, b->tmp, blobdir, digest + 7) < 0) {
        int e = errno;
        blob_free(b, blobdir);
        return seed_error_setp(err, e, "naming a blob of the image");
    }
    close(b->fd);
    b->fd = -1;
    blob_free(b, blobdir);
    return 0;
}

int seed_blob_write_data(int blobdir, const void *data, size_t len, char digest[SEED_IMAGE_DIGEST_LEN],
                         seed_error **err) {
    seed_blob *b;
    int r = blob_open(blobdir, false, &b, err);
    if (r < 0)
        return r;
    blob_write(b, data, len);
    uint64_t size;
    return blob_finish(b, blobdir, digest, NULL, &size, err);
}

/* ---- normalised tar ---- */

static la_ssize_t ar_write(struct archive *a, void *userdata, const void *buf, size_t n) {
    seed_blob *b = userdata;
    if (blob_write(b, buf, n) < 0) {
        archive_set_error(a, b->err, "%s", strerror(b->err));
        return -1;
    }
    return (la_ssize_t)n;
}

static struct archive *tar_new(seed_blob *b) {
    struct archive *a = archive_write_new();
    if (!a)
        return NULL;
    /* pax_restricted: plain ustar headers, pax records only where ustar cannot say it
     * (long names, big files); no atime, ctime or extended attributes. */
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_add_filter_none(a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(a, 512) != ARCHIVE_OK ||
        archive_write_open2(a, b, NULL, ar_write, NULL, NULL) != ARCHIVE_OK) {
        archive_write_free(a);
        return NULL;
    }
    return a;
}

static int tar_error(struct archive *a, seed_blob *b, const char *what, seed_error **err) {
    if (b->err)
        return seed_error_setp(err, b->err, "writing the image (%s)", what);
    return seed_error_set(err, EIO, "writing the image (%s): %s", what, archive_error_string(a));
}

typedef struct tar_item {
    const char *path;
    mode_t mode; /* type and permissions */
    uint64_t size;
    const char *symlink;
    const char *hardlink;
} tar_item;

static int tar_header(struct archive *a, seed_blob *b, const tar_item *t, uint64_t epoch, seed_error **err) {
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return seed_error_set(err, ENOMEM, "out of memory");
    archive_entry_set_pathname(e, t->path);
    archive_entry_set_filetype(e, t->mode & S_IFMT);
    archive_entry_set_perm(e, t->mode & 07777);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, (time_t)epoch, 0);
    if (t->symlink)
        archive_entry_set_symlink(e, t->symlink);
    if (t->hardlink) {
        archive_entry_set_hardlink(e, t->hardlink);
        archive_entry_set_size(e, 0);
    } else {
        archive_entry_set_size(e, S_ISREG(t->mode) ? (la_int64_t)t->size : 0);
    }
    int r = archive_write_header(a, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK)
        return tar_error(a, b, t->path, err);
    return 0;
}

/* Copy exactly size bytes of fd into the archive; a file that is not that long any
 * more changed while we read it. */
static int tar_copy(struct archive *a, seed_blob *b, int fd, uint64_t size, const char *what, char *buf,
                    seed_error **err) {
    uint64_t left = size;
    while (left > 0) {
        ssize_t n = read(fd, buf, (size_t)MIN(left, (uint64_t)IO_BUF));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return seed_error_setp(err, errno, "reading %s", what);
        if (n == 0)
            return seed_error_set(err, EAGAIN, "%s changed while the image was built (it got shorter)", what);
        if (archive_write_data(a, buf, (size_t)n) != n)
            return tar_error(a, b, what, err);
        left -= (uint64_t)n;
    }
    return 0;
}

/* ---- the root's tree ---- */

typedef struct tentry {
    char *path; /* relative to the root, no leading '/' */
    mode_t mode;
    uint64_t size;
    char *target; /* symlinks */
    dev_t dev;
    ino_t ino;
    nlink_t nlink;
    struct timespec mtime, ctime; /* for the layer cache only: never in a layer */
    size_t parent;                /* NONE: directly under the root */
    uint64_t total;               /* directories: the sizes of the files below */
    size_t unit;
    bool mark;
} tentry;

typedef struct unit {
    size_t anchor; /* the directory, or NONE: the loose files of the root */
    uint64_t bytes;
    size_t layer;
} unit;

struct seed_tree {
    char *root_name;
    tentry *e;
    size_t n, cap;
    unit *units;
    size_t n_units;
    size_t n_layers;
    bool closure; /* a Nix closure: entries below /nix/store, one unit per store path */
};

void seed_tree_free(seed_tree *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].path);
        free(t->e[i].target);
    }
    free(t->e);
    free(t->units);
    free(t->root_name);
    free(t);
}

/* The modes seed's identity sees (the executable bit), so that the umask a copy was
 * made with does not matter: 0755 or 0644; setuid and setgid stay; a sticky directory
 * is 01777 (/tmp). */
static mode_t normal_mode(mode_t m) {
    if (S_ISDIR(m))
        return S_IFDIR | ((m & S_ISVTX) ? 01777 : 0755);
    if (S_ISLNK(m))
        return S_IFLNK | 0777;
    return S_IFREG | ((m & S_IXUSR) ? 0755 : 0644) | (m & (S_ISUID | S_ISGID));
}

/* A Nix store's modes, as Nix itself makes them: 0555 directories, 0444 or 0555 files. */
static mode_t store_mode(mode_t m) {
    if (S_ISDIR(m))
        return S_IFDIR | 0555;
    if (S_ISLNK(m))
        return S_IFLNK | 0777;
    return S_IFREG | ((m & S_IXUSR) ? 0555 : 0444);
}

static const char *kind_of(mode_t m) {
    return S_ISSOCK(m)   ? "a socket"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
                         : "a special file";
}

static int scan_dir(seed_tree *t, int dirfd, const char *prefix, unsigned depth, seed_error **err);

/* One entry of the tree: name in dirfd, path its path from the root (taken); a
 * directory is scanned below. */
static int scan_entry(seed_tree *t, int dirfd, const char *name, char *path, unsigned depth,
                      seed_error **err) {
    _cleanup_free_ char *owned = path;
    /* ".wh." names are deletions to whoever unpacks a layer. */
    if (strncmp(name, ".wh.", 4) == 0)
        return seed_error_set(
            err, EINVAL, "%s/%s: names starting with \".wh.\" mean deletions in an image layer; rename it",
            t->root_name, path);
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return seed_error_setp(err, errno, "%s/%s", t->root_name, path);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return seed_error_set(err, EINVAL,
                              "%s/%s is %s: an image's root holds only files, directories and symlinks",
                              t->root_name, path, kind_of(st.st_mode));
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 256;
        tentry *ne = realloc(t->e, ncap * sizeof(*ne));
        if (!ne)
            return seed_error_set(err, ENOMEM, "out of memory");
        t->e = ne;
        t->cap = ncap;
    }
    tentry *x = &t->e[t->n];
    *x = (tentry){.mode = t->closure ? store_mode(st.st_mode) : normal_mode(st.st_mode),
                  .size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0,
                  .dev = st.st_dev,
                  .ino = st.st_ino,
                  .nlink = st.st_nlink,
                  .mtime = st.st_mtim,
                  .ctime = st.st_ctim};
    if (S_ISLNK(st.st_mode)) {
        /* Stored as it is, absolute or not: a runtime resolves it inside the root. */
        char target[4097];
        ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (n < 0)
            return seed_error_setp(err, errno, "reading symlink %s/%s", t->root_name, path);
        target[n] = 0;
        if (!(x->target = strdup(target)))
            return seed_error_set(err, ENOMEM, "out of memory");
    } else if (S_ISREG(st.st_mode)) {
        /* Found unreadable now rather than halfway through writing a layer. */
        int f = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (f < 0)
            return seed_error_setp(err, errno, "cannot read %s/%s", t->root_name, path);
        close(f);
    }
    x->path = TAKE_PTR(owned);
    t->n++;
    if (!S_ISDIR(st.st_mode))
        return 0;
    _cleanup_close_ int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
        return seed_error_setp(err, errno, "cannot read directory %s/%s", t->root_name, t->e[t->n - 1].path);
    _cleanup_free_ char *p = strdup(t->e[t->n - 1].path);
    return p ? scan_dir(t, sub, p, depth + 1, err) : seed_error_set(err, ENOMEM, "out of memory");
}

static int scan_dir(seed_tree *t, int dirfd, const char *prefix, unsigned depth, seed_error **err) {
    if (depth > MAX_DEPTH)
        return seed_error_set(err, ELOOP, "%s/%s: directories nested deeper than %u", t->root_name, prefix,
                              MAX_DEPTH);
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return seed_error_setp(err, e, "reading directory %s/%s", t->root_name, prefix);
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (errno = 0, de = readdir(d))) {
        const char *name = de->d_name;
        if (streq(name, ".") || streq(name, ".."))
            continue;
        char *path = NULL;
        if (asprintf(&path, "%s%s%s", prefix, *prefix ? "/" : "", name) < 0)
            r = seed_error_set(err, ENOMEM, "out of memory");
        else
            r = scan_entry(t, dirfd, name, path, depth, err);
    }
    if (r == 0 && errno != 0 && !de)
        r = seed_error_setp(err, errno, "reading directory %s/%s", t->root_name, prefix);
    closedir(d);
    return r;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const tentry *)a)->path, ((const tentry *)b)->path);
}

static size_t find_path(const seed_tree *t, const char *path, size_t len) {
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(t->e[mid].path, path, len);
        if (c == 0 && t->e[mid].path[len] != 0)
            c = 1;
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NONE;
}

/* Sort the entries, link each to its parent and add up the directories' sizes. */
static void scan_finish(seed_tree *t) {
    /* Sorted by bytes: a directory comes before everything in it, and the order does
     * not depend on the order the files were made in. */
    if (t->n)
        qsort(t->e, t->n, sizeof(*t->e), cmp_entry);
    for (size_t i = 0; i < t->n; i++) {
        const char *slash = strrchr(t->e[i].path, '/');
        t->e[i].parent = slash ? find_path(t, t->e[i].path, (size_t)(slash - t->e[i].path)) : NONE;
    }
    /* Descendants sort after their directory: adding up from the end, each
     * directory's total is complete before it is added to its parent's. */
    for (size_t i = t->n; i-- > 0;) {
        tentry *x = &t->e[i];
        if (x->parent != NONE)
            t->e[x->parent].total += S_ISDIR(x->mode) ? x->total : x->size;
    }
}

int seed_tree_scan(int rootfd, const char *root_name, seed_tree **ret, seed_error **err) {
    _cleanup_(seed_tree_freep) seed_tree *t = calloc(1, sizeof(*t));
    if (!t || !(t->root_name = strdup(root_name)))
        return seed_error_set(err, ENOMEM, "out of memory");
    int r = scan_dir(t, rootfd, "", 0, err);
    if (r < 0)
        return r;
    scan_finish(t);
    *ret = TAKE_PTR(t);
    return 0;
}

static int cmp_strp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int seed_tree_scan_store(int rootfd, const char *const *paths, size_t n, seed_tree **ret, seed_error **err) {
    _cleanup_(seed_tree_freep) seed_tree *t = calloc(1, sizeof(*t));
    if (!t || !(t->root_name = strdup("")))
        return seed_error_set(err, ENOMEM, "out of memory");
    t->closure = true;
    /* /nix and /nix/store themselves, as an image wants them whatever the host's are. */
    static const char *const dirs[] = {"nix", "nix/store"};
    t->e = calloc(256, sizeof(*t->e));
    if (!t->e)
        return seed_error_set(err, ENOMEM, "out of memory");
    t->cap = 256;
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        t->e[t->n] = (tentry){.path = strdup(dirs[i]), .mode = S_IFDIR | 0755, .nlink = 1};
        if (!t->e[t->n++].path)
            return seed_error_set(err, ENOMEM, "out of memory");
    }
    _cleanup_close_ int store = openat(rootfd, "nix/store", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (store < 0)
        return seed_error_setp(err, errno, "opening /nix/store");
    int r = 0;
    for (size_t i = 0; r == 0 && i < n; i++) {
        const char *name = strrchr(paths[i], '/');
        char *path = NULL;
        if (!name || strncmp(paths[i], "/nix/store/", 11) != 0 || strchr(paths[i] + 11, '/'))
            return seed_error_set(err, EINVAL, "%s is not a store path", paths[i]);
        if (asprintf(&path, "nix/store/%s", name + 1) < 0)
            return seed_error_set(err, ENOMEM, "out of memory");
        r = scan_entry(t, store, name + 1, path, 2, err);
    }
    if (r < 0)
        return r;
    scan_finish(t);

    /* A link to a store path the closure does not hold would dangle in the image. */
    _cleanup_free_ const char **sorted = malloc((n ? n : 1) * sizeof(char *));
    if (!sorted)
        return seed_error_set(err, ENOMEM, "out of memory");
    memcpy(sorted, paths, n * sizeof(char *));
    qsort(sorted, n, sizeof(char *), cmp_strp);
    for (size_t i = 0; i < t->n; i++) {
        const char *tg = t->e[i].target;
        if (!tg || strncmp(tg, "/nix/store/", 11) != 0)
            continue;
        size_t len = 11 + strcspn(tg + 11, "/");
        _cleanup_free_ char *sp = strndup(tg, len);
        if (!sp)
            return seed_error_set(err, ENOMEM, "out of memory");
        const char *key = sp;
        if (!bsearch(&key, sorted, n, sizeof(char *), cmp_strp))
            return seed_error_set(err, EINVAL,
                                  "/%s is a symlink to %s, a store path outside the closure: the image "
                                  "would hold a dangling link (the store does not record it as a "
                                  "reference, as when a path was added with nix-store --add; build it "
                                  "as a derivation instead)",
                                  t->e[i].path, tg);
    }
    *ret = TAKE_PTR(t);
    return 0;
}

static bool is_split(const seed_tree *t, size_t dir) {
    return dir == NONE || t->e[dir].total > SEED_IMAGE_SPLIT_BYTES;
}

static int cmp_by_size(const void *a, const void *b, void *arg) {
    const unit *u = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (u[x].bytes != u[y].bytes)
        return u[x].bytes > u[y].bytes ? -1 : 1;
    return x < y ? -1 : x > y;
}

size_t seed_tree_split(seed_tree *t, size_t max_layers) {
    free(t->units);
    t->units = calloc(t->n + 1, sizeof(unit));
    t->n_units = 0;
    if (!t->units)
        return 0;
    size_t root_loose = NONE;
    for (size_t i = 0; i < t->n; i++) {
        tentry *x = &t->e[i];
        if (S_ISDIR(x->mode) && is_split(t, x->parent)) {
            t->units[t->n_units] = (unit){.anchor = i};
            x->unit = t->n_units++;
        } else if (x->parent != NONE) {
            x->unit = t->e[x->parent].unit;
        } else {
            if (root_loose == NONE) {
                t->units[t->n_units] = (unit){.anchor = NONE};
                root_loose = t->n_units++;
            }
            x->unit = root_loose;
        }
        t->units[x->unit].bytes += x->size;
    }
    size_t avail = max_layers > 1 ? max_layers : 1;
    if (t->n_units <= avail) {
        for (size_t u = 0; u < t->n_units; u++)
            t->units[u].layer = u;
        t->n_layers = t->n_units;
        return t->n_layers;
    }
    /* Too many: the avail - 1 largest keep a layer each (in path order), the rest
     * share the last. */
    _cleanup_free_ size_t *order = malloc(t->n_units * sizeof(size_t));
    if (!order)
        return 0;
    for (size_t u = 0; u < t->n_units; u++) {
        order[u] = u;
        t->units[u].layer = NONE;
    }
    qsort_r(order, t->n_units, sizeof(size_t), cmp_by_size, t->units);
    for (size_t k = 0; k < avail - 1; k++)
        t->units[order[k]].layer = 0;
    size_t next = 0;
    for (size_t u = 0; u < t->n_units; u++)
        if (t->units[u].layer == 0)
            t->units[u].layer = next++;
    for (size_t u = 0; u < t->n_units; u++)
        if (t->units[u].layer == NONE)
            t->units[u].layer = next;
    t->n_layers = next + 1;
    return t->n_layers;
}

size_t seed_tree_split_ranked(seed_tree *t, const size_t *rank, size_t n_paths, size_t max_layers) {
    free(t->units);
    t->n_units = 0;
    t->units = calloc(n_paths ? n_paths : 1, sizeof(unit));
    if (!t->units || !t->closure || n_paths == 0)
        return 0;
    /* Unit k: the store path scanned k-th, that is the k-th of the paths given, sorted:
     * the entries nix/store/<name> in path order. */
    size_t store_dir = find_path(t, "nix/store", 9);
    for (size_t i = 0; i < t->n; i++) {
        tentry *x = &t->e[i];
        if (x->parent == store_dir && store_dir != NONE) {
            if (t->n_units == n_paths)
                return 0;
            t->units[t->n_units] = (unit){.anchor = i};
            x->unit = t->n_units++;
        } else if (x->parent != NONE && x->parent != store_dir) {
            x->unit = t->e[x->parent].unit;
        } else {
            x->unit = rank[0]; /* /nix and /nix/store: with the most popular path */
        }
    }
    if (t->n_units != n_paths)
        return 0;
    for (size_t i = 0; i < t->n; i++)
        t->units[t->e[i].unit].bytes += t->e[i].size;
    /* The most popular paths a layer each, in rank order; the rest share the last. */
    size_t avail = max_layers > 1 ? max_layers : 1;
    size_t own = n_paths <= avail ? n_paths : avail - 1;
    for (size_t k = 0; k < n_paths; k++)
        t->units[rank[k]].layer = k < own ? k : own;
    t->n_layers = n_paths <= avail ? n_paths : avail;
    return t->n_layers;
}

/* What a unit holds, as shown to people: "/bin", "/usr/lib/" + "*" (its loose files), "/" + "*". */
static char *unit_name(const seed_tree *t, const unit *u) {
    char *s = NULL;
    if (u->anchor == NONE)
        return strdup("/*");
    const tentry *x = &t->e[u->anchor];
    if (asprintf(&s, "/%s%s", x->path, !t->closure && is_split(t, u->anchor) ? "/*" : "") < 0)
        return NULL;
    return s;
}

typedef struct hardlink {
    dev_t dev;
    ino_t ino;
    size_t first;
} hardlink;

/* End a layer's tar (r: how writing it went) and name its blob; on failure the blob
 * goes. */
static int close_layer(struct archive *a, seed_blob *b, int blobdir, int r, seed_image_layer *l,
                       seed_error **err) {
    if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
        r = tar_error(a, b, "closing a layer", err);
    if (a)
        archive_write_free(a);
    if (r < 0) {
        blob_free(b, blobdir);
        return r;
    }
    return blob_finish(b, blobdir, l->digest, l->diff_id, &l->size, err);
}

/* ---- the layer cache ----
 * A rebuild after a one-file change must not tar and compress the whole root again. A
 * layer is known by what the files it holds look like on disk (path, mode, size, times
 * of change, inode, link target, the epoch): when that key was built before, its blob
 * is linked (or copied) from the cache instead of being written. The key never goes
 * into the image, only decides whether to recompute it, as make and rsync decide; a
 * file rewritten with its size, mtime and ctime all unchanged is not noticed (ctime
 * cannot be set from user space). The cache is $XDG_CACHE_HOME/seed/layers (or
 * ~/.cache/seed/layers): <key>.json and the blob, the newest CACHE_KEEP kept. */
#define CACHE_VERSION "seed-layer-cache 1"
#define CACHE_KEEP 256

static int cache_dir(char *buf, size_t size) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int r = xdg && *xdg     ? snprintf(buf, size, "%s/seed/layers", xdg)
            : home && *home ? snprintf(buf, size, "%s/.cache/seed/layers", home)
                            : -1;
    if (r < 0 || (size_t)r >= size || seed_mkdir_p(buf, 0700) < 0)
        return -1;
    return 0;
}

static void cache_key(const seed_tree *t, uint64_t epoch, char key[SEED_SHA256_HEX_LEN + 1]) {
    seed_sha256 *h = seed_sha256_new();
    if (!h) {
        key[0] = 0;
        return;
    }
    char line[512];
    int l =
        snprintf(line, sizeof(line), "%s\n%llu\n%d\n", CACHE_VERSION, (unsigned long long)epoch, GZIP_LEVEL);
    seed_sha256_update(h, line, (size_t)l);
    for (size_t i = 0; i < t->n; i++) {
        const tentry *x = &t->e[i];
        if (!x->mark)
            continue;
        l = snprintf(line, sizeof(line), "%o %llu %lld.%09ld %lld.%09ld %llu %llu %llu ", (unsigned)x->mode,
                     (unsigned long long)x->size, (long long)x->mtime.tv_sec, x->mtime.tv_nsec,
                     (long long)x->ctime.tv_sec, x->ctime.tv_nsec, (unsigned long long)x->dev,
                     (unsigned long long)x->ino, (unsigned long long)x->nlink);
        seed_sha256_update(h, line, (size_t)l);
        seed_sha256_update(h, x->path, strlen(x->path) + 1);
        if (x->target)
            seed_sha256_update(h, x->target, strlen(x->target) + 1);
    }
    uint8_t d[SEED_SHA256_LEN];
    seed_sha256_final(h, d);
    seed_hex(d, sizeof(d), key);
}

/* A blob into blobdir under its digest: a hard link from the cache, else a copy. */
static int link_or_copy(int from_dir, const char *from, int blobdir, const char *name) {
    if (linkat(from_dir, from, blobdir, name, 0) == 0 || errno == EEXIST)
        return 0;
    _cleanup_close_ int in = openat(from_dir, from, O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int out =
        in < 0 ? -1 : openat(blobdir, ".partial-copy", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        return -1;
    char buf[1 << 16];
    for (ssize_t k; (k = read(in, buf, sizeof(buf))) != 0;)
        if (k < 0 || write(out, buf, (size_t)k) != k) {
            unlinkat(blobdir, ".partial-copy", 0);
            return -1;
        }
    if (fsync(out) < 0 || renameat(blobdir, ".partial-copy", blobdir, name) < 0) {
        unlinkat(blobdir, ".partial-copy", 0);
        return -1;
    }
    return 0;
}

/* A layer built before with this key: its blob is in blobdir now and *l filled. */
static bool cache_get(const char *key, int blobdir, seed_image_layer *l) {
    char dir[4096], name[SEED_SHA256_HEX_LEN + 8];
    if (!*key || cache_dir(dir, sizeof(dir)) < 0)
        return false;
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(name, sizeof(name), "%s.json", key);
    _cleanup_close_ int jfd = dfd < 0 ? -1 : openat(dfd, name, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (jfd < 0 || seed_read_fd(jfd, 4096, &text, &len) < 0)
        return false;
    json_t *c = json_loadb(text, len, 0, NULL);
    const char *digest = json_string_value(json_object_get(c, "digest"));
    const char *diff_id = json_string_value(json_object_get(c, "diffId"));
    bool ok = digest && diff_id && strlen(digest) == SEED_IMAGE_DIGEST_LEN - 1 &&
              strlen(diff_id) == SEED_IMAGE_DIGEST_LEN - 1 && strncmp(digest, "sha256:", 7) == 0 &&
              link_or_copy(dfd, digest + 7, blobdir, digest + 7) == 0;
    if (ok) {
        memcpy(l->digest, digest, SEED_IMAGE_DIGEST_LEN);
        memcpy(l->diff_id, diff_id, SEED_IMAGE_DIGEST_LEN);
        l->size = (uint64_t)json_integer_value(json_object_get(c, "size"));
        l->content_bytes = (uint64_t)json_integer_value(json_object_get(c, "contentBytes"));
        l->n_entries = (size_t)json_integer_value(json_object_get(c, "entries"));
        /* touched: the newest are the ones kept */
        futimens(jfd, NULL);
    }
    json_decref(c);
    return ok;
}

static int cmp_mtime(const void *a, const void *b) {
    const struct dirent_age {
        char name[80];
        struct timespec t;
    } *x = a, *y = b;
    if (x->t.tv_sec != y->t.tv_sec)
        return x->t.tv_sec < y->t.tv_sec ? 1 : -1;
    return x->t.tv_nsec < y->t.tv_nsec ? 1 : x->t.tv_nsec > y->t.tv_nsec ? -1 : 0;
}

/* Remember a layer just written; best effort (a cache that cannot be written is no cache). */
static void cache_put(const char *key, int blobdir, const seed_image_layer *l) {
    char dir[4096], name[SEED_SHA256_HEX_LEN + 8];
    if (!*key || cache_dir(dir, sizeof(dir)) < 0)
        return;
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || link_or_copy(blobdir, l->digest + 7, dfd, l->digest + 7) < 0)
        return;
    json_t *c = json_pack("{s:s, s:s, s:I, s:I, s:I}", "digest", l->digest, "diffId", l->diff_id, "size",
                          (json_int_t)l->size, "contentBytes", (json_int_t)l->content_bytes, "entries",
                          (json_int_t)l->n_entries);
    char *text = c ? json_dumps(c, JSON_COMPACT) : NULL;
    json_decref(c);
    snprintf(name, sizeof(name), "%s.json", key);
    char tmp[SEED_SHA256_HEX_LEN + 16];
    snprintf(tmp, sizeof(tmp), ".%s.tmp", key);
    int jfd = text ? openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
    bool written = jfd >= 0 && write(jfd, text, strlen(text)) == (ssize_t)strlen(text);
    if (jfd >= 0)
        close(jfd);
    if (!written || renameat(dfd, tmp, dfd, name) < 0)
        unlinkat(dfd, tmp, 0);
    free(text);

    /* The newest CACHE_KEEP entries stay; older ones and blobs nobody names go. */
    struct dirent_age {
        char name[80];
        struct timespec t;
    } *ages = NULL;
    size_t n = 0, cap = 0;
    DIR *d = fdopendir(dup(dfd));
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t nl = strlen(e->d_name);
        struct stat st;
        if (nl < 6 || nl >= sizeof(ages->name) || strcmp(e->d_name + nl - 5, ".json") != 0 ||
            fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (n == cap) {
            void *m = realloc(ages, (cap = cap ? cap * 2 : 64) * sizeof(*ages));
            if (!m)
                break;
            ages = m;
        }
        snprintf(ages[n].name, sizeof(ages[n].name), "%s", e->d_name);
        ages[n++].t = st.st_mtim;
    }
    if (d)
        closedir(d);
    if (n > CACHE_KEEP) {
        qsort(ages, n, sizeof(*ages), cmp_mtime);
        for (size_t i = CACHE_KEEP; i < n; i++) {
            _cleanup_close_ int ofd = openat(dfd, ages[i].name, O_RDONLY | O_CLOEXEC);
            _cleanup_free_ char *jt = NULL;
            size_t jl = 0;
            json_t *old =
                ofd >= 0 && seed_read_fd(ofd, 4096, &jt, &jl) == 0 ? json_loadb(jt, jl, 0, NULL) : NULL;
            const char *dg = json_string_value(json_object_get(old, "digest"));
            if (dg && strlen(dg) > 7)
                unlinkat(dfd, dg + 7, 0); /* a blob shared by two keys is linked again when needed */
            json_decref(old);
            unlinkat(dfd, ages[i].name, 0);
        }
    }
    free(ages);
}

int seed_tree_write_layer(seed_tree *t, size_t k, int rootfd, int blobdir, uint64_t epoch,
                          seed_image_layer *l, seed_error **err) {
    *l = (seed_image_layer){0};
    for (size_t u = 0; u < t->n_units; u++)
        if (t->units[u].layer == k) {
            char **h = realloc(l->holds, (l->n_holds + 1) * sizeof(char *));
            if (!h)
                return seed_error_set(err, ENOMEM, "out of memory");
            l->holds = h;
            if (!(h[l->n_holds] = unit_name(t, &t->units[u])))
                return seed_error_set(err, ENOMEM, "out of memory");
            l->n_holds++;
        }
    /* The layer's entries, and the directories above them (identical in every layer
     * that has them, so that unpacking in any order gives the same tree). */
    for (size_t i = 0; i < t->n; i++)
        t->e[i].mark = t->units[t->e[i].unit].layer == k;
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].mark)
            for (size_t p = t->e[i].parent; p != NONE && !t->e[p].mark; p = t->e[p].parent)
                t->e[p].mark = true;

    char key[SEED_SHA256_HEX_LEN + 1];
    cache_key(t, epoch, key);
    if (cache_get(key, blobdir, l))
        return 0;

    seed_blob *b;
    int r = blob_open(blobdir, true, &b, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *buf = malloc(IO_BUF);
    struct archive *a = buf ? tar_new(b) : NULL;
    hardlink *links = NULL;
    size_t n_links = 0;
    if (!a)
        r = seed_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; r == 0 && i < t->n; i++) {
        tentry *x = &t->e[i];
        if (!x->mark)
            continue;
        tar_item it = {.path = x->path, .mode = x->mode, .size = x->size, .symlink = x->target};
        /* A hard link within the layer stays one; across layers it is a copy. */
        if (S_ISREG(x->mode) && x->nlink > 1) {
            for (size_t j = 0; j < n_links; j++)
                if (links[j].dev == x->dev && links[j].ino == x->ino) {
                    it.hardlink = t->e[links[j].first].path;
                    break;
                }
            if (!it.hardlink) {
                hardlink *nl = realloc(links, (n_links + 1) * sizeof(*nl));
                if (!nl) {
                    r = seed_error_set(err, ENOMEM, "out of memory");
                    break;
                }
                links = nl;
                links[n_links++] = (hardlink){x->dev, x->ino, i};
            }
        }
        r = tar_header(a, b, &it, epoch, err);
        if (r < 0 || !S_ISREG(x->mode) || it.hardlink) {
            l->n_entries++;
            continue;
        }
        _cleanup_close_ int fd =
            openat(rootfd, x->path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        if (fd < 0) {
            r = seed_error_setp(err, errno, "cannot read %s/%s", t->root_name, x->path);
        } else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != x->size) {
            r = seed_error_set(err, EAGAIN, "%s/%s changed while the image was built", t->root_name, x->path);
        } else {
            _cleanup_free_ char *what = NULL;
            r = asprintf(&what, "%s/%s", t->root_name, x->path) < 0
                    ? seed_error_set(err, ENOMEM, "out of memory")
                    : tar_copy(a, b, fd, x->size, what, buf, err);
        }
        l->content_bytes += x->size;
        l->n_entries++;
    }
    free(links);
    r = close_layer(a, b, blobdir, r, l, err);
    if (r == 0)
        cache_put(key, blobdir, l);
    return r;
}

int seed_layer_write_files(const seed_layer_file *files, size_t n, int blobdir, uint64_t epoch,
                           seed_image_layer *l, seed_error **err) {
    *l = (seed_image_layer){0};
    seed_blob *b;
    int r = blob_open(blobdir, true, &b, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *buf = malloc(IO_BUF);
    struct archive *a = buf ? tar_new(b) : NULL;
    if (!a)
        r = seed_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; r == 0 && i < n; i++) {
        const seed_layer_file *f = &files[i];
        _cleanup_close_ int fd = -1;
        uint64_t size = f->len;
        if (S_ISREG(f->mode) && !f->data) {
            struct stat st;
            fd = open(f->src_path, O_RDONLY | O_CLOEXEC);
            if (fd < 0 || fstat(fd, &st) < 0)
                r = seed_error_setp(err, errno, "cannot read %s", f->src_path);
            else if (!S_ISREG(st.st_mode))
                r = seed_error_set(err, EINVAL, "%s is not a regular file", f->src_path);
            size = r == 0 ? (uint64_t)st.st_size : 0;
        }
        tar_item it = {.path = f->path, .mode = f->mode, .size = size, .symlink = f->link};
        if (r == 0)
            r = tar_header(a, b, &it, epoch, err);
        if (r == 0 && S_ISREG(f->mode)) {
            if (f->data && archive_write_data(a, f->data, f->len) != (la_ssize_t)f->len)
                r = tar_error(a, b, f->path, err);
            else if (!f->data)
                r = tar_copy(a, b, fd, size, f->src_path, buf, err);
        }
        l->content_bytes += S_ISREG(f->mode) ? size : 0;
        l->n_entries++;
    }
    return close_layer(a, b, blobdir, r, l, err);
}

/* ---- a directory as a tar (the layout, for the archive formats) ---- */

typedef struct dir_list {
    char **v;
    size_t n, cap;
} dir_list;

static int list_dir(int dirfd, const char *prefix, dir_list *out, seed_error **err) {
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return seed_error_setp(err, errno, "reading the image directory");
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
            continue;
        if (out->n == out->cap) {
            size_t ncap = out->cap ? out->cap * 2 : 64;
            char **nv = reallocarray(out->v, ncap, sizeof(char *));
            if (!nv) {
                r = seed_error_set(err, ENOMEM, "out of memory");
                break;
            }
            out->v = nv;
            out->cap = ncap;
        }
        char *p = NULL;
        if (asprintf(&p, "%s%s", prefix, de->d_name) < 0) {
            r = seed_error_set(err, ENOMEM, "out of memory");
            break;
        }
        out->v[out->n++] = p;
        struct stat st;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            _cleanup_close_ int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            _cleanup_free_ char *pre = NULL;
            if (sub < 0)
                r = seed_error_setp(err, errno, "reading the image directory");
            else if (asprintf(&pre, "%s/", p) < 0)
                r = seed_error_set(err, ENOMEM, "out of memory");
            else
                r = list_dir(sub, pre, out, err);
        }
    }
    closedir(d);
    return r;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int seed_tar_directory(int dirfd, int fd, uint64_t epoch, seed_error **err) {
    dir_list l = {0};
    int r = list_dir(dirfd, "", &l, err);
    if (r == 0 && l.n)
        qsort(l.v, l.n, sizeof(char *), cmp_str);
    /* Written through a blob that is no file of a layout: fd itself. */
    seed_blob b = {.fd = fd, .raw = seed_sha256_new(), .out = seed_sha256_new()};
    _cleanup_free_ char *buf = malloc(IO_BUF);
    struct archive *a = r == 0 && b.raw && b.out && buf ? tar_new(&b) : NULL;
    if (r == 0 && !a)
        r = seed_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; r == 0 && i < l.n; i++) {
        struct stat st;
        _cleanup_close_ int f = openat(dirfd, l.v[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (f < 0 || fstat(f, &st) < 0) {
            r = seed_error_setp(err, errno, "reading %s of the image", l.v[i]);
            break;
        }
        tar_item it = {.path = l.v[i],
                       .mode = S_ISDIR(st.st_mode) ? S_IFDIR | 0755 : S_IFREG | 0644,
                       .size = (uint64_t)st.st_size};
        r = tar_header(a, &b, &it, epoch, err);
        if (r == 0 && S_ISREG(st.st_mode))
            r = tar_copy(a, &b, f, it.size, l.v[i], buf, err);
    }
    if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
        r = tar_error(a, &b, "closing the archive", err);
    if (a)
        archive_write_free(a);
    if (b.raw)
        seed_sha256_free(b.raw);
    if (b.out)
        seed_sha256_free(b.out);
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i]);
    free(l.v);
    return r;
}
