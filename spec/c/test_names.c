/* The closest known name (src/pure/names.c): the one "did you mean" rule of the C checkers
 * (sched{}, slots{}, http{} and its requests) and of kling.validate.closest. */
#include "names.h"

#include "check.h"

static const char *const SCHED[] = {
    "min_interval_ms", "max_interval_ms", "jitter", "backoff", "max_age_ms", "run_deadline_ms", "seed", NULL,
};

static size_t count(const char *const *known) {
    size_t n = 0;
    while (known[n] != NULL) {
        n++;
    }
    return n;
}

/* The suggestion for name among known, or NULL when none. */
static const char *near1(const char *name, const char *const *known) {
    size_t near[16];
    size_t k = kling_name_closest(name, strlen(name), known, NULL, count(known), near);
    return k > 0 ? known[near[0]] : NULL;
}

static void test_distance(void) {
    CHECK_INT(kling_name_distance("", 0, "", 0), 0);
    CHECK_INT(kling_name_distance("abc", 3, "", 0), 3);
    CHECK_INT(kling_name_distance("", 0, "abc", 3), 3);
    CHECK_INT(kling_name_distance("kitten", 6, "sitting", 7), 3);
    CHECK_INT(kling_name_distance("timeout", 7, "timeout_ms", 10), 3);
    CHECK_INT(kling_name_distance("Method", 6, "method", 6), 1);
    CHECK_INT(kling_name_distance("a\0b", 3, "a\0c", 3), 1); /* lengths, not NULs */
}

static void test_closest(void) {
    static const char *const REQ[] = {"method", "url", "body", "headers", "timeout_ms", "follow", NULL};
    static const char *const TIES[] = {"cb", "ab", "bb", NULL};
    size_t near[4], lens[3] = {2, 2, 2};
    CHECK_STR(near1("min_interval", SCHED), "min_interval_ms");
    CHECK_STR(near1("jiter", SCHED), "jitter");
    CHECK_STR(near1("Method", REQ), "method");
    CHECK(near1("timeout", REQ) == NULL);           /* 3 edits, beyond max(2, 7 / 3) */
    CHECK_STR(near1("timeout_m", REQ), "timeout_ms");
    CHECK(near1("window", SCHED) == NULL);          /* nothing within 2 edits */
    CHECK(near1("", SCHED) == NULL);
    /* a name far longer than every known one is never compared */
    CHECK(near1("min_interval_ms_min_interval_ms_min_interval_ms", SCHED) == NULL);
    /* ties: every known name as close, sorted by name; the first is the suggestion */
    CHECK_INT(kling_name_closest("xb", 2, TIES, lens, 3, near), 3);
    CHECK_STR(TIES[near[0]], "ab");
    CHECK_STR(TIES[near[1]], "bb");
    CHECK_STR(TIES[near[2]], "cb");
    CHECK_INT(kling_name_closest("cb", 2, TIES, NULL, 3, near), 1); /* an exact name is its own */
    CHECK_STR(TIES[near[0]], "cb");
}

int main(void) {
    test_distance();
    test_closest();
    return check_done();
}
