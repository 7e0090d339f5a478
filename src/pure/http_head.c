/* The status line and header fields of a response block (see http_head.h). */
#include "http_head.h"

#include <string.h>

long kling_http_status(const char *line, size_t len) {
    size_t i = 5;
    long code = 0;
    int digits;
    if (len < 5 || memcmp(line, "HTTP/", 5) != 0) {
        return -1;
    }
    while (i < len && line[i] != ' ') { /* the version: 1.1, 2, 3 */
        i++;
    }
    while (i < len && line[i] == ' ') {
        i++;
    }
    for (digits = 0; digits < 3; digits++, i++) {
        if (i >= len || line[i] < '0' || line[i] > '9') {
            return -1;
        }
        code = code * 10 + (line[i] - '0');
    }
    if (i < len && line[i] != ' ' && line[i] != '\r' && line[i] != '\n') {
        return -1;
    }
    return code;
}

static int is_blank(char c) {
    return c == ' ' || c == '\t';
}

int kling_http_head_next(const char **p, const char *end, struct kling_http_field *f) {
    const char *s = *p;
    while (s != NULL && s < end) {
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        const char *line_end = eol ? eol : end;
        const char *next = eol ? eol + 1 : end;
        const char *colon, *v, *ve;
        if (line_end > s && line_end[-1] == '\r') {
            line_end--;
        }
        if (line_end > s && kling_http_status(s, (size_t)(line_end - s)) < 0) {
            if (is_blank(*s)) {
                f->name = NULL;
                f->nlen = 0;
                v = s;
            } else if ((colon = memchr(s, ':', (size_t)(line_end - s))) != NULL && colon > s) {
                f->name = s;
                f->nlen = (size_t)(colon - s);
                v = colon + 1;
            } else {
                s = next;
                continue;
            }
            ve = line_end;
            while (v < ve && is_blank(*v)) v++;
            while (ve > v && is_blank(ve[-1])) ve--;
            f->value = v;
            f->vlen = (size_t)(ve - v);
            *p = next;
            return 1;
        }
        s = next;
    }
    *p = end;
    return 0;
}
