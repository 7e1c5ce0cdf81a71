/* The keeper process and the daemon's side of its socket (see keeper.h). Requests:
 *   {"op":"hello"}                        -> {"pid":P,"subnet":S} + the host's netns fd
 *   {"op":"publish","key":K,"bind":B,"port":P,"udp":U,"backend":A,"backendPort":Q}
 *   {"op":"retarget","key":K,"backend":A}  {"op":"unpublish","key":K}
 *   {"op":"conns","key":K,"backend":A}    -> {"n":N}
 *   {"op":"store","key":K} + fds          {"op":"fetch","key":K} -> fds   {"op":"drop","key":K}
 *   {"op":"keys"}                         -> {"ports":{K:backend,...},"fds":[K,...]}
 *   {"op":"exit"}                         the keeper closes everything and exits
 * Every answer has "ok"; failures "error". */
#include "node/keeper.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/event.h"
#include "base/fdpass.h"
#include "base/log.h"
#include "node/proxy.h"

#define MAX_MSG (64u << 10)
#define MAX_KEY 160

typedef struct kport {
    char key[MAX_KEY];
    seed_proxy *proxy;
    struct in_addr backend;
    struct kport *next;
} kport;

typedef struct kfds {
    char key[MAX_KEY];
    int fds[SEED_FDPASS_MAX];
    size_t n;
    struct kfds *next;
} kfds;

typedef struct keeper {
    seed_loop *loop;
    seed_node_net nn;
    char subnet[64];
    int listen_fd;
    kport *ports;
    kfds *stored;
} keeper;

typedef struct kclient {
    keeper *k;
    int fd;
    seed_source *src;
} kclient;

static kport *find_port(keeper *k, const char *key) {
    for (kport *p = k->ports; p; p = p->next)
        if (streq(p->key, key))
            return p;
    return NULL;
}

static kfds **find_fds(keeper *k, const char *key) {
    for (kfds **pp = &k->stored; *pp; pp = &(*pp)->next)
        if (streq((*pp)->key, key))
            return pp;
    return NULL;
}

static void drop_fds(keeper *k, const char *key) {
    kfds **pp = find_fds(k, key);
    if (!pp)
        return;
    kfds *f = *pp;
    *pp = f->next;
    for (size_t i = 0; i < f->n; i++)
        close(f->fds[i]);
    free(f);
}

static void unpublish(keeper *k, const char *key) {
    for (kport **pp = &k->ports; *pp; pp = &(*pp)->next)
        if (streq((*pp)->key, key)) {
            kport *p = *pp;
            *pp = p->next;
            seed_proxy_free(p->proxy);
            free(p);
            return;
        }
}

static void answer(kclient *c, json_t *j, const int *fds, size_t n) {
    if (!j)
        j = json_pack("{s:b, s:s}", "ok", 0, "error", "out of memory");
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s)
        seed_send_fds(c->fd, s, strlen(s), NULL, 0, fds, n, MSG_NOSIGNAL);
    free(s);
}

static json_t *err_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *err_json(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static void handle(kclient *c, json_t *req, int *fds, size_t nf) {
    keeper *k = c->k;
    const char *op = json_string_value(json_object_get(req, "op"));
    const char *key = json_string_value(json_object_get(req, "key"));
    if (!op) {
        answer(c, err_json("malformed request%s", ""), NULL, 0);
        return;
    }
    if (key && strlen(key) >= MAX_KEY) {
        answer(c, err_json("key too long%s", ""), NULL, 0);
        return;
    }
    struct in_addr backend = {0};
    const char *b = json_string_value(json_object_get(req, "backend"));
    if (b && inet_pton(AF_INET, b, &backend) != 1) {
        answer(c, err_json("bad backend address %s", b), NULL, 0);
        return;
    }
    if (streq(op, "hello")) {
        answer(c, json_pack("{s:b, s:i, s:s}", "ok", 1, "pid", (int)getpid(), "subnet", k->subnet),
               &k->nn.host_netns, 1);
    } else if (streq(op, "publish") && key && b) {
        const char *bind = json_string_value(json_object_get(req, "bind"));
        json_int_t port = json_integer_value(json_object_get(req, "port"));
        json_int_t bport = json_integer_value(json_object_get(req, "backendPort"));
        unpublish(k, key);
        kport *p = calloc(1, sizeof(*p));
        _cleanup_error_ seed_error *e = NULL;
        if (!p || !bind || port < 1 || port > 65535 || bport < 1 || bport > 65535) {
            free(p);
            answer(c, err_json("publish: bad request%s", ""), NULL, 0);
            return;
        }
        if (seed_proxy_new(k->loop, &k->nn, bind, (unsigned)port, json_is_true(json_object_get(req, "udp")),
                           backend, (unsigned)bport, &p->proxy, &e) < 0) {
            free(p);
            answer(c, err_json("%s", e->msg), NULL, 0);
            return;
        }
        snprintf(p->key, sizeof(p->key), "%s", key);
        p->backend = backend;
        p->next = k->ports;
        k->ports = p;
        answer(c, json_pack("{s:b}", "ok", 1), NULL, 0);
    } else if (streq(op, "retarget") && key && b) {
        kport *p = find_port(k, key);
        if (p) {
            seed_proxy_set_backend(p->proxy, backend);
            p->backend = backend;
        }
        answer(c, p ? json_pack("{s:b}", "ok", 1) : err_json("no port %s", key), NULL, 0);
    } else if (streq(op, "unpublish") && key) {
        unpublish(k, key);
        answer(c, json_pack("{s:b}", "ok", 1), NULL, 0);
    } else if (streq(op, "conns") && key && b) {
        kport *p = find_port(k, key);
        answer(c,
               json_pack("{s:b, s:I}", "ok", 1, "n",
                         (json_int_t)(p ? seed_proxy_connections_to(p->proxy, backend) : 0)),
               NULL, 0);
    } else if (streq(op, "store") && key) {
        drop_fds(k, key);
        kfds *f = calloc(1, sizeof(*f));
        if (!f) {
            answer(c, NULL, NULL, 0);
            return;
        }
        snprintf(f->key, sizeof(f->key), "%s", key);
        for (size_t i = 0; i < nf; i++) {
            f->fds[f->n++] = fds[i];
            fds[i] = -1;
        }
        f->next = k->stored;
        k->stored = f;
        answer(c, json_pack("{s:b}", "ok", 1), NULL, 0);
    } else if (streq(op, "fetch") && key) {
        kfds **pp = find_fds(k, key);
        if (pp)
            answer(c, json_pack("{s:b, s:i}", "ok", 1, "n", (int)(*pp)->n), (*pp)->fds, (*pp)->n);
        else
            answer(c, err_json("nothing stored for %s", key), NULL, 0);
    } else if (streq(op, "drop") && key) {
        drop_fds(k, key);
        answer(c, json_pack("{s:b}", "ok", 1), NULL, 0);
    } else if (streq(op, "keys")) {
        json_t *ports = json_object(), *stored = json_array();
        for (kport *p = k->ports; p; p = p->next) {
            char a[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &p->backend, a, sizeof(a));
            json_object_set_new(ports, p->key, json_string(a));
        }
        for (kfds *f = k->stored; f; f = f->next)
            json_array_append_new(stored, json_string(f->key));
        answer(c, json_pack("{s:b, s:o, s:o}", "ok", 1, "ports", ports, "fds", stored), NULL, 0);
    } else if (streq(op, "exit")) {
        answer(c, json_pack("{s:b}", "ok", 1), NULL, 0);
        seed_loop_exit(k->loop, 0);
    } else {
        answer(c, err_json("unknown or incomplete request \"%s\"", op), NULL, 0);
    }
}

static int on_client(seed_source *s, int fd, uint32_t events, void *userdata) {
    kclient *c = userdata;
    static char buf[MAX_MSG];
    int fds[SEED_FDPASS_MAX];
    size_t nf = 0;
    ssize_t n = seed_recv_fds(fd, buf, sizeof(buf) - 1, fds, &nf, MSG_DONTWAIT);
    if (n == -EAGAIN || n == -EINTR)
        return 0;
    if (n > 0) {
        buf[n] = 0;
        json_t *req = json_loadb(buf, (size_t)n, 0, NULL);
        handle(c, req, fds, nf);
        json_decref(req);
    }
    for (size_t i = 0; i < nf; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (n <= 0) {
        seed_source_free(c->src);
        close(c->fd);
        free(c);
    }
    return 0;
}

static int on_accept(seed_source *s, int fd, uint32_t events, void *userdata) {
    keeper *k = userdata;
    for (int cfd; (cfd = seed_accept_trusted(fd)) >= 0;) {
        kclient *c = calloc(1, sizeof(*c));
        if (!c || seed_loop_add_io(k->loop, cfd, EPOLLIN, on_client, c, &c->src) < 0) {
            free(c);
            close(cfd);
            continue;
        }
        c->k = k;
        c->fd = cfd;
    }
    return 0;
}

static int socket_path(const char *run_dir, struct sockaddr_un *sa) {
    *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
    int len = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/" SEED_KEEPER_SOCKET, run_dir);
    return len < 0 || (size_t)len >= sizeof(sa->sun_path) ? -ENAMETOOLONG : 0;
}

static _Noreturn void keeper_main(int listen_fd, const seed_node_net *nn, const char *subnet) {
    keeper k = {.nn = *nn, .listen_fd = listen_fd};
    snprintf(k.subnet, sizeof(k.subnet), "%s", subnet);
    seed_log_setup("seed-keeper", SEED_LOG_INFO);
    prctl(PR_SET_NAME, "seed-keeper");
    if (seed_loop_new(&k.loop) < 0 || seed_loop_add_io(k.loop, listen_fd, EPOLLIN, on_accept, &k, NULL) < 0)
        _exit(1);
    int r = seed_loop_run(k.loop);
    while (k.ports)
        unpublish(&k, k.ports->key);
    while (k.stored)
        drop_fds(&k, k.stored->key);
    _exit(r < 0 ? 1 : 0);
}

pid_t seed_keeper_spawn(const char *run_dir, const seed_node_net *nn, const char *subnet) {
    struct sockaddr_un sa;
    if (socket_path(run_dir, &sa) < 0)
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    unlink(sa.sun_path);
    mode_t old = umask(0077);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || listen(fd, 64) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    /* Twice, so that it is nobody's child here: the daemon that started it may be long
     * gone when it ends. Its pid comes back through a pipe. */
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    pid_t mid = fork();
    if (mid < 0) {
        r = -errno;
        close(fd);
        close(p[0]);
        close(p[1]);
        return r;
    }
    if (mid == 0) {
        pid_t pid = fork();
        if (pid != 0) {
            (void)!write(p[1], &pid, sizeof(pid));
            _exit(0);
        }
        close(p[0]);
        close(p[1]);
        /* Its own session, deaf to the daemon's signals, holding nothing of the
         * daemon's (the state lock above all) but its socket and the host netns. */
        setsid();
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        signal(SIGTERM, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        int keep_lo = fd < nn->host_netns ? fd : nn->host_netns;
        int keep_hi = fd < nn->host_netns ? nn->host_netns : fd;
        /* close everything but stdio (stderr: the daemon's log), fd and host_netns */
        for (int i = 3; i < keep_lo; i++)
            close(i);
        for (int i = keep_lo + 1; i < keep_hi; i++)
            close(i);
        close_range((unsigned)keep_hi + 1, ~0u, 0);
        keeper_main(fd, nn, subnet);
    }
    close(p[1]);
    pid_t pid = -1;
    if (read(p[0], &pid, sizeof(pid)) != sizeof(pid) || pid <= 0)
        pid = -EIO;
    close(p[0]);
    while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
        ;
    close(fd);
    return pid;
}

int seed_keeper_connect(const char *run_dir, int *ret) {
    struct sockaddr_un sa;
    if (socket_path(run_dir, &sa) < 0)
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    *ret = fd;
    return 0;
}

json_t *seed_keeper_call(int fd, json_t *req, const int *fds, size_t n_fds, int *rfds, size_t *n_rfds,
                         seed_error **err) {
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!s) {
        seed_error_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    ssize_t k = seed_send_fds(fd, s, strlen(s), NULL, 0, fds, n_fds, MSG_NOSIGNAL);
    free(s);
    if (k < 0) {
        seed_error_setp(err, (int)-k, "talking to the keeper");
        return NULL;
    }
    static char buf[MAX_MSG];
    int got[SEED_FDPASS_MAX];
    size_t ng = 0;
    ssize_t n = seed_recv_fds(fd, buf, sizeof(buf) - 1, got, &ng, 0);
    if (n <= 0) {
        seed_error_setp(err, n < 0 ? (int)-n : EPIPE, "talking to the keeper");
        return NULL;
    }
    size_t keep = n_rfds ? *n_rfds : 0;
    for (size_t i = 0; i < ng; i++) {
        if (i < keep)
            rfds[i] = got[i];
        else
            close(got[i]);
    }
    if (n_rfds)
        *n_rfds = ng < keep ? ng : keep;
    json_t *j = json_loadb(buf, (size_t)n, 0, NULL);
    if (!j)
        seed_error_set(err, EPROTO, "the keeper answered garbage");
    return j;
}
