/* Optional outbound network (NAT) for instances: see egress.c. */
#pragma once

#include <netinet/in.h>
#include <net/if.h>
#include <stdbool.h>

#include "base/error.h"
#include "node/network.h"

typedef struct seed_egress {
    char node_id[16];
    int host_netns;
    struct in_addr host_addr, node_addr;
    char host_ifname[IFNAMSIZ];
    char host_forward_was[16];
    bool created, host_table;
} seed_egress;

/* Set up the uplink and NAT; call from the node's network namespace. */
int seed_egress_setup(seed_egress *e, const char *node_id, const seed_node_net *nn, seed_error **err);
void seed_egress_teardown(seed_egress *e);
/* Remove the host NAT table a killed node with this id may have left. */
void seed_egress_remove_stale(const char *node_id, int host_netns);
/* resolv.conf for instances with egress: the host's reachable name servers. */
char *seed_egress_resolv_conf(void);
