/* A single-threaded event loop over epoll: file descriptors, one-shot timers on a
 * monotonic clock, and deferred release so a callback may free any source, its own
 * included. Signals and child exits come in as fds (signalfd, pidfd). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "base/clock.h"

typedef struct seed_loop seed_loop;
typedef struct seed_source seed_source;

/* Callbacks return 0, or a negative errno to stop the loop with that error. */
typedef int (*seed_io_fn)(seed_source *s, int fd, uint32_t events, void *userdata);
typedef int (*seed_timer_fn)(seed_source *s, void *userdata);

int seed_loop_new(seed_loop **ret);
void seed_loop_free(seed_loop *l);

/* Watch fd for events (EPOLLIN, EPOLLOUT, ...). The loop does not own fd. */
int seed_loop_add_io(seed_loop *l, int fd, uint32_t events, seed_io_fn fn, void *userdata, seed_source **ret);
int seed_source_set_events(seed_source *s, uint32_t events);
/* A one-shot timer `usec` from now. */
int seed_loop_add_timer(seed_loop *l, uint64_t usec, seed_timer_fn fn, void *userdata, seed_source **ret);
/* Re-arm a timer (also one that has fired) to `usec` from now. */
int seed_timer_restart(seed_source *s, uint64_t usec);
/* Remove and release a source; safe inside any callback. NULL is fine. */
void seed_source_free(seed_source *s);

/* Run until seed_loop_exit() or a callback fails; returns the exit code or error. */
int seed_loop_run(seed_loop *l);
/* Run one iteration, waiting at most timeout_ms (-1: until something happens). */
int seed_loop_run_once(seed_loop *l, int timeout_ms);
void seed_loop_exit(seed_loop *l, int code);
