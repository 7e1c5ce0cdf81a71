/* spawnload: the peers' load generator of bench/shoot.py. C worker threads run a
 * command N times in all (posix_spawn + waitpid, no shell), timing each run; "{}" in
 * an argument becomes the run's index (for container names). Prints one JSON line
 * like shootload's: count, errors, wall time, throughput, latency percentiles (ms).
 *
 *   spawnload N C CMD [ARG...] */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loadrun.h"

extern char **environ;

static char **cmd;
static int ncmd;
static posix_spawn_file_actions_t fa;

static void *worker(void *arg) {
    (void)arg;
    char **argv = calloc((size_t)ncmd + 1, sizeof(char *));
    char bufs[16][64];
    for (long i; (i = load_next()) >= 0;) {
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
        load_lat[i] = now_ms() - t0;
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            atomic_fetch_add(&load_errors, 1);
    }
    free(argv);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: spawnload N C CMD [ARG...]\n");
        return 2;
    }
    cmd = argv + 3;
    ncmd = argc - 3;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    return load_run(atol(argv[1]), atoi(argv[2]), worker, NULL);
}
