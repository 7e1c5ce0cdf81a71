/* The node's network: a private network namespace of its own with a bridge (seed0)
 * holding the gateway address of the instance subnet. Instances hang off the bridge
 * by veth pairs; nothing is added to the host's namespace. Exposed ports are
 * published from the host's namespace by the proxy (proxy.h). */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

#define SEED_BRIDGE "seed0"

typedef struct seed_subnet {
    struct in_addr net; /* network address, host order bits cleared */
    unsigned prefix;
} seed_subnet;

int seed_subnet_parse(const char *cidr, seed_subnet *ret, seed_error **err);
/* The index-th address of the subnet (0 is the network address). */
struct in_addr seed_subnet_host(const seed_subnet *s, uint32_t index);
/* Instance slots available: all addresses but network, gateway and broadcast. */
uint32_t seed_subnet_slots(const seed_subnet *s);
#define SEED_SLOT_ADDRESS_INDEX(slot) ((uint32_t)(slot) + 2)

typedef struct seed_node_net {
    seed_subnet subnet;
    struct in_addr gateway;
    int host_netns; /* the namespace the node was started in (published ports) */
    unsigned bridge_ifindex;
} seed_node_net;

/* Move the calling process into a fresh network namespace with the bridge. */
int seed_node_net_setup(seed_node_net *nn, const seed_subnet *s, seed_error **err);
void seed_node_net_close(seed_node_net *nn);

/* Run fn(arg) with this thread in another network namespace, then come back; returns
 * what fn returns (or a negative errno when the switch fails). */
int seed_in_netns(int netns, int (*fn)(void *), void *arg);
/* Create a socket in another network namespace. */
int seed_socket_in_netns(int netns, int domain, int type, int *ret);
