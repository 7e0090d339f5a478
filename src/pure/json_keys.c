/* Duplicate object keys in a JSON text (json_keys.h). One pass with an
 * explicit stack: each open object's keys sit on the caller's scratch in
 * text order; when the object closes they are sorted (decoded bytes, then
 * offset) and equal neighbours are duplicates. */
#include "json_keys.h"

#include <string.h>

#define ESC 0x80000000u       /* kling_json_key.len: the key holds an escape */
#define ARRAY 0xffffffffu     /* frame.base of an array */
#define KEY_SHOWN 64          /* decoded bytes of a key written into a path */

struct frame {
    uint32_t n;    /* array: index of the current item; object: index of the current key */
    uint32_t base; /* object: its first key in the scratch; ARRAY */
};

struct scan {
    const unsigned char *s;
    size_t len, i;
    struct kling_json_key *keys;
    size_t cap, nkeys, depth;
    size_t values, max_values; /* values begun so far; the caller's bound */
    char *path;
    size_t path_size;
    struct kling_json_keys_result *r;
    int found;
    struct frame frames[KLING_JSON_KEYS_DEPTH];
};

/* ---- decoded bytes of a key ---- */

struct dec {
    const unsigned char *p, *end;
    unsigned char buf[4];
    int bi, bn;
};

static int hexval(int c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Four hex digits already checked by the scanner. */
static unsigned hex4(const unsigned char *p) {
    return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

static void dec_init(struct dec *d, const unsigned char *s, const struct kling_json_key *k) {
    d->p = s + k->off;
    d->end = d->p + (k->len & ~ESC);
    d->bi = d->bn = 0;
}

/* The next decoded byte, or -1 at the end. \u escapes become UTF-8 (a
 * surrogate pair one code point); lone surrogates, which lua-cjson refuses,
 * are encoded as they are so that they still compare consistently. */
static int dec_next(struct dec *d) {
    unsigned cp;
    int c;
    if (d->bi < d->bn) {
        return d->buf[d->bi++];
    }
    if (d->p >= d->end) {
        return -1;
    }
    c = *d->p++;
    if (c != '\\') {
        return c;
    }
    c = *d->p++;
    switch (c) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'u': break;
    default: return c; /* " \ / */
    }
    cp = hex4(d->p);
    d->p += 4;
    if (cp >= 0xd800 && cp <= 0xdbff && d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u') {
        unsigned lo = hex4(d->p + 2);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            d->p += 6;
        }
    }
    if (cp < 0x80) {
        return (int)cp;
    }
    if (cp < 0x800) {
        d->buf[0] = (unsigned char)(0xc0 | cp >> 6);
        d->bn = 2;
    } else if (cp < 0x10000) {
        d->buf[0] = (unsigned char)(0xe0 | cp >> 12);
        d->buf[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        d->bn = 3;
    } else {
        d->buf[0] = (unsigned char)(0xf0 | cp >> 18);
        d->buf[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        d->buf[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        d->bn = 4;
    }
    d->buf[d->bn - 1] = (unsigned char)(0x80 | (cp & 0x3f));
    d->bi = 1;
    return d->buf[0];
}

/* Decoded bytes compared (a prefix first); 0 when equal. */
static int key_cmp(const unsigned char *s, const struct kling_json_key *a, const struct kling_json_key *b) {
    if (!((a->len | b->len) & ESC)) {
        uint32_t la = a->len, lb = b->len;
        int m = memcmp(s + a->off, s + b->off, la < lb ? la : lb);
        return m ? m : (la > lb) - (la < lb);
    } else {
        struct dec da, db;
        int x, y;
        dec_init(&da, s, a);
        dec_init(&db, s, b);
        do {
            x = dec_next(&da);
            y = dec_next(&db);
        } while (x == y && x >= 0);
        return (x > y) - (x < y);
    }
}

/* A total order: equal keys by their place in the text. */
static int key_order(const unsigned char *s, const struct kling_json_key *a, const struct kling_json_key *b) {
    int c = key_cmp(s, a, b);
    return c ? c : (a->off > b->off) - (a->off < b->off);
}

/* ---- sorting one object's keys: heapsort (n log n at worst, in place) ---- */

static void sift(const unsigned char *s, struct kling_json_key *k, size_t root, size_t n) {
    struct kling_json_key t = k[root];
    size_t child;
    while ((child = 2 * root + 1) < n) {
        if (child + 1 < n && key_order(s, &k[child], &k[child + 1]) < 0) {
            child++;
        }
        if (key_order(s, &t, &k[child]) >= 0) {
            break;
        }
        k[root] = k[child];
        root = child;
    }
    k[root] = t;
}

static void sort_keys(const unsigned char *s, struct kling_json_key *k, size_t n) {
    size_t i;
    if (n <= 12) { /* the usual object: insertion sort is cheaper than a heap */
        for (i = 1; i < n; i++) {
            struct kling_json_key t = k[i];
            size_t j = i;
            while (j > 0 && key_order(s, &t, &k[j - 1]) < 0) {
                k[j] = k[j - 1];
                j--;
            }
            k[j] = t;
        }
        return;
    }
    for (i = n / 2; i-- > 0;) {
        sift(s, k, i, n);
    }
    for (i = n; i-- > 1;) {
        struct kling_json_key t = k[0];
        k[0] = k[i];
        k[i] = t;
        sift(s, k, 0, i);
    }
}

/* ---- the path of a duplicate ---- */

struct out {
    char *p;
    size_t size, n;
    int cut;
};

static void put(struct out *o, const char *s, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        if (o->n + 1 >= o->size) {
            o->cut = 1;
            return;
        }
        o->p[o->n++] = s[i];
    }
}

static void put_index(struct out *o, uint64_t n) {
    char b[24];
    size_t i = sizeof(b);
    b[--i] = ']';
    do {
        b[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    b[--i] = '[';
    put(o, b + i, sizeof(b) - i);
}

static int ident(int c, int first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
        || (!first && ((c >= '0' && c <= '9') || c == '-'));
}

/* .key, or ["k e y"] with its bytes escaped (at most KEY_SHOWN of them). */
static void put_key(struct out *o, const unsigned char *s, const struct kling_json_key *k, int lead) {
    struct dec d;
    int c, plain = 1;
    size_t n = 0;
    dec_init(&d, s, k);
    while ((c = dec_next(&d)) >= 0 && n <= KEY_SHOWN) {
        plain = plain && ident(c, n == 0);
        n++;
    }
    if (plain && n > 0 && n <= KEY_SHOWN) {
        if (lead) {
            put(o, ".", 1);
        }
        dec_init(&d, s, k); /* decoded: "\u0061" is shown as a */
        while ((c = dec_next(&d)) >= 0) {
            char b = (char)c;
            put(o, &b, 1);
        }
        return;
    }
    put(o, "[\"", 2);
    dec_init(&d, s, k);
    for (n = 0; (c = dec_next(&d)) >= 0; n++) {
        char e[6];
        if (n == KEY_SHOWN || o->cut) {
            put(o, "...", 3);
            break;
        }
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            put(o, e, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            static const char hex[] = "0123456789abcdef";
            e[0] = '\\';
            e[1] = 'x';
            e[2] = hex[c >> 4];
            e[3] = hex[c & 15];
            put(o, e, 4);
        } else {
            e[0] = (char)c;
            put(o, e, 1);
        }
    }
    put(o, "\"]", 2);
}

static void write_path(struct scan *sc, const struct kling_json_key *dup) {
    struct out o = {sc->path, sc->path_size, 0, 0};
    size_t j;
    if (o.size == 0) {
        return;
    }
    for (j = 0; j + 1 < sc->depth && !o.cut; j++) {
        const struct frame *f = &sc->frames[j];
        if (f->base == ARRAY) {
            put_index(&o, f->n + 1); /* from 1, as the library's other messages count */
        } else {
            put_key(&o, sc->s, &sc->keys[f->n], j > 0);
        }
    }
    put_key(&o, sc->s, dup, sc->depth > 1);
    if (o.cut && o.size > 4) {
        memcpy(o.p + o.size - 4, "...", 3);
        o.n = o.size - 1;
    }
    o.p[o.n] = '\0';
}

/* The closing object's keys are sorted; each run of equal keys is a duplicate
 * whose second occurrence is the run's second (runs are in text order). */
static void close_object(struct scan *sc) {
    struct frame *f = &sc->frames[sc->depth - 1];
    struct kling_json_key *k = sc->keys + f->base;
    size_t n = sc->nkeys - f->base, i;
    sort_keys(sc->s, k, n);
    for (i = 1; i < n; i++) {
        if (key_cmp(sc->s, &k[i - 1], &k[i]) == 0) {
            size_t at = (size_t)k[i].off - 1;
            if (!sc->found || at < sc->r->at) {
                sc->found = 1;
                sc->r->at = at;
                sc->r->first = (size_t)k[i - 1].off - 1;
                write_path(sc, &k[i]);
            }
            while (i + 1 < n && key_cmp(sc->s, &k[i], &k[i + 1]) == 0) {
                i++; /* the rest of the run */
            }
        }
    }
    sc->nkeys = f->base;
}

/* ---- the scanner ---- */

static void ws(struct scan *sc) {
    while (sc->i < sc->len) {
        unsigned char c = sc->s[sc->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return;
        }
        sc->i++;
    }
}

static int syntax(struct scan *sc) {
    sc->r->at = sc->i;
    return KLING_JSON_KEYS_ESYNTAX;
}

/* A string at s[i] == '"'; i ends past its closing quote (on an error: at the
 * bad byte). *esc: it has an escape. A control character (U+0000-U+001F) must be
 * escaped in a string (RFC 8259, 7): one written raw is not JSON, whatever a
 * lenient decoder makes of it. */
static int string(struct scan *sc, int *esc) {
    const unsigned char *s = sc->s;
    size_t i = sc->i + 1, len = sc->len;
    *esc = 0;
    for (;;) {
        if (i >= len || s[i] < 0x20) {
            sc->i = i;
            return -1;
        }
        if (s[i] == '"') {
            break;
        }
        if (s[i] != '\\') {
            i++;
            continue;
        }
        *esc = 1;
        if (i + 1 >= len) {
            sc->i = i;
            return -1;
        }
        if (s[i + 1] == 'u') {
            if (len - i < 6 || hexval(s[i + 2]) < 0 || hexval(s[i + 3]) < 0 || hexval(s[i + 4]) < 0
                || hexval(s[i + 5]) < 0) {
                sc->i = i;
                return -1;
            }
            i += 6;
        } else if (memchr("\"\\/bfnrt", s[i + 1], 8) != NULL) {
            i += 2;
        } else {
            sc->i = i;
            return -1;
        }
    }
    sc->i = i + 1;
    return 0;
}

/* Enough scratch for any text: one entry per ':' outside strings, and one for
 * a key pushed before its ':' is found missing. Counted up to max + 1 only: a
 * text with more keys than the value bound is refused before its keys fill
 * that much scratch. */
static size_t colons(const unsigned char *s, size_t len, size_t max) {
    size_t i, n = 0;
    int in = 0;
    for (i = 0; i < len && n <= max; i++) {
        if (in) {
            if (s[i] == '\\') {
                i++;
            } else if (s[i] == '"') {
                in = 0;
            }
        } else if (s[i] == '"') {
            in = 1;
        } else if (s[i] == ':') {
            n++;
        }
    }
    return n;
}

/* A key at s[i] (after '{' or ','), pushed, and its ':'. */
static int key(struct scan *sc) {
    struct kling_json_key *k;
    size_t start = sc->i;
    int esc;
    if (sc->i >= sc->len || sc->s[sc->i] != '"' || string(sc, &esc) != 0) {
        return syntax(sc);
    }
    if (sc->nkeys == sc->cap) {
        sc->r->need = colons(sc->s, sc->len, sc->max_values) + 1;
        return KLING_JSON_KEYS_ESCRATCH;
    }
    k = &sc->keys[sc->nkeys];
    k->off = (uint32_t)(start + 1);
    k->len = (uint32_t)(sc->i - start - 2) | (esc ? ESC : 0);
    sc->frames[sc->depth - 1].n = (uint32_t)sc->nkeys++;
    ws(sc);
    if (sc->i >= sc->len || sc->s[sc->i] != ':') {
        return syntax(sc);
    }
    sc->i++;
    return 0;
}

/* A scalar at s[i]. Numbers are taken as loosely as lua-cjson takes them (1.
 * and -.5 are numbers to it): this is no validator. */
static int scalar(struct scan *sc) {
    const unsigned char *s = sc->s;
    unsigned char c = s[sc->i];
    int esc;
    if (c == '"') {
        return string(sc, &esc) == 0 ? 0 : syntax(sc);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        sc->i++;
        while (sc->i < sc->len && memchr("0123456789+-.eE", s[sc->i], 15) != NULL) {
            sc->i++;
        }
        return 0;
    }
    {
        static const char *const lit[] = {"true", "false", "null"};
        size_t j;
        for (j = 0; j < 3; j++) {
            size_t n = strlen(lit[j]);
            if (sc->len - sc->i >= n && memcmp(s + sc->i, lit[j], n) == 0) {
                sc->i += n;
                return 0;
            }
        }
    }
    return syntax(sc);
}

static int scan(struct scan *sc) {
    int rc;
    for (;;) {
        /* a value */
        ws(sc);
        if (sc->i >= sc->len) {
            return syntax(sc);
        }
        if (++sc->values > sc->max_values) {
            sc->r->at = sc->i;
            return KLING_JSON_KEYS_EMANY;
        }
        if (sc->s[sc->i] == '{' || sc->s[sc->i] == '[') {
            int obj = sc->s[sc->i] == '{';
            struct frame *f;
            if (sc->depth == KLING_JSON_KEYS_DEPTH) {
                sc->r->at = sc->i;
                return KLING_JSON_KEYS_EDEPTH;
            }
            f = &sc->frames[sc->depth++];
            f->n = 0;
            f->base = obj ? (uint32_t)sc->nkeys : ARRAY;
            sc->i++;
            ws(sc);
            if (sc->i < sc->len && sc->s[sc->i] == (obj ? '}' : ']')) {
                sc->i++;
                sc->depth--;
            } else if (obj) {
                if ((rc = key(sc)) != 0) {
                    return rc;
                }
                continue;
            } else {
                continue;
            }
        } else if ((rc = scalar(sc)) != 0) {
            return rc;
        }
        /* after a value: close containers until one takes another value */
        for (;;) {
            struct frame *f;
            unsigned char c;
            ws(sc);
            if (sc->depth == 0) {
                return sc->i == sc->len ? 0 : syntax(sc);
            }
            if (sc->i >= sc->len) {
                return syntax(sc);
            }
            f = &sc->frames[sc->depth - 1];
            c = sc->s[sc->i];
            if (c == ',') {
                sc->i++;
                if (f->base == ARRAY) {
                    f->n++;
                } else {
                    ws(sc);
                    if ((rc = key(sc)) != 0) {
                        return rc;
                    }
                }
                break;
            } else if (c == (f->base == ARRAY ? ']' : '}')) {
                sc->i++;
                if (f->base != ARRAY) {
                    close_object(sc);
                }
                sc->depth--;
            } else {
                return syntax(sc);
            }
        }
    }
}

int kling_json_keys_check(const char *json, size_t len, struct kling_json_key *scratch, size_t cap,
                          char *path, size_t path_size, struct kling_json_keys_result *r) {
    return kling_json_keys_check_max(json, len, scratch, cap, (size_t)-1, path, path_size, r);
}

int kling_json_keys_check_max(const char *json, size_t len, struct kling_json_key *scratch, size_t cap,
                              size_t max_values, char *path, size_t path_size, struct kling_json_keys_result *r) {
    struct scan sc;
    int rc;
    r->at = r->first = r->need = 0;
    if (path_size > 0) {
        path[0] = '\0';
    }
    if (len > KLING_JSON_KEYS_LEN_MAX) {
        return KLING_JSON_KEYS_ELONG;
    }
    sc.s = (const unsigned char *)json;
    sc.len = len;
    sc.i = 0;
    sc.keys = scratch;
    sc.cap = cap;
    sc.nkeys = sc.depth = 0;
    sc.values = 0;
    sc.max_values = max_values;
    sc.path = path;
    sc.path_size = path_size;
    sc.r = r;
    sc.found = 0;
    rc = scan(&sc);
    if (rc != 0) {
        r->first = 0; /* a duplicate found before the error is not reported */
        if (path_size > 0) {
            path[0] = '\0';
        }
        return rc;
    }
    return sc.found ? KLING_JSON_KEYS_DUP : KLING_JSON_KEYS_UNIQUE;
}

const char *kling_json_keys_strerror(int status) {
    switch (status) {
    case KLING_JSON_KEYS_UNIQUE: return "no key given twice";
    case KLING_JSON_KEYS_DUP: return "a key given twice";
    case KLING_JSON_KEYS_ESYNTAX: return "not JSON";
    case KLING_JSON_KEYS_EDEPTH: return "nested deeper than 1000";
    case KLING_JSON_KEYS_ESCRATCH: return "more keys than the scratch holds";
    case KLING_JSON_KEYS_ELONG: return "longer than 2 GiB";
    case KLING_JSON_KEYS_EMANY: return "more values than the bound";
    default: return "unknown status";
    }
}
