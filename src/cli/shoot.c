/* `seed shoot NAME [--timeout MS] -- CMD [ARG...]`: run a command in a shoot of
 * instance NAME from the node, as if NAME had asked. Output is written as it was,
 * stdin is forwarded when it is not a terminal, and the exit code is the command's. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "shoot/request.h"

static const char shoot_usage[] =
    "Usage: seed shoot NAME [--timeout MS] [--state-dir DIR] -- CMD [ARG...]\n"
    "\n"
    "Run CMD in a fresh shoot of instance NAME (which needs shoot.enable), as if NAME had\n"
    "asked: its output as it was, stdin forwarded when it is not a terminal, its exit code.\n"
    "Options go anywhere before '--'; everything after it is the command.\n"
    "\n"
    "  --timeout MS  kill the command after MS milliseconds (exit 124; default 30000)\n";

/* Parse options up to the first non-option (or all of argv[1..argc), permuting, when
 * stop_at_arg is false). Returns -1 to go on, or the exit status. */
static int shoot_options(int argc, char **argv, bool stop_at_arg, long *timeout) {
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    optind = 0; /* reinitialise: a new argv, and maybe a new mode */
    while ((c = getopt_long(argc, argv, stop_at_arg ? "+:t:h" : ":t:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': {
            char *end;
            *timeout = strtol(optarg, &end, 10);
            if (*end || end == optarg || *timeout < 1 || *timeout > (long)SEED_SHOOT_MAX_TIMEOUT_MS)
                return cli_usage_error("shoot", "--timeout expects milliseconds from 1 to %u, got '%s'",
                                       SEED_SHOOT_MAX_TIMEOUT_MS, optarg);
            break;
        }
        case 'h':
            fputs(shoot_usage, stdout);
            return 0;
        case ':':
            return cli_usage_error("shoot", "option '%s' needs an argument", argv[optind - 1]);
        default:
            return cli_usage_error("shoot", "unknown option '%s'", argv[optind - 1]);
        }
    }
    return -1;
}

int cli_shoot(const cli_globals *g, int argc, char **argv) {
    long timeout = -1;
    const char *name;
    char **cmd;
    int n_cmd, r;
    int dd = 1;
    while (dd < argc && !streq(argv[dd], "--"))
        dd++;
    if (dd < argc) {
        /* NAME and options in any order before "--", the command after it. */
        if ((r = shoot_options(dd, argv, false, &timeout)) >= 0)
            return r;
        if (dd - optind != 1)
            return cli_usage_error("shoot", "expected one instance NAME before '--', got %d", dd - optind);
        name = argv[optind];
        cmd = argv + dd + 1;
        n_cmd = argc - dd - 1;
    } else {
        /* No "--": options, NAME, options, then the command from its first word on. */
        if ((r = shoot_options(argc, argv, true, &timeout)) >= 0)
            return r;
        if (optind >= argc)
            return cli_usage_error(
                "shoot", "expected an instance NAME and a command: seed shoot NAME -- CMD [ARG...]");
        int at = optind;
        name = argv[at];
        if ((r = shoot_options(argc - at, argv + at, true, &timeout)) >= 0)
            return r;
        cmd = argv + at + optind;
        n_cmd = argc - at - optind;
    }
    if (n_cmd < 1)
        return cli_usage_error("shoot", "expected a command: seed shoot NAME -- CMD [ARG...]");
    _cleanup_free_ char *in = NULL;
    size_t len = 0;
    if (!isatty(0) && seed_read_fd(0, SEED_SHOOT_MAX_STDIN, &in, &len) < 0) {
        fprintf(stderr, "seed shoot: stdin is too large (pass large data through a volume)\n");
        return 1;
    }
    json_t *req = seed_shoot_request_build(cmd, n_cmd, timeout, in, len);
    if (!req)
        return cli_usage_error("shoot", "the command must be valid UTF-8");
    json_t *a = cli_call(g->state_dir, "shoot",
                         json_pack("{s:s, s:s, s:o}", "op", "shoot", "name", name, "request", req));
    if (!a)
        return 125;
    json_t *res = json_object_get(a, "result");
    seed_shoot_write_output(res, "stdout", 1);
    seed_shoot_write_output(res, "stderr", 2);
    int code = (int)json_integer_value(json_object_get(res, "exitCode"));
    json_decref(a);
    return code;
}
