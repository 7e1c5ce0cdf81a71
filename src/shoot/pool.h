/* The pool manager: for every shoot-enabled instance, warm sandboxes made ahead of
 * time by that instance's templates, handed out one per request, and refilled in the
 * background. A shoot starts when its instance runs fewer than its shoot.max, the node
 * fewer than max_running, and the memory limits of the running instances and shoots
 * leave room for its own within memory_budget; until then it waits in its pool's
 * queue, at most queue_ms, and is then turned away (503). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/event.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"
#include "shoot/request.h"

typedef struct seed_shoot_config {
    unsigned warm;          /* warm sandboxes kept per caller */
    unsigned max_running;   /* shoots running at once on the node */
    unsigned queue_ms;      /* how long a request waits for a sandbox, then 503 */
    size_t output_max;      /* bytes per output stream in a response, as encoded; the rest is dropped */
    uint64_t memory_budget; /* 0: none */
    /* The memory limits of the node's running instances, summed (for memory_budget). */
    uint64_t (*instances_memory)(void *userdata);
    void *userdata;
} seed_shoot_config;

#define SEED_SHOOT_DEFAULT_WARM 8
#define SEED_SHOOT_DEFAULT_MAX_RUNNING 64
#define SEED_SHOOT_DEFAULT_QUEUE_MS 2000
#define SEED_SHOOT_DEFAULT_OUTPUT_MAX (16u << 20)

typedef struct seed_shoot_engine seed_shoot_engine;
typedef struct seed_shoot_pool seed_shoot_pool;
typedef struct seed_shoot seed_shoot;

typedef enum seed_shoot_status {
    SEED_SHOOT_OK,    /* the command ran: see the output */
    SEED_SHOOT_BUSY,  /* no sandbox within the queue time: 503 */
    SEED_SHOOT_ERROR, /* the pool could not run it: 500 with message */
} seed_shoot_status;

typedef struct seed_shoot_result {
    seed_shoot_status status;
    const char *message;     /* SEED_SHOOT_BUSY / SEED_SHOOT_ERROR */
    seed_shoot_reply *reply; /* SEED_SHOOT_OK: the response body, the callee's to free */
} seed_shoot_result;

typedef void (*seed_shoot_done_fn)(void *userdata, const seed_shoot_result *r);

int seed_shoot_engine_new(seed_loop *loop, const seed_shoot_config *cfg, const seed_cgroup_ops *ops,
                          seed_shoot_engine **ret);
void seed_shoot_engine_free(seed_shoot_engine *e);

/* A caller's pool. cgroup_base is the cgroup directory under which its templates and
 * shoots get theirs; lim are the caller's size-tier limits, applied to each shoot;
 * max_running (shoot.max) of its shoots run at once, and cgroup_base itself is capped
 * at max_running times lim, so that all of them together cannot take more. */
int seed_shoot_pool_new(seed_shoot_engine *e, const char *name, const char *cgroup_base,
                        const seed_limits *lim, unsigned max_running, seed_shoot_pool **ret,
                        seed_error **err);
unsigned seed_shoot_pool_max_running(const seed_shoot_pool *p);
/* Hand the pool a running template (its sandbox and the node's end of its channel). */
int seed_shoot_pool_add_template(seed_shoot_pool *p, seed_sandbox *sb, int chan);
/* The template's cgroup for the i-th template (created with the pool's limits). */
int seed_shoot_pool_template_cgroup(seed_shoot_pool *p, unsigned i, seed_cgroup **ret, seed_error **err);
/* Kill everything of the pool; queued and running shoots finish with an error. */
void seed_shoot_pool_free(seed_shoot_pool *p);

/* Run a request (taken over) for the pool's caller; done is called exactly once,
 * unless the shoot is abandoned first. */
int seed_shoot_start(seed_shoot_pool *p, seed_shoot_request *req, seed_shoot_done_fn done, void *userdata,
                     seed_shoot **ret);
/* The requester went away: end the shoot now, without calling done. */
void seed_shoot_abandon(seed_shoot *s);
