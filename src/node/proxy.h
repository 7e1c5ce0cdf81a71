/* Publishing an instance's exposed port on the node's --bind address. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>

#include "base/error.h"
#include "base/event.h"
#include "node/network.h"

typedef struct seed_proxy seed_proxy;

/* Listen on bind_addr:port (TCP, or UDP if udp) in the host's network namespace and
 * relay to backend:backend_port in the node's. */
int seed_proxy_new(seed_loop *loop, const seed_node_net *nn, const char *bind_addr, unsigned port, bool udp,
                   struct in_addr backend, unsigned backend_port, seed_proxy **ret, seed_error **err);
void seed_proxy_free(seed_proxy *p);
/* New connections (and UDP sessions) go to backend from now on; open ones stay where
 * they are. */
void seed_proxy_set_backend(seed_proxy *p, struct in_addr backend);
/* TCP connections open to backend. */
size_t seed_proxy_connections_to(const seed_proxy *p, struct in_addr backend);
