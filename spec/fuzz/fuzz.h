/* What every fuzz target shares: a reader that takes typed values off the
 * fuzzer's bytes (zeros once they run out) and an invariant check that
 * aborts, which libFuzzer reports as a crash with the input saved. */
#ifndef KLING_FUZZ_H
#define KLING_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

static inline uint64_t fuzz_u64(struct fuzz_in *in, size_t bytes) {
    uint64_t v = 0;
    size_t i;
    for (i = 0; i < bytes; i++) {
        v = (v << 8) | (in->n ? (in->n--, *in->p++) : 0);
    }
    return v;
}

static inline uint8_t fuzz_u8(struct fuzz_in *in) {
    return (uint8_t)fuzz_u64(in, 1);
}

static inline int64_t fuzz_i64(struct fuzz_in *in) {
    return (int64_t)fuzz_u64(in, 8);
}

/* A small int64 more often than not: edges and everyday values both get hit. */
static inline int64_t fuzz_int(struct fuzz_in *in) {
    switch (fuzz_u8(in) & 7) {
    case 0: return fuzz_i64(in);
    case 1: return INT64_MAX - (int64_t)fuzz_u8(in);
    case 2: return INT64_MIN + (int64_t)fuzz_u8(in);
    case 3: return -(int64_t)fuzz_u64(in, 2);
    default: return (int64_t)fuzz_u64(in, 3);
    }
}

/* The next len-prefixed piece of the input (at most max bytes), copied into a
 * buffer of exactly its size so that ASan sees any read past its end. */
static inline char *fuzz_bytes(struct fuzz_in *in, size_t max, size_t *len) {
    size_t n = (size_t)fuzz_u64(in, 2) % (max + 1);
    char *b;
    if (n > in->n) {
        n = in->n;
    }
    b = malloc(n ? n : 1);
    if (b == NULL) {
        abort();
    }
    memcpy(b, in->p, n);
    in->p += n;
    in->n -= n;
    *len = n;
    return b;
}

#endif
