/* Microsecond clocks, inline so that static helpers (seed-init) share them. */
#pragma once

#include <stdint.h>
#include <stdio.h>
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

/* RFC 3339 UTC text of a CLOCK_REALTIME time with digits (0-6) of fractional second:
 * 2026-11-21T12:00:00.123Z. */
static inline void seed_format_utc(uint64_t usec, unsigned digits, char *buf, size_t size) {
    time_t secs = (time_t)(usec / 1000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t l = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    unsigned frac = (unsigned)(usec % 1000000u);
    for (unsigned d = digits; d < 6; d++)
        frac /= 10;
    if (digits)
        snprintf(buf + l, size - l, ".%0*uZ", (int)digits, frac);
    else
        snprintf(buf + l, size - l, "Z");
}
