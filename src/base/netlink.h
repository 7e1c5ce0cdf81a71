/* rtnetlink requests (through libmnl) the node and the sandbox need: bring links up,
 * add addresses and routes, create the bridge and veth pairs. Each call acts in the
 * network namespace of the socket it is given. */
#pragma once

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

struct mnl_socket;

int seed_nl_open(struct mnl_socket **ret);
void seed_nl_close(struct mnl_socket *nl);

int seed_nl_link_up(struct mnl_socket *nl, unsigned ifindex);
int seed_nl_addr_add4(struct mnl_socket *nl, unsigned ifindex, struct in_addr addr, unsigned prefix);
int seed_nl_route_default4(struct mnl_socket *nl, struct in_addr gateway);
/* A bridge with a fixed MAC address (mac, 6 bytes, or NULL for the kernel's choice). A
 * bridge without one takes the lowest MAC among its ports, which changes as ports come
 * and go and stales every neighbour's ARP entry for the bridge. */
int seed_nl_bridge_create(struct mnl_socket *nl, const char *name, const uint8_t *mac);
/* A veth pair: `name` stays here, `peer` is created directly inside the network
 * namespace netns_fd, so names never clash with this namespace's links. With master
 * (an ifindex, not 0) `name` is created enslaved to it and up, in the same message. */
int seed_nl_veth_create(struct mnl_socket *nl, const char *name, const char *peer, int netns_fd,
                        unsigned master, const uint8_t *peer_mac);

/* The MAC address seed gives an IPv4 address on its bridge: locally administered,
 * 02:53 and the four bytes of the address. Stable across restarts of an instance, so
 * its neighbours' ARP entries stay right. */
static inline void seed_mac_for_ipv4(struct in_addr a, uint8_t mac[6]) {
    mac[0] = 0x02;
    mac[1] = 0x53;
    memcpy(mac + 2, &a.s_addr, 4);
}
int seed_nl_link_del(struct mnl_socket *nl, unsigned ifindex);
