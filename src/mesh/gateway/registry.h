/*
 * src/mesh/gateway/registry.h — where the gateway's actors publish read-only views for the
 * HTTP endpoints (prefix gw_reg_).
 *
 * The health endpoints run inside libmicrohttpd callbacks on the runtime's thread, between
 * actor callbacks, where no call to an actor can wait for its answer. The gateway and the
 * clients table therefore publish a pointer to their counters here in init and withdraw it in
 * terminate; the health worker reads through it on the same thread, so what it sees is always
 * a live object. Entries are keyed by (runtime, slot): several runtimes (tests) coexist. The
 * table itself is guarded by a mutex; the objects are only read on their runtime's thread.
 */
#ifndef MACULA_MESH_GATEWAY_REGISTRY_H
#define MACULA_MESH_GATEWAY_REGISTRY_H

#include <stdbool.h>

typedef enum gw_reg_slot {
    GW_REG_GATEWAY = 0, /* const gwc * (the gateway's core) */
    GW_REG_CLIENTS,     /* const gw_clients_view * */
    GW_REG_QUIC,        /* const quic_endpoint * (the quic_server's endpoint) */
    GW_REG_RPC,         /* const gw_rpc_view * (macula_gateway_rpc's counters) */
    GW_REG_SLOTS
} gw_reg_slot;

/* Publishes ptr for (rt, slot), replacing any previous one. Returns false when the table is
 * full (GW_REG_MAX runtimes). */
#define GW_REG_MAX 64
bool gw_reg_set(const void *rt, gw_reg_slot slot, const void *ptr);
/* Withdraws ptr if it is the one published for (rt, slot). */
void gw_reg_clear(const void *rt, gw_reg_slot slot, const void *ptr);
/* The published pointer or NULL. */
const void *gw_reg_get(const void *rt, gw_reg_slot slot);

#endif
