/* `seed logs NAME [-f] [--tail N]`: an instance's output, one timestamped line per
 * line its processes wrote, tagged with the process name. */
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
static int logs_offline(const char *state_dir, const char *name, size_t tail, bool follow) {
    char pattern[4200];
    if (strchr(name, '/'))
        snprintf(pattern, sizeof(pattern), "%s/logs/%s.log", state_dir, name);
    else
        snprintf(pattern, sizeof(pattern), "%s/logs/*/%s.log", state_dir, name);
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
    int r = seed_logfile_tail(gl.gl_pathv[0], tail, &text, &len);
    globfree(&gl);
    if (r < 0) {
        fprintf(stderr, "seed logs: %s\n", strerror(-r));
        return 1;
    }
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
    long tail = 0;
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
            printf("Usage: seed [--state-dir DIR] logs NAME [-f|--follow] [-n|--tail N]\n");
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
    json_t *req = json_pack("{s:s, s:s, s:I, s:b}", "op", "logs", "name", argv[optind], "tail",
                            (json_int_t)tail, "follow", follow);
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
