/* Logging for front ends (the node's loop, the CLI, the init's main loop). Library
 * code reports errors upward instead (docs/errors.md rule 4). */
#pragma once

#include "base/macro.h"

enum { SEED_LOG_ERROR, SEED_LOG_WARNING, SEED_LOG_INFO, SEED_LOG_DEBUG };

void seed_log_setup(const char *prefix, int max_level);
int seed_log_level(void);
void seed_log(int level, const char *fmt, ...) _printf_(2, 3);

#define log_error(...) seed_log(SEED_LOG_ERROR, __VA_ARGS__)
#define log_warning(...) seed_log(SEED_LOG_WARNING, __VA_ARGS__)
#define log_info(...) seed_log(SEED_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                             \
    do {                                           \
        if (seed_log_level() >= SEED_LOG_DEBUG)    \
            seed_log(SEED_LOG_DEBUG, __VA_ARGS__); \
    } while (0)
