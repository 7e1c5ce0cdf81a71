/* What a sandboxed process may do: a capability set no larger than Docker's default
 * (smaller: no NET_RAW, MKNOD, SYS_CHROOT, SETFCAP, SETPCAP, AUDIT_WRITE), no_new_privs,
 * and a seccomp allowlist at least as strict as Docker's default profile. The filter
 * is compiled once in the node and loaded by each child before it execs. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

typedef struct seed_security {
    struct sock_fprog prog; /* compiled seccomp filter */
    int prog_fd;            /* the same in a sealed memfd, for processes that load it themselves */
    uint64_t keep_caps;     /* bit per capability kept */
} seed_security;

int seed_security_new(seed_security **ret, seed_error **err);
void seed_security_free(seed_security *s);
DEFINE_CLEANUP_FUNC(seed_security, seed_security_free)

/* Child side (security-apply.c, raw system calls): drop capabilities (bounding,
 * permitted, effective, inheritable, ambient) to keep, set no_new_privs and load the
 * filter. Each returns -errno and names the step in *what on failure. */
int seed_security_apply(const seed_security *s, const char **what);
int seed_security_apply_caps(uint64_t keep, const char **what);
int seed_security_apply_filter(const struct sock_fprog *prog, const char **what);
