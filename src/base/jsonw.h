/* A JSON writer into one growing buffer, for output too large to build as a jansson
 * tree first. It writes exactly what jansson's json_dumps writes for the same values in
 * two styles, so switching to it changes no byte: pretty (JSON_INDENT(2), members in
 * the order written) and canonical (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII,
 * the text identities are hashed over). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef enum seed_jw_style {
    SEED_JW_PRETTY,
    SEED_JW_CANONICAL,
} seed_jw_style;

typedef struct seed_jw_member seed_jw_member;
typedef struct seed_jw_frame seed_jw_frame;

typedef struct seed_jw {
    seed_jw_style style;
    int sink; /* pretty style, a descriptor above 0: the text is written to it as the
                 buffer fills and on finish (0: kept in buf) */
    char *buf;
    size_t len, cap;
    int error;             /* -ENOMEM, or -EINVAL (invalid UTF-8, calls out of order): the text is unusable */
    seed_jw_frame *frames; /* open objects and arrays */
    size_t n_frames, cap_frames;
    seed_jw_member *members; /* the members of open objects, innermost last */
    size_t n_members, cap_members;
} seed_jw;

/* Reuse w (buffer kept) for a new text in style. */
void seed_jw_reset(seed_jw *w, seed_jw_style style);
void seed_jw_free(seed_jw *w);

void seed_jw_object_begin(seed_jw *w);
void seed_jw_object_end(seed_jw *w);
void seed_jw_array_begin(seed_jw *w);
void seed_jw_array_end(seed_jw *w);
/* The key of the next member of the innermost object (NUL-terminated, valid UTF-8;
 * it must stay valid until that object ends). */
void seed_jw_key(seed_jw *w, const char *key);
void seed_jw_string(seed_jw *w, const char *s); /* NULL writes null */
void seed_jw_int(seed_jw *w, long long v);
void seed_jw_bool(seed_jw *w, bool v);
void seed_jw_null(seed_jw *w);

/* Room for n bytes before the first is written: a buffer taken early is not one more
 * large allocation after a big tree is freed (glibc then consolidates every chunk). */
int seed_jw_reserve(seed_jw *w, size_t n);
/* 0 and the complete text in w->buf/w->len (NUL-terminated; with a sink, all of it
 * written there and w->len 0), or -ENOMEM, -EINVAL or -EIO (the sink failed). */
int seed_jw_finish(seed_jw *w);
