/* The poll scheduler against a fake clock: heap order against a naive
 * reference, the interval policy's polls and detection lag, progress
 * extrapolation, deadlines, jitter bounds and memory per task. */
#include "sched.h"

#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNKNOWN KLING_SCHED_UNKNOWN

/* Test-side randomness (independent of the scheduler's). */
static uint64_t trng = 88172645463325252ULL;
static uint64_t tr(void) {
    trng ^= trng << 13;
    trng ^= trng >> 7;
    trng ^= trng << 17;
    return trng;
}
static int64_t trange(int64_t lo, int64_t hi) {
    return lo + (int64_t)(tr() % (uint64_t)(hi - lo + 1));
}

static struct kling_sched *mk(int64_t min, int64_t max, double jitter, uint64_t seed) {
    struct kling_sched_config c;
    struct kling_sched *s;
    kling_sched_config_default(&c);
    c.min_interval_ms = min;
    c.max_interval_ms = max;
    c.jitter = jitter;
    c.seed = seed;
    s = kling_sched_new(&c);
    if (s == NULL) {
        fprintf(stderr, "kling_sched_new failed\n");
        exit(2);
    }
    return s;
}

/* ---- heap order against a naive reference ---- */

enum { R_FREE, R_QUEUED, R_INFLIGHT };

struct ref {
    int64_t at;
    int64_t deadline;
    int state;
};

static struct ref *refs;
static int cmp_handle_by_time(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (refs[x].at != refs[y].at) {
        return refs[x].at < refs[y].at ? -1 : 1;
    }
    return x < y ? -1 : (x > y);
}

static void test_heap_against_reference(void) {
    enum { N = 100000 };
    struct kling_sched *s = mk(1000, 30000, 0.1, 7);
    uint32_t *live = malloc(sizeof(uint32_t) * N); /* live handles (any state) */
    size_t *pos = malloc(sizeof(size_t) * N);      /* index in live[] */
    uint32_t *expect = malloc(sizeof(uint32_t) * N);
    struct kling_sched_due *got = malloc(sizeof(*got) * N);
    size_t nlive = 0, added = 0, ops = 0, popped = 0, i;
    int64_t now = 0;
    refs = calloc(N, sizeof(*refs));
    if (!live || !pos || !expect || !got || !refs) {
        fprintf(stderr, "alloc\n");
        exit(2);
    }
    while (added < N || nlive > 0) {
        int op = (int)(tr() % 1000);
        ops++;
        now += trange(0, 40);
        if (added < N && (op < 350 || nlive == 0)) {
            uint32_t h;
            int64_t est = tr() % 3 == 0 ? UNKNOWN : trange(0, 300000);
            int64_t dl = tr() % 2 == 0 ? UNKNOWN : now + trange(0, 400000);
            int rc = kling_sched_add(s, now, est, dl, &h);
            CHECK_WHY(rc == KLING_SCHED_OK, "add rc %d", rc);
            CHECK_WHY(h < N, "handle %u not dense", h);
            CHECK_WHY(refs[h].state == R_FREE, "handle %u reused while live", h);
            refs[h].state = R_QUEUED;
            refs[h].deadline = (dl == UNKNOWN || dl > now + 86400000) ? now + 86400000 : dl;
            refs[h].at = kling_sched_next_at(s, h);
            CHECK_WHY(refs[h].at >= now + 1000 || refs[h].at == refs[h].deadline, "first poll %lld too soon",
                  (long long)refs[h].at);
            CHECK_WHY(refs[h].at <= refs[h].deadline, "first poll past the deadline");
            pos[h] = nlive;
            live[nlive++] = h;
            added++;
        } else if (op < 600) {
            uint32_t h = live[tr() % nlive];
            int64_t at = 0;
            int term = tr() % 10 == 0;
            int prog = tr() % 2 ? UNKNOWN : (int)trange(0, 100);
            int64_t est = tr() % 2 ? UNKNOWN : trange(0, 100000);
            int rc = kling_sched_report(s, h, now, prog, est, term, &at);
            CHECK_WHY(rc == KLING_SCHED_OK, "report rc %d", rc);
            if (term) {
                CHECK_WHY(at == UNKNOWN, "terminal next %lld", (long long)at);
                refs[h].state = R_FREE;
                live[pos[h]] = live[--nlive];
                pos[live[pos[h]]] = pos[h];
            } else {
                CHECK_WHY(at <= refs[h].deadline, "next %lld past deadline %lld", (long long)at,
                      (long long)refs[h].deadline);
                CHECK_WHY(at >= now + 1000 || at == refs[h].deadline, "next %lld sooner than min after %lld",
                      (long long)at, (long long)now);
                refs[h].state = R_QUEUED;
                refs[h].at = at;
            }
        } else if (op < 800) {
            uint32_t h = live[tr() % nlive];
            int64_t at = 0, d = trange(0, 100000);
            int rc = kling_sched_defer(s, h, now, d, &at);
            CHECK_WHY(rc == KLING_SCHED_OK, "defer rc %d", rc);
            refs[h].state = R_QUEUED;
            refs[h].at = at;
        } else if (op < 980) {
            uint32_t h = live[tr() % nlive];
            CHECK_WHY(kling_sched_remove(s, h) == KLING_SCHED_OK, "remove");
            refs[h].state = R_FREE;
            live[pos[h]] = live[--nlive];
            pos[live[pos[h]]] = pos[h];
        } else {
            size_t n = 0, max = (size_t)trange(1, 400), got_n, k;
            if (op >= 995) {
                now += trange(0, 100000); /* a long stall: many tasks come due at once */
            }
            for (k = 0; k < nlive; k++) {
                uint32_t h = live[k];
                if (refs[h].state == R_QUEUED && refs[h].at <= now) {
                    expect[n++] = h;
                }
            }
            qsort(expect, n, sizeof(*expect), cmp_handle_by_time);
            if (n > max) n = max;
            got_n = kling_sched_due(s, now, got, max);
            CHECK_WHY(got_n == n, "due returned %zu, reference %zu", got_n, n);
            for (k = 0; k < n && k < got_n; k++) {
                uint32_t h = expect[k];
                CHECK_WHY(got[k].handle == h, "due[%zu] = %u, reference %u", k, got[k].handle, h);
                CHECK_WHY(got[k].expired == (now >= refs[h].deadline), "expired flag of %u", h);
                refs[h].state = R_INFLIGHT;
            }
            popped += got_n;
            {
                int64_t w = kling_sched_next_wakeup(s, now);
                int64_t f2 = INT64_MAX;
                for (k = 0; k < nlive; k++) {
                    uint32_t h = live[k];
                    if (refs[h].state == R_QUEUED && refs[h].at < f2) f2 = refs[h].at;
                }
                if (f2 == INT64_MAX) {
                    CHECK_WHY(w == UNKNOWN, "wakeup %lld with nothing queued", (long long)w);
                } else {
                    CHECK_WHY(w == (f2 > now ? f2 - now : 0), "wakeup %lld, reference %lld", (long long)w,
                          (long long)(f2 > now ? f2 - now : 0));
                }
            }
        }
        if (ops % 20000 == 0) {
            CHECK_WHY(kling_sched_check(s) == 0, "invariants broken after %zu ops", ops);
        }
    }
    CHECK_WHY(kling_sched_check(s) == 0, "invariants at the end");
    {
        struct kling_sched_counts c;
        kling_sched_counts(s, &c);
        CHECK_WHY(c.live == 0 && c.queued == 0 && c.inflight == 0, "counts at the end %zu %zu %zu", c.live,
              c.queued, c.inflight);
    }
    for (i = 0; i < N; i++) {
        CHECK_WHY(refs[i].state == R_FREE || i >= added, "ref %zu left", i);
    }
    printf("heap: %zu tasks, %zu operations, %zu popped by due(), all in reference order\n", added, ops,
           popped);
    free(live);
    free(pos);
    free(expect);
    free(got);
    free(refs);
    kling_sched_free(s);
}

/* ---- one task against a fake provider ---- */

struct run {
    int polls;
    int64_t lag;      /* from the finish to the poll that saw it */
    int64_t max_gap;  /* longest gap between polls after the first */
    int expired;
};

/* Runs one task that finishes at `finish` ms. estimate: given at add (or
 * UNKNOWN). progress: the provider reports linear progress after `queued` ms
 * in its queue, rounded down to a multiple of `quantum` %. */
static struct run simulate_q(struct kling_sched *s, int64_t finish, int64_t estimate, int progress,
                             int64_t queued, int quantum) {
    struct run r = {0, 0, 0, 0};
    uint32_t h;
    int64_t now = 0, last = -1;
    struct kling_sched_due d;
    int rc = kling_sched_add(s, 0, estimate, UNKNOWN, &h);
    CHECK_WHY(rc == 0, "add");
    for (;;) {
        int64_t w = kling_sched_next_wakeup(s, now);
        int p = UNKNOWN;
        if (w == UNKNOWN) {
            CHECK_WHY(0, "nothing queued for a live task");
            break;
        }
        now += w;
        CHECK_WHY(kling_sched_due(s, now, &d, 1) == 1 && d.handle == h, "due");
        if (d.expired) {
            r.expired = 1;
            kling_sched_remove(s, h);
            break;
        }
        r.polls++;
        if (last >= 0 && now - last > r.max_gap) r.max_gap = now - last;
        last = now;
        if (now >= finish) {
            r.lag = now - finish;
            kling_sched_report(s, h, now, 100, UNKNOWN, 1, NULL);
            break;
        }
        if (progress) {
            p = now < queued ? 0 : (int)((now - queued) * 100 / (finish - queued)) / quantum * quantum;
        }
        kling_sched_report(s, h, now, p, UNKNOWN, 0, NULL);
    }
    return r;
}

static struct run simulate(struct kling_sched *s, int64_t finish, int64_t estimate, int progress,
                           int64_t queued) {
    return simulate_q(s, finish, estimate, progress, queued, 1);
}

static void test_known_estimate_120s(void) {
    int seed, worst_polls = 0;
    int64_t worst_lag = 0;
    for (seed = 1; seed <= 2000; seed++) {
        struct kling_sched *s = mk(1000, 30000, 0.1, (uint64_t)seed);
        struct run r = simulate(s, 120000, 120000, 0, 0);
        if (r.polls > worst_polls) worst_polls = r.polls;
        if (r.lag > worst_lag) worst_lag = r.lag;
        kling_sched_free(s);
    }
    printf("120 s task, estimate 120 s, 2000 seeds: at most %d polls, lag at most %lld ms\n", worst_polls,
           (long long)worst_lag);
    CHECK_WHY(worst_polls <= 6, "polls %d > 6", worst_polls);
    CHECK_WHY(worst_lag <= 6000, "lag %lld ms > 5%% of 120 s", (long long)worst_lag);
}

/* Tasks of 30..300 s: with an exact estimate, with estimates 20 % off either
 * way, with progress only, with nothing known; and fixed-interval polling. */
static void test_task_lengths(void) {
    static const int64_t lengths[] = {30000, 60000, 120000, 180000, 300000};
    size_t i;
    printf("polls per task (mean of 200 seeds) and detection lag (worst), min 1 s, max 30 s, jitter 0.1\n");
    printf("%8s | %-22s | %-22s | %-22s | %-22s | %-22s | fixed 1/3/10 s polls\n", "task", "estimate = T",
           "estimate = 0.8 T", "estimate = 1.2 T", "progress only (1 %)", "nothing known");
    for (i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        int64_t T = lengths[i];
        const char *names[5] = {"exact", "short", "long", "progress", "none"};
        double polls[5] = {0}, lag[5] = {0}, maxlag[5] = {0};
        int k, seed, seeds = 200;
        (void)names;
        for (k = 0; k < 5; k++) {
            for (seed = 1; seed <= seeds; seed++) {
                struct kling_sched *s = mk(1000, 30000, 0.1, (uint64_t)(seed * 31 + k));
                int64_t est = k == 0 ? T : k == 1 ? T * 8 / 10 : k == 2 ? T * 12 / 10 : UNKNOWN;
                struct run r = simulate(s, T, est, k == 3, 0);
                CHECK_WHY(!r.expired, "expired");
                polls[k] += r.polls;
                lag[k] += (double)r.lag;
                if ((double)r.lag > maxlag[k]) maxlag[k] = (double)r.lag;
                if (r.max_gap > 0 && (k == 0 || k == 4)) {
                    CHECK_WHY(r.max_gap <= 30000, "gap %lld past max_interval", (long long)r.max_gap);
                }
                kling_sched_free(s);
            }
            polls[k] /= seeds;
            lag[k] /= seeds;
        }
        printf("%6llds |", (long long)(T / 1000));
        for (k = 0; k < 5; k++) {
            printf(" %4.1f polls lag %5.2f s |", polls[k], maxlag[k] / 1000.0);
        }
        printf(" %lld/%lld/%lld (lag <= 1/3/10 s)\n", (long long)(T / 1000), (long long)((T + 2999) / 3000),
               (long long)((T + 9999) / 10000));
        /* An exact estimate: a couple of polls, lag <= 5 % (or min interval). */
        CHECK_WHY(polls[0] <= 3.0, "T=%lld exact estimate: %.1f polls", (long long)T, polls[0]);
        CHECK_WHY(maxlag[0] <= (double)T * 0.05 || maxlag[0] <= 1100, "T=%lld exact: lag %.0f", (long long)T,
              maxlag[0]);
        /* A task that overruns its estimate by 25 %: still lag <= 5 %. */
        CHECK_WHY(maxlag[1] <= (double)T * 0.05 || maxlag[1] <= 1100, "T=%lld short estimate: lag %.0f",
              (long long)T, maxlag[1]);
        /* Progress only: extrapolation keeps polls low and lag <= 5 %. */
        CHECK_WHY(polls[3] <= 8.0, "T=%lld progress: %.1f polls", (long long)T, polls[3]);
        CHECK_WHY(maxlag[3] <= (double)T * 0.05 || maxlag[3] <= 1100, "T=%lld progress: lag %.0f", (long long)T,
              maxlag[3]);
        /* Nothing known: lag bounded by the max interval (+ jitter). */
        CHECK_WHY(maxlag[4] <= 33000, "T=%lld nothing known: lag %.0f", (long long)T, maxlag[4]);
        CHECK_WHY(polls[4] <= 9.0 + (double)T / 30000.0, "T=%lld nothing known: %.1f polls", (long long)T, polls[4]);
    }
}

static void test_progress_extrapolation(void) {
    struct kling_sched *s = mk(1000, 30000, 0.0, 3);
    uint32_t h;
    int64_t next = 0;
    struct run r;
    /* One reading, 47 % at 50 s: the earliest finish that fits "at least 47,
     * below 48" is 50 + 50 * 52/48 = 104.166 s; a single reading is hedged, so
     * the next poll comes half way: 77.083 s. */
    kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &h);
    kling_sched_report(s, h, 50000, 47, UNKNOWN, 0, &next);
    CHECK_WHY(next == 77083, "next %lld, expected 77083", (long long)next);
    /* A second reading, 73 % at 77.083 s: rate (73 + 1 - 47) / 27.083 s, so
     * 26 % remain in 26.080 s: E = 103.162 s, polled 1 % of E early. */
    kling_sched_report(s, h, 77083, 73, UNKNOWN, 0, &next);
    CHECK_WHY(next == 102131, "two readings: next %lld, expected 102131", (long long)next);
    kling_sched_remove(s, h);
    /* 20 s queued (progress 0), then 11 % at 30 s: the run began after 20 s,
     * E = 30 + 10 * 88/12 = 103.333 s, hedged: half way is 66.666 s. */
    kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &h);
    kling_sched_report(s, h, 20000, 0, UNKNOWN, 0, NULL);
    kling_sched_report(s, h, 30000, 11, UNKNOWN, 0, &next);
    CHECK_WHY(next == 66666, "queued then running: next %lld, expected 66666", (long long)next);
    /* Two readings beat the provider's remaining time... (11 % at 30 s, 23 % at
     * 40 s: 76 % in 58.461 s, E = 98.461 s, poll at 97.477 s). */
    kling_sched_report(s, h, 40000, 23, 30000, 0, &next);
    CHECK_WHY(next == 97477, "two readings over eta: next %lld, expected 97477", (long long)next);
    kling_sched_remove(s, h);
    /* Readings in steps of 10 % are read as "below p + 10": 10 % at 12 s gives
     * E = 12 + 12 * 80/20 = 60 s (hedged: 36 s); 30 % at 36 s gives a rate of
     * (30 + 10 - 10) % per 24 s, so 60 % remain in 48 s: E = 84 s. */
    kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &h);
    kling_sched_report(s, h, 12000, 10, UNKNOWN, 0, &next);
    CHECK_WHY(next == 36000, "coarse single: next %lld, expected 36000", (long long)next);
    kling_sched_report(s, h, 36000, 30, UNKNOWN, 0, &next);
    CHECK_WHY(next == 83160, "coarse two readings: next %lld, expected 83160", (long long)next);
    kling_sched_remove(s, h);
    /* ...which beats a single reading: E = 10 + 30 s, polled at 39.6 s. */
    kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &h);
    kling_sched_report(s, h, 10000, 7, 30000, 0, &next);
    CHECK_WHY(next == 39600, "eta over one reading: next %lld, expected 39600", (long long)next);
    /* Progress back at 0 (requeued at the provider): the estimate still holds. */
    kling_sched_report(s, h, 20000, 0, UNKNOWN, 0, &next);
    CHECK_WHY(next == 39600, "progress 0 keeps E: next %lld", (long long)next);
    kling_sched_remove(s, h);
    kling_sched_free(s);
    /* A task queued for 60 s then running 120 s, progress reported: few polls. */
    s = mk(1000, 30000, 0.1, 5);
    r = simulate(s, 180000, UNKNOWN, 1, 60000);
    printf("progress: 60 s queued + 120 s running: %d polls, lag %lld ms\n", r.polls, (long long)r.lag);
    CHECK_WHY(r.lag <= 9000, "lag %lld", (long long)r.lag);
    CHECK_WHY(r.polls <= 14, "polls %d", r.polls);
    kling_sched_free(s);
    /* Coarse progress (10 % steps) breaks the "below p + 1" reading: the lag
     * grows but stays bounded by the hedge and the late polls. */
    {
        int seed, worst_polls = 0;
        int64_t worst_lag = 0;
        for (seed = 1; seed <= 200; seed++) {
            s = mk(1000, 30000, 0.1, (uint64_t)seed);
            r = simulate_q(s, 120000, UNKNOWN, 1, 0, 10);
            if (r.polls > worst_polls) worst_polls = r.polls;
            if (r.lag > worst_lag) worst_lag = r.lag;
            kling_sched_free(s);
        }
        printf("progress in 10 %% steps, 120 s task: at most %d polls, lag at most %lld ms\n", worst_polls,
               (long long)worst_lag);
        CHECK_WHY(worst_lag <= 12000, "coarse progress lag %lld", (long long)worst_lag);
        CHECK_WHY(worst_polls <= 16, "coarse progress polls %d", worst_polls);
    }
}

static void test_deadlines(void) {
    struct kling_sched_config c;
    struct kling_sched *s;
    struct kling_sched_due d[8];
    uint32_t a, b, x;
    int64_t now = 0, next = 0;
    size_t n;
    int guard = 0;
    /* A task with a 10 s deadline that never finishes is returned expired at 10 s. */
    s = mk(1000, 30000, 0.1, 9);
    kling_sched_add(s, 0, UNKNOWN, 10000, &a);
    for (;;) {
        now += kling_sched_next_wakeup(s, now);
        n = kling_sched_due(s, now, d, 8);
        CHECK_WHY(n == 1, "one due");
        CHECK_WHY(now <= 10000, "polled at %lld past the deadline", (long long)now);
        if (d[0].expired) break;
        kling_sched_report(s, a, now, UNKNOWN, UNKNOWN, 0, &next);
        CHECK_WHY(next <= 10000, "next poll %lld past the deadline", (long long)next);
        CHECK_WHY(++guard < 100, "no end");
        if (guard >= 100) break;
    }
    CHECK_WHY(now == 10000, "expired at %lld, expected 10000", (long long)now);
    /* Reporting progress on an expired task does not revive it. */
    kling_sched_report(s, a, now, 50, UNKNOWN, 0, &next);
    n = kling_sched_due(s, now, d, 8);
    CHECK_WHY(n == 1 && d[0].expired, "still expired");
    CHECK_WHY(kling_sched_remove(s, a) == 0, "remove");
    /* An estimate far beyond the deadline: expected at the deadline, polled
     * just before it. */
    kling_sched_add(s, 20000, 600000, 50000, &a);
    next = kling_sched_next_wakeup(s, 20000);
    CHECK_WHY(next >= 29000 && next <= 30000, "wakeup %lld", (long long)next);
    kling_sched_remove(s, a);
    kling_sched_free(s);

    /* No deadline: max_age ends it. */
    kling_sched_config_default(&c);
    c.max_age_ms = 600000;
    c.seed = 4;
    s = kling_sched_new(&c);
    kling_sched_add(s, 1000, UNKNOWN, UNKNOWN, &a);
    now = 1000;
    for (guard = 0; guard < 1000; guard++) {
        now += kling_sched_next_wakeup(s, now);
        n = kling_sched_due(s, now, d, 8);
        if (n == 1 && d[0].expired) break;
        kling_sched_report(s, a, now, 10, UNKNOWN, 0, NULL); /* stuck at 10 % */
    }
    CHECK_WHY(now == 601000, "max age: expired at %lld", (long long)now);
    kling_sched_remove(s, a);

    /* Run deadline: everything queued comes back expired once it passes. */
    kling_sched_set_run_deadline(s, 5000);
    kling_sched_add(s, 0, 100000, UNKNOWN, &a);
    kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &b);
    kling_sched_add(s, 0, 200000, UNKNOWN, &x);
    n = kling_sched_due(s, 1500, d, 8); /* b's first poll, not expired */
    CHECK_WHY(n == 1 && d[0].handle == b && !d[0].expired, "b due first");
    kling_sched_report(s, b, 1500, UNKNOWN, UNKNOWN, 0, &next);
    CHECK_WHY(next <= 5000, "next %lld past run deadline", (long long)next);
    CHECK_WHY(kling_sched_next_wakeup(s, 4000) <= 1000, "wakeup respects the run deadline");
    n = kling_sched_due(s, 5000, d, 8);
    CHECK_WHY(n == 3 && d[0].expired && d[1].expired && d[2].expired, "all expired at the run deadline (%zu)", n);
    /* Moving the run deadline later: a task added now is polled normally. */
    kling_sched_remove(s, a);
    kling_sched_remove(s, b);
    kling_sched_remove(s, x);
    kling_sched_set_run_deadline(s, 100000);
    kling_sched_add(s, 6000, 10000, UNKNOWN, &a);
    n = kling_sched_due(s, 16000, d, 8);
    CHECK_WHY(n == 1 && !d[0].expired, "after moving the run deadline");
    kling_sched_remove(s, a);
    /* Lowering it below queued poll times still expires them on time. */
    kling_sched_add(s, 20000, 60000, UNKNOWN, &a);
    kling_sched_set_run_deadline(s, 30000);
    CHECK_WHY(kling_sched_next_wakeup(s, 20000) == 10000, "lowered run deadline wakes at 30 s");
    n = kling_sched_due(s, 30000, d, 8);
    CHECK_WHY(n == 1 && d[0].expired, "lowered run deadline expires");
    kling_sched_free(s);
}

static void test_jitter_bounds(void) {
    /* Back-off gaps 1000 * 2^k with jitter 0.2: every gap within +-20 % of its
     * base, and the spread actually used. */
    struct kling_sched_config c;
    struct kling_sched *s;
    double lo = 10, hi = 0;
    int task, k;
    kling_sched_config_default(&c);
    c.min_interval_ms = 1000;
    c.max_interval_ms = 1000000;
    c.backoff = 2.0;
    c.jitter = 0.2;
    c.seed = 11;
    s = kling_sched_new(&c);
    for (task = 0; task < 1000; task++) {
        uint32_t h;
        int64_t now = 0, next = 0;
        double base = 1000;
        kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &h);
        now = kling_sched_next_wakeup(s, 0);
        CHECK_WHY(now >= 1000 && now <= 1200, "first gap %lld outside [min, min * 1.2]", (long long)now);
        for (k = 1; k <= 6; k++) {
            double ratio;
            base *= 2;
            kling_sched_report(s, h, now, UNKNOWN, UNKNOWN, 0, &next);
            ratio = (double)(next - now) / base;
            CHECK_WHY(ratio >= 0.8 - 1e-9 && ratio <= 1.2 + 1e-9, "gap ratio %.3f", ratio);
            if (ratio < lo) lo = ratio;
            if (ratio > hi) hi = ratio;
            now = next;
        }
        kling_sched_remove(s, h);
    }
    printf("jitter 0.2: gap/base within [%.3f, %.3f]\n", lo, hi);
    CHECK_WHY(lo < 0.82 && hi > 1.18, "jitter not spread: [%.3f, %.3f]", lo, hi);
    kling_sched_free(s);
    /* No jitter: gaps exact; and two schedulers with one seed agree. */
    c.jitter = 0;
    s = kling_sched_new(&c);
    {
        uint32_t h;
        int64_t next;
        kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &h);
        CHECK_WHY(kling_sched_next_wakeup(s, 0) == 1000, "exact first gap");
        kling_sched_report(s, h, 1000, UNKNOWN, UNKNOWN, 0, &next);
        CHECK_WHY(next == 3000, "exact second gap %lld", (long long)next);
    }
    kling_sched_free(s);
    {
        struct kling_sched *s1 = mk(1000, 30000, 0.1, 42), *s2 = mk(1000, 30000, 0.1, 42);
        int i, same = 1;
        for (i = 0; i < 100; i++) {
            uint32_t h1, h2;
            kling_sched_add(s1, i, UNKNOWN, UNKNOWN, &h1);
            kling_sched_add(s2, i, UNKNOWN, UNKNOWN, &h2);
            same &= kling_sched_next_wakeup(s1, 0) == kling_sched_next_wakeup(s2, 0);
        }
        CHECK_WHY(same, "same seed, same jitter");
        kling_sched_free(s1);
        kling_sched_free(s2);
    }
    /* Max interval holds after the back-off saturates. */
    s = mk(1000, 5000, 0.1, 12);
    {
        uint32_t h;
        int64_t now = 0, next;
        int i;
        kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &h);
        for (i = 0; i < 30; i++) {
            kling_sched_report(s, h, now, UNKNOWN, UNKNOWN, 0, &next);
            CHECK_WHY(next - now >= 1000 && next - now <= 5000, "gap %lld outside [1000, 5000]",
                      (long long)(next - now));
            now = next;
        }
    }
    kling_sched_free(s);
}

static void test_memory(void) {
    struct kling_sched *s = mk(1000, 30000, 0.1, 1);
    struct kling_sched_counts c;
    uint32_t h;
    int i;
    for (i = 0; i < 10000; i++) {
        CHECK_WHY(kling_sched_add(s, i, i % 2 ? 120000 : UNKNOWN, UNKNOWN, &h) == 0, "add");
    }
    kling_sched_counts(s, &c);
    printf("memory: %zu bytes per task at capacity; %zu bytes for 10000 tasks (%.1f per task)\n",
           kling_sched_task_bytes(), c.bytes, (double)c.bytes / 10000.0);
    CHECK_WHY(kling_sched_task_bytes() <= 64, "task bytes %zu", kling_sched_task_bytes());
    CHECK_WHY(c.bytes <= 10000 * 64 * 3 / 2 + 1024, "bytes %zu", c.bytes);
    CHECK_WHY(c.live == 10000 && c.queued == 10000 && c.inflight == 0, "counts");
    kling_sched_free(s);
}

static void test_handles_and_misuse(void) {
    struct kling_sched_config c;
    struct kling_sched *s = mk(1000, 30000, 0.1, 1);
    uint32_t a, b, a2;
    int64_t next;
    struct kling_sched_counts n;
    struct kling_sched_due d[4];
    kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &a);
    kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &b);
    CHECK_WHY(a == 0 && b == 1, "dense handles %u %u", a, b);
    CHECK_WHY(kling_sched_remove(s, a) == 0, "remove");
    CHECK_WHY(kling_sched_remove(s, a) == KLING_SCHED_EHANDLE, "remove twice");
    CHECK_WHY(kling_sched_report(s, a, 0, UNKNOWN, UNKNOWN, 0, &next) == KLING_SCHED_EHANDLE, "report freed");
    CHECK_WHY(kling_sched_defer(s, 99, 0, 10, &next) == KLING_SCHED_EHANDLE, "defer never added");
    CHECK_WHY(kling_sched_report(s, b, 0, 101, UNKNOWN, 0, &next) == KLING_SCHED_EARG, "progress 101");
    CHECK_WHY(kling_sched_report(s, b, 0, -2, UNKNOWN, 0, &next) == KLING_SCHED_EARG, "progress -2");
    CHECK_WHY(kling_sched_report(s, b, 0, UNKNOWN, -5, 0, &next) == KLING_SCHED_EARG, "estimate -5");
    CHECK_WHY(kling_sched_defer(s, b, 0, -1, &next) == KLING_SCHED_EARG, "delay -1");
    CHECK_WHY(kling_sched_add(s, INT64_MAX, UNKNOWN, UNKNOWN, &a2) == KLING_SCHED_EARG, "now overflow");
    CHECK_WHY(kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &a2) == 0 && a2 == a, "freed handle reused");
    kling_sched_counts(s, &n);
    CHECK_WHY(n.live == 2 && n.queued == 2, "counts");
    CHECK_WHY(kling_sched_due(s, 5000, d, 4) == 2, "due both");
    kling_sched_counts(s, &n);
    CHECK_WHY(n.inflight == 2 && n.queued == 0, "in flight");
    CHECK_WHY(kling_sched_polls(s, a2) == 1, "polls counted");
    CHECK_WHY(kling_sched_report(s, a2, 5000, UNKNOWN, UNKNOWN, 1, &next) == 0 && next == UNKNOWN, "terminal");
    CHECK_WHY(kling_sched_check(s) == 0, "invariants");
    CHECK_WHY(strcmp(kling_sched_strerror(KLING_SCHED_EHANDLE), "ok") != 0, "strerror");
    kling_sched_free(s);
    kling_sched_config_default(&c);
    c.min_interval_ms = 0;
    CHECK_WHY(kling_sched_config_check(&c) != NULL && strstr(kling_sched_config_check(&c), "min_interval_ms"),
          "min 0 rejected");
    CHECK_WHY(kling_sched_new(&c) == NULL, "new with bad config");
    kling_sched_config_default(&c);
    c.max_interval_ms = 500;
    CHECK_WHY(kling_sched_config_check(&c) != NULL && strstr(kling_sched_config_check(&c), "max_interval_ms"),
          "max < min rejected");
    kling_sched_config_default(&c);
    c.jitter = 0.7;
    CHECK_WHY(kling_sched_config_check(&c) != NULL && strstr(kling_sched_config_check(&c), "jitter"), "jitter");
    kling_sched_config_default(&c);
    c.backoff = 0.5;
    CHECK_WHY(kling_sched_config_check(&c) != NULL && strstr(kling_sched_config_check(&c), "backoff"), "backoff");
    kling_sched_config_default(&c);
    CHECK_WHY(kling_sched_config_check(&c) == NULL, "defaults valid");
}

/* ---- issue 15.1: a learnt window ---- */

/* One task that ends at `finish`, expected (kling_sched_expect right after
 * add) between lo and hi; like simulate(), plus the first poll's time. */
static struct run simulate_window(struct kling_sched *s, int64_t finish, int64_t lo, int64_t hi,
                                  int64_t *first) {
    struct run r = {0, 0, 0, 0};
    uint32_t h;
    int64_t now = 0, last = -1, next;
    struct kling_sched_due d;
    CHECK_WHY(kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &h) == 0, "add");
    CHECK_WHY(kling_sched_expect(s, h, 0, lo, hi, &next) == 0 && next == kling_sched_next_at(s, h), "expect");
    for (;;) {
        now += kling_sched_next_wakeup(s, now);
        CHECK_WHY(kling_sched_due(s, now, &d, 1) == 1 && d.handle == h, "due");
        if (d.expired) {
            r.expired = 1;
            kling_sched_remove(s, h);
            break;
        }
        if (r.polls++ == 0) *first = now;
        if (last >= 0 && now - last > r.max_gap) r.max_gap = now - last;
        last = now;
        if (now >= finish) {
            r.lag = now - finish;
            kling_sched_report(s, h, now, UNKNOWN, UNKNOWN, 1, NULL);
            break;
        }
        kling_sched_report(s, h, now, UNKNOWN, UNKNOWN, 0, NULL);
    }
    return r;
}

/* Kinds whose durations agree within +-10 % and +-15 % (uniform: the worst
 * spread for a window of that width), 30..300 s: the window comes from the
 * kind's last 8 durations, the task is a new draw. */
static void test_learnt_window(void) {
    static const int64_t means[] = {40000, 90000, 150000, 260000};
    static const double spreads[] = {0.10, 0.15};
    size_t i, j;
    printf("issue 15.1: learnt window (8 samples), polls and lag / task time (means of 500 tasks)\n");
    for (j = 0; j < 2; j++) {
        for (i = 0; i < sizeof(means) / sizeof(means[0]); i++) {
            double polls = 0, lagshare = 0;
            int64_t max_gap = 0;
            int n, k, tasks = 500;
            for (n = 0; n < tasks; n++) {
                struct kling_sched *s = mk(1000, 15000, 0.1, (uint64_t)(n * 7 + 1));
                int64_t lo = INT64_MAX, hi = 0, d, first = -1;
                struct run r;
                for (k = 0; k <= 8; k++) {
                    double u = (double)(tr() % 100001) / 100000.0 * 2.0 - 1.0;
                    d = (int64_t)((double)means[i] * (1.0 + spreads[j] * u));
                    if (k < 8) {
                        lo = d < lo ? d : lo;
                        hi = d > hi ? d : hi;
                    }
                }
                r = simulate_window(s, d, lo, hi, &first);
                CHECK_WHY(!r.expired, "expired");
                CHECK_WHY(first >= lo - 1, "first poll at %lld before the window's start %lld", (long long)first,
                      (long long)lo);
                polls += r.polls;
                lagshare += (double)r.lag / (double)d;
                max_gap = r.max_gap > max_gap ? r.max_gap : max_gap;
                kling_sched_free(s);
            }
            polls /= tasks;
            lagshare /= tasks;
            printf("  mean %3llds +-%2.0f %%: %.2f polls, lag %.2f %%, longest gap %lld ms\n",
                   (long long)(means[i] / 1000), spreads[j] * 100, polls, lagshare * 100, (long long)max_gap);
            /* Measured 2.87-2.97 (+-10 %) and 3.71-3.93 polls (+-15 %), lag 2.11-2.44 %; the
             * quarter-width grid before: 3.33-3.45 and 3.61-3.88 polls, lag 1.99-2.57 %. */
            CHECK_WHY(polls <= (j == 0 ? 3.1 : 4.0), "%.2f polls", polls);
            CHECK_WHY(lagshare <= 0.03, "lag %.2f %%", lagshare * 100);
            CHECK_WHY(max_gap <= 15000, "gap %lld past max_interval", (long long)max_gap);
        }
    }
}

/* A window of no width (every learnt sample equal: 2 s tasks through slots)
 * is still a window: one poll at its end, not the estimate's early poll 1 %
 * before it and a late one after. */
static void test_exact_window(void) {
    struct kling_sched *s = mk(20, 15000, 0.1, 9);
    struct kling_sched_due d;
    uint32_t h;
    int64_t next;
    int i;
    for (i = 0; i < 50; i++) {
        CHECK_WHY(kling_sched_add(s, 1000, UNKNOWN, UNKNOWN, &h) == 0, "add");
        CHECK_WHY(kling_sched_expect(s, h, 1000, 2000, 2000, &next) == 0 && next == 3000,
                  "zero-width window polled at %lld, not at its end 3000", (long long)next);
        CHECK_WHY(kling_sched_due(s, 3000, &d, 1) == 1 && d.handle == h, "due");
        CHECK_WHY(kling_sched_report(s, h, 3000, UNKNOWN, UNKNOWN, 1, NULL) == 0, "ended");
    }
    /* Not ended by then: the late cadence (2 % of the age, at least min_interval). */
    CHECK_WHY(kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &h) == 0, "add");
    CHECK_WHY(kling_sched_expect(s, h, 0, 100000, 100000, &next) == 0 && next == 100000, "end %lld",
              (long long)next);
    CHECK_WHY(kling_sched_due(s, 100000, &d, 1) == 1, "due");
    CHECK_WHY(kling_sched_report(s, h, 100000, UNKNOWN, UNKNOWN, 0, &next) == 0 && next >= 101800 && next <= 102200,
              "late %lld", (long long)next);
    /* An estimate replaces it like any window. */
    CHECK_WHY(kling_sched_report(s, h, 100000, UNKNOWN, 50000, 0, &next) == 0 && next > 140000, "estimate %lld",
              (long long)next);
    CHECK_WHY(kling_sched_check(s) == 0, "invariants");
    kling_sched_free(s);
}

/* Inside a window, widened below its start by 7 % of its width, the points
 * divide it evenly, about 4 % of its end apart, the last at its end and
 * none at its widened start. No jitter here. */
static void test_window_grid(void) {
    static const struct {
        int64_t lo, hi, first, second;
    } cases[] = {
        {100000, 104000, 101860, 104000}, /* 4.28 s in 2: g = 2.14 s (4 % of 104 s is 4.16 s) */
        {100000, 114000, 102765, 106510}, /* 14.98 s in 4: g = 3.745 s */
        {100000, 140000, 102550, 107900}, /* 42.8 s in 8: g = 5.35 s */
    };
    size_t i;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kling_sched *s = mk(1000, 30000, 0.0, 5);
        struct kling_sched_due d;
        uint32_t h;
        int64_t next;
        CHECK_WHY(kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &h) == 0, "add");
        CHECK_WHY(kling_sched_expect(s, h, 0, cases[i].lo, cases[i].hi, &next) == 0 && next == cases[i].first,
                  "window %lld..%lld: first point %lld, want %lld", (long long)cases[i].lo, (long long)cases[i].hi,
                  (long long)next, (long long)cases[i].first);
        CHECK_WHY(kling_sched_due(s, next, &d, 1) == 1, "due");
        CHECK_WHY(kling_sched_report(s, h, next, UNKNOWN, UNKNOWN, 0, &next) == 0 && next == cases[i].second,
                  "window %lld..%lld: second point %lld, want %lld", (long long)cases[i].lo, (long long)cases[i].hi,
                  (long long)next, (long long)cases[i].second);
        kling_sched_free(s);
    }
}

/* The window's contract: misuse refused, in-flight tasks take it at their
 * report, an estimate replaces it, the deadline bounds it. */
static void test_window_contract(void) {
    struct kling_sched *s = mk(1000, 30000, 0.0, 5);
    struct kling_sched_due d;
    uint32_t h;
    int64_t next;
    CHECK_WHY(kling_sched_add(s, 0, UNKNOWN, UNKNOWN, &h) == 0, "add");
    CHECK_WHY(kling_sched_expect(s, h, 0, -1, 10, &next) == KLING_SCHED_EARG, "negative start");
    CHECK_WHY(kling_sched_expect(s, h, 0, 20, 10, &next) == KLING_SCHED_EARG, "end before start");
    CHECK_WHY(kling_sched_expect(s, h + 1, 0, 10, 20, &next) == KLING_SCHED_EHANDLE, "bad handle");
    /* 100..120 s, widened to 98.6 s: 21.4 s in 5, g = 4.28 s, points 120 - 4 * 4.28 = 102.88,
     * 107.16, ..., 120 s. */
    CHECK_WHY(kling_sched_expect(s, h, 0, 100000, 120000, &next) == 0 && next == 102880, "first point %lld",
          (long long)next);
    CHECK_WHY(kling_sched_due(s, 102880, &d, 1) == 1, "due");
    CHECK_WHY(kling_sched_report(s, h, 102880, UNKNOWN, UNKNOWN, 0, &next) == 0 && next == 107160, "second %lld",
          (long long)next);
    /* In flight when the window moves (now .. now + 30 s, widened: 32.1 s in 6, g = 5.35 s): no
     * reschedule now, the report places it on the point 137.16 - 5 * 5.35 s. */
    CHECK_WHY(kling_sched_due(s, 107160, &d, 1) == 1, "due");
    CHECK_WHY(kling_sched_expect(s, h, 107160, 0, 30000, &next) == 0 && next == UNKNOWN, "in flight");
    CHECK_WHY(kling_sched_report(s, h, 107560, UNKNOWN, UNKNOWN, 0, &next) == 0 && next == 110410,
          "in flight, at report %lld", (long long)next);
    /* Past the window: the late cadence (2 % of the age). */
    CHECK_WHY(kling_sched_expect(s, h, 107560, 0, 0, &next) == 0, "empty window");
    CHECK_WHY(kling_sched_expect(s, h, 107560, 0, 500, &next) == 0 && next == 107560 + 2151, "late %lld",
          (long long)next);
    /* A provider's estimate replaces the window. */
    CHECK_WHY(kling_sched_expect(s, h, 107560, 10000, 20000, &next) == 0, "window");
    CHECK_WHY(kling_sched_due(s, next, &d, 1) == 1, "due");
    CHECK_WHY(kling_sched_report(s, h, next, UNKNOWN, 50000, 0, &next) == 0, "estimate");
    CHECK_WHY(next == kling_sched_next_at(s, h) && next > 160000, "estimate wins: %lld", (long long)next);
    CHECK_WHY(kling_sched_check(s) == 0, "invariants");
    kling_sched_free(s);
    /* The deadline bounds the window. */
    s = mk(1000, 30000, 0.0, 5);
    CHECK_WHY(kling_sched_add(s, 0, UNKNOWN, 50000, &h) == 0, "add");
    CHECK_WHY(kling_sched_expect(s, h, 0, 40000, 90000, &next) == 0 && next <= 50000, "deadline %lld",
          (long long)next);
    kling_sched_free(s);
}

int main(void) {
    test_handles_and_misuse();
    test_heap_against_reference();
    test_known_estimate_120s();
    test_task_lengths();
    test_progress_extrapolation();
    test_deadlines();
    test_jitter_bounds();
    test_memory();
    test_learnt_window();
    test_exact_window();
    test_window_grid();
    test_window_contract();
    return check_done();
}
