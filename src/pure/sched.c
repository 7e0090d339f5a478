/* The poll scheduler (policy documented in sched.h). */
#include "sched.h"

#include <stdlib.h>

#define NO_FINISH INT32_MIN /* expected finish not known */
#define NO_LINK UINT32_MAX
/* Handles are uint32; the arrays (64 bytes a task) must fit in size_t. */
#define MAX_TASKS ((SIZE_MAX / 64) < (UINT32_MAX - 1) ? (uint32_t)(SIZE_MAX / 64) : (UINT32_MAX - 1))

/* Interval policy constants (see sched.h). */
#define MARGIN_FRAC 0.01
#define LATE_FRAC0 0.02
#define LATE_STEP 0.01
#define LATE_FRAC_MAX 0.045
/* Inside a learnt window the polls divide it evenly, about GRID_FRAC of its
 * end apart, the last at its end and none at its start (nothing has ended
 * there yet). The window is first widened below its shortest sample by
 * WIDEN_LOW of its width: n samples of a spread miss its shortest 1/(n+1) on
 * average, and such a task would wait for the first point. Both chosen on
 * spec/c/test_sched.c's learnt-window simulation (bench/README.md). */
#define GRID_FRAC 0.04
#define WIDEN_LOW 0.07

/* state: low bits the life stage, HEDGE when the expected finish rests on a
 * single progress reading (the next poll comes half way to it), WINDOW while
 * the finish is a learnt window (finish .. finish + spread; spread may be 0
 * when every sample agreed: then the one point is the window's end). */
enum { FREE = 0, QUEUED = 1, INFLIGHT = 2, STAGE = 3, HEDGE = 4, WINDOW = 8 };

/* Times other than `created` are ms after it, in int32: max_age is below
 * 2^31 ms, which keeps the record at 48 bytes. */
struct task {
    int64_t created;
    int32_t finish;   /* expected finish E, or NO_FINISH */
    int32_t spread;   /* a learnt window (WINDOW): expected to end by E + spread */
    int32_t deadline; /* min(own deadline, created + max_age), >= 0 */
    int32_t zero_at;  /* last report of progress 0: the run began after it */
    int32_t first_at; /* first report of progress > 0 (first_p) */
    uint32_t link;    /* heap index while queued; next free record while free */
    uint32_t gap;     /* back-off gap (ms) while nothing is known */
    uint32_t polls;
    uint8_t state;
    uint8_t late;     /* late polls so far (E reached) */
    int8_t progress;  /* last reported, -1 unknown */
    int8_t first_p;   /* -1 until a progress > 0 is reported */
};

struct entry {
    int64_t at;
    uint32_t handle;
    uint32_t unused;
};

struct kling_sched {
    struct kling_sched_config cfg;
    struct task *tasks;
    struct entry *heap;
    uint32_t ntasks; /* records in use or on the free list */
    uint32_t cap;    /* capacity of both arrays */
    uint32_t nheap;
    uint32_t free_head;
    size_t live;
    uint64_t rng;
};

void kling_sched_config_default(struct kling_sched_config *c) {
    c->min_interval_ms = 1000;
    c->max_interval_ms = 30000;
    c->jitter = 0.1;
    c->backoff = 1.5;
    c->max_age_ms = INT64_C(86400000);
    c->run_deadline_ms = KLING_SCHED_UNKNOWN;
    c->seed = 0;
}

const char *kling_sched_config_check(const struct kling_sched_config *c) {
    if (c->min_interval_ms < 1 || c->min_interval_ms > KLING_SCHED_INTERVAL_LIMIT) {
        return "min_interval_ms must be between 1 and 86400000";
    }
    if (c->max_interval_ms < c->min_interval_ms || c->max_interval_ms > KLING_SCHED_INTERVAL_LIMIT) {
        return "max_interval_ms must be between min_interval_ms and 86400000";
    }
    if (!(c->jitter >= 0.0 && c->jitter <= 0.5)) {
        return "jitter must be a fraction between 0 and 0.5";
    }
    if (!(c->backoff >= 1.0 && c->backoff <= 4.0)) {
        return "backoff must be a factor between 1 and 4";
    }
    if (c->max_age_ms < c->min_interval_ms || c->max_age_ms > KLING_SCHED_AGE_LIMIT) {
        return "max_age_ms must be between min_interval_ms and 2147483647 (24.8 days)";
    }
    if (c->run_deadline_ms != KLING_SCHED_UNKNOWN &&
        (c->run_deadline_ms < -KLING_SCHED_TIME_LIMIT || c->run_deadline_ms > KLING_SCHED_TIME_LIMIT)) {
        return "run_deadline_ms must be within +-2^62";
    }
    return NULL;
}

struct kling_sched *kling_sched_new(const struct kling_sched_config *c) {
    struct kling_sched *s;
    if (kling_sched_config_check(c) != NULL) {
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->cfg = *c;
    s->free_head = NO_LINK;
    /* xorshift must never hold 0. */
    s->rng = c->seed != 0 ? c->seed : UINT64_C(0x9E3779B97F4A7C15);
    return s;
}

void kling_sched_free(struct kling_sched *s) {
    if (s != NULL) {
        free(s->tasks);
        free(s->heap);
        free(s);
    }
}

const char *kling_sched_strerror(int err) {
    switch (err) {
    case KLING_SCHED_OK: return "ok";
    case KLING_SCHED_ENOMEM: return "out of memory";
    case KLING_SCHED_EHANDLE: return "no such task handle (never added or already freed)";
    case KLING_SCHED_EARG: return "argument out of range";
    default: return "unknown error";
    }
}

/* ---- randomness ---- */

static uint64_t rng_next(struct kling_sched *s) {
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* Uniform in [-1, 1). */
static double rng_sym(struct kling_sched *s) {
    return (double)(rng_next(s) >> 11) * (1.0 / 4503599627370496.0) - 1.0;
}

/* ---- heap of (time, handle), smallest first ---- */

static int before(const struct entry *a, const struct entry *b) {
    return a->at < b->at || (a->at == b->at && a->handle < b->handle);
}

static void heap_place(struct kling_sched *s, uint32_t i, struct entry e) {
    s->heap[i] = e;
    s->tasks[e.handle].link = i;
}

static void sift_up(struct kling_sched *s, uint32_t i) {
    struct entry e = s->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(&e, &s->heap[parent])) {
            break;
        }
        heap_place(s, i, s->heap[parent]);
        i = parent;
    }
    heap_place(s, i, e);
}

static void sift_down(struct kling_sched *s, uint32_t i) {
    struct entry e = s->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= s->nheap) {
            break;
        }
        if (child + 1 < s->nheap && before(&s->heap[child + 1], &s->heap[child])) {
            child++;
        }
        if (!before(&s->heap[child], &e)) {
            break;
        }
        heap_place(s, i, s->heap[child]);
        i = child;
    }
    heap_place(s, i, e);
}

static void heap_push(struct kling_sched *s, uint32_t handle, int64_t at) {
    struct entry e;
    e.at = at;
    e.handle = handle;
    e.unused = 0;
    s->heap[s->nheap] = e;
    s->tasks[handle].link = s->nheap;
    s->nheap++;
    sift_up(s, s->nheap - 1);
}

static void heap_remove_at(struct kling_sched *s, uint32_t i) {
    s->nheap--;
    if (i == s->nheap) {
        return;
    }
    heap_place(s, i, s->heap[s->nheap]);
    if (i > 0 && before(&s->heap[i], &s->heap[(i - 1) / 2])) {
        sift_up(s, i);
    } else {
        sift_down(s, i);
    }
}

/* ---- records ---- */

/* Grows both arrays by half (records never move their handles). */
static int grow(struct kling_sched *s) {
    uint32_t cap;
    struct task *t;
    struct entry *h;
    if (s->cap >= MAX_TASKS) {
        return KLING_SCHED_ENOMEM;
    }
    cap = s->cap < 16 ? 16 : s->cap + s->cap / 2;
    if (cap > MAX_TASKS || cap < s->cap) {
        cap = MAX_TASKS;
    }
    t = realloc(s->tasks, (size_t)cap * sizeof(*t));
    if (t == NULL) {
        return KLING_SCHED_ENOMEM;
    }
    s->tasks = t;
    h = realloc(s->heap, (size_t)cap * sizeof(*h));
    if (h == NULL) {
        return KLING_SCHED_ENOMEM; /* tasks grew alone: harmless, cap unchanged */
    }
    s->heap = h;
    s->cap = cap;
    return KLING_SCHED_OK;
}

static int stage(const struct task *t) {
    return t->state & STAGE;
}

static struct task *live_task(const struct kling_sched *s, uint32_t handle) {
    if (handle >= s->ntasks || stage(&s->tasks[handle]) == FREE) {
        return NULL;
    }
    return &s->tasks[handle];
}

static int time_ok(int64_t t) {
    return t >= -KLING_SCHED_TIME_LIMIT && t <= KLING_SCHED_TIME_LIMIT;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* now as ms after the task's creation, within int32. */
static int32_t rel(const struct task *t, int64_t now) {
    return (int32_t)clamp64(now - t->created, INT32_MIN + 1, INT32_MAX);
}

static int64_t jittered(struct kling_sched *s, double base) {
    return (int64_t)(base * (1.0 + s->cfg.jitter * rng_sym(s)));
}

/* Computes the next poll of t at now (policy in sched.h), updating the
 * back-off and late counters, capped by the task and run deadlines. */
static int64_t next_poll(struct kling_sched *s, struct task *t, int64_t now) {
    const int64_t lo = s->cfg.min_interval_ms, hi = s->cfg.max_interval_ms;
    int64_t at;
    if ((t->state & WINDOW) && t->created + t->finish + t->spread >= now + lo) {
        /* Inside a learnt window: the points latest - k * g, k < n (the n intervals of the
         * widened window), the first one after now + lo. */
        int64_t latest = t->created + t->finish + t->spread;
        double widen = (double)t->spread * WIDEN_LOW;
        double width = (double)t->spread + widen;
        double end = (double)(t->finish + t->spread);
        int64_t n = (int64_t)(width / (GRID_FRAC * (end > 1.0 ? end : 1.0))) + 1;
        int64_t g = clamp64((int64_t)(width / (double)n), lo > 0 ? lo : 1, hi > 0 ? hi : 1);
        int64_t k = (latest - now - lo) / g;
        int64_t point = latest - (k < n - 1 ? k : n - 1) * g;
        int64_t start = t->created + t->finish - (int64_t)widen;
        int64_t earliest = start > now + lo ? start : now + lo;
        at = clamp64(point + (int64_t)((double)g * 0.5 * s->cfg.jitter * rng_sym(s)), earliest, latest);
    } else if (t->finish != NO_FINISH) {
        int64_t finish = t->created + t->finish;
        double margin = (double)(t->finish > 0 ? t->finish : 0) * MARGIN_FRAC;
        int64_t target = finish - (int64_t)margin;
        if ((t->state & HEDGE) && finish > now && now + (finish - now) / 2 < target) {
            target = now + (finish - now) / 2;
        }
        if (target >= now + lo) {
            at = clamp64(target + (int64_t)(margin * s->cfg.jitter * rng_sym(s)), now + lo,
                         target + (int64_t)margin);
        } else {
            double frac = LATE_FRAC0 + LATE_STEP * t->late;
            double age = (double)(now > t->created ? now - t->created : 0);
            if (frac > LATE_FRAC_MAX) {
                frac = LATE_FRAC_MAX;
            }
            if (t->late < UINT8_MAX) {
                t->late++;
            }
            at = now + clamp64(jittered(s, frac * age), lo, hi);
        }
    } else {
        double grown = (double)t->gap * s->cfg.backoff;
        at = now + clamp64(jittered(s, (double)t->gap), lo, hi);
        t->gap = (uint32_t)(grown > (double)hi ? hi : (int64_t)grown);
    }
    if (at > t->created + t->deadline) {
        at = t->created + t->deadline;
    }
    if (s->cfg.run_deadline_ms != KLING_SCHED_UNKNOWN && at > s->cfg.run_deadline_ms) {
        at = s->cfg.run_deadline_ms;
    }
    return at;
}

/* Sets the expected finish to now + ms (never past the deadline). */
static void expect_in(struct task *t, int64_t now, double ms) {
    double f = (double)rel(t, now) + ms;
    t->finish = f > (double)t->deadline ? t->deadline : (int32_t)f;
}

/* The step a provider reports progress in, guessed from two readings: 10 or
 * 5 when both are multiples of it, else 1. A wrong guess of a coarse step
 * only makes E early (one more poll), never late. */
static int quantum(int a, int b) {
    if (a % 10 == 0 && b % 10 == 0) {
        return 10;
    }
    return a % 5 == 0 && b % 5 == 0 ? 5 : 1;
}

/* Extrapolates the finish from reported progress p (1..100 %), reading each
 * report as "at least p, below p + q" (q: the step of the readings) and
 * taking the earliest finish that fits: two distinct readings give the rate;
 * a single one (or no change since the first) is measured from when the run
 * began and is hedged. */
static void extrapolate(struct task *t, int64_t now, int p) {
    int32_t r = rel(t, now);
    int q, left;
    if (t->first_p < 0 || p < t->first_p) {
        t->first_p = (int8_t)p;
        t->first_at = r;
    }
    q = quantum(p, t->first_p);
    left = 100 - p - q > 0 ? 100 - p - q : 0;
    t->state &= (uint8_t)~HEDGE;
    if (p > t->first_p && r > t->first_at) {
        double rate = (double)(p + q - t->first_p) / (double)(r - t->first_at);
        expect_in(t, now, (double)left / rate);
    } else {
        double ran = (double)(r > t->zero_at ? r - t->zero_at : 0);
        expect_in(t, now, ran * (double)left / (double)(p + q));
        t->state |= HEDGE;
    }
}

int kling_sched_add(struct kling_sched *s, int64_t now, int64_t estimate_ms, int64_t deadline_ms,
                    uint32_t *handle) {
    uint32_t h;
    struct task *t;
    if (!time_ok(now) || (estimate_ms < 0 && estimate_ms != KLING_SCHED_UNKNOWN) ||
        (deadline_ms != KLING_SCHED_UNKNOWN && !time_ok(deadline_ms))) {
        return KLING_SCHED_EARG;
    }
    if (s->free_head != NO_LINK) {
        h = s->free_head;
        s->free_head = s->tasks[h].link;
    } else {
        if (s->ntasks == s->cap) {
            int rc = grow(s);
            if (rc != KLING_SCHED_OK) {
                return rc;
            }
        }
        h = s->ntasks++;
    }
    t = &s->tasks[h];
    t->created = now;
    t->deadline = (int32_t)s->cfg.max_age_ms;
    if (deadline_ms != KLING_SCHED_UNKNOWN && deadline_ms - now < t->deadline) {
        t->deadline = deadline_ms > now ? (int32_t)(deadline_ms - now) : 0;
    }
    t->finish = NO_FINISH;
    t->spread = 0;
    if (estimate_ms != KLING_SCHED_UNKNOWN) {
        expect_in(t, now, (double)estimate_ms);
    }
    t->zero_at = 0;
    t->first_at = 0;
    t->gap = (uint32_t)s->cfg.min_interval_ms;
    t->polls = 0;
    t->state = QUEUED;
    t->late = 0;
    t->progress = -1;
    t->first_p = -1;
    s->live++;
    heap_push(s, h, next_poll(s, t, now));
    *handle = h;
    return KLING_SCHED_OK;
}

static int run_over(const struct kling_sched *s, int64_t now) {
    return s->cfg.run_deadline_ms != KLING_SCHED_UNKNOWN && now >= s->cfg.run_deadline_ms;
}

static void set_stage(struct task *t, int st) {
    t->state = (uint8_t)((t->state & ~STAGE) | st);
}

size_t kling_sched_due(struct kling_sched *s, int64_t now, struct kling_sched_due *out, size_t max) {
    size_t n = 0;
    int over = run_over(s, now);
    while (n < max && s->nheap > 0 && (over || s->heap[0].at <= now)) {
        uint32_t h = s->heap[0].handle;
        struct task *t = &s->tasks[h];
        heap_remove_at(s, 0);
        set_stage(t, INFLIGHT);
        out[n].handle = h;
        out[n].expired = over || now >= t->created + t->deadline;
        if (!out[n].expired && t->polls < UINT32_MAX) {
            t->polls++;
        }
        n++;
    }
    return n;
}

static void release(struct kling_sched *s, uint32_t h) {
    struct task *t = &s->tasks[h];
    if (stage(t) == QUEUED) {
        heap_remove_at(s, t->link);
    }
    t->state = FREE;
    t->link = s->free_head;
    s->free_head = h;
    s->live--;
}

/* Takes a live task out of the heap (if queued) so it can be queued again. */
static void unqueue(struct kling_sched *s, struct task *t) {
    if (stage(t) == QUEUED) {
        heap_remove_at(s, t->link);
    }
    set_stage(t, INFLIGHT);
}

static void requeue(struct kling_sched *s, uint32_t h, int64_t at, int64_t *next) {
    set_stage(&s->tasks[h], QUEUED);
    heap_push(s, h, at);
    if (next != NULL) {
        *next = at;
    }
}

int kling_sched_report(struct kling_sched *s, uint32_t handle, int64_t now, int progress,
                       int64_t estimate_ms, int terminal, int64_t *next) {
    struct task *t = live_task(s, handle);
    if (t == NULL) {
        return KLING_SCHED_EHANDLE;
    }
    if (!time_ok(now) || progress < KLING_SCHED_UNKNOWN || progress > 100 ||
        (estimate_ms < 0 && estimate_ms != KLING_SCHED_UNKNOWN)) {
        return KLING_SCHED_EARG;
    }
    if (terminal) {
        release(s, handle);
        if (next != NULL) {
            *next = KLING_SCHED_UNKNOWN;
        }
        return KLING_SCHED_OK;
    }
    unqueue(s, t);
    if (progress != KLING_SCHED_UNKNOWN) {
        t->progress = (int8_t)progress;
    }
    if (progress == 0) {
        t->zero_at = rel(t, now); /* still queued at the provider: the run starts later */
        t->first_p = -1;
    }
    /* Observed progress (two readings) beats the provider's estimate, which
     * beats a single reading; both beat a learnt window. */
    if (progress > 0 || estimate_ms != KLING_SCHED_UNKNOWN) {
        t->spread = 0;
        t->state &= (uint8_t)~WINDOW;
    }
    if (progress > 0) {
        extrapolate(t, now, progress);
    }
    if (estimate_ms != KLING_SCHED_UNKNOWN && (progress <= 0 || (t->state & HEDGE))) {
        t->state &= (uint8_t)~HEDGE;
        expect_in(t, now, (double)estimate_ms);
    }
    requeue(s, handle, next_poll(s, t, now), next);
    return KLING_SCHED_OK;
}

int kling_sched_expect(struct kling_sched *s, uint32_t handle, int64_t now, int64_t earliest_ms,
                       int64_t latest_ms, int64_t *next) {
    struct task *t = live_task(s, handle);
    int32_t r;
    if (next != NULL) {
        *next = KLING_SCHED_UNKNOWN;
    }
    if (t == NULL) {
        return KLING_SCHED_EHANDLE;
    }
    if (!time_ok(now) || earliest_ms < 0 || latest_ms < earliest_ms || latest_ms > KLING_SCHED_AGE_LIMIT) {
        return KLING_SCHED_EARG;
    }
    expect_in(t, now, (double)earliest_ms);
    r = rel(t, now);
    /* The window ends by the deadline too (expect_in capped its start). */
    t->spread = (int32_t)clamp64((int64_t)r + latest_ms - t->finish, 0, (int64_t)t->deadline - t->finish);
    t->state = (uint8_t)((t->state & ~HEDGE) | WINDOW);
    t->late = 0;
    if (stage(t) == QUEUED) {
        unqueue(s, t);
        requeue(s, handle, next_poll(s, t, now), next);
    }
    return KLING_SCHED_OK;
}

int kling_sched_defer(struct kling_sched *s, uint32_t handle, int64_t now, int64_t delay_ms, int64_t *next) {
    struct task *t = live_task(s, handle);
    int64_t at;
    if (t == NULL) {
        return KLING_SCHED_EHANDLE;
    }
    if (!time_ok(now) || delay_ms < 0) {
        return KLING_SCHED_EARG;
    }
    unqueue(s, t);
    at = now + (delay_ms < s->cfg.max_age_ms ? delay_ms : s->cfg.max_age_ms);
    if (at > t->created + t->deadline) {
        at = t->created + t->deadline;
    }
    if (s->cfg.run_deadline_ms != KLING_SCHED_UNKNOWN && at > s->cfg.run_deadline_ms) {
        at = s->cfg.run_deadline_ms;
    }
    requeue(s, handle, at, next);
    return KLING_SCHED_OK;
}

int kling_sched_remove(struct kling_sched *s, uint32_t handle) {
    if (live_task(s, handle) == NULL) {
        return KLING_SCHED_EHANDLE;
    }
    release(s, handle);
    return KLING_SCHED_OK;
}

int64_t kling_sched_next_wakeup(const struct kling_sched *s, int64_t now) {
    int64_t at;
    if (s->nheap == 0) {
        return KLING_SCHED_UNKNOWN;
    }
    at = s->heap[0].at;
    if (s->cfg.run_deadline_ms != KLING_SCHED_UNKNOWN && s->cfg.run_deadline_ms < at) {
        at = s->cfg.run_deadline_ms;
    }
    return at > now ? at - now : 0;
}

int kling_sched_set_run_deadline(struct kling_sched *s, int64_t deadline_ms) {
    if (deadline_ms != KLING_SCHED_UNKNOWN && !time_ok(deadline_ms)) {
        return KLING_SCHED_EARG;
    }
    s->cfg.run_deadline_ms = deadline_ms;
    return KLING_SCHED_OK;
}

void kling_sched_counts(const struct kling_sched *s, struct kling_sched_counts *out) {
    out->live = s->live;
    out->queued = s->nheap;
    out->inflight = s->live - s->nheap;
    out->bytes = sizeof(*s) + (size_t)s->cap * (sizeof(struct task) + sizeof(struct entry));
}

int kling_sched_is_live(const struct kling_sched *s, uint32_t handle) {
    return live_task(s, handle) != NULL;
}

int64_t kling_sched_next_at(const struct kling_sched *s, uint32_t handle) {
    const struct task *t = live_task(s, handle);
    return t == NULL || stage(t) != QUEUED ? KLING_SCHED_UNKNOWN : s->heap[t->link].at;
}

uint32_t kling_sched_polls(const struct kling_sched *s, uint32_t handle) {
    const struct task *t = live_task(s, handle);
    return t == NULL ? 0 : t->polls;
}

size_t kling_sched_task_bytes(void) {
    return sizeof(struct task) + sizeof(struct entry);
}

int kling_sched_check(const struct kling_sched *s) {
    uint32_t i, h;
    size_t live = 0, queued = 0, free_len = 0;
    for (i = 0; i < s->nheap; i++) {
        const struct entry *e = &s->heap[i];
        if (e->handle >= s->ntasks || stage(&s->tasks[e->handle]) != QUEUED || s->tasks[e->handle].link != i) {
            return -1;
        }
        if (i > 0 && before(e, &s->heap[(i - 1) / 2])) {
            return -2;
        }
    }
    for (i = 0; i < s->ntasks; i++) {
        live += stage(&s->tasks[i]) != FREE;
        queued += stage(&s->tasks[i]) == QUEUED;
    }
    for (h = s->free_head; h != NO_LINK; h = s->tasks[h].link) {
        if (h >= s->ntasks || stage(&s->tasks[h]) != FREE || ++free_len > s->ntasks) {
            return -3;
        }
    }
    if (live != s->live || queued != s->nheap || live + free_len != s->ntasks) {
        return -4;
    }
    return 0;
}
