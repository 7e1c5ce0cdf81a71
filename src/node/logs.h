/* Instance logs: one file per instance in the state directory, one timestamped line
 * per output line, tagged with the process name; rotated by size (one old file is
 * kept); `seed logs -f` readers follow new lines as they are appended. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct seed_logfile seed_logfile;
typedef void (*seed_log_follow_fn)(void *userdata, const char *line, size_t len);

int seed_logfile_open(const char *path, uint64_t max_bytes, seed_logfile **ret, seed_error **err);
void seed_logfile_close(seed_logfile *lf);

/* stream: SEED_STREAM_STDOUT, _STDERR or _INIT (a message from the init or node). */
void seed_logfile_append(seed_logfile *lf, uint64_t ts_usec, const char *proc, int stream, const char *data,
                         size_t len);
void seed_logfile_printf(seed_logfile *lf, const char *proc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int seed_logfile_follow(seed_logfile *lf, seed_log_follow_fn fn, void *userdata);
void seed_logfile_unfollow(seed_logfile *lf, void *userdata);

/* The last n lines (0: all) of the log at path and its rotated predecessor. */
int seed_logfile_tail(const char *path, size_t n, char **ret, size_t *ret_len);
