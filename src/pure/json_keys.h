/* Duplicate object keys in a JSON text. lua-cjson (like most decoders)
 * keeps the last of two equal keys without a word: {"mode":"std","mode":"pro"}
 * is priced on one value by one reader and sent with the other by another.
 * This scanner finds, for a text a user or a client gave, the first key that
 * appears twice in one object, with its path. Keys are compared as decoded
 * bytes: "a" and "\u0061" are the same key, "\ud83d\ude00" is U+1F600.
 *
 * Pure: no I/O, no globals, no allocation. The caller gives the key scratch
 * (one entry per key of the objects open at once); nesting is bounded. Time is
 * O(n log k) for a text of n bytes whose largest object has k keys (each
 * object's keys are sorted when it closes: no hash to flood).
 *
 * It is a key checker, not a validator: it accepts every text lua-cjson does
 * (and some it refuses: decode first, then check), but a control character
 * written raw in a string, which RFC 8259 does not allow and lua-cjson takes. */
#ifndef KLING_JSON_KEYS_H
#define KLING_JSON_KEYS_H

#include <stddef.h>
#include <stdint.h>

/* Deepest nesting checked: lua-cjson's own limit (decode_max_depth). */
#define KLING_JSON_KEYS_DEPTH 1000
/* Longest text checked (offsets are 31-bit). */
#define KLING_JSON_KEYS_LEN_MAX ((size_t)0x7fffffff)

enum kling_json_keys_status {
    KLING_JSON_KEYS_UNIQUE = 0,   /* no object has a key twice */
    KLING_JSON_KEYS_DUP = 1,      /* r->path names the key; r->at, r->first where */
    KLING_JSON_KEYS_ESYNTAX = -1, /* not JSON (r->at: the byte); not checked */
    KLING_JSON_KEYS_EDEPTH = -2,  /* nested deeper than KLING_JSON_KEYS_DEPTH; not checked */
    KLING_JSON_KEYS_ESCRATCH = -3,/* more keys open at once than the scratch holds: r->need */
    KLING_JSON_KEYS_ELONG = -4,   /* longer than KLING_JSON_KEYS_LEN_MAX; not checked */
    KLING_JSON_KEYS_EMANY = -5    /* more values than the caller's bound (r->at: the first over it) */
};

/* One key of an open object (scratch: its contents mean nothing to the caller). */
struct kling_json_key {
    uint32_t off; /* first byte after the opening quote */
    uint32_t len; /* raw length; the top bit says it holds an escape */
};

struct kling_json_keys_result {
    size_t at;    /* DUP: offset of the second key's opening quote; ESYNTAX: the bad byte */
    size_t first; /* DUP: offset of the first key's opening quote */
    size_t need;  /* ESCRATCH: scratch entries that are enough for this text */
};

/* Checks json[0..len). scratch holds cap entries (cap may be 0). When a key is
 * given twice, the one whose second occurrence comes first in the text is
 * reported, and its path is written to path (path_size bytes, NUL-terminated;
 * path may be NULL when path_size is 0): `prompt`, `requests[3].prompt`,
 * `[1].a`, `x["a b"]` (array items count from 1, as Lua and the library's other
 * messages count them; a key that is not [A-Za-z_][A-Za-z0-9_-]* is quoted, its
 * control, quote, backslash and non-ASCII bytes escaped); too long a path or
 * key ends in "...". Returns an enum kling_json_keys_status. */
int kling_json_keys_check(const char *json, size_t len, struct kling_json_key *scratch, size_t cap,
                          char *path, size_t path_size, struct kling_json_keys_result *r);

/* As kling_json_keys_check, and stops at the first value past max_values
 * (every value counts: the top one, each object's member values, each array
 * item, containers included): KLING_JSON_KEYS_EMANY. A text over the bound
 * costs a scan of its first max_values values, never its sort nor a scratch
 * larger than max_values + 1 entries (what a decoder would spend on a million
 * one-byte values is refused before it is spent). */
int kling_json_keys_check_max(const char *json, size_t len, struct kling_json_key *scratch, size_t cap,
                              size_t max_values, char *path, size_t path_size, struct kling_json_keys_result *r);

/* A short description of a status ("not JSON", ...), never NULL. */
const char *kling_json_keys_strerror(int status);

#endif
