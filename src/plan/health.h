/* Readiness of a freshly started instance, as a rollout waits for it: every exposed
 * TCP port accepts a connection, or the instance's `health` check (an HTTP GET or a
 * command run inside the instance) passes, within the rollout timeout. Everything runs
 * non-blocking on the caller's seed_loop. */
#pragma once

#include <netinet/in.h>
#include <stddef.h>

#include "base/error.h"
#include "base/event.h"
#include "spec/spec.h"

/* Without a health check: try every 100 ms, each connection bounded by 1 s. */
#define SEED_PROBE_TCP_INTERVAL_MS 100
#define SEED_PROBE_TCP_TIMEOUT_MS 1000
/* At most this much of an HTTP response is read to find its status line. */
#define SEED_PROBE_HTTP_MAX_RESPONSE 4096

typedef struct seed_probe seed_probe;

typedef enum seed_probe_outcome {
    SEED_PROBE_READY,
    SEED_PROBE_FAILED, /* not ready when the deadline passed */
} seed_probe_outcome;

typedef struct seed_probe_result {
    seed_probe_outcome outcome;
    /* FAILED: the last failure, e.g. "GET /healthz on 10.77.0.3:8080: status 503" or
     * "tcp 10.77.0.3:80: Connection refused"; NULL when READY. Valid during the
     * callback only. */
    const char *detail;
    unsigned attempts; /* checks started, the last one included */
} seed_probe_result;

typedef void (*seed_probe_fn)(void *userdata, const seed_probe_result *r);

/* Command checks: the node supplies how to run a command inside the instance.
 * run_cmd starts argv with a time limit and calls done(done_ud, exit_code, error) later
 * (from the loop; calling it before run_cmd returns is allowed too): exit_code >= 0 is
 * the command's exit status, < 0 means it could not be run, with error saying why
 * (error may be NULL). run_cmd returns a handle for cancel_cmd, or NULL when the
 * command could not be started at all (then done is not called). After cancel_cmd,
 * done must not be called for that handle. */
typedef void (*seed_probe_cmd_done)(void *done_ud, int exit_code, const char *error);
typedef void *(*seed_probe_run_cmd)(void *cmd_ud, char *const *argv, unsigned timeout_ms,
                                    seed_probe_cmd_done done, void *done_ud);
typedef void (*seed_probe_cancel_cmd)(void *cmd_ud, void *handle);

typedef struct seed_probe_config {
    struct in_addr addr; /* the instance's address */
    const unsigned *tcp_ports;
    size_t n_tcp_ports;
    /* NULL: ready once every port of tcp_ports accepts a connection (at once when
     * there is none). Copied: it need not outlive seed_probe_start(). */
    const seed_health *health;
    unsigned deadline_ms;       /* the rolloutTimeout; must be positive */
    seed_probe_run_cmd run_cmd; /* required for command checks */
    seed_probe_cancel_cmd cancel_cmd;
    void *cmd_ud;
} seed_probe_config;

/* Start probing: the first check at once, then one every interval, each bounded by the
 * check's timeout; fn is called exactly once, from the loop (never from inside
 * seed_probe_start), when a check passes or the deadline passes. */
int seed_probe_start(seed_loop *loop, const seed_probe_config *c, seed_probe_fn fn, void *userdata,
                     seed_probe **ret, seed_error **err);
/* Stop a probe and free it: no callback after this. Call it once for every probe
 * started, before its callback (to cancel), from within it or after it. NULL is fine. */
void seed_probe_cancel(seed_probe *p);
