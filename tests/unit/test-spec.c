/* The spec: every option with its coercions and defaults, every error with its full
 * option path, instance files and roots confined to the project, and the identity
 * and generation hashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/hash.h"
#include "spec/meta.h"
#include "spec/spec.h"

/* ---- helpers ---- */

static seed_project *parse_in(int dirfd, const char *dir, const char *json, seed_diags *d) {
    seed_project *p = NULL;
    assert_int_equal(seed_project_parse(json, strlen(json), dirfd, dir, "test:uri", &p, d), 0);
    assert_non_null(p);
    return p;
}

static void dump_diags(const seed_diags *d) {
    for (size_t i = 0; i < d->n; i++)
        print_message("  %s: %s: %s\n", d->items[i].file ? d->items[i].file : "-", d->items[i].path,
                      d->items[i].message);
}

static seed_project *valid_in(int dirfd, const char *dir, const char *json) {
    seed_diags d = {0};
    seed_project *p = parse_in(dirfd, dir, json, &d);
    if (seed_diags_count(&d) > 0) {
        dump_diags(&d);
        fail_msg("unexpected errors for %s", json);
    }
    seed_diags_clear(&d);
    return p;
}

static seed_project *valid(const char *json) {
    return valid_in(-1, NULL, json);
}

/* Assert that json produces an error at exactly `path` whose message contains
 * `needle`. */
static void error_in(int dirfd, const char *dir, const char *json, const char *path, const char *needle) {
    seed_diags d = {0};
    seed_project *p = parse_in(dirfd, dir, json, &d);
    bool found = false;
    for (size_t i = 0; i < d.n && !found; i++)
        found = strcmp(d.items[i].path, path) == 0 && strstr(d.items[i].message, needle);
    if (!found) {
        dump_diags(&d);
        fail_msg("no error at \"%s\" containing \"%s\" for %s", path, needle, json);
    }
    seed_diags_clear(&d);
    seed_project_free(p);
}

static void error_at(const char *json, const char *path, const char *needle) {
    error_in(-1, NULL, json, path, needle);
}

static const seed_instance *inst(const seed_project *p, const char *name) {
    const seed_instance *i = seed_project_find(p, name);
    assert_non_null(i);
    return i;
}

/* ---- defaults and coercions ---- */

static void test_defaults(void **state) {
    seed_project *p = valid("{\"web\": {}}");
    const seed_instance *w = inst(p, "web");
    assert_int_equal(w->size, SEED_SIZE_S);
    assert_int_equal(w->vcpus, 1);
    assert_int_equal(w->memory_mib, 1024);
    assert_int_equal(w->rollout, SEED_ROLLOUT_RECREATE);
    assert_false(w->shoot_enable);
    assert_int_equal(w->root_kind, SEED_ROOT_HOST);
    assert_string_equal(w->root, "host");
    assert_non_null(w->system);
    assert_int_equal(w->n_expose + w->n_storage + w->n_connect + w->n_env + w->n_processes, 0);
    assert_null(w->toplevel);
    assert_int_equal(strlen(w->identity), 64);
    assert_string_equal(w->file, "seeds.json");
    seed_project_free(p);
}

static void test_size_tiers(void **state) {
    static const struct {
        const char *tier;
        unsigned cpu, mem;
    } t[] = {{"xs", 1, 512}, {"s", 1, 1024}, {"m", 2, 2048}, {"l", 4, 4096}, {"xl", 8, 8192}};
    for (size_t i = 0; i < 5; i++) {
        char json[64];
        snprintf(json, sizeof(json), "{\"a\": {\"size\": \"%s\"}}", t[i].tier);
        seed_project *p = valid(json);
        assert_int_equal(inst(p, "a")->vcpus, t[i].cpu);
        assert_int_equal(inst(p, "a")->memory_mib, t[i].mem);
        assert_string_equal(seed_size_tier_to_string(inst(p, "a")->size), t[i].tier);
        seed_project_free(p);
    }
}

static void test_expose_shorthand_and_explicit(void **state) {
    seed_project *p = valid("{\"a\": {\"expose\": {\"http\": 8080, \"dns\": {\"port\": 53, \"protocol\": "
                            "\"dns\"}, \"grpc\": {\"port\": 9090, \"protocol\": \"grpc\"}, \"raw\": "
                            "{\"port\": 7000}, \"u\": {\"port\": 7001, \"protocol\": \"udp\"}, \"t\": "
                            "{\"port\": 7002, \"protocol\": \"tcp\"}}}}");
    const seed_instance *a = inst(p, "a");
    assert_int_equal(a->n_expose, 6);
    /* sorted by name: dns grpc http raw t u */
    assert_string_equal(a->expose[0].name, "dns");
    assert_int_equal(a->expose[0].port, 53);
    assert_int_equal(a->expose[0].protocol, SEED_PROTO_DNS);
    assert_true(seed_protocol_uses_tcp(SEED_PROTO_DNS) && seed_protocol_uses_udp(SEED_PROTO_DNS));
    assert_int_equal(a->expose[1].protocol, SEED_PROTO_GRPC);
    assert_string_equal(a->expose[2].name, "http");
    assert_int_equal(a->expose[2].port, 8080);
    assert_int_equal(a->expose[2].protocol, SEED_PROTO_HTTP);
    assert_int_equal(a->expose[3].protocol, SEED_PROTO_HTTP); /* object without protocol */
    assert_int_equal(a->expose[4].protocol, SEED_PROTO_TCP);
    assert_int_equal(a->expose[5].protocol, SEED_PROTO_UDP);
    assert_false(seed_protocol_uses_tcp(SEED_PROTO_UDP));
    seed_project_free(p);
}

static void test_storage_shorthand_and_explicit(void **state) {
    seed_project *p = valid("{\"a\": {\"storage\": {\"data\": \"1Gi\", \"cache\": {\"size\": \"500Mi\", "
                            "\"mountPoint\": \"/tmp/cache/\"}, \"raw\": 10485760}}}");
    const seed_instance *a = inst(p, "a");
    assert_int_equal(a->n_storage, 3);
    assert_string_equal(a->storage[0].name, "cache");
    assert_string_equal(a->storage[0].mount_point, "/tmp/cache");
    assert_int_equal(a->storage[0].size_bytes, 500ull << 20);
    assert_string_equal(a->storage[0].size, "500Mi");
    assert_string_equal(a->storage[1].name, "data");
    assert_string_equal(a->storage[1].mount_point, "/seed/storage/data");
    assert_int_equal(a->storage[1].size_bytes, 1ull << 30);
    assert_string_equal(a->storage[2].size, "10485760");
    assert_int_equal(a->storage[2].size_bytes, 10485760);
    seed_project_free(p);
}

static void test_connect_shorthand_and_explicit(void **state) {
    seed_project *p = valid("{\"a\": {\"connect\": {\"redis\": \"my-redis\", \"db\": {\"service\": "
                            "\"postgres\", \"port\": 5432}, \"n\": {\"service\": \"x\", \"port\": null}}}}");
    const seed_instance *a = inst(p, "a");
    assert_int_equal(a->n_connect, 3);
    assert_string_equal(a->connect[0].name, "db");
    assert_string_equal(a->connect[0].service, "postgres");
    assert_int_equal(a->connect[0].port, 5432);
    assert_string_equal(a->connect[1].name, "n");
    assert_int_equal(a->connect[1].port, 0);
    assert_string_equal(a->connect[2].service, "my-redis");
    assert_int_equal(a->connect[2].port, 0);
    seed_project_free(p);
}

static void test_rollout_shoot_system(void **state) {
    seed_project *p =
        valid("{\"a\": {\"rollout\": \"rolling\", \"shoot\": {\"enable\": true, \"max\": 256}, "
              "\"system\": \"aarch64-linux\"}, \"b\": {\"shoot\": {}}, \"c\": {\"shoot\": {\"enable\": "
              "false}, \"rollout\": \"recreate\"}, \"d\": {}}");
    assert_int_equal(inst(p, "a")->rollout, SEED_ROLLOUT_ROLLING);
    assert_true(inst(p, "a")->shoot_enable);
    assert_int_equal(inst(p, "a")->shoot_max, 256);
    assert_int_equal(inst(p, "b")->shoot_max, SEED_SHOOT_DEFAULT_MAX);
    assert_int_equal(inst(p, "d")->shoot_max, 4);
    assert_string_equal(inst(p, "a")->system, "aarch64-linux");
    assert_false(inst(p, "b")->shoot_enable);
    assert_false(inst(p, "c")->shoot_enable);
    assert_int_equal(inst(p, "c")->rollout, SEED_ROLLOUT_RECREATE);
    seed_project_free(p);
}

static void test_health_and_rollout_timeout(void **state) {
    seed_project *p = valid(
        "{\"a\": {\"expose\": {\"http\": 8080, \"d\": {\"port\": 54, \"protocol\": \"dns\"}}, \"health\": "
        "{\"http\": \"/healthz?full=1\", \"port\": 8080}}, "
        "\"b\": {\"health\": {\"command\": [\"pg_isready\", \"-q\"], \"interval\": \"500ms\", \"timeout\": "
        "1, "
        "\"retries\": 100}, \"rolloutTimeout\": \"5m\"}, "
        "\"c\": {\"expose\": {\"d\": {\"port\": 53, \"protocol\": \"dns\"}}, \"health\": {\"http\": \"/\", "
        "\"port\": 53, \"interval\": 0.1, \"timeout\": \"5m\", \"retries\": 1}, \"rolloutTimeout\": 1.5}, "
        "\"d\": {\"health\": {\"command\": [\"true\"], \"interval\": \"1h\", \"timeout\": \"0.1s\"}, "
        "\"rolloutTimeout\": \"1h\"}, "
        "\"e\": {\"rolloutTimeout\": 1}}");
    const seed_health *h = inst(p, "a")->health;
    assert_non_null(h);
    assert_int_equal(h->kind, SEED_HEALTH_HTTP);
    assert_string_equal(h->http_path, "/healthz?full=1");
    assert_int_equal(h->port, 8080);
    assert_null(h->command);
    assert_int_equal(h->interval_ms, 5000); /* defaults */
    assert_int_equal(h->timeout_ms, 2000);
    assert_int_equal(h->retries, 3);
    assert_int_equal(inst(p, "a")->rollout_timeout_ms, 60000);

    h = inst(p, "b")->health;
    assert_int_equal(h->kind, SEED_HEALTH_COMMAND);
    assert_int_equal(h->n_command, 2);
    assert_string_equal(h->command[0], "pg_isready");
    assert_null(h->command[2]);
    assert_null(h->http_path);
    assert_int_equal(h->interval_ms, 500);
    assert_int_equal(h->timeout_ms, 1000); /* a plain number counts seconds */
    assert_int_equal(h->retries, 100);
    assert_int_equal(inst(p, "b")->rollout_timeout_ms, 300000);

    h = inst(p, "c")->health; /* dns carries TCP: its port can be checked; the bounds */
    assert_int_equal(h->port, 53);
    assert_int_equal(h->interval_ms, 100);
    assert_int_equal(h->timeout_ms, 300000);
    assert_int_equal(h->retries, 1);
    assert_int_equal(inst(p, "c")->rollout_timeout_ms, 1500);
    assert_int_equal(inst(p, "d")->health->interval_ms, 3600000);
    assert_int_equal(inst(p, "d")->health->timeout_ms, 100);
    assert_int_equal(inst(p, "d")->rollout_timeout_ms, 3600000);
    assert_null(inst(p, "e")->health);
    assert_int_equal(inst(p, "e")->rollout_timeout_ms, 1000);
    seed_project_free(p);
}

static void test_health_errors(void **state) {
    static const char *const cases[][3] = {
        {"{\"w\": {\"health\": \"/healthz\"}}", "w.health", "{\"http\": \"/healthz\", \"port\": 8080}"},
        {"{\"w\": {\"health\": {}}}", "w.health", "has no check: expected {\"http\""},
        {"{\"w\": {\"expose\": {\"h\": 80}, \"health\": {\"http\": \"/\", \"port\": 80, \"command\": "
         "[\"x\"]}}}",
         "w.health", "has both http and command"},
        {"{\"w\": {\"health\": {\"htp\": \"/\"}}}", "w.health.htp", "did you mean \"http\""},
        {"{\"w\": {\"expose\": {\"h\": 80}, \"health\": {\"http\": \"/\"}}}", "w.health.port",
         "missing: an http check needs the exposed port"},
        {"{\"w\": {\"expose\": {\"h\": 80, \"m\": {\"port\": 9, \"protocol\": \"tcp\"}}, \"health\": "
         "{\"http\": \"/\", \"port\": 81}}}",
         "w.health.port",
         "port 81 is not one of this instance's exposed TCP ports: expected one of 80 (h), 9 (m)"},
        {"{\"w\": {\"expose\": {\"u\": {\"port\": 81, \"protocol\": \"udp\"}}, \"health\": {\"http\": \"/\", "
         "\"port\": 81}}}",
         "w.health.port", "this instance exposes no TCP port"},
        {"{\"w\": {\"health\": {\"http\": \"/\", \"port\": 80}}}", "w.health.port", "exposes no TCP port"},
        {"{\"w\": {\"expose\": {\"h\": 80}, \"health\": {\"http\": \"/\", \"port\": 0}}}", "w.health.port",
         "expected an integer from 1 to 65535"},
        {"{\"w\": {\"expose\": {\"h\": 80}, \"health\": {\"http\": \"/\", \"port\": \"80\"}}}",
         "w.health.port", "found \"80\""},
        {"{\"w\": {\"expose\": {\"h\": 80}, \"health\": {\"http\": \"healthz\", \"port\": 80}}}",
         "w.health.http", "must start with '/'"},
        {"{\"w\": {\"expose\": {\"h\": 80}, \"health\": {\"http\": \"/a b\", \"port\": 80}}}",
         "w.health.http", "printable ASCII characters without spaces"},
        {"{\"w\": {\"expose\": {\"h\": 80}, \"health\": {\"http\": \"/\\r\\nX: y\", \"port\": 80}}}",
         "w.health.http", "printable ASCII"},
        {"{\"w\": {\"expose\": {\"h\": 80}, \"health\": {\"http\": \"/\\u00e9\", \"port\": 80}}}",
         "w.health.http", "printable ASCII"},
        {"{\"w\": {\"expose\": {\"h\": 80}, \"health\": {\"http\": 5, \"port\": 80}}}", "w.health.http",
         "expected a request path like \"/healthz\""},
        {"{\"w\": {\"health\": {\"command\": []}}}", "w.health.command", "a non-empty array of strings"},
        {"{\"w\": {\"health\": {\"command\": \"true\"}}}", "w.health.command",
         "a non-empty array of strings"},
        {"{\"w\": {\"health\": {\"command\": [\"x\", 1]}}}", "w.health.command[1]", "expected a string"},
        {"{\"w\": {\"health\": {\"command\": [\"\"]}}}", "w.health.command[0]", "must not be empty"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"port\": 80}}}", "w.health.port",
         "belongs to an http check"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"interval\": \"5\"}}}", "w.health.interval",
         "has no unit: expected ms, s, m or h"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"interval\": \"5sec\"}}}", "w.health.interval",
         "malformed duration \"5sec\": expected a number with a unit ms, s, m or h"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"interval\": \"99ms\"}}}", "w.health.interval",
         "health.interval \"99ms\" is out of range: expected from 100ms to 1h"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"interval\": 3601}}}", "w.health.interval",
         "health.interval 3601 seconds is out of range: expected from 100ms to 1h"},
        {"{\"w\": {\"rolloutTimeout\": 1e300}}", "w.rolloutTimeout",
         "is out of range: expected from 1s to 1h"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"interval\": -1}}}", "w.health.interval",
         "expected a duration like \"500ms\", \"5s\" or \"1m\", or a number of seconds, found -1"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"interval\": true}}}", "w.health.interval",
         "found true"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"timeout\": \"5m1ms\"}}}", "w.health.timeout",
         "malformed duration"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"timeout\": \"6m\"}}}", "w.health.timeout",
         "health.timeout \"6m\" is out of range: expected from 100ms to 5m"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"timeout\": 0}}}", "w.health.timeout", "out of range"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"retries\": 0}}}", "w.health.retries",
         "health.retries 0 is out of range: expected an integer from 1 to 100"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"retries\": 101}}}", "w.health.retries",
         "out of range"},
        {"{\"w\": {\"health\": {\"command\": [\"x\"], \"retries\": \"3\"}}}", "w.health.retries",
         "an integer from 1 to 100), found \"3\""},
        {"{\"w\": {\"rolloutTimeout\": \"999ms\"}}", "w.rolloutTimeout",
         "rolloutTimeout \"999ms\" is out of range: expected from 1s to 1h"},
        {"{\"w\": {\"rolloutTimeout\": \"61m\"}}", "w.rolloutTimeout", "out of range"},
        {"{\"w\": {\"rolloutTimeout\": \"\"}}", "w.rolloutTimeout", "malformed duration \"\""},
        {"{\"w\": {\"rolloutTimeout\": null}}", "w.rolloutTimeout", "found null"},
        {"{\"w\": {\"rolloutTimout\": \"1m\"}}", "w.rolloutTimout", "did you mean \"rolloutTimeout\""},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++)
        error_at(cases[i][0], cases[i][1], cases[i][2]);

    /* A refused path is 1024 bytes long at most. */
    char json[1200];
    int n = snprintf(json, sizeof(json),
                     "{\"w\": {\"expose\": {\"h\": 80}, \"health\": {\"port\": 80, \"http\": \"/");
    memset(json + n, 'a', 1023);
    strcpy(json + n + 1023, "\"}}}");
    seed_project *p = valid(json);
    assert_int_equal(strlen(inst(p, "w")->health->http_path), 1024);
    seed_project_free(p);
    json[n] = 'b';
    memmove(json + n + 1, json + n, strlen(json + n) + 1);
    error_at(json, "w.health.http", "is longer than 1024 bytes");

    /* A broken expose is reported once, not again at health.port. */
    seed_diags d = {0};
    p = parse_in(-1, NULL,
                 "{\"w\": {\"expose\": {\"h\": 70000}, \"health\": {\"http\": \"/\", \"port\": 80}}}", &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.items[0].path, "w.expose.h.port");
    seed_diags_clear(&d);
    seed_project_free(p);
}

static void test_durations(void **state) {
    static const struct {
        const char *s;
        uint64_t ms;
    } ok[] = {{"0ms", 0},    {"500ms", 500}, {"5s", 5000},     {"1.5s", 1500},
              {"0.1s", 100}, {"1m", 60000},  {"1.25m", 75000}, {"2h", 7200000},
              {".5s", 500},  {"007s", 7000}, {"1.000s", 1000}, {"999999999999h", 999999999999ull * 3600000}};
    for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
        uint64_t ms = 1;
        char *msg = NULL;
        if (seed_parse_duration(ok[i].s, &ms, &msg) != 0 || ms != ok[i].ms)
            fail_msg("\"%s\": got %llu (%s), want %llu", ok[i].s, (unsigned long long)ms, msg ? msg : "",
                     (unsigned long long)ok[i].ms);
    }
    static const char *const bad[][2] = {
        {"", "malformed"},
        {"s", "malformed"},
        {"5", "has no unit"},
        {"5.s", "malformed"},
        {"-5s", "malformed"},
        {"5 s", "malformed"},
        {"5S", "malformed"},
        {"1d", "malformed"},
        {"1.5ms", "finer than a millisecond"},
        {"0.0001s", "finer"},
        {"1e3s", "malformed"},
        {"1s500ms", "malformed"},
        {"9999999999999h", "too many digits"},
        {"1.0000000001s", "too many digits"},
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        uint64_t ms = 0;
        char *msg = NULL;
        if (seed_parse_duration(bad[i][0], &ms, &msg) >= 0)
            fail_msg("\"%s\" accepted as %llu ms", bad[i][0], (unsigned long long)ms);
        assert_non_null(msg);
        if (!strstr(msg, bad[i][1]))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", bad[i][0], msg, bad[i][1]);
        free(msg);
    }
    static const struct {
        uint64_t ms;
        const char *s;
    } fmt[] = {{0, "0ms"},     {100, "100ms"}, {1500, "1500ms"}, {5000, "5s"},
               {90000, "90s"}, {300000, "5m"}, {3600000, "1h"}};
    for (size_t i = 0; i < ELEMENTSOF(fmt); i++) {
        char buf[32];
        seed_format_duration(fmt[i].ms, buf, sizeof(buf));
        assert_string_equal(buf, fmt[i].s);
    }
}

static void test_payload(void **state) {
    seed_project *p = valid(
        "{\"a\": {\"env\": {\"GREETING\": \"hi\", \"EMPTY\": \"\"}, \"processes\": {\"web\": {\"command\": "
        "[\"busybox\", \"httpd\", \"-f\"], \"env\": {\"X\": \"1\"}, \"cwd\": \"/srv\", \"user\": "
        "\"www-data\", \"restart\": \"on-failure\"}, \"job\": {\"command\": [\"true\"], \"restart\": "
        "\"no\"}, \"d\": {\"command\": [\"sleep\", \"1\"]}}}}");
    const seed_instance *a = inst(p, "a");
    assert_int_equal(a->n_env, 2);
    assert_string_equal(a->env[0].key, "EMPTY");
    assert_string_equal(a->env[1].value, "hi");
    assert_int_equal(a->n_processes, 3);
    assert_string_equal(a->processes[0].name, "d");
    assert_int_equal(a->processes[0].restart, SEED_RESTART_ALWAYS); /* default */
    assert_null(a->processes[0].cwd);
    assert_null(a->processes[0].user);
    assert_string_equal(a->processes[1].name, "job");
    assert_int_equal(a->processes[1].restart, SEED_RESTART_NO);
    const seed_process *w = &a->processes[2];
    assert_int_equal(w->n_command, 3);
    assert_string_equal(w->command[2], "-f");
    assert_null(w->command[3]);
    assert_string_equal(w->cwd, "/srv");
    assert_string_equal(w->user, "www-data");
    assert_int_equal(w->restart, SEED_RESTART_ON_FAILURE);
    assert_string_equal(w->env[0].key, "X");
    seed_project_free(p);
}

static void test_toplevel(void **state) {
    seed_project *p = valid("{\"n\": {\"toplevel\": "
                            "\"/nix/store/0c0xq4k0ar6sp5b5w4c8xw1jq6ddgzx4-nixos-system-n-24.05\"}}");
    assert_int_equal(inst(p, "n")->root_kind, SEED_ROOT_NONE);
    assert_null(inst(p, "n")->root);
    seed_project_free(p);
    error_at("{\"n\": {\"toplevel\": \"/usr/bin\"}}", "n.toplevel", "Nix store path");
    error_at("{\"n\": {\"toplevel\": \"/nix/store/0c0xq4k0ar6sp5b5w4c8xw1jq6ddgzx4-x\", \"root\": \"host\"}}",
             "n.root", "exclude");
    error_at("{\"n\": {\"toplevel\": \"/nix/store/0c0xq4k0ar6sp5b5w4c8xw1jq6ddgzx4-x\", \"processes\": {}}}",
             "n.processes", "exclude");
}

/* users (ours): accounts with defaults; processes.<n>.foreground: at most one, never
 * restarted; both in the meta, and in the identity only when used. */
static void test_users_and_foreground(void **state) {
    seed_project *p = valid(
        "{\"a\": {\"users\": {\"app\": {\"uid\": 1000}, \"bob\": {\"uid\": 1001, \"gid\": 100, \"shell\": "
        "\"/bin/bash\", \"home\": \"/srv/bob\"}}, \"processes\": {\"main\": {\"command\": [\"sh\"], "
        "\"user\": "
        "\"app\", \"foreground\": true}, \"d\": {\"command\": [\"x\"], \"user\": \"bob:app\"}, \"e\": "
        "{\"command\": [\"x\"], \"user\": \"4321\"}}}}");
    const seed_instance *a = inst(p, "a");
    assert_int_equal(a->n_users, 2);
    assert_string_equal(a->users[0].name, "app");
    assert_int_equal(a->users[0].uid, 1000);
    assert_int_equal(a->users[0].gid, 1000); /* default: the uid */
    assert_string_equal(a->users[0].shell, "/bin/sh");
    assert_string_equal(a->users[0].home, "/home/app");
    assert_int_equal(a->users[1].gid, 100);
    assert_string_equal(a->users[1].home, "/srv/bob");
    const seed_process *m = &a->processes[2];
    assert_string_equal(m->name, "main");
    assert_true(m->foreground);
    assert_int_equal(m->restart, SEED_RESTART_NO);
    assert_false(a->processes[0].foreground);
    json_t *meta = seed_project_meta(p);
    json_t *w = json_object_get(meta, "a");
    json_t *bob = json_object_get(json_object_get(w, "users"), "bob");
    assert_string_equal(json_string_value(json_object_get(bob, "shell")), "/bin/bash");
    assert_int_equal(json_integer_value(json_object_get(bob, "gid")), 100);
    json_t *procs = json_object_get(w, "processes");
    assert_true(json_is_true(json_object_get(json_object_get(procs, "main"), "foreground")));
    assert_true(json_is_false(json_object_get(json_object_get(procs, "d"), "foreground")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(procs, "main"), "restart")), "no");
    json_decref(meta);
    seed_project_free(p);

    error_at("{\"a\": {\"users\": {\"app\": {\"uid\": 1}}, \"processes\": {\"main\": {\"command\": [\"x\"], "
             "\"user\": \"ghost\"}}}}",
             "a.processes.main.user", "unknown user \"ghost\"");
    error_at("{\"a\": {\"users\": {\"app\": {\"uid\": 1}}, \"processes\": {\"main\": {\"command\": [\"x\"], "
             "\"user\": \"ghost:app\"}}}}",
             "a.processes.main.user", "one of this instance's users (app)");
    error_at(
        "{\"a\": {\"processes\": {\"m\": {\"command\": [\"x\"], \"foreground\": true}, \"n\": {\"command\": "
        "[\"x\"], \"foreground\": true}}}}",
        "a.processes.n.foreground", "only one");
    error_at("{\"a\": {\"processes\": {\"m\": {\"command\": [\"x\"], \"foreground\": 1}}}}",
             "a.processes.m.foreground", "true or false");
    error_at("{\"a\": {\"processes\": {\"m\": {\"command\": [\"x\"], \"foreground\": true, \"restart\": "
             "\"always\"}}}}",
             "a.processes.m.restart", "not restarted");
    error_at("{\"a\": {\"users\": {\"root\": {\"uid\": 5}}}}", "a.users.root", "root always exists");
    error_at("{\"a\": {\"users\": {\"App\": {\"uid\": 5}}}}", "a.users.App", "lower-case");
    error_at("{\"a\": {\"users\": {\"1000\": {\"uid\": 5}}}}", "a.users.1000", "user name");
    error_at("{\"a\": {\"users\": {\"app\": {}}}}", "a.users.app.uid", "missing");
    error_at("{\"a\": {\"users\": {\"app\": {\"uid\": 0}}}}", "a.users.app.uid", "from 1 to 4294967294");
    error_at("{\"a\": {\"users\": {\"app\": {\"uid\": \"1000\"}}}}", "a.users.app.uid", "an integer");
    error_at("{\"a\": {\"users\": {\"app\": {\"uid\": 5, \"gid\": -1}}}}", "a.users.app.gid", "from 0");
    error_at("{\"a\": {\"users\": {\"app\": {\"uid\": 5, \"home\": \"rel\"}}}}", "a.users.app.home",
             "absolute");
    error_at("{\"a\": {\"users\": {\"app\": {\"uid\": 5, \"shell\": \"/a:b\"}}}}", "a.users.app.shell",
             "':'");
    error_at("{\"a\": {\"users\": {\"app\": {\"uid\": 5, \"group\": 1}}}}", "a.users.app.group",
             "unknown option");
    error_at("{\"a\": {\"users\": {\"app\": {\"uid\": 5}, \"bob\": {\"uid\": 5}}}}", "a.users.bob.uid",
             "user \"app\"'s already");
    error_at("{\"a\": {\"users\": [\"app\"]}}", "a.users", "an object");
}

static void test_name_key(void **state) {
    seed_project *p = valid("{\"web\": {\"name\": \"web\"}}");
    seed_project_free(p);
    error_at("{\"web\": {\"name\": \"api\"}}", "web.name", "\"web\"");
}

static void test_meta_json_shape(void **state) {
    seed_project *p =
        valid("{\"web\": {\"expose\": {\"http\": 8080}, \"storage\": {\"data\": \"1.5Gi\"}, \"connect\": "
              "{\"db\": \"seed-db\"}}}");
    json_t *m = seed_project_meta(p);
    assert_non_null(m);
    json_t *w = json_object_get(m, "web");
    assert_string_equal(json_string_value(json_object_get(w, "name")), "web");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(w, "resources"), "memory")), 1024);
    json_t *http = json_object_get(json_object_get(w, "expose"), "http");
    assert_int_equal(json_integer_value(json_object_get(http, "port")), 8080);
    assert_string_equal(json_string_value(json_object_get(http, "protocol")), "http");
    json_t *data = json_object_get(json_object_get(w, "storage"), "data");
    assert_int_equal(json_integer_value(json_object_get(data, "sizeBytes")), 1610612736);
    assert_string_equal(json_string_value(json_object_get(data, "mountPoint")), "/seed/storage/data");
    json_t *db = json_object_get(json_object_get(w, "connect"), "db");
    assert_true(json_is_null(json_object_get(db, "port")));
    assert_string_equal(json_string_value(json_object_get(w, "namespace")), p->namespace);
    assert_string_equal(json_string_value(json_object_get(w, "identity")), inst(p, "web")->identity);
    assert_string_equal(json_string_value(json_object_get(w, "rollout")), "recreate");
    assert_false(json_is_true(json_object_get(json_object_get(w, "shoot"), "enable")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(w, "shoot"), "max")), 4);
    assert_int_equal(json_integer_value(json_object_get(w, "rolloutTimeoutMs")), 60000);
    assert_true(json_is_null(json_object_get(w, "health")));
    static const char *const fields[] = {
        "name",    "system",           "size",     "resources", "expose",    "storage",  "connect",
        "rollout", "rolloutTimeoutMs", "health",   "shoot",     "namespace", "identity", "root",
        "env",     "processes",        "toplevel", "users",     "nix",       "boot"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (!json_object_get(w, fields[i]))
            fail_msg("meta lacks %s", fields[i]);
    assert_int_equal(json_object_size(w), sizeof(fields) / sizeof(fields[0]));
    json_decref(m);
    seed_project_free(p);
}

static void test_boot_required(void **state) {
    seed_project *p = valid("{\"n\": {\"boot\": {\"required\": [\"ssh\", \"gpu\"]}}, \"o\": {}}");
    const seed_instance *n = inst(p, "n");
    assert_int_equal(n->n_boot_required, 2);
    assert_string_equal(n->boot_required[0], "ssh");
    assert_string_equal(n->boot_required[1], "gpu");
    /* in the identity only when used */
    assert_string_not_equal(n->identity, inst(p, "o")->identity);
    seed_project_free(p);
    error_at("{\"n\": {\"boot\": {\"required\": [\"gpx\"]}}}", "n.boot.required[0]", "did you mean \"gpu\"");
    error_at("{\"n\": {\"boot\": {\"required\": [\"ssh\", \"ssh\"]}}}", "n.boot.required[1]", "listed twice");
    error_at("{\"n\": {\"boot\": {\"required\": \"ssh\"}}}", "n.boot.required", "a list of boot tasks");
    error_at("{\"n\": {\"boot\": {\"optional\": []}}}", "n.boot.optional", "unknown option");
}

static void test_nix_option(void **state) {
    seed_project *p =
        valid("{\"n\": {\"storage\": {\"b\": \"1Gi\", \"a\": \"1Gi\"}, \"nix\": {\"enable\": true, "
              "\"daemon\": true, \"minFree\": \"1Gi\", \"maxFree\": \"2Gi\"}}, \"o\": {}}");
    const seed_instance *n = inst(p, "n");
    assert_true(n->nix_enable && n->nix_daemon);
    assert_string_equal(n->nix_volume, "a"); /* the first by name */
    assert_int_equal(n->nix_min_free_bytes, 1ull << 30);
    assert_int_equal(n->nix_max_free_bytes, 2ull << 30);
    assert_false(inst(p, "o")->nix_enable);
    seed_project_free(p);
    error_at("{\"n\": {\"nix\": {\"enable\": true}}}", "n.nix.enable", "this instance has none");
    error_at("{\"n\": {\"storage\": {\"a\": \"1Gi\"}, \"nix\": {\"enable\": true, \"volume\": \"b\"}}}",
             "n.nix.volume", "unknown volume \"b\"");
    error_at("{\"n\": {\"storage\": {\"a\": \"1Gi\"}, \"nix\": {\"enable\": 1}}}", "n.nix.enable",
             "true or false");
    error_at("{\"n\": {\"storage\": {\"a\": \"1Gi\"}, \"nix\": {\"enable\": true, \"minFree\": \"2Gi\", "
             "\"maxFree\": \"1Gi\"}}}",
             "n.nix.maxFree", "below minFree");
    error_at("{\"n\": {\"nix\": {\"sandbox\": true}}}", "n.nix.sandbox", "unknown option");
    error_at("{\"n\": {\"nix\": true}}", "n.nix", "an object");
}

static void test_meta_health(void **state) {
    seed_project *p =
        valid("{\"a\": {\"expose\": {\"http\": 8080}, \"health\": {\"http\": \"/healthz\", "
              "\"port\": 8080}}, \"b\": {\"health\": {\"command\": [\"check\", \"-q\"], \"interval\": "
              "\"1.5s\", \"timeout\": 1, \"retries\": 5}, \"rolloutTimeout\": \"2m\"}}");
    json_t *m = seed_project_meta(p);
    assert_non_null(m);
    json_t *want_a = json_pack("{s:s, s:i, s:i, s:i, s:i}", "http", "/healthz", "port", 8080, "intervalMs",
                               5000, "timeoutMs", 2000, "retries", 3);
    json_t *want_b = json_pack("{s:[s,s], s:i, s:i, s:i}", "command", "check", "-q", "intervalMs", 1500,
                               "timeoutMs", 1000, "retries", 5);
    assert_true(json_equal(json_object_get(json_object_get(m, "a"), "health"), want_a));
    assert_true(json_equal(json_object_get(json_object_get(m, "b"), "health"), want_b));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "b"), "rolloutTimeoutMs")),
                     120000);
    json_decref(want_a);
    json_decref(want_b);
    json_decref(m);
    seed_project_free(p);
}

/* ---- errors ---- */

static void test_unknown_keys_suggest(void **state) {
    error_at("{\"web\": {\"sise\": \"s\"}}", "web.sise", "did you mean \"size\"");
    error_at("{\"web\": {\"exposee\": {}}}", "web.exposee", "did you mean \"expose\"");
    error_at("{\"web\": {\"zzzzzzz\": 1}}", "web.zzzzzzz", "unknown option (expected one of");
    error_at("{\"web\": {\"expose\": {\"h\": {\"port\": 1, \"proto\": \"tcp\"}}}}", "web.expose.h.proto",
             "did you mean \"protocol\"");
    error_at("{\"web\": {\"storage\": {\"d\": {\"size\": \"1Gi\", \"mountpoint\": \"/x\"}}}}",
             "web.storage.d.mountpoint", "did you mean \"mountPoint\"");
    error_at("{\"web\": {\"connect\": {\"d\": {\"service\": \"x\", \"prot\": 1}}}}", "web.connect.d.prot",
             "did you mean \"port\"");
    error_at("{\"web\": {\"shoot\": {\"enabled\": true}}}", "web.shoot.enabled", "did you mean \"enable\"");
    error_at("{\"web\": {\"processes\": {\"p\": {\"command\": [\"x\"], \"restrat\": \"no\"}}}}",
             "web.processes.p.restrat", "did you mean \"restart\"");
}

static void test_wrong_types(void **state) {
    error_at("[]", "", "expected an object mapping instance names");
    error_at("{\"web\": 5}", "web", "expected an instance object or the path");
    error_at("{\"web\": {\"size\": 1}}", "web.size", "found 1");
    error_at("{\"web\": {\"expose\": []}}", "web.expose", "expected an object");
    error_at("{\"web\": {\"expose\": {\"h\": \"8080\"}}}", "web.expose.h", "found \"8080\"");
    error_at("{\"web\": {\"expose\": {\"h\": 80.5}}}", "web.expose.h", "found 80.5");
    error_at("{\"web\": {\"expose\": {\"h\": {\"port\": 80, \"protocol\": 6}}}}", "web.expose.h.protocol",
             "found 6");
    error_at("{\"web\": {\"storage\": {\"d\": true}}}", "web.storage.d", "found true");
    error_at("{\"web\": {\"storage\": {\"d\": {\"size\": \"1Gi\", \"mountPoint\": 5}}}}",
             "web.storage.d.mountPoint", "expected an absolute path");
    error_at("{\"web\": {\"connect\": {\"d\": 5}}}", "web.connect.d", "found 5");
    error_at("{\"web\": {\"connect\": {\"d\": {\"service\": 5}}}}", "web.connect.d.service", "found 5");
    error_at("{\"web\": {\"rollout\": null}}", "web.rollout", "found null");
    error_at("{\"web\": {\"shoot\": true}}", "web.shoot", "{\"enable\": true, \"max\": 4}");
    error_at("{\"web\": {\"shoot\": {\"enable\": 1}}}", "web.shoot.enable", "true or false");
    error_at("{\"web\": {\"shoot\": {\"max\": 0}}}", "web.shoot.max",
             "shoot.max 0 is out of range: expected an integer from 1 to 256");
    error_at("{\"web\": {\"shoot\": {\"max\": 257}}}", "web.shoot.max", "from 1 to 256");
    error_at("{\"web\": {\"shoot\": {\"max\": \"4\"}}}", "web.shoot.max", "found \"4\"");
    error_at("{\"web\": {\"shoot\": {\"max\": 2.5}}}", "web.shoot.max", "an integer from 1 to 256");
    error_at("{\"web\": {\"shoot\": {\"maxx\": 2}}}", "web.shoot.maxx", "did you mean \"max\"");
    error_at("{\"web\": {\"env\": {\"A\": 1}}}", "web.env.A", "expected a string, found 1");
    error_at("{\"web\": {\"env\": []}}", "web.env", "expected an object");
    error_at("{\"web\": {\"root\": 1}}", "web.root", "\"host\" or a path");
    error_at("{\"web\": {\"processes\": {\"p\": []}}}", "web.processes.p", "expected an object");
    error_at("{\"web\": {\"processes\": {\"p\": {\"command\": \"ls\"}}}}", "web.processes.p.command",
             "array of strings");
    error_at("{\"web\": {\"processes\": {\"p\": {\"command\": []}}}}", "web.processes.p.command",
             "empty array");
    error_at("{\"web\": {\"processes\": {\"p\": {\"command\": [\"ls\", 1]}}}}", "web.processes.p.command[1]",
             "expected a string");
    /* A bad first element before good ones (a leak the fuzzer found). */
    error_at("{\"web\": {\"processes\": {\"p\": {\"command\": [true, \"x\", \"y\"]}}}}",
             "web.processes.p.command[0]", "expected a string");
    error_at("{\"web\": {\"processes\": {\"p\": {\"command\": [\"\"]}}}}", "web.processes.p.command[0]",
             "must not be empty");
    error_at("{\"web\": {\"processes\": {\"p\": {}}}}", "web.processes.p.command", "missing");
    error_at("{\"web\": {\"processes\": {\"p\": {\"command\": [\"x\"], \"cwd\": \"rel\"}}}}",
             "web.processes.p.cwd", "absolute");
    error_at("{\"web\": {\"processes\": {\"p\": {\"command\": [\"x\"], \"user\": \"Bad User\"}}}}",
             "web.processes.p.user", "user name or uid");
    error_at("{\"web\": {\"processes\": {\"p\": {\"command\": [\"x\"], \"env\": {\"SEED_X\": \"1\"}}}}}",
             "web.processes.p.env.SEED_X", "reserved");
    error_at("{\"web\": {\"system\": \"x86_64-darwin\"}}", "web.system", "unknown system");
}

static void test_ports(void **state) {
    error_at("{\"web\": {\"expose\": {\"http\": 70000}}}", "web.expose.http.port", "out of range");
    error_at("{\"web\": {\"expose\": {\"http\": 0}}}", "web.expose.http.port", "out of range");
    error_at("{\"web\": {\"expose\": {\"http\": -1}}}", "web.expose.http.port", "out of range");
    error_at("{\"web\": {\"expose\": {\"http\": {\"port\": 65536}}}}", "web.expose.http.port",
             "out of range");
    error_at("{\"web\": {\"expose\": {\"http\": {\"protocol\": \"tcp\"}}}}", "web.expose.http.port",
             "missing");
    error_at("{\"web\": {\"connect\": {\"db\": {\"service\": \"x\", \"port\": 99999}}}}",
             "web.connect.db.port", "out of range");
    seed_project *p = valid("{\"web\": {\"expose\": {\"a\": 1, \"b\": 65535}}}");
    seed_project_free(p);
}

static void test_unknown_enums(void **state) {
    error_at("{\"web\": {\"size\": \"xxl\"}}", "web.size", "unknown size tier \"xxl\"; did you mean \"xl\"");
    error_at("{\"web\": {\"size\": \"S\"}}", "web.size", "did you mean \"s\"");
    error_at("{\"web\": {\"expose\": {\"h\": {\"port\": 1, \"protocol\": \"htp\"}}}}",
             "web.expose.h.protocol", "unknown protocol \"htp\"; did you mean \"http\"");
    error_at("{\"web\": {\"expose\": {\"h\": {\"port\": 1, \"protocol\": \"quic\"}}}}",
             "web.expose.h.protocol", "expected one of: tcp, udp, dns, http, grpc");
    error_at("{\"web\": {\"rollout\": \"blue-green\"}}", "web.rollout", "expected one of: recreate, rolling");
    error_at("{\"web\": {\"processes\": {\"p\": {\"command\": [\"x\"], \"restart\": \"sometimes\"}}}}",
             "web.processes.p.restart", "expected one of: always, on-failure, no");
}

static void test_storage_sizes(void **state) {
    error_at("{\"web\": {\"storage\": {\"d\": \"0\"}}}", "web.storage.d.size", "zero");
    error_at("{\"web\": {\"storage\": {\"d\": \"-1Gi\"}}}", "web.storage.d.size", "negative");
    error_at("{\"web\": {\"storage\": {\"d\": 0}}}", "web.storage.d.size", "zero");
    error_at("{\"web\": {\"storage\": {\"d\": \"1GB\"}}}", "web.storage.d.size", "malformed");
    error_at("{\"web\": {\"storage\": {\"d\": \"lots\"}}}", "web.storage.d.size", "malformed");
    error_at("{\"web\": {\"storage\": {\"d\": \"100Ki\"}}}", "web.storage.d.size", "at least 1Mi");
    error_at("{\"web\": {\"storage\": {\"d\": {\"size\": \"9Ei\"}}}}", "web.storage.d.size", "too large");
    error_at("{\"web\": {\"storage\": {\"d\": \"1Pi\"}}}", "web.storage.d.size", "at most 16Ti");
    error_at("{\"web\": {\"storage\": {\"d\": \"17592186044417\"}}}", "web.storage.d.size", "at most 16Ti");
    seed_project_free(valid("{\"web\": {\"storage\": {\"d\": \"16Ti\"}}}"));
    error_at("{\"web\": {\"storage\": {\"d\": {\"mountPoint\": \"/x\"}}}}", "web.storage.d.size", "missing");
}

static void test_mount_points(void **state) {
    error_at("{\"web\": {\"storage\": {\"d\": {\"size\": \"1Gi\", \"mountPoint\": \"data\"}}}}",
             "web.storage.d.mountPoint", "absolute");
    error_at("{\"web\": {\"storage\": {\"d\": {\"size\": \"1Gi\", \"mountPoint\": \"/a/../etc\"}}}}",
             "web.storage.d.mountPoint", "\"..\"");
    /* Mount points the sandbox owns, and files the node writes into every instance. */
    static const char *const refused[][2] = {
        {"/", "reserved"},
        {"/proc", "reserved"},
        {"/sys", "reserved"},
        {"/dev", "reserved"},
        {"/proc/1", "reserved"},
        {"/dev/shm", "reserved"},
        {"/etc/seed/connect", "reserved"},
        {"/run/seed/env", "reserved"},
        {"/seed/bin", "reserved"},
        {"/etc/hosts", "a file the node writes"},
        {"/etc/hostname/x", "a file the node writes"},
        {"/etc/resolv.conf", "a file the node writes"},
        {"/etc/passwd", "a file the node writes"},
        {"/etc/group", "a file the node writes"},
        {"/etc/nsswitch.conf", "a file the node writes"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char json[160];
        snprintf(json, sizeof(json),
                 "{\"web\": {\"storage\": {\"d\": {\"size\": \"1Gi\", \"mountPoint\": \"%s\"}}}}",
                 refused[i][0]);
        error_at(json, "web.storage.d.mountPoint", refused[i][1]);
    }
    error_at("{\"web\": {\"storage\": {\"a\": {\"size\": \"1Gi\", \"mountPoint\": \"/data\"}, \"b\": "
             "{\"size\": \"1Gi\", \"mountPoint\": \"/data/\"}}}}",
             "web.storage.b.mountPoint", "already used by volume \"a\"");
    error_at("{\"web\": {\"storage\": {\"a\": \"1Gi\", \"b\": {\"size\": \"1Gi\", \"mountPoint\": "
             "\"/seed/storage/a\"}}}}",
             "web.storage.b.mountPoint", "already used by volume \"a\"");
}

static void test_host_port_clashes(void **state) {
    error_at("{\"api\": {\"expose\": {\"h\": 8080}}, \"web\": {\"expose\": {\"http\": 8080}}}",
             "web.expose.http.port", "already exposed by api.expose.h");
    error_at("{\"web\": {\"expose\": {\"a\": 8080, \"b\": {\"port\": 8080, \"protocol\": \"tcp\"}}}}",
             "web.expose.b.port", "already exposed by web.expose.a");
    error_at("{\"a\": {\"expose\": {\"d\": {\"port\": 53, \"protocol\": \"dns\"}}}, \"b\": {\"expose\": "
             "{\"u\": {\"port\": 53, \"protocol\": \"udp\"}}}}",
             "b.expose.u.port", "53/udp");
    /* TCP and UDP on one port number do not clash. */
    seed_project *p = valid("{\"a\": {\"expose\": {\"t\": {\"port\": 53, \"protocol\": \"tcp\"}}}, \"b\": "
                            "{\"expose\": {\"u\": {\"port\": 53, \"protocol\": \"udp\"}}}}");
    seed_project_free(p);
}

static void test_instance_names(void **state) {
    error_at("{\"Web\": {}}", "Web", "lower-case");
    error_at("{\"web_1\": {}}", "web_1", "DNS label");
    error_at("{\"-web\": {}}", "-web", "start and end");
    error_at("{\"\": {}}", "\"\"", "empty");
    error_at("{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": {}}",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "seed-<name>");
    seed_project *p = valid("{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": {}}");
    seed_project_free(p);
    error_at("{\"web\": {\"storage\": {\"My_Data\": \"1Gi\"}}}", "web.storage.My_Data", "volume name");
    error_at("{\"web\": {\"expose\": {\"HTTP\": 80}}}", "web.expose.HTTP", "port name");
    error_at("{\"web\": {\"connect\": {\"1db\": \"x\"}}}", "web.connect.1db", "start with a letter");
    error_at("{\"web\": {\"connect\": {\"a-b\": \"x\", \"a_b\": \"y\"}}}", "web.connect.a_b",
             "SEED_A_B_HOST");
    error_at("{\"web\": {\"connect\": {\"d\": \"bad host\"}}}", "web.connect.d.service", "DNS name");
    error_at("{\"web\": {\"processes\": {\"-p\": {\"command\": [\"x\"]}}}}", "web.processes.-p",
             "process name");
}

static void test_json_level_errors(void **state) {
    error_at("{\"web\": {}, \"web\": {}}", "", "duplicate object key");
    error_at("{\"web\": {\"size\": \"s\", \"size\": \"m\"}}", "", "duplicate object key");
    error_at("{\"web\": {\"env\": {\"A\": \"\xff\"}}}", "", "invalid JSON");
    error_at("{\"web\": {\"env\": {\"A\": \"\\u0000\"}}}", "", "invalid JSON");
    error_at("{\"web\": ", "", "line 1");
    error_at("", "", "invalid JSON");
    error_at("{} trailing", "", "invalid JSON");
}

static void test_deep_nesting_is_bounded(void **state) {
    size_t depth = 100000;
    char *s = malloc(2 * depth + 16);
    size_t o = 0;
    o += (size_t)sprintf(s, "{\"a\":");
    for (size_t i = 0; i < depth; i++)
        s[o++] = '[';
    for (size_t i = 0; i < depth; i++)
        s[o++] = ']';
    s[o++] = '}';
    s[o] = 0;
    error_at(s, "", "invalid JSON");
    free(s);
}

static void test_all_errors_in_one_run(void **state) {
    const char *json = "{\"a\": {\"size\": \"q\", \"rollout\": \"q\"}, \"b\": {\"expose\": {\"x\": 0}}, "
                       "\"C\": {}, \"d\": {\"storage\": {\"v\": \"0\"}}}";
    seed_diags d = {0};
    seed_project *p = parse_in(-1, NULL, json, &d);
    assert_int_equal(seed_diags_count(&d), 5);
    /* sorted by path */
    assert_string_equal(d.items[0].path, "C");
    assert_string_equal(d.items[1].path, "a.rollout");
    assert_string_equal(d.items[2].path, "a.size");
    assert_string_equal(d.items[3].path, "b.expose.x.port");
    assert_string_equal(d.items[4].path, "d.storage.v.size");
    seed_diags_clear(&d);
    seed_project_free(p);
}

static void test_too_many_instances(void **state) {
    size_t n = SEED_SPEC_MAX_INSTANCES + 1;
    char *s = malloc(n * 16 + 4);
    size_t o = 0;
    s[o++] = '{';
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(s + o, "%s\"i%zu\":{}", i ? "," : "", i);
    s[o++] = '}';
    s[o] = 0;
    error_at(s, "", "at most 10000");
    free(s);
}

/* ---- files ---- */

typedef struct tmpdir {
    char path[64];
    int fd;
} tmpdir;

static void write_file(tmpdir *t, const char *rel, const char *content, mode_t mode) {
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", t->path, rel);
    char *slash = strrchr(p, '/');
    *slash = 0;
    assert_int_equal(seed_mkdir_p(p, 0755), 0);
    *slash = '/';
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    fchmod(fd, mode);
    close(fd);
}

static int setup_tmp(void **state) {
    tmpdir *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    strcpy(t->path, "/tmp/seed-test-spec.XXXXXX");
    assert_non_null(mkdtemp(t->path));
    char proj[128];
    snprintf(proj, sizeof(proj), "%s/proj", t->path);
    assert_int_equal(mkdir(proj, 0755), 0);
    strcat(t->path, "/proj");
    t->fd = open(t->path, O_RDONLY | O_DIRECTORY);
    assert_true(t->fd >= 0);
    *state = t;
    return 0;
}

static int teardown_tmp(void **state) {
    tmpdir *t = *state;
    close(t->fd);
    char cmd[160];
    t->path[strlen(t->path) - strlen("/proj")] = 0;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->path);
    assert_int_equal(system(cmd), 0);
    free(t);
    return 0;
}

static void test_instance_files(void **state) {
    tmpdir *t = *state;
    write_file(t, "db.json", "{\"size\": \"m\"}", 0644);
    write_file(t, "sub/api.json", "{\"size\": \"l\"}", 0644);
    seed_project *p = valid_in(t->fd, t->path, "{\"db\": \"db.json\", \"api\": \"sub/api.json\"}");
    assert_int_equal(inst(p, "db")->size, SEED_SIZE_M);
    assert_string_equal(inst(p, "db")->file, "db.json");
    assert_int_equal(inst(p, "api")->size, SEED_SIZE_L);
    seed_project_free(p);
}

static void test_instance_file_errors(void **state) {
    tmpdir *t = *state;
    write_file(t, "../outside.json", "{}", 0644);
    write_file(t, "broken.json", "{\"size\": ", 0644);
    write_file(t, "typo.json", "{\"sise\": \"s\"}", 0644);
    assert_int_equal(symlinkat("../outside.json", t->fd, "link.json"), 0);
    assert_int_equal(symlinkat("/etc/hostname", t->fd, "abs-link.json"), 0);
    error_in(t->fd, t->path, "{\"a\": \"../outside.json\"}", "a", "leads outside the project");
    error_in(t->fd, t->path, "{\"a\": \"/etc/hostname\"}", "a", "relative to the project");
    error_in(t->fd, t->path, "{\"a\": \"link.json\"}", "a", "leads outside the project");
    error_in(t->fd, t->path, "{\"a\": \"abs-link.json\"}", "a", "leads outside the project");
    error_in(t->fd, t->path, "{\"a\": \"missing.json\"}", "a", "does not exist");
    error_in(t->fd, t->path, "{\"a\": \"sub\"}", "a", "does not exist");
    error_in(t->fd, t->path, "{\"a\": \"broken.json\"}", "a", "invalid JSON");
    error_in(t->fd, t->path, "{\"a\": \"typo.json\"}", "a.sise", "did you mean \"size\"");
    /* Errors in an instance file name that file. */
    seed_diags d = {0};
    seed_project *p = parse_in(t->fd, t->path, "{\"a\": \"typo.json\"}", &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.items[0].file, "typo.json");
    seed_diags_clear(&d);
    seed_project_free(p);
    /* Without a project directory, file references are errors, not crashes. */
    error_at("{\"a\": \"db.json\"}", "a", "no project directory");
}

static void test_root_directories(void **state) {
    tmpdir *t = *state;
    write_file(t, "rootfs/bin/app", "#!/bin/sh\necho hi\n", 0755);
    write_file(t, "rootfs/etc/conf", "x=1\n", 0644);
    write_file(t, "sub/inst.json", "{\"root\": \"../rootfs\"}", 0644);
    assert_int_equal(symlinkat("/", t->fd, "rootlink"), 0);
    assert_int_equal(mkdirat(t->fd, "withfifo", 0755), 0);
    assert_int_equal(mkfifoat(t->fd, "withfifo/pipe", 0644), 0);

    seed_project *p = valid_in(t->fd, t->path, "{\"a\": {\"root\": \"rootfs\"}, \"b\": \"sub/inst.json\"}");
    assert_int_equal(inst(p, "a")->root_kind, SEED_ROOT_DIR);
    assert_int_equal(strlen(inst(p, "a")->root_digest), 64);
    /* A root path is relative to the file that names it. */
    assert_string_equal(inst(p, "a")->root_digest, inst(p, "b")->root_digest);
    char want[256];
    snprintf(want, sizeof(want), "%s/rootfs", t->path);
    char real[256];
    assert_non_null(realpath(want, real));
    assert_string_equal(inst(p, "a")->root_path, real);
    seed_project_free(p);

    error_in(t->fd, t->path, "{\"a\": {\"root\": \"../\"}}", "a.root", "leads outside");
    error_in(t->fd, t->path, "{\"a\": {\"root\": \"/usr\"}}", "a.root", "relative path");
    error_in(t->fd, t->path, "{\"a\": {\"root\": \"rootlink\"}}", "a.root", "leads outside");
    error_in(t->fd, t->path, "{\"a\": {\"root\": \"rootfs/etc/conf\"}}", "a.root", "not a directory");
    error_in(t->fd, t->path, "{\"a\": {\"root\": \"nope\"}}", "a.root", "cannot be opened");
    error_in(t->fd, t->path, "{\"a\": {\"root\": \"withfifo\"}}", "a.root", "FIFO");
}

/* With users, a process's user may also be an account of the root directory. */
static void test_users_from_root(void **state) {
    tmpdir *t = *state;
    write_file(t, "rootfs/etc/passwd", "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\n", 0644);
    seed_project *p = valid_in(t->fd, t->path,
                               "{\"a\": {\"root\": \"rootfs\", \"users\": {\"app\": {\"uid\": 1000}}, "
                               "\"processes\": {\"w\": {\"command\": [\"x\"], \"user\": \"www\"}}}}");
    seed_project_free(p);
    error_in(t->fd, t->path,
             "{\"a\": {\"root\": \"rootfs\", \"users\": {\"app\": {\"uid\": 1000}}, \"processes\": {\"w\": "
             "{\"command\": [\"x\"], \"user\": \"ww\"}}}}",
             "a.processes.w.user", "unknown user");
}

static void test_secrets(void **state) {
    tmpdir *t = *state;
    write_file(t, "s/db.age", "age-encryption.org/v1\n-> X25519 x\n\n--- y\n", 0644);
    write_file(t, "s/app.yaml",
               "db:\n  password: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\nsops:\n  mac: m\n", 0644);
    write_file(t, "s/plain.txt", "not encrypted\n", 0644);
    write_file(t, "sub/inst.json", "{\"secrets\": {\"db\": \"../s/db.age\"}}", 0644);
    seed_project *p =
        valid_in(t->fd, t->path,
                 "{\"a\": {\"secrets\": {\"db\": \"s/db.age\", \"pw\": {\"file\": \"s/app.yaml\", \"key\": "
                 "\"db.password\", \"mode\": \"0440\", \"owner\": \"app\", \"env\": \"DB_PW\"}}},"
                 " \"b\": \"sub/inst.json\", \"c\": {}}");
    const seed_instance *a = inst(p, "a");
    assert_int_equal(a->n_secrets, 2);
    assert_string_equal(a->secrets[0].name, "db");
    assert_string_equal(a->secrets[0].format, "age");
    assert_int_equal(a->secrets[0].mode, 0400);
    assert_null(a->secrets[0].owner);
    assert_string_equal(a->secrets[1].format, "sops-yaml");
    assert_string_equal(a->secrets[1].key, "db.password");
    assert_int_equal(a->secrets[1].mode, 0440);
    assert_string_equal(a->secrets[1].env, "DB_PW");
    /* Relative to the declaring file; the digest is of the encrypted file. */
    assert_string_equal(a->secrets[0].digest, inst(p, "b")->secrets[0].digest);
    char *meta = NULL;
    json_t *m = seed_instance_meta(a, NULL, false);
    meta = json_dumps(m, JSON_COMPACT);
    assert_non_null(strstr(meta, "\"digest\""));
    assert_non_null(strstr(meta, "\"owner\":\"app\""));
    free(meta);
    json_decref(m);
    /* An instance without secrets has no "secrets" in its meta (identities unchanged). */
    m = seed_instance_meta(inst(p, "c"), NULL, false);
    assert_null(json_object_get(m, "secrets"));
    json_decref(m);
    /* A changed secret file changes the identity. */
    char before[65];
    memcpy(before, a->identity, sizeof(before));
    seed_project_free(p);
    write_file(t, "s/db.age", "age-encryption.org/v1\n-> X25519 z\n\n--- y\n", 0644);
    p = valid_in(t->fd, t->path,
                 "{\"a\": {\"secrets\": {\"db\": \"s/db.age\", \"pw\": {\"file\": \"s/app.yaml\", "
                 "\"key\": \"db.password\", \"mode\": \"0440\", \"owner\": \"app\", \"env\": \"DB_PW\"}}}}");
    assert_string_not_equal(inst(p, "a")->identity, before);
    seed_project_free(p);

    error_in(t->fd, t->path, "{\"a\": {\"secrets\": {\"x\": \"missing.age\"}}}", "a.secrets.x.file",
             "cannot be read");
    error_in(t->fd, t->path, "{\"a\": {\"secrets\": {\"x\": \"../out.age\"}}}", "a.secrets.x.file",
             "outside");
    error_in(t->fd, t->path, "{\"a\": {\"secrets\": {\"x\": \"s/plain.txt\"}}}", "a.secrets.x.file",
             "neither an age file");
    error_in(t->fd, t->path, "{\"a\": {\"secrets\": {\"x\": {\"file\": \"s/db.age\", \"key\": \"k\"}}}}",
             "a.secrets.x.file", "only a sops YAML, JSON or dotenv document has keys");
    error_in(t->fd, t->path, "{\"a\": {\"secrets\": {\"../x\": \"s/db.age\"}}}", "a.secrets.\"../x\"",
             "secret name");
    error_in(t->fd, t->path, "{\"a\": {\"secrets\": {\"x\": {\"file\": \"s/db.age\", \"mode\": 256}}}}",
             "a.secrets.x.mode", "octal string");
    error_in(t->fd, t->path, "{\"a\": {\"secrets\": {\"x\": {\"file\": \"s/db.age\", \"mode\": \"4755\"}}}}",
             "a.secrets.x.mode", "octal string");
    error_in(t->fd, t->path, "{\"a\": {\"secrets\": {\"x\": {\"file\": \"s/db.age\", \"env\": \"1X\"}}}}",
             "a.secrets.x.env", "variable name");
    error_in(t->fd, t->path, "{\"a\": {\"secrets\": {\"x\": {\"key\": \"k\"}}}}", "a.secrets.x",
             "has no \"file\"");
    error_in(t->fd, t->path, "{\"a\": {\"secrets\": {\"x\": {\"file\": \"s/db.age\", \"kye\": 1}}}}",
             "a.secrets.x.kye", "unknown option (expected one of: file, key, mode, owner, env)");
    error_in(t->fd, t->path,
             "{\"a\": {\"secrets\": {\"x\": {\"file\": \"s/db.age\", \"env\": \"V\"}, \"y\": {\"file\": "
             "\"s/db.age\", "
             "\"env\": \"V\"}}}}",
             "a.secrets", "both set the variable V");
}

static void test_open_beneath_fallback(void **state) {
    tmpdir *t = *state;
    write_file(t, "in.json", "{}", 0644);
    write_file(t, "../out.json", "{}", 0644);
    assert_int_equal(symlinkat("../out.json", t->fd, "esc.json"), 0);
    assert_int_equal(symlinkat("in.json", t->fd, "ok-link.json"), 0);
    int fd = -1;
    assert_int_equal(seed_open_beneath_fallback(t->fd, "in.json", O_RDONLY, &fd), 0);
    close(fd);
    assert_int_equal(seed_open_beneath_fallback(t->fd, "ok-link.json", O_RDONLY, &fd), 0);
    close(fd);
    assert_int_equal(seed_open_beneath_fallback(t->fd, "../out.json", O_RDONLY, &fd), -EXDEV);
    assert_int_equal(seed_open_beneath_fallback(t->fd, "esc.json", O_RDONLY, &fd), -EXDEV);
    assert_int_equal(seed_open_beneath_fallback(t->fd, "/etc/hostname", O_RDONLY, &fd), -EXDEV);
    assert_int_equal(seed_open_beneath_fallback(t->fd, "missing", O_RDONLY, &fd), -ENOENT);
    /* and the openat2 path agrees */
    assert_int_equal(seed_open_beneath(t->fd, "esc.json", O_RDONLY, &fd), -EXDEV);
    assert_int_equal(seed_open_beneath(t->fd, "ok-link.json", O_RDONLY, &fd), 0);
    close(fd);
}

static void test_missing_seeds_json(void **state) {
    tmpdir *t = *state;
    seed_diags d = {0};
    seed_project *p = NULL;
    assert_int_equal(seed_project_load(t->path, NULL, &p, &d), 0);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.items[0].file, "seeds.json");
    assert_non_null(strstr(d.items[0].message, "missing"));
    seed_diags_clear(&d);
    seed_project_free(p);

    assert_int_equal(seed_project_load("/nonexistent/dir", NULL, &p, &d), 0);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.items[0].message, "cannot be opened"));
    seed_diags_clear(&d);
}

static void test_load_uri_and_namespace(void **state) {
    tmpdir *t = *state;
    write_file(t, "seeds.json", "{\"web\": {}}", 0644);
    seed_diags d = {0};
    seed_project *p = NULL;
    assert_int_equal(seed_project_load(t->path, NULL, &p, &d), 0);
    assert_int_equal(seed_diags_count(&d), 0);
    char real[256], uri[300], ns[16];
    assert_non_null(realpath(t->path, real));
    snprintf(uri, sizeof(uri), "path:%s", real);
    assert_string_equal(p->uri, uri);
    seed_namespace_from_uri(uri, ns);
    assert_string_equal(p->namespace, ns);
    seed_project_free(p);
    assert_int_equal(seed_project_load(t->path, "github:loomtex/seed", &p, &d), 0);
    assert_string_equal(p->namespace, "s-gaydazldmnsg");
    seed_project_free(p);
    /* SOURCE may name the seeds.json file itself */
    char file[300];
    snprintf(file, sizeof(file), "%s/seeds.json", t->path);
    assert_int_equal(seed_project_load(file, NULL, &p, &d), 0);
    assert_string_equal(p->uri, uri);
    seed_project_free(p);
}

static void test_oversized_file(void **state) {
    tmpdir *t = *state;
    char p[300];
    snprintf(p, sizeof(p), "%s/seeds.json", t->path);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, SEED_SPEC_MAX_FILE + 1), 0);
    close(fd);
    seed_diags d = {0};
    seed_project *proj = NULL;
    assert_int_equal(seed_project_load(t->path, NULL, &proj, &d), 0);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.items[0].message, "larger than"));
    seed_diags_clear(&d);
    seed_project_free(proj);
}

/* ---- identity and generation ---- */

static void identity_of(const char *json, const char *name, char out[65]) {
    seed_project *p = valid(json);
    strcpy(out, inst(p, name)->identity);
    seed_project_free(p);
}

static void test_identity_stable_across_key_order_and_defaults(void **state) {
    char a[65], b[65], c[65];
    identity_of("{\"w\": {\"size\": \"m\", \"expose\": {\"x\": 1, \"y\": 2}}}", "w", a);
    identity_of("{\"w\": {\"expose\": {\"y\": 2, \"x\": 1}, \"size\": \"m\"}}", "w", b);
    assert_string_equal(a, b);
    identity_of("{\"w\": {\"expose\": {\"y\": {\"port\": 2, \"protocol\": \"http\"}, \"x\": 1}, \"size\": "
                "\"m\", \"rollout\": \"recreate\", \"root\": \"host\", \"shoot\": {\"max\": 4}}}",
                "w", c);
    assert_string_equal(a, c);
    /* and from run to run */
    identity_of("{\"w\": {\"size\": \"m\", \"expose\": {\"x\": 1, \"y\": 2}}}", "w", b);
    assert_string_equal(a, b);
}

/* Identities computed before `health` and `rolloutTimeout` existed: a project that
 * uses neither keeps them, so upgrading seed rolls nothing out. */
static void test_identity_unchanged_for_existing_projects(void **state) {
    char x[65];
    identity_of("{\"w\": {\"system\": \"x86_64-linux\"}}", "w", x);
    assert_string_equal(x, "da41ca2d54000b5e2d629691cf0282b7ff298f2f15154754fd21803431db2262");
    static const char *const web =
        "\"system\": \"x86_64-linux\", \"size\": \"m\", \"expose\": {\"http\": 8080, \"dns\": {\"port\": "
        "53, "
        "\"protocol\": \"dns\"}}, \"storage\": {\"data\": \"1Gi\"}, \"connect\": {\"db\": \"seed-db\"}, "
        "\"rollout\": \"rolling\", \"shoot\": {\"enable\": true, \"max\": 8}, \"env\": {\"A\": \"1\"}, "
        "\"processes\": {\"httpd\": {\"command\": [\"busybox\", \"httpd\", \"-f\"], \"restart\": "
        "\"on-failure\"}}";
    static const char *const want = "ca0ed29aea272cd187796d54caf7c203a3a307070f097aa4a1b0424d07110dcc";
    char json[1024];
    snprintf(json, sizeof(json), "{\"web\": {%s}}", web);
    identity_of(json, "web", x);
    assert_string_equal(x, want);
    /* The default rollout timeout written out is no change either. */
    snprintf(json, sizeof(json), "{\"web\": {%s, \"rolloutTimeout\": \"60s\"}}", web);
    identity_of(json, "web", x);
    assert_string_equal(x, want);
    snprintf(json, sizeof(json), "{\"web\": {%s, \"rolloutTimeout\": 60}}", web);
    identity_of(json, "web", x);
    assert_string_equal(x, want);
    /* A health check or another timeout does change it. */
    snprintf(json, sizeof(json), "{\"web\": {%s, \"rolloutTimeout\": \"61s\"}}", web);
    identity_of(json, "web", x);
    assert_string_not_equal(x, want);
    snprintf(json, sizeof(json), "{\"web\": {%s, \"health\": {\"http\": \"/\", \"port\": 8080}}}", web);
    identity_of(json, "web", x);
    assert_string_not_equal(x, want);
}

/* Identities are compared across versions of seed: the text they hash must never
 * change by accident (this value was computed by the jansson-based writer). */
static void test_identity_pinned(void **state) {
    char id[65];
    identity_of(
        "{\"w\": {\"system\": \"x86_64-linux\", \"size\": \"l\", \"expose\": {\"b\": 1, \"a\": {\"port\": "
        "2, \"protocol\": \"udp\"}}, \"storage\": {\"d\": \"1Gi\", \"c\": {\"size\": 1048576, "
        "\"mountPoint\": \"/m\"}}, \"connect\": {\"x\": \"seed-db\", \"y\": {\"service\": \"seed-a\", "
        "\"port\": 5}}, \"rollout\": \"rolling\", \"shoot\": {\"enable\": true, \"max\": 3}, \"root\": "
        "\"host\", \"env\": {\"E\": \"caf\\u00e9 \\ud83d\\ude00 \\t\\u0001 \\\"q\\\" \\\\ /\", \"A\": "
        "\"\"}, \"processes\": {\"p\": {\"command\": [\"\\u00fcber\", \"x\"], \"env\": {\"Z\": \"1\"}, "
        "\"cwd\": \"/srv\", \"user\": \"nobody\", \"restart\": \"no\"}, \"o\": {\"command\": [\"y\"]}}}}",
        "w", id);
    assert_string_equal(id, "921f187b4a3516068de01526425a98f457afb89801670ddf9bda9c854185e825");
}

static void test_identity_changes_with_content(void **state) {
    char base[65], x[65];
    identity_of("{\"w\": {}}", "w", base);
    static const char *const variants[] = {
        "{\"w\": {\"size\": \"m\"}}",
        "{\"w\": {\"expose\": {\"h\": 80}}}",
        "{\"w\": {\"storage\": {\"d\": \"1Gi\"}}}",
        "{\"w\": {\"connect\": {\"d\": \"x\"}}}",
        "{\"w\": {\"rollout\": \"rolling\"}}",
        "{\"w\": {\"shoot\": {\"enable\": true}}}",
        "{\"w\": {\"shoot\": {\"max\": 8}}}",
        "{\"w\": {\"env\": {\"A\": \"1\"}}}",
        "{\"w\": {\"processes\": {\"p\": {\"command\": [\"x\"]}}}}",
        "{\"w\": {\"system\": \"aarch64-linux\"}}",
        "{\"w\": {\"rolloutTimeout\": \"2m\"}}",
        "{\"w\": {\"health\": {\"command\": [\"true\"]}}}",
    };
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        identity_of(variants[i], "w", x);
        if (strcmp(base, x) == 0)
            fail_msg("identity unchanged by %s", variants[i]);
    }
    /* Every field of a health check counts. */
    static const char *const checks[] = {
        "{\"w\": {\"expose\": {\"h\": 80, \"i\": 81}, \"health\": {\"http\": \"/\", \"port\": 80}}}",
        "{\"w\": {\"expose\": {\"h\": 80, \"i\": 81}, \"health\": {\"http\": \"/x\", \"port\": 80}}}",
        "{\"w\": {\"expose\": {\"h\": 80, \"i\": 81}, \"health\": {\"http\": \"/\", \"port\": 81}}}",
        "{\"w\": {\"expose\": {\"h\": 80, \"i\": 81}, \"health\": {\"http\": \"/\", \"port\": 80, "
        "\"interval\": \"6s\"}}}",
        "{\"w\": {\"expose\": {\"h\": 80, \"i\": 81}, \"health\": {\"http\": \"/\", \"port\": 80, "
        "\"timeout\": \"3s\"}}}",
        "{\"w\": {\"expose\": {\"h\": 80, \"i\": 81}, \"health\": {\"http\": \"/\", \"port\": 80, "
        "\"retries\": 4}}}",
        "{\"w\": {\"expose\": {\"h\": 80, \"i\": 81}, \"health\": {\"command\": [\"/\"]}}}",
    };
    char ids[ELEMENTSOF(checks)][65];
    for (size_t i = 0; i < ELEMENTSOF(checks); i++) {
        identity_of(checks[i], "w", ids[i]);
        for (size_t j = 0; j < i; j++)
            if (streq(ids[i], ids[j]))
                fail_msg("%s and %s share an identity", checks[i], checks[j]);
    }
    /* Defaults written out are the same check. */
    identity_of("{\"w\": {\"expose\": {\"h\": 80, \"i\": 81}, \"health\": {\"http\": \"/\", \"port\": 80, "
                "\"interval\": \"5s\", \"timeout\": 2, \"retries\": 3}}}",
                "w", x);
    assert_string_equal(x, ids[0]);
    /* Another instance changing leaves this one alone. */
    char y[65];
    identity_of("{\"w\": {}, \"o\": {\"size\": \"xl\"}}", "w", y);
    assert_string_equal(base, y);
}

static void test_identity_tracks_root_files(void **state) {
    tmpdir *t = *state;
    write_file(t, "rootfs/bin/app", "v1", 0644);
    const char *json = "{\"a\": {\"root\": \"rootfs\"}}";
    seed_project *p = valid_in(t->fd, t->path, json);
    char v1[65], gen1[13];
    strcpy(v1, inst(p, "a")->identity);
    strcpy(gen1, p->generation);
    seed_project_free(p);

    p = valid_in(t->fd, t->path, json);
    assert_string_equal(inst(p, "a")->identity, v1);
    seed_project_free(p);

    write_file(t, "rootfs/bin/app", "v2", 0644);
    p = valid_in(t->fd, t->path, json);
    char v2[65];
    strcpy(v2, inst(p, "a")->identity);
    assert_string_not_equal(v1, v2);
    assert_string_not_equal(gen1, p->generation);
    seed_project_free(p);

    write_file(t, "rootfs/bin/app", "v2", 0755); /* executable bit */
    p = valid_in(t->fd, t->path, json);
    assert_string_not_equal(inst(p, "a")->identity, v2);
    seed_project_free(p);

    write_file(t, "rootfs/bin/app", "v2", 0644); /* back: same identity as before */
    p = valid_in(t->fd, t->path, json);
    assert_string_equal(inst(p, "a")->identity, v2);
    seed_project_free(p);

    assert_int_equal(symlinkat("app", t->fd, "rootfs/bin/alias"), 0);
    p = valid_in(t->fd, t->path, json);
    assert_string_not_equal(inst(p, "a")->identity, v2);
    seed_project_free(p);
}

static void test_generation(void **state) {
    seed_project *p = valid("{}");
    assert_string_equal(p->generation, "e3b0c44298fc");
    seed_project_free(p);
    p = valid("{\"b\": {}, \"a\": {\"size\": \"m\"}}");
    char lines[200], hex[65];
    snprintf(lines, sizeof(lines), "a=%s\nb=%s\n", inst(p, "a")->identity, inst(p, "b")->identity);
    seed_sha256_hex(lines, strlen(lines), hex);
    hex[12] = 0;
    assert_string_equal(p->generation, hex);
    assert_string_equal(p->instances[0].name, "a"); /* sorted */
    seed_project_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_size_tiers),
        cmocka_unit_test(test_expose_shorthand_and_explicit),
        cmocka_unit_test(test_storage_shorthand_and_explicit),
        cmocka_unit_test(test_connect_shorthand_and_explicit),
        cmocka_unit_test(test_rollout_shoot_system),
        cmocka_unit_test(test_health_and_rollout_timeout),
        cmocka_unit_test(test_health_errors),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_payload),
        cmocka_unit_test(test_toplevel),
        cmocka_unit_test(test_name_key),
        cmocka_unit_test(test_users_and_foreground),
        cmocka_unit_test_setup_teardown(test_users_from_root, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_meta_json_shape),
        cmocka_unit_test(test_meta_health),
        cmocka_unit_test(test_nix_option),
        cmocka_unit_test(test_boot_required),
        cmocka_unit_test(test_unknown_keys_suggest),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_unknown_enums),
        cmocka_unit_test(test_storage_sizes),
        cmocka_unit_test(test_mount_points),
        cmocka_unit_test(test_host_port_clashes),
        cmocka_unit_test(test_instance_names),
        cmocka_unit_test(test_json_level_errors),
        cmocka_unit_test(test_deep_nesting_is_bounded),
        cmocka_unit_test(test_all_errors_in_one_run),
        cmocka_unit_test(test_too_many_instances),
        cmocka_unit_test_setup_teardown(test_instance_files, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_instance_file_errors, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_root_directories, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_secrets, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_open_beneath_fallback, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_missing_seeds_json, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_load_uri_and_namespace, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_oversized_file, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_identity_stable_across_key_order_and_defaults),
        cmocka_unit_test(test_identity_unchanged_for_existing_projects),
        cmocka_unit_test(test_identity_pinned),
        cmocka_unit_test(test_identity_changes_with_content),
        cmocka_unit_test_setup_teardown(test_identity_tracks_root_files, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_generation),
    };
    return cmocka_run_group_tests_name("spec", tests, NULL, NULL);
}
