/* `seed exec`: what the CLI and the node agree on (the node side is exec.c, the CLI
 * side cli/exec.c). The request, on the control socket,
 *   {"op":"exec","name":N,"argv":[...],"tty":B,"interactive":B,"env":["K=V",...],
 *    "workdir":DIR,"user":USER,"rows":R,"cols":C}
 * carries with SCM_RIGHTS, without a terminal, the command's stdin (only when
 * interactive), stdout and stderr, in that order; with a terminal, none. Answers:
 *   {"started":true}                 the command runs (under tty, the pty master rides along)
 *   {"ok":true,"exitCode":N}          it ended: N, or 128 + signal
 *   {"ok":false,"error":E[,"exitCode":N]}   it could not run: 126/127 for a command that
 *                                    cannot be executed or found */
#pragma once

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define SEED_EXEC_EXIT_FAILED 125   /* seed itself could not run the command */
#define SEED_EXEC_EXIT_NOEXEC 126   /* found, but not executable */
#define SEED_EXEC_EXIT_NOTFOUND 127 /* no such command */

/* Which stdio descriptors may enter an instance as they are: pipes and /dev/null.
 * Anything else is relayed through a pipe by the CLI and refused by the node: a
 * terminal above all (TIOCSTI and friends would let the instance type into the user's
 * shell), a regular file (any process of the instance may ptrace the command and use
 * its descriptors: to truncate, seek and overwrite the user's file), sockets, other
 * devices. */
static inline bool seed_exec_fd_passable(const struct stat *st) {
    return S_ISFIFO(st->st_mode) ||
           (S_ISCHR(st->st_mode) && major(st->st_rdev) == 1 && minor(st->st_rdev) == 3);
}
