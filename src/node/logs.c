/* Log files with size-based rotation and followers. */
#include "node/logs.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/event.h"
#include "base/utf8.h"
#include "init/protocol.h"

typedef struct follower {
    seed_log_follow_fn fn;
    void *userdata;
    struct follower *next;
} follower;

struct seed_logfile {
    char *path;
    int fd;
    uint64_t size, max;
    follower *followers;
    char *line; /* scratch for one formatted record */
    size_t line_cap;
};

int seed_logfile_open(const char *path, uint64_t max_bytes, seed_logfile **ret, seed_error **err) {
    seed_logfile *lf = calloc(1, sizeof(*lf));
    if (!lf || !(lf->path = strdup(path))) {
        free(lf);
        return seed_error_set(err, ENOMEM, "out of memory");
    }
    lf->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (lf->fd < 0) {
        int r = seed_error_setp(err, errno, "opening log %s", path);
        free(lf->path);
        free(lf);
        return r;
    }
    struct stat st;
    lf->size = fstat(lf->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    lf->max = max_bytes;
    *ret = lf;
    return 0;
}

void seed_logfile_close(seed_logfile *lf) {
    if (!lf)
        return;
    while (lf->followers) {
        follower *f = lf->followers;
        lf->followers = f->next;
        free(f);
    }
    close(lf->fd);
    free(lf->path);
    free(lf->line);
    free(lf);
}

static void rotate(seed_logfile *lf) {
    char old[4200];
    snprintf(old, sizeof(old), "%s.1", lf->path);
    rename(lf->path, old);
    int fd = open(lf->path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return; /* keep writing to the renamed file rather than lose lines */
    close(lf->fd);
    lf->fd = fd;
    lf->size = 0;
}

void seed_logfile_append(seed_logfile *lf, uint64_t ts_usec, const char *proc, int stream, const char *data,
                         size_t len) {
    if (!lf)
        return;
    char stamp[40];
    seed_format_utc(ts_usec, 6, stamp, sizeof(stamp));
    /* stdout: "proc: line"; stderr: "proc (stderr): line"; the init about a process:
     * "proc (seed): line"; the node about the instance: "seed: line". */
    const char *tag = stream == SEED_STREAM_STDERR                         ? " (stderr)"
                      : stream == SEED_STREAM_INIT && !streq(proc, "seed") ? " (seed)"
                                                                           : "";

    len = MIN(len, (size_t)SEED_INIT_MAX_LINE);
    size_t need = 128 + strlen(proc) + 3 * len + 2;
    if (need > lf->line_cap) {
        char *nl = realloc(lf->line, need);
        if (!nl)
            return;
        lf->line = nl;
        lf->line_cap = need;
    }
    char *line = lf->line;
    int n = sprintf(line, "%s %s%s: ", stamp, proc, tag);
    size_t total = (size_t)n + seed_utf8_sanitize(data, len, line + n);
    /* Keep one record on one line: a stray carriage return stays, newlines cannot
     * occur (the init splits on them). */
    line[total++] = '\n';

    if (lf->max && lf->size + total > lf->max)
        rotate(lf);
    ssize_t w = write(lf->fd, line, total);
    if (w > 0)
        lf->size += (uint64_t)w;
    for (follower *f = lf->followers; f;) {
        follower *next = f->next; /* fn may unfollow itself */
        f->fn(f->userdata, line, total);
        f = next;
    }
}

void seed_logfile_printf(seed_logfile *lf, const char *proc, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    seed_logfile_append(lf, seed_realtime_usec(), proc, SEED_STREAM_INIT, buf,
                        MIN((size_t)n, sizeof(buf) - 1));
}

int seed_logfile_follow(seed_logfile *lf, seed_log_follow_fn fn, void *userdata) {
    follower *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->fn = fn;
    f->userdata = userdata;
    f->next = lf->followers;
    lf->followers = f;
    return 0;
}

void seed_logfile_unfollow(seed_logfile *lf, void *userdata) {
    for (follower **pp = &lf->followers; *pp; pp = &(*pp)->next)
        if ((*pp)->userdata == userdata) {
            follower *f = *pp;
            *pp = f->next;
            free(f);
            return;
        }
}

static int read_file(const char *path, char **buf, size_t *len) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : negative_errno();
    return seed_read_fd(fd, 64u << 20, buf, len);
}

/* Where the last n lines of buf start (a final newline ends a line, it does not start
 * one); SIZE_MAX when buf holds fewer. */
static size_t tail_start(const char *buf, size_t len, size_t n) {
    size_t seen = 0;
    for (size_t i = len; i > 0; i--)
        if (buf[i - 1] == '\n' && i != len && ++seen == n)
            return i;
    return SIZE_MAX;
}

int seed_logfile_tail(const char *path, size_t n, char **ret, size_t *ret_len) {
    _cleanup_free_ char *cur = NULL, *all = NULL;
    size_t lc = 0, len = 0;
    int r = read_file(path, &cur, &lc);
    if (r < 0)
        return r;
    size_t start = n > 0 && cur ? tail_start(cur, lc, n) : SIZE_MAX;
    if (start != SIZE_MAX) {
        all = TAKE_PTR(cur); /* the current file has enough */
        len = lc;
    } else {
        /* Everything, or more than the current file holds: the rotated one first. */
        char old[4200];
        snprintf(old, sizeof(old), "%s.1", path);
        r = read_file(old, &all, &len);
        if (r < 0)
            return r;
        char *joined = realloc(all, len + lc + 1);
        if (!joined)
            return -ENOMEM;
        all = joined;
        if (lc)
            memcpy(all + len, cur, lc);
        len += lc;
        all[len] = 0;
        start = n > 0 ? tail_start(all, len, n) : SIZE_MAX;
        if (start == SIZE_MAX)
            start = 0;
    }
    memmove(all, all + start, len - start + 1);
    *ret = TAKE_PTR(all);
    *ret_len = len - start;
    return 0;
}
