/* A tiny assertion helper for the C unit tests: each CHECK counts a pass or
 * prints the failing expression; check_done() prints "N passed, N failed"
 * and gives the exit status. One test binary per file, so the counters are
 * per binary. */
#ifndef KLING_CHECK_H
#define KLING_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

static inline int check_report(int ok, const char *what, const char *file, int line) {
    if (ok) {
        check_passed++;
    } else {
        check_failed++;
        fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what);
    }
    return ok;
}

static inline int check_int(long long a, long long b, const char *ea, const char *eb, const char *file,
                     int line) {
    if (a != b) {
        fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", file, line, ea, a, eb, b);
    }
    return check_report(a == b, ea, file, line);
}

static inline int check_str(const char *a, const char *b, const char *ea, const char *file, int line) {
    int ok = a != NULL && b != NULL && strcmp(a, b) == 0;
    if (!ok) {
        fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", file, line, ea,
                a ? a : "(null)", b ? b : "(null)");
    }
    return check_report(ok, ea, file, line);
}

static inline int check_done(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed == 0 && check_passed > 0 ? 0 : 1;
}

#define CHECK(cond) check_report(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_INT(a, b) check_int((long long)(a), (long long)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_STR(a, b) check_str((a), (b), #a, __FILE__, __LINE__)
/* A CHECK that also prints why on failure: CHECK_WHY(cond, "printf format", args...). */
#define CHECK_WHY(cond, ...)                                                 \
    do {                                                                     \
        if (!check_report(!!(cond), #cond, __FILE__, __LINE__)) {            \
            fputs("    ", stderr);                                           \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

#endif
