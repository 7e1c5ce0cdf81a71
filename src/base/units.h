/* Byte counts as people read them: "1.5 GiB", "512 B". Inline, so that every front
 * end and the static helpers share it. */
#pragma once

#include <stdint.h>
#include <stdio.h>

static inline void seed_format_bytes(uint64_t b, char *buf, size_t size) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}
