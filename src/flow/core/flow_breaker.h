/*
 * flow/core/flow_breaker.h — a swarm's circuit breaker (seed 002 scenario 5), pure logic on
 * an injected clock (times are arguments, in ms).
 *
 *   closed    --threshold consecutive failures-->  open (dispatch paused), opened_at = now
 *   open      --now >= opened_at + timeout-------> half_open (one trial task may run)
 *   half_open --trial succeeds-------------------> closed (failure count 0)
 *   half_open --trial fails----------------------> open, opened_at = now
 *   any success in closed resets the count.
 */
#ifndef MACULA_FLOW_BREAKER_H
#define MACULA_FLOW_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

typedef enum flow_cb_state { FLOW_CB_CLOSED = 0, FLOW_CB_OPEN, FLOW_CB_HALF_OPEN } flow_cb_state;

typedef struct flow_breaker {
    flow_cb_state state;
    int failures;        /* consecutive failures while closed */
    int threshold;       /* >= 1, default 5 */
    uint64_t timeout_ms; /* open -> half_open after this, default 60000 */
    uint64_t opened_at;
    bool trial_out; /* half_open: the one trial task is out */
} flow_breaker;

void flow_breaker_init(flow_breaker *b, int threshold, uint64_t timeout_ms);
/* Records an outcome. Returns true if the state changed. */
bool flow_breaker_failure(flow_breaker *b, uint64_t now);
bool flow_breaker_success(flow_breaker *b);
/* Moves open -> half_open when the timeout has passed. Returns true if the state changed. */
bool flow_breaker_tick(flow_breaker *b, uint64_t now);
/* May one more task be dispatched now? (closed: yes; open: no; half_open: if no trial out) */
bool flow_breaker_allows(const flow_breaker *b);
/* A task was dispatched (in half_open this is the trial). */
void flow_breaker_dispatched(flow_breaker *b);
/* The trial task ended without an outcome (cancelled, requeued without fault): allow another. */
void flow_breaker_trial_void(flow_breaker *b);
/* When tick would change the state, or UINT64_MAX. */
uint64_t flow_breaker_deadline(const flow_breaker *b);
const char *flow_breaker_state_name(flow_cb_state s);
int flow_breaker_state_parse(const char *s); /* -1 if unknown */

#endif
