/* A response's header block (kling_http_status, kling_http_head_next) on any
 * bytes: what libcurl hands over from the network as it came. Invariants: a
 * status is -1 or three digits after "HTTP/"; the walk ends, moves forward, and
 * yields one field per line that is neither blank, a status line nor without a
 * colon after a non-empty name (counted here line by line, independently);
 * every name and value lies inside the block, holds no LF, a name no colon and
 * no leading blank, a value no surrounding blank. */
#include "fuzz.h"
#include "http_head.h"

static int blank(char c) {
    return c == ' ' || c == '\t';
}

/* The fields a block holds, line by line. */
static size_t expected_fields(const char *s, size_t n) {
    size_t i = 0, fields = 0;
    while (i < n) {
        size_t j = i, e;
        while (j < n && s[j] != '\n') j++;
        e = j;
        if (e > i && s[e - 1] == '\r') e--;
        if (e > i && kling_http_status(s + i, e - i) < 0) {
            if (blank(s[i]) || (memchr(s + i, ':', e - i) != NULL && s[i] != ':')) fields++;
        }
        i = j + 1;
    }
    return fields;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1); /* exact size (+1 for malloc(0)): ASan sees any read past it */
    const char *p, *end;
    struct kling_http_field f;
    size_t fields = 0;
    long status;
    FUZZ_CHECK(buf != NULL);
    if (size > 0) memcpy(buf, data, size);
    end = buf + size;

    status = kling_http_status(buf, size);
    FUZZ_CHECK(status >= -1 && status <= 999);
    FUZZ_CHECK(status < 0 || (size >= 8 && memcmp(buf, "HTTP/", 5) == 0));

    p = buf;
    while (kling_http_head_next(&p, end, &f)) {
        fields++;
        FUZZ_CHECK(fields <= size);
        FUZZ_CHECK(p > buf && p <= end);
        FUZZ_CHECK(f.value >= buf && f.value + f.vlen <= end && f.value + f.vlen <= p);
        FUZZ_CHECK(memchr(f.value, '\n', f.vlen) == NULL);
        FUZZ_CHECK(f.vlen == 0 || (!blank(f.value[0]) && !blank(f.value[f.vlen - 1])));
        if (f.name != NULL) {
            FUZZ_CHECK(f.name >= buf && f.nlen > 0 && f.name + f.nlen < f.value);
            FUZZ_CHECK(f.name + f.nlen <= end && f.name[f.nlen] == ':');
            FUZZ_CHECK(memchr(f.name, ':', f.nlen) == NULL && memchr(f.name, '\n', f.nlen) == NULL);
            FUZZ_CHECK(!blank(f.name[0]));
        }
    }
    FUZZ_CHECK(p == end);
    FUZZ_CHECK(fields == expected_fields(buf, size));
    free(buf);
    return 0;
}
