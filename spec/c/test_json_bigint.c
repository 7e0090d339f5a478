/* Integer literals past a double's exact range, quoted: the 2^53 boundary,
 * signs, fractions and exponents, strings and their escapes, text that is not
 * JSON, and the output's size. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json_bigint.h"

/* Checks that text is written as want, and that the count agrees. */
static void check_quote(const char *text, const char *want, int line) {
    size_t len = strlen(text), n = kling_json_bigint_count(text, len);
    char *out = malloc(len + 2 * n + 1);
    if (out == NULL) abort();
    size_t w = kling_json_bigint_quote(text, len, out);
    out[w] = '\0';
    if (!check_report(w == len + 2 * n && strcmp(out, want) == 0, text, __FILE__, line)) {
        fprintf(stderr, "    got \"%s\" (%zu bytes, %zu quoted), want \"%s\"\n", out, w, n, want);
    }
    free(out);
}

#define QUOTE(text, want) check_quote(text, want, __LINE__)
#define SAME(text) check_quote(text, text, __LINE__)

static void test_boundary(void) {
    SAME("9007199254740991");
    QUOTE("9007199254740992", "\"9007199254740992\"");
    QUOTE("9007199254740993", "\"9007199254740993\"");
    SAME("1000000000000000"); /* 16 digits under 2^53 */
    QUOTE("10000000000000000", "\"10000000000000000\"");
    QUOTE("{\"task_id\":861796292580000001,\"n\":5}", "{\"task_id\":\"861796292580000001\",\"n\":5}");
    QUOTE("[861796292580000001, -861796292580000002,1700000000000]",
          "[\"861796292580000001\", \"-861796292580000002\",1700000000000]");
    QUOTE(" 861796292580000001 ", " \"861796292580000001\" ");
}

static void test_left_alone(void) {
    SAME("{\"created_at\":1733571234567,\"x\":-5,\"y\":0}");
    SAME("[1e300, 9007199254740993.0, 9007199254740993e0, 9007199254740993E-1, 0.9007199254740993]");
    SAME("[09007199254740993]"); /* a leading zero: no JSON integer, left for the decoder */
    SAME("{\"id\":\"861796292580000001\"}");
    SAME("{\"a\":\"x\\\"861796292580000001\\\\\",\"b\":1}"); /* escaped quotes inside the string */
    SAME("");
    SAME("-");
    SAME("\"unclosed 861796292580000001");
}

static void test_not_json(void) {
    QUOTE("{\"a\":\"b\"861796292580000001}", "{\"a\":\"b\"\"861796292580000001\"}");
    SAME("12-9007199254740993"); /* one token with a sign inside: not an integer */
    SAME("\\\"861796292580000001"); /* outside a string a backslash is a byte like any */
    QUOTE("x861796292580000001", "x\"861796292580000001\"");
}

int main(void) {
    test_boundary();
    test_left_alone();
    test_not_json();
    return check_done();
}
