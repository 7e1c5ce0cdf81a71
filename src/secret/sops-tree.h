/* The document tree sops works on, shared by the decryptor (sops.c) and the format
 * readers and writers (sops-formats.c). Map items keep their file order: the MAC
 * depends on it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "secret/sops.h"

typedef enum sops_kind { SOPS_MAP, SOPS_LIST, SOPS_SCALAR } sops_kind;
typedef enum sops_type { SOPS_STR, SOPS_INT, SOPS_FLOAT, SOPS_BOOL, SOPS_NULL } sops_type;

typedef struct sops_node {
    sops_kind kind;
    sops_type type; /* scalars */
    char *key;      /* the item's key when the parent is a map */
    char *text;     /* scalars: NUL-terminated; may hold plaintext after decryption */
    size_t len;
    bool plain; /* text holds decrypted plaintext (overwritten on free) */
    struct sops_node **kids;
    size_t n_kids;
} sops_node;

sops_node *sops_node_new(sops_kind kind);
/* Append kid to parent (a map or list); kid->key set by the caller for maps. */
int sops_node_add(sops_node *parent, sops_node *kid);
void sops_node_free(sops_node *n);
DEFINE_CLEANUP_FUNC(sops_node, sops_node_free)
/* A map's item by key (NULL if absent). */
sops_node *sops_node_get(const sops_node *map, const char *key);

/* Read a document into a tree whose root is a map. dotenv metadata (sops_… keys,
 * flattened with __map_ and __list_) is unflattened into a "sops" map. */
int sops_load(const char *data, size_t len, seed_sops_format f, sops_node **ret, seed_error **err);
/* Write a decrypted tree (without its "sops" item) in format f. */
int sops_emit(const sops_node *root, seed_sops_format f, char **ret, size_t *ret_len, seed_error **err);
/* A YAML/JSON float's text as Go's strconv.FormatFloat(v, 'f', -1, 64) writes it
 * (what sops feeds the MAC for an unencrypted float). */
int sops_go_float(const char *text, char **ret);
