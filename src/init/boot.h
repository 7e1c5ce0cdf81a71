/* Image mode's boot tasks: what seed-init does before it starts the processes when it
 * is PID 1 of an image (`seed image build`) rather than of a node's sandbox. Each task
 * logs one line "seed-init: <task>: <what happened>" on stderr and fails soft: a
 * missing tool or a read-only file is a warning, not a dead machine. */
#pragma once

#include <stddef.h>

#include "base/macro.h"
#include "init/users.h"

/* One line "seed-init: <task>: <message>" on stderr. */
void seed_boot_log(const char *task, const char *fmt, ...) _printf_(2, 3);

/* The spec's users: passwd/group/shadow entries for those the image lacks (written in
 * place, or bind-mounted from /run/seed/etc where /etc is read-only), and their home
 * directories when missing. */
void seed_boot_accounts(const seed_account *a, size_t n);
