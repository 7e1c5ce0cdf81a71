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

/* Set up the uplink and NAT; call from the node's network namespace. forward_was is
 * the host's IPv4 forwarding setting from before any node changed it ("0" or "1"),
 * restored at teardown; the caller records it durably first, so that a node killed
 * with forwarding on still gets it restored by its successor. */
int seed_egress_setup(seed_egress *e, const char *node_id, const seed_node_net *nn, const char *forward_was,
                      seed_error **err);
void seed_egress_teardown(seed_egress *e);
/* Remove the host NAT table a killed node with this id may have left. */
void seed_egress_remove_stale(const char *node_id, int host_netns);
/* Read the host's net.ipv4.ip_forward into old (16 bytes) and, when set is not NULL,
 * write set. */
int seed_egress_host_forward(int host_netns, const char *set, char old[16]);
/* resolv.conf for instances with egress: the host's reachable name servers. */
char *seed_egress_resolv_conf(void);
