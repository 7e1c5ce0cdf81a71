/* One message with file descriptors attached (SCM_RIGHTS) over a Unix socket. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SEED_FDPASS_MAX 4

/* Send iov-style: a header and a payload (either may be empty) and n fds. */
ssize_t seed_send_fds(int sock, const void *hdr, size_t hdr_len, const void *payload, size_t payload_len,
                      const int *fds, size_t n_fds, int flags);
/* Receive one message into buf; received fds (close-on-exec) go to fds, their count
 * to *n_fds. Returns the byte count, 0 on EOF, -errno on error. Extra or truncated
 * descriptors are closed and reported as -EBADMSG. */
ssize_t seed_recv_fds(int sock, void *buf, size_t len, int *fds, size_t *n_fds, int flags);

/* The next connection on a listening Unix socket whose peer is root or our own user
 * (non-blocking, close-on-exec); others are closed. -1 when none is pending. */
int seed_accept_trusted(int listen_fd);
