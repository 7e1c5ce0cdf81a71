/* Push webhooks: the server on 127.0.0.1:0 with its own loop, driven by raw HTTP from
 * this thread (the loop is pumped while the test waits). Every status of the contract,
 * the three providers, redelivery, refs, oversized and deep bodies, a trickling client
 * and the per-address connection cap; and seed_webhook_parse() on its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "source/webhook.h"

#define SECRET "It's a Secret to Everybody"
#define COMMIT "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
#define COMMIT2 "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
#define ZERO "0000000000000000000000000000000000000000"

/* ---- what the callback saw ---- */

typedef struct seen {
    seed_webhook_kind kind;
    unsigned status;
    char source[64], provider[16], ref[128], after[80], delivery[160], reason[256], peer[64];
} seen;

static seen events[64];
static size_t n_events;

static void copy(char *dst, size_t size, const char *s) {
    snprintf(dst, size, "%s", s ? s : "");
}

static void on_event(void *userdata, const seed_webhook_event *ev) {
    assert_true(n_events < ELEMENTSOF(events));
    seen *e = &events[n_events++];
    e->kind = ev->kind;
    e->status = ev->status;
    copy(e->source, sizeof(e->source), ev->source);
    copy(e->provider, sizeof(e->provider), ev->provider);
    copy(e->ref, sizeof(e->ref), ev->ref);
    copy(e->after, sizeof(e->after), ev->after);
    copy(e->delivery, sizeof(e->delivery), ev->delivery);
    copy(e->reason, sizeof(e->reason), ev->reason);
    copy(e->peer, sizeof(e->peer), ev->peer);
}

static const seen *last(void) {
    assert_true(n_events > 0);
    return &events[n_events - 1];
}

static size_t count(seed_webhook_kind kind) {
    size_t n = 0;
    for (size_t i = 0; i < n_events; i++)
        n += events[i].kind == kind;
    return n;
}

/* ---- the server under test ---- */

static seed_loop *loop;
static seed_webhook *hook;
static unsigned port;

static const seed_webhook_source sources[] = {
    {.name = "app", .secret = SECRET, .ref = "refs/heads/main"},
    {.name = "open", .secret = NULL, .ref = "refs/heads/main"},
    {.name = "head", .secret = SECRET, .ref = NULL},
    {.name = "short", .secret = SECRET, .ref = "prod"},
};

static int setup(void **state) {
    n_events = 0;
    assert_int_equal(seed_loop_new(&loop), 0);
    seed_error *err = NULL;
    int r = seed_webhook_new(loop, "127.0.0.1:0", on_event, NULL, &hook, &err);
    if (r < 0)
        fail_msg("seed_webhook_new: %s", err->msg);
    assert_int_equal(seed_webhook_set_sources(hook, sources, ELEMENTSOF(sources)), 0);
    port = seed_webhook_port(hook);
    assert_true(port > 0);
    return 0;
}

static int teardown(void **state) {
    seed_webhook_free(hook);
    seed_loop_free(loop);
    hook = NULL;
    loop = NULL;
    return 0;
}

/* ---- a raw HTTP client, pumping the server's loop while it waits ---- */

static int connect_server(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    assert_true(r == 0 || errno == EINPROGRESS);
    return fd;
}

static void pump(int ms) {
    seed_loop_run_once(loop, ms);
}

/* Run the loop for ms milliseconds. */
static void pump_for(int ms) {
    uint64_t until = seed_now_usec() + (uint64_t)ms * 1000;
    for (uint64_t now; (now = seed_now_usec()) < until;)
        pump((int)((until - now + 999) / 1000));
}

/* Send it all (pumping while the socket is full); false if the server closed. */
static bool send_all(int fd, const char *buf, size_t n) {
    uint64_t until = seed_now_usec() + 10000000;
    while (n > 0) {
        ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);
        if (k < 0 && (errno == EAGAIN || errno == EINPROGRESS || errno == ENOTCONN)) {
            assert_true(seed_now_usec() < until);
            pump(5);
            continue;
        }
        if (k < 0)
            return false;
        buf += k;
        n -= (size_t)k;
    }
    return true;
}

typedef struct resp {
    unsigned status; /* 0: the connection closed without an answer */
    char text[8192]; /* headers and body */
    const char *body;
    bool closed; /* the server closed the connection */
} resp;

/* Read one answer (until its Content-Length is in, or the connection ends). */
static void read_answer(int fd, resp *out, int timeout_ms) {
    memset(out, 0, sizeof(*out));
    size_t n = 0;
    uint64_t until = seed_now_usec() + (uint64_t)timeout_ms * 1000;
    for (;;) {
        ssize_t k = recv(fd, out->text + n, sizeof(out->text) - 1 - n, 0);
        if (k > 0) {
            n += (size_t)k;
            out->text[n] = 0;
            char *end = strstr(out->text, "\r\n\r\n");
            const char *cl = strcasestr(out->text, "Content-Length:");
            if (end && cl && (size_t)(out->text + n - (end + 4)) >= strtoul(cl + 15, NULL, 10))
                break;
            continue;
        }
        if (k == 0 || (errno != EAGAIN && errno != EINPROGRESS && errno != ENOTCONN)) {
            out->closed = true;
            break;
        }
        if (seed_now_usec() > until)
            fail_msg("no answer within %d ms; got: %s", timeout_ms, out->text);
        pump(5);
    }
    sscanf(out->text, "HTTP/1.1 %u", &out->status);
    char *end = strstr(out->text, "\r\n\r\n");
    out->body = end ? end + 4 : "";
}

/* Is the connection closed by the server (EOF or reset) within timeout_ms? */
static bool closed_within(int fd, int timeout_ms) {
    uint64_t until = seed_now_usec() + (uint64_t)timeout_ms * 1000;
    char buf[4096];
    while (seed_now_usec() < until) {
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k == 0 || (k < 0 && errno != EAGAIN))
            return true;
        pump(5);
    }
    return false;
}

static unsigned exchange(const char *raw, size_t n, resp *out) {
    int fd = connect_server();
    assert_true(send_all(fd, raw, n));
    read_answer(fd, out, 5000);
    close(fd);
    return out->status;
}

static char *request_text(const char *method, const char *path, const char *headers, const char *body,
                          size_t len, size_t *out_len) {
    char *head = NULL;
    assert_true(
        asprintf(&head,
                 "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: %zu\r\n%s\r\n",
                 method, path, len, headers) > 0);
    size_t hl = strlen(head);
    char *all = malloc(hl + len + 1);
    assert_non_null(all);
    memcpy(all, head, hl);
    memcpy(all + hl, body, len);
    all[hl + len] = 0;
    free(head);
    *out_len = hl + len;
    return all;
}

static unsigned post(const char *path, const char *headers, const char *body, size_t len, resp *out) {
    size_t n;
    char *raw = request_text("POST", path, headers, body, len, &n);
    unsigned s = exchange(raw, n, out);
    free(raw);
    return s;
}

static void hmac_hex(const char *secret, const char *body, size_t len, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    assert_non_null(
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, md, &n));
    for (unsigned i = 0; i < n; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
}

/* A GitHub delivery signed with `secret`. */
static unsigned github(const char *source, const char *event, const char *secret, const char *delivery,
                       const char *content_type, const char *body, size_t len, resp *out) {
    char hex[65], headers[1024], path[256];
    hmac_hex(secret, body, len, hex);
    snprintf(headers, sizeof(headers),
             "X-GitHub-Event: %s\r\nX-Hub-Signature-256: sha256=%s\r\nX-GitHub-Delivery: %s\r\n"
             "Content-Type: %s\r\n",
             event, hex, delivery, content_type);
    snprintf(path, sizeof(path), "/webhook/%s", source);
    return post(path, headers, body, len, out);
}

static unsigned github_json(const char *source, const char *delivery, const char *body, resp *out) {
    return github(source, "push", SECRET, delivery, "application/json", body, strlen(body), out);
}

static char *push_body(const char *ref, const char *after) {
    char *s = NULL;
    assert_true(asprintf(&s,
                         "{\"ref\":\"%s\",\"before\":\"" ZERO "\",\"after\":\"%s\","
                         "\"repository\":{\"full_name\":\"o/app\",\"default_branch\":\"main\"}}",
                         ref, after) > 0);
    return s;
}

/* ---- tests ---- */

static void test_github_push_and_redelivery(void **state) {
    resp a;
    char *body = push_body("refs/heads/main", COMMIT);
    assert_int_equal(github_json("app", "d-1", body, &a), 202);
    assert_non_null(strstr(a.body, "\"status\":\"accepted\""));
    assert_non_null(strstr(a.body, "\"after\":\"" COMMIT "\""));
    assert_non_null(strstr(a.text, "Content-Type: application/json"));
    assert_int_equal(count(SEED_WEBHOOK_PUSH), 1);
    const seen *e = last();
    assert_int_equal(e->kind, SEED_WEBHOOK_PUSH);
    assert_int_equal(e->status, 202);
    assert_string_equal(e->source, "app");
    assert_string_equal(e->provider, "github");
    assert_string_equal(e->ref, "refs/heads/main");
    assert_string_equal(e->after, COMMIT);
    assert_string_equal(e->delivery, "d-1");
    assert_string_equal(e->peer, "127.0.0.1");

    /* The same delivery again: answered, not delivered a second time. */
    assert_int_equal(github_json("app", "d-1", body, &a), 200);
    assert_non_null(strstr(a.body, "already applied"));
    assert_int_equal(count(SEED_WEBHOOK_PUSH), 1);
    assert_int_equal(last()->kind, SEED_WEBHOOK_IGNORED);

    /* Replacing the table keeps what a staying source has seen. */
    assert_int_equal(seed_webhook_set_sources(hook, sources, ELEMENTSOF(sources)), 0);
    assert_int_equal(github_json("app", "d-1", body, &a), 200);
    assert_int_equal(count(SEED_WEBHOOK_PUSH), 1);
    /* A new delivery of the same commit is a new push. */
    assert_int_equal(github_json("app", "d-2", body, &a), 202);
    assert_int_equal(count(SEED_WEBHOOK_PUSH), 2);
    free(body);
}

static void test_github_ping_other_ref_deletion(void **state) {
    resp a;
    const char *ping = "{\"zen\":\"Keep it logically awesome.\",\"hook_id\":1}";
    assert_int_equal(github("app", "ping", SECRET, "p-1", "application/json", ping, strlen(ping), &a), 200);
    assert_int_equal(last()->kind, SEED_WEBHOOK_PING);

    char *other = push_body("refs/heads/feature", COMMIT);
    assert_int_equal(github_json("app", "o-1", other, &a), 202);
    assert_non_null(strstr(a.body, "\"status\":\"ignored\""));
    assert_int_equal(last()->kind, SEED_WEBHOOK_IGNORED);
    assert_non_null(strstr(last()->reason, "refs/heads/feature"));
    free(other);

    char *deleted = push_body("refs/heads/main", ZERO);
    assert_int_equal(github_json("app", "x-1", deleted, &a), 202);
    assert_int_equal(last()->kind, SEED_WEBHOOK_IGNORED);
    assert_non_null(strstr(last()->reason, "deleted"));
    free(deleted);

    const char *issue = "{\"action\":\"opened\"}";
    assert_int_equal(github("app", "issues", SECRET, "i-1", "application/json", issue, strlen(issue), &a),
                     202);
    assert_int_equal(last()->kind, SEED_WEBHOOK_IGNORED);

    /* Tracking the remote HEAD: the payload's default branch decides. */
    char *dev = push_body("refs/heads/dev", COMMIT);
    assert_int_equal(github_json("head", "h-1", dev, &a), 202);
    assert_int_equal(last()->kind, SEED_WEBHOOK_IGNORED);
    free(dev);
    char *main_ = push_body("refs/heads/main", COMMIT);
    assert_int_equal(github_json("head", "h-2", main_, &a), 202);
    assert_int_equal(last()->kind, SEED_WEBHOOK_PUSH);
    free(main_);
    /* A short tracked ref is a branch. */
    char *prod = push_body("refs/heads/prod", COMMIT);
    assert_int_equal(github_json("short", "s-1", prod, &a), 202);
    assert_int_equal(last()->kind, SEED_WEBHOOK_PUSH);
    free(prod);
    assert_int_equal(count(SEED_WEBHOOK_PUSH), 2);
}

static void test_bad_signature(void **state) {
    resp a;
    char *body = push_body("refs/heads/main", COMMIT);
    assert_int_equal(
        github("app", "push", "not the secret", "b-1", "application/json", body, strlen(body), &a), 401);
    assert_non_null(strstr(a.body, "\"error\":\"bad signature"));
    assert_int_equal(last()->kind, SEED_WEBHOOK_REJECTED);
    assert_int_equal(last()->status, 401);
    assert_string_equal(last()->source, "app");

    /* Unsigned, and a signature of the wrong shape. */
    assert_int_equal(post("/webhook/app", "X-GitHub-Event: push\r\nContent-Type: application/json\r\n", body,
                          strlen(body), &a),
                     401);
    assert_non_null(strstr(a.body, "X-Hub-Signature-256"));
    assert_int_equal(
        post("/webhook/app",
             "X-GitHub-Event: push\r\nX-Hub-Signature-256: sha1=abc\r\nContent-Type: application/json\r\n",
             body, strlen(body), &a),
        401);
    assert_int_equal(count(SEED_WEBHOOK_PUSH), 0);
    assert_int_equal(count(SEED_WEBHOOK_REJECTED), 3);
    free(body);
}

static void test_paths_methods_sources(void **state) {
    resp a;
    char *body = push_body("refs/heads/main", COMMIT);
    assert_int_equal(github_json("nope", "n-1", body, &a), 404);
    assert_non_null(strstr(a.body, "no source nope"));
    assert_int_equal(last()->status, 404);
    assert_int_equal(post("/hooks", "", "", 0, &a), 404);
    assert_int_equal(post("/webhook/", "", "", 0, &a), 404);
    assert_int_equal(post("/webhook/app/x", "", "", 0, &a), 404);
    size_t n;
    char *get = request_text("GET", "/webhook/app", "", "", 0, &n);
    assert_int_equal(exchange(get, n, &a), 405);
    assert_non_null(strstr(a.text, "Allow: POST"));
    free(get);
    /* A source without a secret refuses every webhook, signed or not. */
    assert_int_equal(github_json("open", "o-1", body, &a), 403);
    assert_non_null(strstr(a.body, "--webhook-secret-file"));
    assert_int_equal(last()->kind, SEED_WEBHOOK_REJECTED);
    assert_int_equal(last()->status, 403);
    /* No provider's headers at all. */
    assert_int_equal(post("/webhook/app", "Content-Type: application/json\r\n", body, strlen(body), &a), 400);
    assert_non_null(strstr(a.body, "X-GitHub-Event"));
    assert_int_equal(count(SEED_WEBHOOK_PUSH), 0);
    free(body);
}

static void test_malformed_bodies(void **state) {
    resp a;
    const char *bad[] = {
        "not json",
        "[\"refs/heads/main\"]",
        "{\"ref\":\"refs/heads/main\"}",
        "{\"ref\":\"refs/heads/main\",\"after\":\"xyz\"}",
        "{\"ref\":\"main\",\"after\":\"" COMMIT "\"}",
        "{\"ref\":\"refs/heads/m\\u0000x\",\"after\":\"" COMMIT "\"}",
        "{\"ref\":\"refs/heads/\xff\",\"after\":\"" COMMIT "\"}",
        "\"just a string\"",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        char id[16];
        snprintf(id, sizeof(id), "m-%zu", i);
        assert_int_equal(github_json("app", id, bad[i], &a), 400);
        assert_non_null(strstr(a.body, "\"error\":"));
        assert_int_equal(last()->kind, SEED_WEBHOOK_REJECTED);
        assert_int_equal(last()->status, 400);
    }
    /* 100000 '[': a clean 400, no crash. */
    size_t deep_n = 100000;
    char *deep = malloc(deep_n);
    memset(deep, '[', deep_n);
    assert_int_equal(github("app", "push", SECRET, "deep", "application/json", deep, deep_n, &a), 400);
    assert_non_null(strstr(a.body, "nested deeper"));
    free(deep);
    /* Other content types: 415; GitHub's form encoding is understood. */
    char *body = push_body("refs/heads/main", COMMIT);
    assert_int_equal(github("app", "push", SECRET, "t-1", "text/plain", body, strlen(body), &a), 415);
    assert_int_equal(last()->status, 415);
    char form[1024] = "payload=";
    for (const char *p = body; *p; p++)
        snprintf(form + strlen(form), sizeof(form) - strlen(form), "%%%02X", (unsigned char)*p);
    assert_int_equal(
        github("app", "push", SECRET, "f-1", "application/x-www-form-urlencoded", form, strlen(form), &a),
        202);
    assert_int_equal(last()->kind, SEED_WEBHOOK_PUSH);
    assert_int_equal(github("app", "push", SECRET, "f-2", "application/x-www-form-urlencoded", "x=1", 3, &a),
                     400);
    assert_int_equal(count(SEED_WEBHOOK_PUSH), 1);
    free(body);
}

static void test_gitea_forgejo_gitlab(void **state) {
    resp a;
    char hex[65], headers[1024];
    char *body = push_body("refs/heads/main", COMMIT);
    size_t len = strlen(body);
    hmac_hex(SECRET, body, len, hex);
    /* Gitea sends GitHub's headers too; its own decide. */
    snprintf(
        headers, sizeof(headers),
        "X-Gitea-Event: push\r\nX-Gitea-Signature: %s\r\nX-Gitea-Delivery: g-1\r\nX-GitHub-Event: push\r\n"
        "Content-Type: application/json\r\n",
        hex);
    assert_int_equal(post("/webhook/app", headers, body, len, &a), 202);
    assert_string_equal(last()->provider, "gitea");
    assert_string_equal(last()->delivery, "g-1");
    assert_int_equal(last()->kind, SEED_WEBHOOK_PUSH);
    snprintf(headers, sizeof(headers),
             "X-Forgejo-Event: push\r\nX-Forgejo-Signature: %s\r\nX-Forgejo-Delivery: fj-1\r\n"
             "Content-Type: application/json\r\n",
             hex);
    assert_int_equal(post("/webhook/app", headers, body, len, &a), 202);
    assert_string_equal(last()->delivery, "fj-1");
    snprintf(headers, sizeof(headers),
             "X-Gitea-Event: push\r\nX-Gitea-Signature: %.63s0\r\nContent-Type: application/json\r\n", hex);
    if (hex[63] == '0')
        headers[strlen("X-Gitea-Event: push\r\nX-Gitea-Signature: ") + 63] = '1';
    assert_int_equal(post("/webhook/app", headers, body, len, &a), 401);

    /* GitLab: the token is the secret itself. */
    char *gl = NULL;
    assert_true(asprintf(&gl,
                         "{\"object_kind\":\"push\",\"ref\":\"refs/heads/main\",\"after\":\"%s\","
                         "\"project\":{\"default_branch\":\"main\"}}",
                         COMMIT2) > 0);
    assert_int_equal(post("/webhook/app",
                          "X-Gitlab-Event: Push Hook\r\nX-Gitlab-Token: " SECRET
                          "\r\nX-Gitlab-Event-UUID: gl-1\r\nContent-Type: application/json\r\n",
                          gl, strlen(gl), &a),
                     202);
    assert_string_equal(last()->provider, "gitlab");
    assert_string_equal(last()->after, COMMIT2);
    assert_string_equal(last()->delivery, "gl-1");
    assert_int_equal(post("/webhook/app",
                          "X-Gitlab-Event: Push Hook\r\nX-Gitlab-Token: " SECRET
                          "x\r\nContent-Type: application/json\r\n",
                          gl, strlen(gl), &a),
                     401);
    assert_int_equal(last()->status, 401);
    assert_int_equal(count(SEED_WEBHOOK_PUSH), 3);
    free(gl);
    free(body);
}

static void test_too_large(void **state) {
    resp a;
    /* Announced: answered after the headers, and the rest is never read. */
    int fd = connect_server();
    const char *head = "POST /webhook/app HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                       "Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n";
    assert_true(send_all(fd, head, strlen(head)));
    char chunk[65536];
    memset(chunk, ' ', sizeof(chunk));
    assert_true(send_all(fd, chunk, sizeof(chunk)));
    read_answer(fd, &a, 5000);
    assert_int_equal(a.status, 413);
    assert_non_null(strstr(a.body, "at most 1048576"));
    assert_true(closed_within(fd, 5000));
    close(fd);
    assert_int_equal(last()->status, 413);

    /* Chunked, no length: refused once over the limit, not buffered to the end. */
    fd = connect_server();
    head = "POST /webhook/app HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
           "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_true(send_all(fd, head, strlen(head)));
    /* MHD cannot answer in the middle of a chunked body: the connection is closed
     * (reported as a 413) once the body goes over, whatever the client sends on. */
    char size_line[32];
    snprintf(size_line, sizeof(size_line), "%zx\r\n", sizeof(chunk));
    bool dropped = false;
    for (size_t sent = 0; sent < (2u << 20) && !dropped; sent += sizeof(chunk))
        dropped = !send_all(fd, size_line, strlen(size_line)) || !send_all(fd, chunk, sizeof(chunk)) ||
                  !send_all(fd, "\r\n", 2);
    assert_true(closed_within(fd, 5000));
    close(fd);
    assert_int_equal(last()->kind, SEED_WEBHOOK_REJECTED);
    assert_int_equal(last()->status, 413);
    assert_int_equal(count(SEED_WEBHOOK_PUSH), 0);
}

static void test_trickle_cut(void **state) {
    seed_webhook_set_deadline(hook, 400000);
    int fd = connect_server();
    const char *head = "POST /webhook/app HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                       "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    assert_true(send_all(fd, head, strlen(head)));
    /* One byte every 20 ms: each byte would reset an idle timeout, not the deadline. */
    uint64_t start = seed_now_usec();
    bool cut = false;
    resp a = {0};
    while (seed_now_usec() - start < 5000000) {
        if (!send_all(fd, "{", 1)) {
            cut = true;
            break;
        }
        pump_for(20);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1) {
            read_answer(fd, &a, 1000);
            cut = true;
            break;
        }
    }
    assert_true(cut);
    if (seed_now_usec() - start < 350000)
        fail_msg("cut after %llu us: %u %s", (unsigned long long)(seed_now_usec() - start), a.status, a.text);
    if (a.status)
        assert_int_equal(a.status, 408);
    assert_true(closed_within(fd, 2000));
    close(fd);
    assert_int_equal(last()->kind, SEED_WEBHOOK_REJECTED);
    assert_int_equal(last()->status, 408);
    assert_string_equal(last()->source, "app");

    /* Headers that never end are cut too. */
    fd = connect_server();
    assert_true(send_all(fd, "POST /webhook/app HTTP/1.1\r\nX-A: ", 33));
    read_answer(fd, &a, 3000);
    assert_int_equal(a.status, 408);
    close(fd);
    assert_int_equal(last()->status, 408);
}

static void test_per_peer_cap(void **state) {
    int fds[SEED_WEBHOOK_MAX_PER_PEER];
    for (size_t i = 0; i < ELEMENTSOF(fds); i++)
        fds[i] = connect_server();
    for (int i = 0; i < 20; i++)
        pump(5);
    /* One more from the same address is closed at once, unread. */
    int extra = connect_server();
    assert_true(closed_within(extra, 3000));
    close(extra);
    assert_int_equal(last()->kind, SEED_WEBHOOK_REJECTED);
    assert_int_equal(last()->status, 429);
    for (size_t i = 0; i < ELEMENTSOF(fds); i++)
        close(fds[i]);
    for (int i = 0; i < 20; i++)
        pump(5);
    /* Room again once they are gone. */
    resp a;
    char *body = push_body("refs/heads/main", COMMIT);
    assert_int_equal(github_json("app", "cap-1", body, &a), 202);
    free(body);
}

static void test_addresses(void **state) {
    seed_error *err = NULL;
    seed_webhook *w = NULL;
    const char *bad[] = {"nope",         "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
                         "localhost:80", ":80",       "[::1:80"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        assert_int_equal(seed_webhook_new(loop, bad[i], on_event, NULL, &w, &err), -EINVAL);
        assert_non_null(strstr(err->msg, "webhook address"));
        seed_error_free(err);
        err = NULL;
    }
    /* The port in use: the bind's own error. */
    char taken[32];
    snprintf(taken, sizeof(taken), "127.0.0.1:%u", port);
    assert_int_equal(seed_webhook_new(loop, taken, on_event, NULL, &w, &err), -EADDRINUSE);
    seed_error_free(err);
    err = NULL;
    /* IPv6 where the loopback has it. */
    if (seed_webhook_new(loop, "[::1]:0", on_event, NULL, &w, &err) == 0) {
        assert_true(seed_webhook_port(w) > 0);
        seed_webhook_free(w);
    } else {
        seed_error_free(err);
    }
}

/* The pure parser, without HTTP. */
static void test_parse(void **state) {
    char hex[65], sig[80];
    const char *body = "{\"ref\":\"refs/tags/v1\",\"after\":\"" COMMIT "\"}";
    hmac_hex(SECRET, body, strlen(body), hex);
    snprintf(sig, sizeof(sig), "sha256=%s", hex);
    seed_webhook_request req = {.body = body, .len = strlen(body)};
    req.h[SEED_WEBHOOK_H_GITHUB_EVENT] = "push";
    req.h[SEED_WEBHOOK_H_GITHUB_SIGNATURE] = sig;
    req.h[SEED_WEBHOOK_H_CONTENT_TYPE] = "Application/JSON; charset=utf-8";
    seed_webhook_verdict v;
    assert_int_equal(seed_webhook_parse(&req, SECRET, "refs/tags/v1", &v), 0);
    assert_int_equal(v.kind, SEED_WEBHOOK_PUSH);
    assert_string_equal(v.ref, "refs/tags/v1");
    seed_webhook_verdict_clear(&v);
    /* A tag is not the branch of the same name. */
    assert_int_equal(seed_webhook_parse(&req, SECRET, "v1", &v), 0);
    assert_int_equal(v.kind, SEED_WEBHOOK_IGNORED);
    seed_webhook_verdict_clear(&v);
    /* No secret: refused before anything else. */
    assert_int_equal(seed_webhook_parse(&req, NULL, NULL, &v), 0);
    assert_int_equal(v.status, 403);
    seed_webhook_verdict_clear(&v);
    /* A delivery id that could not be shown or stored. */
    req.h[SEED_WEBHOOK_H_GITHUB_DELIVERY] = "a b";
    assert_int_equal(seed_webhook_parse(&req, SECRET, NULL, &v), 0);
    assert_int_equal(v.status, 400);
    seed_webhook_verdict_clear(&v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_github_push_and_redelivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_github_ping_other_ref_deletion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_methods_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gitea_forgejo_gitlab, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trickle_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_peer_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addresses, setup, teardown),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
