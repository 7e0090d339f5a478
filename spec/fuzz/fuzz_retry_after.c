/* Retry-After and HTTP dates: any header text at any clock, plus a date
 * printed here in each of the three HTTP-date forms. Invariants: a parsed
 * value is a delay in [0, KLING_RETRY_AFTER_MAX_MS]; surrounding blanks change
 * nothing; a printed date parses to exactly its distance from now (clamped),
 * whichever form carries it. */
#include <time.h>

#include "fuzz.h"
#include "retry.h"

static int64_t expect(int64_t when, int64_t now) {
    if (now >= when) return 0;
    if (when - now >= KLING_RETRY_AFTER_MAX_MS / 1000) return KLING_RETRY_AFTER_MAX_MS;
    return (when - now) * 1000;
}

static void dates(int64_t when, int64_t now) {
    static const char *const DAY[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const LONGDAY[] = {"Sunday", "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};
    static const char *const MON[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)when;
    struct tm tm;
    char buf[3][64];
    int i, n[3];
    if (gmtime_r(&t, &tm) == NULL) return;
    n[0] = snprintf(buf[0], sizeof buf[0], "%s, %02d %s %04d %02d:%02d:%02d GMT", DAY[tm.tm_wday],
                    tm.tm_mday, MON[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    n[1] = snprintf(buf[1], sizeof buf[1], "%s, %02d-%s-%02d %02d:%02d:%02d GMT", LONGDAY[tm.tm_wday],
                    tm.tm_mday, MON[tm.tm_mon], tm.tm_year % 100, tm.tm_hour, tm.tm_min, tm.tm_sec);
    n[2] = snprintf(buf[2], sizeof buf[2], "%s %s %2d %02d:%02d:%02d %04d", DAY[tm.tm_wday],
                    MON[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
    for (i = 0; i < 3; i++) {
        int64_t d = -1;
        if (i == 1) continue; /* RFC 850's two-digit year is resolved against now: checked below */
        FUZZ_CHECK(kling_retry_after(buf[i], (size_t)n[i], now, &d) == 0);
        FUZZ_CHECK(d == expect(when, now));
    }
    {
        int64_t d = -1;
        if (kling_retry_after(buf[1], (size_t)n[1], now, &d) == 0) {
            FUZZ_CHECK(d >= 0 && d <= KLING_RETRY_AFTER_MAX_MS);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_in in = {data, size};
    int64_t now = fuzz_int(&in), d = -1, d2 = -1;
    /* 1970..9999: what the IMF-fixdate form can carry. */
    int64_t when = (int64_t)(fuzz_u64(&in, 5) % INT64_C(253402300800));
    size_t len;
    char *s = fuzz_bytes(&in, 256, &len), *padded;
    int r = kling_retry_after(s, len, now, &d);
    if (r == 0) {
        FUZZ_CHECK(d >= 0 && d <= KLING_RETRY_AFTER_MAX_MS);
    } else {
        FUZZ_CHECK(r == -1);
    }
    padded = malloc(len + 2);
    if (padded == NULL) abort();
    padded[0] = ' ';
    memcpy(padded + 1, s, len);
    padded[len + 1] = '\t';
    FUZZ_CHECK(kling_retry_after(padded, len + 2, now, &d2) == r);
    FUZZ_CHECK(r != 0 || d2 == d);
    free(padded);
    free(s);
    if (now > -(INT64_C(1) << 40) && now < (INT64_C(1) << 40)) {
        dates(when, now);
    }
    return 0;
}
