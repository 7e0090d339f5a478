/* The id <-> handle map driven by random put/find/remove sequences against a
 * model: an array of what each of 64 handles holds. The ids come from the
 * input (0 to 15 bytes of four values, so that they repeat), the hash key too. Invariants
 * after every step: the count matches the model; a put succeeds exactly when
 * neither its id nor its handle is taken (and changes nothing when refused);
 * find and id answer what the model holds, both ways. */
#include "fuzz.h"
#include "idmap.h"

#define HANDLES 64
#define MAX_ID 16

struct slot {
    int used;
    size_t len;
    char id[MAX_ID];
};

static int same(const struct slot *s, const char *id, size_t len) {
    return s->used && s->len == len && memcmp(s->id, id, len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_in in = {data, size};
    unsigned char seed[16];
    struct slot model[HANDLES];
    struct kling_idmap *m;
    size_t i, count = 0;

    for (i = 0; i < sizeof(seed); i++) {
        seed[i] = fuzz_u8(&in);
    }
    m = kling_idmap_new(seed);
    FUZZ_CHECK(m != NULL);
    memset(model, 0, sizeof(model));

    while (in.n > 0) {
        uint8_t op = fuzz_u8(&in);
        uint32_t h = fuzz_u8(&in) % HANDLES, got = 0;
        char id[MAX_ID];
        size_t len = op >> 2 & 15, j, owner = HANDLES; /* 0-15 bytes: SipHash's 8-byte blocks too */
        for (j = 0; j < len; j++) {
            id[j] = (char)(fuzz_u8(&in) & 3); /* few distinct bytes: ids repeat */
        }
        for (j = 0; j < HANDLES; j++) {
            if (same(&model[j], id, len)) {
                owner = j;
            }
        }
        switch (op & 3) {
        case 0: { /* put */
            int rc = kling_idmap_put(m, id, len, h);
            if (len == 0) {
                FUZZ_CHECK(rc == KLING_IDMAP_EARG);
            } else if (owner != HANDLES || model[h].used) {
                FUZZ_CHECK(rc == KLING_IDMAP_EEXIST);
            } else {
                FUZZ_CHECK(rc == KLING_IDMAP_OK);
                model[h].used = 1;
                model[h].len = len;
                memcpy(model[h].id, id, len);
                count++;
            }
            break;
        }
        case 1: /* find */
            FUZZ_CHECK(kling_idmap_find(m, id, len, &got) == (owner != HANDLES));
            FUZZ_CHECK(owner == HANDLES || got == owner);
            break;
        case 2: /* remove */
            FUZZ_CHECK(kling_idmap_remove(m, h) == model[h].used);
            count -= (size_t)model[h].used;
            model[h].used = 0;
            break;
        default: { /* the id of a handle */
            size_t l = 0;
            const char *s = kling_idmap_id(m, h, &l);
            FUZZ_CHECK((s != NULL) == model[h].used);
            FUZZ_CHECK(s == NULL || same(&model[h], s, l));
            break;
        }
        }
        FUZZ_CHECK(kling_idmap_count(m) == count);
    }
    for (i = 0; i < HANDLES; i++) { /* every id the model holds, found both ways */
        uint32_t got = 0;
        if (model[i].used) {
            FUZZ_CHECK(kling_idmap_find(m, model[i].id, model[i].len, &got) == 1 && got == i);
        }
    }
    kling_idmap_free(m);
    return 0;
}
