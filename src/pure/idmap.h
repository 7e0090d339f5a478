/* A map between ids (byte strings: task ids) and handles (small integers the
 * caller hands out densely, such as the scheduler's), both ways, in C memory.
 *
 * Why not two Lua tables: a poller holding every open task of a busy gateway
 * (100,000 and more) kept two table entries and an id string per task in its
 * worker's Lua heap, and LuaJIT's collector walked all of them on every cycle:
 * a metered create cost 84 us in a fresh worker and 110 us once 150,000 tasks
 * were open (bench/gateway/README.md). Here nothing is traced by a collector.
 *
 * One id names at most one handle and one handle at most one id. Ids are
 * hashed with SipHash-1-3 under a per-map key (the caller's seed), so ids
 * chosen to collide cannot turn lookups linear. Lookups, inserts and removals
 * are O(1) on average; the table is open addressing with linear probing, kept
 * at most 3/4 full (removed slots included). Handles index an array (24 bytes
 * each, up to the highest handle ever mapped): they are meant to be dense, as
 * the scheduler's are (it reuses freed ones). */
#ifndef KLING_IDMAP_H
#define KLING_IDMAP_H

#include <stddef.h>
#include <stdint.h>

/* Longest id accepted, in bytes. */
#define KLING_IDMAP_ID_LIMIT 1024
/* Largest handle accepted (the table's slots keep handle + 2). */
#define KLING_IDMAP_HANDLE_LIMIT (UINT32_MAX - 2)

enum kling_idmap_err {
    KLING_IDMAP_OK = 0,
    KLING_IDMAP_ENOMEM = -1, /* allocation failed; nothing changed */
    KLING_IDMAP_EEXIST = -2, /* the id, or the handle, is taken; nothing changed */
    KLING_IDMAP_EARG = -3    /* empty or too long id, or handle over the limit */
};

struct kling_idmap;

/* seed: 16 bytes of key for the hash (random in production). NULL on ENOMEM. */
struct kling_idmap *kling_idmap_new(const unsigned char seed[16]);
void kling_idmap_free(struct kling_idmap *m);

const char *kling_idmap_strerror(int err);

/* Maps id (len bytes, any bytes) to handle and back. */
int kling_idmap_put(struct kling_idmap *m, const char *id, size_t len, uint32_t handle);

/* 1 and *handle when id is mapped, else 0. */
int kling_idmap_find(const struct kling_idmap *m, const char *id, size_t len, uint32_t *handle);

/* The id of handle (its length in *len), or NULL. Valid until the handle is removed. */
const char *kling_idmap_id(const struct kling_idmap *m, uint32_t handle, size_t *len);

/* Forgets handle and its id: 1, or 0 when the handle had none. */
int kling_idmap_remove(struct kling_idmap *m, uint32_t handle);

/* Ids mapped, and the memory the map holds (bytes). */
size_t kling_idmap_count(const struct kling_idmap *m);
size_t kling_idmap_bytes(const struct kling_idmap *m);

#endif
