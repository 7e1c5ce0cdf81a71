/* A local image to push or inspect: an OCI image layout (a directory with oci-layout,
 * index.json and blobs/sha256/...), an oci-archive (a tar of one) or a docker-archive
 * (docker save's tar: manifest.json, a config and layer tars). Archives are read in
 * place (tar members are stored whole), blobs never copied. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "image/manifest.h"

typedef enum seed_image_src_kind {
    SEED_IMAGE_SRC_LAYOUT,
    SEED_IMAGE_SRC_OCI_ARCHIVE,
    SEED_IMAGE_SRC_DOCKER_ARCHIVE,
} seed_image_src_kind;

typedef struct seed_tar_member seed_tar_member;

typedef struct seed_image_src {
    seed_image_src_kind kind;
    char *path;
    int fd; /* the layout directory or the archive */
    seed_tar_member *members;
    size_t n_members;
    /* The manifest as pushed: the layout's bytes, or for a docker-archive an OCI
     * manifest written for it. */
    char *manifest;
    size_t manifest_len;
    char manifest_digest[SEED_DIGEST_LEN];
    seed_image_manifest m;
    char *config; /* the configuration blob, read and verified */
    size_t config_len;
    char **docker_files; /* docker-archive: the member of m.layers[i]; [n_layers]: the configuration's */
    size_t n_docker_files;
} seed_image_src;

/* Open SRC: a directory (an OCI layout; "DIR:TAG" picks the manifest whose ref.name
 * annotation is TAG when the index has several) or a tar file (oci-archive or
 * docker-archive, told apart by their contents). The manifest and configuration are
 * read and their digests checked; layer blobs are checked for their size here and for
 * their digest when read (seed_image_src_verify, or while uploading). */
int seed_image_src_open(const char *src, seed_image_src **ret, seed_error **err);
void seed_image_src_free(seed_image_src *s);
DEFINE_CLEANUP_FUNC(seed_image_src, seed_image_src_free)

/* Where the content of the blob with digest d lies: in *ret_fd (the caller's to close;
 * read it with pread) from *ret_off for *ret_size bytes. -ENOENT naming the blob. */
int seed_image_src_blob(const seed_image_src *s, const char *digest, int *ret_fd, off_t *ret_off,
                        uint64_t *ret_size, seed_error **err);

/* Read a whole blob and check its digest: -EBADMSG naming the blob and where it lies
 * when the content does not hash to its digest. */
int seed_image_src_verify(const seed_image_src *s, const char *digest, seed_error **err);
