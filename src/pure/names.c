#include "names.h"

#include <stdlib.h>
#include <string.h>

size_t kling_name_distance(const char *a, size_t alen, const char *b, size_t blen) {
    size_t *prev, *cur, i, j, d;
    if (blen > ((size_t)-1) / (2 * sizeof(size_t)) - 1) {
        return (size_t)-1;
    }
    prev = malloc(2 * (blen + 1) * sizeof(size_t));
    if (prev == NULL) {
        return (size_t)-1;
    }
    cur = prev + blen + 1;
    for (j = 0; j <= blen; j++) {
        prev[j] = j;
    }
    for (i = 1; i <= alen; i++) {
        size_t *t;
        cur[0] = i;
        for (j = 1; j <= blen; j++) {
            size_t best = prev[j] + 1;
            size_t ins = cur[j - 1] + 1;
            size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (ins < best) {
                best = ins;
            }
            if (sub < best) {
                best = sub;
            }
            cur[j] = best;
        }
        t = prev;
        prev = cur;
        cur = t;
    }
    d = prev[blen];
    free(prev < cur ? prev : cur);
    return d;
}

static int name_less(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c < 0 || (c == 0 && alen < blen);
}

size_t kling_name_closest(const char *name, size_t len, const char *const *known, const size_t *known_len,
                          size_t n, size_t *near) {
    size_t limit = len / 3 > 2 ? len / 3 : 2;
    size_t best = (size_t)-1, count = 0, i, j;
    for (i = 0; i < n; i++) {
        size_t klen = known_len ? known_len[i] : strlen(known[i]);
        size_t d, gap = klen > len ? klen - len : len - klen;
        if (gap > limit) {
            continue;
        }
        d = kling_name_distance(name, len, known[i], klen);
        if (d > limit || d > best) {
            continue;
        }
        if (d < best) {
            best = d;
            count = 0;
        }
        /* insertion into the sorted list of ties */
        for (j = count; j > 0; j--) {
            size_t p = near[j - 1];
            size_t plen = known_len ? known_len[p] : strlen(known[p]);
            if (!name_less(known[i], klen, known[p], plen)) {
                break;
            }
            near[j] = p;
        }
        near[j] = i;
        count++;
    }
    return count;
}
