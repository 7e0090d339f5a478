/* The poll scheduler: decides when each task in flight is polled next.
 * Sans-I/O: every call takes the time (`now`, int64 ms on any monotonic
 * clock the caller likes, a fake one in tests); the randomness for jitter
 * comes from a per-scheduler xorshift64* state seeded at creation.
 *
 * Tasks are compact records (48 bytes) in one growable array, addressed by a
 * dense handle (the array index; freed records are reused through a free
 * list), plus one 16-byte entry each in a binary min-heap of next-poll times:
 * 64 bytes a task. No per-task allocation; add, report, defer and remove are
 * O(log n).
 *
 * Life of a task: add() queues it; due() pops it when its poll time has come
 * (the caller polls the provider); report() tells what the poll learnt and
 * queues it again, or frees it when the status is terminal; remove() frees
 * it at any time. report() is also accepted for a queued task (a callback
 * brought news without a poll): it reschedules. defer() sets the next poll
 * explicitly (Retry-After, a callback's silence timeout).
 *
 * Interval policy. E is the expected finish time of a task. Sources, best
 * first: the rate between two different progress readings; the provider's
 * estimate (add: duration from now; report: remaining time from now); a
 * single progress reading, measured from the last report of progress 0 (the
 * task left the provider's queue) or from the task's creation. A reading p
 * is taken as "at least p, below p + q", q the step the provider reports in
 * (10 or 5 when the readings are multiples of it, else 1), and E as the
 * earliest finish that fits, so rounded percentages never make E late; a
 * single reading is hedged: the next poll comes at most half way to E, to
 * get a second one.
 * - E known and still ahead: the next poll lands at E minus a margin of 1 %
 *   of the expected duration (E - created), jittered by +-jitter of that
 *   margin. This wait is the only gap allowed to exceed max_interval: it is
 *   what keeps a task with a known estimate at a couple of polls. (An
 *   estimate far too long therefore costs lag: pass only estimates worth
 *   trusting.)
 * - E known and (nearly) reached: "late" polls come at a gap of a growing
 *   fraction of the task's age (now - created): 2 %, 3 %, 4 %, then 4.5 %,
 *   jittered, then clamped to [min_interval, max_interval]. Detection lag is
 *   thus at most 4.5 % * (1 + jitter) of the task's run time (<= 4.95 % with
 *   the default jitter), or the interval bounds when they bind; a task that
 *   overruns its estimate is polled at gaps that grow with its age.
 * - A learnt window (kling_sched_expect: the task should end between E and
 *   E + spread, from what tasks of its kind took): the window is widened
 *   below E by 7 % of its width (samples miss the spread's shortest tasks)
 *   and divided evenly into n gaps g of about 4 % of E + spread, g clamped
 *   to [min_interval, max_interval]; the polls are at the points
 *   E + spread - k * g (k < n: none at the widened start), each jittered by
 *   +-jitter of g / 2 (never past the window's end). The lag inside the
 *   window is at most g (about 2.1 % of the task on average with 8 samples
 *   of a uniform +-10 % spread, 2.4 % with +-15 %) and such windows cost
 *   about 2.9 and 3.8 polls. A window of no width (every sample agreed) is
 *   polled once, at its end. Past the window, the late polls above.
 * - Nothing known: geometric back-off, the gap starting at min_interval and
 *   multiplied by `backoff` after each poll, up to max_interval; jittered and
 *   clamped to [min_interval, max_interval].
 * Jitter multiplies a gap by (1 + jitter * u), u uniform in [-1, 1).
 *
 * Deadlines: every task has one, the earlier of its own (absolute, optional)
 * and created + max_age, so nothing is polled forever. A poll is never
 * scheduled past the deadline; due() returns a task at or past its deadline,
 * or any task once the run deadline (absolute, optional, may be moved with
 * kling_sched_set_run_deadline) has passed, flagged expired: the caller ends
 * it with a timeout error and frees it with remove(). */
#ifndef KLING_SCHED_H
#define KLING_SCHED_H

#include <stddef.h>
#include <stdint.h>

/* Estimate or progress not known; deadline absent. */
#define KLING_SCHED_UNKNOWN (-1)

/* Times and durations are accepted within +-2^62 ms (no overflow inside). */
#define KLING_SCHED_TIME_LIMIT (INT64_C(1) << 62)
/* Longest interval bound accepted: a day. */
#define KLING_SCHED_INTERVAL_LIMIT INT64_C(86400000)
/* Longest maximum age accepted: 2^31 - 1 ms (24.8 days). */
#define KLING_SCHED_AGE_LIMIT INT64_C(2147483647)

enum kling_sched_err {
    KLING_SCHED_OK = 0,
    KLING_SCHED_ENOMEM = -1,  /* allocation failed; nothing changed */
    KLING_SCHED_EHANDLE = -2, /* handle out of range or already freed */
    KLING_SCHED_EARG = -3     /* argument outside its documented range */
};

struct kling_sched_config {
    int64_t min_interval_ms; /* shortest gap between polls, default 1000 */
    int64_t max_interval_ms; /* longest gap (except before E), default 30000 */
    double jitter;           /* +- fraction of each gap, 0..0.5, default 0.1 */
    double backoff;          /* gap growth with nothing known, 1..4, default 1.5 */
    int64_t max_age_ms;      /* hard limit on a task's life, default 24 h */
    int64_t run_deadline_ms; /* absolute, or KLING_SCHED_UNKNOWN (default) */
    uint64_t seed;           /* jitter randomness; 0 picks a fixed constant */
};

/* What due() returns for each task whose poll time has come. */
struct kling_sched_due {
    uint32_t handle;
    int expired; /* past its deadline or the run deadline: end it, remove() */
};

struct kling_sched_counts {
    size_t live;     /* tasks added and not freed */
    size_t queued;   /* waiting in the heap */
    size_t inflight; /* returned by due(), not yet reported */
    size_t bytes;    /* memory held by the scheduler */
};

struct kling_sched;

void kling_sched_config_default(struct kling_sched_config *c);

/* NULL when c is valid, else a message naming the field and the rule. */
const char *kling_sched_config_check(const struct kling_sched_config *c);

/* NULL when the allocation fails or the configuration is invalid. */
struct kling_sched *kling_sched_new(const struct kling_sched_config *c);
void kling_sched_free(struct kling_sched *s);

const char *kling_sched_strerror(int err);

/* Adds a task created at `now`. estimate_ms: expected duration from now, or
 * KLING_SCHED_UNKNOWN. deadline_ms: absolute, or KLING_SCHED_UNKNOWN. */
int kling_sched_add(struct kling_sched *s, int64_t now, int64_t estimate_ms,
                    int64_t deadline_ms, uint32_t *handle);

/* Pops up to max tasks whose poll time is <= now (or all, once the run
 * deadline has passed), earliest first (ties by handle), into out; returns
 * how many. They stay live, "in flight", until report() or remove(). */
size_t kling_sched_due(struct kling_sched *s, int64_t now, struct kling_sched_due *out, size_t max);

/* What a poll (or a callback) learnt. progress: 0..100 or UNKNOWN.
 * estimate_ms: remaining time from now, or UNKNOWN. terminal: the task is
 * done (either way) and its handle is freed; *next is then UNKNOWN, else the
 * absolute time of the next poll. next may be NULL. */
int kling_sched_report(struct kling_sched *s, uint32_t handle, int64_t now, int progress,
                       int64_t estimate_ms, int terminal, int64_t *next);

/* The task is expected to end between now + earliest_ms and now + latest_ms
 * (0 <= earliest <= latest <= KLING_SCHED_AGE_LIMIT): what tasks of its kind
 * took, learnt by the caller. A queued task is rescheduled (*next: its next
 * poll); one in flight takes the window at its report (*next UNKNOWN). A
 * later report with progress or an estimate replaces the window. */
int kling_sched_expect(struct kling_sched *s, uint32_t handle, int64_t now, int64_t earliest_ms,
                       int64_t latest_ms, int64_t *next);

/* Next poll at now + delay_ms (>= 0), capped by the deadlines. */
int kling_sched_defer(struct kling_sched *s, uint32_t handle, int64_t now, int64_t delay_ms,
                      int64_t *next);

int kling_sched_remove(struct kling_sched *s, uint32_t handle);

/* Milliseconds from now until due() has something (0 when it has now), or
 * UNKNOWN when no task is queued: the timeout for curl_multi_poll. */
int64_t kling_sched_next_wakeup(const struct kling_sched *s, int64_t now);

/* Moves the run deadline (absolute, or UNKNOWN for none). */
int kling_sched_set_run_deadline(struct kling_sched *s, int64_t deadline_ms);

void kling_sched_counts(const struct kling_sched *s, struct kling_sched_counts *out);

/* 1 when handle names a live task (added, not yet removed or ended). */
int kling_sched_is_live(const struct kling_sched *s, uint32_t handle);

/* Absolute time of a queued task's next poll; UNKNOWN when it is not queued. */
int64_t kling_sched_next_at(const struct kling_sched *s, uint32_t handle);

/* Times a live task has been returned by due() unexpired; 0 for a bad handle. */
uint32_t kling_sched_polls(const struct kling_sched *s, uint32_t handle);

/* Size of one task's record and heap entry: the memory per task at full
 * capacity. */
size_t kling_sched_task_bytes(void);

/* 0 when the internal invariants hold (heap order, back-pointers, counts,
 * free list): for tests. */
int kling_sched_check(const struct kling_sched *s);

#endif
