/* The distribution API client (see registry.h). One curl handle per registry, reset
 * before each request so connections are reused and no option leaks into the next. */
#include "image/registry.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <string.h>

#include "base/hash.h"
#include "shoot/request.h"

#define DEFAULT_TIMEOUT_S 30
#define ERROR_BODY_MAX (64u << 10)

typedef struct token {
    char *scope, *token;
} token;

struct seed_registry {
    CURL *curl;
    char *host, *base; /* base: scheme://host */
    seed_registry_opts o;
    enum { AUTH_NONE, AUTH_BASIC, AUTH_BEARER } auth;
    char *realm, *service;
    token *tokens;
    size_t n_tokens;
    char curl_error[CURL_ERROR_SIZE];
};

/* ---- references ---- */

void seed_image_ref_done(seed_image_ref *r) {
    free(r->host);
    free(r->name);
    free(r->repo);
    free(r->tag);
    free(r->digest);
    *r = (seed_image_ref){0};
}

static bool repo_valid(const char *s) {
    /* distribution's grammar: lower-case components of [a-z0-9] joined by . _ __ - , separated by / */
    if (!*s || strlen(s) > 255)
        return false;
    for (const char *c = s; *c; c++) {
        bool alnum = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9');
        if (alnum)
            continue;
        if (!strchr("._-/", *c) || c == s || !c[1] ||
            !((c[-1] >= 'a' && c[-1] <= 'z') || (c[-1] >= '0' && c[-1] <= '9') ||
              (*c == '_' && c[-1] == '_') || (*c == '-' && c[-1] == '-')))
            return false;
    }
    return true;
}

static bool tag_valid(const char *t) {
    size_t n = strlen(t);
    if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
        return false;
    for (; *t; t++)
        if (!isalnum((unsigned char)*t) && !strchr("_.-", *t))
            return false;
    return true;
}

int seed_image_ref_parse(const char *s, seed_image_ref *ret, seed_error **err) {
    if (strncmp(s, "docker://", 9) == 0)
        s += 9;
    _cleanup_free_ char *copy = strdup(s);
    if (!copy)
        return -ENOMEM;
    seed_image_ref r = {0};
    char *digest = strchr(copy, '@');
    if (digest) {
        *digest++ = '\0';
        if (!seed_image_digest_valid(digest))
            return seed_error_set(
                err, EINVAL, "image reference '%s': digest '%s' is not sha256:<64 hex digits>", s, digest);
    }
    /* The first component is a registry when it has a '.' or ':' or is localhost. */
    char *slash = strchr(copy, '/');
    const char *host = "docker.io";
    char *path = copy;
    if (slash && (memchr(copy, '.', (size_t)(slash - copy)) || memchr(copy, ':', (size_t)(slash - copy)) ||
                  strncmp(copy, "localhost/", 10) == 0)) {
        *slash = '\0';
        host = copy;
        path = slash + 1;
    }
    char *tag = NULL;
    char *colon = strrchr(path, ':');
    if (colon) {
        *colon = '\0';
        tag = colon + 1;
        if (!tag_valid(tag))
            return seed_error_set(err, EINVAL,
                                  "image reference '%s': tag '%s' is not valid (letters, digits, _ . -; "
                                  "at most 128)",
                                  s, tag);
    }
    if (!*host || strpbrk(host, " /?#@"))
        return seed_error_set(err, EINVAL, "image reference '%s': '%s' is not a registry host[:port]", s,
                              host);
    bool hub = streq(host, "docker.io") || streq(host, "index.docker.io");
    _cleanup_free_ char *repo = NULL;
    if (hub && !strchr(path, '/')) {
        if (asprintf(&repo, "library/%s", path) < 0)
            return -ENOMEM;
    } else if (!(repo = strdup(path)))
        return -ENOMEM;
    if (!repo_valid(repo))
        return seed_error_set(err, EINVAL,
                              "image reference '%s': repository '%s' is not valid (expected "
                              "host[:port]/name[:tag|@digest], lower-case name components)",
                              s, repo);
    r.host = strdup(hub ? "registry-1.docker.io" : host);
    r.name = strdup(hub ? "docker.io" : host);
    r.repo = TAKE_PTR(repo);
    r.tag = tag ? strdup(tag) : (digest ? NULL : strdup("latest"));
    r.digest = digest ? strdup(digest) : NULL;
    if (!r.host || !r.name || (!r.tag && !r.digest)) {
        seed_image_ref_done(&r);
        return -ENOMEM;
    }
    *ret = r;
    return 0;
}

/* ---- requests ---- */

typedef struct upload {
    int fd;
    off_t base;
    uint64_t size;
    seed_sha256 *sha;
    uint64_t hashed; /* bytes fed to sha: a rewound request does not feed them twice */
    const char *digest;
    bool bad;
    char got[SEED_DIGEST_LEN];
} upload;

typedef struct req {
    const char *method;
    char *url;
    const char *accept, *content_type, *scope;
    char content_range[64];
    /* body: mem, or up's bytes [start, end) */
    const char *mem;
    size_t mem_len;
    upload *up;
    uint64_t start, end, pos;
    bool has_body;
    size_t max; /* of the answer's body */
    /* answer */
    long status;
    char *body;
    size_t body_len;
    bool too_big;
    char *location, *content_digest, *ctype, *www_auth;
    seed_registry *r;
} req;

static void req_done(req *q) {
    free(q->url);
    free(q->body);
    free(q->location);
    free(q->content_digest);
    free(q->ctype);
    free(q->www_auth);
}

static void answer_reset(req *q) {
    free(q->body);
    free(q->location);
    free(q->content_digest);
    free(q->ctype);
    free(q->www_auth);
    q->body = q->location = q->content_digest = q->ctype = q->www_auth = NULL;
    q->body_len = 0;
    q->too_big = false;
    q->status = 0;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
    req *q = ud;
    size_t len = size * n;
    if (q->body_len + len > q->max) {
        q->too_big = true;
        return 0;
    }
    char *b = realloc(q->body, q->body_len + len + 1);
    if (!b)
        return 0;
    memcpy(b + q->body_len, p, len);
    q->body = b;
    q->body_len += len;
    b[q->body_len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    req *q = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new answer (after a redirect or 100) */
        free(q->location), free(q->content_digest), free(q->ctype), free(q->www_auth);
        q->location = q->content_digest = q->ctype = q->www_auth = NULL;
        return len;
    }
    const char *c = memchr(p, ':', len);
    if (!c)
        return len;
    size_t nl = (size_t)(c - p);
    const char *v = c + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    char **slot = NULL;
    if (nl == 8 && strncasecmp(p, "Location", 8) == 0)
        slot = &q->location;
    else if (nl == 21 && strncasecmp(p, "Docker-Content-Digest", 21) == 0)
        slot = &q->content_digest;
    else if (nl == 12 && strncasecmp(p, "Content-Type", 12) == 0)
        slot = &q->ctype;
    else if (nl == 16 && strncasecmp(p, "WWW-Authenticate", 16) == 0)
        slot = &q->www_auth;
    if (slot && !*slot)
        *slot = strndup(v, (size_t)(end - v));
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud) {
    req *q = ud;
    size_t want = size * n;
    if (q->mem) {
        size_t k = MIN(want, q->mem_len - (size_t)q->pos);
        memcpy(buf, q->mem + q->pos, k);
        q->pos += k;
        return k;
    }
    upload *up = q->up;
    size_t k = (size_t)MIN((uint64_t)want, q->end - q->pos);
    size_t got = 0;
    while (got < k) {
        ssize_t m = pread(up->fd, buf + got, k - got, up->base + (off_t)(q->pos + got));
        if (m < 0 && errno == EINTR)
            continue;
        if (m <= 0)
            return CURL_READFUNC_ABORT;
        got += (size_t)m;
    }
    if (q->pos + k > up->hashed && q->pos <= up->hashed) {
        uint64_t skip = up->hashed - q->pos;
        seed_sha256_update(up->sha, buf + skip, k - skip);
        up->hashed = q->pos + k;
        if (up->hashed == up->size) {
            uint8_t d[SEED_SHA256_LEN];
            seed_sha256_final(up->sha, d);
            up->sha = NULL;
            memcpy(up->got, "sha256:", 7);
            seed_hex(d, sizeof(d), up->got + 7);
            if (!streq(up->got, up->digest)) {
                /* The last bytes are never sent: the registry cannot complete the blob. */
                up->bad = true;
                return CURL_READFUNC_ABORT;
            }
        }
    }
    q->pos += k;
    return k;
}

static int on_seek(void *ud, curl_off_t off, int origin) {
    req *q = ud;
    if (origin != SEEK_SET)
        return CURL_SEEKFUNC_CANTSEEK;
    q->pos = q->mem ? (uint64_t)off : q->start + (uint64_t)off;
    return CURL_SEEKFUNC_OK;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    req *q = ud;
    if (q->up && q->r->o.progress)
        q->r->o.progress(q->r->o.userdata, q->up->digest, q->start + (uint64_t)ulnow, q->up->size);
    return 0;
}

static void token_free_all(seed_registry *r) {
    for (size_t i = 0; i < r->n_tokens; i++) {
        free(r->tokens[i].scope);
        free(r->tokens[i].token);
    }
    free(r->tokens);
    r->tokens = NULL;
    r->n_tokens = 0;
}

void seed_registry_free(seed_registry *r) {
    if (!r)
        return;
    if (r->curl)
        curl_easy_cleanup(r->curl);
    free(r->host);
    free(r->base);
    free(r->realm);
    free(r->service);
    token_free_all(r);
    free(r);
}

const char *seed_registry_scheme(const seed_registry *r) {
    return strncmp(r->base, "https:", 6) == 0 ? "https" : "http";
}

static void setup(seed_registry *r, req *q) {
    CURL *c = r->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, q->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->curl_error);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)(r->o.timeout_s ? r->o.timeout_s : DEFAULT_TIMEOUT_S));
    curl_easy_setopt(c, CURLOPT_USERAGENT, "seed/" SEED_VERSION);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (r->o.ca_cert)
        curl_easy_setopt(c, CURLOPT_CAINFO, r->o.ca_cert);
    if (r->o.insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, q);
    if (streq(q->method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (streq(q->method, "GET"))
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L); /* blobs may live in a storage service */
    else if (!q->has_body)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    if (q->has_body) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, q);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, q);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)(q->mem ? q->mem_len : (size_t)(q->end - q->start)));
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, q);
    } else if (streq(q->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
}

/* The path and query of a URL, for messages. */
static const char *url_path(const char *url) {
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    return p ? p : url;
}

static int perform(seed_registry *r, req *q, const char *authz, seed_error **err) {
    answer_reset(q);
    q->pos = q->mem ? 0 : q->start;
    q->r = r;
    setup(r, q);
    struct curl_slist *h = NULL;
    char line[8300];
    if (q->accept) {
        snprintf(line, sizeof(line), "Accept: %s", q->accept);
        h = curl_slist_append(h, line);
    }
    if (q->content_type || q->has_body) {
        snprintf(line, sizeof(line), "Content-Type: %s",
                 q->content_type ? q->content_type : "application/octet-stream");
        h = curl_slist_append(h, line);
    }
    if (q->content_range[0]) {
        snprintf(line, sizeof(line), "Content-Range: %s", q->content_range);
        h = curl_slist_append(h, line);
    }
    if (authz) {
        snprintf(line, sizeof(line), "Authorization: %s", authz);
        h = curl_slist_append(h, line);
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, h);
    r->curl_error[0] = '\0';
    CURLcode cc = curl_easy_perform(r->curl);
    curl_slist_free_all(h);
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &q->status);
    if (q->up && q->up->bad)
        return -EBADMSG; /* the caller names the blob */
    if (cc == CURLE_OK)
        return 0;
    const char *detail = r->curl_error[0] ? r->curl_error : curl_easy_strerror(cc);
    const char *path = url_path(q->url);
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return seed_error_set(err, ETIMEDOUT, "registry %s did not answer %s %s within %u s (%s)", r->host,
                              q->method, path, r->o.timeout_s ? r->o.timeout_s : DEFAULT_TIMEOUT_S, detail);
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return seed_error_set(err, ECONNREFUSED, "cannot connect to registry %s: %s", r->host, detail);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return seed_error_set(err, EPROTO,
                              "registry %s: TLS certificate not trusted (%s): give its CA with --ca-cert "
                              "FILE, or --insecure",
                              r->host, detail);
    case CURLE_SSL_CONNECT_ERROR:
        return seed_error_set(err, EPROTO, "registry %s: TLS handshake failed (%s)%s", r->host, detail,
                              r->o.insecure ? "" : "; a registry without TLS needs --insecure");
    case CURLE_WRITE_ERROR:
        if (q->too_big)
            return seed_error_set(err, EFBIG, "registry %s: the answer to %s %s is larger than %zu bytes",
                                  r->host, q->method, path, q->max);
        return -ENOMEM;
    default:
        return seed_error_set(err, EIO, "registry %s: %s %s failed: %s", r->host, q->method, path, detail);
    }
}

static const char *find_token(seed_registry *r, const char *scope) {
    for (size_t i = 0; i < r->n_tokens; i++)
        if (streq(r->tokens[i].scope, scope))
            return r->tokens[i].token;
    return NULL;
}

/* Ask the token server (realm) for a token for scope (space-separated items), kept
 * under key. */
/* "Basic base64(user:pass)" (malloc'd), or NULL (out of memory). */
static char *basic_authz(const seed_creds *cr) {
    char *up = NULL, *authz = NULL;
    if (asprintf(&up, "%s:%s", cr->user, cr->pass) < 0)
        return NULL;
    char *b = seed_base64_encode(up, strlen(up), NULL);
    explicit_bzero(up, strlen(up));
    free(up);
    if (b && asprintf(&authz, "Basic %s", b) < 0)
        authz = NULL;
    free(b);
    return authz;
}

static int fetch_token(seed_registry *r, const char *scope, const char *key, seed_error **err) {
    _cleanup_free_ char *url = NULL;
    CURL *c = r->curl;
    /* realm?service=S&scope=A&scope=B */
    size_t cap = strlen(r->realm) + 64 + 3 * (strlen(r->service ? r->service : "") + strlen(scope) * 2);
    if (!(url = malloc(cap)))
        return -ENOMEM;
    snprintf(url, cap, "%s%c", r->realm, strchr(r->realm, '?') ? '&' : '?');
    if (r->service) {
        char *e = curl_easy_escape(c, r->service, 0);
        strcat(url, "service=");
        strcat(url, e);
        curl_free(e);
    }
    _cleanup_free_ char *sc = strdup(scope);
    if (!sc)
        return -ENOMEM;
    char *save = NULL;
    for (char *item = strtok_r(sc, " ", &save); item; item = strtok_r(NULL, " ", &save)) {
        char *e = curl_easy_escape(c, item, 0);
        strcat(url, "&scope=");
        strcat(url, e);
        curl_free(e);
    }
    req q = {.method = "GET", .url = TAKE_PTR(url), .max = 1 << 20};
    _cleanup_free_ char *authz = NULL;
    const seed_creds *cr = r->o.creds;
    if (cr && cr->user && !(authz = basic_authz(cr)))
        return -ENOMEM;
    int ret = perform(r, &q, authz, err);
    if (ret >= 0 && (q.status == 401 || q.status == 403))
        ret = cr && cr->user
                  ? seed_error_set(err, EACCES,
                                   "the token server %s of registry %s refused the credentials of '%s' "
                                   "for %s (%ld)",
                                   r->realm, r->host, cr->user, scope, q.status)
                  : seed_error_set(err, EACCES,
                                   "the token server %s of registry %s refused an anonymous token for %s "
                                   "(%ld): give credentials with --creds USER:PASS or --authfile FILE",
                                   r->realm, r->host, scope, q.status);
    else if (ret >= 0 && q.status != 200)
        ret = seed_error_set(err, EIO, "the token server %s of registry %s answered %ld", r->realm, r->host,
                             q.status);
    json_t *j = ret >= 0 ? json_loadb(q.body ? q.body : "", q.body_len, 0, NULL) : NULL;
    const char *t = json_string_value(json_object_get(j, "token"));
    if (!t || !*t)
        t = json_string_value(json_object_get(j, "access_token"));
    if (ret >= 0 && (!t || !*t))
        ret = seed_error_set(err, EPROTO, "the token server %s of registry %s sent no token", r->realm,
                             r->host);
    if (ret >= 0) {
        token *v = realloc(r->tokens, (r->n_tokens + 1) * sizeof(*v));
        if (!v) {
            ret = -ENOMEM;
        } else {
            r->tokens = v;
            v[r->n_tokens] = (token){strdup(key), strdup(t)};
            if (!v[r->n_tokens].scope || !v[r->n_tokens].token)
                ret = -ENOMEM;
            r->n_tokens++;
        }
    }
    json_decref(j);
    req_done(&q);
    return ret;
}

static int learn_challenge(seed_registry *r, const char *header, seed_error **err) {
    seed_www_auth a = {0};
    int ret = seed_www_auth_parse(header, &a, err);
    if (ret < 0)
        return seed_error_prefix(err, "registry %s: ", r->host);
    if (strcasecmp(a.scheme, "Bearer") == 0) {
        if (!a.realm || strncmp(a.realm, "http", 4) != 0)
            ret = seed_error_set(err, EPROTO, "registry %s: Bearer challenge without an http(s) realm",
                                 r->host);
        else {
            r->auth = AUTH_BEARER;
            free(r->realm), free(r->service);
            r->realm = TAKE_PTR(a.realm);
            r->service = TAKE_PTR(a.service);
        }
    } else if (strcasecmp(a.scheme, "Basic") == 0) {
        r->auth = AUTH_BASIC;
    } else {
        ret = seed_error_set(err, ENOTSUP,
                             "registry %s asks for '%s' authentication (Basic and Bearer are supported)",
                             r->host, a.scheme);
    }
    seed_www_auth_done(&a);
    return ret;
}

/* Send q with the authentication the registry asked for; once more after a challenge. */
static int do_req(seed_registry *r, req *q, seed_error **err) {
    for (int attempt = 0;; attempt++) {
        _cleanup_free_ char *authz = NULL;
        const seed_creds *cr = r->o.creds;
        if (r->auth == AUTH_BASIC && cr && cr->user) {
            if (!(authz = basic_authz(cr)))
                return -ENOMEM;
        } else if (r->auth == AUTH_BEARER && q->scope) {
            if (!find_token(r, q->scope)) {
                int ret = fetch_token(r, q->scope, q->scope, err);
                if (ret < 0)
                    return ret;
            }
            if (asprintf(&authz, "Bearer %s", find_token(r, q->scope)) < 0)
                return -ENOMEM;
        }
        int ret = perform(r, q, authz, err);
        if (ret < 0 || q->status != 401 || attempt > 0 || !q->www_auth)
            return ret;
        int was = r->auth;
        if ((ret = learn_challenge(r, q->www_auth, err)) < 0)
            return ret;
        if (r->auth == AUTH_BEARER) {
            /* The token held for this scope (if any) was not enough (expired, or the
             * registry wants another scope, as its challenge says): ask again. */
            if (!q->scope)
                return 0;
            seed_www_auth a = {0};
            const char *want = q->scope;
            if (seed_www_auth_parse(q->www_auth, &a, NULL) == 0 && a.scope && *a.scope)
                want = a.scope;
            for (size_t i = 0; i < r->n_tokens; i++)
                if (streq(r->tokens[i].scope, q->scope))
                    r->tokens[i].scope[0] = '\0'; /* forgotten */
            ret = fetch_token(r, want, q->scope, err);
            seed_www_auth_done(&a);
            if (ret < 0)
                return ret;
        } else if (r->auth == AUTH_BASIC && (was == AUTH_BASIC || !cr || !cr->user)) {
            return 0; /* sent them already, or have none: the caller reports the 401 */
        }
    }
}

/* "401 Unauthorized (UNAUTHORIZED: authentication required)" and a hint. */
static int status_error(seed_registry *r, req *q, const char *what, seed_error **err) {
    char detail[512] = "";
    json_t *j = q->body ? json_loadb(q->body, q->body_len, 0, NULL) : NULL;
    json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
    const char *code = json_string_value(json_object_get(e0, "code"));
    const char *msg = json_string_value(json_object_get(e0, "message"));
    if (code || msg)
        snprintf(detail, sizeof(detail), " (%s%s%s)", code ? code : "", code && msg ? ": " : "",
                 msg ? msg : "");
    json_decref(j);
    const char *path = url_path(q->url);
    const seed_creds *cr = r->o.creds;
    switch (q->status) {
    case 401:
        return seed_error_set(err, EACCES, "registry %s refused %s (%s %s): 401 Unauthorized%s: %s", r->host,
                              what, q->method, path, detail,
                              cr && cr->user
                                  ? "the credentials were rejected"
                                  : "it needs credentials: give --creds USER:PASS or --authfile FILE");
    case 403:
        return seed_error_set(err, EACCES, "registry %s refused %s (%s %s): 403 Forbidden%s%s%s", r->host,
                              what, q->method, path, detail, cr && cr->user ? ": not allowed for user " : "",
                              cr && cr->user ? cr->user : "");
    case 404:
        return seed_error_set(err, ENOENT, "registry %s: %s not found (%s %s: 404)%s", r->host, what,
                              q->method, path, detail);
    default:
        return seed_error_set(err, q->status >= 500 ? EIO : EPROTO,
                              "registry %s failed %s (%s %s): answered %ld%s", r->host, what, q->method, path,
                              q->status, detail);
    }
}

static char *make_url(seed_registry *r, const char *fmt, ...) _printf_(2, 3);
static char *make_url(seed_registry *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *path = NULL;
    int n = vasprintf(&path, fmt, ap);
    va_end(ap);
    char *url = NULL;
    if (n < 0 || asprintf(&url, "%s%s", r->base, path) < 0)
        return NULL;
    return url;
}

/* An upload URL from a Location header: absolute, or a path on the registry. */
static char *location_url(seed_registry *r, const char *loc) {
    char *url = NULL;
    if (strncmp(loc, "http://", 7) == 0 || strncmp(loc, "https://", 8) == 0)
        return strdup(loc);
    if (asprintf(&url, "%s%s%s", r->base, loc[0] == '/' ? "" : "/", loc) < 0)
        return NULL;
    return url;
}

int seed_registry_open(const char *host, const seed_registry_opts *o, seed_registry **ret_reg,
                       seed_error **err) {
    static bool inited;
    if (!inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
            return seed_error_set(err, EIO, "libcurl failed to initialise");
        inited = true;
    }
    _cleanup_(seed_registry_freep) seed_registry *r = calloc(1, sizeof(*r));
    if (!r || !(r->host = strdup(host)) || asprintf(&r->base, "https://%s", host) < 0)
        return -ENOMEM;
    r->o = *o;
    if (!(r->curl = curl_easy_init()))
        return -ENOMEM;
    req q = {.method = "GET", .max = ERROR_BODY_MAX};
    if (!(q.url = make_url(r, "/v2/")))
        return -ENOMEM;
    seed_error *e = NULL;
    int ret = perform(r, &q, NULL, &e);
    if (ret == -EPROTO && o->insecure && strstr(e->msg, "handshake")) {
        /* --insecure: a registry that speaks no TLS is reached over plain HTTP. */
        seed_error_free(TAKE_PTR(e));
        free(r->base);
        free(q.url);
        if (asprintf(&r->base, "http://%s", host) < 0 || !(q.url = make_url(r, "/v2/"))) {
            q.url = NULL;
            req_done(&q);
            return -ENOMEM;
        }
        ret = perform(r, &q, NULL, &e);
    }
    if (ret < 0) {
        if (err && !*err)
            *err = TAKE_PTR(e);
        seed_error_free(e);
    } else if (q.status == 401) {
        ret = q.www_auth ? learn_challenge(r, q.www_auth, err)
                         : seed_error_set(err, EPROTO,
                                          "registry %s answered 401 to GET /v2/ without a "
                                          "WWW-Authenticate challenge",
                                          host);
    } else if (q.status >= 500) {
        ret = seed_error_set(err, EIO, "registry %s failed GET /v2/: answered %ld", host, q.status);
    } else if (q.status != 200) {
        ret = seed_error_set(err, EPROTO,
                             "%s is not a registry speaking the distribution API v2: GET /v2/ answered "
                             "%ld",
                             host, q.status);
    }
    req_done(&q);
    if (ret < 0)
        return ret;
    *ret_reg = TAKE_PTR(r);
    return 0;
}

static void scope_of(char *buf, size_t n, const char *repo, bool push) {
    snprintf(buf, n, "repository:%s:%s", repo, push ? "pull,push" : "pull");
}

int seed_registry_blob_exists(seed_registry *r, const char *repo, const char *digest, seed_error **err) {
    char scope[600];
    scope_of(scope, sizeof(scope), repo, true);
    req q = {.method = "HEAD", .scope = scope, .max = ERROR_BODY_MAX};
    if (!(q.url = make_url(r, "/v2/%s/blobs/%s", repo, digest)))
        return -ENOMEM;
    int ret = do_req(r, &q, err);
    if (ret >= 0)
        ret = q.status == 200 ? 1 : q.status == 404 ? 0 : status_error(r, &q, "checking for a blob", err);
    req_done(&q);
    return ret;
}

int seed_registry_blob_mount(seed_registry *r, const char *repo, const char *digest, const char *from,
                             char **ret_location, seed_error **err) {
    char scope[1200];
    snprintf(scope, sizeof(scope), "repository:%s:pull,push repository:%s:pull", repo, from);
    req q = {.method = "POST", .scope = scope, .max = ERROR_BODY_MAX};
    char *efrom = curl_easy_escape(r->curl, from, 0);
    q.url = efrom ? make_url(r, "/v2/%s/blobs/uploads/?mount=%s&from=%s", repo, digest, efrom) : NULL;
    curl_free(efrom);
    if (!q.url)
        return -ENOMEM;
    int ret = do_req(r, &q, err);
    if (ret >= 0) {
        if (q.status == 201)
            ret = 1;
        else if (q.status == 202 && q.location)
            ret = (*ret_location = TAKE_PTR(q.location)) ? 0 : -ENOMEM;
        else
            ret = status_error(r, &q, "mounting a blob", err);
    }
    req_done(&q);
    return ret;
}

static int start_upload(seed_registry *r, const char *repo, const char *scope, char **ret, seed_error **err) {
    req q = {.method = "POST", .scope = scope, .max = ERROR_BODY_MAX};
    if (!(q.url = make_url(r, "/v2/%s/blobs/uploads/", repo)))
        return -ENOMEM;
    int ret_ = do_req(r, &q, err);
    if (ret_ >= 0 && (q.status != 202 || !q.location))
        ret_ = status_error(r, &q, "starting an upload", err);
    if (ret_ >= 0 && !(*ret = TAKE_PTR(q.location)))
        ret_ = -ENOMEM;
    req_done(&q);
    return ret_;
}

/* url with "digest=D" added to its query. */
static char *with_digest(seed_registry *r, const char *url, const char *digest) {
    char *e = curl_easy_escape(r->curl, digest, 0);
    char *s = NULL;
    if (e && asprintf(&s, "%s%cdigest=%s", url, strchr(url, '?') ? '&' : '?', e) < 0)
        s = NULL;
    curl_free(e);
    return s;
}

int seed_registry_blob_upload(seed_registry *r, const char *repo, const char *digest, int fd, off_t off,
                              uint64_t size, uint64_t chunk_size, const char *location, const char *what,
                              seed_error **err) {
    char scope[600];
    scope_of(scope, sizeof(scope), repo, true);
    _cleanup_free_ char *loc = location ? strdup(location) : NULL;
    int ret = 0;
    if (!loc && (ret = start_upload(r, repo, scope, &loc, err)) < 0)
        return ret;
    if (!loc)
        return -ENOMEM;
    upload up = {.fd = fd, .base = off, .size = size, .sha = seed_sha256_new(), .digest = digest};
    if (!up.sha)
        return -ENOMEM;
    if (size == 0) { /* an empty blob: its digest is known without reading */
        uint8_t d[SEED_SHA256_LEN];
        seed_sha256_final(up.sha, d);
        up.sha = NULL;
        memcpy(up.got, "sha256:", 7);
        seed_hex(d, sizeof(d), up.got + 7);
        if (!streq(up.got, digest))
            up.bad = true;
    }
    bool chunked = chunk_size > 0 && size > chunk_size;
    uint64_t pos = 0;
    while (ret >= 0 && !up.bad) {
        bool last = !chunked || size - pos <= chunk_size;
        req q = {.method = last ? "PUT" : "PATCH",
                 .scope = scope,
                 .up = &up,
                 .has_body = true,
                 .max = ERROR_BODY_MAX,
                 .start = pos,
                 .end = chunked ? MIN(size, pos + chunk_size) : size};
        if (chunked && q.end > q.start)
            snprintf(q.content_range, sizeof(q.content_range), "%llu-%llu", (unsigned long long)q.start,
                     (unsigned long long)q.end - 1);
        _cleanup_free_ char *u = location_url(r, loc);
        q.url = u ? (last ? with_digest(r, u, digest) : strdup(u)) : NULL;
        if (!q.url) {
            ret = -ENOMEM;
            break;
        }
        ret = do_req(r, &q, err);
        if (ret == -EBADMSG)
            ret = 0; /* up.bad: reported below */
        else if (ret >= 0 && q.status != (last ? 201 : 202))
            ret = status_error(r, &q, "uploading a blob", err);
        else if (ret >= 0 && !last) {
            if (!q.location)
                ret = seed_error_set(err, EPROTO, "registry %s: no Location after a chunk of %s", r->host,
                                     digest);
            else {
                free(loc);
                loc = TAKE_PTR(q.location);
            }
        }
        pos = q.end;
        req_done(&q);
        if (last)
            break;
    }
    if (up.sha)
        seed_sha256_free(up.sha);
    if (ret >= 0 && up.bad)
        ret = seed_error_set(err, EBADMSG,
                             "%s: blob %s is corrupt: its content hashes to %s (upload abandoned)", what,
                             digest, up.got);
    if (ret < 0 && loc) {
        /* Cancel the unfinished upload; its failure does not matter. */
        req c = {.method = "DELETE", .scope = scope, .max = ERROR_BODY_MAX, .url = location_url(r, loc)};
        if (c.url)
            do_req(r, &c, NULL);
        req_done(&c);
    }
    return ret;
}

int seed_registry_blob_get(seed_registry *r, const char *repo, const char *digest, size_t max, char **ret,
                           size_t *ret_len, seed_error **err) {
    char scope[600];
    scope_of(scope, sizeof(scope), repo, false);
    req q = {.method = "GET", .scope = scope, .max = max};
    if (!(q.url = make_url(r, "/v2/%s/blobs/%s", repo, digest)))
        return -ENOMEM;
    int ret_ = do_req(r, &q, err);
    if (ret_ >= 0 && q.status != 200)
        ret_ = status_error(r, &q, "fetching a blob", err);
    char got[SEED_DIGEST_LEN];
    if (ret_ >= 0 && (ret_ = seed_image_digest(q.body ? q.body : "", q.body_len, got)) >= 0 &&
        !streq(got, digest))
        ret_ = seed_error_set(err, EBADMSG, "registry %s sent blob %s with content hashing to %s", r->host,
                              digest, got);
    if (ret_ >= 0) {
        *ret = q.body ? TAKE_PTR(q.body) : strdup("");
        *ret_len = q.body_len;
        if (!*ret)
            ret_ = -ENOMEM;
    }
    req_done(&q);
    return ret_;
}

int seed_registry_manifest_get(seed_registry *r, const char *repo, const char *reference, char **ret,
                               size_t *ret_len, char **ret_type, char ret_digest[SEED_DIGEST_LEN],
                               seed_error **err) {
    char scope[600];
    scope_of(scope, sizeof(scope), repo, false);
    req q = {.method = "GET",
             .scope = scope,
             .max = SEED_MANIFEST_MAX,
             .accept = SEED_MT_OCI_MANIFEST ", " SEED_MT_OCI_INDEX ", " SEED_MT_DOCKER_MANIFEST
                                            ", " SEED_MT_DOCKER_LIST};
    if (!(q.url = make_url(r, "/v2/%s/manifests/%s", repo, reference)))
        return -ENOMEM;
    char what[400];
    snprintf(what, sizeof(what), "manifest %s:%s", repo, reference);
    int ret_ = do_req(r, &q, err);
    if (ret_ >= 0 && q.status != 200)
        ret_ = status_error(r, &q, what, err);
    if (ret_ >= 0 && (ret_ = seed_image_digest(q.body ? q.body : "", q.body_len, ret_digest)) >= 0) {
        if (seed_image_digest_valid(reference) && !streq(reference, ret_digest))
            ret_ = seed_error_set(err, EBADMSG, "registry %s sent %s with content hashing to %s", r->host,
                                  what, ret_digest);
        else if (q.content_digest && seed_image_digest_valid(q.content_digest) &&
                 !streq(q.content_digest, ret_digest))
            ret_ = seed_error_set(err, EBADMSG,
                                  "registry %s sent %s: Docker-Content-Digest %s, content hashes to %s",
                                  r->host, what, q.content_digest, ret_digest);
    }
    if (ret_ >= 0) {
        char *t = q.ctype ? strndup(q.ctype, strcspn(q.ctype, ";")) : NULL;
        *ret = q.body ? TAKE_PTR(q.body) : strdup("");
        *ret_len = q.body_len;
        *ret_type = t;
        if (!*ret)
            ret_ = -ENOMEM;
    }
    req_done(&q);
    return ret_;
}

int seed_registry_manifest_put(seed_registry *r, const char *repo, const char *reference,
                               const char *media_type, const char *body, size_t len, seed_error **err) {
    char scope[600];
    scope_of(scope, sizeof(scope), repo, true);
    req q = {.method = "PUT",
             .scope = scope,
             .max = ERROR_BODY_MAX,
             .content_type = media_type,
             .mem = body,
             .mem_len = len,
             .has_body = true};
    if (!(q.url = make_url(r, "/v2/%s/manifests/%s", repo, reference)))
        return -ENOMEM;
    int ret = do_req(r, &q, err);
    if (ret >= 0 && q.status != 201)
        ret = status_error(r, &q, "storing the manifest", err);
    req_done(&q);
    return ret;
}
