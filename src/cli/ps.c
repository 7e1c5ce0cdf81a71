/* `seed ps [--json]`: the instances of the running node. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/macro.h"
#include "cli/cli.h"
#include "cli/client.h"

int cli_ps(const cli_globals *g, int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'h') {
            printf("Usage: seed ps [--json] [--state-dir DIR]\n\nList the node's instances.\n");
            return 0;
        } else
            return cli_usage_error("ps", "unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage_error("ps", "unexpected argument '%s'", argv[optind]);
    json_t *a = cli_call(g->state_dir, "ps", json_pack("{s:s}", "op", "ps"));
    if (!a)
        return 1;
    json_t *list = json_object_get(a, "instances");
    if (json) {
        cli_print_json(list);
    } else {
        printf("%-20s %-10s %-15s %-8s %-24s %s\n", "NAME", "STATE", "ADDRESS", "RESTARTS", "STARTED",
               "IDENTITY");
        size_t i;
        json_t *in;
        /* Several sources: names as SOURCE/NAME, as every verb takes them. */
        bool several = false;
        json_array_foreach (list, i, in)
            several |= !streq(json_string_value(json_object_get(in, "source")) ?: "",
                              json_string_value(json_object_get(json_array_get(list, 0), "source")) ?: "");
        json_array_foreach (list, i, in) {
            const char *started = json_string_value(json_object_get(in, "startedAt"));
            const char *id = json_string_value(json_object_get(in, "identity"));
            char name[160];
            snprintf(name, sizeof(name), "%s%s%s",
                     several ? json_string_value(json_object_get(in, "source")) : "", several ? "/" : "",
                     json_string_value(json_object_get(in, "name")));
            printf("%-20s %-10s %-15s %-8lld %-24s %.12s\n", name,
                   json_string_value(json_object_get(in, "state")),
                   json_string_value(json_object_get(in, "address")),
                   (long long)json_integer_value(json_object_get(in, "restarts")), started ? started : "-",
                   id ? id : "");
            const char *e = json_string_value(json_object_get(in, "error"));
            if (e)
                printf("    error: %s\n", e);
            const char *re = json_string_value(json_object_get(in, "rolloutError"));
            if (re)
                printf("    rollout failed: %s\n", re);
            size_t k;
            json_t *p;
            json_array_foreach (json_object_get(in, "processes"), k, p) {
                const char *next = json_string_value(json_object_get(p, "nextRestartAt"));
                if (!next)
                    continue;
                const char *sig = json_string_value(json_object_get(p, "signal"));
                json_t *code = json_object_get(p, "exitCode");
                if (sig)
                    printf("    %s: killed by %s; next try at %s\n",
                           json_string_value(json_object_get(p, "name")), sig, next);
                else
                    printf("    %s: exited with code %lld; next try at %s\n",
                           json_string_value(json_object_get(p, "name")), (long long)json_integer_value(code),
                           next);
            }
        }
    }
    json_decref(a);
    return 0;
}
