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

static json_t *text_field(const char *data, size_t len, bool base64) {
    if (base64) {
        size_t n = 0;
        _cleanup_free_ char *b = seed_base64_encode(data, len, &n);
        return b ? json_stringn_nocheck(b, n) : NULL; /* base64 is ASCII */
    }
    _cleanup_free_ char *clean = malloc(3 * len + 1);
    if (!clean)
        return NULL;
    size_t n = seed_utf8_sanitize(data, len, clean);
    return json_stringn_nocheck(clean, n); /* valid UTF-8 now: no second check */
}

json_t *seed_shoot_response(const seed_shoot_output *o, bool base64) {
    json_t *sig = json_null();
    if (o->signal > 0) {
        const char *name = sigabbrev_np(o->signal);
        char buf[32];
        snprintf(buf, sizeof(buf), "SIG%s", name ? name : "?");
        sig = json_string(buf);
    }
    json_t *r = json_pack("{s:i, s:o, s:o, s:b, s:o, s:I, s:b}", "exitCode", o->exit_code, "stdout",
                          text_field(o->out, o->out_len, base64), "stderr",
                          text_field(o->err, o->err_len, base64), "timedOut", o->timed_out, "signal", sig,
                          "durationMs", (json_int_t)o->duration_ms, "truncated", o->truncated);
    if (r && base64)
        json_object_set_new(r, "encoding", json_string("base64"));
    return r;
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
