/* Big-integer quoting on any text, against what the output must be: the input
 * with `count` pairs of quotes added, each around a literal -?[1-9][0-9]* of
 * 2^53 or more that stood outside strings, and nothing else changed.
 * Invariants: the output's size is len + 2 * count; removing the added quotes
 * gives the input back; every quoted stretch is such a literal, ended by a
 * byte that cannot continue a number; every number token outside strings that
 * is such a literal is quoted; the output needs no more quoting. */
#include "fuzz.h"
#include "json_bigint.h"

static int digit(uint8_t c) {
    return c >= '0' && c <= '9';
}

static int number_byte(uint8_t c) {
    return digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

/* Whether s[a..b) (a minus sign, then digits) is at least 2^53 in magnitude,
 * written without a leading zero. */
static int big_literal(const uint8_t *s, size_t a, size_t b) {
    static const char limit[] = "9007199254740992";
    size_t d = a < b && s[a] == '-' ? a + 1 : a, k;
    if (d >= b || s[d] == '0') return 0;
    for (k = d; k < b; k++) {
        if (!digit(s[k])) return 0;
    }
    return b - d > 16 || (b - d == 16 && memcmp(s + d, limit, 16) >= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *in = (const char *)data;
    size_t n = kling_json_bigint_count(in, size);
    FUZZ_CHECK(n <= size / 16 + 1);
    uint8_t *out = malloc(size + 2 * n + 1); /* exact size (+1 for malloc(0)): ASan sees one byte too many */
    FUZZ_CHECK(out != NULL);
    size_t w = kling_json_bigint_quote(in, size, (char *)out);
    FUZZ_CHECK(w == size + 2 * n);

    /* Walk both: outside strings of the input, an added quote opens a literal. */
    size_t i = 0, j = 0, added = 0, token_end = 0;
    int in_string = 0;
    while (i < size) {
        if (!in_string && out[j] == '"' && data[i] != '"') {
            size_t start = i;
            j++;
            while (i < size && (digit(data[i]) || (i == start && data[i] == '-'))) {
                FUZZ_CHECK(out[j] == data[i]);
                i++;
                j++;
            }
            FUZZ_CHECK(out[j] == '"'); /* the closing one */
            j++;
            FUZZ_CHECK(big_literal(data, start, i));
            FUZZ_CHECK(i == size || !number_byte(data[i]));
            added++;
            token_end = i;
            continue;
        }
        FUZZ_CHECK(out[j] == data[i]);
        if (!in_string && i >= token_end && (digit(data[i]) || data[i] == '-')) {
            /* a number token starts: it runs over every byte a number may hold */
            size_t d = i + (data[i] == '-'), to;
            while (d < size && digit(data[d])) d++;
            for (to = d; to < size && number_byte(data[to]); to++) {
            }
            FUZZ_CHECK(!(to == d && big_literal(data, i, d))); /* such a one is quoted (above) */
            token_end = to;
        }
        if (in_string && data[i] == '\\' && i + 1 < size) {
            FUZZ_CHECK(out[j + 1] == data[i + 1]);
            i += 2;
            j += 2;
            continue;
        }
        if (data[i] == '"') in_string = !in_string;
        i++;
        j++;
    }
    FUZZ_CHECK(j == w && added == n);
    FUZZ_CHECK(kling_json_bigint_count((const char *)out, w) == 0);
    free(out);
    return 0;
}
