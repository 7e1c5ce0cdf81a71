/* The node: runs a project's instances on this machine and keeps them running. A
 * library, so that `seed up` (foreground) and a later seedd daemon share it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

typedef struct seed_node_options {
    const char *source;            /* project directory (default ".") */
    const char *uri;               /* namespace source URI override */
    const char *state_dir;         /* default /var/lib/seed */
    const char *bind;              /* address exposed ports are published on; default 127.0.0.1 */
    const char *subnet;            /* instance subnet; default 10.77.0.0/16 */
    bool egress;                   /* let instances reach out through the node (NAT) */
    unsigned grace_ms;             /* SIGTERM to SIGKILL; default 10000 */
    const char *init_path;         /* seed-init binary; default next to the running binary */
    const char *shoot_client_path; /* seed-shoot binary; default next to the running binary */
    unsigned shoot_warm;           /* warm sandboxes per shoot-enabled instance (default 8) */
    unsigned shoot_max;            /* shoots running at once (default 64) */
    unsigned shoot_queue_ms;       /* wait for a sandbox before 503 (default 2000) */
    size_t shoot_output_max;       /* bytes per output stream in an answer, as sent (default 16 MiB) */
    unsigned shoot_templates;      /* templates per shoot-enabled instance (default: CPUs) */
    uint64_t shoot_memory;         /* memory limits of running instances and shoots, at most
                                      (default: half of MemTotal) */
    bool daemon;                   /* seedd: the sources in the state database, not `source` */
    const char *webhook;           /* seedd --webhook ADDR:PORT */
    uint64_t max_tree;             /* seedd --max-tree: bytes a git source's tree may hold (0: 4Gi) */
    void (*ready)(void *userdata); /* called once the node serves (seedd: sd_notify) */
    void *ready_userdata;
} seed_node_options;

#define SEED_DEFAULT_STATE_DIR "/var/lib/seed"
#define SEED_DEFAULT_BIND "127.0.0.1"
#define SEED_DEFAULT_SUBNET "10.77.0.0/16"
#define SEED_CONTROL_SOCKET "seed.sock"
#define SEED_STATE_DB "seed.db"    /* in the state directory */
#define SEED_NODE_LOCK "node.lock" /* held by the running node */
#define SEED_SHOOT_PORT 7070       /* the pool manager, on the node's address of the instance network */

/* Evaluate the project, start every instance, serve the control socket, and stop
 * everything gracefully on SIGINT/SIGTERM. Returns 0 after a clean stop, or a
 * negative errno with *err set when the node could not start. Spec errors are
 * printed and make it return -EINVAL before anything starts. */
int seed_node_run(const seed_node_options *opts, seed_error **err);
