/*
 * flow/core/flow_lb.h — agent selection strategies (FLOW.md "Queue, balancing"), pure logic.
 *
 * The caller passes the agents that can take a task now, sorted by join order (seq).
 *  - round_robin: the first candidate after the previously chosen one (by seq), wrapping.
 *  - least_conn:  the candidate with the fewest active tasks; ties go round robin.
 *  - weighted:    smooth weighted round robin over the candidates' weights (each candidate
 *                 gains its weight, the largest total wins and pays the candidates' sum);
 *                 over a window where the same agents stay free, agent i gets
 *                 weight_i / sum of the picks.
 */
#ifndef MACULA_FLOW_LB_H
#define MACULA_FLOW_LB_H

#include <stddef.h>
#include <stdint.h>

typedef enum flow_lb_strategy {
    FLOW_LB_ROUND_ROBIN = 0,
    FLOW_LB_LEAST_CONN,
    FLOW_LB_WEIGHTED,
} flow_lb_strategy;

typedef struct flow_lb_cand {
    uint64_t seq; /* join order, ascending in the array */
    int active;   /* tasks the agent holds */
    int weight;   /* >= 1 */
    int64_t *cur; /* the agent's running total for `weighted` (part of the state) */
} flow_lb_cand;

typedef struct flow_lb {
    flow_lb_strategy strategy;
    uint64_t last_seq; /* the previously chosen agent (0 = none yet) */
} flow_lb;

/* Returns the index of the chosen candidate, or -1 if n == 0. */
int flow_lb_pick(flow_lb *lb, const flow_lb_cand *c, size_t n);
const char *flow_lb_name(flow_lb_strategy s);
int flow_lb_parse(const char *s); /* -1 if unknown */

#endif
