/* The keeper: what must outlive seedd so that restarting the daemon (an upgrade, a
 * crash, systemctl restart) never interrupts the services it runs. A small process,
 * forked by the first seedd of a state directory, that
 *   - stays in the node's mount and network namespaces, so the volumes mounted there,
 *     the bridge and every instance's link live on without the daemon;
 *   - runs the published ports (the relays from --bind to the instances), so they
 *     answer while no daemon is up;
 *   - keeps a copy of each instance's init channel and pidfd, so nothing an instance
 *     logs is lost (it waits in the channel) and the next daemon adopts them.
 * The daemon talks to it over <state>/run/keeper.sock (SOCK_SEQPACKET, one JSON request
 * a message, fds attached; one answer each). `seed down` ends it once every instance
 * stopped. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/error.h"
#include "node/network.h"

struct json_t;

#define SEED_KEEPER_SOCKET "keeper.sock" /* in <state>/run */

/* Connect to a running keeper: 0 and *fd, -ENOENT/-ECONNREFUSED when there is none. */
int seed_keeper_connect(const char *run_dir, int *fd);
/* Fork the keeper (in the caller's namespaces: call it once they are the node's); it
 * listens on <run_dir>/keeper.sock. Returns its pid; the caller connects. */
pid_t seed_keeper_spawn(const char *run_dir, const seed_node_net *nn, const char *subnet);

/* One request: reply (owned) or NULL with *err. fds out with the request; fds that come
 * back are stored in rfds (up to *n_rfds on entry, the count on return). */
struct json_t *seed_keeper_call(int fd, struct json_t *req, const int *fds, size_t n_fds, int *rfds,
                                size_t *n_rfds, seed_error **err);
