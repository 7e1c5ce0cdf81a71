/* The node's state store (SQLite, WAL mode): which slot each instance holds (its
 * uid range and address, stable across restarts) and the volumes that exist. The CLI
 * may read it while a node runs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct json_t;

typedef struct seed_state seed_state;

typedef struct seed_volume_row {
    char *namespace;
    char *instance;
    char *name;
    uint64_t size_bytes;
    char *image;   /* path of the filesystem image */
    uint32_t uid;  /* owner of the filesystem root (the instance's root, outside) */
    char *created; /* RFC 3339 */
} seed_volume_row;

int seed_state_open(const char *path, bool readonly, seed_state **ret, seed_error **err);
void seed_state_close(seed_state *s);
DEFINE_CLEANUP_FUNC(seed_state, seed_state_close)

/* The slot of (namespace, name): the one it had, or the lowest free one below max. */
int seed_state_slot(seed_state *s, const char *ns, const char *name, unsigned max, unsigned *slot,
                    seed_error **err);

int seed_state_volume_put(seed_state *s, const seed_volume_row *v, seed_error **err);
/* 0 and *ret filled, or -ENOENT. */
int seed_state_volume_get(seed_state *s, const char *ns, const char *inst, const char *name,
                          seed_volume_row *ret);
int seed_state_volume_list(seed_state *s, seed_volume_row **ret, size_t *n);
int seed_state_volume_delete(seed_state *s, const char *ns, const char *inst, const char *name);
void seed_volume_row_clear(seed_volume_row *v);

/* An instance held stopped by `seed stop`: it stays stopped, across node restarts,
 * until `seed start` or `seed restart`. */
int seed_state_set_held(seed_state *s, const char *ns, const char *name, bool held);
bool seed_state_is_held(seed_state *s, const char *ns, const char *name);

/* Node settings that must outlive a killed node (e.g. what the host had before the
 * node changed it). get: 0 and the value, or -ENOENT. set: NULL value deletes. */
int seed_state_setting_get(seed_state *s, const char *key, char *buf, size_t size);
int seed_state_setting_set(seed_state *s, const char *key, const char *value);
void seed_volume_rows_free(seed_volume_row *v, size_t n);

/* Sources a daemon serves (`seed source add`). */
typedef struct seed_source_row {
    char *name;
    char *url;
    char *ref;         /* NULL: the remote's HEAD */
    char *secret_file; /* NULL: webhooks refused */
    unsigned poll_s;   /* 0: no polling */
    char *created;
} seed_source_row;
int seed_state_source_put(seed_state *s, const seed_source_row *row);
int seed_state_source_list(seed_state *s, seed_source_row **ret, size_t *n);
int seed_state_source_delete(seed_state *s, const char *name);
void seed_source_rows_free(seed_source_row *r, size_t n);

/* Generations: one row per apply of a source. begin returns the new generation
 * number (1, 2, ...) in *gen; finish records the outcome and the per-instance actions
 * (a JSON array, as `seed history --json` shows them). */
int seed_state_generation_begin(seed_state *s, const char *source, const char *ns, const char *revision,
                                const char *tree, const char *trigger, unsigned *gen);
int seed_state_generation_finish(seed_state *s, const char *source, unsigned gen, const char *result,
                                 const char *error, struct json_t *actions);
/* The history of one source (NULL: all), newest last; at most limit rows. */
struct json_t *seed_state_history(seed_state *s, const char *source, unsigned limit);
/* What generation gen of source applied: 0 with *revision and *tree (malloc'd, may be
 * NULL) and *result, or -ENOENT. */
int seed_state_generation_get(seed_state *s, const char *source, unsigned gen, char **revision, char **tree,
                              char **result);
/* The newest generation of a source whose result was "ok": 0 and *gen, or -ENOENT. */
int seed_state_generation_last_ok(seed_state *s, const char *source, unsigned *gen);
/* At most this many generations are kept per source (the oldest go). */
#define SEED_STATE_MAX_GENERATIONS 1000
/* The trees (exported commits) of the newest `limit` generations: kept for rollbacks. */
struct json_t *seed_state_generation_trees(seed_state *s, const char *source, unsigned limit);
/* Remove a source's generations (seed source rm). */
int seed_state_generations_delete(seed_state *s, const char *source);

/* Events: what the node did, newest kept (SEED_STATE_MAX_EVENTS). Returns the event
 * as JSON (the caller owns it) or NULL. */
#define SEED_STATE_MAX_EVENTS 10000
struct json_t *seed_state_event_add(seed_state *s, const char *kind, const char *source, const char *instance,
                                    const char *message);
/* Events after id `after`, oldest first, at most limit (the newest ones). */
struct json_t *seed_state_events(seed_state *s, int64_t after, unsigned limit);

/* Instances running under a seedd, for the next daemon to adopt: one JSON record each
 * (namespace, name, alt, source, identity, tree, pid, ...; see node/adopt). */
int seed_state_running_put(seed_state *s, const char *ns, const char *name, bool alt, struct json_t *record);
int seed_state_running_delete(seed_state *s, const char *ns, const char *name, bool alt);
struct json_t *seed_state_running_list(seed_state *s);
int seed_state_running_clear(seed_state *s);
