/* src/mesh/dht/dht_id.c — ids, the XOR metric, realm-scoped keys, configuration defaults. */
#include "mesh/dht/dht_internal.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>

const char *dht_strerror(int err)
{
    switch (err) {
    case DHT_OK: return "ok";
    case DHT_EINVAL: return "invalid_argument";
    case DHT_ENOMEM: return "no_memory";
    case DHT_EBUSY: return "busy";
    case DHT_ETIMEDOUT: return "timeout";
    case DHT_ENOTFOUND: return "not_found";
    case DHT_EPROTO: return "protocol_error";
    case DHT_ETOOBIG: return "too_big";
    case DHT_ESELF: return "self";
    default: return "unknown_error";
    }
}

void dht_config_default(dht_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->k = 20;
    cfg->alpha = 3;
    cfg->query_timeout_ms = 5000;
    cfg->lookup_timeout_ms = 30000;
    cfg->max_lookup_queries = 80;
    cfg->value_ttl_ms = 300000;
    cfg->max_ttl_ms = 3600000;
    cfg->republish_ms = 240000;
    cfg->refresh_ms = 3600000;
    cfg->probe_after_ms = 30000;
    cfg->max_fails = 2;
    cfg->replacements = 8;
    cfg->get_quorum = 3;
    cfg->max_lookups = 64;
    cfg->max_pending = 1024;
    cfg->max_keys = 4096;
    cfg->max_values_per_key = 32;
    cfg->max_value_bytes = 1024;
    cfg->seed = 0;
}

void dht_distance(const dht_id *a, const dht_id *b, dht_id *d)
{
    for (int i = 0; i < DHT_ID_LEN; i++) {
        d->b[i] = (uint8_t)(a->b[i] ^ b->b[i]);
    }
}

int dht_cmp_distance(const dht_id *target, const dht_id *a, const dht_id *b)
{
    for (int i = 0; i < DHT_ID_LEN; i++) {
        uint8_t da = (uint8_t)(a->b[i] ^ target->b[i]);
        uint8_t db = (uint8_t)(b->b[i] ^ target->b[i]);
        if (da != db) {
            return da < db ? -1 : 1;
        }
    }
    return 0;
}

int dht_bucket_index(const dht_id *self, const dht_id *other)
{
    for (int i = 0; i < DHT_ID_LEN; i++) {
        uint8_t x = (uint8_t)(self->b[i] ^ other->b[i]);
        if (x != 0) {
            int bit = 7;
            while (!(x & (1u << bit))) {
                bit--;
            }
            return (DHT_ID_LEN - 1 - i) * 8 + bit;
        }
    }
    return -1;
}

int dht_key(const char *realm, size_t realm_len, const void *name, size_t name_len, dht_id *key)
{
    if (realm == NULL || (name == NULL && name_len > 0) || key == NULL ||
        memchr(realm, 0, realm_len) != NULL || realm_len > SIZE_MAX / 2 ||
        name_len > SIZE_MAX / 2) {
        return DHT_EINVAL;
    }
    size_t n = realm_len + 1 + name_len;
    uint8_t stackbuf[512];
    uint8_t *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (buf == NULL) {
        return DHT_ENOMEM;
    }
    memcpy(buf, realm, realm_len);
    buf[realm_len] = 0;
    if (name_len > 0) {
        memcpy(buf + realm_len + 1, name, name_len);
    }
    int rv = gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, n, key->b);
    if (buf != stackbuf) {
        free(buf);
    }
    return rv == 0 ? 0 : DHT_EPROTO;
}

void dht_id_hex(const dht_id *id, char out[2 * DHT_ID_LEN + 1])
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < DHT_ID_LEN; i++) {
        out[2 * i] = hx[id->b[i] >> 4];
        out[2 * i + 1] = hx[id->b[i] & 15];
    }
    out[(size_t)2 * DHT_ID_LEN] = 0;
}
