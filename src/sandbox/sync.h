/* The parent/child protocol during sandbox setup: typed records over a SEQPACKET
 * socketpair. The child reports a failure as errno + message before it exits, so
 * the parent can say what went wrong; a successful exec closes the child's end
 * (it is close-on-exec), which the parent reads as success. */
#pragma once

#include "base/macro.h"

enum {
    SEED_SYNC_GO = 1,    /* parent → child: maps, cgroups and links are in place */
    SEED_SYNC_ERROR = 2, /* child → parent: setup failed */
};

typedef struct seed_sync_msg {
    int32_t type;
    int32_t err; /* positive errno */
    char msg[504];
} seed_sync_msg;

int seed_sync_send(int fd, int type, int err, const char *msg);
/* 0 with *m filled, -EPIPE when the peer closed its end, other negative errno. */
int seed_sync_recv(int fd, seed_sync_msg *m);

/* Only for a forked child between clone and exec (docs/errors.md rule 5): report
 * errno and a message to the parent, then _exit. */
_noreturn_ void seed_die(int syncfd, int err, const char *fmt, ...) _printf_(3, 4);
