/* The shoot API's request and response, kept to Seed's README:
 *   POST /shoot {"command": [...], "timeout": ms}
 *   -> {"exitCode", "stdout", "stderr", "timedOut", "signal", "durationMs", "truncated"}
 * plus optional "stdin" (string), "env" (object), "cwd" and "encoding": "base64",
 * with which stdin is read and stdout/stderr are returned as base64, byte-exact. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEED_SHOOT_MAX_BODY (1u << 20)
#define SEED_SHOOT_DEFAULT_TIMEOUT_MS 30000u
#define SEED_SHOOT_MAX_TIMEOUT_MS 3600000u
#define SEED_SHOOT_MAX_ARGS 4096
/* The most stdin a client sends: what fits, base64'd, in a body with room to spare. */
#define SEED_SHOOT_MAX_STDIN ((SEED_SHOOT_MAX_BODY / 4) * 3 - 64 * 1024)

typedef struct seed_shoot_request {
    char **argv; /* NULL-terminated */
    size_t argc;
    char **env; /* "KEY=value", NULL-terminated */
    size_t envc;
    char *cwd;
    uint32_t timeout_ms;
    char *stdin_data;
    size_t stdin_len;
    bool has_stdin;
    bool base64;
} seed_shoot_request;

/* Parse and validate; on failure returns -EINVAL with a message for a 400. */
int seed_shoot_request_parse(const char *body, size_t len, seed_shoot_request *out, char **errmsg);
/* The same from an already parsed object (the control socket's "shoot"). */
int seed_shoot_request_from_json(json_t *o, seed_shoot_request *out, char **errmsg);
void seed_shoot_request_clear(seed_shoot_request *r);

/* One output stream of a shoot, kept as it will be sent: the inside of a JSON string
 * (UTF-8 with invalid bytes and NUL as U+FFFD, control characters, quotes and
 * backslashes escaped) or base64 text. Encoded as it arrives, it never holds more
 * than max bytes: once the next character would not fit, the rest is dropped and
 * truncated is set. Both the response and the memory behind it are bounded so. */
typedef struct seed_shoot_stream {
    char *data;
    size_t len, cap, max;
    bool base64;
    bool truncated;        /* output was dropped */
    bool full;             /* nothing more fits */
    size_t raw;            /* base64: bytes taken */
    unsigned char held[4]; /* an unfinished UTF-8 character or base64 group */
    unsigned n_held, need; /* need: the length of the held UTF-8 character */
} seed_shoot_stream;

void seed_shoot_stream_init(seed_shoot_stream *st, size_t max, bool base64);
void seed_shoot_stream_add(seed_shoot_stream *st, const char *data, size_t n);
/* The output ended: encode what is held (base64 padding; an unfinished character
 * becomes U+FFFD per byte). */
void seed_shoot_stream_end(seed_shoot_stream *st);
void seed_shoot_stream_clear(seed_shoot_stream *st);

typedef struct seed_shoot_output {
    int exit_code;
    bool timed_out;
    int signal; /* 0: none */
    uint64_t duration_ms;
    bool base64;
    seed_shoot_stream out, err; /* ended; truncated is either one's */
} seed_shoot_output;

/* The response body, {"exitCode", "stdout", ...}, held in pieces and sent without
 * joining them: its size is the two streams plus at most SEED_SHOOT_REPLY_OVERHEAD. */
typedef struct seed_shoot_reply seed_shoot_reply;
#define SEED_SHOOT_REPLY_OVERHEAD 256

/* Takes o's streams (left empty). NULL when out of memory. */
seed_shoot_reply *seed_shoot_reply_new(seed_shoot_output *o);
size_t seed_shoot_reply_size(const seed_shoot_reply *r);
/* Copy up to n bytes of the body from offset pos to buf; returns how many (0 at the end). */
size_t seed_shoot_reply_read(const seed_shoot_reply *r, size_t pos, char *buf, size_t n);
void seed_shoot_reply_free(seed_shoot_reply *r);

/* What the clients (seed-shoot, `seed shoot`) send: argv[0..argc) with output asked
 * for as base64, timeout_ms when > 0, stdin when in is not NULL. NULL when an argument
 * is not valid UTF-8 (or memory ran out). */
json_t *seed_shoot_request_build(char *const *argv, int argc, long timeout_ms, const char *in, size_t in_len);
/* Decode a response's base64 field (stdout, stderr) and write it to fd. Returns 0
 * (also when the field is absent), -EINVAL for bad base64, or a write error. */
int seed_shoot_write_output(json_t *res, const char *field, int fd);

/* Base64 (RFC 4648, padded) through OpenSSL. decode returns -EINVAL on bad input. */
char *seed_base64_encode(const void *data, size_t len, size_t *out_len);
int seed_base64_decode(const char *text, size_t len, char **ret, size_t *ret_len);
