/* UTF-8 repair: text from processes is passed on as UTF-8 with every invalid byte
 * replaced by U+FFFD, so it can travel in JSON. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

bool seed_utf8_valid(const char *s, size_t n);
/* Write s with invalid bytes replaced to out, which must hold 3*n + 1 bytes;
 * returns the length written (NUL-terminated). NUL bytes become U+FFFD too. */
size_t seed_utf8_sanitize(const char *s, size_t n, char *out);
