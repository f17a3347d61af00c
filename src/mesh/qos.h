/*
 * src/mesh/qos.h — QoS 1 for pub/sub (MESH.md "Pub/sub"), sans I/O: the sender's outbox
 * (retransmit until PUBACK) and the receiver's de-duplication window.
 *
 * Outbox. Each QoS 1 PUBLISH sent to a destination (a node or a client connection, an opaque
 * 64-bit handle) is kept with its encoded frame until a PUBACK with the same message_id comes
 * back from that destination. Unacknowledged frames are sent again after retry_ms, then after
 * twice that, and so on up to max_retry_ms, at most max_tries sends in all; after the last one
 * the message is reported as given up (so the caller can count it and, say, try another
 * route). A destination that goes away is dropped with everything pending for it
 * (qos_outbox_drop_dest). Bounded: at most max_pending messages and max_bytes of frames;
 * beyond, qos_outbox_add refuses with QOS_ELIMIT and the publisher gets the error (nothing
 * accepted is silently lost).
 *
 * De-duplication. A receiver remembers the message_ids it delivered for window_ms (default
 * 5 minutes, longer than a sender's whole retry schedule) and at most max_ids of them; a
 * PUBLISH whose id is in the window is acknowledged again but not delivered twice. When the
 * table is full the oldest id is forgotten first (counted in stats: if that ever happens
 * under load, raise max_ids).
 *
 * Both take the current time in ms from the caller; neither touches a socket or a clock.
 */
#ifndef MACULA_MESH_QOS_H
#define MACULA_MESH_QOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QOS_ID_LEN 16

enum {
    QOS_OK = 0,
    QOS_EINVAL = -1, /* bad argument */
    QOS_ENOMEM = -2, /* allocation failed; nothing changed */
    QOS_EEXIST = -3, /* this (message_id, destination) is already pending */
    QOS_ELIMIT = -4, /* max_pending or max_bytes reached */
    QOS_ENOENT = -5, /* no such pending message */
};
const char *qos_strerror(int err);

/* ---- sender ------------------------------------------------------------------------------ */

typedef struct qos_outbox_config {
    uint32_t retry_ms;     /* first retransmission after [1000] */
    uint32_t max_retry_ms; /* backoff ceiling [30000] */
    uint32_t max_tries;    /* sends in all, the first included [8] */
    uint32_t max_pending;  /* messages [100000] */
    size_t max_bytes;      /* frame bytes held [64 MiB] */
} qos_outbox_config;

typedef struct qos_outbox qos_outbox;

typedef enum qos_event_kind {
    QOS_RESEND = 1, /* send `frame` to `dest` again */
    QOS_GAVE_UP,    /* max_tries sends went unacknowledged; the message is dropped */
} qos_event_kind;

typedef struct qos_event {
    qos_event_kind kind;
    uint8_t id[QOS_ID_LEN];
    uint64_t dest;
    const uint8_t *frame; /* QOS_RESEND: valid until the next call into the outbox */
    size_t frame_len;
    uint32_t tries; /* sends so far, this one included (RESEND) */
} qos_event;

/* NULL on bad cfg or out of memory; cfg NULL = defaults. */
qos_outbox *qos_outbox_new(const qos_outbox_config *cfg);
void qos_outbox_free(qos_outbox *o);

/* Records a frame that was just sent (the first try) to dest; the frame is copied. */
int qos_outbox_add(qos_outbox *o, const uint8_t id[QOS_ID_LEN], uint64_t dest, const void *frame,
                   size_t len, uint64_t now_ms);
/* A PUBACK from dest: the message is done. QOS_ENOENT for an unknown or repeated ack. */
int qos_outbox_ack(qos_outbox *o, const uint8_t id[QOS_ID_LEN], uint64_t dest);
/* Drops everything pending for dest; returns how many. */
size_t qos_outbox_drop_dest(qos_outbox *o, uint64_t dest);

/* The next due event at now_ms, if any: call repeatedly until it returns false. */
bool qos_outbox_poll(qos_outbox *o, uint64_t now_ms, qos_event *ev);
/* When the next event is due, or UINT64_MAX. */
uint64_t qos_outbox_next_deadline(const qos_outbox *o);

typedef struct qos_outbox_stats {
    size_t pending;   /* messages held */
    size_t bytes;     /* frame bytes held */
    uint64_t added;   /* accepted by qos_outbox_add */
    uint64_t acked;   /* acknowledged */
    uint64_t resent;  /* RESEND events */
    uint64_t gave_up; /* GAVE_UP events */
    uint64_t refused; /* QOS_ELIMIT refusals */
    uint64_t dropped; /* removed by qos_outbox_drop_dest */
} qos_outbox_stats;
void qos_outbox_get_stats(const qos_outbox *o, qos_outbox_stats *out);

/* ---- receiver ---------------------------------------------------------------------------- */

typedef struct qos_dedup qos_dedup;

/* window_ms 0 = 300000; max_ids 0 = 100000. NULL when out of memory. */
qos_dedup *qos_dedup_new(uint32_t window_ms, uint32_t max_ids);
void qos_dedup_free(qos_dedup *d);

/* True when id was already seen within the window (a duplicate: ack, do not deliver); false
 * when it is new, and it is then remembered. Out of memory counts as new (delivering twice
 * is the QoS 1 contract's allowed failure; losing is not). */
bool qos_dedup_check(qos_dedup *d, const uint8_t id[QOS_ID_LEN], uint64_t now_ms);

typedef struct qos_dedup_stats {
    size_t held;         /* ids remembered now */
    uint64_t duplicates; /* qos_dedup_check answers true */
    uint64_t evicted;    /* ids forgotten early because the table was full */
} qos_dedup_stats;
void qos_dedup_get_stats(const qos_dedup *d, qos_dedup_stats *out);

#endif
