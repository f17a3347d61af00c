/*
 * flow/consensus/peer_link.h — messages between the members of a flow cluster over QUIC,
 * between node identities; the transport shared by gossip (gossip_node.c) and PBFT
 * (pbft_node.c). See docs/consensus.md "Transport".
 *
 * A peer_link owns one QUIC endpoint (mesh/quic.h: ngtcp2 + GnuTLS, ALPN "macula",
 * certificates both ways, TLS 1.3) listening on a numeric "host:port", with the node identity
 * (mesh/identity.h) given by the caller. Members are (id, QUIC address, node id) entries set by
 * the owner.
 *
 *  - Sending: each message goes on a new stream (written with FIN) of this node's own
 *    connection to the member, opened with the member's node id pinned (quic_connect's
 *    expected id: a server proving another key is refused). While the handshake runs, while
 *    the peer allows no more streams, or while no connection can be made, messages wait in a
 *    per-member queue of at most `pending_max` messages (the oldest is dropped beyond; 1 keeps
 *    only the latest). A connection attempt that fails, or a connection that ends, keeps the
 *    queue and tries again after a backoff (`retry_min_ms`, doubling up to `retry_max_ms`;
 *    the first step again after a connection that had completed its handshake) for as long as
 *    messages wait; a message that has waited `pending_ttl_ms` since it was handed over is
 *    dropped. One timer per link runs the retries.
 *  - In flight: a message written on a stream is kept until the peer has closed the stream
 *    (the peer's FIN comes after it read the whole message, and QUIC reports the stream closed
 *    only once every byte was acknowledged). If the connection ends before that, the message
 *    goes back to the front of the queue (counted `requeued`) and is sent again on the next
 *    connection: delivery is at least once while the TTL allows, so a message the peer read
 *    just before the connection died may arrive twice (the owners' messages are idempotent).
 *    A stream the peer reset (message refused) is not sent again.
 *  - Receiving: a message is accepted only on a connection whose TLS-proven node id is a
 *    member's, and is handed to `recv` as coming from that member; a message on any other
 *    connection is counted `unknown` (a peer not, or not yet, in the member list: normal
 *    while a member's join is still being applied here); one longer than `msg_max` (the
 *    stream is reset) or refused by `recv` (non-zero return) is counted `rejected`. A stream
 *    carries exactly one message.
 *  - Isolation (the test-only fault switch): nothing is sent, everything received is dropped.
 *
 * Everything runs on the loop's thread. `recv` runs inside QUIC callbacks, outside any actor
 * callback; it may call peer_link_send. Counters: sent (messages written, a requeued one again),
 * received (accepted by recv), unknown, rejected, dropped (not sent: no endpoint, queue
 * overflow, older than the TTL, isolated; or received while isolated), retries (connection
 * attempts made by the retry timer), requeued (messages in flight when their connection ended).
 */
#ifndef MACULA_FLOW_PEER_LINK_H
#define MACULA_FLOW_PEER_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mesh/identity.h"

#define PEER_LINK_ADDR_MAX 128 /* bytes of a member's "host:port", NUL included */
#define PEER_LINK_DEFAULT_TTL_MS 5000u
#define PEER_LINK_DEFAULT_RETRY_MIN_MS 50u
#define PEER_LINK_DEFAULT_RETRY_MAX_MS 1000u

typedef struct peer_link peer_link;

typedef struct peer_link_config {
    const identity *id; /* this node's identity (borrowed, outlives the link) */
    const char *listen; /* numeric "host:port" to listen on */
    size_t msg_max;     /* bytes of one message, > 0 */
    size_t pending_max; /* messages waiting per member; 0: 1 */
    /* Longest wait of a message in the queue (ms; 0: PEER_LINK_DEFAULT_TTL_MS) and the backoff
     * between connection attempts while messages wait (0: PEER_LINK_DEFAULT_RETRY_*_MS). */
    uint32_t pending_ttl_ms, retry_min_ms, retry_max_ms;
    uint32_t idle_timeout_ms, handshake_timeout_ms, max_streams; /* 0: quic.h defaults */
    /* A message from member `from`; 0: accepted, else refused (counted rejected). */
    int (*recv)(void *user, uint32_t from, const uint8_t *data, size_t len);
    void *user;
    const char *name; /* for log lines ("flow gossip") */
} peer_link_config;

typedef struct peer_link_stats {
    uint64_t sent, received, unknown, rejected, dropped, retries, requeued;
} peer_link_stats;

/* Opens the endpoint. QUIC_* error (negative) with a message in err on failure. */
int peer_link_open(uv_loop_t *loop, const peer_link_config *cfg, peer_link **out, char *err,
                   size_t errsize);
/* Closes the endpoint and frees the link (waiting and in-flight messages are dropped); no
 * callback runs afterwards. Not from inside recv. The endpoint's and the timer's memory is
 * released by the loop: keep running it. NULL is a no-op. */
void peer_link_close(peer_link *l);
/* Adds member `id` or updates it; a changed address or node id closes this node's connection
 * to it. addr must be numeric "host:port" shorter than PEER_LINK_ADDR_MAX. 0 or QUIC_EINVAL /
 * QUIC_ENOMEM. */
int peer_link_set(peer_link *l, uint32_t id, const char *addr, const uint8_t node[IDENTITY_ID_LEN]);
/* Forgets a member (its connection closed, its waiting and in-flight messages dropped). */
void peer_link_remove(peer_link *l, uint32_t id);
/* Sends one message to member `to` (copied). 0, or QUIC_EINVAL (unknown member, too long),
 * QUIC_ECLOSED (isolated) — counted dropped either way. */
int peer_link_send(peer_link *l, uint32_t to, const uint8_t *data, size_t len);
void peer_link_isolate(peer_link *l, bool on);
bool peer_link_isolated(const peer_link *l);
void peer_link_get_stats(const peer_link *l, peer_link_stats *st);

#endif
