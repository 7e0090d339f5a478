/* Polls and detection lag of core.sched's learnt windows, simulated (bench/README.md, "Learnt
 * windows, fourth pass"). Each kind's window comes from 8 samples of a uniform spread, each task's
 * time is another draw; min 1 s, max 15 s, jitter 0.1.
 *   per task: 4 means of 40-260 s, 4,000 tasks each, every task a window of its own (the means);
 *   per run:  2,000 runs shaped as bench/kinds.lua's (5 kinds, 16 tasks a kind sharing one window):
 *             how often a run's mean lag goes over 3 %.
 * Build from the tree's root against any version of the scheduler:
 *   cc -O2 -std=c99 -I. -Isrc/pure -DSCHED_C='"src/pure/sched.c"' bench/sched_windows.c -o /tmp/sw -lm
 *   git show 3801726:src/pure/sched.c > /tmp/old.c   # then -DSCHED_C='"/tmp/old.c"' */
#include SCHED_C

#include <stdio.h>

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t next_rand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static double uniform_sym(void) { /* [-1, 1] */
    return (double)(next_rand() % 1000001) / 1000000.0 * 2.0 - 1.0;
}

/* One task of duration d in window lo..hi: its polls, and its lag as a share of d. */
static int one_task(int64_t d, int64_t lo, int64_t hi, double *lag) {
    struct kling_sched_config c;
    struct kling_sched *s;
    struct kling_sched_due due;
    uint32_t h;
    int64_t now = 0, next;
    int polls = 0;
    kling_sched_config_default(&c);
    c.min_interval_ms = 1000;
    c.max_interval_ms = 15000;
    c.jitter = 0.1;
    c.seed = next_rand();
    s = kling_sched_new(&c);
    if (s == NULL || kling_sched_add(s, 0, KLING_SCHED_UNKNOWN, KLING_SCHED_UNKNOWN, &h) != 0 ||
        kling_sched_expect(s, h, 0, lo, hi, &next) != 0) {
        fprintf(stderr, "sched refused\n");
        exit(2);
    }
    for (;;) {
        now += kling_sched_next_wakeup(s, now);
        if (kling_sched_due(s, now, &due, 1) != 1) {
            continue;
        }
        polls++;
        if (now >= d) {
            *lag = (double)(now - d) / (double)d;
            break;
        }
        kling_sched_report(s, h, now, KLING_SCHED_UNKNOWN, KLING_SCHED_UNKNOWN, 0, NULL);
    }
    kling_sched_free(s);
    return polls;
}

static void window_of(int64_t mean, double spread, int64_t *lo, int64_t *hi) {
    int k;
    *lo = INT64_MAX;
    *hi = 0;
    for (k = 0; k < 8; k++) {
        int64_t d = (int64_t)((double)mean * (1.0 + spread * uniform_sym()));
        *lo = d < *lo ? d : *lo;
        *hi = d > *hi ? d : *hi;
    }
}

int main(void) {
    static const int64_t task_means[] = {40000, 90000, 150000, 260000};
    static const int64_t run_means[] = {40000, 80000, 140000, 200000, 260000};
    static const double spreads[] = {0.10, 0.15};
    int j, i, n, r, t;
    for (j = 0; j < 2; j++) {
        double polls = 0, lag = 0, l;
        int over = 0;
        for (i = 0; i < 4; i++) {
            for (n = 0; n < 4000; n++) {
                int64_t lo, hi, d;
                window_of(task_means[i], spreads[j], &lo, &hi);
                d = (int64_t)((double)task_means[i] * (1.0 + spreads[j] * uniform_sym()));
                polls += one_task(d, lo, hi, &l);
                lag += l;
            }
        }
        for (r = 0; r < 2000; r++) {
            double run_lag = 0;
            for (i = 0; i < 5; i++) {
                int64_t lo, hi;
                window_of(run_means[i], spreads[j], &lo, &hi);
                for (t = 0; t < 16; t++) {
                    one_task((int64_t)((double)run_means[i] * (1.0 + spreads[j] * uniform_sym())), lo, hi, &l);
                    run_lag += l;
                }
            }
            over += run_lag / 80 > 0.03;
        }
        printf("+-%2.0f %%: %.2f polls a task, lag %.2f %% of its time; %.1f %% of runs over 3 %% lag\n",
               spreads[j] * 100, polls / 16000, lag / 16000 * 100, over / 20.0);
    }
    return 0;
}
