/* src/sup/tree_json.c — the live supervision tree as JSON (docs/runtime.md "Tree JSON"). */
#include <jansson.h>
#include <stdlib.h>

#include "internal.h"
#include "macula/sup_supervisor.h"

static json_t *node_json(sup_rt *rt, sup_pid pid, const sup_child_info *ci, int depth);

typedef struct walk {
    sup_rt *rt;
    json_t *arr;
    int depth;
} walk;

static void add_child(const sup_child_info *ci, void *user)
{
    walk *w = user;
    json_array_append_new(w->arr, node_json(w->rt, ci->pid, ci, w->depth + 1));
}

static const char *state_name(sup_child_state s)
{
    return s == SUP_CHILD_RUNNING      ? "running"
           : s == SUP_CHILD_RESTARTING ? "restarting"
                                       : "undefined";
}

static json_t *node_json(sup_rt *rt, sup_pid pid, const sup_child_info *ci, int depth)
{
    json_t *o = json_object();
    char buf[32];
    sup_actor_info ai;
    bool alive = !sup_pid_is_null(pid) && sup_actor_info_get(rt, pid, &ai) == 0;
    if (ci) {
        json_object_set_new(o, "id", json_string(ci->id));
        if (ci->instance > 0) {
            json_object_set_new(o, "instance", json_integer(ci->instance));
        }
        json_object_set_new(o, "restart", json_string(sup_restart_name(ci->restart)));
        json_object_set_new(o, "restarts", json_integer(ci->restarts));
        json_object_set_new(o, "state", json_string(state_name(ci->state)));
    } else {
        json_object_set_new(o, "id", json_string(alive ? ai.label : "?"));
    }
    json_object_set_new(o, "pid",
                        alive ? json_string(sup_pid_str(pid, buf, sizeof buf)) : json_null());
    if (alive) {
        json_object_set_new(o, "mailbox", json_integer((json_int_t)ai.mailbox_len));
        json_object_set_new(o, "memory", json_integer((json_int_t)ai.memory));
    }
    sup_sv_summary sum;
    if (alive && depth < 64 && sup_is_supervisor(rt, pid)) {
        json_object_set_new(o, "type", json_string("supervisor"));
        json_t *kids = json_array();
        walk w = {rt, kids, depth};
        sup_sv_inspect(rt, pid, &sum, add_child, &w);
        json_object_set_new(o, "name", json_string(sum.name));
        json_object_set_new(o, "strategy", json_string(sup_strategy_name(sum.strategy)));
        json_object_set_new(o, "intensity", json_integer(sum.intensity));
        json_object_set_new(o, "period", json_integer(sum.period_s));
        json_object_set_new(o, "supervisor_restarts", json_integer(sum.total_restarts));
        json_object_set_new(o, "children", kids);
    } else {
        json_object_set_new(
            o, "type", json_string(ci && ci->type == SUP_SUPERVISOR ? "supervisor" : "worker"));
    }
    return o;
}

char *sup_tree_json(sup_rt *rt, sup_pid root)
{
    if (!sup_is_alive(rt, root)) {
        return NULL;
    }
    json_t *o = node_json(rt, root, NULL, 0);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
