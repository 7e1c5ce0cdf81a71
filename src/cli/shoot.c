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

int cli_shoot(const cli_globals *g, int argc, char **argv) {
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {0}};
    long timeout = -1;
    int c;
    while ((c = getopt_long(argc, argv, "+:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': {
            char *end;
            timeout = strtol(optarg, &end, 10);
            if (*end || end == optarg || timeout < 1 || timeout > (long)SEED_SHOOT_MAX_TIMEOUT_MS)
                return cli_usage_error("shoot", "--timeout expects milliseconds from 1 to %u, got '%s'",
                                       SEED_SHOOT_MAX_TIMEOUT_MS, optarg);
            break;
        }
        case 'h':
            printf("Usage: seed [--state-dir DIR] shoot NAME [--timeout MS] -- CMD [ARG...]\n");
            return 0;
        case ':':
            return cli_usage_error("shoot", "option '%s' needs an argument", argv[optind - 1]);
        default:
            return cli_usage_error("shoot", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind < 2)
        return cli_usage_error("shoot",
                               "expected an instance NAME and a command: seed shoot NAME -- CMD [ARG...]");
    const char *name = argv[optind++];
    if (streq(argv[optind], "--"))
        optind++;
    if (optind >= argc)
        return cli_usage_error("shoot", "expected a command after --");
    _cleanup_free_ char *in = NULL;
    size_t len = 0;
    if (!isatty(0) && seed_read_fd(0, SEED_SHOOT_MAX_STDIN, &in, &len) < 0) {
        fprintf(stderr, "seed shoot: stdin is too large (pass large data through a volume)\n");
        return 1;
    }
    json_t *req = seed_shoot_request_build(argv + optind, argc - optind, timeout, in, len);
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
