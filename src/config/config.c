/* src/config/config.c — the node's configuration (see include/macula/config.h). */
#define _GNU_SOURCE /* memchr-free helpers, environ */
#include "macula/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "base/errmsg.h"
#include "base/file.h"
#include "mesh/identity.h"

extern char **environ;

typedef enum config__type {
    T_PORT,     /* 0..65535 */
    T_UINT,     /* min..max */
    T_DURATION, /* ms, min..max */
    T_REALM,
    T_ADDR,
    T_PATH,
    T_PEERS,
    T_LEVEL,
    T_EXPIRED,
    T_NODE_IDS, /* comma list of 64-hex-digit node ids */
} config__type;

typedef struct config__def {
    const char *name;
    const char *flag;
    const char *env;
    const char *env2; /* read when env is unset */
    config__type type;
    size_t off;
    uint32_t min, max;
    const char *def; /* the default, for people */
} config__def;

#define OFF(f) offsetof(macula_config, f)

static const config__def config__defs[MACULA_KEY_COUNT] = {
    [MACULA_KEY_QUIC_PORT] = {"quic_port", "--quic-port", "MACULA_QUIC_PORT", "GATEWAY_PORT",
                              T_PORT, OFF(quic_port), 0, 65535, "9443"},
    [MACULA_KEY_REALM] = {"realm", "--realm", "MACULA_REALM", NULL, T_REALM, OFF(realm), 0, 0,
                          "macula.default"},
    [MACULA_KEY_BOOTSTRAP_PEERS] = {"bootstrap_peers", "--bootstrap-peers",
                                    "MACULA_BOOTSTRAP_PEERS", "MACULA_BOOTSTRAP_URL", T_PEERS, 0, 0,
                                    0, "none"},
    [MACULA_KEY_HEALTH_PORT] = {"health_port", "--health-port", "HEALTH_PORT", NULL, T_PORT,
                                OFF(health_port), 0, 65535, "8080"},
    [MACULA_KEY_HEALTH_ADDR] = {"health_addr", "--health-addr", "MACULA_HEALTH_ADDR", NULL, T_ADDR,
                                OFF(health_addr), 0, 0, "0.0.0.0"},
    [MACULA_KEY_BOOTSTRAP_HEALTH_INTERVAL] = {"bootstrap_health_interval",
                                              "--bootstrap-health-interval",
                                              "MACULA_BOOTSTRAP_HEALTH_INTERVAL", NULL, T_DURATION,
                                              OFF(bootstrap_health_interval_ms), 1000, 86400000,
                                              "60000 (60 s)"},
    [MACULA_KEY_CERT_PATH] = {"cert_path", "--cert-path", "MACULA_CERT_PATH", NULL, T_PATH,
                              OFF(cert_path), 0, 0, "<data_dir>/cert.pem"},
    [MACULA_KEY_KEY_PATH] = {"key_path", "--key-path", "MACULA_KEY_PATH", NULL, T_PATH,
                             OFF(key_path), 0, 0, "<data_dir>/key.pem"},
    [MACULA_KEY_CERT_VALIDITY_DAYS] = {"cert_validity_days", "--cert-validity-days",
                                       "MACULA_CERT_VALIDITY_DAYS", NULL, T_UINT,
                                       OFF(cert_validity_days), 1, 36500, "3650"},
    [MACULA_KEY_CERT_EXPIRED] = {"cert_expired", "--cert-expired", "MACULA_CERT_EXPIRED", NULL,
                                 T_EXPIRED, OFF(cert_expired), 0, 0, "renew"},
    [MACULA_KEY_DHT_K] = {"dht_k", "--dht-k", "MACULA_DHT_K", NULL, T_UINT, OFF(dht_k), 1, 256,
                          "20"},
    [MACULA_KEY_DHT_ALPHA] = {"dht_alpha", "--dht-alpha", "MACULA_DHT_ALPHA", NULL, T_UINT,
                              OFF(dht_alpha), 1, 64, "3"},
    [MACULA_KEY_MAX_CLIENTS] = {"max_clients", "--max-clients", "MACULA_MAX_CLIENTS", NULL, T_UINT,
                                OFF(max_clients), 1, 1000000, "10000"},
    [MACULA_KEY_MAX_FRAME_SIZE] = {"max_frame_size", "--max-frame-size", "MACULA_MAX_FRAME_SIZE",
                                   NULL, T_UINT, OFF(max_frame_size), 1024, 64u << 20,
                                   "1048576 (1 MiB)"},
    [MACULA_KEY_PING_INTERVAL] = {"ping_interval", "--ping-interval", "MACULA_PING_INTERVAL", NULL,
                                  T_DURATION, OFF(ping_interval_ms), 1000, 3600000, "30000 (30 s)"},
    [MACULA_KEY_DATA_DIR] = {"data_dir", "--data-dir", "MACULA_DATA_DIR", NULL, T_PATH,
                             OFF(data_dir), 0, 0, "~/.local/share/macula"},
    [MACULA_KEY_MCP_PORT] = {"mcp_port", "--mcp-port", "MACULA_MCP_PORT", NULL, T_PORT,
                             OFF(mcp_port), 0, 65535, "8765"},
    [MACULA_KEY_LOG_LEVEL] = {"log_level", "--log-level", "MACULA_LOG_LEVEL", NULL, T_LEVEL,
                              OFF(log_level), 0, 0, "info"},
    [MACULA_KEY_RPC_NO_DIRECT] = {"rpc_no_direct", "--rpc-no-direct", "MACULA_RPC_NO_DIRECT", NULL,
                                  T_NODE_IDS, 0, 0, 0, "none"},
    [MACULA_KEY_MESH_POOL_MAX] = {"mesh_pool_max", "--mesh-pool-max", "MACULA_MESH_POOL_MAX", NULL,
                                  T_UINT, OFF(mesh_pool_max), 1, 100000, "1000"},
    [MACULA_KEY_IDLE_POLL_US] = {"idle_poll_us", "--idle-poll-us", "MACULA_IDLE_POLL_US", NULL,
                                 T_UINT, OFF(idle_poll_us), 0, 10000, "200 (µs)"},
};

static const char *const config__levels[] = {"error", "warn", "info", "debug"};
static const char *const config__expired[] = {"renew", "refuse", "warn"};

const char *macula_config_strerror(int err)
{
    switch (err) {
    case MACULA_CONFIG_OK: return "ok";
    case MACULA_CONFIG_EINVAL: return "invalid value";
    case MACULA_CONFIG_EUNKNOWN: return "unknown key";
    case MACULA_CONFIG_ESYNTAX: return "syntax error";
    case MACULA_CONFIG_EIO: return "I/O error";
    default: return "unknown error";
    }
}

const char *macula_config_key_name(macula_config_key key)
{
    return (unsigned)key < MACULA_KEY_COUNT ? config__defs[key].name : NULL;
}

int macula_config_key_by_name(const char *name)
{
    for (int k = 0; name != NULL && k < MACULA_KEY_COUNT; k++) {
        if (strcmp(config__defs[k].name, name) == 0) {
            return k;
        }
    }
    return -1;
}

const char *macula_config_source_name(macula_config_source src)
{
    switch (src) {
    case MACULA_SRC_DEFAULT: return "default";
    case MACULA_SRC_FILE: return "file";
    case MACULA_SRC_ENV: return "environment";
    case MACULA_SRC_FLAG: return "flag";
    default: return "unknown";
    }
}

const char *macula_log_level_name(macula_log_level level)
{
    return (unsigned)level <= MACULA_LOG_DEBUG ? config__levels[level] : "unknown";
}

void macula_config_defaults(macula_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->quic_port = 9443;
    snprintf(cfg->realm, sizeof cfg->realm, "macula.default");
    cfg->health_port = 8080;
    snprintf(cfg->health_addr, sizeof cfg->health_addr, "0.0.0.0");
    cfg->bootstrap_health_interval_ms = 60000;
    cfg->cert_validity_days = 3650;
    cfg->cert_expired = MACULA_CERT_EXPIRED_RENEW;
    cfg->dht_k = 20;
    cfg->dht_alpha = 3;
    cfg->max_clients = 10000;
    cfg->mesh_pool_max = 1000;
    cfg->idle_poll_us = 200;
    cfg->max_frame_size = 1u << 20;
    cfg->ping_interval_ms = 30000;
    cfg->mcp_port = 8765;
    cfg->log_level = MACULA_LOG_INFO;
}

/* ---- values ------------------------------------------------------------------------------- */

/* A decimal integer without sign, spaces or leading junk, at most 2^63. */
static bool config__number(const char *s, const char **rest, uint64_t *out)
{
    if (*s < '0' || *s > '9') {
        return false;
    }
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        if (v > (UINT64_MAX / 2 - 9) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    *rest = s;
    *out = v;
    return true;
}

static bool config__host_label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* scheme://host[:port][/path] with scheme https or quic; host a DNS name, IPv4 or [IPv6]. */
static bool config__url_ok(const char *u, size_t len)
{
    size_t i;
    if (len > 8 && strncmp(u, "https://", 8) == 0) {
        i = 8;
    } else if (len > 7 && strncmp(u, "quic://", 7) == 0) {
        i = 7;
    } else {
        return false;
    }
    if (u[i] == '[') {
        const char *close = memchr(u + i, ']', len - i);
        size_t n = close ? (size_t)(close - (u + i + 1)) : 0;
        char a6[64];
        struct in6_addr addr;
        if (close == NULL || n == 0 || n >= sizeof a6) {
            return false;
        }
        memcpy(a6, u + i + 1, n);
        a6[n] = '\0';
        if (inet_pton(AF_INET6, a6, &addr) != 1) {
            return false;
        }
        i += n + 2;
    } else {
        size_t start = i;
        size_t label = 0;
        for (; i < len && u[i] != ':' && u[i] != '/'; i++) {
            char c = u[i];
            if (c == '.') {
                if (label == 0 || u[i - 1] == '-') {
                    return false;
                }
                label = 0;
            } else if (config__host_label_char(c) && label < 63 && !(label == 0 && c == '-')) {
                label++;
            } else {
                return false;
            }
        }
        if (i == start || label == 0 || u[i - 1] == '-' || i - start > 253) {
            return false;
        }
    }
    if (i < len && u[i] == ':') {
        i++;
        size_t digits = 0;
        uint32_t port = 0;
        for (; i < len && u[i] >= '0' && u[i] <= '9' && digits < 6; i++, digits++) {
            port = port * 10 + (uint32_t)(u[i] - '0');
        }
        if (digits == 0 || port == 0 || port > 65535) {
            return false;
        }
    }
    if (i < len && u[i] != '/') {
        return false;
    }
    for (; i < len; i++) {
        if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

/* Parses a comma list of URLs into cfg (appending when append). Returns NULL, or the text of
 * what is wrong. */
static const char *config__peers(macula_config *cfg, const char *v, bool append, char *bad,
                                 size_t badsize)
{
    size_t n = append ? cfg->bootstrap_peer_count : 0;
    char list[MACULA_CONFIG_MAX_PEERS][MACULA_CONFIG_URL_MAX + 1];
    size_t count = 0;
    const char *p = v;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (len > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
            len--;
        }
        if (len > 0) {
            if (len > MACULA_CONFIG_URL_MAX || !config__url_ok(s, len)) {
                snprintf(bad, badsize, "%.*s", (int)(len > 80 ? 80 : len), s);
                return len > MACULA_CONFIG_URL_MAX ? "url_too_long" : "bad_url";
            }
            if (n + count >= MACULA_CONFIG_MAX_PEERS) {
                return "too_many";
            }
            memcpy(list[count], s, len);
            memset(list[count] + len, 0, sizeof list[count] - len); /* no stack bytes copied */
            count++;
        }
        p = end ? end + 1 : p + strlen(p);
    }
    memcpy(cfg->bootstrap_peers[n], list, count * sizeof list[0]);
    for (size_t i = n + count; i < MACULA_CONFIG_MAX_PEERS; i++) {
        cfg->bootstrap_peers[i][0] = '\0';
    }
    cfg->bootstrap_peer_count = n + count;
    return NULL;
}

static int config__hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Parses a comma list of node ids (64 hex digits each; blanks around items ignored) into cfg,
 * replacing the list. Returns NULL, or what is wrong ("too_many", "bad_id" with the item in
 * bad). */
static const char *config__node_ids(macula_config *cfg, const char *v, char *bad, size_t badsize)
{
    uint8_t ids[MACULA_CONFIG_MAX_NO_DIRECT][MACULA_CONFIG_NODE_ID_LEN];
    size_t count = 0;
    const char *p = v;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (len > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
            len--;
        }
        if (len > 0) {
            bool ok = len == (size_t)2 * MACULA_CONFIG_NODE_ID_LEN;
            for (size_t i = 0; ok && i < MACULA_CONFIG_NODE_ID_LEN; i++) {
                int hi = config__hex_digit(s[(size_t)2 * i]);
                int lo = config__hex_digit(s[(size_t)2 * i + 1]);
                ok = hi >= 0 && lo >= 0;
                if (ok && count < MACULA_CONFIG_MAX_NO_DIRECT) {
                    ids[count][i] = (uint8_t)(hi << 4 | lo);
                }
            }
            if (!ok) {
                snprintf(bad, badsize, "%.*s", (int)(len > 80 ? 80 : len), s);
                return "bad_id";
            }
            if (count >= MACULA_CONFIG_MAX_NO_DIRECT) {
                return "too_many";
            }
            count++;
        }
        p = end ? end + 1 : p + strlen(p);
    }
    memset(cfg->rpc_no_direct, 0, sizeof cfg->rpc_no_direct);
    memcpy(cfg->rpc_no_direct, ids, count * sizeof ids[0]);
    cfg->rpc_no_direct_count = count;
    return NULL;
}

static bool config__realm_ok(const char *v)
{
    size_t len = strlen(v);
    if (len == 0 || len > MACULA_CONFIG_REALM_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_')) {
            return false;
        }
    }
    return true;
}

static const char *config__allowed(const config__def *d, char *buf, size_t size)
{
    switch (d->type) {
    case T_PORT: return "an integer from 0 to 65535 (0 picks a free port)";
    case T_UINT:
        if (d - config__defs == MACULA_KEY_DHT_ALPHA) {
            snprintf(buf, size, "an integer from %u to %u, and at most dht_k", d->min, d->max);
        } else {
            snprintf(buf, size, "an integer from %u to %u", d->min, d->max);
        }
        return buf;
    case T_DURATION:
        snprintf(buf, size,
                 "a duration from %u ms to %u ms: milliseconds, or a number with ms, s, m or h",
                 d->min, d->max);
        return buf;
    case T_REALM: return "1 to 253 characters among letters, digits, '.', '-' and '_'";
    case T_ADDR: return "an IPv4 address such as 0.0.0.0 or 127.0.0.1";
    case T_PATH: return "a path of at most 4095 characters";
    case T_PEERS:
        return "a comma-separated list of at most 32 URLs https://HOST[:PORT][/PATH] or "
               "quic://HOST[:PORT] (HOST a DNS name, IPv4 or [IPv6], URL at most 255 "
               "characters)";
    case T_LEVEL: return "one of error, warn, info, debug";
    case T_EXPIRED: return "one of renew, refuse, warn";
    case T_NODE_IDS:
        return "a comma-separated list of at most 16 node ids of 64 hex digits each (as "
               "`macula id` prints them), or nothing";
    }
    return "?";
}

int macula_config_set(macula_config *cfg, macula_config_key key, const char *value,
                      macula_config_source src, const char *where, char *err, size_t errsize)
{
    if (cfg == NULL || (unsigned)key >= MACULA_KEY_COUNT || value == NULL) {
        return errmsg_fail(err, errsize, MACULA_CONFIG_EINVAL, "macula_config_set: bad argument");
    }
    const config__def *d = &config__defs[key];
    char *field = (char *)cfg + d->off;
    bool ok = true;
    char bad[96] = "";
    const char *why = NULL;
    uint64_t num = 0;
    const char *rest = NULL;
    switch (d->type) {
    case T_PORT:
        ok = config__number(value, &rest, &num) && *rest == '\0' && num <= 65535;
        if (ok) {
            *(uint16_t *)(void *)field = (uint16_t)num;
        }
        break;
    case T_UINT:
        ok = config__number(value, &rest, &num) && *rest == '\0' && num >= d->min && num <= d->max;
        if (ok) {
            *(uint32_t *)(void *)field = (uint32_t)num;
        }
        break;
    case T_DURATION:
        ok = config__number(value, &rest, &num);
        if (ok) {
            uint64_t mul = 0;
            if (*rest == '\0' || strcmp(rest, "ms") == 0) {
                mul = 1;
            } else if (strcmp(rest, "s") == 0) {
                mul = 1000;
            } else if (strcmp(rest, "m") == 0) {
                mul = 60000;
            } else if (strcmp(rest, "h") == 0) {
                mul = 3600000;
            }
            ok = mul != 0 && num <= UINT32_MAX && num * mul >= d->min && num * mul <= d->max;
            if (ok) {
                *(uint32_t *)(void *)field = (uint32_t)(num * mul);
            }
        }
        break;
    case T_REALM:
        ok = config__realm_ok(value);
        if (ok) {
            snprintf(field, MACULA_CONFIG_REALM_MAX + 1, "%s", value);
        }
        break;
    case T_ADDR: {
        struct in_addr a;
        ok = inet_pton(AF_INET, value, &a) == 1;
        if (ok) {
            snprintf(field, sizeof cfg->health_addr, "%s", value);
        }
        break;
    }
    case T_PATH:
        ok = strlen(value) < MACULA_CONFIG_PATH_MAX;
        if (ok) {
            snprintf(field, MACULA_CONFIG_PATH_MAX, "%s", value);
        }
        break;
    case T_PEERS:
        /* In a file, later lines add peers; everywhere else a value replaces the list. */
        why = config__peers(cfg, value, src == MACULA_SRC_FILE && cfg->source[key] == src, bad,
                            sizeof bad);
        ok = why == NULL;
        break;
    case T_NODE_IDS:
        why = config__node_ids(cfg, value, bad, sizeof bad);
        ok = why == NULL;
        break;
    case T_LEVEL:
    case T_EXPIRED: {
        const char *const *names = d->type == T_LEVEL ? config__levels : config__expired;
        size_t n = d->type == T_LEVEL ? 4 : 3;
        ok = false;
        for (size_t i = 0; i < n && !ok; i++) {
            if (strcmp(value, names[i]) == 0) {
                ok = true;
                if (d->type == T_LEVEL) {
                    cfg->log_level = (macula_log_level)i;
                } else {
                    cfg->cert_expired = (macula_cert_expired)i;
                }
            }
        }
        break;
    }
    }
    if (!ok) {
        char abuf[160];
        const char *allowed = config__allowed(d, abuf, sizeof abuf);
        if (why != NULL && strcmp(why, "too_many") == 0) {
            bool ids = d->type == T_NODE_IDS;
            return errmsg_fail(err, errsize, MACULA_CONFIG_EINVAL,
                               "%s: %s = \"%.200s\" is not valid: more than %d %s; allowed is "
                               "%s",
                               where ? where : "?", d->name, value,
                               ids ? MACULA_CONFIG_MAX_NO_DIRECT : MACULA_CONFIG_MAX_PEERS,
                               ids ? "node ids" : "peers", allowed);
        }
        if (why != NULL && strcmp(why, "bad_id") == 0) {
            return errmsg_fail(err, errsize, MACULA_CONFIG_EINVAL,
                               "%s: %s = \"%.200s\" is not valid: \"%s\" is not a node id; "
                               "allowed is %s",
                               where ? where : "?", d->name, value, bad, allowed);
        }
        if (why != NULL) {
            return errmsg_fail(err, errsize, MACULA_CONFIG_EINVAL,
                               "%s: %s = \"%.200s\" is not valid: \"%s\" is not a URL allowed "
                               "here; allowed is %s",
                               where ? where : "?", d->name, value, bad, allowed);
        }
        return errmsg_fail(err, errsize, MACULA_CONFIG_EINVAL,
                           "%s: %s = \"%.200s\" is not valid: allowed is %s", where ? where : "?",
                           d->name, value, allowed);
    }
    cfg->source[key] = src;
    return MACULA_CONFIG_OK;
}

/* ---- INI ---------------------------------------------------------------------------------- */

typedef struct config__ini {
    macula_config *cfg;
    const char *name;
    const char *text;
    size_t len, pos;
    int line;     /* lines handed to the parser so far */
    int too_long; /* line number of a line over the parser's limit, or 0 */
    int seen[MACULA_KEY_COUNT];
    int rc;
    char *err;
    size_t errsize;
} config__ini;

/* An fgets for inih over the text that counts lines, drops leading blanks (so that no line is
 * taken as a continuation of the previous value) and stops at a line longer than num - 1. */
static char *config__ini_reader(char *str, int num, void *stream)
{
    config__ini *s = stream;
    if (s->pos >= s->len || num < 2 || s->rc != MACULA_CONFIG_OK) {
        return NULL;
    }
    const char *p = s->text + s->pos;
    size_t left = s->len - s->pos;
    const char *nl = memchr(p, '\n', left);
    size_t linelen = nl ? (size_t)(nl - p) + 1 : left;
    s->pos += linelen;
    s->line++;
    while (linelen > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        linelen--;
    }
    if (linelen > (size_t)num - 1) {
        s->too_long = s->line;
        return NULL;
    }
    memcpy(str, p, linelen);
    str[linelen] = '\0';
    return str;
}

static int config__ini_handler(void *user, const char *section, const char *name, const char *value)
{
    config__ini *s = user;
    if (s->rc != MACULA_CONFIG_OK) {
        return 0;
    }
    if (section[0] != '\0' && strcmp(section, "macula") != 0) {
        s->rc = errmsg_fail(s->err, s->errsize, MACULA_CONFIG_EUNKNOWN,
                            "%s:%d: unknown section [%.64s]: allowed is [macula], or keys "
                            "before any section",
                            s->name, s->line, section);
        return 0;
    }
    int key = macula_config_key_by_name(name);
    if (key < 0) {
        char keys[600] = "";
        for (int k = 0; k < MACULA_KEY_COUNT; k++) {
            size_t used = strlen(keys);
            snprintf(keys + used, sizeof keys - used, "%s%s", k ? ", " : "", config__defs[k].name);
        }
        s->rc = errmsg_fail(s->err, s->errsize, MACULA_CONFIG_EUNKNOWN,
                            "%s:%d: unknown key \"%.64s\" (allowed keys: %s)", s->name, s->line,
                            name, keys);
        return 0;
    }
    if (s->seen[key] != 0 && key != MACULA_KEY_BOOTSTRAP_PEERS) {
        s->rc = errmsg_fail(s->err, s->errsize, MACULA_CONFIG_EINVAL,
                            "%s:%d: %s is set twice (first on line %d)", s->name, s->line, name,
                            s->seen[key]);
        return 0;
    }
    s->seen[key] = s->line;
    /* One pair of double quotes around the value is dropped. */
    char unq[MACULA_CONFIG_PATH_MAX];
    size_t vlen = strlen(value);
    if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"' && vlen - 2 < sizeof unq) {
        memcpy(unq, value + 1, vlen - 2);
        unq[vlen - 2] = '\0';
        value = unq;
    }
    char where[MACULA_CONFIG_PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:%d", s->name, s->line);
    s->rc = macula_config_set(s->cfg, (macula_config_key)key, value, MACULA_SRC_FILE, where, s->err,
                              s->errsize);
    return s->rc == MACULA_CONFIG_OK;
}

int macula_config_parse_ini(macula_config *cfg, const char *text, size_t len, const char *name,
                            char *err, size_t errsize)
{
    if (name == NULL) {
        name = "config";
    }
    if (cfg == NULL || (text == NULL && len > 0)) {
        return errmsg_fail(err, errsize, MACULA_CONFIG_EINVAL, "%s: bad argument", name);
    }
    if (len > MACULA_CONFIG_MAX_FILE) {
        return errmsg_fail(err, errsize, MACULA_CONFIG_EINVAL,
                           "%s: %zu bytes, larger than the limit of %u bytes", name, len,
                           MACULA_CONFIG_MAX_FILE);
    }
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul != NULL) {
        int line = 1;
        for (const char *p = text; p < nul; p++) {
            line += *p == '\n';
        }
        return errmsg_fail(err, errsize, MACULA_CONFIG_ESYNTAX, "%s:%d: a NUL byte", name, line);
    }
    config__ini s = {
        .cfg = cfg, .name = name, .text = text, .len = len, .err = err, .errsize = errsize};
    int rc = ini_parse_stream(config__ini_reader, &s, config__ini_handler, &s);
    if (s.rc != MACULA_CONFIG_OK) {
        return s.rc;
    }
    if (s.too_long != 0) {
        return errmsg_fail(err, errsize, MACULA_CONFIG_ESYNTAX,
                           "%s:%d: line too long (split a long bootstrap_peers list over several "
                           "bootstrap_peers lines)",
                           name, s.too_long);
    }
    if (rc > 0) {
        return errmsg_fail(err, errsize, MACULA_CONFIG_ESYNTAX,
                           "%s:%d: syntax error: expected `key = value`, `[section]` or a "
                           "comment",
                           name, rc);
    }
    if (rc < 0) {
        return errmsg_fail(err, errsize, MACULA_CONFIG_EIO, "%s: cannot parse (out of memory)",
                           name);
    }
    return MACULA_CONFIG_OK;
}

int macula_config_load_file(macula_config *cfg, const char *path, char *err, size_t errsize)
{
    unsigned char *buf;
    size_t len;
    int rc = file_read_bounded(path, MACULA_CONFIG_MAX_FILE, &buf, &len, NULL, err, errsize);
    if (rc != FILE_OK) {
        return rc == FILE_ETOOBIG ? MACULA_CONFIG_EINVAL : MACULA_CONFIG_EIO;
    }
    rc = macula_config_parse_ini(cfg, (const char *)buf, len, path, err, errsize);
    free(buf);
    if (rc == MACULA_CONFIG_OK) {
        snprintf(cfg->config_file, sizeof cfg->config_file, "%s", path);
    }
    return rc;
}

/* ---- environment and flags ---------------------------------------------------------------- */

static const char *config__getenv(const char *const *env, const char *name)
{
    if (env == NULL) {
        env = (const char *const *)environ;
    }
    size_t n = strlen(name);
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=') {
            return env[i] + n + 1;
        }
    }
    return NULL;
}

int macula_config_apply_env(macula_config *cfg, const char *const *env, char *err, size_t errsize)
{
    for (int k = 0; k < MACULA_KEY_COUNT; k++) {
        const config__def *d = &config__defs[k];
        const char *var = d->env;
        const char *v = config__getenv(env, var);
        if (v == NULL && d->env2 != NULL) {
            var = d->env2;
            v = config__getenv(env, var);
        }
        if (v == NULL) {
            continue;
        }
        char where[80];
        snprintf(where, sizeof where, "environment %s", var);
        int rc =
            macula_config_set(cfg, (macula_config_key)k, v, MACULA_SRC_ENV, where, err, errsize);
        if (rc != MACULA_CONFIG_OK) {
            return rc;
        }
    }
    return MACULA_CONFIG_OK;
}

/* Finds --name or --name=VALUE at argv[*i]; returns the key (MACULA_KEY_COUNT for --config),
 * -1 for an unknown option, and sets *value (NULL when the value is missing). */
static int config__flag(int argc, char *const *argv, int *i, const char **value)
{
    const char *a = argv[*i];
    const char *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    int key = -1;
    if (n == 8 && strncmp(a, "--config", 8) == 0) {
        key = MACULA_KEY_COUNT;
    }
    for (int k = 0; k < MACULA_KEY_COUNT && key < 0; k++) {
        if (strlen(config__defs[k].flag) == n && strncmp(a, config__defs[k].flag, n) == 0) {
            key = k;
        }
    }
    if (key < 0) {
        return -1;
    }
    if (eq != NULL) {
        *value = eq + 1;
    } else if (*i + 1 < argc) {
        *value = argv[++*i];
    } else {
        *value = NULL;
    }
    return key;
}

int macula_config_apply_args(macula_config *cfg, int argc, char *const *argv, char *err,
                             size_t errsize)
{
    for (int i = 0; i < argc; i++) {
        const char *value = NULL;
        const char *arg = argv[i];
        int key = config__flag(argc, argv, &i, &value);
        if (key < 0) {
            return errmsg_fail(err, errsize, MACULA_CONFIG_EUNKNOWN,
                               "%s: unknown %s (see `macula node --help`)", arg,
                               arg[0] == '-' ? "option" : "argument");
        }
        const char *flag = key == MACULA_KEY_COUNT ? "--config" : config__defs[key].flag;
        if (value == NULL) {
            return errmsg_fail(err, errsize, MACULA_CONFIG_EINVAL, "flag %s: a value is missing",
                               flag);
        }
        if (key == MACULA_KEY_COUNT) {
            if (value[0] == '\0' || strlen(value) >= sizeof cfg->config_file) {
                return errmsg_fail(err, errsize, MACULA_CONFIG_EINVAL,
                                   "flag --config: \"%.200s\" is not valid: allowed is a path "
                                   "of 1 to 4095 characters",
                                   value);
            }
            snprintf(cfg->config_file, sizeof cfg->config_file, "%s", value);
            continue;
        }
        char where[64];
        snprintf(where, sizeof where, "flag %s", flag);
        int rc = macula_config_set(cfg, (macula_config_key)key, value, MACULA_SRC_FLAG, where, err,
                                   errsize);
        if (rc != MACULA_CONFIG_OK) {
            return rc;
        }
    }
    return MACULA_CONFIG_OK;
}

/* identity_default_data_dir's rules over an environment array (NULL: the process's). */
static int config__default_data_dir(const char *const *env, char *buf, size_t size)
{
    if (env == NULL) {
        return identity_default_data_dir(buf, size) == IDENTITY_OK ? 0 : -1;
    }
    const char *v = config__getenv(env, "MACULA_DATA_DIR");
    int n = -1;
    if (v != NULL && *v != '\0') {
        n = snprintf(buf, size, "%s", v);
    } else if ((v = config__getenv(env, "XDG_DATA_HOME")) != NULL && v[0] == '/') {
        n = snprintf(buf, size, "%s/macula", v);
    } else if ((v = config__getenv(env, "HOME")) != NULL && *v != '\0') {
        n = snprintf(buf, size, "%s/.local/share/macula", v);
    }
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

static int config__finish(macula_config *cfg, const char *const *env, char *err, size_t errsize)
{
    if (cfg->dht_alpha > cfg->dht_k) {
        return errmsg_fail(err, errsize, MACULA_CONFIG_EINVAL,
                           "%s: dht_alpha = %u is not valid: allowed is at most dht_k (%u, %s)",
                           macula_config_source_name(cfg->source[MACULA_KEY_DHT_ALPHA]),
                           cfg->dht_alpha, cfg->dht_k,
                           macula_config_source_name(cfg->source[MACULA_KEY_DHT_K]));
    }
    cfg->data_dir_fallback = false;
    if (cfg->data_dir[0] == '\0' &&
        config__default_data_dir(env, cfg->data_dir, sizeof cfg->data_dir) != 0) {
        snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", MACULA_CONFIG_FALLBACK_DATA_DIR);
        cfg->data_dir_fallback = true;
    }
    return MACULA_CONFIG_OK;
}

int macula_config_finish(macula_config *cfg, char *err, size_t errsize)
{
    return config__finish(cfg, NULL, err, errsize);
}

int macula_config_load(macula_config *cfg, int argc, char *const *argv, const char *const *env,
                       char *err, size_t errsize)
{
    if (err != NULL && errsize > 0) {
        err[0] = '\0';
    }
    macula_config_defaults(cfg);
    /* The flags first into a scratch copy: their syntax is checked before anything is read, and
     * --config is known. */
    macula_config *flags = malloc(sizeof *flags);
    if (flags == NULL) {
        return errmsg_fail(err, errsize, MACULA_CONFIG_EIO, "out of memory");
    }
    macula_config_defaults(flags);
    int rc = macula_config_apply_args(flags, argc, argv, err, errsize);
    const char *file =
        flags->config_file[0] ? flags->config_file : config__getenv(env, "MACULA_CONFIG");
    if (rc == MACULA_CONFIG_OK && file != NULL && file[0] != '\0') {
        rc = macula_config_load_file(cfg, file, err, errsize);
    } else if (rc == MACULA_CONFIG_OK && file != NULL) {
        rc = errmsg_fail(err, errsize, MACULA_CONFIG_EINVAL,
                         "environment MACULA_CONFIG: \"\" is not valid: allowed is a path");
    }
    free(flags);
    if (rc == MACULA_CONFIG_OK) {
        rc = macula_config_apply_env(cfg, env, err, errsize);
    }
    if (rc == MACULA_CONFIG_OK) {
        rc = macula_config_apply_args(cfg, argc, argv, err, errsize);
    }
    if (rc == MACULA_CONFIG_OK) {
        rc = config__finish(cfg, env, err, errsize);
    }
    return rc;
}

void macula_config_usage(FILE *f)
{
    fprintf(f, "options (flag > environment > config file > default):\n");
    fprintf(f, "  %-30s %-34s %s\n", "--config FILE", "MACULA_CONFIG",
            "INI file with the keys below");
    for (int k = 0; k < MACULA_KEY_COUNT; k++) {
        const config__def *d = &config__defs[k];
        char env[80];
        snprintf(env, sizeof env, "%s%s%s", d->env, d->env2 ? ", " : "", d->env2 ? d->env2 : "");
        char abuf[160];
        fprintf(f, "  %-30s %-34s default %s\n  %-30s %s\n", d->flag, env, d->def, "",
                config__allowed(d, abuf, sizeof abuf));
    }
}
