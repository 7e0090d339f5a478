/* Money text and arithmetic: decimal parsing at any scale, formatting, and
 * the checked operations. Invariants: what parses exactly formats back to
 * text that parses to the same integer; money and seconds parse to the
 * scales they promise (seconds never negative); formatted text fits
 * KLING_MONEY_FMT_MAX; add/sub/mul/muldiv/scale either give the exact result
 * (checked against 128-bit arithmetic: muldiv and scale whenever the rounded
 * result fits, however large the product) or report overflow, never wrap.
 * fuzz_money_portable runs the same checks over the portable 128-bit path
 * (KLING_MONEY_NO_INT128). */
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

/* round_half_up(a * b / d) for a, b >= 0, d > 0, by unsigned 128-bit arithmetic (a x b < 2^126;
 * the quotient is capped at 2^64 so that the caller's range check sees it too big) */
static __int128 muldiv_ref(int64_t a, int64_t b, int64_t d) {
    unsigned __int128 p = (unsigned __int128)a * (unsigned __int128)b, q = p / (unsigned __int128)d;
    if (2 * (p % (unsigned __int128)d) >= (unsigned __int128)d) q++;
    if (q > ((unsigned __int128)1 << 64)) q = (unsigned __int128)1 << 64;
    return (__int128)q;
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
    /* muldiv against the slow reference: exact whenever the rounded result fits, however
     * large a x b is; out of range exactly when it does not. */
    e = kling_money_muldiv(a, b, d, &r);
    if (a < 0 || b < 0) {
        FUZZ_CHECK(e == KLING_MONEY_NEGATIVE);
    } else if (d <= 0) {
        FUZZ_CHECK(e == KLING_MONEY_BAD_RULE);
    } else {
        __int128 q = muldiv_ref(a, b, d);
        FUZZ_CHECK(fits(q) ? e == KLING_MONEY_OK && r == (int64_t)q : e == KLING_MONEY_OVERFLOW);
    }
    /* scale: |a| x |b| / 10^6 half up, with the sign of a x b (half away from zero) */
    e = kling_money_scale(a, b, &r);
    if (a == INT64_MIN || b == INT64_MIN) {
        FUZZ_CHECK(e == KLING_MONEY_OVERFLOW);
    } else {
        __int128 q = muldiv_ref(a < 0 ? -a : a, b < 0 ? -b : b, KLING_MICROS);
        if ((a < 0) != (b < 0)) q = -q;
        FUZZ_CHECK(fits(q) && q != INT64_MIN ? e == KLING_MONEY_OK && r == (int64_t)q : e == KLING_MONEY_OVERFLOW);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_in in = {data, size};
    arithmetic(&in);
    text(&in);
    return 0;
}
