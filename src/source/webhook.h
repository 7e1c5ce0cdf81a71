/* Push webhooks: POST /webhook/<source> from GitHub, Gitea/Forgejo or GitLab, checked
 * against the source's secret and reported to the daemon through one callback. The
 * HTTP server runs on the daemon's seed_loop (see webhook.c); seed_webhook_parse() is
 * the pure part (headers + body -> verdict), separate so that it can be fuzzed. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/event.h"

#define SEED_WEBHOOK_MAX_BODY (1u << 20) /* larger bodies get 413, unread */
#define SEED_WEBHOOK_MAX_DEPTH 64        /* JSON nesting; deeper is a 400 */
#define SEED_WEBHOOK_DEADLINE_S 10       /* to send a whole request, from accept */
#define SEED_WEBHOOK_MAX_PER_PEER 16     /* open connections of one client address */
#define SEED_WEBHOOK_MAX_CONNECTIONS 512
#define SEED_WEBHOOK_DELIVERIES 256 /* delivery ids remembered per source */

typedef struct seed_webhook seed_webhook;

typedef struct seed_webhook_source {
    const char *name;
    const char *secret; /* NULL: this source refuses webhooks (403) */
    /* The ref tracked, "refs/heads/main" or "refs/tags/v1" ("main" is taken as a branch).
     * NULL: the remote HEAD's branch, known from the payload's default branch when it
     * names one (every push is delivered when it does not). */
    const char *ref;
} seed_webhook_source;

typedef enum {
    SEED_WEBHOOK_PUSH,     /* a new commit on the tracked ref: fetch and apply */
    SEED_WEBHOOK_PING,     /* a provider checking the hook (GitHub "ping") */
    SEED_WEBHOOK_IGNORED,  /* authentic, but nothing to do (other ref, other event, redelivery) */
    SEED_WEBHOOK_REJECTED, /* refused: status and reason say why */
} seed_webhook_kind;

typedef struct seed_webhook_event {
    seed_webhook_kind kind;
    const char *source;   /* as named in the URL; NULL when the path named none */
    const char *provider; /* "github", "gitea" (Forgejo too), "gitlab"; NULL if unknown */
    const char *ref;      /* the pushed ref, or NULL */
    const char *after;    /* the new commit id (hex), or NULL */
    const char *delivery; /* the provider's delivery id, or NULL */
    unsigned status;      /* the HTTP status answered (408: cut by the deadline) */
    const char *reason;   /* for IGNORED and REJECTED */
    const char *peer;     /* the client's address */
} seed_webhook_event;

/* Called on the loop's thread for every request that ends (each push exactly once,
 * redeliveries as IGNORED). Must not block and must not free the webhook server;
 * seed_webhook_set_sources() is allowed. The strings live until it returns. */
typedef void (*seed_webhook_fn)(void *userdata, const seed_webhook_event *ev);

/* Listen on addr_port ("127.0.0.1:9000", "[::1]:9000", "0.0.0.0:0", ...). */
int seed_webhook_new(seed_loop *loop, const char *addr_port, seed_webhook_fn fn, void *userdata,
                     seed_webhook **ret, seed_error **err);
/* Replace the table of sources (copied; the delivery ids of a source that stays are
 * kept). Returns 0 or -ENOMEM (the old table is kept then). */
int seed_webhook_set_sources(seed_webhook *w, const seed_webhook_source *s, size_t n);
/* The port bound (useful after ":0"). */
unsigned seed_webhook_port(seed_webhook *w);
/* The whole-request deadline (default SEED_WEBHOOK_DEADLINE_S); for tests. */
void seed_webhook_set_deadline(seed_webhook *w, uint64_t usec);
void seed_webhook_free(seed_webhook *w);

/* ---- the pure part ---- */

/* The request headers seed_webhook_parse() reads. */
typedef enum {
    SEED_WEBHOOK_H_CONTENT_TYPE,
    SEED_WEBHOOK_H_GITHUB_EVENT,
    SEED_WEBHOOK_H_GITHUB_SIGNATURE, /* X-Hub-Signature-256 */
    SEED_WEBHOOK_H_GITHUB_DELIVERY,
    SEED_WEBHOOK_H_GITEA_EVENT,
    SEED_WEBHOOK_H_GITEA_SIGNATURE,
    SEED_WEBHOOK_H_GITEA_DELIVERY,
    SEED_WEBHOOK_H_FORGEJO_EVENT,
    SEED_WEBHOOK_H_FORGEJO_SIGNATURE,
    SEED_WEBHOOK_H_FORGEJO_DELIVERY,
    SEED_WEBHOOK_H_GITLAB_EVENT,
    SEED_WEBHOOK_H_GITLAB_TOKEN,
    SEED_WEBHOOK_H_GITLAB_UUID,        /* X-Gitlab-Event-UUID */
    SEED_WEBHOOK_H_GITLAB_IDEMPOTENCY, /* Idempotency-Key: the same on GitLab's retries */
    _SEED_WEBHOOK_H_MAX,
} seed_webhook_header;

extern const char *const seed_webhook_header_names[_SEED_WEBHOOK_H_MAX];

typedef struct seed_webhook_request {
    const char *h[_SEED_WEBHOOK_H_MAX]; /* NULL when absent */
    const char *body;                   /* the raw body, as signed */
    size_t len;
} seed_webhook_request;

typedef struct seed_webhook_verdict {
    seed_webhook_kind kind;
    unsigned status;      /* HTTP status to answer */
    const char *provider; /* static, or NULL */
    char *ref, *after, *delivery;
    char *reason; /* IGNORED, REJECTED */
} seed_webhook_verdict;

/* Decide on a request for a source with this secret (NULL: none) and tracked ref (see
 * seed_webhook_source). Only the redelivery check is left to the caller. Returns 0
 * with *out filled, or -ENOMEM. */
int seed_webhook_parse(const seed_webhook_request *req, const char *secret, const char *tracked_ref,
                       seed_webhook_verdict *out);
void seed_webhook_verdict_clear(seed_webhook_verdict *v);
