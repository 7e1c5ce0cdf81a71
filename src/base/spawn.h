/* Running a helper program (nix-store, ...) and collecting what it says. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct seed_spawn_result {
    char *out; /* all of stdout, NUL-terminated */
    size_t out_len;
    char *err;      /* the last bytes of stderr, NUL-terminated */
    int status;     /* the exit code, or 128 + N when killed by signal N */
    bool timed_out; /* killed because opts->timeout_ms ran out */
} seed_spawn_result;

void seed_spawn_result_clear(seed_spawn_result *r);

typedef struct seed_spawn_opts {
    unsigned timeout_ms; /* 0: none; else the program gets a process group of its own, and past
                          * the time it and its group get SIGKILL. (Without, it stays in
                          * ours: whoever ends our group ends it too.) */
    uint64_t max_memory; /* 0: none; else its RLIMIT_DATA and RLIMIT_AS, in bytes */
    const char *cwd;     /* NULL: ours */
    const char *env_add; /* "NAME=value" added to our environment for it, or NULL */
    size_t err_kept;     /* how much of the end of stderr to keep; 0: 4 KiB */
} seed_spawn_opts;

/* Run argv (argv[0] searched in PATH) with stdin on /dev/null and no other fds of
 * ours, collect stdout (more than max_out bytes: -EFBIG) and the end of stderr. 0 when
 * it ran (whatever its exit code: see status), -ENOENT when argv[0] was not found,
 * another negative errno when it could not be started or read. */
int seed_spawn_capture(const char *const argv[], size_t max_out, const seed_spawn_opts *opts,
                       seed_spawn_result *ret);
