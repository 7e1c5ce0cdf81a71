/* Push webhooks over HTTP (libmicrohttpd in "external" mode on the daemon's loop, as
 * shoot/http.c does): POST /webhook/<source> from GitHub, Gitea/Forgejo or GitLab.
 *
 * A request is judged in this order, and every outcome goes to the callback:
 *   404 unknown path or source, 405 not POST, 403 the source has no secret, 413 body
 *   over SEED_WEBHOOK_MAX_BODY (refused unread), 400 no provider header, 401 missing or
 *   wrong signature/token, 415 content type neither JSON nor GitHub's form encoding,
 *   400 body not UTF-8 / not JSON / nested too deep / no "ref" or "after",
 *   200 ping, 202 ignored (another ref, a deletion, an event that is not a push),
 *   200 a delivery id already applied, 202 accepted.
 * Authentication comes before anything in the body is looked at.
 *
 * Connections: at most SEED_WEBHOOK_MAX_PER_PEER per client address (refused at
 * accept) and SEED_WEBHOOK_MAX_CONNECTIONS in all; a connection has the deadline
 * (10 s) to deliver a whole request, counted from accept, not reset by each byte, so a
 * client trickling its request is cut (answered 408 where nothing was sent yet). */
#include "source/webhook.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/macro.h"
#include "base/utf8.h"

#define MAX_DELIVERY_ID 128
#define MAX_REF 256
#define MAX_NAME_SHOWN 128 /* of a source name quoted from the URL */
#define TICK_MAX_USEC 1000000ull

const char *const seed_webhook_header_names[_SEED_WEBHOOK_H_MAX] = {
    [SEED_WEBHOOK_H_CONTENT_TYPE] = "Content-Type",
    [SEED_WEBHOOK_H_GITHUB_EVENT] = "X-GitHub-Event",
    [SEED_WEBHOOK_H_GITHUB_SIGNATURE] = "X-Hub-Signature-256",
    [SEED_WEBHOOK_H_GITHUB_DELIVERY] = "X-GitHub-Delivery",
    [SEED_WEBHOOK_H_GITEA_EVENT] = "X-Gitea-Event",
    [SEED_WEBHOOK_H_GITEA_SIGNATURE] = "X-Gitea-Signature",
    [SEED_WEBHOOK_H_GITEA_DELIVERY] = "X-Gitea-Delivery",
    [SEED_WEBHOOK_H_FORGEJO_EVENT] = "X-Forgejo-Event",
    [SEED_WEBHOOK_H_FORGEJO_SIGNATURE] = "X-Forgejo-Signature",
    [SEED_WEBHOOK_H_FORGEJO_DELIVERY] = "X-Forgejo-Delivery",
    [SEED_WEBHOOK_H_GITLAB_EVENT] = "X-Gitlab-Event",
    [SEED_WEBHOOK_H_GITLAB_TOKEN] = "X-Gitlab-Token",
    [SEED_WEBHOOK_H_GITLAB_UUID] = "X-Gitlab-Event-UUID",
    [SEED_WEBHOOK_H_GITLAB_IDEMPOTENCY] = "Idempotency-Key",
};

/* ---- the pure part: headers + body -> verdict ---- */

typedef enum { P_GITHUB, P_GITEA, P_GITLAB } provider;

static const char *const provider_names[] = {
    [P_GITHUB] = "github", [P_GITEA] = "gitea", [P_GITLAB] = "gitlab"};

static int set_verdict(seed_webhook_verdict *v, seed_webhook_kind kind, unsigned status, const char *fmt, ...)
    _printf_(4, 5);
static int set_verdict(seed_webhook_verdict *v, seed_webhook_kind kind, unsigned status, const char *fmt,
                       ...) {
    v->kind = kind;
    v->status = status;
    free(v->reason);
    v->reason = NULL;
    if (!fmt)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    v->reason = seed_utf8_vasprintf(fmt, ap); /* quotes header values: any bytes */
    va_end(ap);
    return v->reason ? 0 : -ENOMEM;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool is_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (hexval(s[i]) < 0)
            return false;
    return true;
}

static bool startswith(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Does the signature header match the body under the secret? The comparisons take
 * the same time whatever the bytes (CRYPTO_memcmp over fixed-size digests). *malformed
 * tells a header of the wrong shape from a wrong value. */
static bool signature_ok(provider p, const char *sig, const char *secret, const char *body, size_t len,
                         bool *malformed) {
    unsigned char want[EVP_MAX_MD_SIZE], got[SHA256_DIGEST_LENGTH];
    *malformed = false;
    if (p == P_GITLAB) {
        /* A plain token: compare digests, so that neither contents nor length leak. */
        SHA256((const unsigned char *)secret, strlen(secret), want);
        SHA256((const unsigned char *)sig, strlen(sig), got);
        return CRYPTO_memcmp(want, got, SHA256_DIGEST_LENGTH) == 0;
    }
    if (startswith(sig, "sha256="))
        sig += strlen("sha256=");
    else if (p == P_GITHUB) {
        *malformed = true;
        return false;
    }
    if (strlen(sig) != 2 * SHA256_DIGEST_LENGTH || !is_hex(sig, 2 * SHA256_DIGEST_LENGTH)) {
        *malformed = true;
        return false;
    }
    for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++)
        got[i] = (unsigned char)(hexval(sig[2 * i]) << 4 | hexval(sig[2 * i + 1]));
    unsigned n = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)(body ? body : ""), len, want,
              &n) ||
        n != SHA256_DIGEST_LENGTH)
        return false;
    return CRYPTO_memcmp(want, got, SHA256_DIGEST_LENGTH) == 0;
}

/* The media type of a Content-Type value, lowercase, without parameters. */
static void media_type(const char *ct, char *out, size_t size) {
    size_t o = 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    for (; *ct && *ct != ';' && *ct != ' ' && *ct != '\t' && o + 1 < size; ct++)
        out[o++] = (char)(*ct >= 'A' && *ct <= 'Z' ? *ct - 'A' + 'a' : *ct);
    out[o] = 0;
}

/* The value of "payload" in a form-encoded body, decoded; NULL with *why otherwise. */
static char *form_payload(const char *body, size_t len, size_t *out_len, const char **why) {
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) >= 8 && memcmp(p, "payload=", 8) == 0) {
            p += 8;
            char *out = malloc((size_t)(stop - p) + 1);
            if (!out) {
                *why = NULL; /* out of memory */
                return NULL;
            }
            size_t o = 0;
            for (; p < stop; p++) {
                if (*p == '+')
                    out[o++] = ' ';
                else if (*p == '%') {
                    if (stop - p < 3 || hexval(p[1]) < 0 || hexval(p[2]) < 0) {
                        free(out);
                        *why = "the form field \"payload\" has a bad %-escape";
                        return NULL;
                    }
                    out[o++] = (char)(hexval(p[1]) << 4 | hexval(p[2]));
                    p += 2;
                } else
                    out[o++] = *p;
            }
            out[o] = 0;
            *out_len = o;
            return out;
        }
        p = stop + 1;
    }
    *why = "the form-encoded body has no \"payload\" field";
    return NULL;
}

/* Is the JSON text nested deeper than max? (jansson has no depth option of its own
 * below its fixed 2048, and a clear message is better than its error.) */
static bool too_deep(const char *s, size_t n, unsigned max) {
    unsigned depth = 0;
    bool in_string = false, escaped = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"')
            in_string = true;
        else if (c == '[' || c == '{') {
            if (++depth > max)
                return true;
        } else if ((c == ']' || c == '}') && depth > 0)
            depth--;
    }
    return false;
}

static bool valid_ref(const char *r) {
    size_t n = strlen(r);
    if (n > MAX_REF || !startswith(r, "refs/") || n == 5)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)r[i] < 0x21 || r[i] == 0x7f)
            return false;
    return true;
}

static bool ref_matches(const char *tracked, const char *ref) {
    if (startswith(tracked, "refs/"))
        return streq(tracked, ref);
    return startswith(ref, "refs/heads/") && streq(ref + strlen("refs/heads/"), tracked);
}

/* A string member of obj (a nested one with two keys), or NULL. Strings with a NUL
 * inside are taken as absent. */
static const char *string_at(json_t *obj, const char *k1, const char *k2) {
    json_t *v = json_object_get(obj, k1);
    if (k2)
        v = json_object_get(v, k2);
    const char *s = json_string_value(v);
    return s && strlen(s) == json_string_length(v) ? s : NULL;
}

/* The body once authenticated: ref, after, and whether this source wants it. */
static int judge_payload(provider p, const char *text, size_t len, const char *tracked_ref,
                         seed_webhook_verdict *out) {
    if (!seed_utf8_valid(text, len))
        return set_verdict(out, SEED_WEBHOOK_REJECTED, 400,
                           "the body is not valid UTF-8 (or holds a NUL byte)");
    if (too_deep(text, len, SEED_WEBHOOK_MAX_DEPTH))
        return set_verdict(out, SEED_WEBHOOK_REJECTED, 400, "the JSON body is nested deeper than %u levels",
                           SEED_WEBHOOK_MAX_DEPTH);
    json_error_t jerr;
    json_t *j = json_loadb(text, len, 0, &jerr);
    if (!j)
        return set_verdict(out, SEED_WEBHOOK_REJECTED, 400,
                           "the body is not JSON: %.120s (line %d, column %d)", jerr.text, jerr.line,
                           jerr.column);
    int r;
    const char *ref = string_at(j, "ref", NULL), *after = string_at(j, "after", NULL);
    if (!json_is_object(j))
        r = set_verdict(out, SEED_WEBHOOK_REJECTED, 400,
                        "the JSON body is not an object: expected a push payload");
    else if (!ref || !valid_ref(ref))
        r = set_verdict(out, SEED_WEBHOOK_REJECTED, 400,
                        "the push payload has no valid \"ref\": expected a string \"refs/...\" of at most %u "
                        "printable characters",
                        MAX_REF);
    else if (!after ||
             !((strlen(after) == 40 && is_hex(after, 40)) || (strlen(after) == 64 && is_hex(after, 64))))
        r = set_verdict(
            out, SEED_WEBHOOK_REJECTED, 400,
            "the push payload has no valid \"after\": expected a commit id of 40 or 64 hex digits");
    else if (!(out->ref = strdup(ref)) || !(out->after = strdup(after)))
        r = -ENOMEM;
    else if (strspn(after, "0") == strlen(after) || json_is_true(json_object_get(j, "deleted")))
        r = set_verdict(out, SEED_WEBHOOK_IGNORED, 202, "%s was deleted", ref);
    else if (tracked_ref && !ref_matches(tracked_ref, ref))
        r = set_verdict(out, SEED_WEBHOOK_IGNORED, 202, "a push to %s: this source tracks %s", ref,
                        tracked_ref);
    else {
        /* Tracking the remote HEAD: the payload names the default branch. */
        const char *def = string_at(j, p == P_GITLAB ? "project" : "repository", "default_branch");
        if (!tracked_ref && def && !ref_matches(def, ref))
            r = set_verdict(out, SEED_WEBHOOK_IGNORED, 202,
                            "a push to %s: this source tracks the default branch %.200s", ref, def);
        else
            r = set_verdict(out, SEED_WEBHOOK_PUSH, 202, NULL);
    }
    json_decref(j);
    return r;
}

int seed_webhook_parse(const seed_webhook_request *req, const char *secret, const char *tracked_ref,
                       seed_webhook_verdict *out) {
    *out = (seed_webhook_verdict){0};
    const char *const *h = req->h;
    provider p;
    const char *event, *sig, *delivery;
    seed_webhook_header sig_h;
    /* Gitea and Forgejo send GitHub's headers too, for compatibility: their own decide. */
    if (h[SEED_WEBHOOK_H_FORGEJO_EVENT] || h[SEED_WEBHOOK_H_GITEA_EVENT]) {
        p = P_GITEA;
        bool forgejo = h[SEED_WEBHOOK_H_FORGEJO_EVENT] != NULL;
        event = forgejo ? h[SEED_WEBHOOK_H_FORGEJO_EVENT] : h[SEED_WEBHOOK_H_GITEA_EVENT];
        sig_h = forgejo && h[SEED_WEBHOOK_H_FORGEJO_SIGNATURE] ? SEED_WEBHOOK_H_FORGEJO_SIGNATURE
                                                               : SEED_WEBHOOK_H_GITEA_SIGNATURE;
        delivery = forgejo && h[SEED_WEBHOOK_H_FORGEJO_DELIVERY] ? h[SEED_WEBHOOK_H_FORGEJO_DELIVERY]
                                                                 : h[SEED_WEBHOOK_H_GITEA_DELIVERY];
    } else if (h[SEED_WEBHOOK_H_GITLAB_EVENT]) {
        p = P_GITLAB;
        event = h[SEED_WEBHOOK_H_GITLAB_EVENT];
        sig_h = SEED_WEBHOOK_H_GITLAB_TOKEN;
        /* Idempotency-Key stays the same when GitLab retries; the event UUID is older. */
        delivery = h[SEED_WEBHOOK_H_GITLAB_IDEMPOTENCY] ? h[SEED_WEBHOOK_H_GITLAB_IDEMPOTENCY]
                                                        : h[SEED_WEBHOOK_H_GITLAB_UUID];
    } else if (h[SEED_WEBHOOK_H_GITHUB_EVENT]) {
        p = P_GITHUB;
        event = h[SEED_WEBHOOK_H_GITHUB_EVENT];
        sig_h = SEED_WEBHOOK_H_GITHUB_SIGNATURE;
        delivery = h[SEED_WEBHOOK_H_GITHUB_DELIVERY];
    } else {
        if (!secret)
            return set_verdict(out, SEED_WEBHOOK_REJECTED, 403,
                               "this source has no webhook secret: webhooks need --webhook-secret-file");
        return set_verdict(out, SEED_WEBHOOK_REJECTED, 400,
                           "not a webhook: expected an X-GitHub-Event, X-Gitea-Event, X-Forgejo-Event or "
                           "X-Gitlab-Event header");
    }
    out->provider = provider_names[p];
    if (!secret)
        return set_verdict(out, SEED_WEBHOOK_REJECTED, 403,
                           "this source has no webhook secret: webhooks need --webhook-secret-file");
    sig = h[sig_h];
    if (!sig)
        return set_verdict(out, SEED_WEBHOOK_REJECTED, 401, "no %s header: the request is not signed",
                           seed_webhook_header_names[sig_h]);
    bool malformed;
    if (!signature_ok(p, sig, secret, req->body, req->len, &malformed)) {
        if (malformed)
            return set_verdict(out, SEED_WEBHOOK_REJECTED, 401, "malformed %s: expected %s64 hex digits",
                               seed_webhook_header_names[sig_h], p == P_GITHUB ? "sha256=" : "");
        return set_verdict(out, SEED_WEBHOOK_REJECTED, 401,
                           p == P_GITLAB
                               ? "wrong %s: it is not this source's secret"
                               : "bad signature: %s does not match the body and this source's secret",
                           seed_webhook_header_names[sig_h]);
    }

    /* Authentic from here on. */
    if (delivery) {
        size_t n = strlen(delivery);
        bool ok = n > 0 && n <= MAX_DELIVERY_ID;
        for (size_t i = 0; ok && i < n; i++)
            ok = delivery[i] > 0x20 && delivery[i] < 0x7f;
        if (!ok)
            return set_verdict(out, SEED_WEBHOOK_REJECTED, 400,
                               "bad delivery id: expected at most %u printable ASCII characters",
                               MAX_DELIVERY_ID);
        if (!(out->delivery = strdup(delivery)))
            return -ENOMEM;
    }
    bool push = streq(event, p == P_GITLAB ? "Push Hook" : "push") ||
                (p == P_GITLAB && streq(event, "Tag Push Hook"));
    if (p == P_GITHUB && streq(event, "ping"))
        return set_verdict(out, SEED_WEBHOOK_PING, 200, NULL);
    if (!push)
        return set_verdict(out, SEED_WEBHOOK_IGNORED, 202, "the event %.64s is not a push", event);

    const char *ct = h[SEED_WEBHOOK_H_CONTENT_TYPE];
    char type[64];
    media_type(ct ? ct : "", type, sizeof(type));
    if (streq(type, "application/json"))
        return judge_payload(p, req->body ? req->body : "", req->len, tracked_ref, out);
    if (streq(type, "application/x-www-form-urlencoded")) {
        /* GitHub's default: payload=<the JSON, URL-encoded>; the signature covers the form. */
        const char *why;
        size_t n = 0;
        _cleanup_free_ char *payload = form_payload(req->body ? req->body : "", req->len, &n, &why);
        if (!payload)
            return why ? set_verdict(out, SEED_WEBHOOK_REJECTED, 400, "%s", why) : -ENOMEM;
        return judge_payload(p, payload, n, tracked_ref, out);
    }
    return set_verdict(out, SEED_WEBHOOK_REJECTED, 415,
                       "content type %.64s is not supported: expected application/json (or "
                       "application/x-www-form-urlencoded with a payload field)",
                       ct ? ct : "(none)");
}

void seed_webhook_verdict_clear(seed_webhook_verdict *v) {
    free(v->ref);
    free(v->after);
    free(v->delivery);
    free(v->reason);
    *v = (seed_webhook_verdict){0};
}

/* ---- the server ---- */

typedef struct source_entry {
    char *name, *secret, *ref;
    char *ids[SEED_WEBHOOK_DELIVERIES]; /* ring of the delivery ids of accepted pushes */
    size_t next_id;
} source_entry;

/* One accepted socket (its requests come and go). */
typedef struct conn {
    int fd;
    struct sockaddr_storage addr;
    char peer[INET6_ADDRSTRLEN];
    uint64_t deadline;   /* monotonic usec; 0: none */
    unsigned served;     /* requests answered on it */
    struct req_ctx *req; /* the request under way, once its headers are in */
    bool answered;       /* a response is queued for the request under way */
    struct conn *prev, *next;
} conn;

struct seed_webhook {
    seed_loop *loop;
    struct MHD_Daemon *d;
    int listen_fd;
    unsigned port;
    seed_source *epoll_src, *timer, *tick;
    bool tick_armed;
    uint64_t deadline_usec;
    conn *conns;
    source_entry *sources;
    size_t n_sources;
    seed_webhook_fn fn;
    void *userdata;
};

typedef struct req_ctx {
    seed_webhook *w;
    conn *k;
    char *source; /* from the URL, valid UTF-8 */
    char *body;
    size_t len;
    bool done; /* answered before the body was read */
} req_ctx;

static void webhook_kick(seed_webhook *w);

static source_entry *find_source(seed_webhook *w, const char *name) {
    for (size_t i = 0; i < w->n_sources; i++)
        if (streq(w->sources[i].name, name))
            return &w->sources[i];
    return NULL;
}

static void source_entry_clear(source_entry *s) {
    free(s->name);
    free(s->secret);
    free(s->ref);
    for (size_t i = 0; i < SEED_WEBHOOK_DELIVERIES; i++)
        free(s->ids[i]);
}

int seed_webhook_set_sources(seed_webhook *w, const seed_webhook_source *s, size_t n) {
    source_entry *t = calloc(n ? n : 1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(t[i].name = strdup(s[i].name)) || (s[i].secret && !(t[i].secret = strdup(s[i].secret))) ||
            (s[i].ref && !(t[i].ref = strdup(s[i].ref)))) {
            for (size_t j = 0; j <= i; j++)
                source_entry_clear(&t[j]);
            free(t);
            return -ENOMEM;
        }
    /* A source that stays keeps the deliveries it has seen. */
    for (size_t i = 0; i < n; i++) {
        source_entry *old = find_source(w, t[i].name);
        if (!old)
            continue;
        memcpy(t[i].ids, old->ids, sizeof(old->ids));
        memset(old->ids, 0, sizeof(old->ids));
        t[i].next_id = old->next_id;
    }
    for (size_t i = 0; i < w->n_sources; i++)
        source_entry_clear(&w->sources[i]);
    free(w->sources);
    w->sources = t;
    w->n_sources = n;
    return 0;
}

static bool seen_delivery(source_entry *s, const char *id) {
    for (size_t i = 0; i < SEED_WEBHOOK_DELIVERIES; i++)
        if (s->ids[i] && streq(s->ids[i], id))
            return true;
    return false;
}

static void remember_delivery(source_entry *s, const char *id) {
    char *copy = strdup(id);
    if (!copy)
        return; /* out of memory: a redelivery would be applied again, which is harmless */
    size_t i = s->next_id++ % SEED_WEBHOOK_DELIVERIES;
    free(s->ids[i]);
    s->ids[i] = copy;
}

static void report(seed_webhook *w, const conn *k, seed_webhook_kind kind, unsigned status,
                   const char *source, const seed_webhook_verdict *v, const char *reason) {
    seed_webhook_event ev = {
        .kind = kind,
        .source = source,
        .provider = v ? v->provider : NULL,
        .ref = v ? v->ref : NULL,
        .after = v ? v->after : NULL,
        .delivery = v ? v->delivery : NULL,
        .status = status,
        .reason = reason,
        .peer = k ? k->peer : "unknown",
    };
    w->fn(w->userdata, &ev);
}

/* ---- answers ---- */

static enum MHD_Result send_json(req_ctx *r, struct MHD_Connection *c, unsigned status, json_t *o) {
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
    enum MHD_Result res = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    if (res == MHD_YES && r->k)
        r->k->answered = true;
    return res;
}

static void set_str(json_t *o, const char *key, const char *value) {
    if (value)
        json_object_set_new(o, key, json_string(value));
}

/* Refuse: report, then answer {"error": reason}. */
static enum MHD_Result refuse(req_ctx *r, struct MHD_Connection *c, unsigned status,
                              const seed_webhook_verdict *v, const char *fmt, ...) _printf_(5, 6);
static enum MHD_Result refuse(req_ctx *r, struct MHD_Connection *c, unsigned status,
                              const seed_webhook_verdict *v, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = seed_utf8_vasprintf(fmt, ap);
    va_end(ap);
    r->done = true;
    report(r->w, r->k, SEED_WEBHOOK_REJECTED, status, r->source, v, msg ? msg : "out of memory");
    json_t *o = json_object();
    set_str(o, "error", msg ? msg : "out of memory");
    return send_json(r, c, status, o);
}

/* The source named by a path /webhook/<name>, or NULL. */
static char *source_of_url(const char *url) {
    if (!startswith(url, "/webhook/"))
        return NULL;
    const char *name = url + strlen("/webhook/");
    if (!*name || strchr(name, '/'))
        return NULL;
    char cut[MAX_NAME_SHOWN + 1];
    snprintf(cut, sizeof(cut), "%s", name);
    return seed_utf8_dup(cut);
}

static enum MHD_Result decide(req_ctx *r, struct MHD_Connection *c) {
    seed_webhook *w = r->w;
    /* Looked up again: the sources may have changed while the body arrived. */
    source_entry *s = find_source(w, r->source);
    if (!s)
        return refuse(r, c, MHD_HTTP_NOT_FOUND, NULL, "no source %s", r->source);
    seed_webhook_request req = {.body = r->body ? r->body : "", .len = r->len};
    for (size_t i = 0; i < _SEED_WEBHOOK_H_MAX; i++)
        req.h[i] = MHD_lookup_connection_value(c, MHD_HEADER_KIND, seed_webhook_header_names[i]);
    seed_webhook_verdict v;
    if (seed_webhook_parse(&req, s->secret, s->ref, &v) < 0) {
        seed_webhook_verdict_clear(&v);
        return refuse(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
    }
    if (v.kind == SEED_WEBHOOK_PUSH && v.delivery) {
        if (seen_delivery(s, v.delivery)) {
            v.kind = SEED_WEBHOOK_IGNORED;
            v.status = MHD_HTTP_OK;
            free(v.reason);
            if (asprintf(&v.reason, "delivery %s was already applied", v.delivery) < 0)
                v.reason = NULL; /* the delivery id is printable ASCII: no repair needed */
        } else
            remember_delivery(s, v.delivery);
    }
    enum MHD_Result res;
    if (v.kind == SEED_WEBHOOK_REJECTED)
        res = refuse(r, c, v.status, &v, "%s", v.reason ? v.reason : "rejected");
    else {
        json_t *o = json_object();
        set_str(o, "status",
                v.kind == SEED_WEBHOOK_PUSH   ? "accepted"
                : v.kind == SEED_WEBHOOK_PING ? "pong"
                                              : "ignored");
        set_str(o, "source", r->source);
        set_str(o, "ref", v.ref);
        set_str(o, "after", v.after);
        set_str(o, "delivery", v.delivery);
        set_str(o, "reason", v.reason);
        /* Report first: s is not used past this point (the callback may replace the
         * table of sources). */
        report(w, r->k, v.kind, v.status, r->source, &v, v.reason);
        res = send_json(r, c, v.status, o);
    }
    seed_webhook_verdict_clear(&v);
    return res;
}

/* ---- MHD callbacks ---- */

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    seed_webhook *w = cls;
    req_ctx *r = *con_cls;
    if (!r) {
        /* Headers are in: refuse what needs no body before reading it. */
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->w = w;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        r->k = ci ? ci->socket_context : NULL;
        if (r->k)
            r->k->req = r;
        *con_cls = r;
        r->source = source_of_url(url);
        if (!r->source)
            return refuse(r, c, MHD_HTTP_NOT_FOUND, NULL, "no such endpoint %.200s: POST /webhook/<source>",
                          url);
        if (!streq(method, MHD_HTTP_METHOD_POST))
            return refuse(r, c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL,
                          "method %.32s not allowed: POST /webhook/<source>", method);
        source_entry *s = find_source(w, r->source);
        if (!s)
            return refuse(r, c, MHD_HTTP_NOT_FOUND, NULL, "no source %s", r->source);
        if (!s->secret)
            return refuse(r, c, MHD_HTTP_FORBIDDEN, NULL,
                          "source %s has no webhook secret: webhooks need --webhook-secret-file", r->source);
        /* Too large: answered at once. MHD then reads no more of the body and closes. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > SEED_WEBHOOK_MAX_BODY)
            return refuse(r, c, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
                          "the body is %.20s bytes: at most %u are accepted", cl, SEED_WEBHOOK_MAX_BODY);
        return MHD_YES;
    }
    if (r->done) {
        *upload_size = 0; /* answered already: nothing more is wanted */
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->len + n > SEED_WEBHOOK_MAX_BODY) {
            /* Chunked, without a length, and now over: MHD cannot answer in the middle
             * of a body, so the connection is dropped and nothing more is read. */
            char reason[96];
            snprintf(reason, sizeof(reason), "the chunked body is over %u bytes: connection closed",
                     SEED_WEBHOOK_MAX_BODY);
            r->done = true;
            report(w, r->k, SEED_WEBHOOK_REJECTED, MHD_HTTP_CONTENT_TOO_LARGE, r->source, NULL, reason);
            return MHD_NO;
        }
        char *nb = realloc(r->body, r->len + n + 1);
        if (!nb)
            return MHD_NO;
        r->body = nb;
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    return decide(r, c);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    seed_webhook *w = cls;
    req_ctx *r = *con_cls;
    if (!r)
        return;
    if (r->k) {
        /* A next request on this connection has its own time from now. */
        r->k->req = NULL;
        r->k->answered = false;
        r->k->served++;
        r->k->deadline = seed_now_usec() + w->deadline_usec;
    }
    free(r->source);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static bool same_address(const struct sockaddr *a, const struct sockaddr_storage *b) {
    if (a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

static void format_peer(const struct sockaddr *a, char *out, size_t size) {
    const void *bytes = a->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr
                                                 : (const void *)&((const struct sockaddr_in *)a)->sin_addr;
    if (!inet_ntop(a->sa_family, bytes, out, (socklen_t)size))
        snprintf(out, size, "unknown");
}

/* Before anything is read: room for one more connection from this address? */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len) {
    seed_webhook *w = cls;
    if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
        return MHD_NO;
    unsigned n = 0;
    for (conn *k = w->conns; k; k = k->next)
        if (same_address(addr, &k->addr) && ++n >= SEED_WEBHOOK_MAX_PER_PEER) {
            char peer[INET6_ADDRSTRLEN];
            format_peer(addr, peer, sizeof(peer));
            seed_webhook_event ev = {
                .kind = SEED_WEBHOOK_REJECTED,
                .status = MHD_HTTP_TOO_MANY_REQUESTS,
                .reason = "too many connections from this address: closed at accept",
                .peer = peer,
            };
            w->fn(w->userdata, &ev);
            return MHD_NO;
        }
    return MHD_YES;
}

static uint64_t tick_usec(seed_webhook *w) {
    return MAX(MIN(w->deadline_usec / 4, TICK_MAX_USEC), 1000u);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    seed_webhook *w = cls;
    conn *k = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (!k)
            return;
        if (k->req)
            k->req->k = NULL;
        if (k->prev)
            k->prev->next = k->next;
        else
            w->conns = k->next;
        if (k->next)
            k->next->prev = k->prev;
        free(k);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ai = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ai || !fi || !(k = calloc(1, sizeof(*k))))
        return; /* untracked: only MHD's idle timeout applies (out of memory) */
    k->fd = fi->connect_fd;
    memcpy(&k->addr, ai->client_addr,
           ai->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    format_peer(ai->client_addr, k->peer, sizeof(k->peer));
    k->deadline = seed_now_usec() + w->deadline_usec;
    k->next = w->conns;
    if (w->conns)
        w->conns->prev = k;
    w->conns = k;
    *socket_context = k;
    if (!w->tick_armed && seed_timer_restart(w->tick, tick_usec(w)) >= 0)
        w->tick_armed = true;
}

/* While there are connections, a few times per deadline: cut those past it. A request
 * under way that has no answer yet gets a 408 written straight to the socket (MHD has
 * sent nothing on it but maybe "100 Continue"); an idle keep-alive connection is just
 * closed. The shutdown wakes MHD, which then closes the socket. */
#define TIMEOUT_BODY "{\"error\":\"the request did not arrive in time\"}"
#define TIMEOUT_ANSWER                                                                        \
    "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n" \
    "Content-Length: 46\r\n\r\n" TIMEOUT_BODY
_Static_assert(sizeof(TIMEOUT_BODY) - 1 == 46, "the Content-Length of TIMEOUT_ANSWER");

static int on_tick(seed_source *s, void *userdata) {
    seed_webhook *w = userdata;
    uint64_t now = seed_now_usec();
    bool cut = false;
    w->tick_armed = false;
    for (conn *k = w->conns; k; k = k->next) {
        if (!k->deadline || now < k->deadline)
            continue;
        k->deadline = 0;
        cut = true;
        bool in_request = k->req || k->served == 0;
        if (in_request && !k->answered)
            (void)!send(k->fd, TIMEOUT_ANSWER, sizeof(TIMEOUT_ANSWER) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        shutdown(k->fd, SHUT_RDWR);
        if (in_request && !k->answered) {
            char reason[96];
            snprintf(reason, sizeof(reason), "the request was not complete within %.1f s: connection closed",
                     (double)w->deadline_usec / 1e6);
            seed_webhook_verdict none = {0};
            report(w, k, SEED_WEBHOOK_REJECTED, MHD_HTTP_REQUEST_TIMEOUT, k->req ? k->req->source : NULL,
                   &none, reason);
        }
    }
    if (cut)
        webhook_kick(w);
    if (w->conns && !w->tick_armed && seed_timer_restart(w->tick, tick_usec(w)) >= 0)
        w->tick_armed = true;
    return 0;
}

/* ---- the loop ---- */

static int on_timer(seed_source *s, void *userdata) {
    webhook_kick(userdata);
    return 0;
}

static void webhook_kick(seed_webhook *w) {
    MHD_run(w->d);
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(w->d, &ms) == MHD_YES) {
        uint64_t usec = (uint64_t)ms * 1000;
        if (w->timer)
            seed_timer_restart(w->timer, usec);
        else
            seed_loop_add_timer(w->loop, usec, on_timer, w, &w->timer);
    }
}

static int on_epoll(seed_source *s, int fd, uint32_t events, void *userdata) {
    webhook_kick(userdata);
    return 0;
}

/* "127.0.0.1:9000", "[::1]:9000", "0.0.0.0:0" -> a bound, listening socket. */
static int listen_on(const char *addr_port, int *ret, unsigned *port, seed_error **err) {
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(addr_port, ':');
    const char *h = addr_port;
    size_t hl = colon ? (size_t)(colon - addr_port) : 0;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    char *end = NULL;
    unsigned long p = colon ? strtoul(colon + 1, &end, 10) : 0;
    if (!colon || hl == 0 || hl >= sizeof(host) || !colon[1] || *end || p > 65535 || colon[1] == '-' ||
        colon[1] == '+')
        return seed_error_set(err, EINVAL,
                              "webhook address %.100s: expected ADDR:PORT, e.g. 127.0.0.1:9000 or [::1]:9000",
                              addr_port);
    memcpy(host, h, hl);
    host[hl] = 0;
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)p);
        sl = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)p);
        sl = sizeof(*v6);
    } else
        return seed_error_set(err, EINVAL, "webhook address %.100s: %s is not an IPv4 or IPv6 address",
                              addr_port, host);
    _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return seed_error_setp(err, errno, "webhook socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
        return seed_error_setp(err, errno, "listening for webhooks on %s", addr_port);
    if (listen(fd, 256) < 0)
        return seed_error_setp(err, errno, "listening for webhooks on %s", addr_port);
    sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return seed_error_setp(err, errno, "listening for webhooks on %s", addr_port);
    *port = ntohs(ss.ss_family == AF_INET6 ? v6->sin6_port : v4->sin_port);
    *ret = TAKE_FD(fd);
    return 0;
}

int seed_webhook_new(seed_loop *loop, const char *addr_port, seed_webhook_fn fn, void *userdata,
                     seed_webhook **ret, seed_error **err) {
    seed_webhook *w = calloc(1, sizeof(*w));
    if (!w)
        return seed_error_set(err, ENOMEM, "out of memory");
    w->loop = loop;
    w->fn = fn;
    w->userdata = userdata;
    w->listen_fd = -1;
    w->deadline_usec = SEED_WEBHOOK_DEADLINE_S * 1000000ull;
    int r = listen_on(addr_port, &w->listen_fd, &w->port, err);
    if (r < 0)
        goto fail;
    r = seed_loop_add_timer(loop, UINT64_MAX / 2, on_tick, w, &w->tick);
    if (r < 0) {
        seed_error_setp(err, -r, "starting the webhook server");
        goto fail;
    }
    w->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_TURBO, 0, accept_policy, w, handle, w,
                            MHD_OPTION_LISTEN_SOCKET, w->listen_fd, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)SEED_WEBHOOK_DEADLINE_S, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)SEED_WEBHOOK_MAX_CONNECTIONS, MHD_OPTION_NOTIFY_COMPLETED, completed, w,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, w, MHD_OPTION_END);
    if (!w->d) {
        r = seed_error_set(err, EIO, "starting the webhook server on %s failed", addr_port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_EPOLL_FD);
    r = di ? seed_loop_add_io(loop, di->epoll_fd, EPOLLIN, on_epoll, w, &w->epoll_src) : -EIO;
    if (r < 0) {
        seed_error_setp(err, -r, "watching the webhook server");
        goto fail;
    }
    *ret = w;
    return 0;
fail:
    seed_webhook_free(w);
    return r;
}

unsigned seed_webhook_port(seed_webhook *w) {
    return w->port;
}

void seed_webhook_set_deadline(seed_webhook *w, uint64_t usec) {
    w->deadline_usec = usec ? usec : 1;
}

void seed_webhook_free(seed_webhook *w) {
    if (!w)
        return;
    seed_source_free(w->epoll_src);
    seed_source_free(w->timer);
    seed_source_free(w->tick);
    if (w->d)
        MHD_stop_daemon(w->d); /* closes the listening socket too */
    else if (w->listen_fd >= 0)
        close(w->listen_fd);
    for (size_t i = 0; i < w->n_sources; i++)
        source_entry_clear(&w->sources[i]);
    free(w->sources);
    free(w);
}
