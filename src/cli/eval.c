/* `seed eval [SOURCE] [--json] [--uri URI]`: type-check a project and print its meta,
 * or every error with its file and option path. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "spec/meta.h"
#include "spec/spec.h"

static const char eval_usage[] =
    "Usage: seed eval [SOURCE] [--json] [--uri URI]\n"
    "\n"
    "Check the seed project at SOURCE (a directory with seeds.json or a flake.nix, default\n"
    "'.', or a flake reference: path:, git+file:, github:) and print each instance's meta.\n"
    "Exit status: 0 valid, 1 the project has errors, 2 usage error.\n"
    "\n"
    "  --json       print one JSON object keyed by instance name (or {\"errors\": [...]})\n"
    "  --uri URI    source URI the namespace is derived from (default path:<absolute dir>,\n"
    "               or the flake reference)\n";

static void print_errors_text(const seed_diags *d, const char *source) {
    size_t total = seed_diags_count(d);
    fprintf(stderr, "seed eval: %s has %zu error%s:\n", source, total, total == 1 ? "" : "s");
    for (size_t i = 0; i < d->n; i++) {
        const seed_diag *x = &d->items[i];
        fprintf(stderr, "  %s%s%s%s%s\n", x->file ? x->file : "", x->file ? ": " : "", x->path,
                *x->path ? ": " : "", x->message);
    }
    if (d->dropped)
        fprintf(stderr, "  ... and %zu more\n", d->dropped);
}

static int print_errors_json(const seed_diags *d) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < d->n; i++) {
        const seed_diag *x = &d->items[i];
        json_array_append_new(
            arr, json_pack("{s:s?, s:s, s:s}", "file", x->file, "path", x->path, "message", x->message));
    }
    json_t *o = json_pack("{s:o, s:I}", "errors", arr, "count", (json_int_t)seed_diags_count(d));
    int r = cli_print_json(o);
    json_decref(o);
    return r;
}

/* A growable string for table cells. */
typedef struct cell {
    char buf[512];
    size_t len;
} cell;

static void cell_add(cell *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cell_add(cell *c, const char *fmt, ...) {
    if (c->len >= sizeof(c->buf) - 1)
        return;
    if (c->len > 0)
        c->buf[c->len++] = ',';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->buf + c->len, sizeof(c->buf) - c->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->len = MIN(c->len + (size_t)n, sizeof(c->buf) - 1);
}

enum { COL_NAME, COL_SIZE, COL_CPU, COL_MEM, COL_EXPOSE, COL_STORAGE, COL_CONNECT, COL_SHOOT, N_COLS };

static void row_cells(const seed_instance *in, cell row[N_COLS]) {
    memset(row, 0, sizeof(cell) * N_COLS);
    cell_add(&row[COL_NAME], "%s", in->name);
    cell_add(&row[COL_SIZE], "%s", seed_size_tier_to_string(in->size));
    cell_add(&row[COL_CPU], "%u", in->vcpus);
    if (in->memory_mib % 1024 == 0)
        cell_add(&row[COL_MEM], "%uG", in->memory_mib / 1024);
    else
        cell_add(&row[COL_MEM], "%uM", in->memory_mib);
    for (size_t i = 0; i < in->n_expose; i++)
        cell_add(&row[COL_EXPOSE], "%u/%s", in->expose[i].port,
                 seed_protocol_to_string(in->expose[i].protocol));
    for (size_t i = 0; i < in->n_storage; i++)
        cell_add(&row[COL_STORAGE], "%s=%s@%s", in->storage[i].name, in->storage[i].size,
                 in->storage[i].mount_point);
    for (size_t i = 0; i < in->n_connect; i++) {
        if (in->connect[i].port)
            cell_add(&row[COL_CONNECT], "%s=%s:%u", in->connect[i].name, in->connect[i].service,
                     in->connect[i].port);
        else
            cell_add(&row[COL_CONNECT], "%s=%s", in->connect[i].name, in->connect[i].service);
    }
    if (in->shoot_enable)
        cell_add(&row[COL_SHOOT], "yes (max %u)", in->shoot_max);
    else
        cell_add(&row[COL_SHOOT], "no");
    for (int i = 0; i < N_COLS; i++)
        if (row[i].len == 0)
            cell_add(&row[i], "-");
}

static void print_table(const seed_project *p) {
    static const char *const heads[N_COLS] = {"NAME",   "SIZE",    "CPU",     "MEM",
                                              "EXPOSE", "STORAGE", "CONNECT", "SHOOT"};
    size_t width[N_COLS];
    for (int i = 0; i < N_COLS; i++)
        width[i] = strlen(heads[i]);
    cell row[N_COLS];
    for (size_t k = 0; k < p->n_instances; k++) {
        row_cells(&p->instances[k], row);
        for (int i = 0; i < N_COLS; i++)
            width[i] = MAX(width[i], row[i].len);
    }
    for (int i = 0; i < N_COLS; i++)
        printf("%-*s%s", i == N_COLS - 1 ? 0 : (int)width[i], heads[i], i == N_COLS - 1 ? "\n" : "  ");
    for (size_t k = 0; k < p->n_instances; k++) {
        row_cells(&p->instances[k], row);
        for (int i = 0; i < N_COLS; i++)
            printf("%-*s%s", i == N_COLS - 1 ? 0 : (int)width[i], row[i].buf, i == N_COLS - 1 ? "\n" : "  ");
    }
    printf("\n%zu instance%s, namespace %s, generation %s\n", p->n_instances, p->n_instances == 1 ? "" : "s",
           p->namespace, p->generation);
}

int cli_eval(const cli_globals *g, int argc, char **argv) {
    (void)g;
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"uri", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool json = false;
    const char *uri = NULL;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'u':
            if (!*optarg)
                return cli_usage_error("eval", "--uri needs a non-empty URI");
            uri = optarg;
            break;
        case 'h':
            fputs(eval_usage, stdout);
            return 0;
        case ':':
            return cli_usage_error("eval", "option '%s' needs an argument", argv[optind - 1]);
        default:
            return cli_usage_error("eval", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind > 1)
        return cli_usage_error("eval", "expected at most one SOURCE, got %d", argc - optind);
    const char *source = optind < argc ? argv[optind] : ".";

    /* The JSON goes to stdout in 64 KiB pieces through a buffer taken before the spec's
     * JSON is parsed and freed (see seed_jw_reserve). */
    seed_jw w = {.style = SEED_JW_PRETTY, .sink = STDOUT_FILENO};
    if (json && seed_jw_reserve(&w, 64 * 1024) < 0) {
        fprintf(stderr, "seed eval: out of memory\n");
        return 1;
    }
    seed_diags diags = {0};
    _cleanup_(seed_project_freep) seed_project *p = NULL;
    int r = seed_project_load(source, uri, &p, &diags);
    if (r < 0) {
        fprintf(stderr, "seed eval: %s: %s\n", source, strerror(-r));
        seed_diags_clear(&diags);
        seed_jw_free(&w);
        return 1;
    }
    int ret = 0;
    if (seed_diags_count(&diags) > 0) {
        if (json)
            print_errors_json(&diags);
        else
            print_errors_text(&diags, source);
        ret = 1;
    } else if (json) {
        /* Written as text (what cli_print_json would print, without a jansson tree of
         * the whole project). */
        r = seed_project_meta_write(&w, p);
        if (r == -ENOMEM || r == -EINVAL)
            fprintf(stderr, "seed eval: out of memory\n");
        if (r < 0 || write(STDOUT_FILENO, "\n", 1) != 1)
            ret = 1;
    } else {
        print_table(p);
    }
    seed_diags_clear(&diags);
    seed_jw_free(&w);
    if (fflush(stdout) != 0)
        ret = 1;
    return ret;
}
