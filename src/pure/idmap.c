/* The id <-> handle map (idmap.h). Each handle's entry (its id, copied, and
 * the id's hash) sits in an array indexed by the handle; the hash table's
 * slots hold handle + 2, 0 for a slot never used and 1 for a removed one. */
#include "idmap.h"

#include <stdlib.h>
#include <string.h>

#define SLOT_EMPTY 0u
#define SLOT_REMOVED 1u
#define MIN_SLOTS 16u

struct entry {
    char *id; /* NULL: the handle has no id */
    uint64_t hash;
    uint32_t len;
};

struct kling_idmap {
    uint64_t k0, k1;
    struct entry *entries;
    size_t n_entries; /* entries allocated: handles below it */
    uint32_t *slots;
    size_t n_slots; /* a power of two, or 0 before the first put */
    size_t used;    /* slots holding a handle (= ids mapped) */
    size_t removed; /* slots marked removed */
    size_t id_bytes;
};

/* ---- SipHash-1-3 (one compression round, three finalization rounds) ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                    \
    do {                                                                                            \
        v0 += v1;                                                                                   \
        v1 = ROTL(v1, 13);                                                                          \
        v1 ^= v0;                                                                                   \
        v0 = ROTL(v0, 32);                                                                          \
        v2 += v3;                                                                                   \
        v3 = ROTL(v3, 16);                                                                          \
        v3 ^= v2;                                                                                   \
        v0 += v3;                                                                                   \
        v3 = ROTL(v3, 21);                                                                          \
        v3 ^= v0;                                                                                   \
        v2 += v1;                                                                                   \
        v1 = ROTL(v1, 17);                                                                          \
        v1 ^= v2;                                                                                   \
        v2 = ROTL(v2, 32);                                                                          \
    } while (0)

static uint64_t load_le64(const unsigned char *p) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static uint64_t siphash13(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len) {
    uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);
    uint64_t b = (uint64_t)len << 56;
    size_t whole = len - len % 8, i;
    for (i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (i = 0; i < len % 8; i++) {
        b |= (uint64_t)in[whole + i] << (8 * i);
    }
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the map ---- */

struct kling_idmap *kling_idmap_new(const unsigned char seed[16]) {
    struct kling_idmap *m = calloc(1, sizeof(*m));
    if (m != NULL) {
        m->k0 = load_le64(seed);
        m->k1 = load_le64(seed + 8);
    }
    return m;
}

void kling_idmap_free(struct kling_idmap *m) {
    size_t i;
    if (m == NULL) {
        return;
    }
    for (i = 0; i < m->n_entries; i++) {
        free(m->entries[i].id);
    }
    free(m->entries);
    free(m->slots);
    free(m);
}

const char *kling_idmap_strerror(int err) {
    switch (err) {
    case KLING_IDMAP_OK:
        return "ok";
    case KLING_IDMAP_ENOMEM:
        return "out of memory";
    case KLING_IDMAP_EEXIST:
        return "the id or the handle is already mapped";
    case KLING_IDMAP_EARG:
        return "an id is 1 to 1024 bytes and a handle at most 2^32 - 3";
    default:
        return "unknown error";
    }
}

/* The slot holding id, or n_slots when it is not mapped. */
static size_t find_slot(const struct kling_idmap *m, const char *id, size_t len, uint64_t hash) {
    size_t mask = m->n_slots - 1, i;
    if (m->n_slots == 0) {
        return 0;
    }
    for (i = (size_t)hash & mask;; i = (i + 1) & mask) {
        uint32_t s = m->slots[i];
        if (s == SLOT_EMPTY) {
            return m->n_slots;
        }
        if (s != SLOT_REMOVED) {
            const struct entry *e = &m->entries[s - 2];
            if (e->hash == hash && e->len == len && memcmp(e->id, id, len) == 0) {
                return i;
            }
        }
    }
}

/* Puts value in the first free slot from hash on; 1 when that slot was a removed one. */
static int place(uint32_t *slots, size_t n_slots, uint64_t hash, uint32_t value) {
    size_t mask = n_slots - 1, i;
    int was_removed;
    for (i = (size_t)hash & mask; slots[i] > SLOT_REMOVED; i = (i + 1) & mask) {
    }
    was_removed = slots[i] == SLOT_REMOVED;
    slots[i] = value;
    return was_removed;
}

/* Room for one more id: the slots rebuilt (grown, or cleared of removed ones) once
 * used and removed slots would pass 3/4, to be at most half full after. */
static int reserve_slot(struct kling_idmap *m) {
    size_t n = MIN_SLOTS, i;
    uint32_t *slots;
    if ((m->used + m->removed + 1) * 4 <= m->n_slots * 3) {
        return KLING_IDMAP_OK;
    }
    while (n < (m->used + 1) * 2) {
        if (n > SIZE_MAX / 2 / sizeof(*slots)) {
            return KLING_IDMAP_ENOMEM;
        }
        n *= 2;
    }
    slots = calloc(n, sizeof(*slots));
    if (slots == NULL) {
        return KLING_IDMAP_ENOMEM;
    }
    /* From the old slots, not the entries: after a peak the entries run to the highest handle
     * ever mapped, and a small map is rebuilt often. */
    for (i = 0; i < m->n_slots; i++) {
        uint32_t v = m->slots[i];
        if (v > SLOT_REMOVED) {
            (void)place(slots, n, m->entries[v - 2].hash, v);
        }
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n;
    m->removed = 0;
    return KLING_IDMAP_OK;
}

static int reserve_entry(struct kling_idmap *m, uint32_t handle) {
    size_t n = m->n_entries < 16 ? 16 : m->n_entries;
    struct entry *e;
    if (handle < m->n_entries) {
        return KLING_IDMAP_OK;
    }
    while (n <= handle) {
        if (n > SIZE_MAX / 2 / sizeof(*e)) { /* also ends the loop where size_t is 32 bits */
            return KLING_IDMAP_ENOMEM;
        }
        n *= 2;
    }
    e = realloc(m->entries, n * sizeof(*e));
    if (e == NULL) {
        return KLING_IDMAP_ENOMEM;
    }
    memset(e + m->n_entries, 0, (n - m->n_entries) * sizeof(*e));
    m->entries = e;
    m->n_entries = n;
    return KLING_IDMAP_OK;
}

int kling_idmap_put(struct kling_idmap *m, const char *id, size_t len, uint32_t handle) {
    uint64_t hash;
    char *copy;
    int rc;
    if (len == 0 || len > KLING_IDMAP_ID_LIMIT || handle > KLING_IDMAP_HANDLE_LIMIT) {
        return KLING_IDMAP_EARG;
    }
    if (handle < m->n_entries && m->entries[handle].id != NULL) {
        return KLING_IDMAP_EEXIST;
    }
    hash = siphash13(m->k0, m->k1, (const unsigned char *)id, len);
    if (find_slot(m, id, len, hash) != m->n_slots) {
        return KLING_IDMAP_EEXIST;
    }
    /* Grown before anything is written: a failure leaves the map as it was. */
    if ((rc = reserve_entry(m, handle)) != KLING_IDMAP_OK || (rc = reserve_slot(m)) != KLING_IDMAP_OK) {
        return rc;
    }
    copy = malloc(len);
    if (copy == NULL) {
        return KLING_IDMAP_ENOMEM;
    }
    memcpy(copy, id, len);
    m->entries[handle].id = copy;
    m->entries[handle].hash = hash;
    m->entries[handle].len = (uint32_t)len;
    if (place(m->slots, m->n_slots, hash, handle + 2)) {
        m->removed--;
    }
    m->used++;
    m->id_bytes += len;
    return KLING_IDMAP_OK;
}

int kling_idmap_find(const struct kling_idmap *m, const char *id, size_t len, uint32_t *handle) {
    size_t i;
    if (len == 0 || len > KLING_IDMAP_ID_LIMIT || m->used == 0) {
        return 0;
    }
    i = find_slot(m, id, len, siphash13(m->k0, m->k1, (const unsigned char *)id, len));
    if (i == m->n_slots) {
        return 0;
    }
    *handle = m->slots[i] - 2;
    return 1;
}

const char *kling_idmap_id(const struct kling_idmap *m, uint32_t handle, size_t *len) {
    if (handle >= m->n_entries || m->entries[handle].id == NULL) {
        return NULL;
    }
    *len = m->entries[handle].len;
    return m->entries[handle].id;
}

int kling_idmap_remove(struct kling_idmap *m, uint32_t handle) {
    struct entry *e;
    size_t mask, i;
    if (handle >= m->n_entries || m->entries[handle].id == NULL) {
        return 0;
    }
    e = &m->entries[handle];
    mask = m->n_slots - 1;
    for (i = (size_t)e->hash & mask; m->slots[i] != handle + 2; i = (i + 1) & mask) {
    }
    m->slots[i] = SLOT_REMOVED;
    m->used--;
    m->removed++;
    m->id_bytes -= e->len;
    free(e->id);
    e->id = NULL;
    e->len = 0;
    return 1;
}

size_t kling_idmap_count(const struct kling_idmap *m) {
    return m->used;
}

size_t kling_idmap_bytes(const struct kling_idmap *m) {
    return sizeof(*m) + m->n_entries * sizeof(struct entry) + m->n_slots * sizeof(uint32_t) + m->id_bytes;
}
