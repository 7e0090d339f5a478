/* A response's header block as libcurl hands it over, byte for byte from the
 * network: the status line and the header fields of the last response block.
 * Pure: no I/O, no globals, no allocation; every result points into the text
 * it was given. */
#ifndef KLING_HTTP_HEAD_H
#define KLING_HTTP_HEAD_H

#include <stddef.h>

/* The status code of a status line ("HTTP/1.1 200 OK", "HTTP/2 204"): three
 * digits after the version, then the end, a space, CR or LF; -1 when the line
 * is not one. */
long kling_http_status(const char *line, size_t len);

/* One field of a header block. name is NULL for a folded continuation line
 * (one that starts with a blank: its value continues the previous field's). The
 * value has its surrounding blanks (space, tab) removed. */
struct kling_http_field {
    const char *name;
    size_t nlen;
    const char *value;
    size_t vlen;
};

/* Walks the block [*p, end): stores the next field into f, moves *p past its
 * line and returns 1; returns 0 (and *p == end) when no field is left. Lines
 * end at LF, one CR before it dropped; status lines, blank lines and lines with
 * no colon after a non-empty name are skipped. */
int kling_http_head_next(const char **p, const char *end, struct kling_http_field *f);

#endif
