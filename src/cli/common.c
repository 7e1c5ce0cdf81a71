/* What every verb of seed and seedd shares: usage errors, the root check, JSON output. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

int cli_usage_error(const char *verb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "seed%s%s: ", verb ? " " : "", verb ? verb : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'seed %s%s--help'.\n", verb ? verb : "", verb ? " " : "");
    return EXIT_USAGE;
}

void cli_needs_root(const char *why) {
    fprintf(stderr, "seed needs root (%s): run it with sudo\n", why);
}

int cli_print_json(const json_t *j) {
    /* To memory first: json_dumpf issues one stdio call per token, which costs more
     * than a whole evaluation on large projects. */
    char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    if (!s)
        return -ENOMEM;
    fputs(s, stdout);
    putchar('\n');
    free(s);
    return 0;
}
