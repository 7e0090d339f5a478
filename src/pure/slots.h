/* Slot limiter for one (provider, model) key: how many tasks may run at the
 * provider at once. Tasks that find no free slot wait here in FIFO order
 * (by a caller-chosen integer id) and are handed slots as they free up.
 *
 * The effective limit starts at the configured limit C and follows AIMD:
 * - a rate-limit signal (the provider says its slots are full) multiplies it by
 *   `decrease` (rounded down, never below 1). Signals within cooldown_ms of
 *   the last decrease count once: the tasks submitted together all bounce
 *   off the same full account, and one cut is the right answer to them.
 * - it recovers by +1 per `recover_after` successful completions and by +1
 *   per `recover_ms` without a rate limit, never above C.
 * Lowering the limit revokes nothing: running tasks keep their slots and
 * no new slot is granted until in_use drops below the limit, so the
 * provider is not hammered while it is full.
 * Sans-I/O: the time is passed in (int64 ms, any monotonic clock). */
#ifndef KLING_SLOTS_H
#define KLING_SLOTS_H

#include <stddef.h>
#include <stdint.h>

/* Largest configured limit accepted. */
#define KLING_SLOTS_LIMIT_MAX 1000000

enum kling_slots_err {
    KLING_SLOTS_OK = 0,
    KLING_SLOTS_ENOMEM = -1, /* allocation failed; nothing changed */
    KLING_SLOTS_EARG = -2    /* release without a slot held */
};

struct kling_slots_config {
    uint32_t limit;         /* C, 1..KLING_SLOTS_LIMIT_MAX, default 1 */
    double decrease;        /* factor on a rate limit, 0 < f < 1, default 0.5 */
    uint32_t recover_after; /* +1 per this many successes; 0 = never, default 2 */
    int64_t recover_ms;     /* +1 per this long without a rate limit; 0 = never, default 30000 */
    int64_t cooldown_ms;    /* rate limits this close to a cut count once, default 2000 */
};

struct kling_slots;

void kling_slots_config_default(struct kling_slots_config *c);

/* NULL when c is valid, else a message naming the field and the rule. */
const char *kling_slots_config_check(const struct kling_slots_config *c);

/* NULL on allocation failure or invalid configuration. */
struct kling_slots *kling_slots_new(const struct kling_slots_config *c);
void kling_slots_free(struct kling_slots *s);

/* Asks for a slot for id. Returns 1 when granted at once, 0 when queued
 * (behind the others, or at the head with front != 0: a task that bounced off
 * a rate limit keeps its turn), or KLING_SLOTS_ENOMEM. A slot is granted at
 * once only when nobody is waiting (or front) and in_use < limit. */
int kling_slots_acquire(struct kling_slots *s, int64_t id, int front);

/* Gives a slot back. KLING_SLOTS_EARG when none is held. */
int kling_slots_release(struct kling_slots *s, int64_t now);

/* Hands free slots to waiting ids, oldest first: up to max ids into out, each
 * now holding a slot; returns how many. Call after release, on_success, or
 * from time to time (time-based recovery). */
size_t kling_slots_grant(struct kling_slots *s, int64_t now, int64_t *out, size_t max);

/* Removes a waiting id from the queue: 1 when it was there, else 0. */
int kling_slots_cancel(struct kling_slots *s, int64_t id);

/* Signals; each returns the effective limit afterwards. */
uint32_t kling_slots_on_rate_limited(struct kling_slots *s, int64_t now);
uint32_t kling_slots_on_success(struct kling_slots *s, int64_t now);

uint32_t kling_slots_limit(const struct kling_slots *s);     /* effective */
uint32_t kling_slots_configured(const struct kling_slots *s); /* C */
uint32_t kling_slots_in_use(const struct kling_slots *s);
size_t kling_slots_queued(const struct kling_slots *s);

#endif
