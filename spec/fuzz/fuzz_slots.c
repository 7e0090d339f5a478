/* The slot limiter driven by random operation sequences against a model of
 * what it must hold: the ids waiting in FIFO order and the slots in use.
 * Invariants after every step: in_use and queued match the model; the
 * effective limit stays in [1, C]; a slot is granted at once only when nobody
 * waits (or the id goes to the front) and a slot is free; grant hands out the
 * oldest waiting ids in order and never beyond the limit; release without a
 * slot is refused. */
#include "fuzz.h"
#include "slots.h"

#define MAXQ 512

struct model {
    int64_t q[MAXQ];
    size_t nq;
    uint32_t in_use;
};

static void check(const struct kling_slots *s, const struct model *m) {
    FUZZ_CHECK(kling_slots_in_use(s) == m->in_use);
    FUZZ_CHECK(kling_slots_queued(s) == m->nq);
    FUZZ_CHECK(kling_slots_limit(s) >= 1 && kling_slots_limit(s) <= kling_slots_configured(s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_in in = {data, size};
    struct kling_slots_config c;
    struct kling_slots *s;
    struct model m;
    int64_t now = 0, next_id = 1, out[8];
    size_t i, k;

    kling_slots_config_default(&c);
    c.limit = 1 + (uint32_t)(fuzz_u8(&in) % 16);
    c.decrease = 0.1 + (fuzz_u8(&in) % 9) * 0.1;
    c.recover_after = fuzz_u8(&in) % 4;
    c.recover_ms = (int64_t)(fuzz_u8(&in) % 4) * 1000;
    c.cooldown_ms = (int64_t)(fuzz_u8(&in) % 4) * 500;
    FUZZ_CHECK(kling_slots_config_check(&c) == NULL);
    s = kling_slots_new(&c);
    FUZZ_CHECK(s != NULL);
    memset(&m, 0, sizeof m);

    while (in.n > 0) {
        uint8_t op = fuzz_u8(&in);
        now += fuzz_u8(&in) * 37;
        switch (op % 6) {
        case 0: { /* acquire */
            int front = (op >> 3) & 1;
            uint32_t limit = kling_slots_limit(s);
            int free_slot = m.in_use < limit, got;
            int waiting = m.nq > 0;
            if (m.nq == MAXQ) break;
            got = kling_slots_acquire(s, next_id, front);
            FUZZ_CHECK(got == 0 || got == 1);
            FUZZ_CHECK(got == (free_slot && (!waiting || front)));
            if (got) {
                m.in_use++;
            } else if (front) {
                memmove(m.q + 1, m.q, m.nq * sizeof m.q[0]);
                m.q[0] = next_id;
                m.nq++;
            } else {
                m.q[m.nq++] = next_id;
            }
            next_id++;
            break;
        }
        case 1: { /* release */
            int r = kling_slots_release(s, now);
            FUZZ_CHECK(m.in_use > 0 ? r == KLING_SLOTS_OK : r == KLING_SLOTS_EARG);
            if (m.in_use > 0) m.in_use--;
            break;
        }
        case 2: { /* grant */
            size_t max = (op >> 3) % 9;
            k = kling_slots_grant(s, now, out, max);
            FUZZ_CHECK(k <= max && k <= m.nq);
            for (i = 0; i < k; i++) {
                FUZZ_CHECK(out[i] == m.q[i]);
            }
            memmove(m.q, m.q + k, (m.nq - k) * sizeof m.q[0]);
            m.nq -= k;
            m.in_use += (uint32_t)k;
            FUZZ_CHECK(k == 0 || m.in_use <= kling_slots_limit(s));
            break;
        }
        case 3: { /* cancel a waiting id, or one that is not waiting */
            int64_t id = m.nq && (op & 8) ? m.q[(op >> 4) % m.nq] : next_id + 1000;
            int r = kling_slots_cancel(s, id);
            size_t at = m.nq;
            for (i = 0; i < m.nq; i++) {
                if (m.q[i] == id) at = i;
            }
            FUZZ_CHECK(r == (at < m.nq));
            if (at < m.nq) {
                memmove(m.q + at, m.q + at + 1, (m.nq - at - 1) * sizeof m.q[0]);
                m.nq--;
            }
            break;
        }
        case 4:
            FUZZ_CHECK(kling_slots_on_rate_limited(s, now) == kling_slots_limit(s));
            break;
        default:
            FUZZ_CHECK(kling_slots_on_success(s, now) == kling_slots_limit(s));
            break;
        }
        check(s, &m);
    }
    kling_slots_free(s);
    return 0;
}
