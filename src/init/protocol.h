/* The channel between the node and an instance's init: a SOCK_SEQPACKET socketpair,
 * one record per message. The init sends output lines and process events; the node
 * sends commands. The init reads its configuration (JSON, below) from fd 3 and talks
 * on fd 4.
 *
 * Configuration:
 *   {"name": "web", "grace_ms": 10000, "env_file": ["K=V", ...],
 *    "processes": [{"name": "httpd", "argv": [...], "env": ["K=V", ...],
 *                   "cwd": "/", "user": "root", "restart": "always", "foreground": false}],
 *    "users": [{"name": "app", "uid": 1000, "gid": 1000, "shell": "/bin/sh",
 *               "home": "/home/app"}],
 *    "volumes": ["/seed/storage/data"], "ssh_port": 22} */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SEED_INIT_CONFIG_FD 3
#define SEED_INIT_CHANNEL_FD 4

#define SEED_INIT_MAX_LINE 16384 /* longer output lines are split */
/* The instance's output rate: the init drops what goes beyond (and says how much), and
 * the node reads no faster than twice this from a channel. */
#define SEED_INIT_LOG_RATE (1u << 20) /* bytes a second */
#define SEED_INIT_LOG_BURST (8u << 20)
#define SEED_INIT_LOG_LINE_COST 128 /* a line counts at least this many bytes */
#define SEED_INIT_MAX_MSG (sizeof(seed_init_hdr) + 256 + SEED_INIT_MAX_LINE)

enum {
    /* init → node */
    SEED_INIT_LOG = 1,   /* stream: SEED_STREAM_*, name: process, data: the line */
    SEED_INIT_EVENT = 2, /* stream: SEED_EVENT_*, arg: pid or wait status, name: process */
    /* node → init */
    SEED_INIT_STOP = 16, /* arg: grace period in ms */
};

enum {
    SEED_STREAM_INIT = 0, /* the init's own messages about a process */
    SEED_STREAM_STDOUT = 1,
    SEED_STREAM_STDERR = 2,
};

enum {
    SEED_EVENT_STARTED = 1,  /* arg: pid (in the instance) */
    SEED_EVENT_EXITED = 2,   /* arg: wait status */
    SEED_EVENT_RESTART = 3,  /* arg: delay in ms before the restart */
    SEED_EVENT_FINISHED = 4, /* every process is done for good; the init exits */
};

typedef struct seed_init_hdr {
    uint8_t type;
    uint8_t stream;
    uint16_t name_len;
    uint32_t arg;
    uint64_t ts_usec; /* CLOCK_REALTIME */
} seed_init_hdr;

/* Split one message received on the channel into header, process name and data.
 * The node reads these from inside a sandbox: everything is checked. Returns 0, or
 * -EBADMSG for a message that is short, names more than 255 bytes, or overruns. */
int seed_init_msg_parse(const char *buf, size_t n, seed_init_hdr *h, char name[256], const char **data,
                        size_t *data_len);
