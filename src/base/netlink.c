/* Minimal rtnetlink client over libmnl: one request, one acknowledgement. */
#include "base/netlink.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <string.h>
#include <time.h>

#include "base/macro.h"

int seed_nl_open(struct mnl_socket **ret) {
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl)
        return negative_errno();
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        int r = negative_errno();
        mnl_socket_close(nl);
        return r;
    }
    *ret = nl;
    return 0;
}

void seed_nl_close(struct mnl_socket *nl) {
    if (nl)
        mnl_socket_close(nl);
}

/* Send a request with NLM_F_ACK and wait for the kernel's answer. */
static int transact(struct mnl_socket *nl, struct nlmsghdr *nlh) {
    static unsigned seq;
    nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = ++seq ^ (unsigned)time(NULL);
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
        return negative_errno();
    char buf[MNL_SOCKET_BUFFER_SIZE];
    unsigned portid = mnl_socket_get_portid(nl);
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
        if (n < 0)
            return negative_errno();
        int r = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, portid, NULL, NULL);
        if (r < 0)
            return negative_errno();
        if (r == MNL_CB_STOP)
            return 0;
    }
}

static struct nlmsghdr *link_msg(char *buf, int type, unsigned flags, unsigned ifindex) {
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (uint16_t)type;
    nlh->nlmsg_flags = (uint16_t)flags;
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = (int)ifindex;
    return nlh;
}

int seed_nl_link_up(struct mnl_socket *nl, unsigned ifindex) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, 0, ifindex);
    struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
    ifm->ifi_change = IFF_UP;
    ifm->ifi_flags = IFF_UP;
    return transact(nl, nlh);
}

int seed_nl_addr_add4(struct mnl_socket *nl, unsigned ifindex, struct in_addr addr, unsigned prefix) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_NEWADDR;
    nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (uint8_t)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = ifindex;
    mnl_attr_put(nlh, IFA_LOCAL, sizeof(addr), &addr);
    mnl_attr_put(nlh, IFA_ADDRESS, sizeof(addr), &addr);
    return transact(nl, nlh);
}

int seed_nl_route_default4(struct mnl_socket *nl, struct in_addr gateway) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_NEWROUTE;
    nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
    struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
    rtm->rtm_family = AF_INET;
    rtm->rtm_dst_len = 0;
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = RTPROT_BOOT;
    rtm->rtm_scope = RT_SCOPE_UNIVERSE;
    rtm->rtm_type = RTN_UNICAST;
    mnl_attr_put(nlh, RTA_GATEWAY, sizeof(gateway), &gateway);
    return transact(nl, nlh);
}

int seed_nl_bridge_create(struct mnl_socket *nl, const char *name, const uint8_t *mac) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    if (mac)
        mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
    struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
    mnl_attr_nest_end(nlh, info);
    return transact(nl, nlh);
}

int seed_nl_veth_create(struct mnl_socket *nl, const char *name, const char *peer, int netns_fd,
                        unsigned master, const uint8_t *peer_mac) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
    if (master) {
        struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
        ifm->ifi_change = IFF_UP;
        ifm->ifi_flags = IFF_UP;
    }
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    if (master)
        mnl_attr_put_u32(nlh, IFLA_MASTER, master);
    struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
    struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    struct nlattr *peer_attr = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
    /* The peer's attributes follow an ifinfomsg of their own. */
    struct ifinfomsg *pifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifm));
    memset(pifm, 0, sizeof(*pifm));
    mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
    if (peer_mac)
        mnl_attr_put(nlh, IFLA_ADDRESS, 6, peer_mac);
    mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)netns_fd);
    mnl_attr_nest_end(nlh, peer_attr);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, info);
    return transact(nl, nlh);
}

int seed_nl_link_del(struct mnl_socket *nl, unsigned ifindex) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = link_msg(buf, RTM_DELLINK, 0, ifindex);
    return transact(nl, nlh);
}
