/* seed image: build (cli/image.c), push and inspect (cli/image_push.c). */
#pragma once

#include "cli/cli.h"

int cli_image_push(const cli_globals *g, int argc, char **argv);
int cli_image_inspect(const cli_globals *g, int argc, char **argv);
