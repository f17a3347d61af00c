/* src/mesh/dht/dht_wire.c — dht_msg <-> wire frames (wire.h: FIND_NODE 0x40 ... STORE_ACK
 * 0x45 with request_id, sender_id, sender_address, ttl, publisher). A value is a msgpack bin
 * on the wire; FIND_VALUE_REPLY's value is an array of them (v0.8 sends a list). */
#include "mesh/dht/dht_internal.h"

#include <msgpuck.h>
#include <stdlib.h>
#include <string.h>

static int dht__id_from(wire_bytes b, dht_id *out)
{
    if (b.p == NULL || b.len != DHT_ID_LEN) {
        return DHT_EPROTO;
    }
    memcpy(out->b, b.p, DHT_ID_LEN);
    return 0;
}

static bool dht__contact_from(wire_bytes id, wire_bytes addr, dht_contact *out)
{
    if (dht__id_from(id, &out->id) != 0 || addr.p == NULL || addr.len == 0 ||
        addr.len > DHT_ADDR_MAX || memchr(addr.p, 0, addr.len) != NULL) {
        return false;
    }
    memcpy(out->addr, addr.p, addr.len);
    out->addr[addr.len] = 0;
    return true;
}

static void dht__contacts_from(const wire_node_list *l, dht_msg *out)
{
    wire_list_iter it = wire_node_list_iter(l);
    wire_node n;
    while (out->ncontacts < DHT_K_MAX && wire_node_list_next(&it, &n)) {
        if (dht__contact_from(n.node_id, n.address, &out->contacts[out->ncontacts])) {
            out->ncontacts++;
        }
    }
}

/* A value: one msgpack bin (or str). The raw bytes were validated by the wire decoder. */
static bool dht__value_from(const char **p, dht_value *out)
{
    enum mp_type t = mp_typeof(**p);
    if (t != MP_BIN && t != MP_STR) {
        mp_next(p);
        return false;
    }
    uint32_t len;
    out->p = (const uint8_t *)mp_decode_strbin(p, &len);
    out->len = len;
    return true;
}

int dht_msg_from_wire(const wire_msg *w, dht_msg *out)
{
    const wire_dht_hdr *h;
    memset(out, 0, sizeof *out);
    out->type = w->type;
    switch (w->type) {
    case WIRE_FIND_NODE: h = &w->find_node.hdr; break;
    case WIRE_FIND_NODE_REPLY: h = &w->find_node_reply.hdr; break;
    case WIRE_STORE: h = &w->store.hdr; break;
    case WIRE_FIND_VALUE: h = &w->find_value.hdr; break;
    case WIRE_FIND_VALUE_REPLY: h = &w->find_value_reply.hdr; break;
    case WIRE_STORE_ACK: h = &w->store_ack.hdr; break;
    default: return DHT_EPROTO;
    }
    bool reply = w->type == WIRE_FIND_NODE_REPLY || w->type == WIRE_FIND_VALUE_REPLY ||
                 w->type == WIRE_STORE_ACK;
    if (reply && !h->has_request_id) {
        return DHT_EPROTO; /* cannot be matched to a request */
    }
    out->request_id = h->has_request_id ? h->request_id : 0;
    out->has_sender = dht__contact_from(h->sender_id, h->sender_address, &out->sender);
    if (!out->has_sender) {
        memset(&out->sender, 0, sizeof out->sender);
    }
    int rv = 0;
    switch (w->type) {
    case WIRE_FIND_NODE: rv = dht__id_from(w->find_node.target, &out->key); break;
    case WIRE_FIND_VALUE: rv = dht__id_from(w->find_value.key, &out->key); break;
    case WIRE_FIND_NODE_REPLY: dht__contacts_from(&w->find_node_reply.nodes, out); break;
    case WIRE_STORE_ACK:
        rv = dht__id_from(w->store_ack.key, &out->key);
        out->stored = w->store_ack.stored;
        break;
    case WIRE_STORE: {
        rv = dht__id_from(w->store.key, &out->key);
        if (rv == 0 && w->store.publisher.p != NULL) {
            rv = dht__id_from(w->store.publisher, &out->publisher);
        }
        out->ttl_ms = w->store.has_ttl ? w->store.ttl_ms : 0;
        const char *p = (const char *)w->store.value.p;
        if (rv == 0 && (p == NULL || !dht__value_from(&p, &out->value))) {
            rv = DHT_EPROTO;
        }
        break;
    }
    case WIRE_FIND_VALUE_REPLY: {
        const wire_find_value_reply *r = &w->find_value_reply;
        if (r->result == WIRE_FV_NODES) {
            dht__contacts_from(&r->nodes, out);
            break;
        }
        out->has_values = true;
        const char *p = (const char *)r->value.p;
        if (p == NULL || mp_typeof(*p) != MP_ARRAY) {
            rv = DHT_EPROTO;
            break;
        }
        uint32_t n = mp_decode_array(&p);
        for (uint32_t i = 0; i < n && out->nvalues < DHT_VALUES_MAX; i++) {
            if (dht__value_from(&p, &out->values[out->nvalues])) {
                out->nvalues++;
            }
        }
        break;
    }
    default: rv = DHT_EPROTO; break;
    }
    if (rv != 0) {
        uint8_t type = out->type;
        memset(out, 0, sizeof *out);
        out->type = type;
    }
    return rv;
}

static wire_bytes dht__wb(const void *p, size_t len)
{
    wire_bytes b = {(const uint8_t *)p, len};
    return b;
}

int dht_msg_encode(const dht_msg *m, const dht_contact *sender, uint8_t **frame, size_t *len)
{
    if (m == NULL || frame == NULL || len == NULL || m->ncontacts > DHT_K_MAX ||
        m->nvalues > DHT_VALUES_MAX) {
        return DHT_EINVAL;
    }
    *frame = NULL;
    *len = 0;
    wire_msg w;
    memset(&w, 0, sizeof w);
    w.type = m->type;
    wire_dht_hdr h;
    memset(&h, 0, sizeof h);
    h.has_request_id = true;
    h.request_id = m->request_id;
    if (sender != NULL) {
        h.sender_id = dht__wb(sender->id.b, DHT_ID_LEN);
        h.sender_address = dht__wb(sender->addr, strnlen(sender->addr, DHT_ADDR_MAX));
    }
    wire_node nodes[DHT_K_MAX];
    for (uint32_t i = 0; i < m->ncontacts; i++) {
        nodes[i].node_id = dht__wb(m->contacts[i].id.b, DHT_ID_LEN);
        nodes[i].address = dht__wb(m->contacts[i].addr, strnlen(m->contacts[i].addr, DHT_ADDR_MAX));
        nodes[i].has_last_seen = false;
        nodes[i].last_seen = 0;
    }
    wire_node_list nl = {m->ncontacts, nodes, NULL};
    char *raw = NULL;
    size_t rawlen = 0;
    switch (m->type) {
    case WIRE_FIND_NODE:
        w.find_node.target = dht__wb(m->key.b, DHT_ID_LEN);
        w.find_node.hdr = h;
        break;
    case WIRE_FIND_VALUE:
        w.find_value.key = dht__wb(m->key.b, DHT_ID_LEN);
        w.find_value.hdr = h;
        break;
    case WIRE_FIND_NODE_REPLY:
        w.find_node_reply.nodes = nl;
        w.find_node_reply.hdr = h;
        break;
    case WIRE_STORE_ACK:
        w.store_ack.key = dht__wb(m->key.b, DHT_ID_LEN);
        w.store_ack.stored = m->stored;
        w.store_ack.hdr = h;
        break;
    case WIRE_STORE:
        if (m->value.p == NULL && m->value.len > 0) {
            return DHT_EINVAL;
        }
        rawlen = mp_sizeof_bin(m->value.len);
        raw = malloc(rawlen);
        if (raw == NULL) {
            return DHT_ENOMEM;
        }
        mp_encode_bin(raw, m->value.p != NULL ? (const char *)m->value.p : "", m->value.len);
        w.store.key = dht__wb(m->key.b, DHT_ID_LEN);
        w.store.value = dht__wb(raw, rawlen);
        w.store.hdr = h;
        w.store.has_ttl = m->ttl_ms > 0;
        w.store.ttl_ms = m->ttl_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)m->ttl_ms;
        w.store.publisher = dht__wb(m->publisher.b, DHT_ID_LEN);
        break;
    case WIRE_FIND_VALUE_REPLY:
        w.find_value_reply.hdr = h;
        if (!m->has_values) {
            w.find_value_reply.result = WIRE_FV_NODES;
            w.find_value_reply.nodes = nl;
            break;
        }
        w.find_value_reply.result = WIRE_FV_VALUE;
        rawlen = mp_sizeof_array(m->nvalues);
        for (uint32_t i = 0; i < m->nvalues; i++) {
            if (m->values[i].p == NULL && m->values[i].len > 0) {
                return DHT_EINVAL;
            }
            rawlen += mp_sizeof_bin(m->values[i].len);
        }
        raw = malloc(rawlen);
        if (raw == NULL) {
            return DHT_ENOMEM;
        }
        char *wp = mp_encode_array(raw, m->nvalues);
        for (uint32_t i = 0; i < m->nvalues; i++) {
            const char *vp = m->values[i].p != NULL ? (const char *)m->values[i].p : "";
            wp = mp_encode_bin(wp, vp, m->values[i].len);
        }
        w.find_value_reply.value = dht__wb(raw, rawlen);
        break;
    default: return DHT_EINVAL;
    }
    int rv = wire_encode_alloc(&w, frame, len);
    free(raw);
    if (rv != 0) {
        return rv == WIRE_ENOMEM ? DHT_ENOMEM : DHT_EINVAL;
    }
    return 0;
}
