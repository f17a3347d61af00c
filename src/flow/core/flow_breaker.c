/* flow/core/flow_breaker.c — circuit breaker (flow_breaker.h). */
#include "flow/core/flow_breaker.h"

#include <string.h>

void flow_breaker_init(flow_breaker *b, int threshold, uint64_t timeout_ms)
{
    memset(b, 0, sizeof *b);
    b->threshold = threshold > 0 ? threshold : 5;
    b->timeout_ms = timeout_ms;
}

bool flow_breaker_failure(flow_breaker *b, uint64_t now)
{
    switch (b->state) {
    case FLOW_CB_CLOSED:
        if (++b->failures >= b->threshold) {
            b->state = FLOW_CB_OPEN;
            b->opened_at = now;
            return true;
        }
        return false;
    case FLOW_CB_HALF_OPEN:
        b->state = FLOW_CB_OPEN;
        b->opened_at = now;
        b->trial_out = false;
        return true;
    case FLOW_CB_OPEN: b->opened_at = now; return false;
    }
    return false;
}

bool flow_breaker_success(flow_breaker *b)
{
    b->failures = 0;
    if (b->state == FLOW_CB_HALF_OPEN) {
        b->state = FLOW_CB_CLOSED;
        b->trial_out = false;
        return true;
    }
    return false;
}

bool flow_breaker_tick(flow_breaker *b, uint64_t now)
{
    if (b->state == FLOW_CB_OPEN && now >= b->opened_at + b->timeout_ms) {
        b->state = FLOW_CB_HALF_OPEN;
        b->trial_out = false;
        return true;
    }
    return false;
}

bool flow_breaker_allows(const flow_breaker *b)
{
    return b->state == FLOW_CB_CLOSED || (b->state == FLOW_CB_HALF_OPEN && !b->trial_out);
}

void flow_breaker_dispatched(flow_breaker *b)
{
    if (b->state == FLOW_CB_HALF_OPEN) {
        b->trial_out = true;
    }
}

void flow_breaker_trial_void(flow_breaker *b)
{
    if (b->state == FLOW_CB_HALF_OPEN) {
        b->trial_out = false;
    }
}

uint64_t flow_breaker_deadline(const flow_breaker *b)
{
    return b->state == FLOW_CB_OPEN ? b->opened_at + b->timeout_ms : UINT64_MAX;
}

static const char *const flow_breaker__names[] = {"closed", "open", "half_open"};

const char *flow_breaker_state_name(flow_cb_state s)
{
    return (unsigned)s < 3 ? flow_breaker__names[s] : "?";
}

int flow_breaker_state_parse(const char *s)
{
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, flow_breaker__names[i]) == 0) {
            return i;
        }
    }
    return -1;
}
