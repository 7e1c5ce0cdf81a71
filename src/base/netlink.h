/* rtnetlink requests (through libmnl) the node and the sandbox need: bring links up,
 * add addresses and routes, create the bridge and veth pairs. Each call acts in the
 * network namespace of the socket it is given. */
#pragma once

#include <netinet/in.h>
#include <stdint.h>

struct mnl_socket;

int seed_nl_open(struct mnl_socket **ret);
void seed_nl_close(struct mnl_socket *nl);

int seed_nl_link_up(struct mnl_socket *nl, unsigned ifindex);
int seed_nl_addr_add4(struct mnl_socket *nl, unsigned ifindex, struct in_addr addr, unsigned prefix);
int seed_nl_route_default4(struct mnl_socket *nl, struct in_addr gateway);
int seed_nl_bridge_create(struct mnl_socket *nl, const char *name);
/* A veth pair: `name` stays here, `peer` is created directly inside the network
 * namespace netns_fd, so names never clash with this namespace's links. With master
 * (an ifindex, not 0) `name` is created enslaved to it and up, in the same message. */
int seed_nl_veth_create(struct mnl_socket *nl, const char *name, const char *peer, int netns_fd,
                        unsigned master);
int seed_nl_link_del(struct mnl_socket *nl, unsigned ifindex);
