/* Published ports: a listening socket in the host's network namespace on --bind, and
 * for each client a connection to the instance's address in the node's namespace,
 * relayed both ways. TCP half-closes are passed on; UDP clients get a session socket
 * each, dropped after a minute of silence. */
#include "node/proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node/network.h"

#define RELAY_BUF (64u << 10)
#define MAX_TCP_CONNS 4096
#define MAX_UDP_SESSIONS 1024
#define UDP_IDLE_USEC (60ull * 1000000)

typedef struct relay_dir {
    char *buf;
    size_t off, len;
    bool eof;  /* the reading side closed */
    bool shut; /* the write side was shut down after eof */
} relay_dir;

typedef struct tcp_conn {
    seed_proxy *p;
    int client, backend;
    seed_source *client_src, *backend_src;
    bool connected;
    struct in_addr to; /* the backend it was relayed to (a switch does not move it) */
    relay_dir up;      /* client -> backend */
    relay_dir down;    /* backend -> client */
    struct tcp_conn *prev, *next;
} tcp_conn;

typedef struct udp_session {
    seed_proxy *p;
    union {
        struct sockaddr_in6 v6;
        struct sockaddr_in v4;
        struct sockaddr sa;
    } peer;
    socklen_t peer_len;
    int fd;
    seed_source *src, *idle;
    struct udp_session *prev, *next;
} udp_session;

struct seed_proxy {
    seed_loop *loop;
    int listen_fd;
    seed_source *listen_src;
    struct sockaddr_in backend;
    tcp_conn *conns;
    size_t n_conns;
    udp_session *sessions;
    size_t n_sessions;
    seed_source *pause; /* accept paused after EMFILE */
};

/* ---- TCP ---- */

static void tcp_close(tcp_conn *c) {
    seed_source_free(c->client_src);
    seed_source_free(c->backend_src);
    close(c->client);
    close(c->backend);
    free(c->up.buf);
    free(c->down.buf);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->p->n_conns--;
    free(c);
}

static void tcp_update(tcp_conn *c) {
    uint32_t ce = 0, be = 0;
    if (!c->connected) {
        be = EPOLLOUT; /* the client waits unwatched until the backend answers */
    } else {
        if (!c->up.eof && c->up.len == 0)
            ce |= EPOLLIN;
        if (c->down.len > 0)
            ce |= EPOLLOUT;
        if (!c->down.eof && c->down.len == 0)
            be |= EPOLLIN;
        if (c->up.len > 0)
            be |= EPOLLOUT;
    }
    /* RDHUP is level-triggered: once the client's half-close is seen, stop asking. */
    seed_source_set_events(c->client_src, c->connected ? ce | (c->up.eof ? 0 : EPOLLRDHUP) : 0);
    seed_source_set_events(c->backend_src, be);
}

/* Move bytes from one socket to the other; returns false when the pair is done. */
static bool pump(int from, int to, relay_dir *d) {
    if (d->len == 0 && !d->eof) {
        ssize_t n = recv(from, d->buf, RELAY_BUF, MSG_DONTWAIT);
        if (n > 0) {
            d->off = 0;
            d->len = (size_t)n;
        } else if (n == 0) {
            d->eof = true;
        } else if (errno != EAGAIN && errno != EINTR) {
            return false;
        }
    }
    while (d->len > 0) {
        ssize_t n = send(to, d->buf + d->off, d->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            return false;
        }
        d->off += (size_t)n;
        d->len -= (size_t)n;
    }
    if (d->eof && d->len == 0 && !d->shut) {
        shutdown(to, SHUT_WR);
        d->shut = true;
    }
    return true;
}

static int tcp_event(seed_source *s, int fd, uint32_t events, void *userdata) {
    tcp_conn *c = userdata;
    if (!c->connected) {
        if (fd != c->backend)
            return 0;
        int soerr = 0;
        socklen_t l = sizeof(soerr);
        getsockopt(c->backend, SOL_SOCKET, SO_ERROR, &soerr, &l);
        if (soerr != 0 || (events & (EPOLLERR | EPOLLHUP))) {
            tcp_close(c); /* the instance is not listening: the client sees a close */
            return 0;
        }
        c->connected = true;
    }
    if (!pump(c->client, c->backend, &c->up) || !pump(c->backend, c->client, &c->down)) {
        tcp_close(c);
        return 0;
    }
    if (c->up.shut && c->down.shut) {
        tcp_close(c);
        return 0;
    }
    tcp_update(c);
    return 0;
}

static int accept_resume(seed_source *s, void *userdata) {
    seed_proxy *p = userdata;
    seed_source_free(s);
    p->pause = NULL;
    seed_source_set_events(p->listen_src, EPOLLIN);
    return 0;
}

static int tcp_accept(seed_source *s, int fd, uint32_t events, void *userdata) {
    seed_proxy *p = userdata;
    for (int n = 0; n < 64; n++) {
        int client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0) {
            /* Out of descriptors: the listening socket stays readable, so stop
             * watching it for a moment instead of spinning on it. */
            if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) && !p->pause) {
                seed_source_set_events(p->listen_src, 0);
                seed_loop_add_timer(p->loop, 100000, accept_resume, p, &p->pause);
            }
            return 0;
        }
        if (p->n_conns >= MAX_TCP_CONNS) {
            close(client);
            continue;
        }
        int backend = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (backend < 0) {
            close(client);
            continue;
        }
        int one = 1;
        setsockopt(backend, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(backend, (struct sockaddr *)&p->backend, sizeof(p->backend)) < 0 &&
            errno != EINPROGRESS) {
            close(client);
            close(backend);
            continue;
        }
        tcp_conn *c = calloc(1, sizeof(*c));
        if (!c || !(c->up.buf = malloc(RELAY_BUF)) || !(c->down.buf = malloc(RELAY_BUF))) {
            if (c) {
                free(c->up.buf);
                free(c);
            }
            close(client);
            close(backend);
            continue;
        }
        c->p = p;
        c->client = client;
        c->backend = backend;
        c->to = p->backend.sin_addr;
        if (seed_loop_add_io(p->loop, client, 0, tcp_event, c, &c->client_src) < 0 ||
            seed_loop_add_io(p->loop, backend, EPOLLOUT, tcp_event, c, &c->backend_src) < 0) {
            seed_source_free(c->client_src);
            close(client);
            close(backend);
            free(c->up.buf);
            free(c->down.buf);
            free(c);
            continue;
        }
        c->next = p->conns;
        if (p->conns)
            p->conns->prev = c;
        p->conns = c;
        p->n_conns++;
    }
    return 0;
}

/* ---- UDP ---- */

static void udp_close(udp_session *u) {
    seed_source_free(u->src);
    seed_source_free(u->idle);
    close(u->fd);
    if (u->prev)
        u->prev->next = u->next;
    else
        u->p->sessions = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->p->n_sessions--;
    free(u);
}

static int udp_idle(seed_source *s, void *userdata) {
    udp_close(userdata);
    return 0;
}

/* A reply from the instance: back to the client it belongs to. */
static int udp_reply(seed_source *s, int fd, uint32_t events, void *userdata) {
    udp_session *u = userdata;
    char buf[65536];
    for (int i = 0; i < 64; i++) { /* bounded: a flood must not hold the loop */
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0)
            break;
        sendto(u->p->listen_fd, buf, (size_t)n, MSG_DONTWAIT, &u->peer.sa, u->peer_len);
        seed_timer_restart(u->idle, UDP_IDLE_USEC);
    }
    return 0;
}

static int udp_request(seed_source *s, int fd, uint32_t events, void *userdata) {
    seed_proxy *p = userdata;
    char buf[65536];
    for (int i = 0; i < 64; i++) { /* bounded: a flood must not hold the loop */
        udp_session key = {0};
        key.peer_len = sizeof(key.peer);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, &key.peer.sa, &key.peer_len);
        if (n < 0)
            return 0;
        udp_session *u = p->sessions;
        for (; u; u = u->next)
            if (u->peer_len == key.peer_len && memcmp(&u->peer, &key.peer, key.peer_len) == 0)
                break;
        if (!u) {
            if (p->n_sessions >= MAX_UDP_SESSIONS)
                continue;
            int b = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (b < 0)
                continue;
            if (connect(b, (struct sockaddr *)&p->backend, sizeof(p->backend)) < 0) {
                close(b);
                continue;
            }
            u = calloc(1, sizeof(*u));
            if (!u) {
                close(b);
                continue;
            }
            *u = key;
            u->p = p;
            u->fd = b;
            if (seed_loop_add_io(p->loop, b, EPOLLIN, udp_reply, u, &u->src) < 0 ||
                seed_loop_add_timer(p->loop, UDP_IDLE_USEC, udp_idle, u, &u->idle) < 0) {
                seed_source_free(u->src);
                close(b);
                free(u);
                continue;
            }
            u->next = p->sessions;
            if (p->sessions)
                p->sessions->prev = u;
            p->sessions = u;
            p->n_sessions++;
        }
        send(u->fd, buf, (size_t)n, MSG_DONTWAIT);
        seed_timer_restart(u->idle, UDP_IDLE_USEC);
    }
    return 0;
}

/* ---- setup ---- */

int seed_proxy_new(seed_loop *loop, const seed_node_net *nn, const char *bind_addr, unsigned port, bool udp,
                   struct in_addr backend, unsigned backend_port, seed_proxy **ret, seed_error **err) {
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } sa = {0};
    socklen_t salen;
    int family;
    if (inet_pton(AF_INET, bind_addr, &sa.v4.sin_addr) == 1) {
        family = AF_INET;
        sa.v4.sin_family = AF_INET;
        sa.v4.sin_port = htons((uint16_t)port);
        salen = sizeof(sa.v4);
    } else if (inet_pton(AF_INET6, bind_addr, &sa.v6.sin6_addr) == 1) {
        family = AF_INET6;
        sa.v6.sin6_family = AF_INET6;
        sa.v6.sin6_port = htons((uint16_t)port);
        salen = sizeof(sa.v6);
    } else {
        return seed_error_set(err, EINVAL, "bind address \"%s\" is not an IPv4 or IPv6 address", bind_addr);
    }
    int fd = -1;
    int r =
        seed_socket_in_netns(nn->host_netns, family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK, &fd);
    if (r < 0)
        return seed_error_setp(err, -r, "creating a socket for %s:%u", bind_addr, port);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, salen) < 0 || (!udp && listen(fd, 1024) < 0)) {
        int e = errno;
        close(fd);
        return seed_error_setp(err, e, "publishing %s:%u/%s", bind_addr, port, udp ? "udp" : "tcp");
    }
    seed_proxy *p = calloc(1, sizeof(*p));
    if (!p) {
        close(fd);
        return seed_error_set(err, ENOMEM, "out of memory");
    }
    p->loop = loop;
    p->listen_fd = fd;
    p->backend.sin_family = AF_INET;
    p->backend.sin_addr = backend;
    p->backend.sin_port = htons((uint16_t)backend_port);
    r = seed_loop_add_io(loop, fd, EPOLLIN, udp ? udp_request : tcp_accept, p, &p->listen_src);
    if (r < 0) {
        close(fd);
        free(p);
        return seed_error_setp(err, -r, "watching %s:%u", bind_addr, port);
    }
    *ret = p;
    return 0;
}

void seed_proxy_free(seed_proxy *p) {
    if (!p)
        return;
    seed_source_free(p->pause);
    while (p->conns)
        tcp_close(p->conns);
    while (p->sessions)
        udp_close(p->sessions);
    seed_source_free(p->listen_src);
    close(p->listen_fd);
    free(p);
}

void seed_proxy_set_backend(seed_proxy *p, struct in_addr backend) {
    p->backend.sin_addr = backend;
}

size_t seed_proxy_connections_to(const seed_proxy *p, struct in_addr backend) {
    size_t n = 0;
    for (const tcp_conn *c = p->conns; c; c = c->next)
        if (c->to.s_addr == backend.s_addr)
            n++;
    return n;
}
