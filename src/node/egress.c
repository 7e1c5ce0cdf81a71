/* Outbound network for instances, only when the node is started with --egress.
 *
 *   instance --bridge--> node namespace --veth "uplink"--> host namespace --> world
 *                        masquerade to the uplink address    masquerade to the host's
 *
 * The only change egress makes outside the node's own namespaces: a veth end named
 * seedh-<node id> with a link-local /30, IPv4 forwarding, and an nftables table
 * seed-<node id> that masquerades the node's traffic. All three go at a clean stop;
 * a node killed with SIGKILL loses its veth with its namespace, and the next node on
 * the same state directory removes the stale table and restores the forwarding
 * setting its predecessor recorded (in the state database) before changing it. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/netlink.h"
#include "node/egress.h"
#include "node/network.h"

typedef struct nft_job {
    const char *cmds;
    char *error; /* malloc'd on failure */
} nft_job;

static int run_nft(void *arg) {
    nft_job *j = arg;
    struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!nft)
        return -ENOMEM;
    nft_ctx_buffer_error(nft);
    int r = nft_run_cmd_from_buffer(nft, j->cmds);
    if (r != 0) {
        const char *e = nft_ctx_get_error_buffer(nft);
        j->error = strdup(e ? e : "nftables failed");
    }
    nft_ctx_free(nft);
    return r == 0 ? 0 : -EINVAL;
}

typedef struct sysctl_job {
    const char *path;
    const char *value;
    char old[16];
} sysctl_job;

static int run_sysctl(void *arg) {
    sysctl_job *j = arg;
    _cleanup_close_ int fd = open(j->path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    ssize_t n = read(fd, j->old, sizeof(j->old) - 1);
    j->old[n > 0 ? n : 0] = 0;
    j->old[strcspn(j->old, "\n")] = 0;
    if (!j->value)
        return 0;
    if (pwrite(fd, j->value, strlen(j->value), 0) < 0)
        return negative_errno();
    return 0;
}

static void table_name(const char *node_id, char *buf, size_t size) {
    snprintf(buf, size, "seed-%s", node_id);
}

/* The host's end of a killed node's uplink: it goes when the kernel has torn down that
 * node's network namespace, which may not have happened yet. */
static int remove_stale_link(void *arg) {
    const char *ifname = arg;
    unsigned idx = if_nametoindex(ifname);
    struct mnl_socket *nl = NULL;
    if (!idx || seed_nl_open(&nl) < 0)
        return 0;
    seed_nl_link_del(nl, idx);
    seed_nl_close(nl);
    return 0;
}

void seed_egress_remove_stale(const char *node_id, int host_netns) {
    char ifname[IFNAMSIZ];
    snprintf(ifname, sizeof(ifname), "seedh-%.8s", node_id);
    seed_in_netns(host_netns, remove_stale_link, ifname);
    char table[64], cmds[128];
    table_name(node_id, table, sizeof(table));
    snprintf(cmds, sizeof(cmds), "destroy table ip %s\n", table);
    nft_job j = {.cmds = cmds};
    /* "destroy" is newer than some nft versions; "delete" fails when absent. Either
     * way a missing table is not an error here. */
    if (seed_in_netns(host_netns, run_nft, &j) < 0) {
        free(j.error);
        j.error = NULL;
        snprintf(cmds, sizeof(cmds), "delete table ip %s\n", table);
        seed_in_netns(host_netns, run_nft, &j);
    }
    free(j.error);
}

static int host_end_up(void *arg) {
    seed_egress *e = arg;
    struct mnl_socket *nl = NULL;
    int r = seed_nl_open(&nl);
    unsigned hidx = r >= 0 ? if_nametoindex(e->host_ifname) : 0;
    if (r >= 0 && !hidx)
        r = -ENODEV;
    if (r >= 0)
        r = seed_nl_addr_add4(nl, hidx, e->host_addr, 30);
    if (r >= 0)
        r = seed_nl_link_up(nl, hidx);
    seed_nl_close(nl);
    return r;
}

int seed_egress_host_forward(int host_netns, const char *set, char old[16]) {
    sysctl_job j = {.path = "/proc/sys/net/ipv4/ip_forward", .value = set};
    int r = seed_in_netns(host_netns, run_sysctl, &j);
    if (r >= 0)
        memcpy(old, j.old, sizeof(j.old));
    return r;
}

int seed_egress_setup(seed_egress *e, const char *node_id, const seed_node_net *nn, const char *forward_was,
                      seed_error **err) {
    *e = (seed_egress){.host_netns = nn->host_netns};
    snprintf(e->node_id, sizeof(e->node_id), "%s", node_id);
    /* A /30 in 169.254.0.0/16 picked from the node id, so nodes on one host differ. */
    unsigned h = (unsigned)strtoul(node_id + 6, NULL, 16) & 0x3fff;
    e->host_addr.s_addr = htonl(0xa9fe0000u | (h << 2) | 1);
    e->node_addr.s_addr = htonl(0xa9fe0000u | (h << 2) | 2);
    snprintf(e->host_ifname, sizeof(e->host_ifname), "seedh-%.8s", node_id); /* as remove_stale */

    seed_egress_remove_stale(node_id, nn->host_netns);

    struct mnl_socket *nl = NULL;
    int r = seed_nl_open(&nl); /* the node's namespace */
    if (r < 0)
        return seed_error_setp(err, -r, "egress: rtnetlink");
    /* Create the pair from the node's side: "uplink" here, the other end straight
     * into the host's namespace. */
    r = seed_nl_veth_create(nl, "uplink", e->host_ifname, nn->host_netns, 0, NULL);
    unsigned up = r >= 0 ? if_nametoindex("uplink") : 0;
    if (r >= 0 && !up)
        r = -ENODEV;
    if (r >= 0)
        r = seed_nl_addr_add4(nl, up, e->node_addr, 30);
    if (r >= 0)
        r = seed_nl_link_up(nl, up);
    if (r >= 0)
        r = seed_nl_route_default4(nl, e->host_addr);
    seed_nl_close(nl);
    if (r < 0)
        return seed_error_setp(err, -r, "egress: setting up the uplink");
    e->created = true;

    /* The host's end: address and up, from inside the host's namespace. */
    r = seed_in_netns(nn->host_netns, host_end_up, e);
    if (r < 0)
        return seed_error_setp(err, -r, "egress: setting up %s", e->host_ifname);

    /* Forwarding and masquerading on both hops. */
    char node_ip[INET_ADDRSTRLEN], table[64], cmds[1024];
    inet_ntop(AF_INET, &e->node_addr, node_ip, sizeof(node_ip));
    table_name(e->node_id, table, sizeof(table));
    snprintf(cmds, sizeof(cmds),
             "table ip %s {\n"
             "  chain post { type nat hook postrouting priority srcnat; policy accept;\n"
             "    ip saddr %s oifname != \"%s\" masquerade\n  }\n"
             "}\n",
             table, node_ip, e->host_ifname);
    nft_job j = {.cmds = cmds};
    r = seed_in_netns(nn->host_netns, run_nft, &j);
    if (r < 0) {
        r = seed_error_set(err, -r, "egress: host NAT: %s", j.error ? j.error : strerror(-r));
        free(j.error);
        return r;
    }
    e->host_table = true;
    snprintf(e->host_forward_was, sizeof(e->host_forward_was), "%s", forward_was);
    char now[16];
    if ((r = seed_egress_host_forward(nn->host_netns, "1", now)) < 0)
        return seed_error_setp(err, -r, "egress: enabling forwarding on the host");

    char subnet[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &nn->subnet.net, subnet, sizeof(subnet));
    snprintf(cmds, sizeof(cmds),
             "table ip seed-egress {\n"
             "  chain post { type nat hook postrouting priority srcnat; policy accept;\n"
             "    ip saddr %s/%u oifname \"uplink\" masquerade\n  }\n"
             "}\n",
             subnet, nn->subnet.prefix);
    j = (nft_job){.cmds = cmds};
    r = run_nft(&j);
    if (r < 0) {
        r = seed_error_set(err, -r, "egress: node NAT: %s", j.error ? j.error : strerror(-r));
        free(j.error);
        return r;
    }
    sysctl_job nfwd = {.path = "/proc/sys/net/ipv4/ip_forward", .value = "1"};
    if ((r = run_sysctl(&nfwd)) < 0)
        return seed_error_setp(err, -r, "egress: enabling forwarding in the node");
    return 0;
}

void seed_egress_teardown(seed_egress *e) {
    if (e->host_table) {
        seed_egress_remove_stale(e->node_id, e->host_netns);
        e->host_table = false;
    }
    if (*e->host_forward_was && !streq(e->host_forward_was, "1")) {
        sysctl_job fwd = {.path = "/proc/sys/net/ipv4/ip_forward", .value = e->host_forward_was};
        seed_in_netns(e->host_netns, run_sysctl, &fwd);
    }
    if (e->created) {
        /* Deleting the node's end takes the host's end with it. */
        struct mnl_socket *nl = NULL;
        unsigned up = if_nametoindex("uplink");
        if (up && seed_nl_open(&nl) == 0) {
            seed_nl_link_del(nl, up);
            seed_nl_close(nl);
        }
        e->created = false;
    }
}

/* The host's name servers an instance can reach through the uplink (loopback ones,
 * such as systemd-resolved's 127.0.0.53, cannot be reached from an instance). */
char *seed_egress_resolv_conf(void) {
    _cleanup_fclose_ FILE *f = fopen("/etc/resolv.conf", "re");
    char *out = NULL;
    size_t out_len = 0;
    FILE *o = open_memstream(&out, &out_len);
    if (!o)
        return NULL;
    fputs("# seed: the host's name servers, reached through the node\n", o);
    char line[512];
    size_t servers = 0;
    while (f && fgets(line, sizeof(line), f)) {
        char ns[256];
        if (sscanf(line, "nameserver %255s", ns) == 1) {
            if (strncmp(ns, "127.", 4) == 0 || streq(ns, "::1"))
                continue;
            servers++;
        } else if (strncmp(line, "search ", 7) != 0 && strncmp(line, "options ", 8) != 0) {
            continue;
        }
        fputs(line, o);
    }
    if (servers == 0)
        fputs("# (the host has no name server an instance can reach)\n", o);
    if (fclose(o) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
