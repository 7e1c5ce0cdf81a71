/* The `seed` command line: one function per verb, all thin over libseed. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#define EXIT_USAGE 2

typedef struct cli_globals {
    const char *state_dir;
} cli_globals;

int cli_eval(const cli_globals *g, int argc, char **argv);
int cli_up(const cli_globals *g, int argc, char **argv);
/* seed up (daemon false) and seedd (true); ready is called once the node serves. */
int cli_node(const cli_globals *g, int argc, char **argv, bool daemon, void (*ready)(void *userdata));
int cli_ps(const cli_globals *g, int argc, char **argv);
int cli_logs(const cli_globals *g, int argc, char **argv);
int cli_stop(const cli_globals *g, int argc, char **argv);
int cli_start(const cli_globals *g, int argc, char **argv);
int cli_restart(const cli_globals *g, int argc, char **argv);
int cli_volume(const cli_globals *g, int argc, char **argv);
int cli_shoot(const cli_globals *g, int argc, char **argv);
int cli_exec(const cli_globals *g, int argc, char **argv);
int cli_apply(const cli_globals *g, int argc, char **argv);
int cli_source(const cli_globals *g, int argc, char **argv);
int cli_history(const cli_globals *g, int argc, char **argv);
int cli_rollback(const cli_globals *g, int argc, char **argv);
int cli_events(const cli_globals *g, int argc, char **argv);
int cli_down(const cli_globals *g, int argc, char **argv);
int cli_image(const cli_globals *g, int argc, char **argv);
int cli_identity(const cli_globals *g, int argc, char **argv);

/* Print j indented on stdout, with a newline. Returns 0, or -ENOMEM (nothing printed). */
int cli_print_json(const json_t *j);

/* Print "seed needs root (why): run it with sudo" to stderr. */
void cli_needs_root(const char *why);

/* Print "seed VERB: message" and a hint to stderr; returns EXIT_USAGE. */
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
