/* epoll loop with a binary heap of timers. Sources removed during dispatch are only
 * marked dead and released after the batch of events is handled, so a pointer taken
 * from epoll_wait never dangles. */
#include "base/event.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"

enum { SRC_IO, SRC_TIMER };

struct seed_source {
    seed_loop *loop;
    int type;
    bool dead;
    int fd;
    uint32_t events;
    seed_io_fn io;
    seed_timer_fn timer;
    void *userdata;
    uint64_t deadline;
    size_t heap_index; /* SIZE_MAX when not queued */
    seed_source *next_dead;
};

struct seed_loop {
    int epfd;
    bool exiting;
    int exit_code;
    seed_source **heap;
    size_t n_heap, cap_heap;
    seed_source *dead;
    int dispatching;
};

int seed_loop_new(seed_loop **ret) {
    seed_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int r = negative_errno();
        free(l);
        return r;
    }
    *ret = l;
    return 0;
}

static void release_dead(seed_loop *l) {
    while (l->dead) {
        seed_source *s = l->dead;
        l->dead = s->next_dead;
        free(s);
    }
}

void seed_loop_free(seed_loop *l) {
    if (!l)
        return;
    release_dead(l);
    /* Timers still queued belong to their owners, who free them; drop the heap. */
    for (size_t i = 0; i < l->n_heap; i++)
        l->heap[i]->heap_index = SIZE_MAX;
    free(l->heap);
    close(l->epfd);
    free(l);
}

/* ---- timer heap ---- */

static void heap_swap(seed_loop *l, size_t a, size_t b) {
    seed_source *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->heap_index = a;
    l->heap[b]->heap_index = b;
}

static void heap_up(seed_loop *l, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->heap[p]->deadline <= l->heap[i]->deadline)
            break;
        heap_swap(l, p, i);
        i = p;
    }
}

static void heap_down(seed_loop *l, size_t i) {
    for (;;) {
        size_t a = 2 * i + 1, b = a + 1, m = i;
        if (a < l->n_heap && l->heap[a]->deadline < l->heap[m]->deadline)
            m = a;
        if (b < l->n_heap && l->heap[b]->deadline < l->heap[m]->deadline)
            m = b;
        if (m == i)
            break;
        heap_swap(l, i, m);
        i = m;
    }
}

static int heap_push(seed_loop *l, seed_source *s) {
    if (l->n_heap == l->cap_heap) {
        size_t ncap = l->cap_heap ? l->cap_heap * 2 : 16;
        seed_source **n = realloc(l->heap, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        l->heap = n;
        l->cap_heap = ncap;
    }
    s->heap_index = l->n_heap;
    l->heap[l->n_heap++] = s;
    heap_up(l, s->heap_index);
    return 0;
}

static void heap_remove(seed_loop *l, seed_source *s) {
    size_t i = s->heap_index;
    if (i == SIZE_MAX)
        return;
    s->heap_index = SIZE_MAX;
    l->n_heap--;
    if (i == l->n_heap)
        return;
    l->heap[i] = l->heap[l->n_heap];
    l->heap[i]->heap_index = i;
    heap_down(l, i);
    heap_up(l, i);
}

/* ---- sources ---- */

int seed_loop_add_io(seed_loop *l, int fd, uint32_t events, seed_io_fn fn, void *userdata,
                     seed_source **ret) {
    seed_source *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    *s = (seed_source){.loop = l,
                       .type = SRC_IO,
                       .fd = fd,
                       .events = events,
                       .io = fn,
                       .userdata = userdata,
                       .heap_index = SIZE_MAX};
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int r = negative_errno();
        free(s);
        return r;
    }
    if (ret)
        *ret = s;
    return 0;
}

int seed_source_set_events(seed_source *s, uint32_t events) {
    if (s->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
        return negative_errno();
    s->events = events;
    return 0;
}

int seed_loop_add_timer(seed_loop *l, uint64_t usec, seed_timer_fn fn, void *userdata, seed_source **ret) {
    seed_source *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    *s = (seed_source){.loop = l,
                       .type = SRC_TIMER,
                       .fd = -1,
                       .timer = fn,
                       .userdata = userdata,
                       .deadline = seed_now_usec() + usec,
                       .heap_index = SIZE_MAX};
    int r = heap_push(l, s);
    if (r < 0) {
        free(s);
        return r;
    }
    if (ret)
        *ret = s;
    return 0;
}

int seed_timer_restart(seed_source *s, uint64_t usec) {
    heap_remove(s->loop, s);
    s->deadline = seed_now_usec() + usec;
    return heap_push(s->loop, s);
}

void seed_source_free(seed_source *s) {
    if (!s || s->dead)
        return;
    seed_loop *l = s->loop;
    s->dead = true;
    if (s->type == SRC_IO)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    else
        heap_remove(l, s);
    if (l->dispatching) {
        s->next_dead = l->dead;
        l->dead = s;
    } else {
        free(s);
    }
}

/* ---- running ---- */

int seed_loop_run_once(seed_loop *l, int timeout_ms) {
    if (l->n_heap > 0) {
        uint64_t now = seed_now_usec(), d = l->heap[0]->deadline;
        int until = d <= now ? 0 : (int)MIN((d - now + 999) / 1000, (uint64_t)INT32_MAX);
        if (timeout_ms < 0 || until < timeout_ms)
            timeout_ms = until;
    }
    struct epoll_event evs[64];
    int n = epoll_wait(l->epfd, evs, (int)ELEMENTSOF(evs), timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : negative_errno();

    int r = 0;
    l->dispatching++;
    for (int i = 0; i < n && r >= 0; i++) {
        seed_source *s = evs[i].data.ptr;
        if (s->dead)
            continue;
        r = s->io(s, s->fd, evs[i].events, s->userdata);
    }
    uint64_t now = seed_now_usec();
    while (r >= 0 && l->n_heap > 0 && l->heap[0]->deadline <= now) {
        seed_source *s = l->heap[0];
        heap_remove(l, s);
        r = s->timer(s, s->userdata);
    }
    l->dispatching--;
    if (l->dispatching == 0)
        release_dead(l);
    return r;
}

int seed_loop_run(seed_loop *l) {
    while (!l->exiting) {
        int r = seed_loop_run_once(l, -1);
        if (r < 0)
            return r;
    }
    return l->exit_code;
}

void seed_loop_exit(seed_loop *l, int code) {
    l->exiting = true;
    l->exit_code = code;
}
