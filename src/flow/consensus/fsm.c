/* flow/consensus/fsm.c — the flow state machine as a libraft FSM (see fsm.h). */
#include "flow/consensus/fsm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct flow_fsm {
    struct raft_fsm raft; /* first: libraft hands this pointer back */
    flow_state *fs;
    uint64_t retention; /* this node's task_retention, kept across restores */
    json_t *members;    /* {"id": url} */
    json_t *gossip;     /* {"id": {"address": "host:port", "node": hex node id}} */
    uint64_t entries, refused;
    flow_fsm_hooks hooks;
};

static int flow_fsm__apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result);
static int flow_fsm__snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n);
static int flow_fsm__restore(struct raft_fsm *rf, struct raft_buffer *buf);

void flow_fsm_set_retention(flow_fsm *f, uint64_t n)
{
    f->retention = n;
    flow_state_set_retention(f->fs, n);
}

flow_fsm *flow_fsm_new(const flow_fsm_hooks *hooks)
{
    flow_fsm *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return NULL;
    }
    f->fs = flow_state_new();
    f->retention = FLOW_TASK_RETENTION_DEFAULT;
    f->members = json_object();
    f->gossip = json_object();
    if (f->fs == NULL || f->members == NULL || f->gossip == NULL) {
        flow_fsm_free(f);
        return NULL;
    }
    if (hooks) {
        f->hooks = *hooks;
    }
    f->raft.version = 1;
    f->raft.data = f;
    f->raft.apply = flow_fsm__apply;
    f->raft.snapshot = flow_fsm__snapshot;
    f->raft.restore = flow_fsm__restore;
    return f;
}

void flow_fsm_free(flow_fsm *f)
{
    if (f) {
        flow_state_free(f->fs);
        json_decref(f->members);
        json_decref(f->gossip);
        free(f);
    }
}

struct raft_fsm *flow_fsm_raft(flow_fsm *f)
{
    return &f->raft;
}

const flow_state *flow_fsm_state(const flow_fsm *f)
{
    return f->fs;
}

uint64_t flow_fsm_entries(const flow_fsm *f)
{
    return f->entries;
}

uint64_t flow_fsm_refused(const flow_fsm *f)
{
    return f->refused;
}

const char *flow_fsm_member_api(const flow_fsm *f, uint64_t id)
{
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, id);
    return json_string_value(json_object_get(f->members, key));
}

json_t *flow_fsm_members(const flow_fsm *f)
{
    return json_deep_copy(f->members);
}

const char *flow_fsm_member_gossip(const flow_fsm *f, uint64_t id, const char **node)
{
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, id);
    const json_t *g = json_object_get(f->gossip, key);
    if (node) {
        *node = json_string_value(json_object_get(g, "node"));
    }
    return json_string_value(json_object_get(g, "address"));
}

json_t *flow_fsm_gossip_members(const flow_fsm *f)
{
    return json_deep_copy(f->gossip);
}

/* A gossip endpoint: an address "host:port" shorter than FLOW_FSM_GOSSIP_MAX and a node id of
 * 64 lowercase hex digits. */
static bool flow_fsm__gossip_ok(const json_t *address, const json_t *node)
{
    const char *a = json_string_value(address), *n = json_string_value(node);
    if (a == NULL || n == NULL || a[0] == '\0' || strlen(a) >= FLOW_FSM_GOSSIP_MAX ||
        strchr(a, ':') == NULL || strlen(n) != 64) {
        return false;
    }
    return strspn(n, "0123456789abcdef") == 64;
}

/* ---- entries ------------------------------------------------------------------------------ */

static int flow_entry__buf(json_t *j, struct raft_buffer *out)
{
    out->base = NULL;
    out->len = 0;
    if (j == NULL) {
        return FLOW_ENOMEM;
    }
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL) {
        return FLOW_ENOMEM;
    }
    size_t len = strlen(text);
    if (len > FLOW_FSM_ENTRY_MAX) {
        free(text);
        return FLOW_EINVAL;
    }
    /* libraft's segment format (0.15) reads an entry back at its length but writes it padded
     * to 8 bytes: an entry whose length is not a multiple of 8 breaks the next batch on load.
     * JSON allows trailing white space, so pad with spaces. */
    size_t padded = (len + 7) & ~(size_t)7;
    out->base = raft_malloc(padded);
    if (out->base == NULL) {
        free(text);
        return FLOW_ENOMEM;
    }
    memcpy(out->base, text, len);
    memset((char *)out->base + len, ' ', padded - len);
    out->len = padded;
    free(text);
    return 0;
}

int flow_entry_cmd(const json_t *cmd, uint64_t origin, uint64_t cookie, struct raft_buffer *out)
{
    if (!json_is_object(cmd)) {
        out->base = NULL;
        out->len = 0;
        return FLOW_EINVAL;
    }
    return flow_entry__buf(json_pack("{s:s, s:O, s:I, s:I}", "t", "cmd", "cmd", cmd, "o",
                                     (json_int_t)origin, "c", (json_int_t)cookie),
                           out);
}

int flow_entry_member(uint64_t id, const char *api, const char *gossip, const char *node,
                      struct raft_buffer *out)
{
    out->base = NULL;
    out->len = 0;
    json_t *g = gossip ? json_string(gossip) : NULL, *n = node ? json_string(node) : NULL;
    bool has_gossip = gossip || node;
    bool ok = id != 0 && (api || has_gossip) && (api == NULL || strlen(api) < FLOW_FSM_API_MAX) &&
              (!has_gossip || flow_fsm__gossip_ok(g, n));
    if (!ok) {
        json_decref(g);
        json_decref(n);
        return FLOW_EINVAL;
    }
    return flow_entry__buf(json_pack("{s:s, s:I, s:s*, s:o*, s:o*}", "t", "member", "id",
                                     (json_int_t)id, "api", api, "gossip", g, "node", n),
                           out);
}

int flow_entry_forget(uint64_t id, struct raft_buffer *out)
{
    return flow_entry__buf(json_pack("{s:s, s:I}", "t", "forget", "id", (json_int_t)id), out);
}

static bool flow_entry__id(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

json_t *flow_entry_parse(const void *data, size_t len)
{
    if (data == NULL || len == 0 || len > FLOW_FSM_ENTRY_MAX) {
        return NULL;
    }
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    const char *t = json_string_value(json_object_get(j, "t"));
    bool ok = false;
    if (t && strcmp(t, "cmd") == 0) {
        ok = json_is_object(json_object_get(j, "cmd")) && flow_entry__id(j, "o") &&
             flow_entry__id(j, "c");
    } else if (t && strcmp(t, "member") == 0) {
        /* api and (gossip, node) are each optional, not both absent (entries written before
         * the gossip endpoint existed carry only api) */
        const json_t *api = json_object_get(j, "api");
        const json_t *g = json_object_get(j, "gossip"), *n = json_object_get(j, "node");
        ok = flow_entry__id(j, "id") && (api || g || n) &&
             (api == NULL ||
              (json_is_string(api) && strlen(json_string_value(api)) < FLOW_FSM_API_MAX)) &&
             ((g == NULL && n == NULL) || flow_fsm__gossip_ok(g, n));
    } else if (t && strcmp(t, "forget") == 0) {
        ok = flow_entry__id(j, "id");
    }
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- the FSM ------------------------------------------------------------------------------ */

static int flow_fsm__apply_entry(flow_fsm *f, const json_t *e)
{
    const char *t = json_string_value(json_object_get(e, "t"));
    char key[24];
    snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(e, "id")));
    if (strcmp(t, "member") == 0) {
        json_t *api = json_object_get(e, "api"), *g = json_object_get(e, "gossip");
        if (api) {
            json_object_set(f->members, key, api);
        }
        if (g) {
            json_object_set_new(
                f->gossip, key,
                json_pack("{s:O, s:O}", "address", g, "node", json_object_get(e, "node")));
        }
        return 0;
    }
    if (strcmp(t, "forget") == 0) {
        json_object_del(f->members, key);
        json_object_del(f->gossip, key);
        return 0;
    }
    flow_cmd c;
    int rc = flow_cmd_from_json(&c, json_object_get(e, "cmd"), NULL, 0);
    if (rc == 0) {
        rc = flow_state_apply(f->fs, &c, NULL, NULL, 0);
        flow_cmd_clear(&c);
    }
    return rc;
}

int flow_fsm_apply_entry(flow_fsm *f, const void *data, size_t len)
{
    json_t *e = flow_entry_parse(data, len);
    int rc = e ? flow_fsm__apply_entry(f, e) : FLOW_EINVAL;
    f->entries++;
    f->refused += rc != 0;
    if (f->hooks.applied) {
        /* libraft applies in log order; the entry count is the applied index only without a
         * snapshot, so the hook gets the count of entries seen by this replica */
        f->hooks.applied(f->hooks.user, f->entries, e, rc);
    }
    json_decref(e);
    return rc;
}

static int flow_fsm__apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    (void)flow_fsm_apply_entry(rf->data, buf->base, buf->len);
    *result = NULL;
    return 0; /* refusals are deterministic outcomes, not FSM failures */
}

static json_t *flow_fsm__snapshot_json(const flow_fsm *f)
{
    return json_pack("{s:i, s:o, s:O, s:O, s:I, s:I}", "v", 1, "state", flow_state_snapshot(f->fs),
                     "members", f->members, "gossip", f->gossip, "entries", (json_int_t)f->entries,
                     "refused", (json_int_t)f->refused);
}

char *flow_fsm_snapshot_text(const flow_fsm *f)
{
    json_t *j = flow_fsm__snapshot_json(f);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    return text;
}

static int flow_fsm__snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n)
{
    flow_fsm *f = rf->data;
    char *text = flow_fsm_snapshot_text(f);
    if (text == NULL) {
        return RAFT_NOMEM;
    }
    size_t len = strlen(text);
    *bufs = raft_malloc(sizeof **bufs);
    void *base = raft_malloc(len);
    if (*bufs == NULL || base == NULL) {
        raft_free(*bufs);
        raft_free(base);
        free(text);
        return RAFT_NOMEM;
    }
    memcpy(base, text, len);
    free(text);
    (*bufs)[0].base = base;
    (*bufs)[0].len = len;
    *n = 1;
    return 0;
}

int flow_fsm_restore_text(flow_fsm *f, const void *data, size_t len)
{
    if (len == 0 || len > FLOW_FSM_SNAPSHOT_MAX) {
        return FLOW_EINVAL;
    }
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    const json_t *members = json_object_get(j, "members");
    const json_t *gossip = json_object_get(j, "gossip"); /* optional (older snapshots) */
    const json_t *entries = json_object_get(j, "entries");
    const json_t *refused = json_object_get(j, "refused");
    bool ok = json_integer_value(json_object_get(j, "v")) == 1 && json_is_object(members) &&
              json_is_integer(entries) && json_is_integer(refused);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)members, key, v)
    {
        ok = ok && json_is_string(v) && strlen(json_string_value(v)) < FLOW_FSM_API_MAX;
    }
    ok = ok && (gossip == NULL || json_is_object(gossip));
    json_object_foreach((json_t *)gossip, key, v)
    {
        ok = ok && json_object_size(v) == 2 &&
             flow_fsm__gossip_ok(json_object_get(v, "address"), json_object_get(v, "node"));
    }
    flow_state *fs = ok ? flow_state_restore(json_object_get(j, "state"), NULL, 0) : NULL;
    if (fs == NULL) {
        json_decref(j);
        return FLOW_EINVAL;
    }
    flow_state_free(f->fs);
    f->fs = fs;
    flow_state_set_retention(f->fs, f->retention); /* this node's setting, as the registry */
    json_decref(f->members);
    f->members = json_deep_copy(members);
    json_decref(f->gossip);
    f->gossip = gossip ? json_deep_copy(gossip) : json_object();
    f->entries = (uint64_t)json_integer_value(entries);
    f->refused = (uint64_t)json_integer_value(refused);
    if (f->hooks.restored) {
        f->hooks.restored(f->hooks.user, j);
    }
    json_decref(j);
    return 0;
}

static int flow_fsm__restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    if (flow_fsm_restore_text(rf->data, buf->base, buf->len) != 0) {
        return RAFT_MALFORMED;
    }
    raft_free(buf->base);
    return 0;
}
