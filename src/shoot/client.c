/* seed-shoot [--timeout MS] [--] CMD [ARG...]: run a command in a shoot of the calling
 * instance, through $SEED_SHOOT_URL. Writes the command's stdout and stderr as they
 * were (the request asks for base64), forwards its own stdin when it is not a
 * terminal, and exits with the command's exit code (124 on timeout). Failures of
 * seed-shoot itself exit 125. A 503 (no sandbox free) is retried after Retry-After.
 *
 * Static, so it runs in any instance root; that is also why it speaks the little
 * HTTP/1.1 it needs itself (one POST, Connection: close) instead of linking a
 * client library that would drag in shared objects. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "shoot/request.h"

#define EXIT_FAILURE_SHOOT 125
#define MAX_RESPONSE (256u << 20)

static _noreturn_ void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("seed-shoot: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EXIT_FAILURE_SHOOT);
}

static void usage(FILE *f) {
    fputs("Usage: seed-shoot [--timeout MS] [--] CMD [ARG...]\n"
          "Run CMD in a fresh, isolated sandbox sharing this instance's root and storage.\n",
          f);
}

/* http://HOST:PORT[/prefix] */
static void parse_url(const char *url, char *host, size_t hlen, char *port, size_t plen, char *prefix,
                      size_t xlen) {
    if (strncmp(url, "http://", 7) != 0)
        die("SEED_SHOOT_URL must start with http://, got \"%s\"", url);
    const char *h = url + 7;
    const char *slash = strchrnul(h, '/');
    const char *colon = memchr(h, ':', (size_t)(slash - h));
    if (!colon)
        die("SEED_SHOOT_URL must name a port, like http://10.77.0.1:7070");
    snprintf(host, hlen, "%.*s", (int)(colon - h), h);
    snprintf(port, plen, "%.*s", (int)(slash - colon - 1), colon + 1);
    snprintf(prefix, xlen, "%s", *slash ? slash : "");
    size_t n = strlen(prefix);
    if (n && prefix[n - 1] == '/')
        prefix[n - 1] = 0;
}

static int connect_to(const char *host, const char *port) {
    /* Numeric addresses only: name lookup would need NSS, which a static binary in an
     * arbitrary root cannot count on. */
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } sa = {0};
    socklen_t len;
    char *end;
    unsigned long p = strtoul(port, &end, 10);
    if (*end || p == 0 || p > 65535)
        die("SEED_SHOOT_URL has a bad port \"%s\"", port);
    if (inet_pton(AF_INET, host, &sa.v4.sin_addr) == 1) {
        sa.v4.sin_family = AF_INET;
        sa.v4.sin_port = htons((uint16_t)p);
        len = sizeof(sa.v4);
    } else if (inet_pton(AF_INET6, host, &sa.v6.sin6_addr) == 1) {
        sa.v6.sin6_family = AF_INET6;
        sa.v6.sin6_port = htons((uint16_t)p);
        len = sizeof(sa.v6);
    } else {
        die("SEED_SHOOT_URL host must be an IP address, got \"%s\"", host);
    }
    int fd = socket(((struct sockaddr *)&sa)->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len) < 0)
        die("cannot reach the pool manager at %s:%s: %s", host, port, strerror(errno));
    return fd;
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            die("writing: %s", strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
}

typedef struct response {
    char *buf; /* all of it; body points into it */
    int status;
    unsigned retry_after;
    char *body;
    size_t body_len;
} response;

static response post(const char *url, const char *body, size_t len) {
    char host[256], port[16], prefix[512];
    parse_url(url, host, sizeof(host), port, sizeof(port), prefix, sizeof(prefix));
    int fd = connect_to(host, port);
    char head[1024];
    int hl = snprintf(head, sizeof(head),
                      "POST %s/shoot HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      prefix, host, port, len);
    write_all(fd, head, (size_t)hl);
    write_all(fd, body, len);

    char *buf = NULL;
    size_t n = 0;
    int rr = seed_read_fd(fd, MAX_RESPONSE, &buf, &n);
    if (rr == -EFBIG)
        die("response larger than %u bytes", MAX_RESPONSE);
    if (rr < 0)
        die("reading the response: %s", strerror(-rr));
    close(fd);
    response r = {.buf = buf};
    char *eoh = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1 || !eoh)
        die("malformed response from the pool manager");
    *eoh = 0;
    const char *ra = strcasestr(buf, "\r\nRetry-After:");
    r.retry_after = ra ? (unsigned)strtoul(ra + 14, NULL, 10) : 1;
    r.body = eoh + 4;
    r.body_len = n - (size_t)(r.body - buf);
    /* Content-Length, when present, bounds the body. */
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl) {
        size_t want = strtoull(cl + 17, NULL, 10);
        if (want < r.body_len)
            r.body_len = want;
    }
    return r;
}

static void output(json_t *o, const char *field, int fd) {
    int r = seed_shoot_write_output(o, field, fd);
    if (r == -EINVAL)
        die("the pool manager sent invalid base64 in %s", field);
    if (r < 0)
        die("writing: %s", strerror(-r));
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {0}};
    long timeout = -1;
    int c;
    while ((c = getopt_long(argc, argv, "+t:h", opts, NULL)) != -1) {
        if (c == 't') {
            char *end;
            timeout = strtol(optarg, &end, 10);
            if (*end || end == optarg || timeout < 1 || timeout > (long)SEED_SHOOT_MAX_TIMEOUT_MS)
                die("--timeout expects milliseconds from 1 to %u, got \"%s\"", SEED_SHOOT_MAX_TIMEOUT_MS,
                    optarg);
        } else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return EXIT_FAILURE_SHOOT;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_FAILURE_SHOOT;
    }
    const char *url = getenv("SEED_SHOOT_URL");
    if (!url || !*url)
        die("SEED_SHOOT_URL is not set: this instance does not have shoot.enable");

    _cleanup_free_ char *in = NULL;
    size_t len = 0;
    if (!isatty(0)) {
        int r = seed_read_fd(0, SEED_SHOOT_MAX_STDIN, &in, &len);
        if (r == -EFBIG)
            die("stdin is larger than %u bytes; pass large data through shared storage",
                SEED_SHOOT_MAX_STDIN);
        if (r < 0)
            len = 0; /* no readable stdin: treat as empty */
    }
    json_t *req = seed_shoot_request_build(argv + optind, argc - optind, timeout, in, len);
    if (!req)
        die("arguments must be valid UTF-8");
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!body)
        die("out of memory");

    for (int attempt = 0;; attempt++) {
        response r = post(url, body, strlen(body));
        json_error_t e;
        json_t *o = json_loadb(r.body, r.body_len, 0, &e);
        if (r.status == 503 && attempt < 30) {
            json_decref(o);
            free(r.buf);
            struct timespec ts = {r.retry_after ? r.retry_after : 1, 0};
            nanosleep(&ts, NULL);
            continue;
        }
        if (r.status != 200) {
            const char *msg = o ? json_string_value(json_object_get(o, "error")) : NULL;
            die("the pool manager answered %d: %s", r.status, msg ? msg : "no details");
        }
        if (!o || !json_is_integer(json_object_get(o, "exitCode")))
            die("malformed answer from the pool manager");
        output(o, "stdout", 1);
        output(o, "stderr", 2);
        if (json_is_true(json_object_get(o, "truncated")))
            fprintf(stderr, "seed-shoot: output was truncated by the pool manager\n");
        return (int)json_integer_value(json_object_get(o, "exitCode"));
    }
}
