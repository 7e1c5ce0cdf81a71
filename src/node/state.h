/* The node's state store (SQLite, WAL mode): which slot each instance holds (its
 * uid range and address, stable across restarts) and the volumes that exist. The CLI
 * may read it while a node runs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

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
