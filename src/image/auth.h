/* Registry authentication: the WWW-Authenticate challenge (RFC 7235: Basic and Bearer
 * with realm, service, scope), and credentials as skopeo and docker find them
 * (--creds, --authfile, $REGISTRY_AUTH_FILE, containers' auth.json, ~/.docker/config.json). */
#pragma once

#include <stddef.h>

#include "base/error.h"

typedef struct seed_www_auth {
    char *scheme;                          /* as sent: "Basic", "Bearer", ... */
    char *realm, *service, *scope, *error; /* NULL when absent */
} seed_www_auth;

/* Parse the first challenge of a WWW-Authenticate header value. Fails with -EINVAL
 * (a message saying what is wrong) on a malformed header. */
int seed_www_auth_parse(const char *header, seed_www_auth *ret, seed_error **err);
void seed_www_auth_done(seed_www_auth *a);

typedef struct seed_creds {
    char *user, *pass; /* both NULL: none */
} seed_creds;

void seed_creds_done(seed_creds *c);
/* "USER:PASS" (the password may contain ':'). */
int seed_creds_parse(const char *s, seed_creds *ret, seed_error **err);
/* The credentials for host (as in the image reference, host[:port]) and repository
 * from authfile, or when authfile is NULL from the first of $REGISTRY_AUTH_FILE,
 * $XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json that exists. The most
 * specific key wins ("host/repo/..." before "host"; docker.io's legacy keys too).
 * Returns 1 (found), 0 (none: *ret untouched), or a negative errno for an unreadable
 * or malformed file named explicitly or found. *ret_file, when given, names the file. */
int seed_creds_lookup(const char *authfile, const char *host, const char *repo, seed_creds *ret,
                      char **ret_file, seed_error **err);
