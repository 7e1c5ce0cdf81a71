/* UTF-8 repair: text from processes is passed on as UTF-8 with every invalid byte
 * replaced by U+FFFD, so it can travel in JSON. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if the bytes there are not one.
 * Overlong forms, surrogates and code points above U+10FFFF are invalid. */
size_t seed_utf8_valid_at(const unsigned char *p, size_t n);
bool seed_utf8_valid(const char *s, size_t n);
/* Write s with invalid bytes replaced to out, which must hold 3*n + 1 bytes;
 * returns the length written (NUL-terminated). NUL bytes become U+FFFD too. */
size_t seed_utf8_sanitize(const char *s, size_t n, char *out);
