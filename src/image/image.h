/* Images: an instance of a seed project as a reproducible, layered OCI image
 * (`seed image build`). layer.c scans a root directory and writes normalised tar
 * layers, oci.c the JSON documents, blobs and archives, build.c puts them together. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "spec/spec.h"

#define SEED_IMAGE_DEFAULT_MAX_LAYERS 100
#define SEED_IMAGE_MIN_MAX_LAYERS 2   /* one for the root, one for seed's own files */
#define SEED_IMAGE_MAX_MAX_LAYERS 127 /* what overlayfs-based runtimes stack safely */
/* A directory of the root holding more than this (file sizes added up) is split into
 * its subdirectories, each a layer; smaller ones are one layer (see layer.c). */
#define SEED_IMAGE_SPLIT_BYTES (8u << 20)
#define SEED_IMAGE_DIGEST_LEN 72 /* "sha256:" + 64 hex + NUL */

typedef enum seed_image_format {
    SEED_IMAGE_OCI,            /* an OCI image layout directory */
    SEED_IMAGE_OCI_ARCHIVE,    /* a tar of that directory */
    SEED_IMAGE_DOCKER_ARCHIVE, /* what `docker load` takes */
    _SEED_IMAGE_FORMAT_MAX,
} seed_image_format;

const char *seed_image_format_to_string(seed_image_format f);
int seed_image_format_from_string(const char *s); /* -EINVAL when unknown */

typedef struct seed_image_opts {
    const char *output; /* where the image goes (replaced atomically) */
    seed_image_format format;
    const char *tag;                    /* the reference name in the layout; "latest" when NULL */
    unsigned max_layers;                /* 0: SEED_IMAGE_DEFAULT_MAX_LAYERS */
    uint64_t epoch;                     /* every mtime and the creation time (SOURCE_DATE_EPOCH or 1) */
    const char *uri;                    /* the project's stable URI (labels, SEED_NAMESPACE), or NULL */
    const char *ns;                     /* its namespace, with uri */
    const char *init_path, *shoot_path; /* seed-init and seed-shoot to put in /seed/bin */
} seed_image_opts;

typedef struct seed_image_layer {
    char digest[SEED_IMAGE_DIGEST_LEN];  /* of the gzip'd blob */
    char diff_id[SEED_IMAGE_DIGEST_LEN]; /* of the tar */
    uint64_t size;                       /* of the blob */
    uint64_t content_bytes;              /* the file sizes added up */
    size_t n_entries;
    char **holds; /* what it holds: "/bin", or "/usr/lib/" and a star: the loose files of a split directory */
    size_t n_holds;
} seed_image_layer;

typedef struct seed_image_result {
    char manifest_digest[SEED_IMAGE_DIGEST_LEN];
    uint64_t manifest_size;
    char config_digest[SEED_IMAGE_DIGEST_LEN];
    seed_image_layer *layers;
    size_t n_layers;
} seed_image_result;

void seed_image_result_clear(seed_image_result *r);

/* Build the image of instance s into o->output. On failure nothing is left at
 * o->output (an earlier image there stays as it was) and no temporary file remains. */
int seed_image_build(const seed_instance *s, const seed_image_opts *o, seed_image_result *ret,
                     seed_error **err);

/* ---- between the files of src/image ---- */

/* A blob being written: gzip'd (or not), hashed, into a file of the layout. */
typedef struct seed_blob seed_blob;

/* The root's entries, scanned and checked once, split into layers (layer.c). */
typedef struct seed_tree seed_tree;

int seed_tree_scan(int rootfd, const char *root_name, seed_tree **ret, seed_error **err);
void seed_tree_free(seed_tree *t);
DEFINE_CLEANUP_FUNC(seed_tree, seed_tree_free)
/* A Nix closure (store paths /nix/store/<hash>-<name>, sorted) below /nix/store of
 * rootfd (the host's /), with /nix and /nix/store; a symlink to a store path that is
 * not one of paths is an error. Store modes are kept (0555, 0444). */
int seed_tree_scan_store(int rootfd, const char *const *paths, size_t n, seed_tree **ret, seed_error **err);
/* Split a closure scanned by seed_tree_scan_store into at most max_layers layers: the
 * paths in rank order (indices into paths) a layer each, the rest sharing the last. */
size_t seed_tree_split_ranked(seed_tree *t, const size_t *rank, size_t n_paths, size_t max_layers);
/* Split into at most max_layers layers; returns the count. */
size_t seed_tree_split(seed_tree *t, size_t max_layers);
/* Write layer k (0-based, < the count) as a gzip'd tar blob into dirfd (the layout's
 * blobs/sha256), filling the digests and size of *l. */
int seed_tree_write_layer(seed_tree *t, size_t k, int rootfd, int blobdir, uint64_t epoch,
                          seed_image_layer *l, seed_error **err);

/* One file of seed's own layer: content in memory or from a file. */
typedef struct seed_layer_file {
    const char *path; /* "seed/bin/seed-init" */
    unsigned mode;
    const char *data; /* NULL: read src_path */
    size_t len;
    const char *src_path;
    const char *link; /* S_IFLNK: the target */
} seed_layer_file;

/* A layer of directories and files given here (seed's own), entries sorted by path. */
int seed_layer_write_files(const seed_layer_file *files, size_t n, int blobdir, uint64_t epoch,
                           seed_image_layer *l, seed_error **err);

/* Write data as a blob into blobdir; digest "sha256:<hex>". */
int seed_blob_write_data(int blobdir, const void *data, size_t len, char digest[SEED_IMAGE_DIGEST_LEN],
                         seed_error **err);

/* Tar the directory tree at dirfd (an OCI layout) into fd, sorted and normalised;
 * skip: a top-level name left out (NULL: none). */
int seed_tar_directory(int dirfd, int fd, uint64_t epoch, seed_error **err);
