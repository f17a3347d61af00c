/* tests/unit/test_config.c — the node configuration (include/macula/config.h): defaults,
 * precedence flag > env > file > default, every key's validation and its message, INI errors. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "macula/config.h"

static char err[2048];

/* Runs macula_config_load with the given flags (NULL-terminated) and environment. */
static int load(macula_config *c, const char *const *flags, const char *const *env)
{
    int argc = 0;
    while (flags != NULL && flags[argc] != NULL) {
        argc++;
    }
    static const char *const empty_env[] = {"HOME=/home/test", NULL};
    err[0] = '\0';
    return macula_config_load(c, argc, (char *const *)flags, env ? env : empty_env, err,
                              sizeof err);
}

static void expect_err(int rc, int code, const char *const *needles)
{
    if (rc != code) {
        fprintf(stderr, "expected %d, got %d: %s\n", code, rc, err);
    }
    assert_int_equal(rc, code);
    for (size_t i = 0; needles[i] != NULL; i++) {
        if (strstr(err, needles[i]) == NULL) {
            fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err, needles[i]);
        }
        assert_non_null(strstr(err, needles[i]));
    }
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

static char tmpdir[64];

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/macula_cfgtest_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to <tmpdir>/name and returns the path (static buffer per call site). */
static const char *write_ini(const char *name, const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

/* ---- defaults and precedence -------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    macula_config c;
    assert_int_equal(load(&c, NULL, NULL), MACULA_CONFIG_OK);
    assert_int_equal(c.quic_port, 9443);
    assert_string_equal(c.realm, "macula.default");
    assert_int_equal(c.bootstrap_peer_count, 0);
    assert_int_equal(c.health_port, 8080);
    assert_string_equal(c.health_addr, "0.0.0.0");
    assert_int_equal(c.bootstrap_health_interval_ms, 60000);
    assert_string_equal(c.cert_path, "");
    assert_string_equal(c.key_path, "");
    assert_int_equal(c.cert_validity_days, 3650);
    assert_int_equal(c.cert_expired, MACULA_CERT_EXPIRED_RENEW);
    assert_int_equal(c.dht_k, 20);
    assert_int_equal(c.dht_alpha, 3);
    assert_int_equal(c.max_clients, 10000);
    assert_int_equal(c.mesh_pool_max, 1000);
    assert_int_equal(c.idle_poll_us, 200);
    assert_int_equal(c.max_frame_size, 1048576);
    assert_int_equal(c.ping_interval_ms, 30000);
    assert_string_equal(c.data_dir, "/home/test/.local/share/macula");
    assert_false(c.data_dir_fallback);
    assert_int_equal(c.mcp_port, 8765);
    assert_int_equal(c.log_level, MACULA_LOG_INFO);
    assert_int_equal(c.rpc_no_direct_count, 0);
    assert_string_equal(c.config_file, "");
    for (int k = 0; k < MACULA_KEY_COUNT; k++) {
        assert_int_equal(c.source[k], MACULA_SRC_DEFAULT);
    }
}

static void test_precedence(void **state)
{
    (void)state;
    char path[256];
    write_ini("prec.ini", "quic_port = 1000\nrealm = from.file\nhealth_port = 1001\n", path,
              sizeof path);
    char cfgenv[300];
    snprintf(cfgenv, sizeof cfgenv, "MACULA_CONFIG=%s", path);
    const char *env[] = {cfgenv, "MACULA_QUIC_PORT=2000", "MACULA_REALM=from.env", NULL};
    const char *flags[] = {"--quic-port", "3000", NULL};
    macula_config c;
    assert_int_equal(load(&c, flags, env), MACULA_CONFIG_OK);
    assert_int_equal(c.quic_port, 3000); /* flag > env > file */
    assert_int_equal(c.source[MACULA_KEY_QUIC_PORT], MACULA_SRC_FLAG);
    assert_string_equal(c.realm, "from.env"); /* env > file */
    assert_int_equal(c.source[MACULA_KEY_REALM], MACULA_SRC_ENV);
    assert_int_equal(c.health_port, 1001); /* file > default */
    assert_int_equal(c.source[MACULA_KEY_HEALTH_PORT], MACULA_SRC_FILE);
    assert_int_equal(c.mcp_port, 8765);
    assert_int_equal(c.source[MACULA_KEY_MCP_PORT], MACULA_SRC_DEFAULT);
    assert_string_equal(c.config_file, path);

    /* Without the flag the environment wins; without both the file. */
    assert_int_equal(load(&c, NULL, env), MACULA_CONFIG_OK);
    assert_int_equal(c.quic_port, 2000);
    const char *env2[] = {cfgenv, NULL};
    assert_int_equal(load(&c, NULL, env2), MACULA_CONFIG_OK);
    assert_int_equal(c.quic_port, 1000);
    assert_string_equal(c.realm, "from.file");

    /* --config beats MACULA_CONFIG for the choice of file. */
    char path2[256];
    write_ini("prec2.ini", "quic_port = 1111\n", path2, sizeof path2);
    const char *flags2[] = {"--config", path2, NULL};
    assert_int_equal(load(&c, flags2, env2), MACULA_CONFIG_OK);
    assert_int_equal(c.quic_port, 1111);
    assert_string_equal(c.config_file, path2);
    const char *flags3[] = {"--config=/nonexistent/macula.ini", NULL};
    expect_err(load(&c, flags3, env2), MACULA_CONFIG_EIO,
               NEEDLES("/nonexistent/macula.ini", "cannot open"));
}

static void test_env_fallbacks(void **state)
{
    (void)state;
    macula_config c;
    const char *gw[] = {"GATEWAY_PORT=4433", NULL};
    assert_int_equal(load(&c, NULL, gw), MACULA_CONFIG_OK);
    assert_int_equal(c.quic_port, 4433);
    const char *both[] = {"GATEWAY_PORT=4433", "MACULA_QUIC_PORT=5555", NULL};
    assert_int_equal(load(&c, NULL, both), MACULA_CONFIG_OK);
    assert_int_equal(c.quic_port, 5555);
    /* The fallback is only read when the first is unset, so its own errors name it. */
    const char *badgw[] = {"GATEWAY_PORT=x", NULL};
    expect_err(load(&c, NULL, badgw), MACULA_CONFIG_EINVAL,
               NEEDLES("environment GATEWAY_PORT: quic_port = \"x\" is not valid"));

    const char *url[] = {"MACULA_BOOTSTRAP_URL=https://boot.example:4433", NULL};
    assert_int_equal(load(&c, NULL, url), MACULA_CONFIG_OK);
    assert_int_equal(c.bootstrap_peer_count, 1);
    assert_string_equal(c.bootstrap_peers[0], "https://boot.example:4433");
    const char *peers[] = {"MACULA_BOOTSTRAP_URL=https://ignored.example",
                           "MACULA_BOOTSTRAP_PEERS=https://a.example:4433, quic://10.0.0.2:9443,"
                           "https://[fd00::1]:4433",
                           NULL};
    assert_int_equal(load(&c, NULL, peers), MACULA_CONFIG_OK);
    assert_int_equal(c.bootstrap_peer_count, 3);
    assert_string_equal(c.bootstrap_peers[0], "https://a.example:4433");
    assert_string_equal(c.bootstrap_peers[1], "quic://10.0.0.2:9443");
    assert_string_equal(c.bootstrap_peers[2], "https://[fd00::1]:4433");

    const char *dd[] = {"MACULA_DATA_DIR=/srv/macula", NULL};
    assert_int_equal(load(&c, NULL, dd), MACULA_CONFIG_OK);
    assert_string_equal(c.data_dir, "/srv/macula");
    assert_int_equal(c.source[MACULA_KEY_DATA_DIR], MACULA_SRC_ENV);
}

static void test_data_dir_fallback(void **state)
{
    (void)state;
    macula_config c;
    const char *none[] = {NULL}; /* no HOME, XDG_DATA_HOME or MACULA_DATA_DIR */
    assert_int_equal(load(&c, NULL, none), MACULA_CONFIG_OK);
    assert_string_equal(c.data_dir, "./macula-data");
    assert_true(c.data_dir_fallback);
    const char *xdg[] = {"XDG_DATA_HOME=/xdg", "HOME=/h", NULL};
    assert_int_equal(load(&c, NULL, xdg), MACULA_CONFIG_OK);
    assert_string_equal(c.data_dir, "/xdg/macula");
    const char *flags[] = {"--data-dir", "/var/lib/macula", NULL};
    assert_int_equal(load(&c, flags, none), MACULA_CONFIG_OK);
    assert_string_equal(c.data_dir, "/var/lib/macula");
    assert_false(c.data_dir_fallback);
}

/* ---- flags -------------------------------------------------------------------------------- */

static void test_flags(void **state)
{
    (void)state;
    macula_config c;
    const char *flags[] = {"--realm=my.realm",
                           "--health-port",
                           "0",
                           "--bootstrap-peers",
                           "quic://n1.example,quic://n2.example:9000",
                           "--log-level=debug",
                           "--ping-interval",
                           "10s",
                           "--cert-path=/etc/macula/c.pem",
                           "--key-path",
                           "/etc/macula/k.pem",
                           NULL};
    assert_int_equal(load(&c, flags, NULL), MACULA_CONFIG_OK);
    assert_string_equal(c.realm, "my.realm");
    assert_int_equal(c.health_port, 0);
    assert_int_equal(c.bootstrap_peer_count, 2);
    assert_int_equal(c.log_level, MACULA_LOG_DEBUG);
    assert_int_equal(c.ping_interval_ms, 10000);
    assert_string_equal(c.cert_path, "/etc/macula/c.pem");
    assert_string_equal(c.key_path, "/etc/macula/k.pem");

    const char *unknown[] = {"--helth-port", "1", NULL};
    expect_err(load(&c, unknown, NULL), MACULA_CONFIG_EUNKNOWN,
               NEEDLES("--helth-port", "unknown option"));
    const char *positional[] = {"extra", NULL};
    expect_err(load(&c, positional, NULL), MACULA_CONFIG_EUNKNOWN,
               NEEDLES("extra", "unknown argument"));
    const char *missing[] = {"--realm", NULL};
    expect_err(load(&c, missing, NULL), MACULA_CONFIG_EINVAL,
               NEEDLES("flag --realm", "value is missing"));
    const char *bad[] = {"--quic-port", "65536", NULL};
    expect_err(load(&c, bad, NULL), MACULA_CONFIG_EINVAL,
               NEEDLES("flag --quic-port: quic_port = \"65536\" is not valid: allowed is an "
                       "integer from 0 to 65535"));
    /* A bad flag is reported even when the file it names does not exist. */
    const char *bad_and_file[] = {"--config", "/nonexistent.ini", "--dht-k", "0", NULL};
    expect_err(load(&c, bad_and_file, NULL), MACULA_CONFIG_EINVAL, NEEDLES("flag --dht-k"));
    const char *empty_cfg[] = {"--config=", NULL};
    expect_err(load(&c, empty_cfg, NULL), MACULA_CONFIG_EINVAL, NEEDLES("flag --config"));
}

/* ---- every key's validation ---------------------------------------------------------------- */

/* Node ids for rpc_no_direct. */
#define ID_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define ID_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define ID_B_UPPER "FFEEDDCCBBAA99887766554433221100FFEEDDCCBBAA99887766554433221100"
#define ID_63 "0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define ID_NOT_HEX "g0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define ID_4 ID_A "," ID_A "," ID_A "," ID_A
#define ID_17 ID_4 "," ID_4 "," ID_4 "," ID_4 "," ID_B

typedef struct kcase {
    macula_config_key key;
    const char *good[8];
    const char *bad[12];
    const char *allowed; /* part of the message */
} kcase;

static const kcase cases[] = {
    {MACULA_KEY_QUIC_PORT,
     {"0", "1", "9443", "65535", NULL},
     {"", "-1", "65536", "abc", "12ab", " 1", "1 ", "+5", "99999999999999999999999", NULL},
     "an integer from 0 to 65535"},
    {MACULA_KEY_REALM,
     {"macula.arcade", "a", "my-realm_1.x", NULL},
     {"", "has space", "é", "a/b", "a,b", NULL},
     "1 to 253 characters"},
    {MACULA_KEY_BOOTSTRAP_PEERS,
     {"", "https://boot.example:4433", "quic://10.0.0.1", "https://[::1]:4433/x,quic://a.b", NULL},
     {"http://x.example", "https://", "https://host:0", "https://host:70000", "https://-bad.com",
      "https://bad-.com", "https://a..b", "https://[zz]:1", "https://x y", "ftp://x", NULL},
     "comma-separated list"},
    {MACULA_KEY_HEALTH_PORT, {"0", "8080", NULL}, {"99999", "x", NULL}, "0 to 65535"},
    {MACULA_KEY_HEALTH_ADDR,
     {"0.0.0.0", "127.0.0.1", NULL},
     {"", "localhost", "256.1.1.1", "::1", "1.2.3", NULL},
     "an IPv4 address"},
    {MACULA_KEY_BOOTSTRAP_HEALTH_INTERVAL,
     {"1000", "60000", "5s", "2m", "1h", NULL},
     {"999", "0", "2d", "86400001", "10 s", "s", NULL},
     "a duration from 1000 ms to 86400000 ms"},
    {MACULA_KEY_CERT_PATH, {"", "/a/b.pem", "rel.pem", NULL}, {NULL}, "a path"},
    {MACULA_KEY_KEY_PATH, {"", "/a/k.pem", NULL}, {NULL}, "a path"},
    {MACULA_KEY_CERT_VALIDITY_DAYS,
     {"1", "3650", "36500", NULL},
     {"0", "36501", "-3", "1.5", NULL},
     "an integer from 1 to 36500"},
    {MACULA_KEY_CERT_EXPIRED,
     {"renew", "refuse", "warn", NULL},
     {"", "Renew", "ignore", NULL},
     "one of renew, refuse, warn"},
    {MACULA_KEY_DHT_K, {"3", "20", "256", NULL}, {"0", "257", NULL}, "from 1 to 256"},
    {MACULA_KEY_DHT_ALPHA, {"1", "3", NULL}, {"0", "65", NULL}, "at most dht_k"},
    {MACULA_KEY_MAX_CLIENTS,
     {"1", "10000", "1000000", NULL},
     {"0", "1000001", NULL},
     "from 1 to 1000000"},
    {MACULA_KEY_MAX_FRAME_SIZE,
     {"1024", "1048576", "67108864", NULL},
     {"1023", "67108865", "1MiB", NULL},
     "from 1024 to 67108864"},
    {MACULA_KEY_PING_INTERVAL,
     {"1000", "30s", "1h", "30000ms", NULL},
     {"999", "61m", "-1s", "30sec", NULL},
     "from 1000 ms to 3600000 ms"},
    {MACULA_KEY_DATA_DIR, {"/var/lib/macula", "./d", NULL}, {NULL}, "a path"},
    {MACULA_KEY_MCP_PORT, {"0", "8765", NULL}, {"70000", NULL}, "0 to 65535"},
    {MACULA_KEY_LOG_LEVEL,
     {"error", "warn", "info", "debug", NULL},
     {"trace", "INFO", "", NULL},
     "one of error, warn, info, debug"},
    {MACULA_KEY_RPC_NO_DIRECT,
     {"", ID_A, ID_A "," ID_B, " " ID_B_UPPER " , " ID_A " ", ",", NULL},
     {"xyz", ID_A "0", ID_63, ID_NOT_HEX, ID_A ";" ID_B, ID_A "," ID_63, "0x" ID_63, NULL},
     "at most 16 node ids of 64 hex digits"},
    {MACULA_KEY_MESH_POOL_MAX,
     {"1", "1000", "100000", NULL},
     {"0", "100001", "-1", "lots", NULL},
     "from 1 to 100000"},
    {MACULA_KEY_IDLE_POLL_US,
     {"0", "200", "10000", NULL},
     {"10001", "-1", "200us", NULL},
     "from 0 to 10000"},
};

static void test_every_key(void **state)
{
    (void)state;
    assert_int_equal(sizeof cases / sizeof cases[0], MACULA_KEY_COUNT);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const kcase *k = &cases[i];
        const char *name = macula_config_key_name(k->key);
        assert_non_null(name);
        assert_int_equal(macula_config_key_by_name(name), (int)k->key);
        for (size_t g = 0; k->good[g] != NULL; g++) {
            macula_config c;
            macula_config_defaults(&c);
            int rc =
                macula_config_set(&c, k->key, k->good[g], MACULA_SRC_FLAG, "test", err, sizeof err);
            if (rc != 0) {
                fprintf(stderr, "%s = \"%s\" refused: %s\n", name, k->good[g], err);
            }
            assert_int_equal(rc, MACULA_CONFIG_OK);
            assert_int_equal(c.source[k->key], MACULA_SRC_FLAG);
        }
        for (size_t b = 0; k->bad[b] != NULL; b++) {
            macula_config c;
            macula_config_defaults(&c);
            macula_config before = c;
            int rc = macula_config_set(&c, k->key, k->bad[b], MACULA_SRC_ENV, "environment X", err,
                                       sizeof err);
            if (rc != MACULA_CONFIG_EINVAL) {
                fprintf(stderr, "%s = \"%s\" accepted\n", name, k->bad[b]);
            }
            assert_int_equal(rc, MACULA_CONFIG_EINVAL);
            char head[512];
            snprintf(head, sizeof head, "environment X: %s = \"%s\" is not valid", name, k->bad[b]);
            if (strstr(err, head) == NULL || strstr(err, k->allowed) == NULL) {
                fprintf(stderr, "message: %s\n", err);
            }
            assert_non_null(strstr(err, head));
            assert_non_null(strstr(err, k->allowed));
            /* A refused value changes nothing. */
            assert_memory_equal(&c, &before, sizeof c);
        }
    }
}

static void test_values_parsed(void **state)
{
    (void)state;
    macula_config c;
    macula_config_defaults(&c);
    assert_int_equal(macula_config_set(&c, MACULA_KEY_PING_INTERVAL, "2m", MACULA_SRC_FILE, "f",
                                       err, sizeof err),
                     0);
    assert_int_equal(c.ping_interval_ms, 120000);
    assert_int_equal(macula_config_set(&c, MACULA_KEY_BOOTSTRAP_HEALTH_INTERVAL, "1500ms",
                                       MACULA_SRC_FILE, "f", err, sizeof err),
                     0);
    assert_int_equal(c.bootstrap_health_interval_ms, 1500);
    assert_int_equal(macula_config_set(&c, MACULA_KEY_CERT_EXPIRED, "refuse", MACULA_SRC_FILE, "f",
                                       err, sizeof err),
                     0);
    assert_int_equal(c.cert_expired, MACULA_CERT_EXPIRED_REFUSE);
    assert_int_equal(
        macula_config_set(&c, MACULA_KEY_LOG_LEVEL, "warn", MACULA_SRC_FILE, "f", err, sizeof err),
        0);
    assert_int_equal(c.log_level, MACULA_LOG_WARN);
    assert_string_equal(macula_log_level_name(c.log_level), "warn");
    /* Too many peers, and a URL over 255 characters. */
    char list[4096] = "";
    for (int i = 0; i < MACULA_CONFIG_MAX_PEERS + 1; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%squic://n%d.example", i ? "," : "", i);
    }
    expect_err(macula_config_set(&c, MACULA_KEY_BOOTSTRAP_PEERS, list, MACULA_SRC_FLAG, "flag x",
                                 err, sizeof err),
               MACULA_CONFIG_EINVAL, NEEDLES("more than 32 peers", "bootstrap_peers"));
    char url[400];
    memset(url, 'a', sizeof url);
    memcpy(url, "https://", 8);
    url[300] = '\0';
    expect_err(macula_config_set(&c, MACULA_KEY_BOOTSTRAP_PEERS, url, MACULA_SRC_FLAG, "flag x",
                                 err, sizeof err),
               MACULA_CONFIG_EINVAL, NEEDLES("is not a URL allowed here"));
    /* A path of 4095 characters fits, 4096 does not. */
    char *path = malloc(MACULA_CONFIG_PATH_MAX + 1);
    memset(path, 'p', MACULA_CONFIG_PATH_MAX);
    path[MACULA_CONFIG_PATH_MAX - 1] = '\0';
    assert_int_equal(macula_config_set(&c, MACULA_KEY_DATA_DIR, path, MACULA_SRC_FLAG, "flag x",
                                       err, sizeof err),
                     0);
    path[MACULA_CONFIG_PATH_MAX - 1] = 'p';
    path[MACULA_CONFIG_PATH_MAX] = '\0';
    assert_int_equal(macula_config_set(&c, MACULA_KEY_DATA_DIR, path, MACULA_SRC_FLAG, "flag x",
                                       err, sizeof err),
                     MACULA_CONFIG_EINVAL);
    free(path);
    assert_int_equal(
        macula_config_set(NULL, MACULA_KEY_REALM, "x", MACULA_SRC_FLAG, "f", err, sizeof err),
        MACULA_CONFIG_EINVAL);
    assert_int_equal(
        macula_config_set(&c, MACULA_KEY_COUNT, "x", MACULA_SRC_FLAG, "f", err, sizeof err),
        MACULA_CONFIG_EINVAL);
}

/* rpc_no_direct: parsed bytes, flag > env > file, replacing (not adding), the refusals. */
static void test_rpc_no_direct(void **state)
{
    (void)state;
    macula_config c;
    macula_config_defaults(&c);
    assert_int_equal(macula_config_set(&c, MACULA_KEY_RPC_NO_DIRECT, " " ID_B_UPPER ", " ID_A,
                                       MACULA_SRC_FLAG, "f", err, sizeof err),
                     0);
    assert_int_equal(c.rpc_no_direct_count, 2);
    static const uint8_t b[4] = {0xff, 0xee, 0xdd, 0xcc}, a_last = 0xff;
    assert_memory_equal(c.rpc_no_direct[0], b, sizeof b);
    assert_int_equal(c.rpc_no_direct[1][0], 0x00);
    assert_int_equal(c.rpc_no_direct[1][31], a_last);
    assert_int_equal(c.rpc_no_direct[1][1], 0x11);
    /* An empty value clears the list. */
    assert_int_equal(
        macula_config_set(&c, MACULA_KEY_RPC_NO_DIRECT, "", MACULA_SRC_FLAG, "f", err, sizeof err),
        0);
    assert_int_equal(c.rpc_no_direct_count, 0);
    /* Sixteen fit, seventeen do not. */
    assert_int_equal(macula_config_set(&c, MACULA_KEY_RPC_NO_DIRECT,
                                       ID_4 "," ID_4 "," ID_4 "," ID_4, MACULA_SRC_FLAG, "f", err,
                                       sizeof err),
                     0);
    assert_int_equal(c.rpc_no_direct_count, 16);
    expect_err(
        macula_config_set(&c, MACULA_KEY_RPC_NO_DIRECT, ID_17, MACULA_SRC_ENV,
                          "environment MACULA_RPC_NO_DIRECT", err, sizeof err),
        MACULA_CONFIG_EINVAL,
        NEEDLES("environment MACULA_RPC_NO_DIRECT: rpc_no_direct =", "more than 16 node ids"));
    assert_int_equal(c.rpc_no_direct_count, 16);
    expect_err(macula_config_set(&c, MACULA_KEY_RPC_NO_DIRECT, ID_A ",nope", MACULA_SRC_FLAG,
                                 "flag --rpc-no-direct", err, sizeof err),
               MACULA_CONFIG_EINVAL,
               NEEDLES("flag --rpc-no-direct: rpc_no_direct", "\"nope\" is not a node id"));
    /* Precedence: flag > environment > file. */
    char path[256];
    write_ini("nd.ini", "rpc_no_direct = " ID_A "\n", path, sizeof path);
    const char *env[] = {"HOME=/h", "MACULA_RPC_NO_DIRECT=" ID_B, NULL};
    const char *file_only[] = {"--config", path, NULL};
    const char *env_file[] = {"HOME=/h", NULL};
    assert_int_equal(load(&c, file_only, env_file), 0);
    assert_int_equal(c.rpc_no_direct_count, 1);
    assert_int_equal(c.rpc_no_direct[0][0], 0x00);
    assert_int_equal(c.source[MACULA_KEY_RPC_NO_DIRECT], MACULA_SRC_FILE);
    assert_int_equal(load(&c, file_only, env), 0);
    assert_int_equal(c.rpc_no_direct[0][0], 0xff);
    assert_int_equal(c.source[MACULA_KEY_RPC_NO_DIRECT], MACULA_SRC_ENV);
    const char *flag_over[] = {"--config", path, "--rpc-no-direct=" ID_A "," ID_B, NULL};
    assert_int_equal(load(&c, flag_over, env), 0);
    assert_int_equal(c.rpc_no_direct_count, 2);
    assert_int_equal(c.source[MACULA_KEY_RPC_NO_DIRECT], MACULA_SRC_FLAG);
    const char *bad_env[] = {"HOME=/h", "MACULA_RPC_NO_DIRECT=abc", NULL};
    expect_err(load(&c, NULL, bad_env), MACULA_CONFIG_EINVAL,
               NEEDLES("environment MACULA_RPC_NO_DIRECT: rpc_no_direct = \"abc\" is not valid"));
}

static void test_alpha_at_most_k(void **state)
{
    (void)state;
    macula_config c;
    const char *env[] = {"MACULA_DHT_ALPHA=8", NULL};
    const char *flags[] = {"--dht-k", "5", NULL};
    expect_err(load(&c, flags, env), MACULA_CONFIG_EINVAL,
               NEEDLES("dht_alpha = 8", "at most dht_k (5, flag)"));
    const char *flags2[] = {"--dht-k", "8", NULL};
    assert_int_equal(load(&c, flags2, env), MACULA_CONFIG_OK);
    assert_int_equal(c.dht_alpha, 8);
}

/* ---- the INI file ------------------------------------------------------------------------- */

static int ini(macula_config *c, const char *text)
{
    macula_config_defaults(c);
    err[0] = '\0';
    return macula_config_parse_ini(c, text, strlen(text), "t.ini", err, sizeof err);
}

static void test_ini_every_key(void **state)
{
    (void)state;
    macula_config c;
    const char *text = "; the seed's sys.config, as INI\n"
                       "# comments with either prefix\n"
                       "[macula]\n"
                       "quic_port = 4433\n"
                       "realm = \"macula.arcade\"\n"
                       "health_port = 8081\n"
                       "health_addr = 127.0.0.1\n"
                       "bootstrap_health_interval = 60000\n"
                       "bootstrap_peers = https://b1.example:4433\n"
                       "bootstrap_peers = https://b2.example:4433, quic://b3.example\n"
                       "cert_path = /var/lib/macula/cert.pem\n"
                       "key_path = /var/lib/macula/key.pem\n"
                       "cert_validity_days = 365\n"
                       "cert_expired = warn\n"
                       "dht_k = 16\n"
                       "dht_alpha = 4 ; inline comment\n"
                       "max_clients = 500\n"
                       "max_frame_size = 65536\n"
                       "ping_interval = 15s\n"
                       "data_dir = /var/lib/macula\n"
                       "mcp_port = 9876\n"
                       "  log_level = debug\n"
                       "rpc_no_direct = " ID_B "\n"
                       "mesh_pool_max = 250\n"
                       "idle_poll_us = 0\n";
    assert_int_equal(ini(&c, text), MACULA_CONFIG_OK);
    assert_int_equal(c.quic_port, 4433);
    assert_string_equal(c.realm, "macula.arcade");
    assert_int_equal(c.health_port, 8081);
    assert_string_equal(c.health_addr, "127.0.0.1");
    assert_int_equal(c.bootstrap_peer_count, 3);
    assert_string_equal(c.bootstrap_peers[2], "quic://b3.example");
    assert_string_equal(c.cert_path, "/var/lib/macula/cert.pem");
    assert_string_equal(c.key_path, "/var/lib/macula/key.pem");
    assert_int_equal(c.cert_validity_days, 365);
    assert_int_equal(c.cert_expired, MACULA_CERT_EXPIRED_WARN);
    assert_int_equal(c.dht_k, 16);
    assert_int_equal(c.dht_alpha, 4);
    assert_int_equal(c.max_clients, 500);
    assert_int_equal(c.max_frame_size, 65536);
    assert_int_equal(c.ping_interval_ms, 15000);
    assert_string_equal(c.data_dir, "/var/lib/macula");
    assert_int_equal(c.mcp_port, 9876);
    assert_int_equal(c.log_level, MACULA_LOG_DEBUG);
    assert_int_equal(c.rpc_no_direct_count, 1);
    assert_int_equal(c.rpc_no_direct[0][0], 0xff);
    assert_int_equal(c.mesh_pool_max, 250);
    assert_int_equal(c.idle_poll_us, 0);
    for (int k = 0; k < MACULA_KEY_COUNT; k++) {
        assert_int_equal(c.source[k], MACULA_SRC_FILE);
    }
    /* Top level (no section), CRLF line endings, a UTF-8 BOM, an empty file. */
    assert_int_equal(ini(&c, "\xef\xbb\xbfquic_port=1\r\nrealm : r\r\n"), MACULA_CONFIG_OK);
    assert_int_equal(c.quic_port, 1);
    assert_string_equal(c.realm, "r");
    assert_int_equal(ini(&c, ""), MACULA_CONFIG_OK);
    assert_int_equal(c.quic_port, 9443);
}

static void test_ini_errors(void **state)
{
    (void)state;
    macula_config c;
    expect_err(ini(&c, "quic_port = 1\n\nhelth_port = 2\n"), MACULA_CONFIG_EUNKNOWN,
               NEEDLES("t.ini:3: unknown key \"helth_port\"", "health_port"));
    expect_err(ini(&c, "[gateway]\nquic_port = 1\n"), MACULA_CONFIG_EUNKNOWN,
               NEEDLES("t.ini:2: unknown section [gateway]"));
    expect_err(ini(&c, "quic_port = 1\njust words\n"), MACULA_CONFIG_ESYNTAX,
               NEEDLES("t.ini:2: syntax error"));
    expect_err(ini(&c, "[macula\n"), MACULA_CONFIG_ESYNTAX, NEEDLES("t.ini:1: syntax error"));
    expect_err(ini(&c, "health_port = 1\nrealm = x\nhealth_port = 2\n"), MACULA_CONFIG_EINVAL,
               NEEDLES("t.ini:3: health_port is set twice (first on line 1)"));
    expect_err(ini(&c, "# c\nhealth_port = 99999\n"), MACULA_CONFIG_EINVAL,
               NEEDLES("t.ini:2: health_port = \"99999\" is not valid: allowed is an integer "
                       "from 0 to 65535"));
    expect_err(ini(&c, "bootstrap_peers = https://ok.example, http://bad.example\n"),
               MACULA_CONFIG_EINVAL,
               NEEDLES("t.ini:1: bootstrap_peers", "\"http://bad.example\" is not a URL"));
    expect_err(ini(&c, "realm = \"unterminated\n"), MACULA_CONFIG_EINVAL,
               NEEDLES("realm = \"\"unterminated\""));
    /* An indented line is a key of its own, never a continuation of the previous value. */
    expect_err(ini(&c, "realm = a\n  b\n"), MACULA_CONFIG_ESYNTAX, NEEDLES("t.ini:2"));
    /* A line over the parser's limit. */
    char longline[600];
    snprintf(longline, sizeof longline, "realm = x\nbootstrap_peers = https://%0480d.example\n", 0);
    expect_err(ini(&c, longline), MACULA_CONFIG_ESYNTAX, NEEDLES("t.ini:2: line too long"));
    /* NUL bytes and oversized text. */
    const char nul[] = "quic_port = 1\nrealm = a\0b\n";
    macula_config_defaults(&c);
    expect_err(macula_config_parse_ini(&c, nul, sizeof nul - 1, "t.ini", err, sizeof err),
               MACULA_CONFIG_ESYNTAX, NEEDLES("t.ini:2: a NUL byte"));
    expect_err(
        macula_config_parse_ini(&c, "", MACULA_CONFIG_MAX_FILE + 1, "t.ini", err, sizeof err),
        MACULA_CONFIG_EINVAL, NEEDLES("larger than the limit"));
}

static void test_ini_files(void **state)
{
    (void)state;
    macula_config c;
    macula_config_defaults(&c);
    char path[256];
    write_ini("ok.ini", "[macula]\nrealm = file.realm\n", path, sizeof path);
    assert_int_equal(macula_config_load_file(&c, path, err, sizeof err), MACULA_CONFIG_OK);
    assert_string_equal(c.realm, "file.realm");
    assert_string_equal(c.config_file, path);
    write_ini("bad.ini", "[macula]\nrealm = ok\nbogus = 1\n", path, sizeof path);
    char needle[300];
    snprintf(needle, sizeof needle, "%s:3: unknown key \"bogus\"", path);
    expect_err(macula_config_load_file(&c, path, err, sizeof err), MACULA_CONFIG_EUNKNOWN,
               NEEDLES(needle));
    expect_err(macula_config_load_file(&c, tmpdir, err, sizeof err), MACULA_CONFIG_EIO,
               NEEDLES("not a regular file"));
    /* Over the size limit. */
    snprintf(path, sizeof path, "%s/big.ini", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fseek(f, MACULA_CONFIG_MAX_FILE, SEEK_SET), 0);
    fputc('\n', f);
    fclose(f);
    expect_err(macula_config_load_file(&c, path, err, sizeof err), MACULA_CONFIG_EINVAL,
               NEEDLES("larger than the limit"));
    /* Through macula_config_load: the error names the file and line. */
    write_ini("load.ini", "health_port = 70000\n", path, sizeof path);
    const char *flags[] = {"--config", path, NULL};
    snprintf(needle, sizeof needle, "%s:1: health_port = \"70000\" is not valid", path);
    expect_err(load(&c, flags, NULL), MACULA_CONFIG_EINVAL, NEEDLES(needle));
}

static void test_names_and_usage(void **state)
{
    (void)state;
    assert_string_equal(macula_config_strerror(MACULA_CONFIG_OK), "ok");
    assert_string_equal(macula_config_strerror(MACULA_CONFIG_EINVAL), "invalid value");
    assert_string_equal(macula_config_strerror(MACULA_CONFIG_EUNKNOWN), "unknown key");
    assert_string_equal(macula_config_strerror(MACULA_CONFIG_ESYNTAX), "syntax error");
    assert_string_equal(macula_config_strerror(MACULA_CONFIG_EIO), "I/O error");
    assert_string_equal(macula_config_strerror(7), "unknown error");
    assert_string_equal(macula_config_source_name(MACULA_SRC_ENV), "environment");
    assert_null(macula_config_key_name(MACULA_KEY_COUNT));
    assert_int_equal(macula_config_key_by_name("nope"), -1);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    macula_config_usage(f);
    fclose(f);
    assert_non_null(strstr(text, "--config FILE"));
    for (int k = 0; k < MACULA_KEY_COUNT; k++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", macula_config_key_name((macula_config_key)k));
        for (char *p = flag + 2; *p; p++) {
            *p = *p == '_' ? '-' : *p;
        }
        assert_non_null(strstr(text, flag));
    }
    assert_non_null(strstr(text, "GATEWAY_PORT"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),      cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_env_fallbacks), cmocka_unit_test(test_data_dir_fallback),
        cmocka_unit_test(test_flags),         cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_values_parsed), cmocka_unit_test(test_alpha_at_most_k),
        cmocka_unit_test(test_ini_every_key), cmocka_unit_test(test_ini_errors),
        cmocka_unit_test(test_ini_files),     cmocka_unit_test(test_names_and_usage),
        cmocka_unit_test(test_rpc_no_direct),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
