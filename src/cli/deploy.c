/* The deploy verbs, all through the node's control socket:
 *   seed apply [SOURCE|NAME] [--dry-run] [--json]
 *   seed source add NAME URL [--ref REF] [--webhook-secret-file F] [--poll SECONDS]
 *   seed source ls [--json] | rm NAME
 *   seed history [SOURCE] [--json]
 *   seed rollback SOURCE [GENERATION]
 *   seed events [-f] [--json]
 *   seed down */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"
#include "cli/cli.h"
#include "cli/client.h"

static const char *str(json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* The plan, as apply prints it before acting:  "  ~ web  replace (rolling)". */
static void print_plan(json_t *msg) {
    json_t *plan = json_object_get(msg, "plan");
    const char *rev = json_string_value(json_object_get(msg, "revision"));
    printf("source %s (namespace %s)%s%.12s%s:\n", str(msg, "source"), str(msg, "namespace"),
           rev ? " at " : "", rev ? rev : "",
           json_is_true(json_object_get(msg, "dryRun")) ? ", dry run" : "");
    size_t i;
    json_t *st;
    if (json_array_size(plan) == 0)
        printf("  (no instances)\n");
    json_array_foreach (plan, i, st) {
        const char *action = str(st, "action");
        const char *sign = streq(action, "create")    ? "+"
                           : streq(action, "replace") ? "~"
                           : streq(action, "remove")  ? "-"
                                                      : "=";
        printf("  %s %-24s %s", sign, str(st, "name"), action);
        if (streq(action, "replace"))
            printf(" (%s)", str(st, "rollout"));
        printf("\n");
    }
    fflush(stdout);
}

static void print_result(const char *verb, json_t *res) {
    json_t *plan = json_object_get(res, "plan");
    size_t i;
    json_t *st;
    json_array_foreach (plan, i, st)
        if (streq(str(st, "result"), "failed"))
            printf("  %s: %s failed: %s\n", str(st, "name"), str(st, "action"), str(st, "error"));
    json_t *gen = json_object_get(res, "generation");
    if (json_is_true(json_object_get(res, "ok"))) {
        if (json_is_true(json_object_get(res, "dryRun")))
            printf("dry run: nothing was changed\n");
        else
            printf("applied generation %lld of %s\n", (long long)json_integer_value(gen), str(res, "source"));
        return;
    }
    fprintf(stderr, "seed %s: %s%s%s\n", verb, *str(res, "source") ? str(res, "source") : "",
            *str(res, "source") ? ": " : "", str(res, "error"));
    json_t *d;
    json_array_foreach (json_object_get(res, "diagnostics"), i, d) {
        const char *file = json_string_value(json_object_get(d, "file"));
        fprintf(stderr, "  %s%s%s%s%s\n", file ? file : "", file ? ": " : "", str(d, "path"),
                *str(d, "path") ? ": " : "", str(d, "message"));
    }
}

/* Send req and follow the answer: the plan line, then the result. 0 when it applied. */
static int follow_apply(const char *state_dir, const char *verb, json_t *req, bool json, json_t **ret) {
    int fd;
    if (cli_connect(state_dir, &fd) < 0) {
        json_decref(req);
        return 1;
    }
    FILE *f = NULL;
    int r = cli_request(fd, req, &f);
    if (r < 0) {
        fprintf(stderr, "seed %s: %s\n", verb, strerror(-r));
        close(fd);
        return 1;
    }
    json_t *res = NULL;
    for (json_t *line; (line = cli_read_answer(f));) {
        json_t *plan = json_object_get(line, "ok") ? NULL : json_object_get(line, "plan");
        if (plan) {
            if (!json)
                print_plan(plan);
            json_decref(line);
            continue;
        }
        res = line;
        break;
    }
    fclose(f);
    if (!res) {
        fprintf(stderr, "seed %s: the node closed the connection without an answer\n", verb);
        return 1;
    }
    bool ok = json_is_true(json_object_get(res, "ok"));
    if (ret)
        *ret = json_incref(res);
    else if (json)
        cli_print_json(res);
    else if (json_object_get(res, "plan") || json_object_get(res, "diagnostics") || ok)
        print_result(verb, res);
    else
        fprintf(stderr, "seed %s: %s\n", verb, str(res, "error"));
    json_decref(res);
    return ok ? 0 : 1;
}

static const char apply_usage[] =
    "Usage: seed apply [SOURCE|NAME|SOURCE/NAME] [--dry-run] [--json]\n"
    "\n"
    "Evaluate a source (all of them when none is named) and print the plan, per instance:\n"
    "  + create   ~ replace (recreate|rolling)   - remove   = unchanged\n"
    "then bring the instances to it and wait until they converged. Naming an instance\n"
    "applies that instance's change only. Exit status: 0 converged, 1 the project has\n"
    "errors (nothing changed) or a rollout failed.\n"
    "\n"
    "  --dry-run  print the plan only\n"
    "  --json     print the plan and result as JSON\n";

int cli_apply(const cli_globals *g, int argc, char **argv) {
    static const struct option opts[] = {{"dry-run", no_argument, NULL, 'n'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    bool dry = false, json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'n')
            dry = true;
        else if (c == 'j')
            json = true;
        else if (c == 'h') {
            fputs(apply_usage, stdout);
            return 0;
        } else
            return cli_usage_error("apply", "unknown option '%s'", argv[optind - 1]);
    }
    if (argc - optind > 1)
        return cli_usage_error("apply", "expected at most one SOURCE or NAME, got %d", argc - optind);
    if (cli_state_access(g->state_dir) < 0)
        return 1;
    if (optind < argc)
        return follow_apply(
            g->state_dir, "apply",
            json_pack("{s:s, s:s, s:b}", "op", "apply", "target", argv[optind], "dry_run", dry), json, NULL);
    /* Every source, one after another. */
    json_t *ls = cli_call(g->state_dir, "apply", json_pack("{s:s}", "op", "source-ls"));
    if (!ls)
        return 1;
    json_t *srcs = json_object_get(ls, "sources");
    if (json_array_size(srcs) == 0) {
        fprintf(stderr, "seed apply: this node serves no sources (seed source add NAME URL)\n");
        json_decref(ls);
        return 1;
    }
    int rc = 0;
    json_t *all = json_array();
    size_t i;
    json_t *s;
    json_array_foreach (srcs, i, s) {
        json_t *res = NULL;
        int r = follow_apply(
            g->state_dir, "apply",
            json_pack("{s:s, s:s, s:b}", "op", "apply", "target", str(s, "name"), "dry_run", dry), json,
            json ? &res : NULL);
        if (res)
            json_array_append_new(all, res);
        rc |= r;
    }
    if (json)
        cli_print_json(all);
    json_decref(all);
    json_decref(ls);
    return rc;
}

static const char source_usage[] =
    "Usage: seed source add NAME URL [--ref REF] [--webhook-secret-file FILE] [--poll SECONDS]\n"
    "       seed source ls [--json]\n"
    "       seed source rm NAME\n"
    "\n"
    "Sources are what a seedd node deploys: a directory (/srv/project, path:/srv/project)\n"
    "or a git repository (/srv/repo.git, file://, https://, ssh://) at a branch or tag\n"
    "(--ref; default the remote's HEAD). Each is a namespace of its own. add applies it\n"
    "at once and waits like seed apply; rm stops its instances and keeps their volumes.\n"
    "\n"
    "  --ref REF                  branch or tag to deploy\n"
    "  --webhook-secret-file F    accept push webhooks signed with the secret in F\n"
    "  --poll SECONDS             fetch and apply every SECONDS (0: never)\n"
    "  --json                     (ls) print JSON\n";

static int source_ls(const cli_globals *g, bool json) {
    json_t *a = cli_call(g->state_dir, "source ls", json_pack("{s:s}", "op", "source-ls"));
    if (!a)
        return 1;
    json_t *srcs = json_object_get(a, "sources");
    if (json) {
        cli_print_json(srcs);
    } else {
        printf("%-16s %-14s %-12s %-4s %-8s %s\n", "SOURCE", "NAMESPACE", "REVISION", "GEN", "RESULT", "URL");
        size_t i;
        json_t *s;
        json_array_foreach (srcs, i, s) {
            printf("%-16s %-14s %-12.12s %-4lld %-8s %s%s%s\n", str(s, "name"), str(s, "namespace"),
                   *str(s, "revision") ? str(s, "revision") : "-",
                   (long long)json_integer_value(json_object_get(s, "generation")),
                   *str(s, "lastResult") ? str(s, "lastResult") : "-", str(s, "url"),
                   *str(s, "ref") ? " ref " : "", str(s, "ref"));
            if (*str(s, "lastError"))
                printf("  error: %s\n", str(s, "lastError"));
        }
    }
    json_decref(a);
    return 0;
}

int cli_source(const cli_globals *g, int argc, char **argv) {
    static const struct option opts[] = {
        {"ref", required_argument, NULL, 'r'},  {"webhook-secret-file", required_argument, NULL, 'w'},
        {"poll", required_argument, NULL, 'p'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},       {0}};
    const char *ref = NULL, *secret = NULL;
    long poll = -1;
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            ref = optarg;
            break;
        case 'w':
            secret = optarg;
            break;
        case 'p': {
            char *end;
            poll = strtol(optarg, &end, 10);
            if (*end || end == optarg || poll < 0 || poll > 604800)
                return cli_usage_error("source", "--poll expects seconds from 0 (never) to 604800, got '%s'",
                                       optarg);
            break;
        }
        case 'j':
            json = true;
            break;
        case 'h':
            fputs(source_usage, stdout);
            return 0;
        case ':':
            return cli_usage_error("source", "option '%s' needs an argument", argv[optind - 1]);
        default:
            return cli_usage_error("source", "unknown option '%s'", argv[optind - 1]);
        }
    }
    int nargs = argc - optind;
    const char *sub = nargs > 0 ? argv[optind] : NULL;
    if (!sub)
        return cli_usage_error("source", "expected add, ls or rm");
    if (cli_state_access(g->state_dir) < 0)
        return 1;
    if (streq(sub, "ls")) {
        if (nargs != 1)
            return cli_usage_error("source", "ls takes no arguments");
        return source_ls(g, json);
    }
    if (streq(sub, "rm")) {
        if (nargs != 2)
            return cli_usage_error("source", "rm expects one NAME");
        json_t *a = cli_call(g->state_dir, "source rm",
                             json_pack("{s:s, s:s}", "op", "source-rm", "name", argv[optind + 1]));
        if (!a)
            return 1;
        printf("source %s removed; its instances stopped, their volumes kept (seed volume ls)\n",
               argv[optind + 1]);
        json_decref(a);
        return 0;
    }
    if (streq(sub, "add")) {
        if (nargs != 3)
            return cli_usage_error("source", "add expects NAME URL");
        char secret_abs[PATH_MAX];
        if (secret && !realpath(secret, secret_abs)) {
            fprintf(stderr, "seed source add: --webhook-secret-file %s: %s\n", secret, strerror(errno));
            return 1;
        }
        /* A relative directory is the caller's: the node needs it absolute. */
        const char *url = argv[optind + 2];
        char url_abs[PATH_MAX];
        if (url[0] == '.' && realpath(url, url_abs))
            url = url_abs;
        json_t *req = json_pack("{s:s, s:s, s:s}", "op", "source-add", "name", argv[optind + 1], "url", url);
        if (ref)
            json_object_set_new(req, "ref", json_string(ref));
        if (secret)
            json_object_set_new(req, "secret_file", json_string(secret_abs));
        if (poll >= 0)
            json_object_set_new(req, "poll", json_integer(poll));
        return follow_apply(g->state_dir, "source add", req, json, NULL);
    }
    return cli_usage_error("source", "unknown subcommand '%s': expected add, ls or rm", sub);
}

static const char history_usage[] =
    "Usage: seed history [SOURCE] [--json] [--limit N]\n"
    "\n"
    "The applies of the node's sources, oldest first: generation, revision, time,\n"
    "trigger, result and what each instance went through.\n";

int cli_history(const cli_globals *g, int argc, char **argv) {
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    bool json = false;
    long limit = 100;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'l') {
            char *end;
            limit = strtol(optarg, &end, 10);
            if (*end || end == optarg || limit < 1 || limit > 1000000)
                return cli_usage_error("history", "--limit expects a number from 1 to 1000000, got '%s'",
                                       optarg);
        } else if (c == 'h') {
            fputs(history_usage, stdout);
            return 0;
        } else
            return cli_usage_error("history", "unknown option '%s'", argv[optind - 1]);
    }
    if (argc - optind > 1)
        return cli_usage_error("history", "expected at most one SOURCE");
    if (cli_state_access(g->state_dir) < 0)
        return 1;
    json_t *req = json_pack("{s:s, s:I}", "op", "history", "limit", (json_int_t)limit);
    if (optind < argc)
        json_object_set_new(req, "source", json_string(argv[optind]));
    json_t *a = cli_call(g->state_dir, "history", req);
    if (!a)
        return 1;
    json_t *h = json_object_get(a, "history");
    if (json) {
        cli_print_json(h);
    } else {
        printf("%-16s %-4s %-24s %-12s %-10s %-7s %s\n", "SOURCE", "GEN", "TIME", "REVISION", "TRIGGER",
               "RESULT", "ACTIONS");
        size_t i;
        json_t *row;
        json_array_foreach (h, i, row) {
            char actions[512] = "";
            size_t o = 0, k;
            json_t *ac;
            json_array_foreach (json_object_get(row, "actions"), k, ac) {
                const char *act = str(ac, "action");
                if (streq(act, "unchanged") || o >= sizeof(actions) - 64)
                    continue;
                o += (size_t)snprintf(actions + o, sizeof(actions) - o, "%s%s %s%s", o ? ", " : "", act,
                                      str(ac, "name"), streq(str(ac, "result"), "failed") ? " (failed)" : "");
            }
            printf("%-16s %-4lld %-24s %-12.12s %-10s %-7s %s\n", str(row, "source"),
                   (long long)json_integer_value(json_object_get(row, "generation")), str(row, "time"),
                   *str(row, "revision") ? str(row, "revision") : "-", str(row, "trigger"),
                   str(row, "result"), *actions ? actions : "-");
            if (*str(row, "error"))
                printf("  error: %s\n", str(row, "error"));
        }
    }
    json_decref(a);
    return 0;
}

int cli_rollback(const cli_globals *g, int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'h') {
            fputs("Usage: seed rollback SOURCE [GENERATION] [--json]\n"
                  "\n"
                  "Re-apply a recorded generation of SOURCE (default: the last good one before the\n"
                  "current). The source stays pinned to it until the next push or seed apply.\n",
                  stdout);
            return 0;
        } else
            return cli_usage_error("rollback", "unknown option '%s'", argv[optind - 1]);
    }
    int nargs = argc - optind;
    if (nargs < 1 || nargs > 2)
        return cli_usage_error("rollback", "expected SOURCE [GENERATION]");
    json_t *req = json_pack("{s:s, s:s}", "op", "rollback", "source", argv[optind]);
    if (nargs == 2) {
        char *end;
        long gen = strtol(argv[optind + 1], &end, 10);
        if (*end || end == argv[optind + 1] || gen < 1 || gen > INT_MAX) {
            json_decref(req);
            return cli_usage_error("rollback", "GENERATION is a number from seed history, got '%s'",
                                   argv[optind + 1]);
        }
        json_object_set_new(req, "generation", json_integer(gen));
    }
    if (cli_state_access(g->state_dir) < 0) {
        json_decref(req);
        return 1;
    }
    return follow_apply(g->state_dir, "rollback", req, json, NULL);
}

static void print_event(json_t *ev, bool json) {
    if (json) {
        char *s = json_dumps(ev, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
    } else {
        const char *src = str(ev, "source"), *in = str(ev, "instance");
        printf("%s %-20s %s%s%s%s %s\n", str(ev, "time"), str(ev, "kind"), src, *src && *in ? "/" : "", in,
               *src || *in ? ":" : "", str(ev, "message"));
    }
    fflush(stdout);
}

int cli_events(const cli_globals *g, int argc, char **argv) {
    static const struct option opts[] = {{"follow", no_argument, NULL, 'f'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"tail", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    bool follow = false, json = false;
    long tail = 100;
    int c;
    while ((c = getopt_long(argc, argv, ":fhn:", opts, NULL)) != -1) {
        if (c == 'f')
            follow = true;
        else if (c == 'j')
            json = true;
        else if (c == 'n') {
            char *end;
            tail = strtol(optarg, &end, 10);
            if (*end || end == optarg || tail < 0 || tail > 1000000)
                return cli_usage_error("events", "--tail expects a number from 0 to 1000000, got '%s'",
                                       optarg);
        } else if (c == 'h') {
            fputs("Usage: seed events [-f] [--json] [--tail N]\n"
                  "\n"
                  "What the node did: applies, instances created, replaced, removed, ready, failed,\n"
                  "restarted, killed for memory, webhooks received and rejected. The last N (default\n"
                  "100), then with -f the new ones as they happen. --json: one object a line.\n",
                  stdout);
            return 0;
        } else
            return cli_usage_error("events", "unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage_error("events", "takes no arguments");
    if (cli_state_access(g->state_dir) < 0)
        return 1;
    int fd;
    if (cli_connect(g->state_dir, &fd) < 0)
        return 1;
    FILE *f = NULL;
    int r = cli_request(
        fd, json_pack("{s:s, s:b, s:I}", "op", "events", "follow", follow, "limit", (json_int_t)tail), &f);
    if (r < 0) {
        fprintf(stderr, "seed events: %s\n", strerror(-r));
        close(fd);
        return 1;
    }
    int rc = follow ? 1 : 0;
    for (json_t *line; (line = cli_read_answer(f));) {
        json_t *ev = json_object_get(line, "event");
        if (ev)
            print_event(ev, json);
        else if (json_object_get(line, "ok"))
            rc = json_is_true(json_object_get(line, "ok")) ? 0 : 1;
        json_decref(line);
    }
    fclose(f);
    return rc;
}

int cli_down(const cli_globals *g, int argc, char **argv) {
    if (argc > 1 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
        fputs("Usage: seed down\n"
              "\n"
              "Stop every instance of the node gracefully (volumes kept), then the node itself.\n"
              "The shipped systemd unit runs it at host shutdown.\n",
              stdout);
        return 0;
    }
    if (argc > 1)
        return cli_usage_error("down", "takes no arguments");
    if (cli_state_access(g->state_dir) < 0)
        return 1;
    int fd;
    int r = cli_connect_quiet(g->state_dir, &fd);
    if (r == -ENOENT || r == -ECONNREFUSED) {
        printf("no node is running on %s\n", g->state_dir);
        return 0;
    }
    if (r < 0) {
        cli_connect_report(g->state_dir, r);
        return 1;
    }
    FILE *f = NULL;
    if (cli_request(fd, json_pack("{s:s}", "op", "down"), &f) < 0) {
        close(fd);
        return 1;
    }
    json_t *a = cli_read_answer(f);
    bool ok = json_is_true(json_object_get(a, "ok"));
    if (!ok)
        fprintf(stderr, "seed down: %s\n", a ? str(a, "error") : "no answer");
    json_decref(a);
    fclose(f);
    if (!ok)
        return 1;
    /* Wait until the node is gone: its socket stops answering. */
    for (int i = 0; i < 36000; i++) {
        int t;
        if (cli_connect_quiet(g->state_dir, &t) < 0)
            return 0;
        close(t);
        usleep(100000);
    }
    return 1;
}
