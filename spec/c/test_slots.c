/* The slot limiter: AIMD on rate limits (never below 1, cooldown, recovery by
 * successes and by time), the FIFO of waiting ids, and a fake-clock batch
 * through the scheduler and the limiter against a provider with C slots:
 * utilisation = ceil(N / C) * task time / batch wall time (issue 5). */
#include "sched.h"
#include "slots.h"

#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct kling_slots *mk(uint32_t limit, uint32_t recover_after, int64_t recover_ms, int64_t cooldown_ms) {
    struct kling_slots_config c;
    struct kling_slots *s;
    kling_slots_config_default(&c);
    c.limit = limit;
    c.recover_after = recover_after;
    c.recover_ms = recover_ms;
    c.cooldown_ms = cooldown_ms;
    s = kling_slots_new(&c);
    if (s == NULL) {
        fprintf(stderr, "kling_slots_new failed\n");
        exit(2);
    }
    return s;
}

static void test_decrease(void) {
    struct kling_slots *s = mk(20, 0, 0, 1000);
    CHECK_WHY(kling_slots_limit(s) == 20, "starts at C");
    CHECK_WHY(kling_slots_on_rate_limited(s, 0) == 10, "halved");
    CHECK_WHY(kling_slots_on_rate_limited(s, 500) == 10, "a burst within the cooldown counts once");
    CHECK_WHY(kling_slots_on_rate_limited(s, 999) == 10, "still within the cooldown");
    CHECK_WHY(kling_slots_on_rate_limited(s, 1000) == 5, "after the cooldown");
    CHECK_WHY(kling_slots_on_rate_limited(s, 2000) == 2, "5 * 0.5 rounds down");
    CHECK_WHY(kling_slots_on_rate_limited(s, 3000) == 1, "1");
    CHECK_WHY(kling_slots_on_rate_limited(s, 4000) == 1, "never below 1");
    CHECK_WHY(kling_slots_configured(s) == 20, "C unchanged");
    kling_slots_free(s);
    {
        struct kling_slots_config c;
        kling_slots_config_default(&c);
        c.limit = 10;
        c.decrease = 0.7;
        c.recover_after = 0;
        c.recover_ms = 0;
        s = kling_slots_new(&c);
        CHECK_WHY(s && kling_slots_on_rate_limited(s, 0) == 7, "decrease 0.7");
        kling_slots_free(s);
    }
}

static void test_recovery(void) {
    struct kling_slots *s = mk(8, 3, 0, 0);
    int i;
    kling_slots_on_rate_limited(s, 0); /* 4 */
    kling_slots_on_success(s, 10);
    kling_slots_on_success(s, 20);
    CHECK_WHY(kling_slots_limit(s) == 4, "two successes: not yet");
    CHECK_WHY(kling_slots_on_success(s, 30) == 5, "+1 per 3 successes");
    for (i = 0; i < 30; i++) {
        kling_slots_on_success(s, 40 + i);
    }
    CHECK_WHY(kling_slots_limit(s) == 8, "never above C (%u)", kling_slots_limit(s));
    /* Successes at the full limit bank no credit for after the next cut. */
    kling_slots_on_success(s, 100);
    kling_slots_on_success(s, 101);
    kling_slots_on_rate_limited(s, 200); /* 4 */
    CHECK_WHY(kling_slots_on_success(s, 201) == 4, "no banked credit");
    kling_slots_free(s);

    /* Time: +1 per 1000 ms since the cut, never above C; a new cut restarts it. */
    s = mk(8, 0, 1000, 0);
    kling_slots_on_rate_limited(s, 10000); /* 4 */
    CHECK_WHY(kling_slots_on_success(s, 10999) == 4, "not a full window yet");
    CHECK_WHY(kling_slots_on_success(s, 11000) == 5, "one window");
    CHECK_WHY(kling_slots_on_success(s, 13500) == 7, "two more windows (%u)", kling_slots_limit(s));
    CHECK_WHY(kling_slots_on_rate_limited(s, 13600) == 3, "cut from 7");
    CHECK_WHY(kling_slots_on_success(s, 14500) == 3, "window counts from the cut");
    CHECK_WHY(kling_slots_on_success(s, 100000) == 8, "capped at C");
    CHECK_WHY(kling_slots_on_success(s, 5000) == 8, "a clock going backwards changes nothing");
    kling_slots_free(s);
}

static void test_queue(void) {
    struct kling_slots *s = mk(2, 1, 0, 0);
    int64_t out[8];
    size_t n;
    int i;
    CHECK_WHY(kling_slots_acquire(s, 1, 0) == 1, "first slot");
    CHECK_WHY(kling_slots_acquire(s, 2, 0) == 1, "second slot");
    CHECK_WHY(kling_slots_acquire(s, 3, 0) == 0, "queued");
    CHECK_WHY(kling_slots_acquire(s, 4, 0) == 0, "queued");
    CHECK_WHY(kling_slots_acquire(s, 5, 1) == 0, "queued at the head");
    CHECK_WHY(kling_slots_in_use(s) == 2 && kling_slots_queued(s) == 3, "counts");
    CHECK_WHY(kling_slots_grant(s, 0, out, 8) == 0, "nothing free");
    CHECK_WHY(kling_slots_release(s, 0) == KLING_SLOTS_OK, "release");
    n = kling_slots_grant(s, 0, out, 8);
    CHECK_WHY(n == 1 && out[0] == 5, "the head first (%zu, %lld)", n, (long long)out[0]);
    CHECK_WHY(kling_slots_cancel(s, 3) == 1, "cancel a waiting id");
    CHECK_WHY(kling_slots_cancel(s, 3) == 0, "cancel twice");
    kling_slots_release(s, 0);
    n = kling_slots_grant(s, 0, out, 8);
    CHECK_WHY(n == 1 && out[0] == 4, "then the next in order");
    CHECK_WHY(kling_slots_queued(s) == 0, "queue empty");
    /* While others wait, a newcomer does not jump the queue even when a slot is free. */
    kling_slots_on_rate_limited(s, 0); /* limit 1, 2 in use */
    CHECK_WHY(kling_slots_acquire(s, 6, 0) == 0, "over the lowered limit: queued");
    kling_slots_release(s, 0);
    kling_slots_release(s, 0); /* 0 in use, limit 1, 6 waiting */
    CHECK_WHY(kling_slots_acquire(s, 7, 0) == 0, "no jumping the queue");
    n = kling_slots_grant(s, 0, out, 8);
    CHECK_WHY(n == 1 && out[0] == 6, "6 before 7");
    /* Releasing a slot not held is refused. */
    kling_slots_release(s, 0);
    CHECK_WHY(kling_slots_release(s, 0) == KLING_SLOTS_EARG, "release below 0");
    kling_slots_free(s);
    /* The ring buffer grows and wraps in order. */
    s = mk(1, 0, 0, 0);
    kling_slots_acquire(s, 0, 0);
    for (i = 1; i <= 100; i++) {
        CHECK_WHY(kling_slots_acquire(s, i, 0) == 0, "queued %d", i);
        if (i % 3 == 0) {
            kling_slots_release(s, 0);
            n = kling_slots_grant(s, 0, out, 1);
            CHECK_WHY(n == 1 && out[0] == i / 3, "wrap order %d: %lld", i, (long long)out[0]);
        }
    }
    CHECK_WHY(kling_slots_queued(s) == 67, "67 waiting (%zu)", kling_slots_queued(s));
    kling_slots_free(s);
}

static void test_config(void) {
    struct kling_slots_config c;
    const char *m;
    kling_slots_config_default(&c);
    CHECK_WHY(kling_slots_config_check(&c) == NULL, "defaults valid");
    c.limit = 0;
    m = kling_slots_config_check(&c);
    CHECK_WHY(m && strstr(m, "limit"), "limit 0");
    CHECK_WHY(kling_slots_new(&c) == NULL, "new refuses");
    kling_slots_config_default(&c);
    c.decrease = 1.0;
    m = kling_slots_config_check(&c);
    CHECK_WHY(m && strstr(m, "decrease"), "decrease 1");
    kling_slots_config_default(&c);
    c.recover_ms = -1;
    m = kling_slots_config_check(&c);
    CHECK_WHY(m && strstr(m, "recover_ms"), "recover_ms -1");
}

/* ---- a batch through the scheduler and the limiter ---- */

struct batch {
    int n;                 /* tasks */
    uint32_t provider;     /* slots the provider really has */
    uint32_t configured;   /* C the client is configured with */
    int64_t task_ms;
    int estimate;          /* the client knows the task time */
    int64_t busy_until;    /* another client holds `busy` slots until then */
    uint32_t busy;
};

struct result {
    double util;
    int64_t wall;
    long polls, creates, rejects;
    uint32_t lowest;
};

enum { WAITING, HOLDING, RUNNING, DONE };

static struct result run_batch(const struct batch *b, uint64_t seed) {
    struct kling_sched_config sc;
    struct kling_sched *s;
    struct kling_slots *sl = mk(b->configured, 2, 30000, 2000);
    struct result res = {0, 0, 0, 0, 0, b->configured};
    int *state = calloc((size_t)b->n, sizeof(int));
    int64_t *accepted = calloc((size_t)b->n, sizeof(int64_t));
    int64_t *retry_at = calloc((size_t)b->n, sizeof(int64_t));
    int *by_handle = calloc((size_t)b->n, sizeof(int));
    int64_t *granted = malloc(sizeof(int64_t) * (size_t)b->n);
    struct kling_sched_due *due = malloc(sizeof(*due) * (size_t)b->n);
    int64_t now = 0;
    int done = 0, i;
    kling_sched_config_default(&sc);
    sc.seed = seed;
    s = kling_sched_new(&sc);
    if (!s || !state || !accepted || !retry_at || !by_handle || !granted || !due) {
        fprintf(stderr, "alloc\n");
        exit(2);
    }
    for (i = 0; i < b->n; i++) {
        retry_at[i] = -1;
        if (kling_slots_acquire(sl, i, 0) == 1) {
            state[i] = HOLDING;
            retry_at[i] = 0;
        }
    }
    while (done < b->n) {
        int64_t next = INT64_MAX, w;
        size_t n, k;
        /* Creates whose time has come (first tries and retries after a 1303). */
        for (i = 0; i < b->n; i++) {
            if (state[i] == HOLDING && retry_at[i] >= 0 && retry_at[i] <= now) {
                uint32_t running = 0, h;
                int j;
                for (j = 0; j < b->n; j++) {
                    running += state[j] == RUNNING && accepted[j] + b->task_ms > now;
                }
                if (now < b->busy_until) running += b->busy;
                res.creates++;
                retry_at[i] = -1;
                if (running < b->provider) {
                    state[i] = RUNNING;
                    accepted[i] = now;
                    kling_sched_add(s, now, b->estimate ? b->task_ms : KLING_SCHED_UNKNOWN, KLING_SCHED_UNKNOWN, &h);
                    by_handle[h] = i;
                } else {
                    /* 1303: cut the limit, give the slot back, keep the turn; a
                     * slot granted at once still waits the 1 s rate-limit floor. */
                    uint32_t lim = kling_slots_on_rate_limited(sl, now);
                    res.rejects++;
                    if (lim < res.lowest) res.lowest = lim;
                    kling_slots_release(sl, now);
                    state[i] = WAITING;
                    if (kling_slots_acquire(sl, i, 1) == 1) {
                        state[i] = HOLDING;
                        retry_at[i] = now + 1000;
                    }
                }
            }
        }
        /* Polls. */
        n = kling_sched_due(s, now, due, (size_t)b->n);
        for (k = 0; k < n; k++) {
            int t = by_handle[due[k].handle];
            CHECK_WHY(!due[k].expired, "expired");
            res.polls++;
            if (now >= accepted[t] + b->task_ms) {
                kling_sched_report(s, due[k].handle, now, 100, KLING_SCHED_UNKNOWN, 1, NULL);
                state[t] = DONE;
                done++;
                res.wall = now;
                kling_slots_on_success(sl, now);
                kling_slots_release(sl, now);
            } else {
                kling_sched_report(s, due[k].handle, now, KLING_SCHED_UNKNOWN, KLING_SCHED_UNKNOWN, 0, NULL);
            }
        }
        /* Slots freed (or recovered with time) go to the waiting, in order. */
        n = kling_slots_grant(sl, now, granted, (size_t)b->n);
        for (k = 0; k < n; k++) {
            state[granted[k]] = HOLDING;
            retry_at[granted[k]] = now;
        }
        if (n > 0) continue;
        CHECK_WHY(kling_slots_in_use(sl) <= kling_slots_limit(sl) || res.rejects > 0, "over the limit");
        for (i = 0; i < b->n; i++) {
            if (state[i] == HOLDING && retry_at[i] >= 0 && retry_at[i] < next) next = retry_at[i];
        }
        w = kling_sched_next_wakeup(s, now);
        if (w != KLING_SCHED_UNKNOWN && now + w < next) next = now + w;
        if (next == INT64_MAX) {
            /* Only time-based recovery can move things now. */
            next = now + 1000;
        }
        now = next;
    }
    res.util = (double)((b->n + (int)b->provider - 1) / (int)b->provider) * (double)b->task_ms / (double)res.wall;
    kling_sched_free(s);
    kling_slots_free(sl);
    free(state);
    free(accepted);
    free(retry_at);
    free(by_handle);
    free(granted);
    free(due);
    return res;
}

static void test_utilisation(void) {
    static const int64_t times[] = {30000, 120000, 300000};
    size_t i;
    printf("1000 tasks through 20 slots (utilisation = ceil(N/C) * T / wall):\n");
    for (i = 0; i < 3; i++) {
        struct batch b = {1000, 20, 20, times[i], 1, 0, 0};
        struct result r = run_batch(&b, 1);
        struct result u;
        printf("  T=%3llds, estimate known:   utilisation %.3f, %.2f polls/task\n", (long long)(times[i] / 1000),
               r.util, (double)r.polls / b.n);
        CHECK_WHY(r.util >= 0.95, "T=%lld known estimate: utilisation %.3f < 0.95", (long long)times[i], r.util);
        CHECK_WHY(r.rejects == 0, "no 1303 when C matches the provider");
        b.estimate = 0;
        u = run_batch(&b, 2);
        printf("  T=%3llds, nothing known:    utilisation %.3f, %.2f polls/task\n", (long long)(times[i] / 1000),
               u.util, (double)u.polls / b.n);
        CHECK_WHY(u.util >= 0.75, "T=%lld unknown estimate: utilisation %.3f", (long long)times[i], u.util);
    }
    {
        /* Configured above the provider's real limit: 1303s cut the limit
         * (AIMD), the batch still finishes, the provider is not hammered. */
        struct batch b = {1000, 20, 30, 120000, 1, 0, 0};
        struct result r = run_batch(&b, 3);
        printf("  C=30 against 20 real slots, T=120 s: utilisation %.3f, %ld creates for 1000 tasks "
               "(%ld rejected, %.3f per task), lowest limit %u\n",
               r.util, r.creates, r.rejects, (double)r.rejects / b.n, r.lowest);
        CHECK_WHY(r.util >= 0.8, "over-configured utilisation %.3f", r.util);
        CHECK_WHY(r.rejects <= 300, "rejects %ld", r.rejects);
        CHECK_WHY(r.lowest >= 1, "limit %u", r.lowest);
    }
    {
        /* Another client holds 15 of the 20 slots for the first 10 minutes. */
        struct batch b = {200, 20, 20, 60000, 1, 600000, 15};
        struct result r = run_batch(&b, 4);
        printf("  15 of 20 slots taken by someone else for 600 s, 200 tasks of 60 s: wall %.0f s, "
               "%ld rejected, lowest limit %u\n",
               (double)r.wall / 1000.0, r.rejects, r.lowest);
        CHECK_WHY(r.rejects <= 60, "shared account: rejects %ld", r.rejects);
        CHECK_WHY(r.wall <= 600000 + 10 * 62000 + 60000, "shared account: wall %lld", (long long)r.wall);
    }
}

int main(void) {
    test_decrease();
    test_recovery();
    test_queue();
    test_config();
    test_utilisation();
    return check_done();
}
