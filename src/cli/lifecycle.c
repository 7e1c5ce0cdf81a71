/* `seed stop|start|restart NAME...`: change instances and wait until each settled.
 * All requests go out at once (each on its own connection, so a slow stop does not
 * hold up the others); the answers are reported in the order of the names. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"
#include "cli/cli.h"
#include "cli/client.h"

static void lifecycle_usage(const char *verb) {
    bool grace = !streq(verb, "start");
    printf("Usage: seed %s%s NAME... [--state-dir DIR]\n\n", verb, grace ? " [-t|--time SECONDS]" : "");
    printf("%s each instance NAME and wait until it %s. Exit status 1 if any failed.\n",
           streq(verb, "stop")    ? "Stop"
           : streq(verb, "start") ? "Start"
                                  : "Restart",
           streq(verb, "stop") ? "stopped" : "runs");
    if (grace)
        printf("\n  -t, --time SECONDS  time between SIGTERM and SIGKILL for this call\n"
               "                      (default: the node's --grace)\n");
}

static int lifecycle(const cli_globals *g, const char *verb, int argc, char **argv) {
    static const struct option opts[] = {
        {"time", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {0}};
    bool grace_ok = !streq(verb, "start");
    long grace_ms = -1; /* the node's --grace */
    int c;
    while ((c = getopt_long(argc, argv, ":t:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': {
            char *end;
            double secs = strtod(optarg, &end);
            if (!grace_ok)
                return cli_usage_error(verb, "--time is an option of stop and restart");
            if (*end || end == optarg || !(secs >= 0 && secs <= 3600))
                return cli_usage_error(verb, "--time expects seconds from 0 to 3600, got '%s'", optarg);
            grace_ms = (long)(secs * 1000) ?: 1; /* 0: SIGKILL at once */
            break;
        }
        case 'h':
            lifecycle_usage(verb);
            return 0;
        case ':':
            return cli_usage_error(verb, "option '%s' needs an argument", argv[optind - 1]);
        default:
            return cli_usage_error(verb, "unknown option '%s'", argv[optind - 1]);
        }
    }
    int n = argc - optind;
    if (n < 1)
        return cli_usage_error(verb, "expected at least one instance NAME");
    char **names = argv + optind;
    _cleanup_free_ FILE **answers = calloc((size_t)n, sizeof(FILE *));
    if (!answers) {
        fprintf(stderr, "seed %s: out of memory\n", verb);
        return 1;
    }
    int ret = 0;
    for (int i = 0; i < n; i++) {
        int fd;
        if (cli_connect(g->state_dir, &fd) < 0) {
            ret = 1;
            break; /* the same reason for every name */
        }
        json_t *req = json_pack("{s:s, s:s}", "op", verb, "name", names[i]);
        if (req && grace_ms > 0)
            json_object_set_new(req, "grace_ms", json_integer(grace_ms));
        int r = req ? cli_request(fd, req, &answers[i]) : -ENOMEM;
        json_decref(req);
        if (r < 0) {
            close(fd);
            fprintf(stderr, "seed %s: %s: %s\n", verb, names[i], strerror(-r));
            ret = 1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (!answers[i])
            continue;
        json_t *a = cli_read_answer(answers[i]);
        fclose(answers[i]);
        if (!a) {
            fprintf(stderr, "seed %s: %s: the node closed the connection without an answer\n", verb,
                    names[i]);
            ret = 1;
        } else if (!json_is_true(json_object_get(a, "ok"))) {
            fprintf(stderr, "seed %s: %s\n", verb,
                    json_string_value(json_object_get(a, "error")) ?: "failed");
            ret = 1;
        } else {
            printf("%s: %s\n", names[i], json_string_value(json_object_get(a, "state")) ?: "ok");
            fflush(stdout);
        }
        json_decref(a);
    }
    return ret;
}

int cli_stop(const cli_globals *g, int argc, char **argv) {
    return lifecycle(g, "stop", argc, argv);
}

int cli_start(const cli_globals *g, int argc, char **argv) {
    return lifecycle(g, "start", argc, argv);
}

int cli_restart(const cli_globals *g, int argc, char **argv) {
    return lifecycle(g, "restart", argc, argv);
}
