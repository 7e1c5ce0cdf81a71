/* Storage sizes in Kubernetes quantity syntax, computed exactly:
 *   <sign><digits>[.<digits>]<suffix>, suffix one of Ki Mi Gi Ti Pi Ei, k M G T P E,
 *   e<exponent> / E<exponent>, or none (bytes).
 * Fractions are rounded up to whole bytes, as Kubernetes does for Value().
 * Also durations (health checks, rollouts): <digits>[.<digits>]<unit>, unit ms s m h. */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/macro.h"
#include "spec/spec.h"

typedef unsigned __int128 u128;

#define MAX_DIGITS 36 /* 10^36 < 2^120: the mantissa always fits */
#define MAX_EXPONENT 36

static int fail(char **errmsg, int code, const char *fmt, ...) _printf_(3, 4);
static int fail(char **errmsg, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (errmsg && vasprintf(errmsg, fmt, ap) < 0)
        *errmsg = NULL;
    va_end(ap);
    return -code;
}

#define SYNTAX                                                                                         \
    "malformed size \"%s\": expected a number with an optional suffix Ki, Mi, Gi, Ti, Pi, Ei (powers " \
    "of 1024), k, M, G, T, P, E (powers of 1000) or an exponent like 1e9"

int seed_parse_quantity(const char *s, uint64_t *ret, char **errmsg) {
    const char *p = s;
    bool negative = false;

    if (*p == '+' || *p == '-') {
        negative = *p == '-';
        p++;
    }

    u128 mantissa = 0;
    int digits = 0, frac = 0;
    bool seen_digit = false, seen_point = false;
    for (; *p; p++) {
        if (*p == '.') {
            if (seen_point)
                return fail(errmsg, EINVAL, SYNTAX, s);
            seen_point = true;
            continue;
        }
        if (!isdigit((unsigned char)*p))
            break;
        seen_digit = true;
        if (mantissa == 0 && *p == '0' && !seen_point)
            continue; /* leading zeros carry no precision */
        if (++digits > MAX_DIGITS)
            return fail(errmsg, ERANGE, "size \"%s\" has too many digits", s);
        mantissa = mantissa * 10 + (u128)(*p - '0');
        if (seen_point)
            frac++;
    }
    if (!seen_digit)
        return fail(errmsg, EINVAL, SYNTAX, s);

    /* value = mantissa * 2^shift * 10^exp10 / 10^frac */
    int shift = 0, exp10 = 0;
    static const char binary[] = "KMGTPE";
    if (*p == 0) {
        /* plain bytes */
    } else if (p[1] == 'i' && p[2] == 0 && strchr(binary, p[0])) {
        shift = 10 * (int)(strchr(binary, p[0]) - binary + 1);
    } else if (p[1] == 0 && strchr("kMGTPE", p[0])) {
        exp10 = p[0] == 'k' ? 3 : 3 * (int)(strchr(binary, p[0]) - binary + 1);
    } else if (p[0] == 'm' && p[1] == 0) {
        return fail(errmsg, EINVAL,
                    "size \"%s\" is in thousandths of a byte (suffix m): use M for megabytes or "
                    "Mi for mebibytes",
                    s);
    } else if ((p[0] == 'e' || p[0] == 'E') && p[1]) {
        const char *q = p + 1;
        bool eneg = false;
        if (*q == '+' || *q == '-') {
            eneg = *q == '-';
            q++;
        }
        if (!*q)
            return fail(errmsg, EINVAL, SYNTAX, s);
        int e = 0;
        for (; *q; q++) {
            if (!isdigit((unsigned char)*q))
                return fail(errmsg, EINVAL, SYNTAX, s);
            e = e * 10 + (*q - '0');
            if (e > MAX_EXPONENT)
                return fail(errmsg, ERANGE, "size \"%s\" has an exponent out of range", s);
        }
        exp10 = eneg ? -e : e;
    } else {
        return fail(errmsg, EINVAL, SYNTAX, s);
    }

    if (mantissa == 0)
        return fail(errmsg, EINVAL, "size \"%s\" is zero: a volume needs a positive size", s);
    if (negative)
        return fail(errmsg, EINVAL, "size \"%s\" is negative: a volume needs a positive size", s);

    const u128 limit = (u128)INT64_MAX;
    int den_exp = frac - exp10; /* value = mantissa * 2^shift / 10^den_exp */
    u128 num = mantissa;
    /* Multiply first while the value can still be scaled down, checking overflow at
     * every step; anything above the limit after division is out of range anyway. */
    for (int i = 0; i < shift; i++) {
        if (num > (~(u128)0) >> 1)
            return fail(errmsg, ERANGE, "size \"%s\" is too large (at most 8Ei)", s);
        num <<= 1;
    }
    for (; den_exp < 0; den_exp++) {
        if (num > (~(u128)0) / 10)
            return fail(errmsg, ERANGE, "size \"%s\" is too large (at most 8Ei)", s);
        num *= 10;
    }
    if (den_exp > 38) {
        /* 10^39 exceeds every u128 numerator: a positive value below one byte, which
         * rounds up to one. */
        *ret = 1;
        return 0;
    }
    u128 den = 1;
    for (int i = 0; i < den_exp; i++)
        den *= 10;
    u128 bytes = num / den + (num % den ? 1 : 0);
    if (bytes > limit)
        return fail(errmsg, ERANGE, "size \"%s\" is too large (at most 8Ei)", s);
    *ret = (uint64_t)bytes;
    return 0;
}

#define DURATION_SYNTAX                                                                        \
    "malformed duration \"%s\": expected a number with a unit ms, s, m or h, like \"500ms\", " \
    "\"5s\" or \"1m\""

int seed_parse_duration(const char *s, uint64_t *ret_ms, char **errmsg) {
    const char *p = s;
    uint64_t whole = 0, frac = 0, frac_den = 1;
    int digits = 0;
    for (; isdigit((unsigned char)*p); p++) {
        /* 12 digits of hours still fit 64 bits in milliseconds. */
        if (++digits > 12)
            return fail(errmsg, ERANGE, "duration \"%s\" has too many digits", s);
        whole = whole * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        p++;
        int fdigits = 0;
        for (; isdigit((unsigned char)*p); p++) {
            if (++fdigits > 9)
                return fail(errmsg, ERANGE, "duration \"%s\" has too many digits after the point", s);
            frac = frac * 10 + (uint64_t)(*p - '0');
            frac_den *= 10;
        }
        if (!fdigits)
            return fail(errmsg, EINVAL, DURATION_SYNTAX, s);
    }
    if (!digits && frac_den == 1)
        return fail(errmsg, EINVAL, DURATION_SYNTAX, s);

    uint64_t unit;
    if (streq(p, "ms"))
        unit = 1;
    else if (streq(p, "s"))
        unit = 1000;
    else if (streq(p, "m"))
        unit = 60 * 1000;
    else if (streq(p, "h"))
        unit = 3600 * 1000;
    else if (!*p)
        return fail(errmsg, EINVAL,
                    "duration \"%s\" has no unit: expected ms, s, m or h, like \"500ms\" or \"5s\" (a "
                    "plain JSON number counts seconds)",
                    s);
    else
        return fail(errmsg, EINVAL, DURATION_SYNTAX, s);

    if ((frac * unit) % frac_den)
        return fail(errmsg, EINVAL, "duration \"%s\" is finer than a millisecond", s);
    *ret_ms = whole * unit + frac * unit / frac_den;
    return 0;
}

void seed_format_duration(uint64_t ms, char *buf, size_t size) {
    if (ms && ms % (3600 * 1000) == 0)
        snprintf(buf, size, "%lluh", (unsigned long long)(ms / (3600 * 1000)));
    else if (ms && ms % (60 * 1000) == 0)
        snprintf(buf, size, "%llum", (unsigned long long)(ms / (60 * 1000)));
    else if (ms && ms % 1000 == 0)
        snprintf(buf, size, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, size, "%llums", (unsigned long long)ms);
}
