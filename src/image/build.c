/* seed image build: an instance's root directory, seed's own init and its
 * configuration, as an OCI image written to a temporary name beside the output and
 * renamed into place once complete. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "image/nix.h"
#include "image/oci.h"
#include "init/config.h"

#ifndef SEED_HOST_SYSTEM
#if defined(__x86_64__)
#define SEED_HOST_SYSTEM "x86_64-linux"
#elif defined(__aarch64__)
#define SEED_HOST_SYSTEM "aarch64-linux"
#elif defined(__riscv) && __riscv_xlen == 64
#define SEED_HOST_SYSTEM "riscv64-linux"
#elif defined(__i386__)
#define SEED_HOST_SYSTEM "i686-linux"
#else
#define SEED_HOST_SYSTEM "unknown-linux"
#endif
#endif

#define IMAGE_GRACE_MS 10000 /* seed-init's grace period in the image, as a node's default */

static const char *const formats[] = {"oci", "oci-archive", "docker-archive"};

const char *seed_image_format_to_string(seed_image_format f) {
    return f < _SEED_IMAGE_FORMAT_MAX ? formats[f] : "?";
}

int seed_image_format_from_string(const char *s) {
    for (size_t i = 0; i < ELEMENTSOF(formats); i++)
        if (streq(s, formats[i]))
            return (int)i;
    return -EINVAL;
}

void seed_image_result_clear(seed_image_result *r) {
    for (size_t i = 0; i < r->n_layers; i++) {
        for (size_t k = 0; k < r->layers[i].n_holds; k++)
            free(r->layers[i].holds[k]);
        free(r->layers[i].holds);
    }
    free(r->layers);
    *r = (seed_image_result){0};
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void rm_rf(const char *path) {
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static int write_at(int dirfd, const char *name, const char *text, seed_error **err) {
    _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    size_t n = strlen(text);
    if (fd < 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) < 0)
        return seed_error_setp(err, errno ?: ENOSPC, "writing %s of the image", name);
    return 0;
}

/* Write text as a blob and give its digest and size. */
static int put_blob(int blobdir, const char *text, char digest[SEED_IMAGE_DIGEST_LEN], uint64_t *size,
                    seed_error **err) {
    *size = strlen(text);
    return seed_blob_write_data(blobdir, text, *size, digest, err);
}

static int add_layer(seed_image_result *res, seed_image_layer *l) {
    seed_image_layer *nl = realloc(res->layers, (res->n_layers + 1) * sizeof(*nl));
    if (!nl)
        return -ENOMEM;
    res->layers = nl;
    res->layers[res->n_layers++] = *l;
    *l = (seed_image_layer){0};
    return 0;
}

static void layer_clear(seed_image_layer *l) {
    for (size_t k = 0; k < l->n_holds; k++)
        free(l->holds[k]);
    free(l->holds);
    *l = (seed_image_layer){0};
}

/* What a NixOS system in an image needs from its closure: its init, and every store
 * path the spec names (in env) inside the closure. */
static int check_closure(const seed_instance *s, const seed_nix_closure *c, seed_error **err) {
    const char *what = s->toplevel ? "toplevel" : "root", *path = s->toplevel ? s->toplevel : s->root_path;
    if (s->toplevel) {
        _cleanup_free_ char *init = NULL;
        struct stat st;
        if (asprintf(&init, "%s/init", s->toplevel) < 0)
            return seed_error_set(err, ENOMEM, "out of memory");
        if (stat(init, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR))
            return seed_error_set(err, EINVAL,
                                  "toplevel %s has no executable init, so it is not a NixOS system: give "
                                  "config.system.build.toplevel (it has <path>/init)",
                                  s->toplevel);
    }
    for (size_t i = 0; i < s->n_env; i++) {
        _cleanup_free_ char *out = NULL;
        if (seed_nix_first_outside(c, s->env[i].value, &out) < 0)
            return seed_error_set(err, ENOMEM, "out of memory");
        if (out)
            return seed_error_set(err, EINVAL,
                                  "%s.env.%s names %s, a store path outside the closure of %s %s: the "
                                  "image would not hold it (make %s depend on it)",
                                  s->name, s->env[i].key, out, what, path, path);
    }
    for (size_t i = 0; i < s->n_processes; i++) {
        const seed_process *p = &s->processes[i];
        for (size_t k = 0; k < p->n_command; k++) {
            _cleanup_free_ char *out = NULL;
            if (seed_nix_first_outside(c, p->command[k], &out) < 0)
                return seed_error_set(err, ENOMEM, "out of memory");
            if (out)
                return seed_error_set(err, EINVAL,
                                      "%s.processes.%s.command names %s, a store path outside the closure of "
                                      "%s %s: the image would not hold it (make %s depend on it)",
                                      s->name, p->name, out, what, path, path);
        }
    }
    return 0;
}

static int cmp_layer_file(const void *a, const void *b) {
    return strcmp(((const seed_layer_file *)a)->path, ((const seed_layer_file *)b)->path);
}

/* A store root's links: / to its top-level entries and /etc to its etc/ entries (as the
 * node lays them out), and the accounts every system has when it brings none. */
static int write_store_links(const seed_instance *s, int blobdir, uint64_t epoch, seed_image_layer *l,
                             seed_error **err) {
    static const char *const own[] = {"nix", "proc", "sys", "dev", "tmp", "run", "seed", "etc"};
    static const char *const runtime_files[] = {"hosts", "hostname", "resolv.conf"};
    static const char passwd[] =
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n";
    static const char group[] = "root:x:0:\nnogroup:x:65534:\n";
    seed_layer_file f[1024];
    char *owned[1024];
    size_t n = 0, n_owned = 0;
    int r = 0;
    f[n++] = (seed_layer_file){.path = "etc", .mode = S_IFDIR | 0755};
    for (int pass = 0; pass < 2 && r == 0; pass++) {
        _cleanup_free_ char *dir = NULL;
        if (asprintf(&dir, "%s%s", s->root_path, pass ? "/etc" : "") < 0)
            return seed_error_set(err, ENOMEM, "out of memory");
        struct dirent **names = NULL;
        int k = scandir(dir, &names, NULL, alphasort);
        for (int i = 0; i < k; i++) {
            const char *e = names[i]->d_name;
            bool skip = streq(e, ".") || streq(e, "..");
            for (size_t j = 0; !pass && j < ELEMENTSOF(own); j++)
                skip = skip || streq(e, own[j]);
            /* container runtimes mount their own over these */
            for (size_t j = 0; pass && j < ELEMENTSOF(runtime_files); j++)
                skip = skip || streq(e, runtime_files[j]);
            char *path = NULL, *target = NULL;
            if (!skip && n + 3 < ELEMENTSOF(f) && n_owned + 2 < ELEMENTSOF(owned) &&
                asprintf(&path, "%s%s", pass ? "etc/" : "", e) >= 0 &&
                asprintf(&target, "%s/%s", dir, e) >= 0) {
                owned[n_owned++] = path;
                owned[n_owned++] = target;
                f[n++] = (seed_layer_file){.path = path, .mode = S_IFLNK | 0777, .link = target};
            } else if (!skip) {
                free(path);
                r = seed_error_set(err, E2BIG, "%s has more entries than an image's links can hold", dir);
            }
            free(names[i]);
        }
        free(names);
    }
    _cleanup_free_ char *has_passwd = NULL, *has_group = NULL;
    if (r == 0 && asprintf(&has_passwd, "%s/etc/passwd", s->root_path) >= 0 &&
        asprintf(&has_group, "%s/etc/group", s->root_path) >= 0 && access(has_passwd, F_OK) < 0 &&
        access(has_group, F_OK) < 0) {
        f[n++] = (seed_layer_file){
            .path = "etc/group", .mode = S_IFREG | 0644, .data = group, .len = strlen(group)};
        f[n++] = (seed_layer_file){
            .path = "etc/passwd", .mode = S_IFREG | 0644, .data = passwd, .len = strlen(passwd)};
    }
    if (r == 0) {
        qsort(f, n, sizeof(*f), cmp_layer_file);
        r = seed_layer_write_files(f, n, blobdir, epoch, l, err);
    }
    if (r == 0) {
        char *h = strdup("/ -> store root");
        char **hv = h ? malloc(sizeof(char *)) : NULL;
        if (hv) {
            hv[0] = h;
            l->holds = hv;
            l->n_holds = 1;
        } else {
            free(h);
        }
    }
    for (size_t i = 0; i < n_owned; i++)
        free(owned[i]);
    return r;
}

/* Everything that goes into the layout directory at dirfd. */
static int build_layout(const seed_instance *s, const seed_image_opts *o, int dirfd, seed_image_result *res,
                        seed_error **err) {
    if (mkdirat(dirfd, "blobs", 0755) < 0 || mkdirat(dirfd, "blobs/sha256", 0755) < 0)
        return seed_error_setp(err, errno, "creating the image directory");
    _cleanup_close_ int blobdir = openat(dirfd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (blobdir < 0)
        return seed_error_setp(err, errno, "opening the image directory");

    /* The payload: a root directory, or a Nix store path with its closure. */
    _cleanup_close_ int rootfd = -1;
    _cleanup_(seed_tree_freep) seed_tree *t = NULL;
    size_t n;
    int r;
    const char *store_root = s->toplevel                       ? s->toplevel
                             : s->root_kind == SEED_ROOT_STORE ? s->root_path
                                                               : NULL;
    _cleanup_(seed_nix_closure_freep) seed_nix_closure *c = NULL;
    if (store_root) {
        r = seed_nix_closure_of(s->toplevel ? "toplevel" : "root", store_root, &c, err);
        if (r < 0)
            return r;
        r = check_closure(s, c, err);
        if (r < 0)
            return r;
        _cleanup_free_ const char **paths = malloc(c->n * sizeof(char *));
        _cleanup_free_ size_t *rank = NULL;
        if (!paths || seed_nix_rank(c, &rank) < 0)
            return seed_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < c->n; i++)
            paths[i] = c->p[i].path;
        rootfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
            return seed_error_setp(err, errno, "opening /");
        r = seed_tree_scan_store(rootfd, paths, c->n, &t, err);
        if (r < 0)
            return r;
        /* a store root's links from / take one more layer */
        n = seed_tree_split_ranked(t, rank, c->n, o->max_layers - (s->toplevel ? 1 : 2));
        if (n == 0)
            return seed_error_set(err, EIO, "the store changed while the image was built (%s)", store_root);
    } else {
        rootfd = open(s->root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
            return seed_error_setp(err, errno, "opening the root directory %s", s->root);
        r = seed_tree_scan(rootfd, s->root, &t, err);
        if (r < 0)
            return r;
        n = seed_tree_split(t, o->max_layers - 1);
    }
    seed_image_layer l = {0};
    for (size_t k = 0; k < n; k++) {
        r = seed_tree_write_layer(t, k, rootfd, blobdir, o->epoch, &l, err);
        if (r == 0 && add_layer(res, &l) < 0)
            r = seed_error_set(err, ENOMEM, "out of memory");
        if (r < 0) {
            layer_clear(&l);
            return r;
        }
    }

    if (s->root_kind == SEED_ROOT_STORE) {
        r = write_store_links(s, blobdir, o->epoch, &l, err);
        if (r == 0 && add_layer(res, &l) < 0)
            r = seed_error_set(err, ENOMEM, "out of memory");
        if (r < 0) {
            layer_clear(&l);
            return r;
        }
    }

    /* seed's own files, the small last layer: the init, the shoot client, and the
     * init's configuration (what a node would hand it on fd 3). */
    _cleanup_free_ char *initcfg = NULL;
    if (seed_instance_init_config(s, o->ns, NULL, IMAGE_GRACE_MS, &initcfg) < 0)
        return seed_error_set(err, ENOMEM, "out of memory");
    const seed_layer_file own[] = {
        {.path = "seed", .mode = S_IFDIR | 0755},
        {.path = "seed/bin", .mode = S_IFDIR | 0755},
        {.path = "seed/bin/seed-init", .mode = S_IFREG | 0755, .src_path = o->init_path},
        {.path = "seed/bin/seed-shoot", .mode = S_IFREG | 0755, .src_path = o->shoot_path},
        {.path = &SEED_IMAGE_CONFIG_PATH[1], .mode = S_IFREG | 0644, .data = initcfg, .len = strlen(initcfg)},
    };
    r = seed_layer_write_files(own, ELEMENTSOF(own), blobdir, o->epoch, &l, err);
    if (r == 0) {
        char *h = strdup("/seed");
        char **hv = h ? malloc(sizeof(char *)) : NULL;
        if (hv) {
            hv[0] = h;
            l.holds = hv;
            l.n_holds = 1;
        } else {
            free(h);
        }
        if (!hv || add_layer(res, &l) < 0)
            r = seed_error_set(err, ENOMEM, "out of memory");
    }
    if (r < 0) {
        layer_clear(&l);
        return r;
    }

    _cleanup_free_ char *config = NULL, *manifest = NULL, *index = NULL;
    uint64_t config_size;
    if (seed_oci_config(s, o, res->layers, res->n_layers, &config) < 0)
        return seed_error_set(err, ENOMEM, "out of memory");
    r = put_blob(blobdir, config, res->config_digest, &config_size, err);
    if (r < 0)
        return r;
    if (seed_oci_manifest(res->config_digest, config_size, res->layers, res->n_layers, &manifest) < 0)
        return seed_error_set(err, ENOMEM, "out of memory");
    r = put_blob(blobdir, manifest, res->manifest_digest, &res->manifest_size, err);
    if (r < 0)
        return r;
    if (seed_oci_index(res->manifest_digest, res->manifest_size, o->tag ?: "latest", &index) < 0)
        return seed_error_set(err, ENOMEM, "out of memory");
    r = write_at(dirfd, "index.json", index, err);
    if (r == 0)
        r = write_at(dirfd, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", err);
    if (r == 0 && o->format == SEED_IMAGE_DOCKER_ARCHIVE) {
        /* docker load reads manifest.json; with the OCI files beside it the archive is
         * what docker save writes since Docker 25. */
        _cleanup_free_ char *dm = NULL, *repo_tag = NULL;
        if (asprintf(&repo_tag, "%s:%s", s->name, o->tag ?: "latest") < 0 ||
            seed_docker_manifest(res->config_digest, repo_tag, res->layers, res->n_layers, &dm) < 0)
            return seed_error_set(err, ENOMEM, "out of memory");
        r = write_at(dirfd, "manifest.json", dm, err);
    }
    if (r == 0 && fsync(blobdir) < 0)
        r = seed_error_setp(err, errno, "writing the image");
    return r;
}

/* Replace the layout directory out with tmp: out must be absent or a layout itself. */
static int replace_dir(const char *tmp, const char *out, seed_error **err) {
    if (rename(tmp, out) == 0)
        return 0;
    if (errno != ENOTEMPTY && errno != EEXIST)
        return seed_error_setp(err, errno, "renaming the image to %s", out);
    _cleanup_free_ char *old = NULL;
    if (asprintf(&old, "%s.seed-old-%d", out, (int)getpid()) < 0)
        return seed_error_set(err, ENOMEM, "out of memory");
    if (rename(out, old) < 0)
        return seed_error_setp(err, errno, "moving the old image %s aside", out);
    if (rename(tmp, out) < 0) {
        int e = errno;
        rename(old, out);
        return seed_error_setp(err, e, "renaming the image to %s", out);
    }
    rm_rf(old);
    return 0;
}

/* What is at the output now: nothing, or what this format would replace. */
static int check_output(const seed_image_opts *o, seed_error **err) {
    struct stat st;
    if (lstat(o->output, &st) < 0)
        return errno == ENOENT ? 0 : seed_error_setp(err, errno, "%s", o->output);
    if (o->format == SEED_IMAGE_OCI) {
        _cleanup_free_ char *marker = NULL;
        if (asprintf(&marker, "%s/oci-layout", o->output) < 0)
            return seed_error_set(err, ENOMEM, "out of memory");
        if (!S_ISDIR(st.st_mode) || access(marker, F_OK) < 0)
            return seed_error_set(
                err, EEXIST, "%s exists and is not an OCI image layout: remove it or give another -o PATH",
                o->output);
        return 0;
    }
    if (!S_ISREG(st.st_mode))
        return seed_error_set(err, EEXIST, "%s exists and is not a file: remove it or give another -o PATH",
                              o->output);
    return 0;
}

int seed_image_build(const seed_instance *s, const seed_image_opts *o, seed_image_result *ret,
                     seed_error **err) {
    *ret = (seed_image_result){0};
    if (s->root_kind == SEED_ROOT_HOST)
        return seed_error_set(
            err, EINVAL,
            "instance %s has \"root\": \"host\", the node's own /usr, which cannot go into an "
            "image: give it a root directory of the project instead (\"root\": \"rootfs\", a "
            "directory made by mmdebstrap, buildroot or a copied Nix closure)",
            s->name);
    if (!streq(s->system, SEED_HOST_SYSTEM) || !seed_oci_arch(s->system))
        return seed_error_set(
            err, ENOTSUP,
            "instance %s is for system %s, but this seed's seed-init is built for %s: build the "
            "image with a seed built for %s",
            s->name, s->system, SEED_HOST_SYSTEM, s->system);
    int r = check_output(o, err);
    if (r < 0)
        return r;

    /* The temporary names sit beside the output, on the same filesystem, hidden. */
    _cleanup_free_ char *copy = strdup(o->output), *copy2 = strdup(o->output);
    if (!copy || !copy2)
        return seed_error_set(err, ENOMEM, "out of memory");
    const char *dir = dirname(copy), *base = basename(copy2);
    _cleanup_free_ char *tmpdir = NULL, *tmpfile = NULL;
    if (asprintf(&tmpdir, "%s/.%s.seed-tmp-%d", dir, base, (int)getpid()) < 0 ||
        asprintf(&tmpfile, "%s/.%s.seed-tmp-%d.tar", dir, base, (int)getpid()) < 0)
        return seed_error_set(err, ENOMEM, "out of memory");
    if (mkdir(tmpdir, 0755) < 0)
        return seed_error_setp(err, errno, "creating %s", tmpdir);
    int dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        r = seed_error_setp(err, errno, "opening %s", tmpdir);
        rm_rf(tmpdir);
        return r;
    }
    r = build_layout(s, o, dirfd, ret, err);
    if (r == 0 && o->format == SEED_IMAGE_OCI) {
        r = replace_dir(tmpdir, o->output, err);
    } else if (r == 0) {
        int fd = open(tmpfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            r = seed_error_setp(err, errno, "creating %s", tmpfile);
        else {
            r = seed_tar_directory(dirfd, fd, o->epoch, err);
            if (r == 0 && fsync(fd) < 0)
                r = seed_error_setp(err, errno, "writing %s", tmpfile);
            if (close(fd) < 0 && r == 0)
                r = seed_error_setp(err, errno, "writing %s", tmpfile);
            if (r == 0 && rename(tmpfile, o->output) < 0)
                r = seed_error_setp(err, errno, "renaming the image to %s", o->output);
            if (r < 0)
                unlink(tmpfile);
        }
    }
    close(dirfd);
    rm_rf(tmpdir); /* gone already when renamed into place */
    if (r < 0)
        seed_image_result_clear(ret);
    return r;
}
