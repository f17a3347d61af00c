/* flow/core/flow_lb.c — load-balancing strategies (flow_lb.h). */
#include "flow/core/flow_lb.h"

#include <string.h>

/* Index of the first candidate after last_seq in round-robin order. */
static size_t flow_lb__rr_start(const flow_lb *lb, const flow_lb_cand *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (c[i].seq > lb->last_seq) {
            return i;
        }
    }
    return 0;
}

int flow_lb_pick(flow_lb *lb, const flow_lb_cand *c, size_t n)
{
    if (n == 0) {
        return -1;
    }
    size_t start = flow_lb__rr_start(lb, c, n);
    size_t best = start;
    switch (lb->strategy) {
    case FLOW_LB_ROUND_ROBIN: break;
    case FLOW_LB_LEAST_CONN:
        for (size_t k = 1; k < n; k++) {
            size_t i = (start + k) % n;
            if (c[i].active < c[best].active) {
                best = i;
            }
        }
        break;
    case FLOW_LB_WEIGHTED: {
        int64_t sum = 0;
        best = 0;
        for (size_t i = 0; i < n; i++) {
            *c[i].cur += c[i].weight;
            sum += c[i].weight;
            if (*c[i].cur > *c[best].cur) {
                best = i;
            }
        }
        *c[best].cur -= sum;
        break;
    }
    }
    lb->last_seq = c[best].seq;
    return (int)best;
}

static const char *const flow_lb__names[] = {"round_robin", "least_conn", "weighted"};

const char *flow_lb_name(flow_lb_strategy s)
{
    return (unsigned)s < 3 ? flow_lb__names[s] : "?";
}

int flow_lb_parse(const char *s)
{
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, flow_lb__names[i]) == 0) {
            return i;
        }
    }
    return -1;
}
