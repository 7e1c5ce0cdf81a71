/* shootload: the load generator of bench/shoot.py. Runs inside a shoot-enabled
 * instance: C client threads, each on its own keep-alive HTTP/1.1 connection to
 * $SEED_SHOOT_URL, send N requests in all ({"command": ["true"]} by default) and
 * time each round trip. Prints one JSON line: count, errors, wall time, throughput
 * and latency percentiles in milliseconds. SHOOTLOAD_GAP_US=N pauses each client N us
 * between requests (to see the request path without the refill competing).
 *
 *   shootload N C [COMMAND-JSON] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadrun.h"

static struct sockaddr_in target;
static char request[4096]; /* the whole HTTP request, made once */
static size_t request_len;

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&target, sizeof(target)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request on fd; returns the HTTP status or -1 (the connection is then dead). */
static int roundtrip(int fd, char *buf, size_t cap) {
    if (write(fd, request, request_len) != (ssize_t)request_len)
        return -1;
    size_t got = 0;
    long want = -1;
    char *eoh = NULL;
    for (;;) {
        ssize_t k = read(fd, buf + got, cap - 1 - got);
        if (k <= 0)
            return -1;
        got += (size_t)k;
        buf[got] = 0;
        if (!eoh && (eoh = strstr(buf, "\r\n\r\n"))) {
            char *cl = strcasestr(buf, "Content-Length:");
            if (!cl)
                return -1;
            want = strtol(cl + 15, NULL, 10);
        }
        if (eoh && (long)(got - (size_t)(eoh + 4 - buf)) >= want)
            break;
    }
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}

static long gap_us; /* SHOOTLOAD_GAP_US: pause between requests of one client */

static void *worker(void *arg) {
    (void)arg;
    char *buf = malloc(1 << 20);
    int fd = dial();
    for (long i; (i = load_next()) >= 0;) {
        double t0 = now_ms();
        int st = fd >= 0 ? roundtrip(fd, buf, 1 << 20) : -1;
        load_lat[i] = now_ms() - t0;
        if (gap_us)
            usleep((useconds_t)gap_us);
        if (st != 200) {
            atomic_fetch_add(&load_errors, 1);
            if (fd >= 0)
                close(fd);
            fd = dial();
        }
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: shootload N C [COMMAND-JSON]\n");
        return 2;
    }
    char body[2048];
    snprintf(body, sizeof(body), "{\"command\":%s}", argc > 3 ? argv[3] : "[\"true\"]");
    request_len = (size_t)snprintf(
        request, sizeof(request),
        "POST /shoot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
        strlen(body), body);
    const char *url = getenv("SEED_SHOOT_URL");
    char host[64];
    int port;
    if (!url || sscanf(url, "http://%63[^:]:%d", host, &port) != 2) {
        fprintf(stderr, "shootload: SEED_SHOOT_URL is not set\n");
        return 2;
    }
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &target.sin_addr);
    if (getenv("SHOOTLOAD_GAP_US"))
        gap_us = atol(getenv("SHOOTLOAD_GAP_US"));
    return load_run(atol(argv[1]), atoi(argv[2]), worker, "shootload");
}
