/* JSON writer: one buffer, no tree; jansson's exact text in its pretty and canonical
 * styles (see jsonw.h). Canonical objects are written in call order and their
 * members reordered in place when the object ends, so callers never sort. */
#include "base/jsonw.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JW_INDENT 2 /* JSON_INDENT(2) */

struct seed_jw_member {
    const char *key;
    size_t key_len;
    size_t start, end; /* the bytes of `"key": value`, without the comma after it */
};

struct seed_jw_frame {
    bool object;
    bool after_key; /* an object's key is written, its value is next */
    size_t count;   /* members or elements written */
    size_t members; /* index of the first member of this object in w->members */
};

static bool grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *n = realloc(*p, ncap * size);
    if (!n)
        return false;
    *p = n;
    *cap = ncap;
    return true;
}

/* Write the buffer to w->sink and empty it. Not through stdio: its buffer would be
 * one more allocation after the spec's tree is freed (see seed_jw_reserve). */
static int flush(seed_jw *w) {
    for (size_t o = 0; o < w->len;) {
        ssize_t k = write(w->sink, w->buf + o, w->len - o);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return w->error = -EIO;
        o += (size_t)k;
    }
    w->len = 0;
    return 0;
}

/* Room for n more bytes (and a NUL), or w->error. */
static bool reserve(seed_jw *w, size_t n) {
    if (w->error)
        return false;
    if (w->len + n + 1 <= w->cap)
        return true;
    if (w->sink > 0 && w->len > 0) {
        /* Pretty text never changes once written: pass on what is there, keep the buffer. */
        if (flush(w) < 0)
            return false;
        if (n + 1 <= w->cap)
            return true;
    }
    size_t cap = w->cap < 4096 ? 4096 : w->cap;
    while (cap < w->len + n + 1)
        cap *= 2;
    char *b = realloc(w->buf, cap);
    if (!b) {
        w->error = -ENOMEM;
        return false;
    }
    w->buf = b;
    w->cap = cap;
    return true;
}

static void put(seed_jw *w, const char *s, size_t n) {
    if (!reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_indent(seed_jw *w, size_t depth) {
    size_t n = depth * JW_INDENT;
    if (!reserve(w, n + 1))
        return;
    w->buf[w->len++] = '\n';
    memset(w->buf + w->len, ' ', n);
    w->len += n;
}

void seed_jw_reset(seed_jw *w, seed_jw_style style) {
    w->style = style;
    w->len = 0;
    w->error = 0;
    w->n_frames = 0;
    w->n_members = 0;
}

void seed_jw_free(seed_jw *w) {
    free(w->buf);
    free(w->frames);
    free(w->members);
    *w = (seed_jw){0};
}

/* The separator and indentation before the next element of an array, or before the
 * key of an object's next member. */
static void next_item(seed_jw *w, seed_jw_frame *f) {
    if (f->count > 0)
        put(w, ",", 1);
    if (w->style == SEED_JW_PRETTY)
        put_indent(w, w->n_frames);
    f->count++;
}

/* Called before every value: in an array, it is the next element. */
static void before_value(seed_jw *w) {
    if (w->n_frames == 0)
        return;
    seed_jw_frame *f = &w->frames[w->n_frames - 1];
    if (f->object) {
        if (!f->after_key)
            w->error = -EINVAL; /* a value without a key */
        f->after_key = false;
    } else {
        next_item(w, f);
    }
}

/* jansson's utf8_iterate: one code point of valid UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 bytes when s does not start with one. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    size_t k;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        k = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        k = 3;
        v = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) || (k == 3 && v < 0x800) || (k == 4 && v < 0x10000))
        return 0;
    *cp = v;
    return k;
}

static void put_u4(seed_jw *w, uint32_t v) {
    static const char hex[] = "0123456789ABCDEF";
    char u[6] = {'\\', 'u', hex[(v >> 12) & 15], hex[(v >> 8) & 15], hex[(v >> 4) & 15], hex[v & 15]};
    put(w, u, sizeof(u));
}

static void put_string(seed_jw *w, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    bool ascii = w->style == SEED_JW_CANONICAL;
    put(w, "\"", 1);
    size_t i = 0;
    while (i < n) {
        /* The longest run that needs no escape, copied at once. */
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] != '"' && s[run] != '\\' && s[run] < 0x80)
            run++;
        if (run > i)
            put(w, str + i, run - i);
        i = run;
        if (i == n)
            break;
        uint32_t cp;
        size_t k = utf8_decode(s + i, n - i, &cp);
        if (k == 0) {
            w->error = -EINVAL;
            return;
        }
        if (cp >= 0x80 && !ascii) {
            put(w, str + i, k);
        } else if (cp == '"') {
            put(w, "\\\"", 2);
        } else if (cp == '\\') {
            put(w, "\\\\", 2);
        } else if (cp == '\b') {
            put(w, "\\b", 2);
        } else if (cp == '\f') {
            put(w, "\\f", 2);
        } else if (cp == '\n') {
            put(w, "\\n", 2);
        } else if (cp == '\r') {
            put(w, "\\r", 2);
        } else if (cp == '\t') {
            put(w, "\\t", 2);
        } else if (cp < 0x10000) {
            put_u4(w, cp);
        } else {
            cp -= 0x10000;
            put_u4(w, 0xd800 | (cp >> 10));
            put_u4(w, 0xdc00 | (cp & 0x3ff));
        }
        i += k;
    }
    put(w, "\"", 1);
}

static void open_container(seed_jw *w, bool object) {
    before_value(w);
    put(w, object ? "{" : "[", 1);
    if (w->error)
        return;
    if (!grow((void **)&w->frames, &w->cap_frames, w->n_frames + 1, sizeof(seed_jw_frame))) {
        w->error = -ENOMEM;
        return;
    }
    w->frames[w->n_frames++] = (seed_jw_frame){.object = object, .members = w->n_members};
}

/* The open frame, if it is of the kind asked for; else an error. */
static seed_jw_frame *top_frame(seed_jw *w, bool object) {
    if (w->error)
        return NULL;
    if (w->n_frames == 0 || w->frames[w->n_frames - 1].object != object ||
        w->frames[w->n_frames - 1].after_key) {
        w->error = -EINVAL;
        return NULL;
    }
    return &w->frames[w->n_frames - 1];
}

static void close_container(seed_jw *w, seed_jw_frame *f, bool object) {
    size_t count = f->count;
    w->n_frames--;
    if (count > 0 && w->style == SEED_JW_PRETTY)
        put_indent(w, w->n_frames);
    put(w, object ? "}" : "]", 1);
}

void seed_jw_object_begin(seed_jw *w) {
    open_container(w, true);
}

void seed_jw_array_begin(seed_jw *w) {
    open_container(w, false);
}

void seed_jw_array_end(seed_jw *w) {
    seed_jw_frame *f = top_frame(w, false);
    if (f)
        close_container(w, f, false);
}

/* As jansson's JSON_SORT_KEYS orders them: bytewise, a prefix first. */
static int cmp_member(const void *a, const void *b) {
    const seed_jw_member *x = a, *y = b;
    int r = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);
    if (r != 0)
        return r;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

/* Canonical style: put the members of the object that ends here in key order. They
 * are contiguous, separated by single commas, so reordering is one copy. */
static void sort_members(seed_jw *w, seed_jw_frame *f) {
    seed_jw_member *m = w->members + f->members;
    size_t n = w->n_members - f->members;
    if (n == 0)
        return;
    m[n - 1].end = w->len;
    bool sorted = true;
    for (size_t i = 1; i < n; i++)
        if (cmp_member(&m[i - 1], &m[i]) > 0)
            sorted = false;
    if (sorted)
        return;
    size_t from = m[0].start, total = w->len - from;
    char *tmp = malloc(total);
    if (!tmp) {
        w->error = -ENOMEM;
        return;
    }
    qsort(m, n, sizeof(*m), cmp_member);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            tmp[o++] = ',';
        memcpy(tmp + o, w->buf + m[i].start, m[i].end - m[i].start);
        o += m[i].end - m[i].start;
    }
    memcpy(w->buf + from, tmp, total);
    free(tmp);
}

void seed_jw_object_end(seed_jw *w) {
    seed_jw_frame *f = top_frame(w, true);
    if (!f)
        return;
    if (w->style == SEED_JW_CANONICAL)
        sort_members(w, f);
    w->n_members = f->members;
    close_container(w, f, true);
}

void seed_jw_key(seed_jw *w, const char *key) {
    seed_jw_frame *f = top_frame(w, true);
    if (!f)
        return;
    size_t key_len = strlen(key);
    if (w->style == SEED_JW_CANONICAL) {
        if (!grow((void **)&w->members, &w->cap_members, w->n_members + 1, sizeof(seed_jw_member))) {
            w->error = -ENOMEM;
            return;
        }
        seed_jw_member *m = w->members + w->n_members;
        if (w->n_members > f->members)
            m[-1].end = w->len; /* the previous member ends before the comma */
        w->n_members++;
        next_item(w, f);
        *m = (seed_jw_member){.key = key, .key_len = key_len, .start = w->len};
    } else {
        next_item(w, f);
    }
    put_string(w, key, key_len);
    put(w, w->style == SEED_JW_PRETTY ? ": " : ":", w->style == SEED_JW_PRETTY ? 2 : 1);
    f->after_key = true;
}

void seed_jw_string(seed_jw *w, const char *s) {
    if (!s) {
        seed_jw_null(w);
        return;
    }
    before_value(w);
    put_string(w, s, strlen(s));
}

void seed_jw_int(seed_jw *w, long long v) {
    before_value(w);
    char buf[24], *p = buf + sizeof(buf);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    put(w, p, (size_t)(buf + sizeof(buf) - p));
}

void seed_jw_bool(seed_jw *w, bool v) {
    before_value(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void seed_jw_null(seed_jw *w) {
    before_value(w);
    put(w, "null", 4);
}

int seed_jw_reserve(seed_jw *w, size_t n) {
    return reserve(w, n) ? 0 : w->error;
}

int seed_jw_finish(seed_jw *w) {
    if (!w->error && w->n_frames != 0)
        w->error = -EINVAL;
    if (!reserve(w, 0))
        return w->error;
    w->buf[w->len] = 0;
    if (w->sink > 0) {
        if (flush(w) < 0)
            return w->error;
        w->buf[0] = 0;
    }
    return 0;
}
