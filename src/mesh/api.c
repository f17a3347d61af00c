/* src/mesh/api.c — the client API (include/macula/mesh.h) over mesh/client.h. */
#include "macula/mesh.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "mesh/client.h"
#include "mesh/identity.h"
#include "mesh/qos.h"
#include "mesh/topic.h"

#define API_PING_MS 25000u
#define API_TIMEOUT_MS 10000u
#define API_DRAIN_MS 2000u     /* disconnect waits at most this for queued publishes */
#define API_FLUSH_BYTES 16384u /* QoS 0 publishes queued before the API turns the loop itself */

typedef struct api_sub {
    char *pattern;
    size_t len;
    uint8_t qos;
    bool hit; /* matches the topic in macula_mesh.hit_topic */
    macula_mesh_message_fn fn;
    void *ctx;
} api_sub;

struct macula_mesh {
    uv_loop_t loop;
    uv_timer_t timer; /* run / wait deadline */
    uv_timer_t ping;  /* keep-alive */
    uv_timer_t retry; /* QoS 1 outbox */
    uv_timer_t wait;  /* bounds the wait for a full send queue */
    uv_async_t wake;  /* macula_mesh_wake: ends a macula_mesh_run from another thread */
    bool woken;       /* a wake arrived that no macula_mesh_run has returned for yet */
    bool in_run;      /* inside macula_mesh_run (other waits leave `woken` alone) */
    mesh_client *client;
    identity *id;
    char dir[512];
    char realm[256];
    uint32_t timeout_ms;
    uint32_t drop_acks;
    bool ready, closed, stop, timed_out;
    uint8_t node_id[IDENTITY_ID_LEN];
    char error[160];
    api_sub *subs;
    size_t nsubs, capsubs;
    qos_outbox *outbox;
    qos_dedup *dedup;
    uint8_t waiting_id[QOS_ID_LEN]; /* the QoS 1 publish macula_mesh_publish waits for */
    bool waiting, acked;
    bool writable;        /* the send queue drained (on_writable) */
    size_t unflushed;     /* bytes queued since the loop last turned */
    uint8_t id_prefix[8]; /* message ids: this random prefix and a counter */
    uint64_t id_next;
    /* Per-message work a run of messages on one topic need not repeat: the last topic
     * macula_mesh_publish validated, and the last delivered topic with each subscription's
     * match of it (api_sub.hit; SIZE_MAX: none, reset whenever the subscriptions change). */
    size_t pub_topic_len, hit_topic_len;
    uint64_t subs_gen; /* bumped by every subscribe / unsubscribe */
    char pub_topic[TOPIC_MAX_LEN];
    char hit_topic[TOPIC_MAX_LEN];
};

const char *macula_mesh_strerror(int err)
{
    switch (err) {
    case MACULA_MESH_OK: return "ok";
    case MACULA_MESH_EINVAL: return "invalid argument";
    case MACULA_MESH_ENOMEM: return "out of memory";
    case MACULA_MESH_ECONNECT: return "could not connect";
    case MACULA_MESH_ECLOSED: return "connection closed";
    case MACULA_MESH_ETIMEDOUT: return "timed out";
    case MACULA_MESH_EEXIST: return "already subscribed";
    case MACULA_MESH_ENOENT: return "not subscribed";
    default: return "unknown error";
    }
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void api__timer_cb(uv_timer_t *t)
{
    macula_mesh *m = t->data;
    m->timed_out = true;
    uv_stop(&m->loop);
}

static void api__retry_cb(uv_timer_t *t);

static void api__retry_arm(macula_mesh *m)
{
    uint64_t d = qos_outbox_next_deadline(m->outbox);
    if (d == UINT64_MAX) {
        uv_timer_stop(&m->retry);
        return;
    }
    uint64_t now = uv_now(&m->loop);
    uv_timer_start(&m->retry, api__retry_cb, d > now ? d - now : 0, 0);
}

static void api__retry_cb(uv_timer_t *t)
{
    macula_mesh *m = t->data;
    qos_event ev;
    while (qos_outbox_poll(m->outbox, uv_now(&m->loop), &ev)) {
        if (ev.kind == QOS_RESEND && m->ready && !m->closed) {
            (void)mesh_client_send_frame(m->client, ev.frame, ev.frame_len);
        }
    }
    api__retry_arm(m);
}

static void api__ping_cb(uv_timer_t *t)
{
    macula_mesh *m = t->data;
    if (m->ready && !m->closed) {
        wire_msg w = {.type = WIRE_PING};
        w.ping.timestamp = (int64_t)uv_now(&m->loop);
        (void)mesh_client_send(m->client, &w);
    }
}

/* One turn of the loop without blocking: what is queued goes out, what arrived is handled. */
static void api__turn(macula_mesh *m)
{
    m->unflushed = 0;
    (void)uv_run(&m->loop, UV_RUN_NOWAIT);
}

/* Runs the loop until stop / timeout / close. */
static void api__spin(macula_mesh *m, uint32_t timeout_ms)
{
    m->unflushed = 0;
    m->stop = false;
    m->timed_out = false;
    if (timeout_ms > 0) {
        uv_timer_start(&m->timer, api__timer_cb, timeout_ms, 0);
    }
    while (!m->stop && !m->timed_out && !m->closed && !(m->woken && m->in_run)) {
        if (uv_run(&m->loop, UV_RUN_ONCE) == 0) {
            break;
        }
    }
    uv_timer_stop(&m->timer);
}

/* ---- client callbacks --------------------------------------------------------------------- */

static void api__on_ready(mesh_client *c, const uint8_t server_id[IDENTITY_ID_LEN], void *ctx)
{
    (void)c;
    macula_mesh *m = ctx;
    memcpy(m->node_id, server_id, IDENTITY_ID_LEN);
    m->ready = true;
    m->stop = true;
}

static void api__deliver(macula_mesh *m, const wire_publish *p)
{
    uint8_t qos = p->qos > 0 ? 1 : 0;
    if (qos == 1 && p->message_id.len == QOS_ID_LEN) {
        if (m->drop_acks > 0) {
            m->drop_acks--;
        } else {
            wire_msg ack = {.type = WIRE_PUBACK};
            ack.puback.message_id = p->message_id;
            (void)mesh_client_send(m->client, &ack);
        }
        if (qos_dedup_check(m->dedup, p->message_id.p, uv_now(&m->loop))) {
            return;
        }
    }
    const char *topic = (const char *)p->topic.p;
    size_t tlen = p->topic.len;
    if (tlen != m->hit_topic_len || memcmp(topic, m->hit_topic, tlen) != 0) {
        /* a delivery this one is nested in (a callback that ran the loop) must not trust the
         * hits any more: they are about to describe another topic */
        m->subs_gen++;
        for (size_t i = 0; i < m->nsubs; i++) {
            m->subs[i].hit = topic_match(m->subs[i].pattern, m->subs[i].len, topic, tlen);
        }
        if (tlen <= sizeof m->hit_topic) {
            memcpy(m->hit_topic, topic, tlen);
            m->hit_topic_len = tlen;
        } else {
            m->hit_topic_len = SIZE_MAX;
        }
    }
    uint64_t gen = m->subs_gen;
    for (size_t i = 0; i < m->nsubs; i++) {
        api_sub *s = &m->subs[i];
        /* a callback that subscribed: the hits no longer cover every subscription */
        if (gen == m->subs_gen ? s->hit : topic_match(s->pattern, s->len, topic, tlen)) {
            macula_mesh_message_fn fn = s->fn;
            fn(s->ctx, topic, tlen, s->pattern, p->payload.p, p->payload.len);
            if (i >= m->nsubs || m->subs[i].fn != fn) {
                break; /* the callback unsubscribed */
            }
        }
    }
}

static void api__on_frame(mesh_client *c, const wire_msg *w, void *ctx)
{
    (void)c;
    macula_mesh *m = ctx;
    if (w->type == WIRE_PUBLISH) {
        api__deliver(m, &w->publish);
    } else if (w->type == WIRE_PUBACK && w->puback.message_id.len == QOS_ID_LEN) {
        (void)qos_outbox_ack(m->outbox, w->puback.message_id.p, 0);
        if (m->waiting && memcmp(m->waiting_id, w->puback.message_id.p, QOS_ID_LEN) == 0) {
            m->acked = true;
            m->stop = true;
        }
    }
}

static void api__on_writable(mesh_client *c, void *ctx)
{
    (void)c;
    macula_mesh *m = ctx;
    m->writable = true;
}

static void api__wait_cb(uv_timer_t *t)
{
    (void)t; /* only wakes the loop */
}

/* Queues a frame: the encoded bytes frame[0..len), or, with frame NULL, w encoded straight
 * into the send queue. */
static int api__queue(macula_mesh *m, const wire_msg *w, const uint8_t *frame, size_t *len)
{
    if (frame != NULL) {
        return mesh_client_send_frame(m->client, frame, *len);
    }
    return mesh_client_send_len(m->client, w, len);
}

/* Queues a frame (as api__queue). While the send queue is full (the node has not acknowledged
 * 1 MiB) the loop runs (deliveries, acknowledgements) until it drains to half, for at most
 * timeout_ms: backpressure, never a silent drop. */
static int api__send(macula_mesh *m, const wire_msg *w, const uint8_t *frame, size_t len)
{
    int rc = api__queue(m, w, frame, &len);
    if (rc == MESH_CLIENT_EAGAIN) {
        uint64_t until = uv_now(&m->loop) + m->timeout_ms;
        while (rc == MESH_CLIENT_EAGAIN && !m->closed) {
            uint64_t now = uv_now(&m->loop);
            if (now >= until) {
                return MACULA_MESH_ETIMEDOUT;
            }
            m->writable = false;
            uv_timer_start(&m->wait, api__wait_cb, until - now, 0);
            while (!m->writable && !m->closed && uv_now(&m->loop) < until) {
                (void)uv_run(&m->loop, UV_RUN_ONCE);
            }
            uv_timer_stop(&m->wait);
            m->unflushed = 0;
            rc = m->closed ? MESH_CLIENT_ECLOSED : api__queue(m, w, frame, &len);
        }
    }
    switch (rc) {
    case MESH_CLIENT_OK: m->unflushed += len; return MACULA_MESH_OK;
    case MESH_CLIENT_ENOMEM: return MACULA_MESH_ENOMEM;
    case MESH_CLIENT_EAGAIN: return MACULA_MESH_ETIMEDOUT;
    case MESH_CLIENT_EINVAL: return MACULA_MESH_EINVAL;
    default: return MACULA_MESH_ECLOSED;
    }
}

static void api__on_closed(mesh_client *c, int err, const char *reason, void *ctx)
{
    (void)c;
    macula_mesh *m = ctx;
    if (!m->closed) {
        snprintf(m->error, sizeof m->error, "%s: %s", mesh_client_strerror(err),
                 reason ? reason : "");
    }
    m->closed = true;
    m->stop = true;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void api__rm_identity(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, IDENTITY_CERT_FILE);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s", dir, IDENTITY_KEY_FILE);
    unlink(path);
    rmdir(dir);
}

static void api__wake_cb(uv_async_t *a)
{
    macula_mesh *m = a->data;
    m->woken = true; /* kept until a macula_mesh_run returns: no other wait consumes it */
}

static void api__close_cb(uv_handle_t *h)
{
    (void)h;
}

static void api__free(macula_mesh *m)
{
    if (m->client != NULL) {
        /* QoS 0 publishes may still be queued (or unacknowledged): let them reach the node
         * first, bounded (the node acknowledges within its ACK delay) */
        uint64_t until = uv_now(&m->loop) + API_DRAIN_MS;
        while (m->ready && !m->closed && mesh_client_queued(m->client) > 0 &&
               uv_now(&m->loop) < until) {
            api__spin(m, 5);
        }
        if (!m->closed) {
            mesh_client_close(m->client, "bye");
            api__spin(m, 2000);
        }
        mesh_client_free(m->client);
    }
    uv_close((uv_handle_t *)&m->timer, api__close_cb);
    uv_close((uv_handle_t *)&m->ping, api__close_cb);
    uv_close((uv_handle_t *)&m->retry, api__close_cb);
    uv_close((uv_handle_t *)&m->wait, api__close_cb);
    uv_close((uv_handle_t *)&m->wake, api__close_cb);
    while (uv_run(&m->loop, UV_RUN_DEFAULT) != 0) {
    }
    (void)uv_loop_close(&m->loop);
    identity_free(m->id);
    if (m->dir[0]) {
        api__rm_identity(m->dir);
    }
    for (size_t i = 0; i < m->nsubs; i++) {
        free(m->subs[i].pattern);
    }
    free(m->subs);
    qos_outbox_free(m->outbox);
    qos_dedup_free(m->dedup);
    free(m);
}

int macula_mesh_connect(const char *url, const macula_mesh_options *opts, macula_mesh **out)
{
    if (url == NULL || out == NULL) {
        return MACULA_MESH_EINVAL;
    }
    macula_mesh *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return MACULA_MESH_ENOMEM;
    }
    snprintf(m->realm, sizeof m->realm, "%s",
             opts && opts->realm && opts->realm[0] ? opts->realm : "macula.default");
    m->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : API_TIMEOUT_MS;
    m->drop_acks = opts ? opts->drop_acks : 0;
    m->pub_topic_len = m->hit_topic_len = SIZE_MAX;
    qos_outbox_config oc = {.retry_ms = 1000, .max_retry_ms = 5000, .max_tries = 1000};
    m->outbox = qos_outbox_new(&oc);
    m->dedup = qos_dedup_new(0, 0);
    if (uv_loop_init(&m->loop) != 0) {
        qos_outbox_free(m->outbox);
        qos_dedup_free(m->dedup);
        free(m);
        return MACULA_MESH_ENOMEM;
    }
    uv_timer_init(&m->loop, &m->timer);
    uv_timer_init(&m->loop, &m->ping);
    uv_timer_init(&m->loop, &m->retry);
    uv_timer_init(&m->loop, &m->wait);
    m->timer.data = m->ping.data = m->retry.data = m->wait.data = m;
    if (uv_async_init(&m->loop, &m->wake, api__wake_cb) != 0) {
        uv_close((uv_handle_t *)&m->timer, NULL);
        uv_close((uv_handle_t *)&m->ping, NULL);
        uv_close((uv_handle_t *)&m->retry, NULL);
        uv_close((uv_handle_t *)&m->wait, NULL);
        (void)uv_run(&m->loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&m->loop);
        qos_outbox_free(m->outbox);
        qos_dedup_free(m->dedup);
        free(m);
        return MACULA_MESH_ENOMEM;
    }
    m->wake.data = m;
    uv_unref((uv_handle_t *)&m->wake); /* does not keep the loop alive by itself */
    if (m->outbox == NULL || m->dedup == NULL ||
        gnutls_rnd(GNUTLS_RND_NONCE, m->id_prefix, sizeof m->id_prefix) != 0) {
        api__free(m);
        return MACULA_MESH_ENOMEM;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(m->dir, sizeof m->dir, "%s/macula-client-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    identity_config ic = {.data_dir = m->dir, .cert_validity_days = 1};
    char err[256];
    if (mkdtemp(m->dir) == NULL) {
        m->dir[0] = '\0';
        api__free(m);
        return MACULA_MESH_ECONNECT;
    }
    if (identity_load_or_create(&ic, &m->id, err, sizeof err) != IDENTITY_OK) {
        api__free(m);
        return MACULA_MESH_ECONNECT;
    }
    mesh_client_callbacks cb = {.on_ready = api__on_ready,
                                .on_frame = api__on_frame,
                                .on_closed = api__on_closed,
                                .on_writable = api__on_writable};
    int rc = mesh_client_open(&m->loop, m->id, url, m->realm, NULL, &cb, m, &m->client);
    if (rc != MESH_CLIENT_OK) {
        m->client = NULL;
        api__free(m);
        return rc == MESH_CLIENT_EINVAL ? MACULA_MESH_EINVAL : MACULA_MESH_ECONNECT;
    }
    api__spin(m, m->timeout_ms);
    if (!m->ready) {
        if (m->closed) {
            fprintf(stderr, "macula: %s\n", m->error);
        }
        rc = m->closed ? MACULA_MESH_ECONNECT : MACULA_MESH_ETIMEDOUT;
        api__free(m);
        return rc;
    }
    uv_timer_start(&m->ping, api__ping_cb, API_PING_MS, API_PING_MS);
    *out = m;
    return MACULA_MESH_OK;
}

void macula_mesh_disconnect(macula_mesh *m)
{
    if (m != NULL) {
        api__free(m);
    }
}

const uint8_t *macula_mesh_node_id(const macula_mesh *m)
{
    return m->node_id;
}

const char *macula_mesh_last_error(const macula_mesh *m)
{
    return m->error;
}

/* ---- pub/sub ------------------------------------------------------------------------------ */

/* Whether topic[0..len) is publishable; a run of publishes on one topic validates it once. */
static bool api__topic_ok(macula_mesh *m, const char *topic, size_t len)
{
    if (len == m->pub_topic_len && memcmp(topic, m->pub_topic, len) == 0) {
        return true;
    }
    if (topic_validate_name(topic, len) != TOPIC_OK) {
        return false;
    }
    memcpy(m->pub_topic, topic, len); /* len <= TOPIC_MAX_LEN: validated */
    m->pub_topic_len = len;
    return true;
}

int macula_mesh_publish(macula_mesh *m, const char *topic, const void *payload, size_t len, int qos)
{
    if (m == NULL || topic == NULL || (payload == NULL && len > 0) || qos < 0 || qos > 1) {
        return MACULA_MESH_EINVAL;
    }
    size_t tlen = strlen(topic);
    if (!api__topic_ok(m, topic, tlen)) {
        return MACULA_MESH_EINVAL;
    }
    if (m->closed) {
        return MACULA_MESH_ECLOSED;
    }
    /* unique per connection (counter), and across connections (random prefix): the node's
     * QoS 1 de-duplication window is keyed by it */
    uint8_t id[QOS_ID_LEN];
    memcpy(id, m->id_prefix, sizeof m->id_prefix);
    uint64_t n = ++m->id_next;
    for (size_t i = 0; i < 8; i++) {
        id[8 + i] = (uint8_t)(n >> (8 * i));
    }
    wire_msg w = {.type = WIRE_PUBLISH};
    w.publish.topic = (wire_bytes){(const uint8_t *)topic, tlen};
    w.publish.payload = (wire_bytes){payload, len};
    w.publish.qos = (uint8_t)qos;
    w.publish.message_id = (wire_bytes){id, sizeof id};
    if (qos == 0) {
        /* encoded straight into the send queue; the loop turns here only once
         * API_FLUSH_BYTES have piled up, so a burst of publishes shares packets
         * (macula_mesh_flush / _run send the rest) */
        int rc = api__send(m, &w, NULL, 0);
        if (rc == MACULA_MESH_OK && m->unflushed >= API_FLUSH_BYTES) {
            api__turn(m);
        }
        return rc;
    }
    /* QoS 1: the outbox keeps the frame for retries */
    uint8_t small[2048]; /* small messages: no allocation */
    uint8_t *frame = small;
    size_t flen = 0;
    int rc = wire_encode(&w, small, sizeof small, &flen);
    if (rc == WIRE_ENOBUF) {
        rc = wire_encode_alloc(&w, &frame, &flen);
    }
    if (rc != WIRE_OK) {
        return rc == WIRE_ENOMEM ? MACULA_MESH_ENOMEM : MACULA_MESH_EINVAL;
    }
    rc = api__send(m, &w, frame, flen);
    if (rc != MACULA_MESH_OK) {
        if (frame != small) {
            free(frame);
        }
        return rc;
    }
    rc = qos_outbox_add(m->outbox, id, 0, frame, flen, uv_now(&m->loop));
    if (frame != small) {
        free(frame);
    }
    if (rc != QOS_OK) {
        return MACULA_MESH_ENOMEM;
    }
    api__retry_arm(m);
    memcpy(m->waiting_id, id, sizeof id);
    m->waiting = true;
    m->acked = false;
    uint64_t until = uv_now(&m->loop) + m->timeout_ms;
    while (!m->acked && !m->closed && uv_now(&m->loop) < until) {
        api__spin(m, (uint32_t)(until - uv_now(&m->loop)));
    }
    m->waiting = false;
    if (!m->acked) {
        (void)qos_outbox_drop_dest(m->outbox, 0);
        return m->closed ? MACULA_MESH_ECLOSED : MACULA_MESH_ETIMEDOUT;
    }
    return MACULA_MESH_OK;
}

static int api__sub_frame(macula_mesh *m, bool sub, const char *pattern, int qos)
{
    wire_bytes t = {(const uint8_t *)pattern, strlen(pattern)};
    wire_msg w = {.type = sub ? WIRE_SUBSCRIBE : WIRE_UNSUBSCRIBE};
    if (sub) {
        w.subscribe.topics = (wire_bytes_list){.count = 1, .items = &t};
        w.subscribe.qos = (uint8_t)qos;
    } else {
        w.unsubscribe.topics = (wire_bytes_list){.count = 1, .items = &t};
    }
    int rc = mesh_client_send(m->client, &w);
    api__turn(m);
    return rc == MESH_CLIENT_OK ? MACULA_MESH_OK : MACULA_MESH_ECLOSED;
}

int macula_mesh_subscribe(macula_mesh *m, const char *pattern, int qos, macula_mesh_message_fn fn,
                          void *ctx)
{
    if (m == NULL || pattern == NULL || fn == NULL || qos < 0 || qos > 1 ||
        topic_validate_pattern(pattern, strlen(pattern)) != TOPIC_OK) {
        return MACULA_MESH_EINVAL;
    }
    size_t len = strlen(pattern);
    for (size_t i = 0; i < m->nsubs; i++) {
        if (m->subs[i].len == len && memcmp(m->subs[i].pattern, pattern, len) == 0) {
            return MACULA_MESH_EEXIST;
        }
    }
    if (m->nsubs == m->capsubs) {
        size_t nc = m->capsubs ? m->capsubs * 2 : 4;
        api_sub *ns = realloc(m->subs, nc * sizeof *ns);
        if (ns == NULL) {
            return MACULA_MESH_ENOMEM;
        }
        m->subs = ns;
        m->capsubs = nc;
    }
    char *p = malloc(len + 1);
    if (p == NULL) {
        return MACULA_MESH_ENOMEM;
    }
    memcpy(p, pattern, len + 1);
    m->subs[m->nsubs++] = (api_sub){p, len, (uint8_t)qos, false, fn, ctx};
    m->subs_gen++;
    m->hit_topic_len = SIZE_MAX;
    return api__sub_frame(m, true, pattern, qos);
}

int macula_mesh_unsubscribe(macula_mesh *m, const char *pattern)
{
    if (m == NULL || pattern == NULL) {
        return MACULA_MESH_EINVAL;
    }
    size_t len = strlen(pattern);
    for (size_t i = 0; i < m->nsubs; i++) {
        if (m->subs[i].len == len && memcmp(m->subs[i].pattern, pattern, len) == 0) {
            free(m->subs[i].pattern);
            m->subs[i] = m->subs[--m->nsubs];
            m->subs_gen++;
            m->hit_topic_len = SIZE_MAX;
            return api__sub_frame(m, false, pattern, 0);
        }
    }
    return MACULA_MESH_ENOENT;
}

int macula_mesh_flush(macula_mesh *m)
{
    if (m == NULL) {
        return MACULA_MESH_EINVAL;
    }
    if (m->closed) {
        return MACULA_MESH_ECLOSED;
    }
    api__turn(m);
    return m->closed ? MACULA_MESH_ECLOSED : MACULA_MESH_OK;
}

int macula_mesh_run(macula_mesh *m, uint32_t timeout_ms)
{
    if (m->closed) {
        return MACULA_MESH_ECLOSED;
    }
    m->in_run = true;
    api__spin(m, timeout_ms);
    m->in_run = false;
    m->woken = false;
    return m->closed ? MACULA_MESH_ECLOSED : MACULA_MESH_OK;
}

void macula_mesh_stop(macula_mesh *m)
{
    m->stop = true;
}

void macula_mesh_wake(macula_mesh *m)
{
    if (m != NULL) {
        (void)uv_async_send(&m->wake);
    }
}
