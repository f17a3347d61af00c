/*
 * src/mesh/quic.h — the mesh node's QUIC transport: ngtcp2 0.12 + GnuTLS on a libuv UDP socket
 * (MESH.md "Identity and TLS"; design notes in docs/quic.md).
 *
 * One quic_endpoint owns one UDP socket on a uv_loop_t. It is a listener when cfg->listen is
 * set (it accepts connections from anyone who completes the handshake) and a client for any
 * number of outgoing connections (quic_connect). The two roles mix: a listening endpoint can
 * connect out from its listening port.
 *
 * Threading: everything runs on the loop's thread. Every function here must be called on that
 * thread; callbacks are invoked on it. Nothing blocks.
 *
 * TLS: TLS 1.3 only, ALPN cfg->alpn ("macula"), both sides present the endpoint identity's
 * certificate (the server requires one from the client). Trust is key binding, not a CA
 * chain: each side derives the peer's node ID = SHA-256 of the peer certificate's
 * SubjectPublicKeyInfo DER (identity_node_id_from_cert_der), and TLS 1.3's CertificateVerify
 * proves the peer holds that key. A client given an expected node ID refuses a server whose
 * key hashes to anything else (QUIC_EPEERID, on both sides with the two IDs in the reason).
 * A peer certificate whose notAfter has passed is refused (QUIC_ETLS).
 * 1-RTT packets are protected by aesgcm.h's AES-128-GCM when TLS negotiated it and the CPU
 * runs it (unless cfg->gnutls_aead or MACULA_AESGCM=off), by GnuTLS otherwise.
 *
 * Connections. A quic_conn is created by quic_connect (client) or by the endpoint on a new
 * Initial packet (server). A server connection becomes visible to the application only when
 * its handshake completes (cb.on_connected); a server-side handshake that fails is only logged
 * (cfg->log) and counted (quic_endpoint_stats). A client connection is visible from
 * quic_connect on. Every visible connection gets exactly one cb.on_closed, after which the
 * quic_conn pointer is invalid (the endpoint may keep internal state a little longer for the
 * QUIC closing/draining period, and releases it itself).
 *
 * Streams are bidirectional QUIC streams named by their int64 stream ID. Data written is
 * copied into the stream's send queue and kept until the peer acknowledges it. The queue is
 * bounded by cfg->stream_send_buffer: a write while the queue already holds that much returns
 * QUIC_EAGAIN and queues nothing (a write below the bound is taken whole, so the queue may
 * exceed it by one write); cb.on_stream_writable then fires once it has drained to half.
 * Received data is delivered in order to cb.on_stream_data; flow-control credit (stream and
 * connection) is returned to the peer as the application consumes data: when the callback
 * returns, or, with cfg->manual_consume, when the application calls quic_stream_consume.
 * When the connection closes, its streams go with it: on_closed stands for them (no
 * on_stream_closed follows).
 *
 * Re-entrancy: from inside any callback the application may call every function below except
 * quic_endpoint_close. Writes and closes made inside callbacks (or anywhere) take effect when
 * the endpoint next services the connection, before the loop next blocks.
 *
 * Unknown connections: a short-header packet for a connection ID this endpoint does not know
 * is answered with a stateless reset (RFC 9000 10.3; smaller than the packet, rate-limited).
 * The reset secret is derived from the identity's private key, so a node that restarted with
 * the same key resets its peers' stale connections at once (they see QUIC_EREFUSED, reason
 * "stateless reset ...") instead of waiting for their idle timeout.
 *
 * Errors are negative QUIC_E* codes; quic_strerror describes them.
 */
#ifndef MACULA_MESH_QUIC_H
#define MACULA_MESH_QUIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "mesh/identity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------------------------ */
enum {
    QUIC_OK = 0,
    QUIC_EINVAL = -1,        /* bad argument or configuration value */
    QUIC_ENOMEM = -2,        /* allocation failed */
    QUIC_EIO = -3,           /* the UDP socket could not be created, bound or used */
    QUIC_ETLS = -4,          /* TLS setup or handshake failure (reason says which) */
    QUIC_EPEERID = -5,       /* the peer's node ID is not the one expected */
    QUIC_EALPN = -6,         /* the peer does not speak the required ALPN */
    QUIC_ETIMEDOUT = -7,     /* the handshake did not complete in time */
    QUIC_EIDLE = -8,         /* the connection was idle for longer than the idle timeout */
    QUIC_EAGAIN = -9,        /* the stream's send queue is full; wait for on_stream_writable */
    QUIC_ESTREAM = -10,      /* no such stream, or the stream is closed for writing */
    QUIC_ESTREAMLIMIT = -11, /* the peer allows no more streams right now */
    QUIC_ECLOSED = -12,      /* the connection is closing */
    QUIC_EPROTO = -13,       /* QUIC protocol violation (by either side) */
    QUIC_ELIMIT = -14,       /* the endpoint holds cfg->max_connections connections */
    QUIC_EADDR = -15,        /* not a numeric IPv4/IPv6 address, or wrong address family */
    QUIC_EREFUSED = -16,     /* the peer closed the connection with a transport error */
};

/* "ok", "invalid argument", ...; "unknown error" for anything else. */
const char *quic_strerror(int err);

/* ---- types ------------------------------------------------------------------------------- */
typedef struct quic_endpoint quic_endpoint;
typedef struct quic_conn quic_conn;

#define QUIC_DEFAULT_ALPN "macula"
#define QUIC_DEFAULT_IDLE_TIMEOUT_MS 90000u
#define QUIC_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000u
#define QUIC_DEFAULT_STREAM_WINDOW (256u * 1024u)           /* initial per-stream receive window */
#define QUIC_DEFAULT_CONN_WINDOW (1024u * 1024u)            /* initial per-connection window */
#define QUIC_DEFAULT_MAX_STREAM_WINDOW (6u * 1024u * 1024u) /* auto-tuning ceilings */
#define QUIC_DEFAULT_MAX_CONN_WINDOW (15u * 1024u * 1024u)
#define QUIC_DEFAULT_MAX_STREAMS 100u /* concurrent bidi streams the peer may open */
#define QUIC_DEFAULT_STREAM_SEND_BUFFER (1024u * 1024u)
#define QUIC_DEFAULT_MAX_CONNECTIONS 65536u
#define QUIC_DEFAULT_RETRY_HALF_OPEN 256u /* see quic_config.retry_half_open */
#define QUIC_MAX_REASON 255               /* longer close reasons are truncated */

/* Why a connection ended (cb.on_closed). */
typedef struct quic_close_info {
    int error;   /* QUIC_OK: closed by an application (this side's or the peer's) with
                    `code`; otherwise the QUIC_E* cause (QUIC_EIDLE, QUIC_ETIMEDOUT,
                    QUIC_EPEERID, QUIC_EALPN, QUIC_ETLS, QUIC_EPROTO, QUIC_EREFUSED,
                    QUIC_EIO, QUIC_ENOMEM) */
    bool remote; /* true when the peer sent the CONNECTION_CLOSE */
    bool app;    /* true: `code` is an application error code (CONNECTION_CLOSE 0x1d);
                    false: a QUIC transport error code (0x1c), 0 when none was sent */
    uint64_t code;
    const char *reason; /* NUL-terminated reason text (printable ASCII), "" when none */
} quic_close_info;

enum { QUIC_LOG_ERROR = 0, QUIC_LOG_WARN = 1, QUIC_LOG_INFO = 2, QUIC_LOG_DEBUG = 3 };

/* Callbacks; any may be NULL. `ctx` is cfg->ctx. */
typedef struct quic_callbacks {
    /* Handshake complete: quic_conn_peer_id is known. For a server connection this is the
     * first time the application sees it. */
    void (*on_connected)(quic_conn *c, void *ctx);
    /* The connection is over; c is invalid after this returns. */
    void (*on_closed)(quic_conn *c, const quic_close_info *info, void *ctx);
    /* The peer opened stream `sid` (its first data follows in on_stream_data). */
    void (*on_stream_open)(quic_conn *c, int64_t sid, void *ctx);
    /* In-order data of stream `sid`; `fin` is true with the last bytes (len may be 0). `data`
     * is valid only during the call. */
    void (*on_stream_data)(quic_conn *c, int64_t sid, const uint8_t *data, size_t len, bool fin,
                           void *ctx);
    /* The peer aborted the stream (RESET_STREAM or STOP_SENDING) with `app_code`; queued send
     * data is dropped. Called at most once per stream. */
    void (*on_stream_reset)(quic_conn *c, int64_t sid, uint64_t app_code, void *ctx);
    /* The stream is gone on both sides (all data acknowledged or reset); its ID is invalid. */
    void (*on_stream_closed)(quic_conn *c, int64_t sid, void *ctx);
    /* A write returned QUIC_EAGAIN earlier and the send queue has drained to half. */
    void (*on_stream_writable)(quic_conn *c, int64_t sid, void *ctx);
} quic_callbacks;

/* Zero-initialise and set what you need; zero means the default. */
typedef struct quic_config {
    const identity *id;            /* required: this node's key and certificate */
    bool listen;                   /* accept incoming connections */
    const char *bind_host;         /* numeric address; NULL: "0.0.0.0" */
    uint16_t bind_port;            /* 0: any free port (see quic_endpoint_port) */
    const char *alpn;              /* NULL: QUIC_DEFAULT_ALPN (other values are for tests) */
    uint32_t idle_timeout_ms;      /* 0: QUIC_DEFAULT_IDLE_TIMEOUT_MS */
    uint32_t handshake_timeout_ms; /* 0: QUIC_DEFAULT_HANDSHAKE_TIMEOUT_MS */
    uint32_t stream_window;        /* 0: QUIC_DEFAULT_STREAM_WINDOW */
    uint32_t conn_window;          /* 0: QUIC_DEFAULT_CONN_WINDOW */
    uint32_t max_streams;          /* 0: QUIC_DEFAULT_MAX_STREAMS */
    uint32_t stream_send_buffer;   /* 0: QUIC_DEFAULT_STREAM_SEND_BUFFER */
    uint32_t max_connections;      /* 0: QUIC_DEFAULT_MAX_CONNECTIONS */
    bool manual_consume;           /* credit returns only via quic_stream_consume */
    bool no_udp_gro;               /* receive one datagram per buffer even where the kernel
                                      has UDP GRO (the fallback path; for tests) */
    bool no_loopback_jumbo;        /* to a loopback peer, write packets of at most 1452 bytes
                                      like on any other path (default: up to 65,507 bytes, bounded
                                      by the loopback device's MTU; docs/quic.md) */
    bool gnutls_aead;              /* protect 1-RTT packets with GnuTLS even where the built-in
                                      AES-128-GCM (aesgcm.h) could (for tests and comparison) */
    /* Address validation: a new client must first echo a Retry token (one more round trip)
     * always, or once this many incoming handshakes are in progress (a flood of spoofed
     * Initials then costs no connection state). 0: QUIC_DEFAULT_RETRY_HALF_OPEN. */
    bool retry_always;
    uint32_t retry_half_open;
    quic_callbacks cb;
    void *ctx;
    /* Clear reasons for failures and lifecycle events; NULL: silent. */
    void (*log)(void *ctx, int level, const char *msg);
    int log_level; /* highest level passed to log; 0 means QUIC_LOG_INFO */
} quic_config;

typedef struct quic_endpoint_stats {
    size_t connections;     /* live connection objects (any state) */
    size_t cids;            /* entries in the connection-ID table */
    size_t reset_tokens;    /* peers' stateless reset tokens known */
    uint64_t handshakes_ok; /* completed handshakes, both roles */
    uint64_t handshakes_failed;
    uint64_t packets_in;      /* datagrams received (a GRO batch counts each it holds) */
    uint64_t packets_out;     /* datagrams sent (a GSO message counts each it holds) */
    uint64_t packets_dropped; /* unparseable, unknown connection ID, refused */
    size_t ngtcp2_bytes;      /* heap held by ngtcp2 for this endpoint's connections */
    size_t half_open;         /* incoming handshakes in progress */
    uint64_t retries_sent;    /* Retry packets (address validation) */
    uint64_t resets_sent;     /* stateless resets for packets of unknown connections */
    uint64_t gso_batches;     /* UDP GSO messages sent (each several datagrams) */
    uint64_t gro_batches;     /* receive buffers that held several datagrams (UDP GRO) */
    size_t max_datagram_out;  /* the largest datagram sent (UDP payload bytes) */
    size_t chunk_pool; /* spent send-buffer chunks kept for reuse (bytes; 256 KiB per size class) */
    bool gro;          /* the socket has UDP_GRO (else one datagram per receive) */
    /* 1-RTT keys installed for the built-in AES-128-GCM (aesgcm.h) rather than GnuTLS (one
     * per direction and connection), and generations of 1-RTT keys derived for key updates
     * (RFC 9001 6; ngtcp2 derives each one ahead, so one per connection before any update) */
    uint64_t keys_aesgcm;
    uint64_t key_updates;
} quic_endpoint_stats;

/* ---- endpoint ---------------------------------------------------------------------------- */

/* Creates the endpoint and binds its UDP socket. cfg is copied (strings too; cfg->id is
 * borrowed and must outlive the endpoint). Returns QUIC_OK and *out, or a negative code with
 * *out NULL (a message goes to cfg->log). */
int quic_endpoint_new(uv_loop_t *loop, const quic_config *cfg, quic_endpoint **out);

/* The bound UDP port. */
uint16_t quic_endpoint_port(const quic_endpoint *ep);

void quic_endpoint_stats_get(const quic_endpoint *ep, quic_endpoint_stats *out);

/* Closes every connection (CONNECTION_CLOSE with app code 0, reason "endpoint closing"; each
 * visible connection gets on_closed), then closes the socket. The memory is released by the
 * loop once its handles have closed: keep running the loop. NULL is a no-op. Not from inside
 * a callback of this endpoint. */
void quic_endpoint_close(quic_endpoint *ep);

/* ---- connections ------------------------------------------------------------------------- */

/* Starts a connection to host:port (numeric IPv4/IPv6 address of the endpoint's family).
 * expected_id: NULL to accept any node, or the 32-byte node ID the server must have.
 * On success *out is the connection (cb.on_connected or cb.on_closed follows). */
int quic_connect(quic_endpoint *ep, const char *host, uint16_t port, const uint8_t *expected_id,
                 void *user, quic_conn **out);

/* Closes with an application error code and reason (NULL or text; truncated to
 * QUIC_MAX_REASON). The peer's on_closed receives both. on_closed for c runs when the endpoint
 * services it (before the loop next blocks). Repeated calls are no-ops. */
void quic_conn_close(quic_conn *c, uint64_t app_code, const char *reason);

/* Starts a 1-RTT key update (RFC 9001 6; ngtcp2 also starts one itself before a key reaches
 * AES-GCM's packet limit). QUIC_OK; QUIC_EAGAIN while the handshake or the previous update is
 * not yet confirmed, for three PTOs after that (ngtcp2's rule), until ngtcp2 has derived the
 * next keys (on a packet received after that), or when called from inside a callback of c;
 * QUIC_EINVAL for a connection that is not open. */
int quic_conn_update_key(quic_conn *c);

/* The peer's node ID (32 bytes) once its certificate is verified (always by on_connected);
 * NULL before. */
const uint8_t *quic_conn_peer_id(const quic_conn *c);
bool quic_conn_is_server(const quic_conn *c);
/* The peer's address (a sockaddr_in or sockaddr_in6). */
const struct sockaddr *quic_conn_peer_addr(const quic_conn *c);
void quic_conn_set_user(quic_conn *c, void *user);
void *quic_conn_user(const quic_conn *c);
quic_endpoint *quic_conn_endpoint(const quic_conn *c);

/* ---- streams ----------------------------------------------------------------------------- */

/* Opens a bidirectional stream (after on_connected). QUIC_ESTREAMLIMIT when the peer's
 * stream limit is reached, QUIC_ECLOSED when closing. */
int quic_stream_open(quic_conn *c, int64_t *sid);

/* Queues len bytes (copied) and, with fin, the end of the stream. QUIC_EAGAIN: the queue
 * already holds cfg->stream_send_buffer bytes or more (nothing queued). QUIC_ESTREAM: unknown
 * stream, or FIN was already queued or the stream was reset. len 0 with fin sends just the FIN. */
int quic_stream_write(quic_conn *c, int64_t sid, const uint8_t *data, size_t len, bool fin);

/* Writing in place (no copy from a caller's buffer): quic_stream_reserve returns in *buf and
 * *room (>= min, min > 0) where the stream's next bytes go; the caller writes n <= *room bytes
 * there and queues them with quic_stream_commit(c, sid, n) (n 0: nothing queued). The bytes
 * are the caller's until the commit, which must follow before any other call for this
 * connection. Errors as quic_stream_write (QUIC_EAGAIN: the queue is full, nothing reserved);
 * quic_stream_commit says QUIC_EINVAL for an n beyond the room. */
int quic_stream_reserve(quic_conn *c, int64_t sid, size_t min, uint8_t **buf, size_t *room);
int quic_stream_commit(quic_conn *c, int64_t sid, size_t n);

/* Bytes written but not yet acknowledged by the peer. */
size_t quic_stream_queued(const quic_conn *c, int64_t sid);

/* Aborts both directions of the stream with app_code (RESET_STREAM + STOP_SENDING). */
int quic_stream_reset(quic_conn *c, int64_t sid, uint64_t app_code);

/* With cfg->manual_consume: the application has processed n more bytes of stream sid;
 * that much flow-control credit goes back to the peer. */
int quic_stream_consume(quic_conn *c, int64_t sid, size_t n);

#ifdef __cplusplus
}
#endif

#endif
