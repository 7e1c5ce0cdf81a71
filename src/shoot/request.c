/* Shoot request validation and response building. */
#include "shoot/request.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/utf8.h"

static int bad(char **errmsg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(char **errmsg, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    /* quoted parts are cut at a byte count: the message must stay valid UTF-8 */
    *errmsg = seed_utf8_vasprintf(fmt, ap);
    va_end(ap);
    return -EINVAL;
}

char *seed_base64_encode(const void *data, size_t len, size_t *out_len) {
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        return NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    out[n] = 0;
    if (out_len)
        *out_len = (size_t)n;
    return out;
}

int seed_base64_decode(const char *text, size_t len, char **ret, size_t *ret_len) {
    if (len % 4 != 0)
        return -EINVAL;
    char *out = malloc(len / 4 * 3 + 1);
    if (!out)
        return -ENOMEM;
    int n = len ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)text, (int)len) : 0;
    if (n < 0) {
        free(out);
        return -EINVAL;
    }
    /* EVP_DecodeBlock counts padding as zero bytes: take them back off. */
    if (len >= 1 && text[len - 1] == '=')
        n--;
    if (len >= 2 && text[len - 2] == '=')
        n--;
    out[n] = 0;
    *ret = out;
    *ret_len = (size_t)n;
    return 0;
}

static char **strv_new(size_t n) {
    return calloc(n + 1, sizeof(char *));
}

int seed_shoot_request_from_json(json_t *o, seed_shoot_request *out, char **errmsg) {
    *out = (seed_shoot_request){.timeout_ms = SEED_SHOOT_DEFAULT_TIMEOUT_MS};
    *errmsg = NULL;
    if (!json_is_object(o))
        return bad(errmsg, "the request must be a JSON object like {\"command\": [\"echo\", \"hello\"]}");
    static const char *const known[] = {"command", "timeout", "stdin", "env", "cwd", "encoding"};
    const char *key;
    json_t *v;
    json_object_foreach (o, key, v) {
        bool ok = false;
        for (size_t i = 0; i < ELEMENTSOF(known) && !ok; i++)
            ok = streq(key, known[i]);
        if (!ok)
            return bad(errmsg,
                       "unknown field \"%.64s\": expected command, timeout, stdin, env, cwd or encoding",
                       key);
    }

    json_t *enc = json_object_get(o, "encoding");
    if (enc) {
        const char *e = json_string_value(enc);
        if (!e || !(streq(e, "base64") || streq(e, "utf-8") || streq(e, "utf8")))
            return bad(errmsg, "\"encoding\" must be \"base64\" or \"utf-8\"");
        out->base64 = streq(e, "base64");
    }

    json_t *cmd = json_object_get(o, "command");
    if (!cmd)
        return bad(errmsg, "missing \"command\": expected a non-empty array of strings");
    if (!json_is_array(cmd) || json_array_size(cmd) == 0)
        return bad(errmsg, "\"command\" must be a non-empty array of strings, like [\"echo\", \"hello\"]");
    if (json_array_size(cmd) > SEED_SHOOT_MAX_ARGS)
        return bad(errmsg, "\"command\" has %zu elements: at most %d are allowed", json_array_size(cmd),
                   SEED_SHOOT_MAX_ARGS);
    out->argc = json_array_size(cmd);
    out->argv = strv_new(out->argc);
    if (!out->argv)
        return -ENOMEM;
    for (size_t i = 0; i < out->argc; i++) {
        const char *s = json_string_value(json_array_get(cmd, i));
        if (!s) {
            seed_shoot_request_clear(out);
            return bad(errmsg, "\"command\"[%zu] must be a string", i);
        }
        if (i == 0 && !*s) {
            seed_shoot_request_clear(out);
            return bad(errmsg, "\"command\"[0], the program, must not be empty");
        }
        if (!(out->argv[i] = strdup(s))) {
            seed_shoot_request_clear(out);
            return -ENOMEM;
        }
    }

    json_t *t = json_object_get(o, "timeout");
    if (t) {
        if (!json_is_integer(t) || json_integer_value(t) < 1 ||
            json_integer_value(t) > (json_int_t)SEED_SHOOT_MAX_TIMEOUT_MS) {
            seed_shoot_request_clear(out);
            return bad(errmsg,
                       "\"timeout\" must be an integer number of milliseconds from 1 to %u (one hour)",
                       SEED_SHOOT_MAX_TIMEOUT_MS);
        }
        out->timeout_ms = (uint32_t)json_integer_value(t);
    }

    json_t *cwd = json_object_get(o, "cwd");
    if (cwd) {
        const char *s = json_string_value(cwd);
        if (!s || s[0] != '/' || strlen(s) > 4095) {
            seed_shoot_request_clear(out);
            return bad(errmsg, "\"cwd\" must be an absolute path");
        }
        out->cwd = strdup(s);
    } else {
        out->cwd = strdup("/");
    }
    if (!out->cwd) {
        seed_shoot_request_clear(out);
        return -ENOMEM;
    }

    json_t *env = json_object_get(o, "env");
    if (env) {
        if (!json_is_object(env)) {
            seed_shoot_request_clear(out);
            return bad(errmsg, "\"env\" must be an object mapping names to strings");
        }
        out->env = strv_new(json_object_size(env));
        if (!out->env) {
            seed_shoot_request_clear(out);
            return -ENOMEM;
        }
        json_object_foreach (env, key, v) {
            const char *val = json_string_value(v);
            if (!*key || strchr(key, '=')) {
                seed_shoot_request_clear(out);
                return bad(errmsg, "\"env\" name \"%.64s\" must be non-empty and contain no '='", key);
            }
            if (!val) {
                seed_shoot_request_clear(out);
                return bad(errmsg, "\"env\".%.64s must be a string", key);
            }
            if (asprintf(&out->env[out->envc], "%s=%s", key, val) < 0) {
                out->env[out->envc] = NULL;
                seed_shoot_request_clear(out);
                return -ENOMEM;
            }
            out->envc++;
        }
    }

    json_t *in = json_object_get(o, "stdin");
    if (in) {
        if (!json_is_string(in)) {
            seed_shoot_request_clear(out);
            return bad(errmsg, "\"stdin\" must be a string%s", out->base64 ? " (base64)" : "");
        }
        out->has_stdin = true;
        const char *s = json_string_value(in);
        size_t n = json_string_length(in);
        if (out->base64) {
            int r = seed_base64_decode(s, n, &out->stdin_data, &out->stdin_len);
            if (r < 0) {
                seed_shoot_request_clear(out);
                return r == -ENOMEM ? r : bad(errmsg, "\"stdin\" is not valid base64");
            }
        } else {
            out->stdin_data = malloc(n + 1);
            if (!out->stdin_data) {
                seed_shoot_request_clear(out);
                return -ENOMEM;
            }
            memcpy(out->stdin_data, s, n + 1);
            out->stdin_len = n;
        }
    }
    return 0;
}

int seed_shoot_request_parse(const char *body, size_t len, seed_shoot_request *out, char **errmsg) {
    *out = (seed_shoot_request){0};
    json_error_t e;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (!o)
        return bad(errmsg, "malformed JSON at line %d, column %d: %s", e.line, e.column, e.text);
    int r = seed_shoot_request_from_json(o, out, errmsg);
    json_decref(o);
    return r;
}

void seed_shoot_request_clear(seed_shoot_request *r) {
    strv_free(r->argv);
    strv_free(r->env);
    free(r->cwd);
    free(r->stdin_data);
    *r = (seed_shoot_request){0};
}

/* ---- output streams, encoded as they arrive ---- */

void seed_shoot_stream_init(seed_shoot_stream *st, size_t max, bool base64) {
    *st = (seed_shoot_stream){.max = max, .base64 = base64};
}

void seed_shoot_stream_clear(seed_shoot_stream *st) {
    free(st->data);
    *st = (seed_shoot_stream){0};
}

/* Room for k more bytes, all or nothing: once something does not fit, nothing more
 * is taken (the output must not have gaps). */
static bool room(seed_shoot_stream *st, size_t k) {
    if (st->full)
        return false;
    if (k > st->max - st->len) {
        st->full = st->truncated = true;
        return false;
    }
    if (st->len + k > st->cap) {
        size_t ncap = MAX(st->cap, (size_t)4096);
        while (ncap < st->len + k)
            ncap *= 2;
        ncap = MIN(ncap, st->max);
        char *d = realloc(st->data, ncap);
        if (!d) {
            st->full = st->truncated = true;
            return false;
        }
        st->data = d;
        st->cap = ncap;
    }
    return true;
}

static void put(seed_shoot_stream *st, const void *b, size_t k) {
    if (room(st, k)) {
        memcpy(st->data + st->len, b, k);
        st->len += k;
    }
}

static void put_replacement(seed_shoot_stream *st) {
    put(st, "\xef\xbf\xbd", 3);
}

/* An ASCII byte, escaped as JSON wants it. */
static void put_ascii(seed_shoot_stream *st, unsigned char c) {
    char e[8];
    switch (c) {
    case '"':
    case '\\':
        e[0] = '\\', e[1] = (char)c;
        put(st, e, 2);
        return;
    case '\n':
        put(st, "\\n", 2);
        return;
    case '\r':
        put(st, "\\r", 2);
        return;
    case '\t':
        put(st, "\\t", 2);
        return;
    case '\b':
        put(st, "\\b", 2);
        return;
    case '\f':
        put(st, "\\f", 2);
        return;
    }
    if (c < 0x20) {
        snprintf(e, sizeof(e), "\\u%04X", c);
        put(st, e, 6);
    } else {
        put(st, &c, 1);
    }
}

/* The held bytes are not a character: each becomes U+FFFD (as seed_utf8_sanitize
 * does it, so a response does not depend on how the output was split into reads). */
static void drop_held(seed_shoot_stream *st) {
    for (unsigned i = 0; i < st->n_held; i++)
        put_replacement(st);
    st->n_held = 0;
}

static void text_add(seed_shoot_stream *st, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n && !st->full; i++) {
        unsigned char c = p[i];
        if (st->n_held) {
            if ((c & 0xc0) == 0x80) {
                st->held[st->n_held++] = c;
                if (st->n_held < st->need)
                    continue;
                if (seed_utf8_valid((const char *)st->held, st->n_held)) {
                    put(st, st->held, st->n_held);
                    st->n_held = 0;
                } else {
                    drop_held(st);
                }
                continue;
            }
            drop_held(st); /* and c starts afresh */
        }
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            /* A run of plain ASCII goes in at once, as much of it as fits. */
            size_t j = i + 1;
            while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\')
                j++;
            size_t k = MIN(j - i, st->max - st->len);
            put(st, p + i, k);
            if (k < j - i)
                st->full = st->truncated = true;
            i = j - 1;
        } else if (c >= 0xc0 && c <= 0xf7) {
            st->held[0] = c;
            st->n_held = 1;
            st->need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        } else if (c >= 0x80 || c == 0) {
            put_replacement(st);
        } else {
            put_ascii(st, c);
        }
    }
}

/* Base64 of whole 3-byte groups, appended (room was checked by the caller). */
static void b64_put(seed_shoot_stream *st, const unsigned char *p, size_t n) {
    unsigned char out[4 * 1024 + 1];
    while (n > 0) {
        size_t k = MIN(n, (size_t)3 * 1024);
        int m = EVP_EncodeBlock(out, p, (int)k);
        put(st, out, (size_t)m);
        p += k;
        n -= k;
    }
}

static void b64_add(seed_shoot_stream *st, const unsigned char *p, size_t n) {
    /* Take only what still fits once encoded and padded: room() never refuses then. */
    size_t cap = st->max / 4 * 3;
    if (n > cap - st->raw) {
        n = cap - st->raw;
        st->truncated = true;
    }
    st->raw += n;
    while (n > 0 && st->n_held > 0 && st->n_held < 3) {
        st->held[st->n_held++] = *p++;
        n--;
    }
    if (st->n_held == 3) {
        b64_put(st, st->held, 3);
        st->n_held = 0;
    }
    size_t whole = n / 3 * 3;
    b64_put(st, p, whole);
    for (size_t i = whole; i < n; i++)
        st->held[st->n_held++] = p[i];
}

void seed_shoot_stream_add(seed_shoot_stream *st, const char *data, size_t n) {
    if (st->base64)
        b64_add(st, (const unsigned char *)data, n);
    else
        text_add(st, (const unsigned char *)data, n);
}

void seed_shoot_stream_end(seed_shoot_stream *st) {
    if (st->base64 && st->n_held > 0) {
        unsigned char out[5];
        int m = EVP_EncodeBlock(out, st->held, (int)st->n_held);
        put(st, out, (size_t)m); /* fits: its bytes were counted in when taken */
        st->n_held = 0;
    } else if (!st->base64) {
        drop_held(st);
    }
}

/* ---- the response ---- */

struct seed_shoot_reply {
    seed_shoot_stream out, err;
    char head[64], tail[SEED_SHOOT_REPLY_OVERHEAD - 64];
    struct {
        const char *p;
        size_t n;
    } part[5];
    size_t size;
};

seed_shoot_reply *seed_shoot_reply_new(seed_shoot_output *o) {
    seed_shoot_reply *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->out = o->out;
    r->err = o->err;
    o->out = o->err = (seed_shoot_stream){0};
    char sig[32] = "null";
    if (o->signal > 0) {
        const char *name = sigabbrev_np(o->signal);
        snprintf(sig, sizeof(sig), "\"SIG%s\"", name ? name : "?");
    }
    int hn = snprintf(r->head, sizeof(r->head), "{\"exitCode\":%d,\"stdout\":\"", o->exit_code);
    int tn = snprintf(
        r->tail, sizeof(r->tail), "\",\"timedOut\":%s,\"signal\":%s,\"durationMs\":%llu,\"truncated\":%s%s}",
        o->timed_out ? "true" : "false", sig, (unsigned long long)o->duration_ms,
        r->out.truncated || r->err.truncated ? "true" : "false", o->base64 ? ",\"encoding\":\"base64\"" : "");
    static const char mid[] = "\",\"stderr\":\"";
    r->part[0].p = r->head, r->part[0].n = (size_t)hn;
    r->part[1].p = r->out.data, r->part[1].n = r->out.len;
    r->part[2].p = mid, r->part[2].n = sizeof(mid) - 1;
    r->part[3].p = r->err.data, r->part[3].n = r->err.len;
    r->part[4].p = r->tail, r->part[4].n = (size_t)tn;
    for (size_t i = 0; i < ELEMENTSOF(r->part); i++)
        r->size += r->part[i].n;
    return r;
}

size_t seed_shoot_reply_size(const seed_shoot_reply *r) {
    return r->size;
}

size_t seed_shoot_reply_read(const seed_shoot_reply *r, size_t pos, char *buf, size_t n) {
    size_t done = 0;
    for (size_t i = 0; i < ELEMENTSOF(r->part) && done < n; i++) {
        if (pos >= r->part[i].n) {
            pos -= r->part[i].n;
            continue;
        }
        size_t k = MIN(r->part[i].n - pos, n - done);
        memcpy(buf + done, r->part[i].p + pos, k);
        done += k;
        pos = 0;
    }
    return done;
}

void seed_shoot_reply_free(seed_shoot_reply *r) {
    if (!r)
        return;
    seed_shoot_stream_clear(&r->out);
    seed_shoot_stream_clear(&r->err);
    free(r);
}

json_t *seed_shoot_request_build(char *const *argv, int argc, long timeout_ms, const char *in,
                                 size_t in_len) {
    json_t *cmd = json_array();
    for (int i = 0; cmd && i < argc; i++) {
        /* json_string() is NULL for invalid UTF-8: fail, never drop the argument */
        if (json_array_append_new(cmd, json_string(argv[i])) < 0) {
            json_decref(cmd);
            return NULL;
        }
    }
    json_t *req = json_pack("{s:o, s:s}", "command", cmd, "encoding", "base64");
    if (req && timeout_ms > 0 && json_object_set_new(req, "timeout", json_integer(timeout_ms)) < 0)
        goto fail;
    if (req && in) {
        char *b64 = seed_base64_encode(in, in_len, NULL);
        int r = json_object_set_new(req, "stdin", json_string(b64));
        free(b64);
        if (r < 0)
            goto fail;
    }
    return req;
fail:
    json_decref(req);
    return NULL;
}

int seed_shoot_write_output(json_t *res, const char *field, int fd) {
    const char *b64 = json_string_value(json_object_get(res, field));
    if (!b64)
        return 0;
    char *data = NULL;
    size_t len = 0;
    if (seed_base64_decode(b64, strlen(b64), &data, &len) < 0)
        return -EINVAL;
    int r = 0;
    for (size_t o = 0; o < len;) {
        ssize_t k = write(fd, data + o, len - o);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            r = k < 0 ? negative_errno() : -EIO;
            break;
        }
        o += (size_t)k;
    }
    free(data);
    return r;
}
