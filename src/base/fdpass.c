/* SCM_RIGHTS send and receive. */
#include "base/fdpass.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

ssize_t seed_send_fds(int sock, const void *hdr, size_t hdr_len, const void *payload, size_t payload_len,
                      const int *fds, size_t n_fds, int flags) {
    struct iovec iov[2] = {{(void *)hdr, hdr_len}, {(void *)payload, payload_len}};
    union {
        char buf[CMSG_SPACE(sizeof(int) * SEED_FDPASS_MAX)];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = payload_len ? 2 : 1};
    if (n_fds > SEED_FDPASS_MAX)
        return -EINVAL;
    if (n_fds > 0) {
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
    }
    ssize_t n;
    do
        n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t seed_recv_fds(int sock, void *buf, size_t len, int *fds, size_t *n_fds, int flags) {
    struct iovec iov = {buf, len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * SEED_FDPASS_MAX)];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    ssize_t n;
    do
        n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    size_t got = 0;
    bool bad = (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *p = (int *)CMSG_DATA(c);
        for (size_t i = 0; i < k; i++) {
            if (fds && got < SEED_FDPASS_MAX)
                fds[got++] = p[i];
            else
                close(p[i]);
        }
    }
    if (n_fds)
        *n_fds = got;
    if (bad) {
        for (size_t i = 0; i < got; i++)
            close(fds[i]);
        if (n_fds)
            *n_fds = 0;
        return -EBADMSG;
    }
    return n;
}

int seed_accept_trusted(int listen_fd) {
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return -1;
        struct ucred cred;
        socklen_t l = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &l) == 0 &&
            (cred.uid == 0 || cred.uid == geteuid()))
            return fd;
        close(fd);
    }
}
