/* Integer literals a double cannot hold exactly, quoted (json_bigint.h). */
#include "json_bigint.h"

#include <string.h>

/* 2^53, the first integer whose successor a double cannot tell from it. */
static const char EXACT_LIMIT[] = "9007199254740992";
#define EXACT_DIGITS (sizeof(EXACT_LIMIT) - 1)

static int is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

/* A byte that may stand inside a number token (after its first byte). */
static int in_number(unsigned char c) {
    return is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

/* The next literal to quote at or after *pos: its [start, end) (start at its
 * minus sign), or 0 when there is none. Strings are skipped whole (a backslash
 * takes the byte after it); an unclosed one runs to the end of the text. */
static int next_literal(const unsigned char *s, size_t len, size_t *pos, size_t *start, size_t *end) {
    size_t i = *pos;
    while (i < len) {
        unsigned char c = s[i];
        if (c == '"') {
            for (i++; i < len && s[i] != '"'; i++) {
                if (s[i] == '\\') i++;
            }
            i++; /* past the closing quote (or the end) */
            continue;
        }
        if (c != '-' && !is_digit(c)) {
            i++;
            continue;
        }
        /* A number token: from here over every byte a number may hold. */
        size_t from = i, d0 = c == '-' ? i + 1 : i, d = d0;
        while (d < len && is_digit(s[d])) d++;
        size_t to = d;
        while (to < len && in_number(s[to])) to++;
        *pos = to;
        size_t digits = d - d0;
        if (to == d && digits > 0 && s[d0] != '0'
            && (digits > EXACT_DIGITS
                || (digits == EXACT_DIGITS && memcmp(s + d0, EXACT_LIMIT, EXACT_DIGITS) >= 0))) {
            *start = from;
            *end = d;
            return 1;
        }
        i = to;
    }
    *pos = len;
    return 0;
}

size_t kling_json_bigint_count(const char *json, size_t len) {
    const unsigned char *s = (const unsigned char *)json;
    size_t pos = 0, start, end, n = 0;
    while (next_literal(s, len, &pos, &start, &end)) n++;
    return n;
}

size_t kling_json_bigint_quote(const char *json, size_t len, char *out) {
    const unsigned char *s = (const unsigned char *)json;
    size_t pos = 0, copied = 0, w = 0, start, end;
    while (next_literal(s, len, &pos, &start, &end)) {
        memcpy(out + w, json + copied, start - copied);
        w += start - copied;
        out[w++] = '"';
        memcpy(out + w, json + start, end - start);
        w += end - start;
        out[w++] = '"';
        copied = end;
    }
    memcpy(out + w, json + copied, len - copied);
    return w + (len - copied);
}
