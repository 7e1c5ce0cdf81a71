/* Diagnostics list, JSON path builder and the helpers that word messages. */
#include "spec/diag.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/utf8.h"

void seed_diags_add(seed_diags *d, const char *file, const char *path, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    seed_diags_vadd(d, file, path, fmt, ap);
    va_end(ap);
}

void seed_diags_vadd(seed_diags *d, const char *file, const char *path, const char *fmt, va_list ap) {
    if (d->n >= SEED_DIAGS_MAX) {
        d->dropped++;
        return;
    }
    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 16;
        seed_diag *n = realloc(d->items, ncap * sizeof(*n));
        if (!n) {
            d->dropped++;
            return;
        }
        d->items = n;
        d->cap = ncap;
    }
    /* Valid UTF-8 whatever went in (file names from disk may not be): diagnostics are
     * printed as JSON too. */
    seed_diag *x = &d->items[d->n];
    x->file = file ? seed_utf8_dup(file) : NULL;
    x->path = seed_utf8_dup(path ? path : "");
    x->message = seed_utf8_vasprintf(fmt, ap);
    if (!x->path || !x->message || (file && !x->file)) {
        free(x->file);
        free(x->path);
        free(x->message);
        d->dropped++;
        return;
    }
    d->n++;
}

void seed_diags_clear(seed_diags *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].file);
        free(d->items[i].path);
        free(d->items[i].message);
    }
    free(d->items);
    *d = (seed_diags){0};
}

static int diag_cmp(const void *a, const void *b) {
    const seed_diag *x = a, *y = b;
    int r = strcmp(x->file ? x->file : "", y->file ? y->file : "");
    if (r != 0)
        return r;
    return strcmp(x->path, y->path);
}

void seed_diags_sort(seed_diags *d) {
    /* Insertion sort: stable, so findings on one path keep the order they were made
     * in; the list is short (capped at SEED_DIAGS_MAX). */
    for (size_t i = 1; i < d->n; i++) {
        seed_diag t = d->items[i];
        size_t j = i;
        while (j > 0 && diag_cmp(&d->items[j - 1], &t) > 0) {
            d->items[j] = d->items[j - 1];
            j--;
        }
        d->items[j] = t;
    }
}

static bool plain_key(const char *k) {
    if (!*k)
        return false;
    for (const char *c = k; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '-'))
            return false;
    return true;
}

static void jpath_append(seed_jpath *p, const char *s, size_t n) {
    size_t room = SEED_JPATH_MAX - 1 - p->len;
    if (n > room)
        n = room;
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = 0;
}

/* s as a double-quoted string into buf (NUL-terminated): quotes and backslashes
 * escaped, control bytes as \xNN, cut with "..." after max bytes of s or when buf is
 * nearly full, and never inside a UTF-8 character (what is quoted goes into JSON).
 * Returns the length written; size must be at least 8. */
static size_t quote_into(char *buf, size_t size, const char *s, size_t max) {
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; s[i];) {
        unsigned char c = (unsigned char)s[i];
        size_t unit = c < 0x80             ? 1
                      : (c & 0xe0) == 0xc0 ? 2
                      : (c & 0xf0) == 0xe0 ? 3
                      : (c & 0xf8) == 0xf0 ? 4
                                           : 1;
        for (size_t k = 1; k < unit; k++)
            if (!s[i + k])
                unit = k; /* a truncated sequence: take what is there */
        bool quote = c == '"' || c == '\\', control = c < 0x20 || c == 0x7f;
        size_t out = quote ? 2 : control ? 4 : unit;
        if (i + unit > max || o + out + 5 > size) { /* room for ...", NUL */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (quote) {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (control) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        } else {
            memcpy(buf + o, s + i, unit);
            o += unit;
        }
        i += unit;
    }
    buf[o++] = '"';
    buf[o] = 0;
    return o;
}

size_t seed_jpath_push_key(seed_jpath *p, const char *key) {
    size_t old = p->len;
    if (p->len > 0)
        jpath_append(p, ".", 1);
    if (plain_key(key) && strlen(key) <= 64) {
        jpath_append(p, key, strlen(key));
        return old;
    }
    /* Quote anything else, escaping quotes and control bytes, capped in length. */
    char q[160];
    jpath_append(p, q, quote_into(q, sizeof(q), key, SIZE_MAX));
    return old;
}

size_t seed_jpath_push_index(seed_jpath *p, size_t index) {
    size_t old = p->len;
    char b[32];
    int n = snprintf(b, sizeof(b), "[%zu]", index);
    jpath_append(p, b, (size_t)n);
    return old;
}

void seed_json_describe(const json_t *v, char *buf, size_t size) {
    switch (json_typeof(v)) {
    case JSON_STRING: {
        if (size < 16)
            snprintf(buf, size, "a string");
        else
            quote_into(buf, size, json_string_value(v), 48);
        return;
    }
    case JSON_INTEGER:
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
        return;
    case JSON_REAL:
        snprintf(buf, size, "%g", json_real_value(v));
        return;
    case JSON_TRUE:
        snprintf(buf, size, "true");
        return;
    case JSON_FALSE:
        snprintf(buf, size, "false");
        return;
    case JSON_NULL:
        snprintf(buf, size, "null");
        return;
    case JSON_OBJECT:
        snprintf(buf, size, json_object_size(v) ? "an object" : "an empty object");
        return;
    case JSON_ARRAY:
        if (json_array_size(v) == 0)
            snprintf(buf, size, "an empty array");
        else
            snprintf(buf, size, "an array of %zu element%s", json_array_size(v),
                     json_array_size(v) == 1 ? "" : "s");
        return;
    }
    snprintf(buf, size, "a value");
}

/* Levenshtein distance between two short strings, capped at 255. */
static unsigned edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 255;
    unsigned row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            unsigned v = MIN(MIN(row[j] + 1, row[j - 1] + 1), diag + cost);
            row[j] = v;
            diag = up;
        }
    }
    return MIN(row[lb], 255u);
}

const char *seed_nearest(const char *word, const char *const *candidates, size_t n) {
    const char *best = NULL;
    unsigned best_d = 255;
    for (size_t i = 0; i < n; i++) {
        unsigned d = edit_distance(word, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    size_t len = strlen(word);
    /* A typo is a couple of edits, fewer for short words. */
    unsigned limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    if (best_d <= limit)
        return best;
    /* An abbreviation ("proto", "mount") is as likely as a typo. */
    for (size_t i = 0; len >= 3 && i < n; i++)
        if (strncasecmp(candidates[i], word, len) == 0)
            return candidates[i];
    return NULL;
}
