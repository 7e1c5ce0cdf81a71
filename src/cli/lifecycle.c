/* `seed stop|start|restart NAME`: change one instance and wait until it settled. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/client.h"

static int lifecycle(const cli_globals *g, const char *verb, int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("Usage: seed [--state-dir DIR] %s NAME\n", verb);
            return 0;
        }
        return cli_usage_error(verb, "unknown option '%s'", argv[optind - 1]);
    }
    if (argc - optind != 1)
        return cli_usage_error(verb, "expected one instance NAME");
    json_t *a = cli_call(g->state_dir, verb, json_pack("{s:s, s:s}", "op", verb, "name", argv[optind]));
    if (!a)
        return 1;
    printf("%s: %s\n", argv[optind], json_string_value(json_object_get(a, "state")) ?: "ok");
    json_decref(a);
    return 0;
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
