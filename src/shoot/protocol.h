/* The shoot protocol between the node, a caller's shoot templates and their warm
 * sandboxes. SOCK_SEQPACKET, one message per record, a fixed header, file descriptors
 * in SCM_RIGHTS.
 *
 *   node -> template   SPAWN            [cgroup.procs of the sandbox's cgroup, per hierarchy]
 *   template -> sandbox GO              (id maps written)
 *   template -> node   SPAWNED          [pidfd of the new sandbox, its control socket]
 *                      SPAWN_FAILED     err, message
 *   sandbox -> node    READY | FAILED   err, message
 *   node -> sandbox    RUN              payload below; [stdin, stdout, stderr]
 *   sandbox -> node    EXITED           arg: wait status of the command
 *
 * The sandbox moves itself into its cgroup by writing "0" to the cgroup.procs fds the
 * node opened: the kernel checks the opener's permission, and no blocking cgroup
 * migration ever runs on the node's event loop.
 *
 * RUN payload: uint32 argc, uint32 envc, then NUL-terminated strings: cwd, argv...,
 * env... A template reads its configuration from fd 3 ("keep_caps" and "hostname",
 * JSON), talks to the node on fd 4 and finds the compiled seccomp filter on fd 5. */
#pragma once

#include <stdint.h>

enum {
    SEED_SHOOT_SPAWN = 1,
    SEED_SHOOT_SPAWNED = 2,
    SEED_SHOOT_SPAWN_FAILED = 3,
    SEED_SHOOT_GO = 10,
    SEED_SHOOT_READY = 11,
    SEED_SHOOT_RUN = 12,
    SEED_SHOOT_EXITED = 13,
    SEED_SHOOT_FAILED = 14,
};

typedef struct seed_shoot_hdr {
    uint32_t type;
    int32_t err;
    uint32_t arg;
    uint32_t len; /* bytes of payload after the header */
} seed_shoot_hdr;

#define SEED_SHOOT_TEMPLATE_ARG "--shoot-template"
#define SEED_SHOOT_MAX_MSG (2u << 20)
