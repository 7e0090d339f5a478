/* The id <-> handle map: both ways, refusals that change nothing, ids with any
 * bytes, churn that must not grow the table, and 200,000 ids against a model. */
#include "idmap.h"

#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char SEED[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static struct kling_idmap *mk(void) {
    struct kling_idmap *m = kling_idmap_new(SEED);
    if (m == NULL) {
        fprintf(stderr, "kling_idmap_new failed\n");
        exit(2);
    }
    return m;
}

static void test_both_ways(void) {
    struct kling_idmap *m = mk();
    uint32_t h = 99;
    size_t len = 0;
    const char *id;
    CHECK(kling_idmap_find(m, "gw1", 3, &h) == 0);
    CHECK(kling_idmap_id(m, 0, &len) == NULL);
    CHECK_INT(kling_idmap_put(m, "gw1", 3, 0), KLING_IDMAP_OK);
    CHECK_INT(kling_idmap_put(m, "gw2", 3, 7), KLING_IDMAP_OK);
    CHECK(kling_idmap_find(m, "gw1", 3, &h) == 1 && h == 0);
    CHECK(kling_idmap_find(m, "gw2", 3, &h) == 1 && h == 7);
    CHECK(kling_idmap_find(m, "gw", 2, &h) == 0);
    id = kling_idmap_id(m, 7, &len);
    CHECK(id != NULL && len == 3 && memcmp(id, "gw2", 3) == 0);
    CHECK(kling_idmap_id(m, 3, &len) == NULL);
    CHECK(kling_idmap_id(m, 1000000, &len) == NULL);
    CHECK_INT(kling_idmap_count(m), 2);
    CHECK_INT(kling_idmap_remove(m, 0), 1);
    CHECK_INT(kling_idmap_remove(m, 0), 0);
    CHECK_INT(kling_idmap_remove(m, 5), 0);
    CHECK(kling_idmap_find(m, "gw1", 3, &h) == 0);
    CHECK_INT(kling_idmap_count(m), 1);
    /* A freed handle and a forgotten id are free again. */
    CHECK_INT(kling_idmap_put(m, "gw1", 3, 0), KLING_IDMAP_OK);
    CHECK(kling_idmap_find(m, "gw1", 3, &h) == 1 && h == 0);
    kling_idmap_free(m);
    kling_idmap_free(NULL);
}

static void test_refusals(void) {
    struct kling_idmap *m = mk();
    char long_id[KLING_IDMAP_ID_LIMIT + 1];
    uint32_t h = 0;
    size_t len;
    memset(long_id, 'x', sizeof(long_id));
    CHECK_INT(kling_idmap_put(m, "a", 1, 1), KLING_IDMAP_OK);
    CHECK_WHY(kling_idmap_put(m, "a", 1, 2) == KLING_IDMAP_EEXIST, "an id names one handle");
    CHECK_WHY(kling_idmap_put(m, "b", 1, 1) == KLING_IDMAP_EEXIST, "a handle has one id");
    CHECK_INT(kling_idmap_put(m, "", 0, 3), KLING_IDMAP_EARG);
    CHECK_INT(kling_idmap_put(m, long_id, sizeof(long_id), 3), KLING_IDMAP_EARG);
    CHECK_INT(kling_idmap_put(m, long_id, KLING_IDMAP_ID_LIMIT, 3), KLING_IDMAP_OK);
    CHECK_INT(kling_idmap_put(m, "c", 1, KLING_IDMAP_HANDLE_LIMIT + 1), KLING_IDMAP_EARG);
    CHECK_WHY(kling_idmap_count(m) == 2, "refusals changed nothing: %zu ids", kling_idmap_count(m));
    CHECK(kling_idmap_find(m, "b", 1, &h) == 0);
    CHECK(kling_idmap_id(m, 2, &len) == NULL);
    CHECK(kling_idmap_find(m, long_id, sizeof(long_id), &h) == 0);
    CHECK_STR(kling_idmap_strerror(KLING_IDMAP_EEXIST), "the id or the handle is already mapped");
    kling_idmap_free(m);
}

static void test_any_bytes(void) {
    struct kling_idmap *m = mk();
    static const char a[] = {'t', 0, 'x'}, b[] = {'t', 0, 'y'}, c[] = {'t', 0};
    uint32_t h = 0;
    size_t len = 0;
    CHECK_INT(kling_idmap_put(m, a, 3, 1), KLING_IDMAP_OK);
    CHECK_INT(kling_idmap_put(m, b, 3, 2), KLING_IDMAP_OK);
    CHECK_INT(kling_idmap_put(m, c, 2, 3), KLING_IDMAP_OK);
    CHECK(kling_idmap_find(m, b, 3, &h) == 1 && h == 2);
    CHECK(kling_idmap_find(m, c, 2, &h) == 1 && h == 3);
    CHECK(kling_idmap_find(m, "t", 1, &h) == 0);
    CHECK(memcmp(kling_idmap_id(m, 1, &len), a, 3) == 0 && len == 3);
    kling_idmap_free(m);
}

/* Ids added and removed a million times, never more than 8 at once: the removed
 * slots are reclaimed, so the table stays small. */
static void test_churn(void) {
    struct kling_idmap *m = mk();
    char id[32];
    uint32_t h = 0;
    int i, ok = 1;
    size_t most = 0;
    for (i = 0; i < 1000000; i++) {
        int n = snprintf(id, sizeof(id), "gw%08x", (unsigned)i);
        ok &= kling_idmap_put(m, id, (size_t)n, (uint32_t)(i % 8)) == KLING_IDMAP_OK;
        if (i >= 7) {
            n = snprintf(id, sizeof(id), "gw%08x", (unsigned)(i - 7));
            ok &= kling_idmap_find(m, id, (size_t)n, &h) == 1 && h == (uint32_t)((i - 7) % 8);
            ok &= kling_idmap_remove(m, h) == 1;
        }
        if (kling_idmap_bytes(m) > most) {
            most = kling_idmap_bytes(m);
        }
    }
    CHECK_WHY(ok, "every put, find and remove of the churn held");
    CHECK_INT(kling_idmap_count(m), 7);
    CHECK_WHY(most < 4096, "the table did not grow with the churn: at most %zu bytes", most);
    kling_idmap_free(m);
}

/* 200,000 ids, every other one removed, against an array of what each handle holds. */
static void test_many(void) {
    enum { N = 200000 };
    struct kling_idmap *m = mk();
    char id[32];
    uint32_t h = 0;
    size_t len = 0;
    int i, ok = 1;
    for (i = 0; i < N; i++) {
        int n = snprintf(id, sizeof(id), "gw5f3a9c01%08x", (unsigned)i);
        ok &= kling_idmap_put(m, id, (size_t)n, (uint32_t)(N - 1 - i)) == KLING_IDMAP_OK;
    }
    for (i = 0; i < N; i += 2) {
        ok &= kling_idmap_remove(m, (uint32_t)(N - 1 - i)) == 1;
    }
    for (i = 0; i < N; i++) {
        int n = snprintf(id, sizeof(id), "gw5f3a9c01%08x", (unsigned)i);
        const char *got = kling_idmap_id(m, (uint32_t)(N - 1 - i), &len);
        if (i % 2 == 0) {
            ok &= kling_idmap_find(m, id, (size_t)n, &h) == 0 && got == NULL;
        } else {
            ok &= kling_idmap_find(m, id, (size_t)n, &h) == 1 && h == (uint32_t)(N - 1 - i);
            ok &= got != NULL && len == (size_t)n && memcmp(got, id, len) == 0;
        }
    }
    CHECK_WHY(ok, "every id found both ways, every removed one gone");
    CHECK_INT(kling_idmap_count(m), N / 2);
    CHECK_WHY(kling_idmap_bytes(m) < (size_t)N * 64, "%zu bytes for %d ids", kling_idmap_bytes(m), N / 2);
    kling_idmap_free(m);
}

int main(void) {
    test_both_ways();
    test_refusals();
    test_any_bytes();
    test_churn();
    test_many();
    return check_done();
}
