/* flow/core/flow_state_json.c — the flow state as JSON: names, swarm configs, commands,
 * events, snapshots and the API's views (flow_state.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/core/flow_state_int.h"

/* ---- names ------------------------------------------------------------------------------- */

static int flow__lookup(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            return i;
        }
    }
    return -1;
}

static const char *const flow__topo_names[] = {"star", "hierarchical", "ring", "mesh"};
static const char *const flow__role_names[] = {"worker", "specialist", "scout"};
static const char *const flow__prio_names[] = {"high", "normal", "low"};
static const char *const flow__task_state_names[] = {"pending",   "assigned", "running",
                                                     "completed", "failed",   "cancelled"};
static const char *const flow__agent_state_names[] = {"idle", "busy", "draining"};
static const char *const flow__cmd_names[] = {"",
                                              "swarm_create",
                                              "swarm_destroy",
                                              "swarm_scale",
                                              "agent_add",
                                              "agent_spawn_failed",
                                              "agent_drain",
                                              "agent_remove",
                                              "agent_crashed",
                                              "task_submit",
                                              "task_assign",
                                              "task_start",
                                              "task_complete",
                                              "task_fail",
                                              "task_cancel",
                                              "tick",
                                              "swarm_lease"};
static const char *const flow__event_names[] = {"",
                                                "swarm_created",
                                                "swarm_destroyed",
                                                "agent_added",
                                                "agent_removed",
                                                "agent_needed",
                                                "agent_retire",
                                                "task_accepted",
                                                "task_assigned",
                                                "task_run",
                                                "task_started",
                                                "task_abort",
                                                "task_stage",
                                                "task_stolen",
                                                "task_requeued",
                                                "task_completed",
                                                "task_failed",
                                                "task_cancelled",
                                                "breaker"};

const char *flow_topology_name(flow_topology t)
{
    return (unsigned)t < 4 ? flow__topo_names[t] : "?";
}
int flow_topology_parse(const char *s)
{
    return flow__lookup(flow__topo_names, 4, s);
}
const char *flow_role_name(int r)
{
    return r >= 0 && r < FLOW_ROLES ? flow__role_names[r] : "none";
}
int flow_role_parse(const char *s)
{
    if (s && strcmp(s, "none") == 0) {
        return FLOW_ROLE_NONE;
    }
    int r = flow__lookup(flow__role_names, FLOW_ROLES, s);
    return r < 0 ? FLOW_ROLE_NONE - 1 : r;
}
const char *flow_prio_name(int p)
{
    return p >= 0 && p < 3 ? flow__prio_names[p] : "?";
}
int flow_prio_parse(const char *s)
{
    return flow__lookup(flow__prio_names, 3, s);
}
const char *flow_task_state_name(flow_task_state s)
{
    return (unsigned)s < 6 ? flow__task_state_names[s] : "?";
}
int flow_task_state_parse(const char *s)
{
    return flow__lookup(flow__task_state_names, 6, s);
}
const char *flow_agent_state_name(flow_agent_state s)
{
    return (unsigned)s < 3 ? flow__agent_state_names[s] : "?";
}
const char *flow_cmd_name(flow_cmd_type t)
{
    return t >= FLOW_CMD_SWARM_CREATE && t <= FLOW_CMD_LAST ? flow__cmd_names[t] : "?";
}
const char *flow_event_name(flow_event_type t)
{
    return t >= FLOW_EV_SWARM_CREATED && t <= FLOW_EV_BREAKER ? flow__event_names[t] : "?";
}

const char *flow_strerror(int err)
{
    switch (err) {
    case FLOW_OK: return "ok";
    case FLOW_EINVAL: return "invalid_argument";
    case FLOW_ENOTFOUND: return "not_found";
    case FLOW_EEXIST: return "already_exists";
    case FLOW_EQUEUE_FULL: return "queue_full";
    case FLOW_EPOOL_FULL: return "pool_full";
    case FLOW_ESTATE: return "invalid_state";
    case FLOW_ENOMEM: return "out_of_memory";
    case FLOW_EDEPS: return "bad_dependency";
    case FLOW_ETIMEOUT: return "timeout";
    case FLOW_ENOPROC: return "flow_not_running";
    case FLOW_ESPAWN: return "spawn_failed";
    case FLOW_ENOTLEADER: return "not_leader";
    case FLOW_ECONSENSUS: return "consensus_unavailable";
    default: return "unknown_error";
    }
}

/* ---- bounded readers --------------------------------------------------------------------- */

/* Reads an integer member into *out when present; range-checked. */
static int flow__get_int(const json_t *o, const char *key, long long lo, long long hi,
                         long long *out, char *err, size_t errsize)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL) {
        return 1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        flow__err(err, errsize, "%s must be an integer from %lld to %lld", key, lo, hi);
        return FLOW_EINVAL;
    }
    *out = json_integer_value(v);
    return 0;
}

static int flow__get_id(const json_t *o, const char *key, bool required, char out[FLOW_ID_MAX],
                        char *err, size_t errsize)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL && !required) {
        out[0] = '\0';
        return 0;
    }
    if (!json_is_string(v) || !flow_id_valid(json_string_value(v))) {
        flow__err(err, errsize, "%s must be an id of 1..63 characters [A-Za-z0-9._:-]", key);
        return FLOW_EINVAL;
    }
    snprintf(out, FLOW_ID_MAX, "%s", json_string_value(v));
    return 0;
}

/* A JSON value no larger than FLOW_MAX_INPUT bytes as compact text. */
static bool flow__size_ok(const json_t *v)
{
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    return n > 0 && n <= FLOW_MAX_INPUT;
}

/* ---- swarm config ------------------------------------------------------------------------ */

void flow_swarm_config_defaults(flow_swarm_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_agents = 300;
    for (int r = 0; r < FLOW_ROLES; r++) {
        c->pool_min[r] = 5;
        c->pool_max[r] = 100;
    }
    c->queue_limit = 10000;
    c->max_retries = 3;
    c->lb = FLOW_LB_ROUND_ROBIN;
    c->cb_threshold = 5;
    c->cb_timeout_ms = 60000;
    c->idle_timeout_ms = 30000;
    c->mesh_prefetch = 2;
    memcpy(c->weights, flow_queue_default_weights, sizeof c->weights);
}

void flow_swarm_config_clear(flow_swarm_config *c)
{
    json_decref(c->executor);
    c->executor = NULL;
}

int flow_swarm_config_from_json(flow_swarm_config *c, const json_t *j, char *err, size_t errsize)
{
    if (j == NULL) {
        return 0;
    }
    if (!json_is_object(j)) {
        flow__err(err, errsize, "config must be an object");
        return FLOW_EINVAL;
    }
    static const char *const known[] = {
        "max_agents",     "pool_min", "pool_max",     "queue_limit",   "max_retries",
        "retry_on_error", "lb",       "cb_threshold", "cb_timeout_ms", "idle_timeout_ms",
        "mesh_prefetch",  "weights",  "executor"};
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)j, key, val)
    {
        if (flow__lookup(known, (int)(sizeof known / sizeof known[0]), key) < 0) {
            flow__err(err, errsize, "unknown config key %.64s", key);
            return FLOW_EINVAL;
        }
    }
    long long v;
    int rc;
#define FLOW_INT(name, lo, hi, dst)                                                                \
    if ((rc = flow__get_int(j, name, lo, hi, &v, err, errsize)) < 0) {                             \
        return rc;                                                                                 \
    } else if (rc == 0) {                                                                          \
        (dst) = v;                                                                                 \
    }
    FLOW_INT("max_agents", 1, 300, c->max_agents);
    FLOW_INT("queue_limit", 1, 10000, c->queue_limit);
    FLOW_INT("max_retries", 0, 100, c->max_retries);
    FLOW_INT("cb_threshold", 1, 1000, c->cb_threshold);
    FLOW_INT("cb_timeout_ms", 1, 86400000, c->cb_timeout_ms);
    FLOW_INT("idle_timeout_ms", 1, 86400000, c->idle_timeout_ms);
    FLOW_INT("mesh_prefetch", 0, FLOW_MAX_PREFETCH, c->mesh_prefetch);
#undef FLOW_INT
    static const char *const pools[] = {"pool_min", "pool_max"};
    for (int p = 0; p < 2; p++) {
        const json_t *o = json_object_get(j, pools[p]);
        if (o == NULL) {
            continue;
        }
        if (!json_is_object(o)) {
            flow__err(err, errsize, "%s must be an object of role: count", pools[p]);
            return FLOW_EINVAL;
        }
        json_object_foreach((json_t *)o, key, val)
        {
            int r = flow_role_parse(key);
            if (r < 0 || !json_is_integer(val) || json_integer_value(val) < 0 ||
                json_integer_value(val) > 100) {
                flow__err(err, errsize, "%s.%.32s must be a role with a count from 0 to 100",
                          pools[p], key);
                return FLOW_EINVAL;
            }
            (p == 0 ? c->pool_min : c->pool_max)[r] = (int)json_integer_value(val);
        }
    }
    for (int r = 0; r < FLOW_ROLES; r++) {
        if (c->pool_min[r] > c->pool_max[r]) {
            flow__err(err, errsize, "pool_min.%s exceeds pool_max", flow_role_name(r));
            return FLOW_EINVAL;
        }
    }
    const json_t *b = json_object_get(j, "retry_on_error");
    if (b) {
        if (!json_is_boolean(b)) {
            flow__err(err, errsize, "retry_on_error must be a boolean");
            return FLOW_EINVAL;
        }
        c->retry_on_error = json_is_true(b);
    }
    const json_t *lb = json_object_get(j, "lb");
    if (lb) {
        int s = json_is_string(lb) ? flow_lb_parse(json_string_value(lb)) : -1;
        if (s < 0) {
            flow__err(err, errsize, "lb must be round_robin, least_conn or weighted");
            return FLOW_EINVAL;
        }
        c->lb = (flow_lb_strategy)s;
    }
    const json_t *w = json_object_get(j, "weights");
    if (w) {
        if (!json_is_array(w) || json_array_size(w) != 3) {
            flow__err(err, errsize, "weights must be [high, normal, low]");
            return FLOW_EINVAL;
        }
        for (int i = 0; i < 3; i++) {
            const json_t *x = json_array_get(w, (size_t)i);
            if (!json_is_integer(x) || json_integer_value(x) < 1 ||
                json_integer_value(x) > 1000000) {
                flow__err(err, errsize, "weights must be integers from 1 to 1000000");
                return FLOW_EINVAL;
            }
            c->weights[i] = (int)json_integer_value(x);
        }
    }
    const json_t *ex = json_object_get(j, "executor");
    if (ex) {
        if (!json_is_object(ex) || !flow__size_ok(ex)) {
            flow__err(err, errsize, "executor must be an object");
            return FLOW_EINVAL;
        }
        json_decref(c->executor);
        c->executor = json_deep_copy(ex);
    }
    return 0;
}

json_t *flow_swarm_config_to_json(const flow_swarm_config *c)
{
    json_t *pmin = json_object(), *pmax = json_object();
    for (int r = 0; r < FLOW_ROLES; r++) {
        json_object_set_new(pmin, flow_role_name(r), json_integer(c->pool_min[r]));
        json_object_set_new(pmax, flow_role_name(r), json_integer(c->pool_max[r]));
    }
    json_t *o = json_pack(
        "{s:i, s:o, s:o, s:i, s:i, s:b, s:s, s:i, s:I, s:I, s:i, s:[i,i,i]}", "max_agents",
        c->max_agents, "pool_min", pmin, "pool_max", pmax, "queue_limit", c->queue_limit,
        "max_retries", c->max_retries, "retry_on_error", c->retry_on_error, "lb",
        flow_lb_name(c->lb), "cb_threshold", c->cb_threshold, "cb_timeout_ms",
        (json_int_t)c->cb_timeout_ms, "idle_timeout_ms", (json_int_t)c->idle_timeout_ms,
        "mesh_prefetch", c->mesh_prefetch, "weights", c->weights[0], c->weights[1], c->weights[2]);
    if (o && c->executor) {
        json_object_set_new(o, "executor", json_deep_copy(c->executor));
    }
    return o;
}

/* ---- commands ---------------------------------------------------------------------------- */

void flow_cmd_init(flow_cmd *c, flow_cmd_type type, uint64_t now)
{
    memset(c, 0, sizeof *c);
    c->type = type;
    c->now = now;
    c->role = FLOW_ROLE_NONE;
    c->prio = FLOW_PRIO_NORMAL;
    c->weight = 1;
    c->capacity = 1;
    c->max_retries = -1;
    flow_swarm_config_defaults(&c->config);
}

void flow_cmd_clear(flow_cmd *c)
{
    flow_swarm_config_clear(&c->config);
    json_decref(c->executor);
    json_decref(c->input);
    json_decref(c->result);
    free(c->deps);
    c->executor = c->input = c->result = NULL;
    c->deps = NULL;
    c->ndeps = 0;
}

json_t *flow_cmd_to_json(const flow_cmd *c)
{
    json_t *o = json_pack("{s:s, s:I}", "cmd", flow_cmd_name(c->type), "now", (json_int_t)c->now);
    if (o == NULL) {
        return NULL;
    }
    if (c->swarm[0]) {
        json_object_set_new(o, "swarm", json_string(c->swarm));
    }
    if (c->agent[0]) {
        json_object_set_new(o, "agent", json_string(c->agent));
    }
    if (c->task[0]) {
        json_object_set_new(o, "task", json_string(c->task));
    }
    if (c->node[0]) {
        json_object_set_new(o, "node", json_string(c->node));
    }
    if (c->token) {
        json_object_set_new(o, "token", json_integer((json_int_t)c->token));
    }
    switch (c->type) {
    case FLOW_CMD_SWARM_CREATE:
        json_object_set_new(o, "topology", json_string(flow_topology_name(c->topology)));
        json_object_set_new(o, "config", flow_swarm_config_to_json(&c->config));
        break;
    case FLOW_CMD_SWARM_SCALE:
        json_object_set_new(o, "role", json_string(flow_role_name(c->role)));
        json_object_set_new(o, "count", json_integer(c->count));
        break;
    case FLOW_CMD_AGENT_ADD:
        json_object_set_new(o, "role", json_string(flow_role_name(c->role)));
        json_object_set_new(o, "weight", json_integer(c->weight));
        json_object_set_new(o, "capacity", json_integer(c->capacity));
        json_object_set_new(o, "pool", json_boolean(c->pool));
        if (c->executor) {
            json_object_set_new(o, "executor", json_deep_copy(c->executor));
        }
        break;
    case FLOW_CMD_AGENT_SPAWN_FAILED:
        json_object_set_new(o, "role", json_string(flow_role_name(c->role)));
        json_object_set_new(o, "text", json_string(c->text));
        break;
    case FLOW_CMD_TASK_SUBMIT: {
        json_t *deps = json_array();
        for (size_t i = 0; i < c->ndeps; i++) {
            json_array_append_new(deps, json_string(c->deps[i]));
        }
        json_object_set_new(o, "priority", json_string(flow_prio_name(c->prio)));
        json_object_set_new(o, "role", json_string(flow_role_name(c->role)));
        json_object_set_new(o, "input", c->input ? json_deep_copy(c->input) : json_null());
        json_object_set_new(o, "dependencies", deps);
        json_object_set_new(o, "deadline", json_integer((json_int_t)c->deadline));
        json_object_set_new(o, "max_retries", json_integer(c->max_retries));
        json_object_set_new(o, "trace_id", json_string(c->trace_id));
        break;
    }
    case FLOW_CMD_TASK_COMPLETE:
        json_object_set_new(o, "result", c->result ? json_deep_copy(c->result) : json_null());
        break;
    case FLOW_CMD_TASK_FAIL:
    case FLOW_CMD_AGENT_CRASHED: json_object_set_new(o, "text", json_string(c->text)); break;
    default: break;
    }
    return o;
}

static int flow__get_text(const json_t *o, const char *key, char *out, size_t cap, char *err,
                          size_t errsize)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL) {
        out[0] = '\0';
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap) {
        flow__err(err, errsize, "%s must be a string shorter than %zu bytes", key, cap);
        return FLOW_EINVAL;
    }
    snprintf(out, cap, "%s", json_string_value(v));
    return 0;
}

static int flow__get_role(const json_t *o, const char *key, bool allow_none, int *out, char *err,
                          size_t errsize)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL) {
        *out = FLOW_ROLE_NONE;
        return allow_none ? 0 : (flow__err(err, errsize, "%s is required", key), FLOW_EINVAL);
    }
    int r = json_is_string(v) ? flow_role_parse(json_string_value(v)) : FLOW_ROLE_NONE - 1;
    if (r < FLOW_ROLE_NONE || (!allow_none && r == FLOW_ROLE_NONE)) {
        flow__err(err, errsize, "%s must be worker, specialist or scout", key);
        return FLOW_EINVAL;
    }
    *out = r;
    return 0;
}

static int flow__cmd_fields(flow_cmd *c, const json_t *j, char *err, size_t errsize)
{
    long long v;
    int rc;
    bool need_swarm = false, need_agent = false, need_task = false;
    switch (c->type) {
    case FLOW_CMD_SWARM_CREATE:
    case FLOW_CMD_SWARM_DESTROY:
    case FLOW_CMD_SWARM_SCALE:
    case FLOW_CMD_AGENT_SPAWN_FAILED: need_swarm = true; break;
    case FLOW_CMD_AGENT_ADD: need_swarm = need_agent = true; break;
    case FLOW_CMD_AGENT_DRAIN:
    case FLOW_CMD_AGENT_REMOVE:
    case FLOW_CMD_AGENT_CRASHED: need_agent = true; break;
    case FLOW_CMD_TASK_SUBMIT: need_swarm = need_task = true; break;
    case FLOW_CMD_TASK_CANCEL: need_task = true; break;
    case FLOW_CMD_TASK_ASSIGN:
    case FLOW_CMD_TASK_START:
    case FLOW_CMD_TASK_COMPLETE:
    case FLOW_CMD_TASK_FAIL: need_agent = need_task = true; break;
    case FLOW_CMD_TICK: break;
    case FLOW_CMD_SWARM_LEASE: need_swarm = true; break;
    }
    if (json_object_get(j, "token")) {
        const json_t *tk = json_object_get(j, "token");
        if (!json_is_integer(tk) || json_integer_value(tk) < 0) {
            flow__err(err, errsize, "token must be a non-negative integer");
            return FLOW_EINVAL;
        }
        c->token = (uint64_t)json_integer_value(tk);
    }
    if (c->type == FLOW_CMD_SWARM_LEASE) {
        if ((rc = flow__get_id(j, "node", true, c->node, err, errsize)) < 0) {
            return rc;
        }
        if (c->token == 0) {
            flow__err(err, errsize, "swarm_lease needs a token >= 1");
            return FLOW_EINVAL;
        }
    }
    if ((rc = flow__get_id(j, "swarm", need_swarm, c->swarm, err, errsize)) < 0 ||
        (rc = flow__get_id(j, "agent", need_agent, c->agent, err, errsize)) < 0 ||
        (rc = flow__get_id(j, "task", need_task, c->task, err, errsize)) < 0) {
        return rc;
    }
    switch (c->type) {
    case FLOW_CMD_SWARM_CREATE: {
        const json_t *t = json_object_get(j, "topology");
        int topo = json_is_string(t) ? flow_topology_parse(json_string_value(t)) : -1;
        if (topo < 0) {
            flow__err(err, errsize, "topology must be star, hierarchical, ring or mesh");
            return FLOW_EINVAL;
        }
        c->topology = (flow_topology)topo;
        return flow_swarm_config_from_json(&c->config, json_object_get(j, "config"), err, errsize);
    }
    case FLOW_CMD_SWARM_SCALE:
        if ((rc = flow__get_role(j, "role", false, &c->role, err, errsize)) < 0) {
            return rc;
        }
        if ((rc = flow__get_int(j, "count", 0, 100, &v, err, errsize)) != 0) {
            return rc < 0 ? rc : (flow__err(err, errsize, "count is required"), FLOW_EINVAL);
        }
        c->count = (int)v;
        return 0;
    case FLOW_CMD_AGENT_ADD: {
        if ((rc = flow__get_role(j, "role", false, &c->role, err, errsize)) < 0) {
            return rc;
        }
        if ((rc = flow__get_int(j, "weight", 1, 1000000, &v, err, errsize)) < 0) {
            return rc;
        }
        c->weight = rc == 0 ? (int)v : 1;
        if ((rc = flow__get_int(j, "capacity", 1, FLOW_MAX_CAPACITY, &v, err, errsize)) < 0) {
            return rc;
        }
        c->capacity = rc == 0 ? (int)v : 1;
        c->pool = json_is_true(json_object_get(j, "pool"));
        const json_t *ex = json_object_get(j, "executor");
        if (ex && (!json_is_object(ex) || !flow__size_ok(ex))) {
            flow__err(err, errsize, "executor must be an object");
            return FLOW_EINVAL;
        }
        c->executor = ex ? json_deep_copy(ex) : NULL;
        return 0;
    }
    case FLOW_CMD_AGENT_SPAWN_FAILED:
        if ((rc = flow__get_role(j, "role", false, &c->role, err, errsize)) < 0) {
            return rc;
        }
        return flow__get_text(j, "text", c->text, sizeof c->text, err, errsize);
    case FLOW_CMD_TASK_FAIL:
    case FLOW_CMD_AGENT_CRASHED:
        return flow__get_text(j, "text", c->text, sizeof c->text, err, errsize);
    case FLOW_CMD_TASK_COMPLETE: {
        const json_t *r = json_object_get(j, "result");
        if (r && !flow__size_ok(r)) {
            flow__err(err, errsize, "result is larger than %d bytes", FLOW_MAX_INPUT);
            return FLOW_EINVAL;
        }
        c->result = r ? json_deep_copy(r) : NULL;
        return 0;
    }
    case FLOW_CMD_TASK_SUBMIT: {
        const json_t *p = json_object_get(j, "priority");
        c->prio = p == NULL ? FLOW_PRIO_NORMAL
                            : (json_is_string(p) ? flow_prio_parse(json_string_value(p)) : -1);
        if (c->prio < 0) {
            flow__err(err, errsize, "priority must be high, normal or low");
            return FLOW_EINVAL;
        }
        if ((rc = flow__get_role(j, "role", true, &c->role, err, errsize)) < 0) {
            return rc;
        }
        const json_t *in = json_object_get(j, "input");
        if (in == NULL || !flow__size_ok(in)) {
            flow__err(err, errsize, "input is required and at most %d bytes", FLOW_MAX_INPUT);
            return FLOW_EINVAL;
        }
        c->input = json_deep_copy(in);
        const json_t *deps = json_object_get(j, "dependencies");
        if (deps) {
            if (!json_is_array(deps) || json_array_size(deps) > FLOW_MAX_DEPS) {
                flow__err(err, errsize, "dependencies must be an array of at most %d ids",
                          FLOW_MAX_DEPS);
                return FLOW_EINVAL;
            }
            size_t n = json_array_size(deps);
            c->deps = n ? calloc(n, sizeof *c->deps) : NULL;
            if (n && c->deps == NULL) {
                return FLOW_ENOMEM;
            }
            for (size_t i = 0; i < n; i++) {
                const json_t *d = json_array_get(deps, i);
                if (!json_is_string(d) || !flow_id_valid(json_string_value(d))) {
                    flow__err(err, errsize, "dependencies[%zu] is not a task id", i);
                    return FLOW_EINVAL;
                }
                snprintf(c->deps[i], FLOW_ID_MAX, "%s", json_string_value(d));
                c->ndeps = i + 1;
            }
        }
        if ((rc = flow__get_int(j, "deadline", 0, INT64_MAX, &v, err, errsize)) < 0) {
            return rc;
        }
        c->deadline = rc == 0 ? (uint64_t)v : 0;
        if ((rc = flow__get_int(j, "max_retries", -1, 100, &v, err, errsize)) < 0) {
            return rc;
        }
        c->max_retries = rc == 0 ? (int)v : -1;
        return flow__get_text(j, "trace_id", c->trace_id, sizeof c->trace_id, err, errsize);
    }
    default: return 0;
    }
}

int flow_cmd_from_json(flow_cmd *c, const json_t *j, char *err, size_t errsize)
{
    const json_t *name = json_object_get(j, "cmd");
    int type = -1;
    for (int t = FLOW_CMD_SWARM_CREATE; t <= FLOW_CMD_LAST && json_is_string(name); t++) {
        if (strcmp(flow__cmd_names[t], json_string_value(name)) == 0) {
            type = t;
        }
    }
    if (!json_is_object(j) || type < 0) {
        flow__err(err, errsize, "not a flow command (unknown \"cmd\")");
        return FLOW_EINVAL;
    }
    const json_t *now = json_object_get(j, "now");
    if (!json_is_integer(now) || json_integer_value(now) < 0) {
        flow__err(err, errsize, "now must be a non-negative integer");
        return FLOW_EINVAL;
    }
    flow_cmd_init(c, (flow_cmd_type)type, (uint64_t)json_integer_value(now));
    int rc = flow__cmd_fields(c, j, err, errsize);
    if (rc != 0) {
        flow_cmd_clear(c);
    }
    return rc;
}

json_t *flow_event_to_json(const flow_event *e)
{
    json_t *o = json_pack("{s:s, s:I}", "event", flow_event_name(e->type), "at", (json_int_t)e->at);
    if (o == NULL) {
        return NULL;
    }
    if (e->swarm[0]) {
        json_object_set_new(o, "swarm", json_string(e->swarm));
    }
    if (e->agent[0]) {
        json_object_set_new(o, "agent", json_string(e->agent));
    }
    if (e->task[0]) {
        json_object_set_new(o, "task", json_string(e->task));
    }
    if (e->role >= 0) {
        json_object_set_new(o, "role", json_string(flow_role_name(e->role)));
    }
    if (e->count) {
        json_object_set_new(o, "count", json_integer(e->count));
    }
    if (e->text[0]) {
        json_object_set_new(o, "text", json_string(e->text));
    }
    if (e->data) {
        json_object_set_new(o, "data", json_deep_copy(e->data));
    }
    return o;
}

/* ---- views -------------------------------------------------------------------------------- */

static json_t *flow__ids(char (*ids)[FLOW_ID_MAX], size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(ids[i]));
    }
    return a;
}

/* full = everything a snapshot needs; otherwise the API's view. */
static json_t *flow__task_json(const flow_task *t, bool full)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:O, s:o, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:s}", "id", t->id,
        "swarm", t->swarm, "state", flow_task_state_name(t->state), "priority",
        flow_prio_name(t->prio), "role", flow_role_name(t->role), "input", t->input, "dependencies",
        flow__ids(t->deps, t->ndeps), "retries", t->retries, "max_retries", t->max_retries,
        "deadline", (json_int_t)t->deadline, "created", (json_int_t)t->t_created, "assigned",
        (json_int_t)t->t_assigned, "started", (json_int_t)t->t_started, "finished",
        (json_int_t)t->t_finished, "trace_id", t->trace_id);
    if (o == NULL) {
        return NULL;
    }
    if (t->agent[0]) {
        json_object_set_new(o, "agent", json_string(t->agent));
    }
    if (t->result) {
        json_object_set(o, "result", t->result);
    }
    if (t->error[0]) {
        json_object_set_new(o, "error", json_string(t->error));
    }
    json_object_set_new(o, "reasons", t->reasons ? json_deep_copy(t->reasons) : json_array());
    if (t->stages) {
        json_object_set_new(o, "stage", json_integer(t->stage));
        json_object_set_new(o, "stages", json_integer(t->stages));
    }
    if (full) {
        json_object_set_new(o, "seq", json_integer((json_int_t)t->seq));
        if (t->fin) {
            json_object_set_new(o, "fin", json_integer((json_int_t)t->fin));
        }
        json_object_set_new(o, "team", json_integer(t->team));
        json_object_set_new(o, "ran", json_boolean(t->ran));
        json_object_set_new(o, "deps_waiting", json_integer((json_int_t)t->deps_waiting));
        json_object_set_new(o, "dependents", flow__ids(t->dependents, t->ndependents));
        if (t->stage_input) {
            json_object_set(o, "stage_input", t->stage_input);
        }
        json_object_set_new(o, "stage", json_integer(t->stage));
        json_object_set_new(o, "stages", json_integer(t->stages));
    }
    return o;
}

static json_t *flow__agent_json(const flow_agent *a, bool full)
{
    json_t *held = json_array();
    for (int i = 0; i < a->nheld; i++) {
        json_array_append_new(held, json_string(a->held[i]->id));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:o, s:I, s:I}", "id", a->id, "swarm",
                          a->swarm, "role", flow_role_name(a->role), "state",
                          flow_agent_state_name(flow_agent_get_state(a)), "weight", a->weight,
                          "capacity", a->capacity, "tasks", held, "completed",
                          (json_int_t)a->completed, "failed", (json_int_t)a->failed);
    if (o == NULL) {
        return NULL;
    }
    json_object_set_new(o, "executor", a->executor ? json_deep_copy(a->executor) : json_null());
    if (full) {
        json_object_set_new(o, "seq", json_integer((json_int_t)a->seq));
        json_object_set_new(o, "idle_since", json_integer((json_int_t)a->idle_since));
        json_object_set_new(o, "ready_seq", json_integer((json_int_t)a->ready_seq));
        json_object_set_new(o, "wrr_cur", json_integer(a->wrr_cur));
        json_object_set_new(o, "draining", json_boolean(a->draining));
    }
    return o;
}

static const flow_agent *flow__team_lead(const flow_swarm *sw, int team)
{
    for (size_t i = 0; i < sw->nagents; i++) {
        if (sw->agents[i]->role == team && !sw->agents[i]->draining) {
            return sw->agents[i];
        }
    }
    return NULL;
}

static void flow__swarm_stats(const flow_swarm *sw, flow_swarm_stats *st)
{
    memset(st, 0, sizeof *st);
    st->id = sw->id;
    st->topology = sw->topology;
    memcpy(st->tasks, sw->count, sizeof st->tasks);
    memcpy(st->ended_total, sw->ended_total, sizeof st->ended_total);
    for (int q = 0; q < 4; q++) {
        for (int p = 0; p < 3; p++) {
            st->queued[p] += sw->queue[q].count[p];
        }
    }
    for (size_t i = 0; i < sw->nagents; i++) {
        st->agents[flow_agent_get_state(sw->agents[i])]++;
    }
    st->breaker = sw->cb.state;
}

void flow_state_each_swarm(const flow_state *s, void (*fn)(const flow_swarm_stats *st, void *user),
                           void *user)
{
    for (const flow_swarm *sw = s->swarm_head; sw; sw = sw->next) {
        flow_swarm_stats st;
        flow__swarm_stats(sw, &st);
        fn(&st, user);
    }
}

static json_t *flow__swarm_json(const flow_swarm *sw, bool full)
{
    json_t *agents = json_array();
    for (size_t i = 0; i < sw->nagents; i++) {
        json_array_append_new(agents, full ? flow__agent_json(sw->agents[i], true)
                                           : json_string(sw->agents[i]->id));
    }
    json_t *tasks = json_object();
    for (int st = 0; st < 6; st++) {
        json_object_set_new(tasks, flow_task_state_name((flow_task_state)st),
                            json_integer((json_int_t)sw->count[st]));
    }
    flow_swarm_stats stats;
    flow__swarm_stats(sw, &stats);
    json_t *depth = json_object();
    for (int p = 0; p < 3; p++) {
        json_object_set_new(depth, flow_prio_name(p), json_integer((json_int_t)stats.queued[p]));
    }
    json_t *o =
        json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:{s:s, s:i}}", "id", sw->id, "topology",
                  flow_topology_name(sw->topology), "config", flow_swarm_config_to_json(&sw->cfg),
                  "agents", agents, "tasks", tasks, "queue", depth, "breaker", "state",
                  flow_breaker_state_name(sw->cb.state), "failures", sw->cb.failures);
    if (o == NULL) {
        return NULL;
    }
    if (sw->lease_token) {
        json_object_set_new(
            o, "lease",
            json_pack("{s:s, s:I}", "node", sw->lease_node, "token", (json_int_t)sw->lease_token));
    }
    if (sw->topology == FLOW_TOPO_HIERARCHICAL) {
        json_t *leads = json_object();
        for (int r = 0; r < FLOW_ROLES; r++) {
            const flow_agent *l = flow__team_lead(sw, r);
            json_object_set_new(leads, flow_role_name(r), l ? json_string(l->id) : json_null());
        }
        json_object_set_new(o, "team_leads", leads);
    }
    if (full) {
        json_t *b = json_object_get(o, "breaker");
        json_object_set_new(b, "opened_at", json_integer((json_int_t)sw->cb.opened_at));
        json_object_set_new(b, "trial_out", json_boolean(sw->cb.trial_out));
        json_t *lb = json_array(), *cur = json_array(), *ring = json_array();
        for (int q = 0; q < 4; q++) {
            json_array_append_new(lb, json_integer((json_int_t)sw->lb[q].last_seq));
            json_array_append_new(cur, json_pack("[I,I,I]", (json_int_t)sw->queue[q].cur[0],
                                                 (json_int_t)sw->queue[q].cur[1],
                                                 (json_int_t)sw->queue[q].cur[2]));
        }
        for (size_t i = 0; i < sw->nring; i++) {
            json_array_append_new(ring, json_string(sw->ring_wait[i]->id));
        }
        json_object_set_new(o, "seq", json_integer((json_int_t)sw->seq));
        json_object_set_new(o, "ended_total",
                            json_pack("[I,I,I]", (json_int_t)sw->ended_total[0],
                                      (json_int_t)sw->ended_total[1],
                                      (json_int_t)sw->ended_total[2]));
        json_object_set_new(o, "lb_last", lb);
        json_object_set_new(o, "wrr", cur);
        json_object_set_new(o, "ring_wait", ring);
        json_object_set_new(
            o, "spawning", json_pack("[i,i,i]", sw->spawning[0], sw->spawning[1], sw->spawning[2]));
    }
    return o;
}

json_t *flow_state_swarm_json(const flow_state *s, const char *swarm)
{
    const flow_swarm *sw = flow_hget(&s->swarms, swarm);
    return sw ? flow__swarm_json(sw, false) : NULL;
}

json_t *flow_state_swarm_list(const flow_state *s)
{
    json_t *a = json_array();
    for (const flow_swarm *sw = s->swarm_head; sw; sw = sw->next) {
        json_array_append_new(a, flow__swarm_json(sw, false));
    }
    return a;
}

json_t *flow_state_agent_json(const flow_state *s, const char *agent)
{
    const flow_agent *a = flow_hget(&s->agents, agent);
    return a ? flow__agent_json(a, false) : NULL;
}

json_t *flow_state_agent_list(const flow_state *s, const char *swarm, int role)
{
    json_t *arr = json_array();
    for (const flow_swarm *sw = s->swarm_head; sw; sw = sw->next) {
        if (swarm && strcmp(swarm, sw->id) != 0) {
            continue;
        }
        for (size_t i = 0; i < sw->nagents; i++) {
            if (role < 0 || sw->agents[i]->role == role) {
                json_array_append_new(arr, flow__agent_json(sw->agents[i], false));
            }
        }
    }
    return arr;
}

json_t *flow_state_task_json(const flow_state *s, const char *task)
{
    const flow_task *t = flow_hget(&s->tasks, task);
    return t ? flow__task_json(t, false) : NULL;
}

json_t *flow_state_task_list(const flow_state *s, const char *swarm, int state, size_t limit)
{
    json_t *arr = json_array();
    for (const flow_task *t = s->task_head; t; t = t->next) {
        if ((swarm && strcmp(swarm, t->swarm) != 0) || (state >= 0 && (int)t->state != state)) {
            continue;
        }
        if (limit && json_array_size(arr) >= limit) {
            break;
        }
        json_array_append_new(arr, flow__task_json(t, false));
    }
    return arr;
}

typedef struct flow_totals {
    size_t tasks[6], depth[3], agents[3], cb[3], nswarms;
} flow_totals;

static void flow__add_totals(const flow_swarm_stats *st, void *user)
{
    flow_totals *x = user;
    x->nswarms++;
    for (int i = 0; i < 6; i++) {
        x->tasks[i] += st->tasks[i];
    }
    for (int i = 0; i < 3; i++) {
        x->depth[i] += st->queued[i];
        x->agents[i] += st->agents[i];
    }
    x->cb[st->breaker]++;
}

json_t *flow_state_metrics(const flow_state *s)
{
    flow_totals x = {0};
    flow_state_each_swarm(s, flow__add_totals, &x);
    size_t *tasks = x.tasks, *depth = x.depth, *agents = x.agents, *cb = x.cb, nswarms = x.nswarms;
    json_t *o = json_object();
    json_t *t = json_object(), *d = json_object(), *a = json_object(), *b = json_object();
    for (int i = 0; i < 6; i++) {
        json_object_set_new(t, flow_task_state_name((flow_task_state)i),
                            json_integer((json_int_t)tasks[i]));
    }
    for (int i = 0; i < 3; i++) {
        json_object_set_new(d, flow_prio_name(i), json_integer((json_int_t)depth[i]));
        json_object_set_new(a, flow_agent_state_name((flow_agent_state)i),
                            json_integer((json_int_t)agents[i]));
        json_object_set_new(b, flow_breaker_state_name((flow_cb_state)i),
                            json_integer((json_int_t)cb[i]));
    }
    json_object_set_new(o, "swarms", json_integer((json_int_t)nswarms));
    json_object_set_new(o, "tasks", t);
    json_object_set_new(o, "queue_depth", d);
    json_object_set_new(o, "agents", a);
    json_object_set_new(o, "breakers", b);
    json_object_set_new(o, "applied", json_integer((json_int_t)s->applied));
    return o;
}

/* ---- snapshot ------------------------------------------------------------------------------ */

json_t *flow_state_snapshot(const flow_state *s)
{
    json_t *swarms = json_array(), *tasks = json_array();
    for (const flow_swarm *sw = s->swarm_head; sw; sw = sw->next) {
        json_array_append_new(swarms, flow__swarm_json(sw, true));
    }
    for (const flow_task *t = s->task_head; t; t = t->next) {
        json_array_append_new(tasks, flow__task_json(t, true));
    }
    return json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "version", 1, "now",
                     (json_int_t)s->now, "applied", (json_int_t)s->applied, "seq",
                     (json_int_t)s->seq, "fin_seq", (json_int_t)s->fin_seq, "task_retention",
                     (json_int_t)s->retention, "swarms", swarms, "tasks", tasks);
}

/* Reads a non-negative integer member (required). */
static bool flow__u64(const json_t *o, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static bool flow__i64(const json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

static int flow__restore_task(flow_state *s, const json_t *j, char *err, size_t errsize)
{
    flow_task *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return FLOW_ENOMEM;
    }
    int64_t v;
    char buf[FLOW_ID_MAX];
    const json_t *x;
#define FLOW_BAD(what)                                                                             \
    do {                                                                                           \
        flow__err(err, errsize, "snapshot task: bad %s", what);                                    \
        flow__task_free(t);                                                                        \
        return FLOW_EINVAL;                                                                        \
    } while (0)
    if (flow__get_id(j, "id", true, t->id, NULL, 0) != 0 ||
        flow__get_id(j, "swarm", true, t->swarm, NULL, 0) != 0 ||
        flow__get_id(j, "agent", false, t->agent, NULL, 0) != 0) {
        FLOW_BAD("ids");
    }
    if (flow_hget(&s->tasks, t->id)) {
        FLOW_BAD("duplicate id");
    }
    flow_swarm *sw = flow_hget(&s->swarms, t->swarm);
    x = json_object_get(j, "state");
    int st = json_is_string(x) ? flow_task_state_parse(json_string_value(x)) : -1;
    x = json_object_get(j, "priority");
    t->prio = json_is_string(x) ? flow_prio_parse(json_string_value(x)) : -1;
    x = json_object_get(j, "role");
    t->role = json_is_string(x) ? flow_role_parse(json_string_value(x)) : -2;
    if (sw == NULL || st < 0 || t->prio < 0 || t->role < FLOW_ROLE_NONE) {
        FLOW_BAD("swarm, state, priority or role");
    }
    t->state = (flow_task_state)st;
    x = json_object_get(j, "input");
    if (x == NULL) {
        FLOW_BAD("input");
    }
    t->input = json_deep_copy(x);
    if ((x = json_object_get(j, "result"))) {
        t->result = json_deep_copy(x);
    }
    if ((x = json_object_get(j, "stage_input"))) {
        t->stage_input = json_deep_copy(x);
    }
    x = json_object_get(j, "reasons");
    if (!json_is_array(x) || json_array_size(x) > FLOW_MAX_REASONS) {
        FLOW_BAD("reasons");
    }
    t->reasons = json_array_size(x) ? json_deep_copy(x) : NULL;
    const json_t *deps = json_object_get(j, "dependencies");
    const json_t *dts = json_object_get(j, "dependents");
    if (!json_is_array(deps) || json_array_size(deps) > FLOW_MAX_DEPS || !json_is_array(dts) ||
        json_array_size(dts) > 1000000) {
        FLOW_BAD("dependencies");
    }
    t->ndeps = json_array_size(deps);
    t->deps = t->ndeps ? calloc(t->ndeps, sizeof *t->deps) : NULL;
    for (size_t i = 0; i < t->ndeps; i++) {
        x = json_array_get(deps, i);
        if (t->deps == NULL || !json_is_string(x) || !flow_id_valid(json_string_value(x))) {
            FLOW_BAD("dependency");
        }
        snprintf(t->deps[i], FLOW_ID_MAX, "%s", json_string_value(x));
    }
    for (size_t i = 0; i < json_array_size(dts); i++) {
        x = json_array_get(dts, i);
        if (!json_is_string(x) || !flow_id_valid(json_string_value(x))) {
            FLOW_BAD("dependent");
        }
        snprintf(buf, sizeof buf, "%s", json_string_value(x));
        if (flow__task_add_dependent(t, buf) != 0) {
            FLOW_BAD("dependent");
        }
    }
    uint64_t u;
    if (!flow__i64(j, "retries", 0, 1000, &v)) {
        FLOW_BAD("retries");
    }
    t->retries = (int)v;
    if (!flow__i64(j, "max_retries", 0, 100, &v)) {
        FLOW_BAD("max_retries");
    }
    t->max_retries = (int)v;
    if (!flow__u64(j, "deadline", &t->deadline) || !flow__u64(j, "created", &t->t_created) ||
        !flow__u64(j, "assigned", &t->t_assigned) || !flow__u64(j, "started", &t->t_started) ||
        !flow__u64(j, "finished", &t->t_finished) || !flow__u64(j, "seq", &t->seq) ||
        !flow__u64(j, "deps_waiting", &u) || u > t->ndeps) {
        FLOW_BAD("times");
    }
    /* finish order: ended tasks only (optional in snapshots from before retention: then their
     * order is rebuilt from seq) */
    if (json_object_get(j, "fin") != NULL &&
        (!flow__u64(j, "fin", &t->fin) || t->fin == 0 ||
         !(st == FLOW_TASK_COMPLETED || st == FLOW_TASK_FAILED || st == FLOW_TASK_CANCELLED))) {
        FLOW_BAD("fin");
    }
    t->deps_waiting = (size_t)u;
    if (!flow__i64(j, "team", -1, 2, &v)) {
        FLOW_BAD("team");
    }
    t->team = (int)v;
    if (!flow__i64(j, "stage", 0, 1024, &v)) {
        FLOW_BAD("stage");
    }
    t->stage = (int)v;
    if (!flow__i64(j, "stages", 0, 1024, &v)) {
        FLOW_BAD("stages");
    }
    t->stages = (int)v;
    t->ran = json_is_true(json_object_get(j, "ran"));
    if (flow__get_text(j, "trace_id", t->trace_id, sizeof t->trace_id, NULL, 0) != 0 ||
        flow__get_text(j, "error", t->error, sizeof t->error, NULL, 0) != 0) {
        FLOW_BAD("text");
    }
    bool held = st == FLOW_TASK_ASSIGNED || st == FLOW_TASK_RUNNING;
    if (held != (t->agent[0] != '\0')) {
        FLOW_BAD("holder");
    }
#undef FLOW_BAD
    flow__task_link(s, t);
    sw->count[t->state]++;
    /* pending tasks go back into their queue in seq order (the task list is in seq order);
     * ring waiters are restored from the swarm's list */
    if (t->state == FLOW_TASK_PENDING && t->deps_waiting == 0 &&
        !(sw->topology == FLOW_TOPO_RING && t->stage > 0)) {
        flow__queue_task(sw, t);
    }
    return 0;
}

static int flow__restore_swarm(flow_state *s, const json_t *j, char *err, size_t errsize)
{
    char id[FLOW_ID_MAX];
    if (flow__get_id(j, "id", true, id, NULL, 0) != 0 || flow_hget(&s->swarms, id)) {
        flow__err(err, errsize, "snapshot swarm: bad id");
        return FLOW_EINVAL;
    }
    const json_t *x = json_object_get(j, "topology");
    int topo = json_is_string(x) ? flow_topology_parse(json_string_value(x)) : -1;
    flow_swarm_config cfg;
    flow_swarm_config_defaults(&cfg);
    if (topo < 0 ||
        flow_swarm_config_from_json(&cfg, json_object_get(j, "config"), err, errsize) != 0) {
        flow_swarm_config_clear(&cfg);
        flow__err(err, errsize, "snapshot swarm %s: bad topology or config", id);
        return FLOW_EINVAL;
    }
    flow_swarm *sw = flow__swarm_new(id, (flow_topology)topo, &cfg);
    flow_swarm_config_clear(&cfg);
    if (sw == NULL) {
        return FLOW_ENOMEM;
    }
    flow__swarm_link(s, sw);
    const json_t *lease = json_object_get(j, "lease");
    if (lease && (!flow__u64(lease, "token", &sw->lease_token) || sw->lease_token == 0 ||
                  flow__get_id(lease, "node", true, sw->lease_node, NULL, 0) != 0)) {
        flow__err(err, errsize, "snapshot swarm %s: bad lease", id);
        return FLOW_EINVAL;
    }
    const json_t *b = json_object_get(j, "breaker");
    x = json_object_get(b, "state");
    int cbs = json_is_string(x) ? flow_breaker_state_parse(json_string_value(x)) : -1;
    int64_t v;
    const json_t *lb = json_object_get(j, "lb_last"), *wrr = json_object_get(j, "wrr");
    const json_t *spawning = json_object_get(j, "spawning");
    if (cbs < 0 || !flow__i64(b, "failures", 0, 1000000, &v) ||
        !flow__u64(b, "opened_at", &sw->cb.opened_at) || !flow__u64(j, "seq", &sw->seq) ||
        !json_is_array(lb) || json_array_size(lb) != 4 || !json_is_array(wrr) ||
        json_array_size(wrr) != 4 || !json_is_array(spawning) || json_array_size(spawning) != 3) {
        flow__err(err, errsize, "snapshot swarm %s: bad scheduler state", id);
        return FLOW_EINVAL;
    }
    sw->cb.state = (flow_cb_state)cbs;
    sw->cb.failures = (int)v;
    sw->cb.trial_out = json_is_true(json_object_get(b, "trial_out"));
    for (int q = 0; q < 4; q++) {
        const json_t *l = json_array_get(lb, (size_t)q), *c = json_array_get(wrr, (size_t)q);
        if (!json_is_integer(l) || !json_is_array(c) || json_array_size(c) != 3) {
            flow__err(err, errsize, "snapshot swarm %s: bad scheduler state", id);
            return FLOW_EINVAL;
        }
        sw->lb[q].last_seq = (uint64_t)json_integer_value(l);
        for (int p = 0; p < 3; p++) {
            sw->queue[q].cur[p] = json_integer_value(json_array_get(c, (size_t)p));
        }
    }
    for (int r = 0; r < 3; r++) {
        sw->spawning[r] = (int)json_integer_value(json_array_get(spawning, (size_t)r));
    }
    const json_t *ended = json_object_get(j, "ended_total");
    for (size_t k = 0; k < 3; k++) {
        const json_t *e = json_array_get(ended, k);
        if (!json_is_array(ended) || json_array_size(ended) != 3 || !json_is_integer(e) ||
            json_integer_value(e) < 0) {
            flow__err(err, errsize, "snapshot swarm %s: bad ended_total", id);
            return FLOW_EINVAL;
        }
        sw->ended_total[k] = (uint64_t)json_integer_value(e);
    }
    const json_t *agents = json_object_get(j, "agents");
    if (!json_is_array(agents) || json_array_size(agents) > 300) {
        flow__err(err, errsize, "snapshot swarm %s: bad agents", id);
        return FLOW_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(agents); i++) {
        const json_t *aj = json_array_get(agents, i);
        flow_agent *a = calloc(1, sizeof *a);
        if (a == NULL) {
            return FLOW_ENOMEM;
        }
        int64_t w = 0, cap = 0, cur = 0;
        x = json_object_get(aj, "role");
        a->role = json_is_string(x) ? flow_role_parse(json_string_value(x)) : -2;
        if (flow__get_id(aj, "id", true, a->id, NULL, 0) != 0 || flow_hget(&s->agents, a->id) ||
            a->role < 0 || !flow__i64(aj, "weight", 1, 1000000, &w) ||
            !flow__i64(aj, "capacity", 1, FLOW_MAX_CAPACITY, &cap) ||
            !flow__i64(aj, "wrr_cur", INT64_MIN, INT64_MAX, &cur) ||
            !flow__u64(aj, "seq", &a->seq) || !flow__u64(aj, "idle_since", &a->idle_since) ||
            !flow__u64(aj, "ready_seq", &a->ready_seq) ||
            !flow__u64(aj, "completed", &a->completed) || !flow__u64(aj, "failed", &a->failed) ||
            !json_is_array(json_object_get(aj, "tasks")) ||
            json_array_size(json_object_get(aj, "tasks")) > FLOW_HOLD_MAX) {
            free(a);
            flow__err(err, errsize, "snapshot swarm %s: bad agent %zu", id, i);
            return FLOW_EINVAL;
        }
        snprintf(a->swarm, sizeof a->swarm, "%s", id);
        a->weight = (int)w;
        a->capacity = (int)cap;
        a->wrr_cur = cur;
        a->draining = json_is_true(json_object_get(aj, "draining"));
        x = json_object_get(aj, "executor");
        a->executor = json_is_object(x) ? json_deep_copy(x) : NULL;
        if (flow__swarm_add_agent(sw, a) != 0) {
            flow__agent_free(a);
            return FLOW_ENOMEM;
        }
        flow__agent_link(s, a);
    }
    return 0;
}

/* Second pass, once tasks exist: agents' held lists and ring waiters. */
static int flow__restore_links(flow_state *s, const json_t *j, char *err, size_t errsize)
{
    flow_swarm *sw = flow_hget(&s->swarms, json_string_value(json_object_get(j, "id")));
    const json_t *agents = json_object_get(j, "agents");
    for (size_t i = 0; i < json_array_size(agents); i++) {
        const json_t *held = json_object_get(json_array_get(agents, i), "tasks");
        flow_agent *a = sw->agents[i];
        for (size_t h = 0; h < json_array_size(held); h++) {
            const json_t *x = json_array_get(held, h);
            flow_task *t = json_is_string(x) ? flow_hget(&s->tasks, json_string_value(x)) : NULL;
            if (t == NULL || strcmp(t->agent, a->id) != 0) {
                flow__err(err, errsize, "snapshot agent %s holds an unknown task", a->id);
                return FLOW_EINVAL;
            }
            a->held[a->nheld++] = t;
        }
    }
    const json_t *ring = json_object_get(j, "ring_wait");
    if (!json_is_array(ring)) {
        flow__err(err, errsize, "snapshot swarm %s: bad ring_wait", sw->id);
        return FLOW_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(ring); i++) {
        const json_t *x = json_array_get(ring, i);
        flow_task *t = json_is_string(x) ? flow_hget(&s->tasks, json_string_value(x)) : NULL;
        if (t == NULL || t->state != FLOW_TASK_PENDING || t->ring_wait) {
            flow__err(err, errsize, "snapshot swarm %s: bad ring waiter", sw->id);
            return FLOW_EINVAL;
        }
        flow__ring_push(sw, t);
    }
    return 0;
}

flow_state *flow_state_restore(const json_t *snap, char *err, size_t errsize)
{
    flow_state *s = flow_state_new();
    if (s == NULL) {
        return NULL;
    }
    const json_t *swarms = json_object_get(snap, "swarms"), *tasks = json_object_get(snap, "tasks");
    const json_t *ver = json_object_get(snap, "version");
    if (!json_is_object(snap) || !json_is_integer(ver) || json_integer_value(ver) != 1 ||
        !json_is_array(swarms) || !json_is_array(tasks) || !flow__u64(snap, "now", &s->now) ||
        !flow__u64(snap, "applied", &s->applied) || !flow__u64(snap, "seq", &s->seq)) {
        flow__err(err, errsize, "not a flow snapshot (version 1)");
        flow_state_free(s);
        return NULL;
    }
    /* retention fields are absent from snapshots made before retention existed */
    bool legacy = json_object_get(snap, "fin_seq") == NULL;
    if ((!legacy && !flow__u64(snap, "fin_seq", &s->fin_seq)) ||
        (json_object_get(snap, "task_retention") != NULL &&
         !flow__u64(snap, "task_retention", &s->retention))) {
        flow__err(err, errsize, "snapshot: bad fin_seq or task_retention");
        flow_state_free(s);
        return NULL;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(swarms); i++) {
        rc = flow__restore_swarm(s, json_array_get(swarms, i), err, errsize);
    }
    uint64_t last = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(tasks); i++) {
        rc = flow__restore_task(s, json_array_get(tasks, i), err, errsize);
        if (rc == 0) {
            if (s->task_tail->seq <= last) {
                flow__err(err, errsize, "snapshot tasks out of order");
                rc = FLOW_EINVAL;
            }
            last = s->task_tail->seq;
        }
    }
    for (size_t i = 0; rc == 0 && i < json_array_size(swarms); i++) {
        rc = flow__restore_links(s, json_array_get(swarms, i), err, errsize);
    }
    /* every held task must be held by its agent */
    for (const flow_task *t = s->task_head; rc == 0 && t; t = t->next) {
        const flow_agent *a = t->agent[0] ? flow_hget(&s->agents, t->agent) : NULL;
        bool found = false;
        for (int h = 0; a && h < a->nheld; h++) {
            found |= a->held[h] == t;
        }
        if (t->agent[0] && !found) {
            flow__err(err, errsize, "snapshot task %s: holder does not hold it", t->id);
            rc = FLOW_EINVAL;
        }
    }
    if (rc == 0 && legacy) { /* ended tasks in submission order */
        for (flow_task *t = s->task_head; t; t = t->next) {
            bool ended = t->state == FLOW_TASK_COMPLETED || t->state == FLOW_TASK_FAILED ||
                         t->state == FLOW_TASK_CANCELLED;
            if (ended && t->fin == 0) {
                t->fin = ++s->fin_seq;
            }
        }
    }
    if (rc == 0 && (rc = flow__fin_rebuild(s)) != 0) {
        flow__err(err, errsize, "snapshot: ended tasks without a consistent finish order");
    }
    if (rc != 0) {
        flow_state_free(s);
        return NULL;
    }
    /* the timers follow from the records */
    for (flow_task *t = s->task_head; t; t = t->next) {
        flow__timers_task(s, t);
    }
    for (flow_swarm *sw = s->swarm_head; sw; sw = sw->next) {
        flow__timers_breaker(s, sw);
        for (int r = 0; r < FLOW_ROLES; r++) {
            flow__timers_role(s, sw, r);
        }
    }
    return s;
}
