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

#include "base/macro.h"
#include "shoot/request.h"

#define EXIT_FAILURE_SHOOT 125
#define MAX_STDIN ((SEED_SHOOT_MAX_BODY / 4) * 3 - 64 * 1024) /* what fits, base64'd, in a body */
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

static char *read_stdin(size_t *len) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        die("out of memory");
    for (;;) {
        if (n == cap) {
            if (cap > MAX_STDIN)
                die("stdin is larger than %u bytes; pass large data through shared storage", MAX_STDIN);
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                die("out of memory");
            buf = nb;
        }
        ssize_t k = read(0, buf + n, cap - n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            break; /* no readable stdin: treat as empty */
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    if (n > MAX_STDIN)
        die("stdin is larger than %u bytes; pass large data through shared storage", MAX_STDIN);
    *len = n;
    return buf;
}

typedef struct response {
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

    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_RESPONSE)
                die("response larger than %u bytes", MAX_RESPONSE);
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb)
                die("out of memory");
            buf = nb;
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            die("reading the response: %s", strerror(errno));
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = 0;
    response r = {0};
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
    const char *b64 = json_string_value(json_object_get(o, field));
    if (!b64)
        return;
    char *data = NULL;
    size_t len = 0;
    if (seed_base64_decode(b64, strlen(b64), &data, &len) < 0)
        die("the pool manager sent invalid base64 in %s", field);
    write_all(fd, data, len);
    free(data);
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

    json_t *cmd = json_array();
    for (int i = optind; i < argc; i++)
        json_array_append_new(cmd, json_string(argv[i]));
    json_t *req = json_pack("{s:o, s:s}", "command", cmd, "encoding", "base64");
    if (!req)
        die("arguments must be valid UTF-8");
    if (timeout > 0)
        json_object_set_new(req, "timeout", json_integer(timeout));
    if (!isatty(0)) {
        size_t len = 0;
        char *in = read_stdin(&len);
        char *b64 = seed_base64_encode(in, len, NULL);
        json_object_set_new(req, "stdin", json_string(b64));
        free(b64);
        free(in);
    }
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
