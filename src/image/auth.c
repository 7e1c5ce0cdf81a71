/* WWW-Authenticate parsing and the credential files skopeo and docker read. The
 * parser is fuzzed (fuzz/fuzz-www-authenticate.c): it sees whatever a registry sends. */
#include "image/auth.h"

#include <ctype.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "shoot/request.h"

#define MAX_HEADER 8192

void seed_www_auth_done(seed_www_auth *a) {
    free(a->scheme);
    free(a->realm);
    free(a->service);
    free(a->scope);
    free(a->error);
    *a = (seed_www_auth){0};
}

/* RFC 7230 tchar. */
static bool is_tchar(char c) {
    return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ows(const char *p) {
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int seed_www_auth_parse(const char *header, seed_www_auth *ret, seed_error **err) {
    if (strlen(header) > MAX_HEADER)
        return seed_error_set(err, EINVAL, "WWW-Authenticate header longer than %d bytes", MAX_HEADER);
    seed_www_auth a = {0};
    const char *p = skip_ows(header);
    const char *s = p;
    while (is_tchar(*p))
        p++;
    if (p == s) {
        return seed_error_set(err, EINVAL,
                              "WWW-Authenticate header '%.80s' names no scheme (expected Basic or Bearer)",
                              header);
    }
    a.scheme = strndup(s, (size_t)(p - s));
    if (!a.scheme)
        return -ENOMEM;
    int r = 0;
    p = skip_ows(p);
    while (*p) {
        /* auth-param: token BWS "=" BWS ( token / quoted-string ) */
        const char *n = p;
        while (is_tchar(*p))
            p++;
        size_t nlen = (size_t)(p - n);
        p = skip_ows(p);
        if (nlen == 0 || *p != '=') {
            if (nlen > 0 && (*p == ' ' || *p == '\0' || is_tchar(*p)))
                break; /* a second challenge begins: only the first one is used */
            r = seed_error_set(err, EINVAL, "WWW-Authenticate header '%.80s': expected name=value at '%.20s'",
                               header, n);
            goto fail;
        }
        p = skip_ows(p + 1);
        _cleanup_free_ char *v = malloc(strlen(p) + 1);
        if (!v) {
            r = -ENOMEM;
            goto fail;
        }
        size_t vlen = 0;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0') {
                    r = seed_error_set(err, EINVAL,
                                       "WWW-Authenticate header '%.80s': unterminated quoted string", header);
                    goto fail;
                }
                if (*p == '"') {
                    p++;
                    break;
                }
                if (*p == '\\' && p[1])
                    p++;
                v[vlen++] = *p++;
            }
        } else {
            while (is_tchar(*p) || *p == '/' || *p == ':' || *p == '=')
                v[vlen++] = *p++;
        }
        v[vlen] = '\0';
        char **slot = NULL;
        if (nlen == 5 && strncasecmp(n, "realm", 5) == 0)
            slot = &a.realm;
        else if (nlen == 7 && strncasecmp(n, "service", 7) == 0)
            slot = &a.service;
        else if (nlen == 5 && strncasecmp(n, "scope", 5) == 0)
            slot = &a.scope;
        else if (nlen == 5 && strncasecmp(n, "error", 5) == 0)
            slot = &a.error;
        if (slot) {
            free(*slot);
            *slot = TAKE_PTR(v);
        }
        p = skip_ows(p);
        if (*p == ',')
            p = skip_ows(p + 1);
        else if (*p) {
            r = seed_error_set(err, EINVAL, "WWW-Authenticate header '%.80s': expected ',' at '%.20s'",
                               header, p);
            goto fail;
        }
    }
    *ret = a;
    return 0;
fail:
    seed_www_auth_done(&a);
    return r;
}

void seed_creds_done(seed_creds *c) {
    free(c->user);
    if (c->pass)
        explicit_bzero(c->pass, strlen(c->pass));
    free(c->pass);
    *c = (seed_creds){0};
}

int seed_creds_parse(const char *s, seed_creds *ret, seed_error **err) {
    const char *colon = strchr(s, ':');
    if (!colon || colon == s)
        return seed_error_set(err, EINVAL, "credentials must be USER:PASS, got no user or no ':'");
    seed_creds c = {strndup(s, (size_t)(colon - s)), strdup(colon + 1)};
    if (!c.user || !c.pass) {
        seed_creds_done(&c);
        return -ENOMEM;
    }
    *ret = c;
    return 0;
}

static int decode_auth(const char *file, const char *key, const char *b64, seed_creds *ret,
                       seed_error **err) {
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    if (seed_base64_decode(b64, strlen(b64), &buf, &len) < 0)
        return seed_error_set(err, EINVAL, "%s: auths.\"%s\".auth is not base64 of USER:PASS", file, key);
    if (memchr(buf, '\0', len) || !strchr(buf, ':'))
        return seed_error_set(err, EINVAL, "%s: auths.\"%s\".auth does not decode to USER:PASS", file, key);
    int r = seed_creds_parse(buf, ret, err);
    explicit_bzero(buf, len);
    return r;
}

static int lookup_file(const char *file, bool must_exist, const char *host, const char *repo, seed_creds *ret,
                       seed_error **err) {
    if (!must_exist && access(file, F_OK) < 0)
        return 0;
    json_error_t je;
    json_t *j = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        if (access(file, R_OK) < 0)
            return seed_error_setp(err, errno, "cannot read auth file %s", file);
        return seed_error_set(err, EINVAL, "auth file %s: %s (line %d)", file, je.text, je.line);
    }
    int r = 0;
    json_t *auths = json_object_get(j, "auths");
    if (auths && !json_is_object(auths)) {
        r = seed_error_set(err, EINVAL, "auth file %s: \"auths\" must be an object", file);
        goto out;
    }
    /* Candidate keys, most specific first: host/repo, host/repo-prefix..., host, then
     * the forms docker writes (https://host, and docker.io's index URL). */
    char key[1024];
    snprintf(key, sizeof(key), "%s/%s", host, repo);
    for (;;) {
        json_t *e = json_object_get(auths, key);
        const char *b64 = json_string_value(json_object_get(e, "auth"));
        if (b64 && *b64) {
            r = decode_auth(file, key, b64, ret, err);
            if (r == 0)
                r = 1;
            goto out;
        }
        char *slash = strrchr(key, '/');
        if (!slash || (size_t)(slash - key) < strlen(host))
            break;
        *slash = '\0';
    }
    bool hub = streq(host, "registry-1.docker.io") || streq(host, "docker.io");
    char forms[6][300];
    size_t nf = 0;
    snprintf(forms[nf++], sizeof(forms[0]), "https://%s", host);
    snprintf(forms[nf++], sizeof(forms[0]), "http://%s", host);
    snprintf(forms[nf++], sizeof(forms[0]), "https://%s/v1/", host);
    if (hub) {
        snprintf(forms[nf++], sizeof(forms[0]), "docker.io");
        snprintf(forms[nf++], sizeof(forms[0]), "https://index.docker.io/v1/");
        snprintf(forms[nf++], sizeof(forms[0]), "index.docker.io");
    }
    for (size_t i = 0; i < nf; i++) {
        const char *b64 = json_string_value(json_object_get(json_object_get(auths, forms[i]), "auth"));
        if (b64 && *b64) {
            r = decode_auth(file, forms[i], b64, ret, err);
            if (r == 0)
                r = 1;
            goto out;
        }
    }
out:
    json_decref(j);
    return r;
}

int seed_creds_lookup(const char *authfile, const char *host, const char *repo, seed_creds *ret,
                      char **ret_file, seed_error **err) {
    char paths[3][4200];
    size_t n = 0;
    bool explicit = false;
    if (authfile) {
        snprintf(paths[n++], sizeof(paths[0]), "%s", authfile);
        explicit = true;
    } else {
        const char *env = getenv("REGISTRY_AUTH_FILE");
        if (env && *env) {
            snprintf(paths[n++], sizeof(paths[0]), "%s", env);
            explicit = true;
        } else {
            const char *rt = getenv("XDG_RUNTIME_DIR");
            if (rt && *rt)
                snprintf(paths[n++], sizeof(paths[0]), "%s/containers/auth.json", rt);
            const char *home = getenv("HOME");
            if (home && *home)
                snprintf(paths[n++], sizeof(paths[0]), "%s/.docker/config.json", home);
        }
    }
    for (size_t i = 0; i < n; i++) {
        int r = lookup_file(paths[i], explicit, host, repo, ret, err);
        if (r != 0) {
            if (r > 0 && ret_file)
                *ret_file = strdup(paths[i]);
            return r;
        }
    }
    return 0;
}
