/* Duplicate-key scan on any text, against a second implementation: a
 * recursive-descent reader of the same (lua-cjson-lenient) grammar that keeps
 * each object's decoded keys and compares them pairwise.
 * Invariants: the status agrees with the reference (not JSON, too deep, a key
 * given twice or none); a duplicate's offsets are the reference's (the
 * earliest second occurrence, its first occurrence) and point at quotes; the
 * scratch the scanner asks for is enough and its size changes nothing; a
 * short path buffer holds a cut prefix of the full path, NUL-terminated. */
#include "fuzz.h"
#include "json_keys.h"

/* ---- the reference ---- */

struct ref {
    const uint8_t *s;
    size_t n, i;
    int found;
    size_t at, first;
};

struct rkey {
    uint8_t *b;
    size_t n, off;
};

enum { R_OK = 0, R_SYNTAX = -1, R_DEPTH = -2 };

static void r_ws(struct ref *r) {
    while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' || r->s[r->i] == '\r')) {
        r->i++;
    }
}

static int r_hex(const uint8_t *p, unsigned *v) {
    int k;
    *v = 0;
    for (k = 0; k < 4; k++) {
        int c = p[k];
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return -1;
        *v = *v * 16 + d;
    }
    return 0;
}

static void r_utf8(uint8_t *o, size_t *n, unsigned cp) {
    if (cp < 0x80) {
        o[(*n)++] = (uint8_t)cp;
    } else if (cp < 0x800) {
        o[(*n)++] = (uint8_t)(0xc0 | (cp >> 6));
        o[(*n)++] = (uint8_t)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        o[(*n)++] = (uint8_t)(0xe0 | (cp >> 12));
        o[(*n)++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[(*n)++] = (uint8_t)(0x80 | (cp & 0x3f));
    } else {
        o[(*n)++] = (uint8_t)(0xf0 | (cp >> 18));
        o[(*n)++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        o[(*n)++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[(*n)++] = (uint8_t)(0x80 | (cp & 0x3f));
    }
}

/* A string at s[i] == '"', decoded into a new buffer when k is given (its
 * size found by a first pass without one: decoding never grows a string). */
static int r_string(struct ref *r, struct rkey *k) {
    size_t start = r->i, on = 0;
    uint8_t *o = NULL;
    if (k != NULL) {
        if (r_string(r, NULL) != R_OK) return R_SYNTAX;
        o = malloc(r->i - start);
        if (o == NULL) abort();
        r->i = start;
    }
    r->i++;
    for (;;) {
        uint8_t c;
        if (r->i >= r->n) goto bad;
        c = r->s[r->i++];
        if (c < 0x20) goto bad; /* RFC 8259: escaped, never raw */
        if (c == '"') break;
        if (c != '\\') {
            if (o) o[on++] = c;
            continue;
        }
        if (r->i >= r->n) goto bad;
        c = r->s[r->i++];
        if (c == 'u') {
            unsigned cp, lo;
            if (r->n - r->i < 4 || r_hex(r->s + r->i, &cp) != 0) goto bad;
            r->i += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && r->n - r->i >= 6 && r->s[r->i] == '\\' && r->s[r->i + 1] == 'u'
                && r_hex(r->s + r->i + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                r->i += 6;
            }
            if (o) r_utf8(o, &on, cp);
        } else {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *p = memchr(from, c, 8);
            if (p == NULL) goto bad;
            if (o) o[on++] = (uint8_t)to[p - from];
        }
    }
    if (k != NULL) {
        k->b = o;
        k->n = on;
        k->off = start;
    }
    return R_OK;
bad:
    free(o);
    return R_SYNTAX;
}

static int r_value(struct ref *r, int depth);

static int r_object(struct ref *r, int depth) {
    struct rkey *keys = NULL;
    size_t nk = 0, i, j;
    int rc = R_OK;
    r->i++;
    r_ws(r);
    if (r->i < r->n && r->s[r->i] == '}') {
        r->i++;
        return R_OK;
    }
    for (;;) {
        r_ws(r);
        if (r->i >= r->n || r->s[r->i] != '"') { rc = R_SYNTAX; break; }
        keys = realloc(keys, (nk + 1) * sizeof(*keys));
        if (keys == NULL) abort();
        if ((rc = r_string(r, &keys[nk])) != R_OK) break;
        nk++;
        r_ws(r);
        if (r->i >= r->n || r->s[r->i] != ':') { rc = R_SYNTAX; break; }
        r->i++;
        if ((rc = r_value(r, depth)) != R_OK) break;
        r_ws(r);
        if (r->i < r->n && r->s[r->i] == ',') { r->i++; continue; }
        if (r->i < r->n && r->s[r->i] == '}') { r->i++; break; }
        rc = R_SYNTAX;
        break;
    }
    if (rc == R_OK) {
        for (j = 1; j < nk; j++) {
            for (i = 0; i < j; i++) {
                if (keys[i].n == keys[j].n && memcmp(keys[i].b, keys[j].b, keys[i].n) == 0) break;
            }
            if (i < j) {
                if (!r->found || keys[j].off < r->at) {
                    r->found = 1;
                    r->at = keys[j].off;
                    r->first = keys[i].off;
                }
                break; /* later ones in this object come after it */
            }
        }
    }
    for (i = 0; i < nk; i++) free(keys[i].b);
    free(keys);
    return rc;
}

static int r_value(struct ref *r, int depth) {
    uint8_t c;
    r_ws(r);
    if (r->i >= r->n) return R_SYNTAX;
    c = r->s[r->i];
    if (c == '{' || c == '[') {
        if (depth == KLING_JSON_KEYS_DEPTH) return R_DEPTH;
        if (c == '{') return r_object(r, depth + 1);
        r->i++;
        r_ws(r);
        if (r->i < r->n && r->s[r->i] == ']') { r->i++; return R_OK; }
        for (;;) {
            int rc = r_value(r, depth + 1);
            if (rc != R_OK) return rc;
            r_ws(r);
            if (r->i < r->n && r->s[r->i] == ',') { r->i++; continue; }
            if (r->i < r->n && r->s[r->i] == ']') { r->i++; return R_OK; }
            return R_SYNTAX;
        }
    }
    if (c == '"') return r_string(r, NULL);
    if (c == '-' || (c >= '0' && c <= '9')) {
        r->i++;
        while (r->i < r->n && memchr("0123456789+-.eE", r->s[r->i], 15) != NULL) r->i++;
        return R_OK;
    }
    {
        static const char *const lit[] = {"true", "false", "null"};
        int k;
        for (k = 0; k < 3; k++) {
            size_t m = strlen(lit[k]);
            if (r->n - r->i >= m && memcmp(r->s + r->i, lit[k], m) == 0) {
                r->i += m;
                return R_OK;
            }
        }
    }
    return R_SYNTAX;
}

static int reference(const uint8_t *s, size_t n, struct ref *r) {
    int rc;
    memset(r, 0, sizeof(*r));
    r->s = s;
    r->n = n;
    rc = r_value(r, 0);
    if (rc == R_OK) {
        r_ws(r);
        if (r->i != n) rc = R_SYNTAX;
    }
    return rc;
}

/* ---- the target ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1), full[256], small[16], again[256];
    struct kling_json_keys_result res, res2;
    struct kling_json_key *keys;
    struct ref ref;
    size_t cut = size ? (size_t)data[0] % sizeof(small) : 0, need, L;
    int rc, rc2, want;
    if (text == NULL) abort();
    memcpy(text, data, size);

    /* no scratch: either nothing to keep, or the size asked for */
    rc = kling_json_keys_check(text, size, NULL, 0, full, sizeof(full), &res);
    need = rc == KLING_JSON_KEYS_ESCRATCH ? res.need : 0;
    FUZZ_CHECK(rc != KLING_JSON_KEYS_ESCRATCH || need > 0);
    keys = malloc((need ? need : 1) * sizeof(*keys) + 8 * sizeof(*keys));
    if (keys == NULL) abort();
    if (rc == KLING_JSON_KEYS_ESCRATCH) {
        rc = kling_json_keys_check(text, size, keys, need, full, sizeof(full), &res);
        FUZZ_CHECK(rc != KLING_JSON_KEYS_ESCRATCH);
    }
    rc2 = kling_json_keys_check(text, size, keys, need + 8, again, sizeof(again), &res2);
    FUZZ_CHECK(rc2 == rc && strcmp(again, full) == 0 && res2.at == res.at && res2.first == res.first);
    FUZZ_CHECK(memchr(full, '\0', sizeof(full)) != NULL);

    want = reference(data, size, &ref);
    if (want == R_SYNTAX) {
        FUZZ_CHECK(rc == KLING_JSON_KEYS_ESYNTAX);
    } else if (want == R_DEPTH) {
        FUZZ_CHECK(rc == KLING_JSON_KEYS_EDEPTH);
    } else if (ref.found) {
        FUZZ_CHECK(rc == KLING_JSON_KEYS_DUP);
        FUZZ_CHECK(res.at == ref.at && res.first == ref.first);
        FUZZ_CHECK(res.first < res.at && res.at < size && text[res.at] == '"' && text[res.first] == '"');
        FUZZ_CHECK(full[0] != '\0');
    } else {
        FUZZ_CHECK(rc == KLING_JSON_KEYS_UNIQUE);
    }
    if (rc != KLING_JSON_KEYS_DUP) {
        FUZZ_CHECK(full[0] == '\0');
    }

    /* a short path buffer: the full path, or its prefix cut with "..." */
    if (rc == KLING_JSON_KEYS_DUP && cut > 0) {
        rc2 = kling_json_keys_check(text, size, keys, need + 8, small, cut, &res2);
        FUZZ_CHECK(rc2 == rc);
        L = strlen(full);
        FUZZ_CHECK(strlen(small) == (L < cut ? L : cut - 1));
        if (L < cut) {
            FUZZ_CHECK(strcmp(small, full) == 0);
        } else if (cut > 4) {
            FUZZ_CHECK(strncmp(small, full, cut - 4) == 0 && strcmp(small + cut - 4, "...") == 0);
        } else {
            FUZZ_CHECK(strncmp(small, full, cut - 1) == 0);
        }
    }
    free(keys);
    free(text);
    return 0;
}
