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
    "Usage: seed COMMAND [ARGS...] [--state-dir DIR]\n"
    "\n"
    "  --state-dir DIR  the node's state directory (default $SEED_STATE_DIR, else\n"
    "                   " SEED_DEFAULT_STATE_DIR "); every command takes it, anywhere before '--'\n"
    "  --version        print the version\n"
    "\n"
    "Commands:\n"
    "  eval [SOURCE] [--json] [--uri URI]   check a seed project and print each instance's meta\n"
    "  up [SOURCE] [OPTIONS]                run the project's instances in the foreground\n"
    "  ps [--json]                          list the running node's instances\n"
    "  logs NAME [-f] [--tail N]            show an instance's output\n"
    "  stop|restart [-t SECONDS] NAME...    stop or restart instances\n"
    "  start NAME...                        start stopped instances\n"
    "  volume ls [--json] | rm NS/INST/VOL  list or delete persistent volumes\n"
    "  shoot NAME [--timeout MS] -- CMD...  run a command in a shoot of instance NAME\n"
    "  exec [-i] [-t] NAME -- CMD...        run a command inside running instance NAME\n"
    "  apply [SOURCE|NAME] [--dry-run]      evaluate, print the plan, reconcile (seedd and seed up)\n"
    "  source add|ls|rm ...                 the sources a seedd node deploys (directories, git)\n"
    "  history [SOURCE] [--json]            the applies of each source\n"
    "  rollback SOURCE [GENERATION]         re-apply a recorded generation\n"
    "  events [-f] [--json]                 what the node did\n"
    "  down                                 stop every instance gracefully, then the node\n"
    "  image build|push|inspect ...         an instance as a reproducible OCI image\n"
    "  identity [rotate|rm] NAME [--json]   an instance's age recipient, for its secrets\n"
    "  version                              print the version\n"
    "\n"
    "Options may come before or after arguments; everything after '--' is a command's.\n"
    "Run 'seed COMMAND --help' for the options of one command.\n";

/* Take --state-dir DIR and --state-dir=DIR out of a verb's arguments (argv[0] is the
 * verb), so that every verb accepts them anywhere. Stops at "--": what follows is a
 * command's, never ours. Returns 0, or EXIT_USAGE after saying why. */
static int take_state_dir(cli_globals *g, int *argc, char **argv) {
    int i, out = 1;
    for (i = 1; i < *argc && !streq(argv[i], "--"); i++) {
        const char *dir;
        if (streq(argv[i], "--state-dir")) {
            if (i + 1 >= *argc)
                return cli_usage_error(argv[0], "option '--state-dir' needs a directory");
            dir = argv[++i];
        } else if (strncmp(argv[i], "--state-dir=", 12) == 0) {
            dir = argv[i] + 12;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if (!*dir)
            return cli_usage_error(argv[0], "--state-dir needs a non-empty directory");
        g->state_dir = dir;
    }
    while (i < *argc)
        argv[out++] = argv[i++];
    argv[out] = NULL;
    *argc = out;
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
    {"exec", cli_exec},       {"apply", cli_apply},   {"source", cli_source},
    {"history", cli_history}, {"rollback", cli_rollback}, {"events", cli_events},
    {"down", cli_down},       {"image", cli_image},
    {"identity", cli_identity},
};
/* clang-format on */

int main(int argc, char **argv) {
    const char *env = getenv("SEED_STATE_DIR");
    cli_globals g = {.state_dir = env && *env ? env : SEED_DEFAULT_STATE_DIR};
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    /* '+': stop at the first non-option so the verb gets its own options. */
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (c) {
        case 'S':
            if (!*optarg)
                return cli_usage_error(NULL, "--state-dir needs a non-empty directory");
            g.state_dir = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'V':
            printf("seed %s\n", SEED_VERSION);
            return 0;
        case ':':
            return cli_usage_error(NULL, "option '%s' needs an argument", argv[optind - 1]);
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
             * glibc's getopt reinitialise fully, dropping the '+' mode used above, so
             * a verb's options may follow its arguments. */
            int vargc = argc - first;
            int r = take_state_dir(&g, &vargc, argv + first);
            if (r != 0)
                return r;
            optind = 0;
            opterr = 0;
            return verbs[i].run(&g, vargc, argv + first);
        }
    return cli_usage_error(NULL, "unknown command '%s'", verb);
}
