/* src/mesh/client.c — a client connection to a gateway; the contract is in client.h. */
#include "mesh/client.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/quic.h"

struct mesh_client {
    uv_loop_t *loop;
    const identity *id;
    quic_endpoint *ep;
    quic_conn *qc;
    int64_t sid; /* our stream, -1 before it is open */
    mesh_client_callbacks cb;
    void *ctx;
    char realm[256];
    wire_reader reader;
    bool ready;    /* PONG received for CONNECT */
    bool closed;   /* on_closed delivered */
    int close_err; /* what mesh_client_close / a protocol error decided */
    char close_reason[128];
    uint64_t t_open, t_handshake, t_ready; /* uv_hrtime */
    uv_idle_t reaper;                      /* closes the endpoint outside its callbacks */
};

const char *mesh_client_strerror(int err)
{
    switch (err) {
    case MESH_CLIENT_OK: return "ok";
    case MESH_CLIENT_EINVAL: return "invalid argument";
    case MESH_CLIENT_ENOMEM: return "out of memory";
    case MESH_CLIENT_ETRANSPORT: return "transport failure";
    case MESH_CLIENT_EREFUSED: return "refused by the gateway";
    case MESH_CLIENT_EPROTO: return "protocol error";
    case MESH_CLIENT_ECLOSED: return "closed";
    case MESH_CLIENT_ENOTREADY: return "not connected yet";
    case MESH_CLIENT_EAGAIN: return "send queue full";
    default: return "unknown error";
    }
}

int mesh_client_parse_url(const char *url, char *host, size_t hostsize, uint16_t *port)
{
    const char *p = url;
    if (strncmp(p, "https://", 8) == 0) {
        p += 8;
    } else if (strncmp(p, "quic://", 7) == 0) {
        p += 7;
    } else {
        return MESH_CLIENT_EINVAL;
    }
    char name[256];
    const char *end;
    if (*p == '[') {
        end = strchr(p, ']');
        if (end == NULL || (size_t)(end - p - 1) >= sizeof name) {
            return MESH_CLIENT_EINVAL;
        }
        memcpy(name, p + 1, (size_t)(end - p - 1));
        name[end - p - 1] = '\0';
        end++;
    } else {
        end = p + strcspn(p, ":/");
        if (end == p || (size_t)(end - p) >= sizeof name) {
            return MESH_CLIENT_EINVAL;
        }
        memcpy(name, p, (size_t)(end - p));
        name[end - p] = '\0';
    }
    *port = 9443;
    if (*end == ':') {
        char *e;
        long v = strtol(end + 1, &e, 10);
        if (e == end + 1 || v < 1 || v > 65535 || (*e != '\0' && *e != '/')) {
            return MESH_CLIENT_EINVAL;
        }
        *port = (uint16_t)v;
    } else if (*end != '\0' && *end != '/') {
        return MESH_CLIENT_EINVAL;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    if (getaddrinfo(name, NULL, &hints, &res) != 0 || res == NULL) {
        return MESH_CLIENT_EINVAL;
    }
    int rc = getnameinfo(res->ai_addr, res->ai_addrlen, host, (socklen_t)hostsize, NULL, 0,
                         NI_NUMERICHOST);
    freeaddrinfo(res);
    return rc == 0 ? MESH_CLIENT_OK : MESH_CLIENT_EINVAL;
}

static void client__log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    static const char *const names[] = {"error", "warn", "info", "debug"};
    fprintf(stderr, "macula: quic %s: %s\n", names[level & 3], msg);
}

/* Delivers on_closed once. */
static void client__finish(mesh_client *c, int err, const char *reason)
{
    if (c->closed) {
        return;
    }
    c->closed = true;
    if (c->cb.on_closed != NULL) {
        c->cb.on_closed(c, err, reason ? reason : "", c->ctx);
    }
}

/* A protocol-level end decided here: remember why and close the QUIC connection. */
static void client__abort(mesh_client *c, int err, const char *reason)
{
    if (c->close_err == 0) {
        c->close_err = err;
        snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    }
    quic_conn_close(c->qc, 0, reason);
}

static int client__write_rc(int rc)
{
    switch (rc) {
    case QUIC_OK: return MESH_CLIENT_OK;
    case QUIC_EAGAIN: return MESH_CLIENT_EAGAIN;
    case QUIC_ENOMEM: return MESH_CLIENT_ENOMEM;
    default: return MESH_CLIENT_ETRANSPORT;
    }
}

#define CLIENT__ROOM_MIN 256 /* room asked of the stream before the size of a frame is known */

/* Encodes m straight into the stream's send queue (no copy): into the room the queue has, or,
 * when the frame needs more, into room of the size wire_encode reported. */
static int client__send_msg(mesh_client *c, const wire_msg *m, size_t *len)
{
    uint8_t *buf;
    size_t room;
    int rc = quic_stream_reserve(c->qc, c->sid, CLIENT__ROOM_MIN, &buf, &room);
    if (rc != QUIC_OK) {
        return client__write_rc(rc);
    }
    int wrc = wire_encode(m, buf, room, len);
    if (wrc == WIRE_ENOBUF) {
        rc = quic_stream_reserve(c->qc, c->sid, *len, &buf, &room);
        if (rc != QUIC_OK) {
            return client__write_rc(rc);
        }
        wrc = wire_encode(m, buf, room, len);
    }
    if (wrc != WIRE_OK) {
        (void)quic_stream_commit(c->qc, c->sid, 0);
        return wrc == WIRE_ENOMEM ? MESH_CLIENT_ENOMEM : MESH_CLIENT_EINVAL;
    }
    return client__write_rc(quic_stream_commit(c->qc, c->sid, *len));
}

static void client__on_connected(quic_conn *qc, void *ctx)
{
    mesh_client *c = ctx;
    c->t_handshake = uv_hrtime();
    if (quic_stream_open(qc, &c->sid) != QUIC_OK) {
        client__abort(c, MESH_CLIENT_ETRANSPORT, "could not open a stream");
        return;
    }
    wire_msg m = {.type = WIRE_CONNECT};
    m.connect.version = (wire_bytes){(const uint8_t *)"1.0", 3};
    m.connect.node_id = (wire_bytes){identity_node_id(c->id), IDENTITY_ID_LEN};
    m.connect.realm_id = (wire_bytes){(const uint8_t *)c->realm, strlen(c->realm)};
    size_t len;
    if (client__send_msg(c, &m, &len) != MESH_CLIENT_OK) {
        client__abort(c, MESH_CLIENT_ETRANSPORT, "could not send CONNECT");
    }
}

static void client__on_frame(mesh_client *c, const wire_frame *f)
{
    wire_msg m;
    int rc = wire_decode_payload(f->type, f->payload, f->payload_len, NULL, &m);
    if (rc != WIRE_OK) {
        client__abort(c, MESH_CLIENT_EPROTO, wire_strerror(rc));
        return;
    }
    if (m.type == WIRE_DISCONNECT) {
        char reason[128];
        size_t n = m.disconnect.reason.len < sizeof reason - 1 ? m.disconnect.reason.len
                                                               : sizeof reason - 1;
        memcpy(reason, m.disconnect.reason.p, n);
        reason[n] = '\0';
        client__abort(c, MESH_CLIENT_EREFUSED, reason);
        return;
    }
    if (!c->ready) {
        if (m.type != WIRE_PONG) {
            client__abort(c, MESH_CLIENT_EPROTO, "expected PONG after CONNECT");
            return;
        }
        c->ready = true;
        c->t_ready = uv_hrtime();
        if (c->cb.on_ready != NULL) {
            c->cb.on_ready(c, quic_conn_peer_id(c->qc), c->ctx);
        }
        return;
    }
    if (c->cb.on_frame != NULL) {
        c->cb.on_frame(c, &m, c->ctx);
    }
}

static void client__on_stream_data(quic_conn *qc, int64_t sid, const uint8_t *data, size_t len,
                                   bool fin, void *ctx)
{
    (void)qc;
    (void)fin;
    mesh_client *c = ctx;
    if (sid != c->sid) {
        return;
    }
    while (len > 0 && !c->closed && c->close_err == 0) {
        size_t used = 0;
        wire_frame f;
        int rc = wire_reader_feed(&c->reader, data, len, &used, &f);
        data += used;
        len -= used;
        if (rc == WIRE_EAGAIN) {
            break;
        }
        if (rc != WIRE_OK) {
            client__abort(c, MESH_CLIENT_EPROTO, wire_strerror(rc));
            break;
        }
        client__on_frame(c, &f);
    }
}

static void client__on_writable(quic_conn *qc, int64_t sid, void *ctx)
{
    (void)qc;
    mesh_client *c = ctx;
    if (sid == c->sid && !c->closed && c->cb.on_writable != NULL) {
        c->cb.on_writable(c, c->ctx);
    }
}

static void client__on_closed(quic_conn *qc, const quic_close_info *info, void *ctx)
{
    (void)qc;
    mesh_client *c = ctx;
    c->qc = NULL;
    if (c->close_err != 0) {
        client__finish(c, c->close_err, c->close_reason);
        return;
    }
    char reason[QUIC_MAX_REASON + 64];
    if (info->error == QUIC_OK && info->remote && info->app && info->code != 0) {
        /* The gateway closed with a refusal code; its DISCONNECT may not have been read
         * first, but the close reason carries the same name (realm_mismatch, ...). */
        client__finish(c, MESH_CLIENT_EREFUSED, info->reason);
        return;
    }
    if (info->error != QUIC_OK) {
        snprintf(reason, sizeof reason, "%s%s%s", quic_strerror(info->error),
                 info->reason[0] ? ": " : "", info->reason);
    } else {
        snprintf(reason, sizeof reason, "closed by the %s (code %llu%s%s)",
                 info->remote ? "gateway" : "client", (unsigned long long)info->code,
                 info->reason[0] ? ", " : "", info->reason);
    }
    client__finish(c, MESH_CLIENT_ETRANSPORT, reason);
}

int mesh_client_open(uv_loop_t *loop, const identity *id, const char *url, const char *realm,
                     const uint8_t *expected, const mesh_client_callbacks *cb, void *ctx,
                     mesh_client **out)
{
    *out = NULL;
    char host[64];
    uint16_t port;
    if (id == NULL || realm == NULL || realm[0] == '\0' || strlen(realm) > 253 ||
        mesh_client_parse_url(url, host, sizeof host, &port) != MESH_CLIENT_OK) {
        return MESH_CLIENT_EINVAL;
    }
    mesh_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return MESH_CLIENT_ENOMEM;
    }
    c->loop = loop;
    c->id = id;
    c->sid = -1;
    c->cb = *cb;
    c->ctx = ctx;
    snprintf(c->realm, sizeof c->realm, "%s", realm);
    wire_reader_init(&c->reader, NULL);
    quic_config qcfg = {
        .id = id,
        .bind_host = strchr(host, ':') ? "::" : "0.0.0.0",
        .cb = {.on_connected = client__on_connected,
               .on_closed = client__on_closed,
               .on_stream_data = client__on_stream_data,
               .on_stream_writable = client__on_writable},
        .ctx = c,
        .log = client__log,
        .log_level = getenv("MACULA_DEBUG") ? QUIC_LOG_DEBUG : QUIC_LOG_WARN,
    };
    c->t_open = uv_hrtime();
    if (quic_endpoint_new(loop, &qcfg, &c->ep) != QUIC_OK) {
        wire_reader_free(&c->reader);
        free(c);
        return MESH_CLIENT_ETRANSPORT;
    }
    if (quic_connect(c->ep, host, port, expected, c, &c->qc) != QUIC_OK) {
        quic_endpoint_close(c->ep);
        wire_reader_free(&c->reader);
        free(c);
        return MESH_CLIENT_ETRANSPORT;
    }
    *out = c;
    return MESH_CLIENT_OK;
}

int mesh_client_send(mesh_client *c, const wire_msg *m)
{
    size_t len;
    return mesh_client_send_len(c, m, &len);
}

int mesh_client_send_len(mesh_client *c, const wire_msg *m, size_t *len)
{
    *len = 0;
    if (!c->ready || c->closed || c->qc == NULL) {
        return MESH_CLIENT_ENOTREADY;
    }
    int rc = client__send_msg(c, m, len);
    if (rc != MESH_CLIENT_OK) {
        *len = 0;
    }
    return rc;
}

int mesh_client_send_frame(mesh_client *c, const uint8_t *frame, size_t len)
{
    wire_header h;
    if (frame == NULL || wire_decode_header(frame, len, NULL, &h) != WIRE_OK ||
        (size_t)h.payload_len + WIRE_HEADER_LEN != len) {
        return MESH_CLIENT_EINVAL;
    }
    if (!c->ready || c->closed || c->qc == NULL) {
        return MESH_CLIENT_ENOTREADY;
    }
    return client__write_rc(quic_stream_write(c->qc, c->sid, frame, len, false));
}

size_t mesh_client_queued(const mesh_client *c)
{
    return c->qc != NULL && c->sid >= 0 ? quic_stream_queued(c->qc, c->sid) : 0;
}

void mesh_client_close(mesh_client *c, const char *reason)
{
    if (c->closed || c->qc == NULL) {
        return;
    }
    if (c->ready) {
        wire_msg m = {.type = WIRE_DISCONNECT};
        const char *r = reason ? reason : "normal";
        m.disconnect.reason = (wire_bytes){(const uint8_t *)"normal", 6};
        m.disconnect.message = (wire_bytes){(const uint8_t *)r, strlen(r)};
        size_t len;
        (void)client__send_msg(c, &m, &len);
    }
    client__abort(c, MESH_CLIENT_ECLOSED, reason ? reason : "closed");
}

static void client__reaped(uv_handle_t *h)
{
    mesh_client *c = h->data;
    wire_reader_free(&c->reader);
    free(c);
}

static void client__reap(uv_idle_t *h)
{
    mesh_client *c = h->data;
    uv_idle_stop(h);
    quic_endpoint_close(c->ep);
    uv_close((uv_handle_t *)h, client__reaped);
}

void mesh_client_free(mesh_client *c)
{
    if (c == NULL) {
        return;
    }
    uv_idle_init(c->loop, &c->reaper);
    c->reaper.data = c;
    uv_idle_start(&c->reaper, client__reap);
}

uint64_t mesh_client_handshake_us(const mesh_client *c)
{
    return c->t_handshake ? (c->t_handshake - c->t_open) / 1000 : 0;
}

uint64_t mesh_client_connect_us(const mesh_client *c)
{
    return c->t_ready ? (c->t_ready - c->t_open) / 1000 : 0;
}
