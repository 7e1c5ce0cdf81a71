/* UTF-8 repair: text from processes is passed on as UTF-8 with every invalid byte
 * replaced by U+FFFD, so it can travel in JSON. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

bool seed_utf8_valid(const char *s, size_t n);
/* Write s with invalid bytes replaced to out, which must hold 3*n + 1 bytes;
 * returns the length written (NUL-terminated). NUL bytes become U+FFFD too. */
size_t seed_utf8_sanitize(const char *s, size_t n, char *out);
/* A copy of s that is valid UTF-8 (repaired if need be); NULL when out of memory. */
char *seed_utf8_dup(const char *s);
/* vasprintf, then repaired: for messages that quote outside text (cut to a length, it
 * may end inside a character) and go into JSON. NULL when out of memory. */
char *seed_utf8_vasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
