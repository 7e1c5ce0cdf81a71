/* The pool manager. Per caller: templates (processes holding the caller's finished
 * root) make warm sandboxes on request; each warm sandbox is moved into a cgroup of
 * its own with the caller's limits, finishes its setup and waits. A request takes a
 * warm sandbox, passes it the command with stdin/stdout/stderr pipes, and collects
 * the output until the sandbox is gone — its PID 1 exits after the command, which
 * ends every process the command started. Then a replacement is made.
 *
 * Request path: pipes, one message, then reading. Everything else — clone, id maps,
 * cgroup attach, mounts, capability drop, seccomp — happened before the request. */
#include "shoot/pool.h"

#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fdpass.h"
#include "base/log.h"
#include "shoot/protocol.h"

#define MAX_INFLIGHT_PER_TEMPLATE 4
#define SEED_SHOOT_TEMPLATE_NICE 10
#define READ_CHUNK (64u << 10)

typedef struct cgslot {
    seed_cgroup *cg;
    int procs[3]; /* its cgroup.procs files, opened once, handed to each sandbox */
    int n_procs;
    struct cgslot *next;
} cgslot;

typedef struct template {
    seed_shoot_pool *p;
    seed_sandbox sb;
    int chan;
    seed_source *chan_src, *exit_src;
    unsigned inflight;
    cgslot *pending[MAX_INFLIGHT_PER_TEMPLATE]; /* slots of SPAWNs in flight, in order */
    unsigned pending_head;
    bool dead;
}
template;

enum { W_STARTING, W_READY, W_RUNNING, W_DONE };

typedef struct warm {
    seed_shoot_pool *p;
    pid_t pid;
    int pidfd;
    int ctl;
    seed_source *ctl_src, *exit_src;
    cgslot *cg;
    int state;
    seed_shoot *shoot;
    struct warm *prev, *next;
} warm;

struct seed_shoot {
    seed_shoot_pool *p;
    seed_shoot_request req;
    seed_shoot_done_fn done;
    void *userdata;
    warm *w;
    int out_fd, err_fd, in_fd;
    seed_source *out_src, *err_src, *in_src, *timer;
    seed_shoot_stream out, err;
    size_t in_off;
    bool got_status, exited, timed_out, abandoned;
    int status;
    uint64_t t0;
    struct seed_shoot *next; /* in the pool's queue */
};

struct seed_shoot_pool {
    seed_shoot_engine *e;
    char *name, *cg_base;
    seed_limits lim;
    unsigned max_running, running; /* shoot.max, and how many of its shoots run */
    template **tpls;
    size_t n_tpls;
    size_t rr;
    warm *warms;
    unsigned n_ready, n_starting, n_spawning;
    cgslot *free_cgs, *dirty_cgs;
    unsigned n_free_cgs;
    unsigned next_cg;
    seed_shoot *queue, *queue_tail;
    unsigned n_queued;
    char *last_error;
    bool dying;
    struct seed_shoot_pool *next_pool;
};

struct seed_shoot_engine {
    seed_loop *loop;
    seed_shoot_config cfg;
    const seed_cgroup_ops *ops;
    int devnull;
    unsigned running;
    uint64_t running_memory; /* the memory limits of the running shoots, summed */
    seed_shoot_pool *pools;
};

static void refill(seed_shoot_pool *p);
static void dispatch_queued(seed_shoot_engine *e);
static void maybe_finish(seed_shoot *s);
static void fail_shoot(seed_shoot *s, seed_shoot_status status, const char *message);
static void pool_error(seed_shoot_pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- engine ---- */

int seed_shoot_engine_new(seed_loop *loop, const seed_shoot_config *cfg, const seed_cgroup_ops *ops,
                          seed_shoot_engine **ret) {
    seed_shoot_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->loop = loop;
    e->cfg = *cfg;
    if (!e->cfg.warm)
        e->cfg.warm = SEED_SHOOT_DEFAULT_WARM;
    if (!e->cfg.max_running)
        e->cfg.max_running = SEED_SHOOT_DEFAULT_MAX_RUNNING;
    if (!e->cfg.queue_ms)
        e->cfg.queue_ms = SEED_SHOOT_DEFAULT_QUEUE_MS;
    if (!e->cfg.output_max)
        e->cfg.output_max = SEED_SHOOT_DEFAULT_OUTPUT_MAX;
    e->ops = ops;
    e->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (e->devnull < 0) {
        int r = negative_errno();
        free(e);
        return r;
    }
    *ret = e;
    return 0;
}

void seed_shoot_engine_free(seed_shoot_engine *e) {
    if (!e)
        return;
    while (e->pools)
        seed_shoot_pool_free(e->pools);
    close(e->devnull);
    free(e);
}

/* ---- cgroups ---- */

static cgslot *cg_take(seed_shoot_pool *p) {
    if (p->free_cgs) {
        cgslot *c = p->free_cgs;
        p->free_cgs = c->next;
        p->n_free_cgs--;
        c->next = NULL;
        return c;
    }
    cgslot *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    char path[512];
    snprintf(path, sizeof(path), "%s/s%u", p->cg_base, p->next_cg++);
    _cleanup_error_ seed_error *err = NULL;
    if (p->e->ops->create(path, &p->lim, &c->cg, &err) < 0) {
        free(p->last_error);
        p->last_error = strdup(err ? err->msg : "creating a cgroup failed");
        free(c);
        return NULL;
    }
    c->n_procs = p->e->ops->procs_fds(c->cg, c->procs, ELEMENTSOF(c->procs));
    if (c->n_procs < 0) {
        pool_error(p, "opening cgroup.procs of %s: %s", path, strerror(-c->n_procs));
        p->e->ops->destroy(c->cg);
        p->e->ops->free(c->cg);
        free(c);
        return NULL;
    }
    return c;
}

static void cg_destroy(seed_shoot_pool *p, cgslot *c) {
    for (int i = 0; i < c->n_procs; i++)
        close(c->procs[i]);
    p->e->ops->kill_all(c->cg);
    p->e->ops->destroy(c->cg);
    p->e->ops->free(c->cg);
    free(c);
}

/* A finished shoot's cgroup goes back for reuse once it is empty. */
static void cg_give(seed_shoot_pool *p, cgslot *c) {
    if (!c)
        return;
    /* Reuse only an empty cgroup. One that is not (should never happen: its sandbox
     * is gone) is set aside, not waited for: the event loop must not block. */
    uint64_t procs;
    if (p->e->ops->pids_current(c->cg, &procs) == 0 && procs > 0) {
        c->next = p->dirty_cgs;
        p->dirty_cgs = c;
        return;
    }
    /* Keep enough for the warm target and a burst; give back the rest, so a spike
     * of concurrent shoots does not leave cgroups behind. */
    if (p->n_free_cgs >= p->e->cfg.warm + 8) {
        cg_destroy(p, c);
        return;
    }
    c->next = p->free_cgs;
    p->free_cgs = c;
    p->n_free_cgs++;
}

static void cg_destroy_list(seed_shoot_pool *p, cgslot **list) {
    while (*list) {
        cgslot *c = *list;
        *list = c->next;
        cg_destroy(p, c);
    }
}

static void cg_destroy_all(seed_shoot_pool *p) {
    p->n_free_cgs = 0;
    cg_destroy_list(p, &p->free_cgs);
    cg_destroy_list(p, &p->dirty_cgs);
}

/* The cgroup of template i. */
static void template_cg_path(const seed_shoot_pool *p, unsigned i, char *buf, size_t size) {
    snprintf(buf, size, "%s/template%u", p->cg_base, i);
}

/* The PID (in our namespace) of the process a pidfd refers to. */
static pid_t pidfd_pid(int pidfd) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strstr(buf, "\nPid:");
    return p ? (pid_t)strtol(p + 5, NULL, 10) : -1;
}

/* ---- warm sandboxes ---- */

static void warm_unlink(warm *w) {
    seed_shoot_pool *p = w->p;
    if (w->prev)
        w->prev->next = w->next;
    else
        p->warms = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (w->state == W_READY)
        p->n_ready--;
    else if (w->state == W_STARTING)
        p->n_starting--;
}

static void warm_free(warm *w, bool reuse_cgroup) {
    seed_shoot_pool *p = w->p;
    warm_unlink(w);
    seed_source_free(w->ctl_src);
    seed_source_free(w->exit_src);
    if (w->pidfd >= 0) {
        seed_pidfd_kill(w->pidfd, SIGKILL);
        close(w->pidfd);
    }
    if (w->ctl >= 0)
        close(w->ctl);
    if (reuse_cgroup)
        cg_give(p, w->cg);
    else if (w->cg)
        cg_destroy(p, w->cg);
    free(w);
}

static void shoot_finish(seed_shoot *s);

static void pool_error(seed_shoot_pool *p, const char *fmt, ...) {
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    free(p->last_error);
    p->last_error = strdup(buf);
    log_warning("%s: shoots: %s", p->name, buf);
}

static int on_warm_ctl(seed_source *src, int fd, uint32_t events, void *userdata) {
    warm *w = userdata;
    seed_shoot_hdr h;
    char msg[512];
    struct iovec iov[2] = {{&h, sizeof(h)}, {msg, sizeof(msg) - 1}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n < (ssize_t)sizeof(h)) {
        /* Closed: the sandbox is gone; the pidfd tells the rest. */
        seed_source_free(w->ctl_src);
        w->ctl_src = NULL;
        return 0;
    }
    size_t mlen = (size_t)n - sizeof(h);
    msg[mlen] = 0;
    seed_shoot_pool *p = w->p;
    switch (h.type) {
    case SEED_SHOOT_READY:
        if (w->state == W_STARTING) {
            p->n_starting--;
            w->state = W_READY;
            p->n_ready++;
            dispatch_queued(p->e);
        }
        break;
    case SEED_SHOOT_FAILED:
        pool_error(p, "a sandbox failed to start: %s: %s", msg, strerror(h.err));
        if (w->shoot) {
            /* Ended before the command ran: report it as a failure to run. */
            w->shoot->status = (127 << 8);
            w->shoot->got_status = true;
        }
        break;
    case SEED_SHOOT_EXITED:
        if (w->shoot) {
            w->shoot->status = (int)h.arg;
            w->shoot->got_status = true;
            maybe_finish(w->shoot);
        }
        break;
    }
    return 0;
}

static int on_warm_exit(seed_source *src, int fd, uint32_t events, void *userdata) {
    warm *w = userdata;
    seed_source_free(w->exit_src);
    w->exit_src = NULL;
    /* A running shoot's status message may still sit in the socket. (Only then: a
     * READY read here could hand this dying sandbox to a request.) */
    if (w->shoot && w->ctl_src)
        on_warm_ctl(w->ctl_src, w->ctl, EPOLLIN, w);
    seed_shoot *s = w->shoot;
    if (s) {
        s->exited = true;
        maybe_finish(s);
        return 0;
    }
    /* Its shoot was answered already (W_DONE), or it died unused (setup failed, or
     * killed): its cgroup is free now; replace it. */
    seed_shoot_pool *p = w->p;
    warm_free(w, true);
    refill(p);
    return 0;
}

/* ---- templates ---- */

static void template_dead(template *t) {
    if (t->dead)
        return;
    t->dead = true;
    seed_shoot_pool *p = t->p;
    p->n_spawning -= t->inflight;
    for (unsigned i = 0; i < t->inflight; i++)
        cg_give(p, t->pending[(t->pending_head + i) % MAX_INFLIGHT_PER_TEMPLATE]);
    t->inflight = 0;
    seed_source_free(t->chan_src);
    t->chan_src = NULL;
    pool_error(p, "a shoot template ended");
}

static int on_template_chan(seed_source *src, int fd, uint32_t events, void *userdata) {
    template *t = userdata;
    seed_shoot_pool *p = t->p;
    for (;;) {
        char buf[sizeof(seed_shoot_hdr) + 512];
        int fds[SEED_FDPASS_MAX];
        size_t n_fds = 0;
        ssize_t n = seed_recv_fds(fd, buf, sizeof(buf) - 1, fds, &n_fds, MSG_DONTWAIT);
        if (n == -EAGAIN || n == -EINTR)
            return 0;
        if (n < (ssize_t)sizeof(seed_shoot_hdr)) {
            template_dead(t);
            return 0;
        }
        seed_shoot_hdr h;
        memcpy(&h, buf, sizeof(h));
        buf[n] = 0;
        cgslot *cg = NULL;
        if (t->inflight > 0) {
            cg = t->pending[t->pending_head];
            t->pending_head = (t->pending_head + 1) % MAX_INFLIGHT_PER_TEMPLATE;
            t->inflight--;
            p->n_spawning--;
        }
        if (h.type != SEED_SHOOT_SPAWNED || n_fds != 2) {
            for (size_t i = 0; i < n_fds; i++)
                close(fds[i]);
            if (cg)
                cg_give(p, cg);
            pool_error(p, "making a sandbox failed: %s: %s", buf + sizeof(h), strerror(h.err));
            continue;
        }
        warm *w = calloc(1, sizeof(*w));
        if (!w) {
            seed_pidfd_kill(fds[0], SIGKILL);
            close(fds[0]);
            close(fds[1]);
            if (cg)
                cg_give(p, cg);
            continue;
        }
        /* A request (argv, env) can be up to the 1 MiB body: room for it whole. */
        int big = (int)SEED_SHOOT_MAX_MSG;
        setsockopt(fds[1], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
        *w = (warm){
            .p = p, .pid = pidfd_pid(fds[0]), .pidfd = fds[0], .ctl = fds[1], .cg = cg, .state = W_STARTING};
        if (seed_loop_add_io(p->e->loop, w->ctl, EPOLLIN, on_warm_ctl, w, &w->ctl_src) < 0 ||
            seed_loop_add_io(p->e->loop, w->pidfd, EPOLLIN, on_warm_exit, w, &w->exit_src) < 0) {
            seed_source_free(w->ctl_src);
            seed_pidfd_kill(w->pidfd, SIGKILL);
            close(w->pidfd);
            close(w->ctl);
            cg_give(p, cg);
            free(w);
            continue;
        }
        w->next = p->warms;
        if (p->warms)
            p->warms->prev = w;
        p->warms = w;
        p->n_starting++;
    }
}

static int on_template_exit(seed_source *src, int fd, uint32_t events, void *userdata) {
    template *t = userdata;
    seed_source_free(t->exit_src);
    t->exit_src = NULL;
    template_dead(t);
    return 0;
}

int seed_shoot_pool_template_cgroup(seed_shoot_pool *p, unsigned i, seed_cgroup **ret, seed_error **err) {
    char path[512];
    template_cg_path(p, i, path, sizeof(path));
    return p->e->ops->create(path, &p->lim, ret, err);
}

int seed_shoot_pool_add_template(seed_shoot_pool *p, seed_sandbox *sb, int chan) {
    /* Making sandboxes is background work: let requests go first. */
    setpriority(PRIO_PROCESS, (id_t)sb->pid, SEED_SHOOT_TEMPLATE_NICE);
    template **n = realloc(p->tpls, (p->n_tpls + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    p->tpls = n;
    template *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->p = p;
    t->sb = *sb;
    t->chan = chan;
    int r = seed_loop_add_io(p->e->loop, chan, EPOLLIN, on_template_chan, t, &t->chan_src);
    if (r >= 0)
        r = seed_loop_add_io(p->e->loop, sb->pidfd, EPOLLIN, on_template_exit, t, &t->exit_src);
    if (r < 0) {
        seed_source_free(t->chan_src);
        free(t);
        return r;
    }
    p->tpls[p->n_tpls++] = t;
    refill(p);
    return 0;
}

/* Slots set aside because their cgroup still had a process (the pidfd can wake us
 * before the kernel has uncharged the exiting task): reuse them once empty. */
static void recheck_dirty(seed_shoot_pool *p) {
    cgslot **pp = &p->dirty_cgs;
    while (*pp) {
        cgslot *c = *pp;
        uint64_t procs;
        if (p->e->ops->pids_current(c->cg, &procs) == 0 && procs == 0) {
            *pp = c->next;
            cg_give(p, c);
        } else {
            pp = &c->next;
        }
    }
}

/* Ask templates for sandboxes until the warm target (plus whatever waits) is met. */
static void refill(seed_shoot_pool *p) {
    if (p->dying)
        return;
    if (p->dirty_cgs)
        recheck_dirty(p);
    /* Sandboxes for what waits, but no more than can start at once. */
    unsigned want = p->e->cfg.warm + MIN(p->n_queued, p->max_running);
    for (size_t tries = 0; p->n_ready + p->n_starting + p->n_spawning < want && tries < 4 * p->n_tpls + 4;
         tries++) {
        if (p->n_tpls == 0)
            return;
        template *t = p->tpls[p->rr++ % p->n_tpls];
        if (t->dead || t->inflight >= MAX_INFLIGHT_PER_TEMPLATE)
            continue;
        cgslot *cg = cg_take(p);
        if (!cg)
            return;
        seed_shoot_hdr h = {.type = SEED_SHOOT_SPAWN};
        if (seed_send_fds(t->chan, &h, sizeof(h), NULL, 0, cg->procs, (size_t)cg->n_procs, MSG_DONTWAIT) !=
            (ssize_t)sizeof(h)) {
            cg_give(p, cg);
            continue;
        }
        t->pending[(t->pending_head + t->inflight) % MAX_INFLIGHT_PER_TEMPLATE] = cg;
        t->inflight++;
        p->n_spawning++;
    }
}

/* ---- running a shoot ---- */

/* Read what a pipe holds, up to max chunks; false once it reached EOF (or failed). */
static bool read_pipe(int fd, seed_shoot_stream *st, int max) {
    static char chunk[READ_CHUNK];
    for (int i = 0; i < max; i++) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n > 0) {
            seed_shoot_stream_add(st, chunk, (size_t)n); /* what does not fit is dropped */
            continue;
        }
        return n < 0 && (errno == EAGAIN || errno == EINTR);
    }
    return true;
}

static void close_output(seed_shoot *s, bool is_out) {
    seed_source **src = is_out ? &s->out_src : &s->err_src;
    int *fd = is_out ? &s->out_fd : &s->err_fd;
    seed_source_free(*src);
    *src = NULL;
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void drain_output(seed_shoot *s) {
    /* A pipe holds at most its buffer: a few chunks empty it. */
    if (s->out_fd >= 0)
        read_pipe(s->out_fd, &s->out, 64);
    if (s->err_fd >= 0)
        read_pipe(s->err_fd, &s->err, 64);
    close_output(s, true);
    close_output(s, false);
}

static int on_output(seed_source *src, int fd, uint32_t events, void *userdata) {
    seed_shoot *s = userdata;
    bool is_out = fd == s->out_fd;
    if (!read_pipe(fd, is_out ? &s->out : &s->err, 16))
        close_output(s, is_out); /* EOF; the answer waits for the status */
    return 0;
}

static void close_stdin(seed_shoot *s) {
    seed_source_free(s->in_src);
    s->in_src = NULL;
    if (s->in_fd >= 0)
        close(s->in_fd);
    s->in_fd = -1;
}

static int on_stdin(seed_source *src, int fd, uint32_t events, void *userdata) {
    seed_shoot *s = userdata;
    while (s->in_off < s->req.stdin_len) {
        ssize_t n = write(fd, s->req.stdin_data + s->in_off, s->req.stdin_len - s->in_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            break; /* EPIPE: the command stopped reading */
        }
        s->in_off += (size_t)n;
    }
    close_stdin(s);
    return 0;
}

static int on_timeout(seed_source *src, void *userdata) {
    seed_shoot *s = userdata;
    s->timed_out = true;
    if (s->w && s->w->pidfd >= 0)
        seed_pidfd_kill(s->w->pidfd, SIGKILL);
    return 0;
}

static int on_queue_timeout(seed_source *src, void *userdata);

static void shoot_free(seed_shoot *s) {
    seed_source_free(s->timer);
    seed_source_free(s->out_src);
    seed_source_free(s->err_src);
    close_stdin(s);
    if (s->out_fd >= 0)
        close(s->out_fd);
    if (s->err_fd >= 0)
        close(s->err_fd);
    seed_shoot_stream_clear(&s->out);
    seed_shoot_stream_clear(&s->err);
    seed_shoot_request_clear(&s->req);
    free(s);
}

/* A shoot stops counting against its pool's and the node's limits. */
static void unaccount(seed_shoot *s) {
    s->p->running--;
    s->p->e->running--;
    s->p->e->running_memory -= s->p->lim.memory_bytes;
}

/* The caller gets its answer; the sandbox's cgroup goes back to the pool. */
static void shoot_finish(seed_shoot *s) {
    seed_shoot_pool *p = s->p;
    seed_shoot_engine *e = p->e;
    warm *w = s->w;
    if (w) {
        w->shoot = NULL;
        s->w = NULL;
        unaccount(s);
        /* Its PID 1 may still be tearing the namespaces down: the sandbox and its
         * cgroup are released when its pidfd says it is gone. */
        if (s->exited) {
            warm_free(w, true);
        } else {
            /* It reported; make sure it is going (its PID 1 exits by itself, unless
             * something stopped it). */
            seed_pidfd_kill(w->pidfd, SIGKILL);
            w->state = W_DONE;
        }
    }
    if (!s->abandoned) {
        seed_shoot_output out = {.base64 = s->req.base64}, *o = &out;
        o->duration_ms = (seed_now_usec() - s->t0) / 1000;
        seed_shoot_stream_end(&s->out);
        seed_shoot_stream_end(&s->err);
        o->out = s->out;
        o->err = s->err;
        s->out = s->err = (seed_shoot_stream){0};
        if (s->timed_out) {
            o->exit_code = 124;
            o->timed_out = true;
            o->signal = SIGKILL;
        } else if (s->got_status && WIFEXITED(s->status)) {
            o->exit_code = WEXITSTATUS(s->status);
        } else if (s->got_status && WIFSIGNALED(s->status)) {
            o->signal = WTERMSIG(s->status);
            o->exit_code = 128 + o->signal;
        } else {
            /* PID 1 itself died (the out-of-memory killer, or a kill from outside). */
            o->signal = SIGKILL;
            o->exit_code = 128 + SIGKILL;
        }
        seed_shoot_result r = {.status = SEED_SHOOT_OK, .reply = seed_shoot_reply_new(o)};
        if (!r.reply) {
            seed_shoot_stream_clear(&o->out);
            seed_shoot_stream_clear(&o->err);
            r = (seed_shoot_result){.status = SEED_SHOOT_ERROR, .message = "out of memory for the answer"};
        }
        s->done(s->userdata, &r);
    }
    shoot_free(s);
    refill(p);
    dispatch_queued(e);
}

static void drain_output(seed_shoot *s);

/* Answer once the command's status is known or its sandbox is gone. Either way no
 * process of the shoot is left (its PID 1 reaps everything before it reports), so
 * whatever they wrote is in the pipes already: take it and stop there. Waiting for
 * EOF would let a process outside the shoot that got hold of a pipe (passed over a
 * socket on a shared volume, say) hold the request open forever. */
static void maybe_finish(seed_shoot *s) {
    if (!s->exited && !s->got_status)
        return;
    drain_output(s);
    shoot_finish(s);
}

/* RUN payload: argc, envc, cwd, argv..., env... */
static char *run_payload(const seed_shoot_request *r, size_t *len) {
    static const char *const base_env[] = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "HOSTNAME=shoot"};
    size_t n = 8 + strlen(r->cwd) + 1;
    for (size_t i = 0; i < r->argc; i++)
        n += strlen(r->argv[i]) + 1;
    for (size_t i = 0; i < ELEMENTSOF(base_env); i++)
        n += strlen(base_env[i]) + 1;
    for (size_t i = 0; i < r->envc; i++)
        n += strlen(r->env[i]) + 1;
    char *buf = malloc(n);
    if (!buf)
        return NULL;
    uint32_t argc = (uint32_t)r->argc, envc = (uint32_t)(ELEMENTSOF(base_env) + r->envc);
    memcpy(buf, &argc, 4);
    memcpy(buf + 4, &envc, 4);
    char *o = buf + 8;
    o = stpcpy(o, r->cwd) + 1;
    for (size_t i = 0; i < r->argc; i++)
        o = stpcpy(o, r->argv[i]) + 1;
    /* The request's variables win over the defaults: getenv (and so execvp's PATH
     * search) takes the first match, so they go first. */
    for (size_t i = 0; i < r->envc; i++)
        o = stpcpy(o, r->env[i]) + 1;
    for (size_t i = 0; i < ELEMENTSOF(base_env); i++)
        o = stpcpy(o, base_env[i]) + 1;
    *len = (size_t)(o - buf);
    return buf;
}

static int dispatch(seed_shoot *s, warm *w) {
    seed_shoot_pool *p = s->p;
    seed_shoot_engine *e = p->e;
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1};
    int r = 0;
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
        (s->req.has_stdin && pipe2(inp, O_CLOEXEC) < 0))
        r = negative_errno();
    size_t len = 0;
    _cleanup_free_ char *payload = r >= 0 ? run_payload(&s->req, &len) : NULL;
    if (r >= 0 && !payload)
        r = -ENOMEM;
    if (r >= 0) {
        seed_shoot_hdr h = {.type = SEED_SHOOT_RUN, .len = (uint32_t)len};
        int fds[3] = {s->req.has_stdin ? inp[0] : e->devnull, outp[1], errp[1]};
        ssize_t k = seed_send_fds(w->ctl, &h, sizeof(h), payload, len, fds, 3, 0);
        if (k < 0)
            r = (int)k;
    }
    /* The sandbox has its ends now (or failed to get them). */
    if (outp[1] >= 0)
        close(outp[1]);
    if (errp[1] >= 0)
        close(errp[1]);
    if (inp[0] >= 0)
        close(inp[0]);
    if (r < 0) {
        if (outp[0] >= 0)
            close(outp[0]);
        if (errp[0] >= 0)
            close(errp[0]);
        if (inp[1] >= 0)
            close(inp[1]);
        return r;
    }
    /* Taken: off the ready list, into the running count. Sandboxes are made at a low
     * priority (the template runs niced); the one that runs a request, and so its
     * command, is back at the normal priority, ahead of the refill. */
    if (w->pid > 0)
        setpriority(PRIO_PROCESS, (id_t)w->pid, 0);
    p->n_ready--;
    w->state = W_RUNNING;
    w->shoot = s;
    s->w = w;
    p->running++;
    e->running++;
    e->running_memory += p->lim.memory_bytes;
    s->out_fd = outp[0];
    s->err_fd = errp[0];
    s->in_fd = inp[1];
    fcntl(s->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(s->err_fd, F_SETFL, O_NONBLOCK);
    seed_source_free(s->timer);
    s->timer = NULL;
    bool watched =
        seed_loop_add_io(e->loop, s->out_fd, EPOLLIN, on_output, s, &s->out_src) >= 0 &&
        seed_loop_add_io(e->loop, s->err_fd, EPOLLIN, on_output, s, &s->err_src) >= 0 &&
        seed_loop_add_timer(e->loop, (uint64_t)s->req.timeout_ms * 1000, on_timeout, s, &s->timer) >= 0;
    if (watched && s->in_fd >= 0) {
        fcntl(s->in_fd, F_SETFL, O_NONBLOCK);
        watched = seed_loop_add_io(e->loop, s->in_fd, EPOLLOUT, on_stdin, s, &s->in_src) >= 0;
    }
    if (!watched) {
        /* It runs, but it could not be timed or heard: end it now; its sandbox's exit
         * finishes the shoot like any other. */
        log_error("%s: cannot watch a shoot (out of memory): killing it", p->name);
        seed_pidfd_kill(w->pidfd, SIGKILL);
    }
    return 0;
}

/* ---- the queue of a pool: shoots waiting for a sandbox or a running slot ---- */

static void queue_push(seed_shoot_pool *p, seed_shoot *s) {
    s->next = NULL;
    if (p->queue_tail)
        p->queue_tail->next = s;
    else
        p->queue = s;
    p->queue_tail = s;
    p->n_queued++;
}

static void queue_push_front(seed_shoot_pool *p, seed_shoot *s) {
    s->next = p->queue;
    p->queue = s;
    if (!p->queue_tail)
        p->queue_tail = s;
    p->n_queued++;
}

static seed_shoot *queue_pop(seed_shoot_pool *p) {
    seed_shoot *s = p->queue;
    if (!s)
        return NULL;
    p->queue = s->next;
    if (!p->queue)
        p->queue_tail = NULL;
    p->n_queued--;
    s->next = NULL;
    return s;
}

static warm *take_ready(seed_shoot_pool *p) {
    for (warm *w = p->warms; w; w = w->next)
        if (w->state == W_READY)
            return w;
    return NULL;
}

typedef enum { ADMIT, POOL_FULL, NODE_FULL, MEMORY_FULL } admission;

/* May one more shoot of p start now? instances: the running instances' memory. */
static admission admit(const seed_shoot_pool *p, uint64_t instances) {
    const seed_shoot_engine *e = p->e;
    if (p->running >= p->max_running)
        return POOL_FULL;
    if (e->running >= e->cfg.max_running)
        return NODE_FULL;
    if (e->cfg.memory_budget && instances + e->running_memory + p->lim.memory_bytes > e->cfg.memory_budget)
        return MEMORY_FULL;
    return ADMIT;
}

static uint64_t instances_memory(const seed_shoot_engine *e) {
    return e->cfg.memory_budget && e->cfg.instances_memory ? e->cfg.instances_memory(e->cfg.userdata) : 0;
}

/* Start queued shoots while sandboxes and the limits allow, oldest pool first. */
static void dispatch_queued(seed_shoot_engine *e) {
    bool progress = true, counted = false;
    uint64_t instances = 0;
    while (progress && e->running < e->cfg.max_running) {
        progress = false;
        for (seed_shoot_pool *p = e->pools; p && e->running < e->cfg.max_running; p = p->next_pool) {
            if (!p->queue)
                continue;
            if (!counted) {
                instances = instances_memory(e);
                counted = true;
            }
            if (admit(p, instances) != ADMIT)
                continue;
            warm *w = take_ready(p);
            if (!w)
                continue;
            seed_shoot *s = queue_pop(p);
            int r = dispatch(s, w);
            /* Each branch used up a sandbox or a request: worth another round. */
            progress = true;
            if (r == -EPIPE || r == -ECONNRESET) {
                /* This sandbox died: drop it and put the shoot back in front. */
                warm_free(w, true);
                queue_push_front(p, s);
            } else if (r < 0) {
                /* Something about this request (or the node) failed: say so. */
                char msg[128];
                snprintf(msg, sizeof(msg), "cannot pass the request to a sandbox: %s", strerror(-r));
                fail_shoot(s, SEED_SHOOT_ERROR, msg);
                continue;
            }
            refill(p);
        }
    }
}

static void unqueue(seed_shoot *s) {
    seed_shoot_pool *p = s->p;
    seed_shoot *prev = NULL;
    for (seed_shoot *q = p->queue; q; prev = q, q = q->next)
        if (q == s) {
            if (prev)
                prev->next = q->next;
            else
                p->queue = q->next;
            if (p->queue_tail == q)
                p->queue_tail = prev;
            p->n_queued--;
            return;
        }
}

static void fail_shoot(seed_shoot *s, seed_shoot_status status, const char *message) {
    seed_shoot_result r = {.status = status, .message = message};
    if (!s->abandoned)
        s->done(s->userdata, &r);
    shoot_free(s);
}

static int on_queue_timeout(seed_source *src, void *userdata) {
    seed_shoot *s = userdata;
    seed_shoot_pool *p = s->p;
    seed_shoot_engine *e = p->e;
    unqueue(s);
    char msg[700];
    uint64_t instances = instances_memory(e);
    switch (admit(p, instances)) {
    case POOL_FULL:
        snprintf(msg, sizeof(msg), "busy: %s is running %u shoots, as many as its shoot.max allows", p->name,
                 p->running);
        break;
    case NODE_FULL:
        snprintf(msg, sizeof(msg), "all sandboxes are busy: %u shoots running on this node (limit %u)",
                 e->running, e->cfg.max_running);
        break;
    case MEMORY_FULL:
        snprintf(msg, sizeof(msg),
                 "busy: the node's shoot memory budget is spent: running instances (%llu MiB) and shoots "
                 "(%llu MiB) and this shoot (%llu MiB) would pass --shoot-memory (%llu MiB)",
                 (unsigned long long)(instances >> 20), (unsigned long long)(e->running_memory >> 20),
                 (unsigned long long)(p->lim.memory_bytes >> 20),
                 (unsigned long long)(e->cfg.memory_budget >> 20));
        break;
    case ADMIT:
        if (p->last_error && p->n_ready + p->n_starting + p->n_spawning == 0)
            snprintf(msg, sizeof(msg), "no sandbox could be made for %s: %s", p->name, p->last_error);
        else
            snprintf(msg, sizeof(msg), "busy: no sandbox of %s was ready within %u ms", p->name,
                     e->cfg.queue_ms);
        break;
    }
    fail_shoot(s, SEED_SHOOT_BUSY, msg);
    return 0;
}

int seed_shoot_start(seed_shoot_pool *p, seed_shoot_request *req, seed_shoot_done_fn done, void *userdata,
                     seed_shoot **ret) {
    if (p->dying)
        return -ESHUTDOWN;
    seed_shoot *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->p = p;
    s->req = *req;
    *req = (seed_shoot_request){0};
    s->done = done;
    s->userdata = userdata;
    s->out_fd = s->err_fd = s->in_fd = -1;
    s->t0 = seed_now_usec();
    if (ret)
        *ret = s;
    seed_shoot_engine *e = p->e;
    seed_shoot_stream_init(&s->out, e->cfg.output_max, s->req.base64);
    seed_shoot_stream_init(&s->err, e->cfg.output_max, s->req.base64);
    /* Every shoot goes through the queue: started at once when a sandbox and a
     * running slot are free (dispatch drops the queue timer), else it waits briefly. */
    int r = seed_loop_add_timer(e->loop, (uint64_t)e->cfg.queue_ms * 1000, on_queue_timeout, s, &s->timer);
    if (r < 0) {
        seed_shoot_request_clear(&s->req);
        free(s);
        if (ret)
            *ret = NULL;
        return r;
    }
    queue_push(p, s);
    dispatch_queued(e);
    refill(p);
    return 0;
}

void seed_shoot_abandon(seed_shoot *s) {
    s->abandoned = true;
    if (!s->w) {
        unqueue(s);
        shoot_free(s);
        return;
    }
    /* Kill it; the usual end-of-shoot path cleans up, without answering. */
    seed_pidfd_kill(s->w->pidfd, SIGKILL);
}

/* ---- pools ---- */

int seed_shoot_pool_new(seed_shoot_engine *e, const char *name, const char *cgroup_base,
                        const seed_limits *lim, unsigned max_running, seed_shoot_pool **ret,
                        seed_error **err) {
    /* The parent of the pool's cgroups (templates, warm sandboxes, shoots): however
     * many there are, together they get at most max_running times the tier. */
    seed_limits cap = {.memory_bytes = lim->memory_bytes * max_running,
                       .cpu_millis = lim->cpu_millis * max_running,
                       .pids = lim->pids * max_running};
    seed_cgroup *parent = NULL;
    int r = e->ops->create(cgroup_base, &cap, &parent, err);
    if (r < 0)
        return r;
    e->ops->free(parent);
    seed_shoot_pool *p = calloc(1, sizeof(*p));
    if (!p || !(p->name = strdup(name)) || !(p->cg_base = strdup(cgroup_base))) {
        if (p)
            free(p->name);
        free(p);
        return seed_error_set(err, ENOMEM, "out of memory");
    }
    p->e = e;
    p->lim = *lim;
    p->max_running = max_running ? max_running : 1;
    p->next_pool = e->pools;
    e->pools = p;
    *ret = p;
    return 0;
}

unsigned seed_shoot_pool_max_running(const seed_shoot_pool *p) {
    return p->max_running;
}

void seed_shoot_pool_free(seed_shoot_pool *p) {
    if (!p)
        return;
    seed_shoot_engine *e = p->e;
    for (seed_shoot_pool **pp = &e->pools; *pp; pp = &(*pp)->next_pool)
        if (*pp == p) {
            *pp = p->next_pool;
            break;
        }
    p->dying = true;
    /* Kill everything at once, then wait once: templates (their sandboxes die with
     * them, by parent-death signal) and every sandbox directly. */
    for (size_t i = 0; i < p->n_tpls; i++)
        if (p->tpls[i]->sb.pidfd >= 0)
            seed_sandbox_container.kill(&p->tpls[i]->sb, SIGKILL);
    for (warm *w = p->warms; w; w = w->next)
        seed_pidfd_kill(w->pidfd, SIGKILL);
    for (warm *w = p->warms; w; w = w->next) {
        struct pollfd pfd = {.fd = w->pidfd, .events = POLLIN};
        poll(&pfd, 1, 1000);
    }
    size_t n_tpls = p->n_tpls;
    template **tpls = p->tpls;
    p->tpls = NULL;
    p->n_tpls = 0;
    for (size_t i = 0; i < n_tpls; i++) {
        template *t = tpls[i];
        for (unsigned k = 0; k < t->inflight; k++)
            cg_destroy(p, t->pending[(t->pending_head + k) % MAX_INFLIGHT_PER_TEMPLATE]);
        t->inflight = 0;
        seed_source_free(t->chan_src);
        seed_source_free(t->exit_src);
        close(t->chan);
        if (t->sb.pidfd >= 0)
            seed_sandbox_container.reap(&t->sb); /* killed above */
        free(t);
    }
    free(tpls);
    for (seed_shoot *s; (s = queue_pop(p));)
        fail_shoot(s, SEED_SHOOT_ERROR, "the instance stopped");
    while (p->warms) {
        warm *w = p->warms;
        seed_shoot *s = w->shoot;
        if (s) {
            w->shoot = NULL;
            s->w = NULL;
            unaccount(s);
            fail_shoot(s, SEED_SHOOT_ERROR, "the instance stopped");
        }
        warm_free(w, false);
    }
    cg_destroy_all(p);
    for (unsigned i = 0;; i++) {
        char path[512];
        template_cg_path(p, i, path, sizeof(path));
        seed_cgroup *cg = NULL;
        if (e->ops->open(path, &cg) < 0)
            break;
        e->ops->kill_all(cg);
        e->ops->destroy(cg);
        e->ops->free(cg);
    }
    e->ops->remove_if_empty(p->cg_base);
    free(p->last_error);
    free(p->name);
    free(p->cg_base);
    free(p);
}
