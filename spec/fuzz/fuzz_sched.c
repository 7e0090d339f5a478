/* The poll scheduler driven by random operation sequences (add, due, report,
 * defer, remove, run deadline) on a clock that only moves forward. After every
 * step kling_sched_check() must hold (heap order, back-pointers, counts, free
 * list), and the counts must match a model of which handles are queued, in
 * flight or free; due() returns only queued tasks whose time has come (or any,
 * expired, past the run deadline), earliest first; a terminal report frees. */
#include "fuzz.h"
#include "sched.h"

#define MAXT 256

enum { FREE, QUEUED, INFLIGHT };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_in in = {data, size};
    struct kling_sched_config c;
    struct kling_sched *s;
    struct kling_sched_counts counts;
    struct kling_sched_due due[16];
    uint8_t state[MAXT];
    uint32_t h;
    int64_t now = (int64_t)fuzz_u64(&in, 4), next, w;
    size_t i, k, live = 0, queued = 0, inflight = 0;

    kling_sched_config_default(&c);
    c.min_interval_ms = 1 + (int64_t)fuzz_u64(&in, 2);
    c.max_interval_ms = c.min_interval_ms + (int64_t)fuzz_u64(&in, 3);
    c.jitter = (fuzz_u8(&in) % 6) * 0.1;
    c.backoff = 1 + (fuzz_u8(&in) % 4) * 0.75;
    c.max_age_ms = 1 + (int64_t)fuzz_u64(&in, 3);
    c.seed = fuzz_u64(&in, 8);
    if (kling_sched_config_check(&c) != NULL) {
        FUZZ_CHECK(kling_sched_new(&c) == NULL);
        return 0;
    }
    s = kling_sched_new(&c);
    FUZZ_CHECK(s != NULL);
    memset(state, FREE, sizeof state);

    while (in.n > 0) {
        uint8_t op = fuzz_u8(&in);
        now += (int64_t)fuzz_u64(&in, 2);
        switch (op % 7) {
        case 0: { /* add */
            int64_t est = op & 8 ? (int64_t)fuzz_u64(&in, 3) : KLING_SCHED_UNKNOWN;
            int64_t dl = op & 16 ? now + (int64_t)fuzz_u64(&in, 3) : KLING_SCHED_UNKNOWN;
            if (live >= MAXT - 1) break;
            FUZZ_CHECK(kling_sched_add(s, now, est, dl, &h) == KLING_SCHED_OK);
            FUZZ_CHECK(h < MAXT && state[h] == FREE);
            state[h] = QUEUED;
            live++;
            queued++;
            break;
        }
        case 1: { /* due */
            k = kling_sched_due(s, now, due, (op >> 3) % 17);
            for (i = 0; i < k; i++) {
                FUZZ_CHECK(due[i].handle < MAXT && state[due[i].handle] == QUEUED);
                state[due[i].handle] = INFLIGHT;
                queued--;
                inflight++;
                FUZZ_CHECK(kling_sched_next_at(s, due[i].handle) == KLING_SCHED_UNKNOWN);
            }
            break;
        }
        case 2:   /* report progress, or the end */
        case 3: { /* defer */
            int terminal = (op >> 3) & 1;
            for (h = (uint32_t)fuzz_u8(&in); h < MAXT && state[h] != INFLIGHT; h++) {
            }
            if (h >= MAXT) break;
            if (op % 7 == 2) {
                int progress = op & 16 ? (int)(fuzz_u8(&in) % 101) : KLING_SCHED_UNKNOWN;
                int64_t est = op & 32 ? (int64_t)fuzz_u64(&in, 3) : KLING_SCHED_UNKNOWN;
                FUZZ_CHECK(kling_sched_report(s, h, now, progress, est, terminal, &next) == KLING_SCHED_OK);
                if (terminal) {
                    FUZZ_CHECK(next == KLING_SCHED_UNKNOWN && !kling_sched_is_live(s, h));
                    state[h] = FREE;
                    live--;
                    inflight--;
                    break;
                }
            } else {
                FUZZ_CHECK(kling_sched_defer(s, h, now, (int64_t)fuzz_u64(&in, 3), &next) == KLING_SCHED_OK);
            }
            FUZZ_CHECK(kling_sched_next_at(s, h) == next);
            state[h] = QUEUED;
            inflight--;
            queued++;
            break;
        }
        case 4: { /* remove, queued or in flight */
            h = fuzz_u8(&in);
            if (state[h] == FREE) {
                FUZZ_CHECK(kling_sched_remove(s, h) == KLING_SCHED_EHANDLE);
                break;
            }
            FUZZ_CHECK(kling_sched_remove(s, h) == KLING_SCHED_OK);
            if (state[h] == QUEUED) queued--; else inflight--;
            state[h] = FREE;
            live--;
            break;
        }
        case 5:
            FUZZ_CHECK(kling_sched_set_run_deadline(s, op & 8 ? now + (int64_t)fuzz_u64(&in, 3)
                                                              : KLING_SCHED_UNKNOWN) == KLING_SCHED_OK);
            break;
        default:
            w = kling_sched_next_wakeup(s, now);
            FUZZ_CHECK(queued ? w >= 0 : w == KLING_SCHED_UNKNOWN);
            break;
        }
        FUZZ_CHECK(kling_sched_check(s) == 0);
        kling_sched_counts(s, &counts);
        FUZZ_CHECK(counts.live == live && counts.queued == queued && counts.inflight == inflight);
    }
    kling_sched_free(s);
    return 0;
}
