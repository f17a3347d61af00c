/*
 * include/macula/config.h — the node's configuration: one struct with every setting and its
 * default, filled from four sources with the precedence
 *
 *     command-line flag  >  environment variable  >  INI file  >  default
 *
 * Every key has one INI name (the seed's sys.config name), one flag and one or two environment
 * variables:
 *
 *   key                        flag                         environment                 default
 *   quic_port                  --quic-port N                MACULA_QUIC_PORT, GATEWAY_PORT  9443
 *   realm                      --realm NAME                 MACULA_REALM macula.default
 *   bootstrap_peers            --bootstrap-peers URL,...    MACULA_BOOTSTRAP_PEERS,     (none)
 *                                                           MACULA_BOOTSTRAP_URL
 *   health_port                --health-port N              HEALTH_PORT                 8080
 *   health_addr                --health-addr IPV4           MACULA_HEALTH_ADDR          0.0.0.0
 *   bootstrap_health_interval  --bootstrap-health-interval  MACULA_BOOTSTRAP_HEALTH_INTERVAL 60000
 *   cert_path                  --cert-path FILE             MACULA_CERT_PATH <data_dir>/cert.pem
 *   key_path                   --key-path FILE              MACULA_KEY_PATH <data_dir>/key.pem
 *   cert_validity_days         --cert-validity-days N       MACULA_CERT_VALIDITY_DAYS   3650
 *   cert_expired               --cert-expired POLICY        MACULA_CERT_EXPIRED         renew
 *   dht_k                      --dht-k N                    MACULA_DHT_K                20
 *   dht_alpha                  --dht-alpha N                MACULA_DHT_ALPHA            3
 *   max_clients                --max-clients N              MACULA_MAX_CLIENTS          10000
 *   mesh_pool_max              --mesh-pool-max N            MACULA_MESH_POOL_MAX        1000
 *   idle_poll_us               --idle-poll-us N             MACULA_IDLE_POLL_US         200
 *   max_frame_size             --max-frame-size BYTES       MACULA_MAX_FRAME_SIZE       1048576
 *   ping_interval              --ping-interval DURATION     MACULA_PING_INTERVAL        30000 (ms)
 *   data_dir                   --data-dir DIR               MACULA_DATA_DIR             see below
 *   mcp_port                   --mcp-port N                 MACULA_MCP_PORT             8765
 *   log_level                  --log-level LEVEL            MACULA_LOG_LEVEL            info
 *   rpc_no_direct              --rpc-no-direct ID,...       MACULA_RPC_NO_DIRECT        (none)
 *
 * (the second environment variable is read only when the first is unset). The INI file itself
 * is named by --config FILE or MACULA_CONFIG; without either no file is read. Flags are
 * written `--name VALUE` or `--name=VALUE`.
 *
 * Values. Ports are integers 0..65535 (0 picks a free port); durations are milliseconds, or a
 * number with a unit `ms`, `s`, `m`, `h` ("30s"); bootstrap peers are a comma-separated list
 * of `https://` or `quic://` URLs (host name, IPv4 or [IPv6], optional :port and /path), at
 * most MACULA_CONFIG_MAX_PEERS; rpc_no_direct is a comma-separated list of node ids (64 hex
 * digits each, as `macula id` prints them), at most MACULA_CONFIG_MAX_NO_DIRECT: nodes this
 * node never sends RPC traffic to directly (it routes through another node instead: for tests
 * of multi-hop routing and for networks that forbid the direct path; docs/rpc.md); an empty
 * value means none; an empty path value means "the default".
 *
 * INI file: `key = value` lines, at top level or in a `[macula]` section; `;` and `#` start
 * comments; a value may be wrapped in double quotes. An unknown key or section, a line without
 * `=`, a key given twice (except bootstrap_peers, whose lines add up), a line longer than
 * the parser's limit, a NUL byte or a file over MACULA_CONFIG_MAX_FILE bytes is an error.
 *
 * Errors. An invalid value is refused with a message naming where it came from, the key, the
 * value and what is allowed, e.g.
 *     environment HEALTH_PORT: health_port = "99999" is not valid: allowed is an integer from
 *     0 to 65535
 *     /etc/macula/macula.ini:3: unknown key "helth_port"
 * Functions return 0 or a negative MACULA_CONFIG_E* code and write that message into err.
 *
 * Data directory: data_dir, else identity_default_data_dir() ($MACULA_DATA_DIR,
 * $XDG_DATA_HOME/macula, $HOME/.local/share/macula), else "./macula-data" with
 * data_dir_fallback set so the node can say so.
 */
#ifndef MACULA_CONFIG_H
#define MACULA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    MACULA_CONFIG_OK = 0,
    MACULA_CONFIG_EINVAL = -1,   /* a value is not allowed */
    MACULA_CONFIG_EUNKNOWN = -2, /* an unknown key, section, flag or argument */
    MACULA_CONFIG_ESYNTAX = -3,  /* an INI line that is not `key = value` or `[section]` */
    MACULA_CONFIG_EIO = -4,      /* the config file cannot be read */
};
/* "ok", "invalid value", "unknown key", "syntax error", "I/O error"; "unknown error". */
const char *macula_config_strerror(int err);

#define MACULA_CONFIG_PATH_MAX 4096 /* paths, including the NUL */
#define MACULA_CONFIG_REALM_MAX 253 /* realm characters */
#define MACULA_CONFIG_URL_MAX 255   /* characters of one bootstrap URL */
#define MACULA_CONFIG_MAX_PEERS 32
#define MACULA_CONFIG_MAX_NO_DIRECT 16
#define MACULA_CONFIG_NODE_ID_LEN 32      /* bytes of a node id */
#define MACULA_CONFIG_MAX_FILE (1u << 20) /* larger INI files are refused */
#define MACULA_CONFIG_FALLBACK_DATA_DIR "./macula-data"

typedef enum macula_config_key {
    MACULA_KEY_QUIC_PORT,
    MACULA_KEY_REALM,
    MACULA_KEY_BOOTSTRAP_PEERS,
    MACULA_KEY_HEALTH_PORT,
    MACULA_KEY_HEALTH_ADDR,
    MACULA_KEY_BOOTSTRAP_HEALTH_INTERVAL,
    MACULA_KEY_CERT_PATH,
    MACULA_KEY_KEY_PATH,
    MACULA_KEY_CERT_VALIDITY_DAYS,
    MACULA_KEY_CERT_EXPIRED,
    MACULA_KEY_DHT_K,
    MACULA_KEY_DHT_ALPHA,
    MACULA_KEY_MAX_CLIENTS,
    MACULA_KEY_MAX_FRAME_SIZE,
    MACULA_KEY_PING_INTERVAL,
    MACULA_KEY_DATA_DIR,
    MACULA_KEY_MCP_PORT,
    MACULA_KEY_LOG_LEVEL,
    MACULA_KEY_RPC_NO_DIRECT,
    MACULA_KEY_MESH_POOL_MAX,
    MACULA_KEY_IDLE_POLL_US,
    MACULA_KEY_COUNT
} macula_config_key;

typedef enum macula_config_source {
    MACULA_SRC_DEFAULT = 0,
    MACULA_SRC_FILE,
    MACULA_SRC_ENV,
    MACULA_SRC_FLAG,
} macula_config_source;

typedef enum macula_log_level {
    MACULA_LOG_ERROR = 0,
    MACULA_LOG_WARN,
    MACULA_LOG_INFO,
    MACULA_LOG_DEBUG,
} macula_log_level;

/* What to do with an expired certificate at start (identity.h's policies, same order). */
typedef enum macula_cert_expired {
    MACULA_CERT_EXPIRED_RENEW = 0,
    MACULA_CERT_EXPIRED_REFUSE,
    MACULA_CERT_EXPIRED_WARN,
} macula_cert_expired;

typedef struct macula_config {
    uint16_t quic_port;                      /* 9443 */
    char realm[MACULA_CONFIG_REALM_MAX + 1]; /* "macula.default" */
    size_t bootstrap_peer_count;             /* 0 */
    char bootstrap_peers[MACULA_CONFIG_MAX_PEERS][MACULA_CONFIG_URL_MAX + 1];
    uint16_t health_port;                   /* 8080 */
    char health_addr[16];                   /* "0.0.0.0" */
    uint32_t bootstrap_health_interval_ms;  /* 60000 */
    char cert_path[MACULA_CONFIG_PATH_MAX]; /* "": <data_dir>/cert.pem */
    char key_path[MACULA_CONFIG_PATH_MAX];  /* "": <data_dir>/key.pem */
    uint32_t cert_validity_days;            /* 3650, 1..36500 */
    macula_cert_expired cert_expired;       /* renew */
    uint32_t dht_k;                         /* 20, 1..256 */
    uint32_t dht_alpha;                     /* 3, 1..dht_k */
    uint32_t max_clients;                   /* 10000 */
    uint32_t mesh_pool_max;    /* 1000: outgoing mesh connections (one pool per node, LRU) */
    uint32_t idle_poll_us;     /* 200: the node's loop polls up to this long before it sleeps
                                * (adaptive, src/base/evloop.h); 0: it always sleeps */
    uint32_t max_frame_size;   /* 1 MiB */
    uint32_t ping_interval_ms; /* 30000 */
    char data_dir[MACULA_CONFIG_PATH_MAX]; /* resolved by _finish */
    uint16_t mcp_port;                     /* 8765 */
    macula_log_level log_level;            /* info */
    size_t rpc_no_direct_count;            /* 0 */
    uint8_t rpc_no_direct[MACULA_CONFIG_MAX_NO_DIRECT][MACULA_CONFIG_NODE_ID_LEN];
    char config_file[MACULA_CONFIG_PATH_MAX]; /* the INI file read, or "" */
    bool data_dir_fallback;                   /* data_dir is ./macula-data: nothing else was set */
    macula_config_source source[MACULA_KEY_COUNT]; /* where each value came from */
} macula_config;

/* Every key at its default; data_dir is "" until macula_config_finish. */
void macula_config_defaults(macula_config *cfg);

/* The whole load: defaults, the INI file named by --config or MACULA_CONFIG, the environment,
 * the flags, then macula_config_finish. argv holds only options (argv[0] is the first one).
 * env is an environ-style "NAME=VALUE" array ending with NULL, or NULL for the process
 * environment. */
int macula_config_load(macula_config *cfg, int argc, char *const *argv, const char *const *env,
                       char *err, size_t errsize);

/* The layers, for tests and tools. `where` names the source in messages ("flag --realm"). */
int macula_config_set(macula_config *cfg, macula_config_key key, const char *value,
                      macula_config_source src, const char *where, char *err, size_t errsize);
/* INI text of len bytes; name is the file name used in messages. */
int macula_config_parse_ini(macula_config *cfg, const char *text, size_t len, const char *name,
                            char *err, size_t errsize);
int macula_config_load_file(macula_config *cfg, const char *path, char *err, size_t errsize);
int macula_config_apply_env(macula_config *cfg, const char *const *env, char *err, size_t errsize);
/* Flags; --config is accepted (and recorded in config_file) but not read here. */
int macula_config_apply_args(macula_config *cfg, int argc, char *const *argv, char *err,
                             size_t errsize);
/* Checks across keys (dht_alpha <= dht_k) and resolves an empty data_dir from the process
 * environment (macula_config_load uses its env argument instead). */
int macula_config_finish(macula_config *cfg, char *err, size_t errsize);

/* Key names and lookups. */
const char *macula_config_key_name(macula_config_key key); /* "quic_port"; NULL if out of range */
int macula_config_key_by_name(const char *name);           /* key, or -1 */
const char *macula_config_source_name(macula_config_source src); /* "default", "file", ... */
const char *macula_log_level_name(macula_log_level level);       /* "info", ... */

/* The options as a usage text: flag, environment, default, allowed values. */
void macula_config_usage(FILE *f);

#ifdef __cplusplus
}
#endif

#endif
