/* `seed logs NAME [-f] [--tail N]`: an instance's output, one timestamped line per
 * line its processes wrote, tagged with the process name. --tail 0 prints none (then
 * -f follows new ones), no --tail prints all. */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "node/logs.h"

/* No node runs: read the log files it left, <state>/logs/<namespace>/<name>.log. NAME
 * may be NAMESPACE/NAME when several projects used this state directory. */
static int logs_offline(const char *state_dir, const char *name, long tail, bool follow) {
    char pattern[4200];
    if (strchr(name, '/'))
        snprintf(pattern, sizeof(pattern), "%s/logs/%s.log", state_dir, name);
    else
        snprintf(pattern, sizeof(pattern), "%s/logs/*/%s.log", state_dir, name);
    if (cli_state_access(state_dir) < 0)
        return 1;
    glob_t gl;
    if (glob(pattern, 0, NULL, &gl) != 0) {
        fprintf(stderr, "seed logs: no node is running on %s and it has no logs of \"%s\"\n", state_dir,
                name);
        return 1;
    }
    if (gl.gl_pathc > 1) {
        fprintf(stderr, "seed logs: \"%s\" exists in several namespaces; name it as NAMESPACE/%s\n", name,
                name);
        globfree(&gl);
        return 1;
    }
    char *text = NULL;
    size_t len = 0;
    /* seed_logfile_tail: 0 lines means all. */
    int r = tail == 0 ? 0 : seed_logfile_tail(gl.gl_pathv[0], tail > 0 ? (size_t)tail : 0, &text, &len);
    globfree(&gl);
    if (r < 0) {
        fprintf(stderr, "seed logs: %s\n", strerror(-r));
        return 1;
    }
    if (len)
        fwrite(text, 1, len, stdout);
    free(text);
    if (follow) {
        fprintf(stderr, "seed logs: no node is running on %s: nothing to follow\n", state_dir);
        return 1;
    }
    return 0;
}

int cli_logs(const cli_globals *g, int argc, char **argv) {
    static const struct option opts[] = {{"follow", no_argument, NULL, 'f'},
                                         {"tail", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    bool follow = false;
    long tail = -1; /* all */
    int c;
    while ((c = getopt_long(argc, argv, ":fn:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            follow = true;
            break;
        case 'n': {
            char *end;
            tail = strtol(optarg, &end, 10);
            if (*end || end == optarg || tail < 0)
                return cli_usage_error("logs", "--tail expects a number of lines, got '%s'", optarg);
            break;
        }
        case 'h':
            printf("Usage: seed logs NAME [-f|--follow] [-n|--tail N] [--state-dir DIR]\n"
                   "\n"
                   "Print the output of instance NAME, oldest first. Works without a node too.\n"
                   "\n"
                   "  -f, --follow  keep printing new lines as they come\n"
                   "  -n, --tail N  only the last N lines (0: none); default all\n");
            return 0;
        case ':':
            return cli_usage_error("logs", "option '%s' needs an argument", argv[optind - 1]);
        default:
            return cli_usage_error("logs", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("logs", "expected one instance NAME");
    int fd;
    int r = cli_connect_quiet(g->state_dir, &fd);
    if (r == -ENOENT || r == -ECONNREFUSED)
        return logs_offline(g->state_dir, argv[optind], (size_t)tail, follow);
    if (r < 0) {
        cli_connect_report(g->state_dir, r);
        return 1;
    }
    FILE *f = NULL;
    /* No "tail" asks for everything. */
    json_t *req = json_pack("{s:s, s:s, s:b}", "op", "logs", "name", argv[optind], "follow", follow);
    if (req && tail >= 0)
        json_object_set_new(req, "tail", json_integer(tail));
    r = cli_request(fd, req, &f);
    json_decref(req);
    if (r < 0) {
        close(fd);
        fprintf(stderr, "seed logs: %s\n", strerror(-r));
        return 1;
    }
    setvbuf(stdout, NULL, follow ? _IOLBF : _IOFBF, 0);
    int ret = 1;
    json_t *a;
    while ((a = cli_read_answer(f))) {
        const char *line = json_string_value(json_object_get(a, "log"));
        if (line) {
            puts(line);
        } else if (json_is_true(json_object_get(a, "ok"))) {
            ret = 0;
        } else {
            fprintf(stderr, "seed logs: %s\n", json_string_value(json_object_get(a, "error")) ?: "failed");
        }
        json_decref(a);
    }
    fclose(f);
    return ret;
}
