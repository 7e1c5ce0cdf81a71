/* Network setup inside the sandbox's own network namespace: loopback up, and when
 * attached, eth0 (created by the parent straight into this namespace) with its
 * address and default route, plus an inbound filter that accepts only the ports the
 * instance exposes (replies to its own connections pass through conntrack). */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <unistd.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>

#include "base/netlink.h"
#include "sandbox/sandbox.h"

static size_t port_set(char *buf, size_t size, const unsigned *ports, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%u", i ? ", " : "", ports[i]);
    return o;
}

static int setup_firewall(const seed_sandbox_net *net, char *what, size_t what_len) {
    char rules[8192], tcp[2048] = "", udp[2048] = "";
    int o = snprintf(rules, sizeof(rules),
                     "table inet seed {\n"
                     "  chain input {\n"
                     "    type filter hook input priority 0; policy drop;\n"
                     "    iif \"lo\" accept\n"
                     "    ct state established,related accept\n"
                     "    meta l4proto { icmp, ipv6-icmp } accept\n");
    if (net->n_tcp) {
        port_set(tcp, sizeof(tcp), net->tcp_ports, net->n_tcp);
        o += snprintf(rules + o, sizeof(rules) - (size_t)o, "    tcp dport { %s } accept\n", tcp);
    }
    if (net->n_udp) {
        port_set(udp, sizeof(udp), net->udp_ports, net->n_udp);
        o += snprintf(rules + o, sizeof(rules) - (size_t)o, "    udp dport { %s } accept\n", udp);
    }
    snprintf(rules + o, sizeof(rules) - (size_t)o, "  }\n}\n");

    struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!nft) {
        snprintf(what, what_len, "creating an nftables context");
        return -ENOMEM;
    }
    nft_ctx_buffer_error(nft);
    int r = nft_run_cmd_from_buffer(nft, rules);
    if (r != 0) {
        const char *msg = nft_ctx_get_error_buffer(nft);
        snprintf(what, what_len, "installing the inbound firewall: %s", msg ? msg : "nftables failed");
        nft_ctx_free(nft);
        return -EINVAL;
    }
    nft_ctx_free(nft);
    return 0;
}

/* Announce the address with a gratuitous ARP request, so that the bridge and every
 * neighbour learn at once where it is now (best effort: the MAC is stable anyway). */
static void announce(unsigned ifindex, struct in_addr addr) {
    int s = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
    if (s < 0)
        return;
    struct {
        uint16_t htype, ptype;
        uint8_t hlen, plen;
        uint16_t op;
        uint8_t sha[6], spa[4], tha[6], tpa[4];
    } __attribute__((packed))
    arp = {.htype = htons(1), .ptype = htons(ETH_P_IP), .hlen = 6, .plen = 4, .op = htons(1)};
    seed_mac_for_ipv4(addr, arp.sha);
    memcpy(arp.spa, &addr.s_addr, 4);
    memcpy(arp.tpa, &addr.s_addr, 4);
    struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                              .sll_protocol = htons(ETH_P_ARP),
                              .sll_ifindex = (int)ifindex,
                              .sll_halen = 6};
    memset(sll.sll_addr, 0xff, 6);
    (void)!sendto(s, &arp, sizeof(arp), 0, (struct sockaddr *)&sll, sizeof(sll));
    close(s);
}

int seed_sandbox_setup_network(const seed_sandbox_net *net, char *what, size_t what_len) {
    struct mnl_socket *nl = NULL;
    int r = seed_nl_open(&nl);
    if (r < 0) {
        snprintf(what, what_len, "opening rtnetlink");
        return r;
    }
    /* A new network namespace has only lo, down, always ifindex 1. */
    r = seed_nl_link_up(nl, 1);
    if (r < 0) {
        snprintf(what, what_len, "bringing up lo");
        goto out;
    }
    if (!net->attach)
        goto out;
    unsigned idx = if_nametoindex("eth0");
    if (idx == 0) {
        r = -errno;
        snprintf(what, what_len, "finding eth0");
        goto out;
    }
    r = seed_nl_addr_add4(nl, idx, net->addr, net->prefix);
    if (r < 0) {
        snprintf(what, what_len, "adding the address of eth0");
        goto out;
    }
    r = seed_nl_link_up(nl, idx);
    if (r < 0) {
        snprintf(what, what_len, "bringing up eth0");
        goto out;
    }
    r = seed_nl_route_default4(nl, net->gateway);
    if (r < 0) {
        snprintf(what, what_len, "adding the default route");
        goto out;
    }
    announce(idx, net->addr);
    if (net->firewall)
        r = setup_firewall(net, what, what_len);
out:
    seed_nl_close(nl);
    return r;
}
