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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in target;
static const char *body;
static atomic_long next_req, errors;
static long total;
static double *lat;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

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
    char req[4096];
    int n = snprintf(
        req, sizeof(req),
        "POST /shoot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
        strlen(body), body);
    if (write(fd, req, (size_t)n) != n)
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
    for (;;) {
        long i = atomic_fetch_add(&next_req, 1);
        if (i >= total)
            break;
        double t0 = now_ms();
        int st = fd >= 0 ? roundtrip(fd, buf, 1 << 20) : -1;
        lat[i] = now_ms() - t0;
        if (gap_us)
            usleep((useconds_t)gap_us);
        if (st != 200) {
            atomic_fetch_add(&errors, 1);
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

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: shootload N C [COMMAND-JSON]\n");
        return 2;
    }
    total = atol(argv[1]);
    int conc = atoi(argv[2]);
    static char b[2048];
    snprintf(b, sizeof(b), "{\"command\":%s}", argc > 3 ? argv[3] : "[\"true\"]");
    body = b;
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
    lat = calloc((size_t)total, sizeof(double));
    pthread_t *t = calloc((size_t)conc, sizeof(pthread_t));
    double t0 = now_ms();
    for (int i = 0; i < conc; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < conc; i++)
        pthread_join(t[i], NULL);
    double wall = now_ms() - t0;
    qsort(lat, (size_t)total, sizeof(double), cmp);
    printf("{\"probe\":\"shootload\",\"n\":%ld,\"clients\":%d,\"errors\":%ld,\"wall_ms\":%.1f,\"per_s\":%.1f,"
           "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
           total, conc, (long)errors, wall, (double)total / wall * 1000, lat[total / 2], lat[total * 9 / 10],
           lat[total * 99 / 100], lat[total - 1]);
    fflush(stdout);
    return 0;
}
