/*
 * src/mesh/gateway/pubsub.h — macula_gateway_pubsub (seed 000, second child of
 * macula_gateway_workers_sup): the actor around the pub/sub core (mesh/pubsub_core.h);
 * docs/pubsub.md.
 *
 * Inbound (messages):
 *   GW_PS_PUBLISH    from macula_gateway (its frame hook): the PUBLISH frames its core decoded
 *                    while it handled one piece of stream data, each as the connection, the
 *                    payload and the decoded fields' places in it (a batch: one message per
 *                    read instead of one per frame);
 *   GW_PS_FRAME      from macula_gateway (its frame hook): SUBSCRIBE, UNSUBSCRIBE,
 *                    PUBACK and PUBSUB_ROUTE frames of connected clients (nodes are clients
 *                    of our gateway too), with the connection and the node id it proved;
 *   GW_PS_CONN_DOWN  from macula_gateway: a client connection is gone;
 *   GW_PS_RESUB      from macula_gateway: a subscription from its ledger (after our restart);
 *   GW_PS_NODE_FRAME from macula_gateway_mesh: a PUBACK that came back over the mesh pool.
 * Outbound: frames to clients through macula_gateway (GW_PS_FANOUT: records of one frame and
 * the connections it goes to, every delivery of one handled message in one GW_PS_FANOUT),
 * frames to other nodes
 * through macula_gateway_mesh (GW_MESH_SEND), index lookups and puts through
 * macula_routing_server (RS_GET / RS_PUT under dht_key(realm, "psub:SEG")), the subscription
 * ledger to macula_gateway (GW_PS_LEDGER; GW_PS_SYNC at init gets it back).
 *
 * An index value's address with an unspecified host ("0.0.0.0:PORT": nodes do not know the
 * address others reach them at) is resolved through the DHT's contacts
 * (com.macula.dht.peers on the routing server) and the gateway's clients; entries that stay
 * unresolved are skipped (counted).
 *
 * Registers as "macula_gateway_pubsub". Counters for /metrics: gw_pubsub_stats.
 */
#ifndef MACULA_MESH_GATEWAY_PUBSUB_H
#define MACULA_MESH_GATEWAY_PUBSUB_H

#include <stdbool.h>
#include <stdint.h>

#include "macula/sup.h"
#include "mesh/pubsub_core.h"
#include "mesh/wire.h"

typedef struct gw_pubsub_config {
    const char *realm;               /* NULL: macula.default */
    const uint8_t *node_id;          /* 32 bytes (NULL: zeros, tests without identity) */
    uint32_t max_subs_per_client;    /* 0: 1,000 */
    uint64_t cache_ms;               /* 0: 60 s */
    const char *advertise_host;      /* NULL: 0.0.0.0 (resolved by publishers) */
    uint16_t port;                   /* 0: ask macula_gateway_quic_server */
    uint64_t index_ttl_ms;           /* DHT TTL of index values; 0: 300 s */
    const qos_outbox_config *outbox; /* NULL: qos.h defaults */
} gw_pubsub_config;

/* A sup_start_fn; arg is a gw_pubsub_config that outlives the child spec (NULL: defaults). */
int gw_pubsub_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why);

enum {
    GW_PS_FRAME = 0x5301, /* info: gw_ps_frame_hdr + one encoded frame */
    GW_PS_CONN_DOWN,      /* info: uint64_t conn */
    GW_PS_RESUB,          /* info: gw_ps_ledger (gateway.h) + pattern */
    GW_PS_NODE_FRAME,     /* info: gw_ps_node_hdr + one encoded frame */
    GW_PS_STATS,          /* call: replies gw_pubsub_view */
    GW_PS_FANOUT,         /* info to macula_gateway: records of gw_ps_fanout_hdr, the frame,
                             then n uint64_t connection ids: one frame for n clients */
    GW_PS_PUBLISH,        /* info: records of gw_ps_pub + a PUBLISH frame's payload, which the
                             gateway's core already decoded (not decoded again) */
};

/* GW_PS_PUBLISH is a sequence of records, each a gw_ps_pub and the `len` payload bytes of one
 * PUBLISH frame, in the order the frames arrived. The fields' places are offsets from the
 * payload's first byte (GW_PS_ABSENT: the field's pointer was NULL). The worker checks every
 * range against the record's payload (a record out of range is counted invalid and skipped)
 * and every record's length against the message (a record that overruns it ends the message:
 * the rest is counted invalid). */
#define GW_PS_ABSENT UINT32_MAX
typedef struct gw_ps_pub {
    uint64_t conn; /* the connection the frame came on */
    uint32_t len;  /* payload bytes that follow this header */
    uint32_t topic_off, topic_len;
    uint32_t payload_off, payload_len;
    uint32_t mid_off, mid_len;
    uint8_t qos;
    uint8_t retain;
} gw_ps_pub;

/* GW_PS_FANOUT is a sequence of records, each the frame once and then the connections it goes
 * to (the gateway queues it to each as GW_SEND_FRAME would): sizeof hdr + frame_len + n * 8
 * bytes. The records must tile the message exactly (and n, frame_len > 0); otherwise the
 * whole message is dropped and nothing of it is sent. */
typedef struct gw_ps_fanout_hdr {
    uint32_t n;
    uint32_t frame_len;
} gw_ps_fanout_hdr;

/* The most bytes either side puts into one GW_PS_PUBLISH or GW_PS_FANOUT batch before it sends
 * it and starts the next (a batch is also sent at the end of every handled message). */
#define GW_PS_BATCH_MAX ((size_t)64 * 1024)

typedef struct gw_ps_frame_hdr {
    uint64_t conn;
    uint8_t node_id[WIRE_NODE_ID_LEN];
    char remote[64];
} gw_ps_frame_hdr;

typedef struct gw_ps_node_hdr {
    uint8_t node_id[WIRE_NODE_ID_LEN];
    char addr[PSC_ADDR_MAX];
} gw_ps_node_hdr;

typedef struct gw_pubsub_view {
    psc_stats core;
    uint64_t lookups_failed;   /* RS_GET errors / timeouts (not "not found") */
    uint64_t unresolved;       /* index entries whose address could not be resolved */
    uint64_t advertise_failed; /* RS_PUT errors */
    uint64_t send_failed;      /* gateway or mesh worker not there */
    uint64_t frames_invalid;   /* frames that did not decode */
} gw_pubsub_view;

/* The running pubsub worker's counters (copied); false when none runs. Runtime thread. */
bool gw_pubsub_stats(const sup_rt *rt, gw_pubsub_view *out);

#endif
