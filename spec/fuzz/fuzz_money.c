/* Money text and arithmetic: decimal parsing at any scale, formatting, and
 * the checked operations. Invariants: what parses exactly formats back to
 * text that parses to the same integer; money and seconds parse to the
 * scales they promise (seconds never negative); formatted text fits
 * KLING_MONEY_FMT_MAX; add/sub/mul/muldiv either give the exact result
 * (checked against 128-bit arithmetic) or report overflow, never wrap. */
#include "fuzz.h"
#include "money.h"

static void text(struct fuzz_in *in) {
    int decimals = fuzz_u8(in) % 10, round = fuzz_u8(in) & 1, places = fuzz_u8(in) % 7;
    size_t len, n;
    char *s = fuzz_bytes(in, 48, &len), buf[KLING_MONEY_FMT_MAX];
    int64_t v = 0, again = 0, ms = -1;
    enum kling_money_err e = kling_decimal_parse(s, len, decimals, round, &v);
    FUZZ_CHECK(e <= KLING_MONEY_BAD_RULE && kling_money_strerror(e) != NULL);
    if (e == KLING_MONEY_OK) {
        n = kling_decimal_format(v, decimals, buf);
        FUZZ_CHECK(n < KLING_MONEY_FMT_MAX && buf[n] == '\0');
        FUZZ_CHECK(kling_decimal_parse(buf, n, decimals, 0, &again) == KLING_MONEY_OK && again == v);
    }
    if (kling_money_parse(s, len, &v) == KLING_MONEY_OK) {
        n = kling_money_format(v, buf);
        FUZZ_CHECK(kling_money_parse(buf, n, &again) == KLING_MONEY_OK && again == v);
        n = kling_money_format_fixed(v, places, buf);
        FUZZ_CHECK(n < KLING_MONEY_FMT_MAX && buf[n] == '\0');
    }
    if (kling_seconds_parse_ms(s, len, &ms) == KLING_MONEY_OK) {
        FUZZ_CHECK(ms >= 0);
    }
    free(s);
}

static int fits(__int128 x) {
    return x >= INT64_MIN && x <= INT64_MAX;
}

static void arithmetic(struct fuzz_in *in) {
    int64_t a = fuzz_int(in), b = fuzz_int(in), d = fuzz_int(in), r = 0;
    enum kling_money_err e;
    e = kling_money_add(a, b, &r);
    FUZZ_CHECK(fits((__int128)a + b) ? e == KLING_MONEY_OK && r == a + b : e == KLING_MONEY_OVERFLOW);
    e = kling_money_sub(a, b, &r);
    FUZZ_CHECK(fits((__int128)a - b) ? e == KLING_MONEY_OK && r == a - b : e == KLING_MONEY_OVERFLOW);
    /* Products are kept in the symmetric range +-INT64_MAX: INT64_MIN itself may be refused. */
    e = kling_money_mul(a, b, &r);
    if ((__int128)a * b == INT64_MIN) {
        FUZZ_CHECK(e == KLING_MONEY_OVERFLOW || (e == KLING_MONEY_OK && r == INT64_MIN));
    } else {
        FUZZ_CHECK(fits((__int128)a * b) ? e == KLING_MONEY_OK && r == a * b : e == KLING_MONEY_OVERFLOW);
    }
    if (a >= 0 && b >= 0 && d > 0) {
        __int128 p = (__int128)a * b, q = p / d;
        if (2 * (p % d) >= d) q++;
        e = kling_money_muldiv(a, b, d, &r);
        FUZZ_CHECK(e != KLING_MONEY_OK || (fits(q) && r == (int64_t)q));
    }
    e = kling_money_scale(a, b, &r);
    FUZZ_CHECK(e == KLING_MONEY_OK || e == KLING_MONEY_OVERFLOW || e == KLING_MONEY_NEGATIVE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_in in = {data, size};
    arithmetic(&in);
    text(&in);
    return 0;
}
