/* `seed`: parse global options and dispatch to a verb. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "cli/cli.h"
#include "node/node.h"

#ifndef SEED_VERSION
#define SEED_VERSION "0.0.0"
#endif

static const char usage[] =
    "Usage: seed [--state-dir DIR] COMMAND [ARGS...]\n"
    "\n"
    "  --state-dir DIR  the node's state directory (default " SEED_DEFAULT_STATE_DIR ")\n"
    "\n"
    "Commands:\n"
    "  eval [SOURCE] [--json] [--uri URI]   check a seed project and print each instance's meta\n"
    "  up [SOURCE] [OPTIONS]                run the project's instances in the foreground\n"
    "  ps [--json]                          list the running node's instances\n"
    "  logs NAME [-f] [--tail N]            show an instance's output\n"
    "  stop|start|restart NAME              change one instance\n"
    "  volume ls [--json] | rm NS/INST/VOL  list or delete persistent volumes\n"
    "  shoot NAME [--timeout MS] -- CMD...  run a command in a shoot of instance NAME\n"
    "  exec [-i] [-t] NAME -- CMD...        run a command inside running instance NAME\n"
    "  version                              print the version\n"
    "\n"
    "Run 'seed COMMAND --help' for the options of one command.\n";

int cli_usage_error(const char *verb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "seed%s%s: ", verb ? " " : "", verb ? verb : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'seed %s%s--help'.\n", verb ? verb : "", verb ? " " : "");
    return EXIT_USAGE;
}

int cli_print_json(const json_t *j) {
    /* To memory first: json_dumpf issues one stdio call per token, which costs more
     * than a whole evaluation on large projects. */
    char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    if (!s)
        return -ENOMEM;
    fputs(s, stdout);
    putchar('\n');
    free(s);
    return 0;
}

struct verb {
    const char *name;
    int (*run)(const cli_globals *g, int argc, char **argv);
};

/* clang-format off */
static const struct verb verbs[] = {
    {"eval", cli_eval},       {"up", cli_up},         {"ps", cli_ps},
    {"logs", cli_logs},       {"stop", cli_stop},     {"start", cli_start},
    {"restart", cli_restart}, {"volume", cli_volume}, {"shoot", cli_shoot},
    {"exec", cli_exec},
};
/* clang-format on */

int main(int argc, char **argv) {
    cli_globals g = {.state_dir = SEED_DEFAULT_STATE_DIR};
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    /* '+': stop at the first non-option so the verb gets its own options. */
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'S':
            g.state_dir = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'V':
            printf("seed %s\n", SEED_VERSION);
            return 0;
        default:
            return cli_usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    int first = optind;
    const char *verb = argv[first];
    if (streq(verb, "version")) {
        printf("seed %s\n", SEED_VERSION);
        return 0;
    }
    if (streq(verb, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
        if (streq(verb, verbs[i].name)) {
            /* Hand the verb its own argv with the verb as argv[0]. optind = 0 makes
             * glibc's getopt reinitialise fully, dropping the '+' mode used above. */
            optind = 0;
            opterr = 0;
            return verbs[i].run(&g, argc - first, argv + first);
        }
    return cli_usage_error(NULL, "unknown command '%s'", verb);
}
