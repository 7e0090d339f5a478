/* Slot limiter with AIMD on rate limits (see slots.h). */
#include "slots.h"

#include <stdlib.h>

struct kling_slots {
    struct kling_slots_config cfg;
    uint32_t effective;
    uint32_t in_use;
    uint32_t successes;   /* since the last additive step */
    int has_cut;
    int64_t last_cut;     /* time of the last decrease */
    int64_t last_step;    /* time-based recovery counts from here */
    int64_t *queue;       /* ring buffer of waiting ids */
    size_t qcap, qhead, qlen;
};

void kling_slots_config_default(struct kling_slots_config *c) {
    c->limit = 1;
    c->decrease = 0.5;
    c->recover_after = 2;
    c->recover_ms = 30000;
    c->cooldown_ms = 2000;
}

const char *kling_slots_config_check(const struct kling_slots_config *c) {
    if (c->limit < 1 || c->limit > KLING_SLOTS_LIMIT_MAX) {
        return "limit must be an integer between 1 and 1000000";
    }
    if (!(c->decrease > 0.0 && c->decrease < 1.0)) {
        return "decrease must be a factor strictly between 0 and 1";
    }
    if (c->recover_after > KLING_SLOTS_LIMIT_MAX) {
        return "recover_after must be between 0 (never) and 1000000";
    }
    if (c->recover_ms < 0 || c->recover_ms > INT64_C(86400000)) {
        return "recover_ms must be between 0 (never) and 86400000";
    }
    if (c->cooldown_ms < 0 || c->cooldown_ms > INT64_C(86400000)) {
        return "cooldown_ms must be between 0 and 86400000";
    }
    return NULL;
}

struct kling_slots *kling_slots_new(const struct kling_slots_config *c) {
    struct kling_slots *s;
    if (kling_slots_config_check(c) != NULL) {
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->cfg = *c;
    s->effective = c->limit; /* below C only after a cut, which sets last_step */
    return s;
}

void kling_slots_free(struct kling_slots *s) {
    if (s != NULL) {
        free(s->queue);
        free(s);
    }
}

/* ---- the waiting queue (ring buffer) ---- */

static int queue_grow(struct kling_slots *s) {
    size_t cap = s->qcap < 8 ? 8 : s->qcap * 2, i;
    int64_t *q;
    if (cap > SIZE_MAX / sizeof(*q)) {
        return KLING_SLOTS_ENOMEM;
    }
    q = malloc(cap * sizeof(*q));
    if (q == NULL) {
        return KLING_SLOTS_ENOMEM;
    }
    for (i = 0; i < s->qlen; i++) {
        q[i] = s->queue[(s->qhead + i) % s->qcap];
    }
    free(s->queue);
    s->queue = q;
    s->qcap = cap;
    s->qhead = 0;
    return KLING_SLOTS_OK;
}

static int64_t queue_pop(struct kling_slots *s) {
    int64_t id = s->queue[s->qhead];
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
    return id;
}

int kling_slots_acquire(struct kling_slots *s, int64_t id, int front) {
    if ((s->qlen == 0 || front) && s->in_use < s->effective) {
        s->in_use++;
        return 1;
    }
    if (s->qlen == s->qcap && queue_grow(s) != KLING_SLOTS_OK) {
        return KLING_SLOTS_ENOMEM;
    }
    if (front) {
        s->qhead = (s->qhead + s->qcap - 1) % s->qcap;
        s->queue[s->qhead] = id;
    } else {
        s->queue[(s->qhead + s->qlen) % s->qcap] = id;
    }
    s->qlen++;
    return 0;
}

int kling_slots_cancel(struct kling_slots *s, int64_t id) {
    size_t i;
    for (i = 0; i < s->qlen; i++) {
        if (s->queue[(s->qhead + i) % s->qcap] == id) {
            for (; i + 1 < s->qlen; i++) {
                s->queue[(s->qhead + i) % s->qcap] = s->queue[(s->qhead + i + 1) % s->qcap];
            }
            s->qlen--;
            return 1;
        }
    }
    return 0;
}

/* ---- AIMD ---- */

/* +1 per recover_ms spent below C since the last step or cut. */
static void recover_by_time(struct kling_slots *s, int64_t now) {
    int64_t steps;
    if (s->cfg.recover_ms == 0 || now <= s->last_step) {
        return;
    }
    if (s->effective >= s->cfg.limit) {
        s->last_step = now; /* time at full limit earns nothing */
        return;
    }
    steps = (now - s->last_step) / s->cfg.recover_ms;
    if (steps >= (int64_t)(s->cfg.limit - s->effective)) {
        s->effective = s->cfg.limit;
        s->last_step = now;
    } else if (steps > 0) {
        s->effective += (uint32_t)steps;
        s->last_step += steps * s->cfg.recover_ms;
    }
}

uint32_t kling_slots_on_rate_limited(struct kling_slots *s, int64_t now) {
    uint32_t cut;
    recover_by_time(s, now);
    if (s->has_cut && now - s->last_cut < s->cfg.cooldown_ms) {
        return s->effective;
    }
    cut = (uint32_t)((double)s->effective * s->cfg.decrease);
    s->effective = cut < 1 ? 1 : cut;
    s->has_cut = 1;
    s->last_cut = now;
    s->last_step = now;
    s->successes = 0;
    return s->effective;
}

uint32_t kling_slots_on_success(struct kling_slots *s, int64_t now) {
    recover_by_time(s, now);
    if (s->effective >= s->cfg.limit || s->cfg.recover_after == 0) {
        s->successes = 0; /* no credit is banked at the full limit */
        return s->effective;
    }
    if (++s->successes >= s->cfg.recover_after) {
        s->effective++;
        s->successes = 0;
        s->last_step = now;
    }
    return s->effective;
}

int kling_slots_release(struct kling_slots *s, int64_t now) {
    if (s->in_use == 0) {
        return KLING_SLOTS_EARG;
    }
    s->in_use--;
    recover_by_time(s, now);
    return KLING_SLOTS_OK;
}

size_t kling_slots_grant(struct kling_slots *s, int64_t now, int64_t *out, size_t max) {
    size_t n = 0;
    recover_by_time(s, now);
    while (n < max && s->qlen > 0 && s->in_use < s->effective) {
        out[n++] = queue_pop(s);
        s->in_use++;
    }
    return n;
}

uint32_t kling_slots_limit(const struct kling_slots *s) {
    return s->effective;
}

uint32_t kling_slots_configured(const struct kling_slots *s) {
    return s->cfg.limit;
}

uint32_t kling_slots_in_use(const struct kling_slots *s) {
    return s->in_use;
}

size_t kling_slots_queued(const struct kling_slots *s) {
    return s->qlen;
}
