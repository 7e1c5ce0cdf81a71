/* spawnload: the peers' load generator of bench/shoot.py. C worker threads run a
 * command N times in all (posix_spawn + waitpid, no shell), timing each run; "{}" in
 * an argument becomes the run's index (for container names). Prints one JSON line
 * like shootload's: count, errors, wall time, throughput, latency percentiles (ms).
 *
 *   spawnload N C CMD [ARG...] */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char **cmd;
static int ncmd;
static long total;
static atomic_long next_run, errors;
static double *lat;
static posix_spawn_file_actions_t fa;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void *worker(void *arg) {
    (void)arg;
    char **argv = calloc((size_t)ncmd + 1, sizeof(char *));
    char bufs[16][64];
    for (;;) {
        long i = atomic_fetch_add(&next_run, 1);
        if (i >= total)
            break;
        for (int k = 0; k < ncmd; k++) {
            char *at = strstr(cmd[k], "{}");
            if (at && k < 16) {
                snprintf(bufs[k], sizeof(bufs[k]), "%.*s%ld%s", (int)(at - cmd[k]), cmd[k], i, at + 2);
                argv[k] = bufs[k];
            } else {
                argv[k] = cmd[k];
            }
        }
        double t0 = now_ms();
        pid_t pid;
        int status = -1;
        if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) == 0)
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        lat[i] = now_ms() - t0;
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            atomic_fetch_add(&errors, 1);
    }
    free(argv);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: spawnload N C CMD [ARG...]\n");
        return 2;
    }
    total = atol(argv[1]);
    int conc = atoi(argv[2]);
    cmd = argv + 3;
    ncmd = argc - 3;
    lat = calloc((size_t)total, sizeof(double));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pthread_t *t = calloc((size_t)conc, sizeof(pthread_t));
    double t0 = now_ms();
    for (int i = 0; i < conc; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < conc; i++)
        pthread_join(t[i], NULL);
    double wall = now_ms() - t0;
    qsort(lat, (size_t)total, sizeof(double), cmp);
    printf("{\"n\":%ld,\"clients\":%d,\"errors\":%ld,\"wall_ms\":%.1f,\"per_s\":%.1f,\"p50_ms\":%.3f,"
           "\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
           total, conc, (long)errors, wall, (double)total / wall * 1000, lat[total / 2], lat[total * 9 / 10],
           lat[total * 99 / 100], lat[total - 1]);
    return 0;
}
