/* seedd: the node engine as a long-running daemon (see `seedd --help`). Only it links
 * libsystemd (for sd_notify): the seed command starts faster without it. */
#include <stdlib.h>
#include <systemd/sd-daemon.h>

#include "cli/cli.h"
#include "node/node.h"

static void notify_ready(void *userdata) {
    (void)userdata;
    sd_notify(0, "READY=1\nSTATUS=serving");
}

int main(int argc, char **argv) {
    const char *env = getenv("SEED_STATE_DIR");
    cli_globals g = {.state_dir = env && *env ? env : SEED_DEFAULT_STATE_DIR};
    return cli_node(&g, argc, argv, true, notify_ready);
}
