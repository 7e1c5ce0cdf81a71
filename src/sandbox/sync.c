/* Parent/child setup protocol. */
#include "sandbox/sync.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int seed_sync_send(int fd, int type, int err, const char *msg) {
    seed_sync_msg m = {.type = type, .err = err};
    if (msg)
        snprintf(m.msg, sizeof(m.msg), "%s", msg);
    ssize_t n;
    do
        n = send(fd, &m, sizeof(m), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return negative_errno();
    return n == (ssize_t)sizeof(m) ? 0 : -EIO;
}

int seed_sync_recv(int fd, seed_sync_msg *m) {
    ssize_t n;
    do
        n = recv(fd, m, sizeof(*m), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return negative_errno();
    if (n == 0)
        return -EPIPE;
    if (n != (ssize_t)sizeof(*m))
        return -EBADMSG;
    m->msg[sizeof(m->msg) - 1] = 0;
    return 0;
}

void seed_die(int syncfd, int err, const char *fmt, ...) {
    char buf[sizeof(((seed_sync_msg *)0)->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    seed_sync_send(syncfd, SEED_SYNC_ERROR, err, buf);
    _exit(1);
}
