/* `seed volume ls [--json]` and `seed volume rm NAMESPACE/INSTANCE/VOLUME`. Through the
 * node when one runs (it knows what is mounted); straight from the state database
 * when none does (holding the node lock, so none starts meanwhile). */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/units.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "node/identity.h"
#include "node/node.h"
#include "node/state.h"
#include "node/volume.h"

/* -1: a node runs (use the socket); otherwise the held lock fd (or -2: no state). */
static int lock_state(const char *state_dir) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/" SEED_NODE_LOCK, state_dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -2;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static json_t *offline_list(const char *state_dir) {
    char db[4200];
    snprintf(db, sizeof(db), "%s/" SEED_STATE_DB, state_dir);
    _cleanup_error_ seed_error *err = NULL;
    _cleanup_(seed_state_closep) seed_state *s = NULL;
    json_t *arr = json_array();
    if (seed_state_open(db, true, &s, &err) < 0)
        return arr; /* no database yet: no volumes */
    seed_volume_row *rows = NULL;
    size_t n = 0;
    if (seed_state_volume_list(s, &rows, &n) < 0)
        return arr;
    for (size_t i = 0; i < n; i++) {
        uint64_t used = 0, total = 0;
        seed_volume_usage_image(rows[i].image, &used, &total);
        json_array_append_new(arr, seed_volume_row_json(&rows[i], used, total, false, NULL));
    }
    seed_volume_rows_free(rows, n);
    return arr;
}

static int volume_ls(const cli_globals *g, bool json) {
    json_t *list;
    json_t *a = NULL;
    if (cli_state_access(g->state_dir) < 0)
        return 1;
    int lock = lock_state(g->state_dir);
    if (lock == -1) {
        a = cli_call(g->state_dir, "volume ls", json_pack("{s:s}", "op", "volumes"));
        if (!a)
            return 1;
        list = json_incref(json_object_get(a, "volumes"));
        json_decref(a);
    } else {
        list = offline_list(g->state_dir);
        if (lock >= 0)
            close(lock);
    }
    if (json) {
        cli_print_json(list);
    } else {
        printf("%-44s %-10s %-10s %-7s %s\n", "VOLUME", "SIZE", "USED", "IN USE", "MOUNT POINT");
        size_t i;
        json_t *v;
        json_array_foreach (list, i, v) {
            char size[32], used[32];
            seed_format_bytes((uint64_t)json_integer_value(json_object_get(v, "sizeBytes")), size,
                              sizeof(size));
            seed_format_bytes((uint64_t)json_integer_value(json_object_get(v, "usedBytes")), used,
                              sizeof(used));
            const char *mp = json_string_value(json_object_get(v, "mountPoint"));
            printf("%-44s %-10s %-10s %-7s %s\n", json_string_value(json_object_get(v, "id")), size, used,
                   json_is_true(json_object_get(v, "inUse")) ? "yes" : "no", mp ? mp : "-");
        }
    }
    json_decref(list);
    return 0;
}

static int volume_rm(const cli_globals *g, const char *id) {
    if (cli_state_access(g->state_dir) < 0)
        return 1;
    int lock = lock_state(g->state_dir);
    if (lock == -1) {
        json_t *a = cli_call(g->state_dir, "volume rm", json_pack("{s:s, s:s}", "op", "volume-rm", "id", id));
        if (!a)
            return 1;
        json_decref(a);
        printf("removed %s\n", id);
        return 0;
    }
    char ns[128], inst[128], vol[128];
    if (!seed_volume_parse_id(id, ns, inst, vol)) {
        if (lock >= 0)
            close(lock);
        return cli_usage_error("volume rm", "expected NAMESPACE/INSTANCE/VOLUME, got '%s'", id);
    }
    char db[4200];
    snprintf(db, sizeof(db), "%s/" SEED_STATE_DB, g->state_dir);
    _cleanup_error_ seed_error *err = NULL;
    _cleanup_(seed_state_closep) seed_state *s = NULL;
    int ret = 1;
    if (lock < 0 || seed_state_open(db, false, &s, &err) < 0) {
        fprintf(stderr, "seed volume rm: no volume %s\n", id);
    } else if (seed_volume_remove(s, ns, inst, vol, &err) < 0) {
        fprintf(stderr, "seed volume rm: %s\n", err->msg);
    } else {
        printf("removed %s\n", id);
        ret = 0;
        /* The identity goes with the instance's last volume (issue 11). */
        seed_volume_row *rows = NULL;
        size_t n = 0, left = 0;
        if (seed_state_volume_list(s, &rows, &n) == 0) {
            for (size_t i = 0; i < n; i++)
                left += streq(rows[i].namespace, ns) && streq(rows[i].instance, inst);
            seed_volume_rows_free(rows, n);
            if (left == 0 && seed_identity_remove(g->state_dir, ns, inst) == 0)
                printf("removed the identity of %s/%s with its last volume\n", ns, inst);
        }
    }
    if (lock >= 0)
        close(lock);
    return ret;
}

static const char volume_usage[] =
    "Usage: seed volume ls [--json] [--state-dir DIR]\n"
    "       seed volume rm NAMESPACE/INSTANCE/VOLUME [--state-dir DIR]\n"
    "\n"
    "List the node's persistent volumes, or delete one (refused while an instance has it).\n"
    "Works without a running node too.\n"
    "\n"
    "  --json  ls: print a JSON array of {id namespace instance name sizeBytes usedBytes\n"
    "          capacityBytes inUse mountPoint created}\n";

int cli_volume(const cli_globals *g, int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
    bool json = false, help = false;
    int c;
    /* Options anywhere: after the subcommand or before it (`seed volume --help`). */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'h')
            help = true;
        else
            return cli_usage_error("volume", "unknown option '%s'", argv[optind - 1]);
    }
    const char *sub = optind < argc ? argv[optind++] : NULL;
    if (help) {
        fputs(volume_usage, stdout);
        return 0;
    }
    if (!sub)
        return cli_usage_error("volume", "expected 'ls' or 'rm NAMESPACE/INSTANCE/VOLUME'");
    if (streq(sub, "ls")) {
        if (optind < argc)
            return cli_usage_error("volume ls", "unexpected argument '%s'", argv[optind]);
        return volume_ls(g, json);
    }
    if (streq(sub, "rm")) {
        if (json)
            return cli_usage_error("volume rm", "--json is an option of 'volume ls'");
        if (argc - optind != 1)
            return cli_usage_error("volume rm", "expected one NAMESPACE/INSTANCE/VOLUME");
        return volume_rm(g, argv[optind]);
    }
    return cli_usage_error("volume", "unknown subcommand '%s': expected ls or rm", sub);
}
