/* Node network namespace, bridge and subnet arithmetic. */
#include "node/network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/netlink.h"

int seed_subnet_parse(const char *cidr, seed_subnet *ret, seed_error **err) {
    char addr[64];
    const char *slash = strchr(cidr, '/');
    if (!slash || (size_t)(slash - cidr) >= sizeof(addr))
        return seed_error_set(err, EINVAL, "subnet \"%s\": expected an IPv4 CIDR like 10.77.0.0/16", cidr);
    memcpy(addr, cidr, (size_t)(slash - cidr));
    addr[slash - cidr] = 0;
    char *end;
    long prefix = strtol(slash + 1, &end, 10);
    struct in_addr a;
    if (*end || end == slash + 1 || prefix < 8 || prefix > 29 || inet_pton(AF_INET, addr, &a) != 1)
        return seed_error_set(err, EINVAL,
                              "subnet \"%s\": expected an IPv4 CIDR with a prefix from /8 to /29, like "
                              "10.77.0.0/16",
                              cidr);
    uint32_t mask = prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
    ret->net.s_addr = htonl(ntohl(a.s_addr) & mask);
    ret->prefix = (unsigned)prefix;
    return 0;
}

struct in_addr seed_subnet_host(const seed_subnet *s, uint32_t index) {
    struct in_addr a = {.s_addr = htonl(ntohl(s->net.s_addr) + index)};
    return a;
}

uint32_t seed_subnet_slots(const seed_subnet *s) {
    return (1u << (32 - s->prefix)) - 3;
}

int seed_node_net_setup(seed_node_net *nn, const seed_subnet *s, seed_error **err) {
    *nn = (seed_node_net){.subnet = *s, .host_netns = -1};
    nn->gateway = seed_subnet_host(s, 1);
    nn->host_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (nn->host_netns < 0)
        return seed_error_setp(err, errno, "opening the current network namespace");
    if (unshare(CLONE_NEWNET) < 0)
        return seed_error_setp(err, errno, "creating the node's network namespace");

    struct mnl_socket *nl = NULL;
    int r = seed_nl_open(&nl);
    if (r < 0)
        return seed_error_setp(err, -r, "opening rtnetlink");
    const char *step = "bringing up lo";
    r = seed_nl_link_up(nl, 1);
    if (r >= 0) {
        step = "creating the bridge " SEED_BRIDGE;
        uint8_t mac[6];
        seed_mac_for_ipv4(nn->gateway, mac);
        r = seed_nl_bridge_create(nl, SEED_BRIDGE, mac);
    }
    if (r >= 0) {
        nn->bridge_ifindex = if_nametoindex(SEED_BRIDGE);
        step = "addressing the bridge";
        r = nn->bridge_ifindex ? seed_nl_addr_add4(nl, nn->bridge_ifindex, nn->gateway, s->prefix) : -ENODEV;
    }
    if (r >= 0) {
        step = "bringing up the bridge";
        r = seed_nl_link_up(nl, nn->bridge_ifindex);
    }
    seed_nl_close(nl);
    if (r < 0)
        return seed_error_setp(err, -r, "%s", step);
    return 0;
}

void seed_node_net_close(seed_node_net *nn) {
    if (nn->host_netns >= 0)
        close(nn->host_netns);
    nn->host_netns = -1;
}

int seed_in_netns(int netns, int (*fn)(void *), void *arg) {
    _cleanup_close_ int here = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (here < 0)
        return negative_errno();
    if (setns(netns, CLONE_NEWNET) < 0)
        return negative_errno();
    int r = fn(arg);
    if (setns(here, CLONE_NEWNET) < 0)
        abort(); /* stuck in the wrong namespace: nothing sane left to do */
    return r;
}

typedef struct socket_job {
    int domain, type, fd;
} socket_job;

static int make_socket(void *arg) {
    socket_job *j = arg;
    j->fd = socket(j->domain, j->type | SOCK_CLOEXEC, 0);
    return j->fd < 0 ? negative_errno() : 0;
}

int seed_socket_in_netns(int netns, int domain, int type, int *ret) {
    socket_job j = {.domain = domain, .type = type, .fd = -1};
    int r = seed_in_netns(netns, make_socket, &j);
    if (r < 0)
        return r;
    *ret = j.fd;
    return 0;
}
