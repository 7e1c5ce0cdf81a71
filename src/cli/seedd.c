/* seedd: the node engine as a long-running daemon (see `seedd --help`). */
#include <stdlib.h>

#include "cli/cli.h"
#include "node/node.h"

int main(int argc, char **argv) {
    const char *env = getenv("SEED_STATE_DIR");
    cli_globals g = {.state_dir = env && *env ? env : SEED_DEFAULT_STATE_DIR};
    return cli_node(&g, argc, argv, true);
}
