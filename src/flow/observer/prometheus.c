/*
 * flow/observer/prometheus.c — the flow's observer output for the node's HTTP endpoints:
 * Prometheus text for /metrics and health per swarm for /health (macula/flow.h), read from the
 * views the registry and the metrics observer publish (flow_int.h "views").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow_int.h"

static void prom__family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef struct prom_ctx {
    FILE *f;
    int family; /* which per-swarm family is being written */
} prom_ctx;

enum { PROM_TASKS, PROM_QUEUE, PROM_AGENTS, PROM_BREAKER, PROM_ENDED0 };
static const char *const prom__ended[3] = {"completed", "failed", "cancelled"};

/* One family's samples for one swarm (ids are [A-Za-z0-9._:-]: no escaping needed). */
static void prom__swarm(const flow_swarm_stats *st, void *user)
{
    prom_ctx *x = user;
    FILE *f = x->f;
    switch (x->family) {
    case PROM_TASKS:
        for (int i = 0; i < 6; i++) {
            fprintf(f, "macula_flow_tasks{swarm=\"%s\",state=\"%s\"} %zu\n", st->id,
                    flow_task_state_name((flow_task_state)i), st->tasks[i]);
        }
        break;
    case PROM_QUEUE:
        for (int i = 0; i < 3; i++) {
            fprintf(f, "macula_flow_queue_depth{swarm=\"%s\",priority=\"%s\"} %zu\n", st->id,
                    flow_prio_name(i), st->queued[i]);
        }
        break;
    case PROM_AGENTS:
        for (int i = 0; i < 3; i++) {
            fprintf(f, "macula_flow_agents{swarm=\"%s\",state=\"%s\"} %zu\n", st->id,
                    flow_agent_state_name((flow_agent_state)i), st->agents[i]);
        }
        break;
    case PROM_BREAKER:
        for (int i = 0; i < 3; i++) {
            fprintf(f, "macula_flow_breaker_state{swarm=\"%s\",state=\"%s\"} %d\n", st->id,
                    flow_breaker_state_name((flow_cb_state)i), (int)st->breaker == i);
        }
        break;
    default:
        fprintf(f, "macula_flow_tasks_%s_total{swarm=\"%s\"} %llu\n",
                prom__ended[x->family - PROM_ENDED0], st->id,
                (unsigned long long)st->ended_total[x->family - PROM_ENDED0]);
        break;
    }
}

static void prom__latency(FILE *f, const flow_latency *h)
{
    static const flow_latency none;
    if (h == NULL) {
        h = &none;
    }
    prom__family(f, "macula_flow_dispatch_latency_seconds", "histogram",
                 "Time from a task_submit request entering this node to the task's first "
                 "assignment to an agent.");
    uint64_t cum = 0;
    for (int b = 0; b < FLOW_LAT_BUCKETS; b++) {
        cum += h->bucket[b];
        fprintf(f, "macula_flow_dispatch_latency_seconds_bucket{le=\"%g\"} %llu\n",
                flow_latency_bounds[b], (unsigned long long)cum);
    }
    fprintf(f,
            "macula_flow_dispatch_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
            "macula_flow_dispatch_latency_seconds_sum %.9f\n"
            "macula_flow_dispatch_latency_seconds_count %llu\n",
            (unsigned long long)h->count, h->sum, (unsigned long long)h->count);
}

static void prom__count(const flow_swarm_stats *st, void *user)
{
    (void)st;
    ++*(size_t *)user;
}

char *flow_metrics_prometheus(sup_rt *rt)
{
    const flow_state *fs = flow_view_get(rt, FLOW_VIEW_STATE);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        return NULL;
    }
    if (fs != NULL) {
        static const struct {
            const char *name, *type, *help;
        } fam[] = {
            {"macula_flow_tasks", "gauge", "Tasks the flow state keeps, by swarm and state."},
            {"macula_flow_queue_depth", "gauge", "Tasks waiting in a swarm's queue, by priority."},
            {"macula_flow_agents", "gauge", "Agents by swarm and state."},
            {"macula_flow_breaker_state", "gauge",
             "A swarm's circuit breaker: 1 for its current state."},
            {"macula_flow_tasks_completed_total", "counter", "Tasks completed, by swarm."},
            {"macula_flow_tasks_failed_total", "counter", "Tasks failed, by swarm."},
            {"macula_flow_tasks_cancelled_total", "counter", "Tasks cancelled, by swarm."},
        };
        size_t nswarms = 0;
        flow_state_each_swarm(fs, prom__count, &nswarms);
        prom__family(f, "macula_flow_swarms", "gauge", "Swarms.");
        fprintf(f, "macula_flow_swarms %zu\n", nswarms);
        prom__family(f, "macula_flow_commands_applied_total", "counter",
                     "Commands the flow state machine applied.");
        fprintf(f, "macula_flow_commands_applied_total %llu\n",
                (unsigned long long)flow_state_applied(fs));
        for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
            prom_ctx x = {f, (int)i};
            prom__family(f, fam[i].name, fam[i].type, fam[i].help);
            flow_state_each_swarm(fs, prom__swarm, &x);
        }
        prom__latency(f, flow_view_get(rt, FLOW_VIEW_LATENCY));
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* ---- health -----------------------------------------------------------------------------------
 */

static void health__swarm(const flow_swarm_stats *st, void *user)
{
    json_t *swarms = user;
    size_t agents = st->agents[0] + st->agents[1] + st->agents[2];
    const char *status = st->breaker == FLOW_CB_OPEN                       ? "paused"
                         : st->breaker == FLOW_CB_HALF_OPEN || agents == 0 ? "degraded"
                                                                           : "ok";
    json_object_set_new(swarms, st->id,
                        json_pack("{s:s, s:I, s:s, s:I, s:I}", "status", status, "agents",
                                  (json_int_t)agents, "breaker",
                                  flow_breaker_state_name(st->breaker), "pending",
                                  (json_int_t)st->tasks[FLOW_TASK_PENDING], "running",
                                  (json_int_t)st->tasks[FLOW_TASK_ASSIGNED] +
                                      (json_int_t)st->tasks[FLOW_TASK_RUNNING]));
}

json_t *flow_health_json(sup_rt *rt)
{
    const flow_state *fs = flow_view_get(rt, FLOW_VIEW_STATE);
    if (fs == NULL) {
        return NULL;
    }
    json_t *swarms = json_object();
    flow_state_each_swarm(fs, health__swarm, swarms);
    const char *worst = "ok";
    const char *key;
    json_t *v;
    json_object_foreach(swarms, key, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "status")), "ok") != 0) {
            worst = "degraded";
        }
    }
    return json_pack("{s:s, s:o}", "status", worst, "swarms", swarms);
}
