/* Cost of the poll scheduler: ns per add, due (per task popped), report and
 * remove, and bytes per task, for 10,000 tasks (and more, for the scaling).
 * Not part of the test suite. Build and run from the repository root after
 * building the library (cmake --build <dir>):
 *
 *   cc -O2 -std=c99 -D_POSIX_C_SOURCE=200809L -Isrc/pure bench/sched_bench.c \
 *      <dir>/libkling_pure.a -lcrypto -o /tmp/sched_bench && /tmp/sched_bench
 */
#include "sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void bench(uint32_t n) {
    struct kling_sched_config c;
    struct kling_sched *s;
    struct kling_sched_counts counts;
    struct kling_sched_due *due = malloc(sizeof(*due) * n);
    uint32_t *h = malloc(sizeof(*h) * n), i;
    double t0, t_add, t_due, t_report, t_remove;
    size_t popped = 0, got;
    int64_t now;
    if (due == NULL || h == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    kling_sched_config_default(&c);
    c.seed = 1;
    s = kling_sched_new(&c);
    if (s == NULL) {
        fprintf(stderr, "kling_sched_new failed\n");
        exit(1);
    }
    /* Tasks submitted over 100 s, half with an estimate of 30..300 s. */
    t0 = now_ns();
    for (i = 0; i < n; i++) {
        int64_t est = i % 2 ? 30000 + (int64_t)(i % 271) * 1000 : KLING_SCHED_UNKNOWN;
        if (kling_sched_add(s, (int64_t)i * 100000 / n, est, KLING_SCHED_UNKNOWN, &h[i]) != 0) {
            fprintf(stderr, "add failed\n");
            exit(1);
        }
    }
    t_add = now_ns() - t0;
    kling_sched_counts(s, &counts);

    /* Every task polled once: pop all (far future), then report each. */
    now = INT64_C(400000);
    t0 = now_ns();
    got = kling_sched_due(s, now, due, n);
    t_due = now_ns() - t0;
    popped = got;
    t0 = now_ns();
    for (i = 0; i < got; i++) {
        kling_sched_report(s, due[i].handle, now, (int)(i % 100), KLING_SCHED_UNKNOWN, 0, NULL);
    }
    t_report = now_ns() - t0;

    t0 = now_ns();
    for (i = 0; i < n; i++) {
        kling_sched_remove(s, h[i]);
    }
    t_remove = now_ns() - t0;

    printf("%8u tasks: add %6.1f ns, due %6.1f ns/task, report %6.1f ns, remove %6.1f ns; "
           "%zu bytes/task at capacity, %.1f allocated/task\n",
           n, t_add / n, t_due / (double)popped, t_report / (double)popped, t_remove / n,
           kling_sched_task_bytes(), (double)counts.bytes / n);
    kling_sched_free(s);
    free(due);
    free(h);
}

/* Steady state: n tasks in flight, each poll a due() pop plus a report(),
 * the clock advancing to the next wakeup: polls per second of CPU. */
static void steady(uint32_t n, long polls) {
    struct kling_sched_config c;
    struct kling_sched *s;
    struct kling_sched_due d[64];
    uint32_t i, h;
    int64_t now = 0;
    long done = 0;
    double t0;
    kling_sched_config_default(&c);
    c.seed = 2;
    s = kling_sched_new(&c);
    if (s == NULL) {
        exit(1);
    }
    for (i = 0; i < n; i++) {
        kling_sched_add(s, 0, KLING_SCHED_UNKNOWN, KLING_SCHED_UNKNOWN, &h);
    }
    t0 = now_ns();
    while (done < polls) {
        size_t k, got;
        int64_t w = kling_sched_next_wakeup(s, now);
        now += w;
        got = kling_sched_due(s, now, d, 64);
        for (k = 0; k < got; k++) {
            if (d[k].expired) {
                kling_sched_remove(s, d[k].handle);
                kling_sched_add(s, now, KLING_SCHED_UNKNOWN, KLING_SCHED_UNKNOWN, &h);
            } else {
                kling_sched_report(s, d[k].handle, now, KLING_SCHED_UNKNOWN, KLING_SCHED_UNKNOWN, 0, NULL);
            }
        }
        done += (long)got;
    }
    printf("%8u tasks in flight: %.0f polls/s of scheduler CPU (due + report)\n", n,
           (double)done / ((now_ns() - t0) / 1e9));
    kling_sched_free(s);
}

int main(void) {
    bench(10000);
    bench(100000);
    bench(1000000);
    steady(10000, 2000000);
    return 0;
}
