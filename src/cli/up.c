/* `seed up [SOURCE]`: run a node in the foreground until SIGINT/SIGTERM. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "cli/cli.h"
#include "node/node.h"
#include "spec/spec.h"

static const char up_usage[] =
    "Usage: seed up [SOURCE] [--state-dir DIR] [--bind ADDR] [--subnet CIDR] [--egress]\n"
    "               [--grace SECONDS] [--uri URI]\n"
    "\n"
    "Run the instances of the seed project at SOURCE (default '.') on this machine, in the\n"
    "foreground, until SIGINT or SIGTERM stops them gracefully. From another terminal:\n"
    "seed ps, seed logs NAME [-f], seed stop|start|restart NAME..., seed volume ls|rm.\n"
    "\n"
    "  --state-dir DIR  state, volumes and logs (default $SEED_STATE_DIR, else " SEED_DEFAULT_STATE_DIR ")\n"
    "  --bind ADDR      address exposed ports are published on (default " SEED_DEFAULT_BIND ")\n"
    "  --subnet CIDR    instance addresses (default " SEED_DEFAULT_SUBNET ")\n"
    "  --egress         let instances reach other networks through the node (NAT)\n"
    "  --grace SECONDS  time between SIGTERM and SIGKILL when stopping (default 10)\n"
    "  --uri URI        source URI the namespace is derived from\n"
    "\n"
    "Shoots (instances with shoot.enable):\n"
    "  --shoot-warm N          warm sandboxes kept per instance (default 8)\n"
    "  --shoot-max N           shoots running at once on the node (default 64; per instance: shoot.max)\n"
    "  --shoot-memory SIZE     memory limits of running instances and shoots together, at most;\n"
    "                          a shoot past it waits, then 503 (default: half of the machine's memory)\n"
    "  --shoot-queue-ms MS     how long a request waits for a sandbox before 503 (default 2000)\n"
    "  --shoot-output-max B    bytes per output stream in an answer, as sent (default 16 MiB)\n"
    "  --shoot-templates N     sandbox makers per instance (default: number of CPUs)\n";

static const char seedd_usage[] =
    "Usage: seedd [--state-dir DIR] [--bind ADDR] [--subnet CIDR] [--webhook ADDR:PORT] [--egress]\n"
    "             [--grace SECONDS] [shoot options]\n"
    "\n"
    "The seed node as a daemon: it serves the sources added with `seed source add`, applies\n"
    "them at start, on `seed apply`, on SIGHUP (every source; never a stop), on push\n"
    "webhooks and by polling, and replaces only the instances whose identity changed.\n"
    "Foreground; tells systemd when it is ready (sd_notify). SIGTERM makes it exit and\n"
    "leaves the instances running (a keeper holds them; the next seedd adopts them);\n"
    "seed down stops them and the daemon.\n"
    "\n"
    "  --state-dir DIR       state, volumes and logs (default $SEED_STATE_DIR, else " SEED_DEFAULT_STATE_DIR
    ")\n"
    "  --bind ADDR           address exposed ports are published on (default " SEED_DEFAULT_BIND ")\n"
    "  --subnet CIDR         instance addresses (default " SEED_DEFAULT_SUBNET ")\n"
    "  --webhook ADDR:PORT   serve POST /webhook/<source> for push webhooks there\n"
    "  --max-tree SIZE       the most a git source's commit may hold, summed (default 4Gi)\n"
    "  --egress              let instances reach other networks through the node (NAT)\n"
    "  --grace SECONDS       time between SIGTERM and SIGKILL when stopping (default 10)\n"
    "  Shoot options as for seed up (seed up --help).\n";

int cli_up(const cli_globals *g, int argc, char **argv) {
    return cli_node(g, argc, argv, false, NULL);
}

int cli_node(const cli_globals *g, int argc, char **argv, bool daemon, void (*ready)(void *userdata)) {
    const char *verb = daemon ? "seedd" : "up";
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 'S'},
        {"bind", required_argument, NULL, 'b'},
        {"subnet", required_argument, NULL, 's'},
        {"egress", no_argument, NULL, 'e'},
        {"grace", required_argument, NULL, 'g'},
        {"uri", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {"shoot-warm", required_argument, NULL, 'W'},
        {"shoot-max", required_argument, NULL, 'M'},
        {"shoot-queue-ms", required_argument, NULL, 'Q'},
        {"shoot-output-max", required_argument, NULL, 'O'},
        {"shoot-templates", required_argument, NULL, 'T'},
        {"shoot-memory", required_argument, NULL, 'm'},
        {"webhook", required_argument, NULL, 'H'},
        {"max-tree", required_argument, NULL, 'X'},
        {0},
    };
    seed_node_options o = {.state_dir = g->state_dir, .daemon = daemon};
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'S':
            o.state_dir = optarg;
            break;
        case 'b':
            o.bind = optarg;
            break;
        case 's':
            o.subnet = optarg;
            break;
        case 'e':
            o.egress = true;
            break;
        case 'g': {
            char *end;
            double secs = strtod(optarg, &end);
            if (*end || end == optarg || secs < 0 || secs > 3600)
                return cli_usage_error(verb, "--grace expects seconds from 0 to 3600, got '%s'", optarg);
            o.grace_ms = (unsigned)(secs * 1000) ?: 1;
            break;
        }
        case 'u':
            if (daemon)
                return cli_usage_error(verb, "--uri is for seed up; a source's URI comes from its URL");
            o.uri = optarg;
            break;
        case 'H':
            if (!daemon)
                return cli_usage_error(verb, "--webhook is for seedd");
            o.webhook = optarg;
            break;
        case 'X': {
            _cleanup_free_ char *why = NULL;
            uint64_t v = 0;
            if (!daemon)
                return cli_usage_error(verb, "--max-tree is for seedd");
            if (seed_parse_quantity(optarg, &v, &why) < 0 || v < (1ull << 20))
                return cli_usage_error(verb,
                                       "--max-tree expects a size of at least 1Mi like \"4Gi\" or \"512Mi\", "
                                       "got '%s'",
                                       optarg);
            o.max_tree = v;
            break;
        }
        case 'm': {
            _cleanup_free_ char *why = NULL;
            uint64_t v = 0;
            if (seed_parse_quantity(optarg, &v, &why) < 0 || v < (1ull << 20))
                return cli_usage_error(verb,
                                       "--shoot-memory expects a size of at least 1Mi like \"8Gi\" or "
                                       "\"512Mi\" (suffixes Ki Mi Gi Ti, k M G T, or bytes), got '%s'",
                                       optarg);
            o.shoot_memory = v;
            break;
        }
        case 'W':
        case 'M':
        case 'Q':
        case 'O':
        case 'T': {
            char *end;
            unsigned long long v = strtoull(optarg, &end, 10);
            unsigned long long max = c == 'O' ? (1ull << 30) : c == 'Q' ? 600000 : c == 'T' ? 64 : 100000;
            if (*end || end == optarg || v < 1 || v > max)
                return cli_usage_error(verb, "%s expects a number from 1 to %llu, got '%s'", argv[optind - 1],
                                       max, optarg);
            if (c == 'W')
                o.shoot_warm = (unsigned)v;
            else if (c == 'M')
                o.shoot_max = (unsigned)v;
            else if (c == 'Q')
                o.shoot_queue_ms = (unsigned)v;
            else if (c == 'O')
                o.shoot_output_max = (size_t)v;
            else
                o.shoot_templates = (unsigned)v;
            break;
        }
        case 'h':
            fputs(daemon ? seedd_usage : up_usage, stdout);
            return 0;
        case ':':
            return cli_usage_error(verb, "option '%s' needs an argument", argv[optind - 1]);
        default:
            return cli_usage_error(verb, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (daemon && argc > optind)
        return cli_usage_error(verb, "takes no arguments (add sources with seed source add NAME URL)");
    if (argc - optind > 1)
        return cli_usage_error(verb, "expected at most one SOURCE, got %d", argc - optind);
    o.source = optind < argc ? argv[optind] : ".";
    if (daemon) {
        o.ready = ready;
        o.source = NULL;
    }
    if (geteuid() != 0) {
        cli_needs_root("namespaces, cgroups, loop devices, its state directory");
        return 1;
    }
    if (getenv("SEED_INIT"))
        o.init_path = getenv("SEED_INIT");

    seed_log_setup(daemon ? "seedd" : "seed up", getenv("SEED_DEBUG") ? SEED_LOG_DEBUG : SEED_LOG_INFO);
    _cleanup_error_ seed_error *err = NULL;
    int r = seed_node_run(&o, &err);
    if (r < 0) {
        log_error("%s", err ? err->msg : strerror(-r));
        return 1;
    }
    return 0;
}
