/* stderr logging with a timestamp (RFC 3339 UTC, milliseconds, as in instance logs), a
 * prefix and a level threshold. One write(2) per line so lines from several processes
 * sharing stderr do not interleave. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"

static const char *log_prefix = "seed";
static int log_max = SEED_LOG_INFO;

void seed_log_setup(const char *prefix, int max_level) {
    log_prefix = prefix;
    log_max = max_level;
}

int seed_log_level(void) {
    return log_max;
}

void seed_log(int level, const char *fmt, ...) {
    if (level > log_max)
        return;
    int saved = errno;
    char buf[2048], stamp[40];
    static const char *const tags[] = {"error: ", "warning: ", "", "debug: "};
    seed_format_utc(seed_realtime_usec(), 3, stamp, sizeof(stamp));
    int n = snprintf(buf, sizeof(buf), "%s %s: %s", stamp, log_prefix, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof(buf))
        n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf) - 1)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
    errno = saved;
}
