/* A response's header block: status lines (versions 1.0, 1.1, 2, 3; what is
 * not one), the fields of a block (CR LF and LF, folded lines, blanks around
 * values, lines that are no field) and the end of the walk. */
#include <string.h>

#include "check.h"
#include "http_head.h"

#define STATUS(line, want) CHECK_INT(kling_http_status(line, strlen(line)), want)

static void test_status(void) {
    STATUS("HTTP/1.1 200 OK\r\n", 200);
    STATUS("HTTP/2 204\r\n", 204);
    STATUS("HTTP/3 429", 429);
    STATUS("HTTP/1.0  302 Found", 302);
    STATUS("HTTP/1.1 20", -1);
    STATUS("HTTP/1.1 2000", -1);
    STATUS("HTTP/1.1 abc", -1);
    STATUS("http/1.1 200", -1);
    STATUS("HTTP/", -1);
    STATUS("", -1);
    STATUS("X-Status: HTTP/1.1 200", -1);
}

/* Walks text and checks the fields as "name=value" ("+value" for a continuation). */
static void walk(const char *text, const char *const *want, int line) {
    const char *p = text, *end = text + strlen(text);
    struct kling_http_field f;
    char got[128];
    size_t i = 0;
    while (kling_http_head_next(&p, end, &f)) {
        if (f.name) {
            snprintf(got, sizeof got, "%.*s=%.*s", (int)f.nlen, f.name, (int)f.vlen, f.value);
        } else {
            snprintf(got, sizeof got, "+%.*s", (int)f.vlen, f.value);
        }
        check_report(want[i] != NULL && strcmp(got, want[i]) == 0, got, __FILE__, line);
        if (want[i] != NULL) i++;
    }
    check_report(want[i] == NULL, "every field walked", __FILE__, line);
    check_report(p == end, "the walk ends at the end", __FILE__, line);
}

static void test_fields(void) {
    static const char *const crlf[] = {"Content-Type=application/json", "Retry-After=5", "X-Id=a b", NULL};
    static const char *const folded[] = {"X-Fold=one", "+two", "+three", "X-Empty=", NULL};
    static const char *const none[] = {NULL};
    walk("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nRetry-After:5\r\nX-Id: \t a b \t\r\n\r\n",
         crlf, __LINE__);
    walk("HTTP/2 200\nX-Fold: one\n two\n\tthree  \nno colon\n: no name\nX-Empty:\r\n", folded, __LINE__);
    walk("", none, __LINE__);
    walk("\r\n\r\nHTTP/1.1 100 Continue\r\n", none, __LINE__);
}

int main(void) {
    test_status();
    test_fields();
    return check_done();
}
