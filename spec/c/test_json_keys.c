/* Duplicate object keys: paths, decoded comparison (escapes, surrogate
 * pairs), document order, invalid text, depth, scratch, and 100k keys. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json_keys.h"

static char path[256];
static struct kling_json_keys_result res;

/* Checks text with ample scratch; the status, and the path in `path`. */
static int run(const char *text) {
    struct kling_json_key keys[64];
    return kling_json_keys_check(text, strlen(text), keys, 64, path, sizeof(path), &res);
}

static void check_dup(const char *text, const char *want, size_t at, size_t first, int line) {
    int rc = run(text);
    if (!check_report(rc == KLING_JSON_KEYS_DUP && strcmp(path, want) == 0 && res.at == at
                      && res.first == first, text, __FILE__, line)) {
        fprintf(stderr, "    rc %d path \"%s\" (want \"%s\") at %zu first %zu\n", rc, path, want, res.at,
                res.first);
    }
}

static void check_rc(const char *text, int want, int line) {
    int rc = run(text);
    if (!check_report(rc == want, text, __FILE__, line)) {
        fprintf(stderr, "    rc %d, want %d (at %zu)\n", rc, want, res.at);
    }
}

#define DUP(text, want, at, first) check_dup(text, want, at, first, __LINE__)
#define RC(text, want) check_rc(text, want, __LINE__)

static void test_paths(void) {
    DUP("{\"prompt\":\"a\",\"prompt\":\"b\"}", "prompt", 14, 1);
    DUP("{\"mode\":\"std\", \"x\":1, \"mode\":\"pro\"}", "mode", 22, 1);
    DUP("{\"requests\":[{},{\"a\":1},{},{\"prompt\":1,\"prompt\":2}]}", "requests[4].prompt", 39, 28);
    DUP("{\"accounts\":[{\"credit\":\"1\",\"credit\":\"2\"}]}", "accounts[1].credit", 27, 14);
    DUP("[{\"x\":1,\"x\":2}]", "[1].x", 8, 2);
    DUP("{\"a\":{\"b\":{\"c\":[[{\"d\":1,\"d\":2}]]}}}", "a.b.c[1][1].d", 24, 18);
    DUP("{\"\":1,\"\":2}", "[\"\"]", 6, 1);
    DUP("{\"a b\":{\"c.d\":1,\"c.d\":2}}", "[\"a b\"][\"c.d\"]", 16, 8);
    DUP("{\"q\\\"\":1,\"q\\\"\":2}", "[\"q\\\"\"]", 9, 1);
    DUP("{\"a\\nb\":1,\"a\\u000ab\":2}", "[\"a\\x0ab\"]", 10, 1);
    DUP("{\"k-1_x\":1,\"k-1_x\":1}", "k-1_x", 11, 1);
    DUP("{\"9a\":1,\"9a\":1}", "[\"9a\"]", 8, 1);
}

static void test_decoded(void) {
    DUP("{\"a\":1,\"\\u0061\":2}", "a", 7, 1);
    DUP("{\"\\u0061\":1,\"a\":2}", "a", 12, 1);
    DUP("{\"/\":1,\"\\/\":2}", "[\"/\"]", 7, 1);
    DUP("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", "[\"\\xf0\\x9f\\x98\\x80\"]", 18, 1);
    DUP("{\"\\u00e9\":1,\"\xc3\xa9\":2}", "[\"\\xc3\\xa9\"]", 12, 1);
    DUP("{\"\\u4e2d\":1,\"\xe4\xb8\xad\":2}", "[\"\\xe4\\xb8\\xad\"]", 12, 1);
    DUP("{\"\\u0000\":1,\"\\u0000\":2}", "[\"\\x00\"]", 12, 1);
    DUP("{\"\\t\":1,\"\\u0009\":2}", "[\"\\x09\"]", 8, 1);
    RC("{\"ab\":1,\"a\":2,\"a\\u0062c\":3,\"\":4}", KLING_JSON_KEYS_UNIQUE);
    RC("{\"a\\\"\":1,\"a\\\\\":2}", KLING_JSON_KEYS_UNIQUE);
    RC("{\"\\u00e9\":1,\"\\u00e8\":2,\"e\":3}", KLING_JSON_KEYS_UNIQUE);
    RC("{\"\\ud83d\\ude00\":1,\"\\ud83d\\ude01\":2}", KLING_JSON_KEYS_UNIQUE);
}

static void test_scopes(void) {
    RC("{\"a\":{\"a\":1},\"b\":{\"a\":2}}", KLING_JSON_KEYS_UNIQUE);
    RC("[{\"a\":1},{\"a\":1}]", KLING_JSON_KEYS_UNIQUE);
    RC("{\"a\":{\"b\":1},\"b\":2}", KLING_JSON_KEYS_UNIQUE);
    RC("{\"a\":[{\"a\":1,\"b\":{\"a\":2}}],\"b\":[]}", KLING_JSON_KEYS_UNIQUE);
    /* the one whose second occurrence comes first, inner objects close first */
    DUP("{\"a\":1,\"a\":2,\"b\":{\"c\":1,\"c\":2}}", "a", 7, 1);
    DUP("{\"b\":{\"c\":1,\"c\":2},\"a\":1,\"a\":2}", "b.c", 12, 6);
    DUP("{\"x\":{\"y\":1,\"z\":{\"k\":1,\"k\":1},\"y\":2}}", "x.z.k", 23, 17);
    DUP("{\"a\":1,\"b\":1,\"a\":1,\"b\":1,\"a\":1}", "a", 13, 1);
    DUP("{\"b\":1,\"a\":1,\"b\":1,\"a\":1}", "b", 13, 1);
}

static void test_values(void) {
    RC("1", KLING_JSON_KEYS_UNIQUE);
    RC(" \"a\" ", KLING_JSON_KEYS_UNIQUE);
    RC("true", KLING_JSON_KEYS_UNIQUE);
    RC("null", KLING_JSON_KEYS_UNIQUE);
    RC(" [ ] ", KLING_JSON_KEYS_UNIQUE);
    RC("{ }", KLING_JSON_KEYS_UNIQUE);
    RC("[1., -.5, 1.e5, -0, 2E+3, \"\\u0001\"]", KLING_JSON_KEYS_UNIQUE); /* as lua-cjson takes them */
    RC("{\"a\" : [1, {\"b\": null}] ,\r\n\t\"c\":false}", KLING_JSON_KEYS_UNIQUE);
}

static void test_invalid(void) {
    static const char *const bad[] = {"", " ", "{", "{\"a\":1", "{\"a\" 1}", "{\"a\":1,}", "[1,]", "{} x",
        "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"abc", "\"\\", "{a:1}", "{\"a\":}", "tru", "nul", "[1 2]",
        "{\"a\":1 \"b\":2}", "]", "}", "[}", "{]", "{\"a\":1]", "[1}", ",", "{,}", "[,1]"};
    size_t i;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        RC(bad[i], KLING_JSON_KEYS_ESYNTAX);
        CHECK_STR(path, "");
    }
    /* a control character written raw in a string (lua-cjson takes it): at that byte */
    RC("{\"p\":\"a\x01" "b\"}", KLING_JSON_KEYS_ESYNTAX);
    CHECK(res.at == 7);
    RC("{\"\t\":1}", KLING_JSON_KEYS_ESYNTAX);
    CHECK(res.at == 2);
    RC("[\"\n\"]", KLING_JSON_KEYS_ESYNTAX);
    RC("{\"a\":\"\x1f\"}", KLING_JSON_KEYS_ESYNTAX);
    RC("{\"a\":\"\x7f \\u001b\"}", KLING_JSON_KEYS_UNIQUE); /* DEL and an escaped ESC are JSON */
    /* a duplicate before the error is not reported: the text was not checked */
    RC("{\"a\":{\"b\":1,\"b\":2},", KLING_JSON_KEYS_ESYNTAX);
    CHECK_STR(path, "");
    RC("{\"a\":1}", KLING_JSON_KEYS_UNIQUE);
    {
        struct kling_json_key k[2];
        CHECK_INT(kling_json_keys_check("{}", KLING_JSON_KEYS_LEN_MAX + 1, k, 2, path, sizeof(path), &res),
                  KLING_JSON_KEYS_ELONG);
    }
    CHECK_STR(kling_json_keys_strerror(KLING_JSON_KEYS_EDEPTH), "nested deeper than 1000");
    CHECK_STR(kling_json_keys_strerror(42), "unknown status");
}

static void test_depth(void) {
    size_t n = KLING_JSON_KEYS_DEPTH, i;
    char *t = malloc(2 * n + 16);
    if (t == NULL) abort();
    for (i = 0; i < n; i++) {
        t[i] = '[';
        t[n + i] = ']';
    }
    t[2 * n] = '\0';
    RC(t, KLING_JSON_KEYS_UNIQUE);
    free(t);
    t = malloc(2 * (n + 1) + 16);
    if (t == NULL) abort();
    for (i = 0; i <= n; i++) {
        t[i] = '[';
        t[n + 1 + i] = ']';
    }
    t[2 * (n + 1)] = '\0';
    RC(t, KLING_JSON_KEYS_EDEPTH);
    CHECK_INT(res.at, n);
    free(t);
}

static void test_scratch(void) {
    struct kling_json_key k[4];
    const char *t = "{\"a\":{\"b\":1,\"c\":2},\"d\":{\"e\":\"x:y\",\"e\":1}}";
    CHECK_INT(kling_json_keys_check(t, strlen(t), k, 2, path, sizeof(path), &res), KLING_JSON_KEYS_ESCRATCH);
    CHECK_INT(res.need, 7); /* every ':' outside strings, plus one */
    CHECK_INT(kling_json_keys_check(t, strlen(t), k, 3, path, sizeof(path), &res), KLING_JSON_KEYS_ESCRATCH);
    CHECK_INT(kling_json_keys_check(t, strlen(t), k, 4, path, sizeof(path), &res), KLING_JSON_KEYS_DUP);
    CHECK_STR(path, "d.e"); /* four keys open at most: a, d and the two e */
    CHECK_INT(kling_json_keys_check("{}", 2, NULL, 0, path, sizeof(path), &res), KLING_JSON_KEYS_UNIQUE);
    CHECK_INT(kling_json_keys_check("[1]", 3, NULL, 0, NULL, 0, &res), KLING_JSON_KEYS_UNIQUE);
    CHECK_INT(kling_json_keys_check("{\"a\":1,\"a\":2}", 13, k, 3, NULL, 0, &res), KLING_JSON_KEYS_DUP);
    CHECK_INT(res.at, 7);
}

static void test_truncation(void) {
    char small[8], key[200], text[600];
    struct kling_json_key k[4];
    const char *t = "{\"abcdefgh\":{\"x\":1,\"x\":2}}";
    CHECK_INT(kling_json_keys_check(t, strlen(t), k, 4, small, sizeof(small), &res), KLING_JSON_KEYS_DUP);
    CHECK_STR(small, "abcd...");
    memset(key, 'k', 100);
    key[100] = '\0';
    snprintf(text, sizeof(text), "{\"%s\":1,\"%s\":2}", key, key);
    RC(text, KLING_JSON_KEYS_DUP);
    CHECK_STR(path, "[\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...\"]");
}

/* 100k keys in one object: sorted once when it closes, not compared pairwise. */
static void test_many(void) {
    size_t n = 100000, i, len = 0, cap = n * 16 + 16;
    char *t = malloc(cap);
    struct kling_json_key *k = malloc(n * sizeof(*k));
    if (t == NULL || k == NULL) abort();
    t[len++] = '{';
    for (i = 0; i < n; i++) {
        len += (size_t)snprintf(t + len, cap - len, "%s\"k%zu\":%zu", i ? "," : "", (i * 7919) % n, i);
    }
    t[len++] = '}';
    CHECK_INT(kling_json_keys_check(t, len, k, n, path, sizeof(path), &res), KLING_JSON_KEYS_UNIQUE);
    memcpy(t + len - 1, ",\"k5\":0}", 9); /* k5 again, last */
    len += 7;
    CHECK_INT(kling_json_keys_check(t, len, k, n, path, sizeof(path), &res), KLING_JSON_KEYS_ESCRATCH);
    CHECK_INT(res.need, n + 2);
    free(k);
    k = malloc(res.need * sizeof(*k));
    if (k == NULL) abort();
    CHECK_INT(kling_json_keys_check(t, len, k, n + 2, path, sizeof(path), &res), KLING_JSON_KEYS_DUP);
    CHECK_STR(path, "k5");
    CHECK_INT(res.at, len - 7);
    free(k);
    free(t);
}

/* A bound on values: every value counts (the top one, members', items,
 * containers); the first one past it stops the scan (r->at), before any sort,
 * and the scratch it asks for is bounded by it, not by the text's keys. */
static void test_max_values(void) {
    struct kling_json_key k[8];
    const char *t = "{\"a\":[1,2],\"b\":{}}"; /* 5 values */
    size_t n = 100000, i, len = 0, cap = n * 24 + 16;
    char *big;
    CHECK_INT(kling_json_keys_check_max(t, strlen(t), k, 8, 5, path, sizeof(path), &res), KLING_JSON_KEYS_UNIQUE);
    CHECK_INT(kling_json_keys_check_max(t, strlen(t), k, 8, 4, path, sizeof(path), &res), KLING_JSON_KEYS_EMANY);
    CHECK_INT(res.at, 15); /* {} of b */
    CHECK_INT(kling_json_keys_check_max("[[[]]]", 6, k, 8, 2, path, sizeof(path), &res), KLING_JSON_KEYS_EMANY);
    CHECK_INT(res.at, 2);
    /* a duplicate within the bound is still found; one past it is never reached */
    t = "{\"a\":1,\"a\":2}";
    CHECK_INT(kling_json_keys_check_max(t, strlen(t), k, 8, 3, path, sizeof(path), &res), KLING_JSON_KEYS_DUP);
    CHECK_INT(kling_json_keys_check_max(t, strlen(t), k, 8, 2, path, sizeof(path), &res), KLING_JSON_KEYS_EMANY);
    /* 100k keys, bound 10: the scratch asked for is the bound's, and it is enough */
    big = malloc(cap);
    if (big == NULL) abort();
    big[len++] = '{';
    for (i = 0; i < n; i++) {
        len += (size_t)snprintf(big + len, cap - len, "%s\"k%zu\":[%zu]", i ? "," : "", i, i);
    }
    big[len++] = '}';
    CHECK_INT(kling_json_keys_check_max(big, len, k, 2, 6, path, sizeof(path), &res), KLING_JSON_KEYS_ESCRATCH);
    CHECK_INT(res.need, 8);
    CHECK_INT(kling_json_keys_check_max(big, len, k, 8, 6, path, sizeof(path), &res), KLING_JSON_KEYS_EMANY);
    CHECK_INT(res.at, 25); /* the 2 in k2 */
    free(big);
}

int main(void) {
    test_paths();
    test_decoded();
    test_scopes();
    test_values();
    test_invalid();
    test_depth();
    test_scratch();
    test_truncation();
    test_many();
    test_max_values();
    return check_done();
}
