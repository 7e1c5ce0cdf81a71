/* A client of the OCI distribution API (distribution-spec v1.1) over libcurl: image
 * references, the /v2/ ping and its challenge, Basic and Bearer auth (tokens cached per
 * scope), manifests and blobs (HEAD, GET, monolithic and chunked uploads, cross-
 * repository mounts). Every failure names the registry, the request and the answer. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "image/auth.h"
#include "image/manifest.h"

typedef struct seed_image_ref {
    char *host; /* registry host[:port], as in URLs: registry-1.docker.io for docker.io */
    char *name; /* the reference's registry as written (docker.io), for credentials */
    char *repo; /* library/alpine */
    char *tag;  /* NULL when only a digest is given */
    char *digest;
} seed_image_ref;

/* host[:port]/repo[:tag|@digest]; docker.io short names (alpine, user/app) become
 * registry-1.docker.io/library/alpine and .../user/app; the tag defaults to latest. */
int seed_image_ref_parse(const char *s, seed_image_ref *ret, seed_error **err);
void seed_image_ref_done(seed_image_ref *r);

typedef struct seed_registry_opts {
    const char *ca_cert; /* a PEM bundle trusted instead of the system's CAs */
    bool insecure;       /* TLS without verification, and plain HTTP when the registry has no TLS */
    const seed_creds *creds;
    unsigned timeout_s; /* a request that moves no byte for this long fails (default 30) */
    /* Progress of an upload (blob digest, bytes sent, total), called often. */
    void (*progress)(void *userdata, const char *digest, uint64_t done, uint64_t total);
    void *userdata;
} seed_registry_opts;

typedef struct seed_registry seed_registry;

/* Connect to host and learn how it authenticates (GET /v2/). */
int seed_registry_open(const char *host, const seed_registry_opts *o, seed_registry **ret, seed_error **err);
void seed_registry_free(seed_registry *r);
DEFINE_CLEANUP_FUNC(seed_registry, seed_registry_free)
/* "https" or "http": what the registry was reached with. */
const char *seed_registry_scheme(const seed_registry *r);

/* 1 when repo has the blob, 0 when not. */
int seed_registry_blob_exists(seed_registry *r, const char *repo, const char *digest, seed_error **err);
/* Mount digest from repository from into repo: 1 when mounted; 0 when the registry
 * declined (it then opened an upload, *ret_location, for seed_registry_blob_upload). */
int seed_registry_blob_mount(seed_registry *r, const char *repo, const char *digest, const char *from,
                             char **ret_location, seed_error **err);
/* Upload size bytes of fd from off as blob digest: one PUT when size is at most
 * chunk_size (0: always one), else PATCHes of chunk_size bytes. The bytes are hashed as
 * they go: when they do not hash to digest the last piece is never sent and the
 * upload fails with -EBADMSG naming the blob and where (what). */
int seed_registry_blob_upload(seed_registry *r, const char *repo, const char *digest, int fd, off_t off,
                              uint64_t size, uint64_t chunk_size, const char *location, const char *what,
                              seed_error **err);
/* GET a blob of at most max bytes, its digest checked. */
int seed_registry_blob_get(seed_registry *r, const char *repo, const char *digest, size_t max, char **ret,
                           size_t *ret_len, seed_error **err);
/* GET a manifest or index by tag or digest; *ret_digest is the digest of the bytes
 * (checked against a digest reference and the Docker-Content-Digest header). */
int seed_registry_manifest_get(seed_registry *r, const char *repo, const char *reference, char **ret,
                               size_t *ret_len, char **ret_type, char ret_digest[SEED_DIGEST_LEN],
                               seed_error **err);
/* PUT a manifest under reference (a tag or its digest). */
int seed_registry_manifest_put(seed_registry *r, const char *repo, const char *reference,
                               const char *media_type, const char *body, size_t len, seed_error **err);
