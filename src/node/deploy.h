/* Internal to the node: the sources it serves and the applies that bring their
 * instances to what they declare (sources.c), and the executor of a plan: steps,
 * rollouts, readiness (apply.c). */
#pragma once

#include <stdbool.h>

#include "node/node-internal.h"
#include "plan/plan.h"
#include "source/fetch.h"

struct json_t;

/* Someone waiting for an apply: called once with its result (a JSON object: the
 * reply), and before that with the plan as soon as it is known. */
typedef struct apply_waiter {
    void (*plan)(struct apply_waiter *w, struct json_t *plan);
    void (*done)(struct apply_waiter *w, struct json_t *result);
    struct apply_waiter *next;
} apply_waiter;

typedef struct apply_request {
    char trigger[16]; /* "start", "cli", "sighup", "webhook", "poll", "rollback", "source-add" */
    bool dry_run;
    char *only;        /* one instance (seed apply NAME), or NULL */
    unsigned rollback; /* a recorded generation to re-apply; 0: the source as it is now */
    apply_waiter *waiters;
} apply_request;

typedef struct node_apply node_apply;

typedef struct node_source {
    node *node;
    char *name;
    char *url; /* as added */
    char *ref;
    char *secret_file;
    unsigned poll_s;
    bool persistent; /* in the state database (seedd), or seed up's own */
    bool git;
    char *dir;       /* a directory source's project directory */
    char *cache_dir; /* <state>/sources/<name> */
    char *uri;
    char namespace[16];
    char *hosts_path; /* /etc/hosts of the namespace, bound into each instance */
    /* What happened last. */
    char revision[48];
    unsigned generation;
    char *result, *error;
    char *applied_at;
    unsigned pinned;         /* rollback: generation held until the next push or seed apply */
    node_project *preloaded; /* seed up: the project it checked before starting */
    node_apply *apply;       /* running */
    apply_request *queued;   /* the next one; later requests coalesce into it */
    seed_source *poll_timer, *kick;
    struct seed_fetch *fetch;
    apply_request *fetching; /* the request a fetch runs for */
    seed_fetch_url fu;
    char *secret; /* the webhook secret, or NULL */
    bool removing;
    apply_waiter *rm_waiters;
} node_source;

/* sources.c */
int node_source_new(node *n, const char *name, const char *url, const char *ref, const char *secret_file,
                    unsigned poll_s, bool persistent, node_source **ret, seed_error **err);
void node_source_free(node_source *s);
node_source *node_source_find(node *n, const char *name);
/* Queue an apply of s; an apply already queued takes this one's waiter and trigger. */
void node_source_request(node_source *s, const char *trigger, bool dry_run, const char *only,
                         unsigned rollback, apply_waiter *w);
/* Forget a waiter that went away. */
void node_source_forget(node *n, apply_waiter *w);
/* seed source rm: stop its instances (volumes kept), then forget it. */
void node_source_remove(node_source *s, apply_waiter *w);
struct json_t *node_source_json(node_source *s);
/* Rewrite the namespace's /etc/hosts from its serving instances. */
void node_source_write_hosts(node_source *s);
void node_source_set_uri(node_source *s, const char *uri);
bool node_source_settled(node_source *s); /* no instances, no apply */
void node_source_finish_remove(node_source *s);
void node_source_remove_continue(node_source *s);
/* SIGHUP: read the webhook secret file again (a rotated secret). */
void node_source_reload_secret(node_source *s);
/* Stop every instance gracefully (SIGTERM, seed down); the loop ends when they are. */
void node_stop_all(node *n);
/* The set of sources changed: poll timers and the webhook table follow. */
void node_sources_changed(node *n);
/* An instance changed: a source being removed, or with retired instances, looks. */
void node_source_instance_changed(instance *in);

/* apply.c */
/* Run plan for project np (loaded from revision/tree) on s's instances; on_done is
 * called when it finished (the callee frees it). */
typedef void (*node_apply_done_fn)(node_apply *a, void *userdata);
int node_apply_start(node_source *s, apply_request *req, node_project *np, const char *revision,
                     const char *tree, node_apply_done_fn on_done, void *done_ud, node_apply **ret,
                     seed_error **err);
void node_apply_free(node_apply *a);
void node_apply_run(node_apply *a);
void node_apply_advance(node_apply *a);
apply_waiter **node_apply_waiters(node_apply *a);
bool node_apply_dry_run(const node_apply *a);
/* The result of a finished apply, for waiters: {"ok":..., "generation":..., ...}. */
struct json_t *node_apply_result(node_apply *a);
bool node_apply_failed(const node_apply *a);
unsigned node_apply_generation(const node_apply *a);
/* An instance's state changed; the step that waits on it (if any) moves on. */
void apply_instance_changed(instance *in);
