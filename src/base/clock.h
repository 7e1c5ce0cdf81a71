/* Microsecond clocks, inline so that static helpers (seed-init) share them. */
#pragma once

#include <stdint.h>
#include <time.h>

static inline uint64_t seed_clock_usec(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t seed_now_usec(void) { /* CLOCK_MONOTONIC */
    return seed_clock_usec(CLOCK_MONOTONIC);
}

static inline uint64_t seed_realtime_usec(void) {
    return seed_clock_usec(CLOCK_REALTIME);
}
