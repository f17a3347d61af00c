/* fuzz/fuzz_config.c — libFuzzer target for the configuration parser (include/macula/config.h).
 *
 * The input is an INI file as an operator might write it. Checked properties (abort on failure):
 *  1. macula_config_parse_ini returns OK or a known error code; on error the message is
 *     non-empty and names the file; parsing the same input again gives the same result, the
 *     same struct and the same message (no hidden state);
 *  2. on success every field is within what the header allows (ports, ranges, realm characters,
 *     at most MACULA_CONFIG_MAX_PEERS NUL-terminated URLs, NUL-terminated paths), and the config
 *     written back out as INI parses to the same values;
 *  3. the input's first line, given to macula_config_set for the key picked by its first byte,
 *     is accepted or refused with a message naming the key (the validators see raw bytes that
 *     the INI parser would have trimmed).
 * ASan/UBSan (linked by CMake) catch any out-of-bounds access or undefined behaviour.
 * Seeds: fuzz/corpus/config/. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macula/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

static void check_string(const char *s, size_t cap)
{
    check(memchr(s, '\0', cap) != NULL);
}

static void check_valid(const macula_config *c)
{
    check(c->bootstrap_peer_count <= MACULA_CONFIG_MAX_PEERS);
    for (size_t i = 0; i < c->bootstrap_peer_count; i++) {
        check_string(c->bootstrap_peers[i], sizeof c->bootstrap_peers[i]);
        check(strncmp(c->bootstrap_peers[i], "https://", 8) == 0 ||
              strncmp(c->bootstrap_peers[i], "quic://", 7) == 0);
    }
    check_string(c->realm, sizeof c->realm);
    check(c->realm[0] != '\0' && strspn(c->realm, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                                                  "TUVWXYZ0123456789.-_") == strlen(c->realm));
    check_string(c->health_addr, sizeof c->health_addr);
    check_string(c->cert_path, sizeof c->cert_path);
    check_string(c->key_path, sizeof c->key_path);
    check_string(c->data_dir, sizeof c->data_dir);
    check(c->bootstrap_health_interval_ms >= 1000 && c->bootstrap_health_interval_ms <= 86400000);
    check(c->cert_validity_days >= 1 && c->cert_validity_days <= 36500);
    check(c->dht_k >= 1 && c->dht_k <= 256 && c->dht_alpha >= 1 && c->dht_alpha <= 64);
    check(c->max_clients >= 1 && c->max_clients <= 1000000);
    check(c->max_frame_size >= 1024 && c->max_frame_size <= (64u << 20));
    check(c->ping_interval_ms >= 1000 && c->ping_interval_ms <= 3600000);
    check((unsigned)c->log_level <= MACULA_LOG_DEBUG);
    check((unsigned)c->cert_expired <= MACULA_CERT_EXPIRED_WARN);
}

/* A path survives an INI round trip when inih gives it back unchanged. */
static int plain_path(const char *p)
{
    size_t n = strlen(p);
    return n > 0 && n < 150 && strpbrk(p, ";#\"\r\n[]=:") == NULL && p[0] != ' ' && p[0] != '\t' &&
           p[n - 1] != ' ' && p[n - 1] != '\t';
}

static void round_trip(const macula_config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    check(f != NULL);
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    static const char *const expired[] = {"renew", "refuse", "warn"};
    fprintf(f,
            "[macula]\nquic_port = %u\nrealm = %s\nhealth_port = %u\nhealth_addr = %s\n"
            "bootstrap_health_interval = %u\ncert_validity_days = %u\ncert_expired = %s\n"
            "dht_k = %u\ndht_alpha = %u\nmax_clients = %u\nmax_frame_size = %u\n"
            "ping_interval = %ums\nmcp_port = %u\nlog_level = %s\n",
            c->quic_port, c->realm, c->health_port, c->health_addr, c->bootstrap_health_interval_ms,
            c->cert_validity_days, expired[c->cert_expired], c->dht_k, c->dht_alpha, c->max_clients,
            c->max_frame_size, c->ping_interval_ms, c->mcp_port, levels[c->log_level]);
    for (size_t i = 0; i < c->bootstrap_peer_count; i++) {
        fprintf(f, "bootstrap_peers = %s\n", c->bootstrap_peers[i]);
    }
    int paths = plain_path(c->cert_path) && plain_path(c->key_path) && plain_path(c->data_dir);
    if (paths) {
        fprintf(f, "cert_path = %s\nkey_path = %s\ndata_dir = %s\n", c->cert_path, c->key_path,
                c->data_dir);
    }
    fclose(f);
    macula_config *d = malloc(sizeof *d);
    check(d != NULL);
    macula_config_defaults(d);
    char err[1024];
    int rc = macula_config_parse_ini(d, text, len, "rt.ini", err, sizeof err);
    /* Only inih's line limit may refuse what was accepted (a long realm or URL, now written
     * with " = " around it). */
    check(rc == MACULA_CONFIG_OK || strstr(err, "line too long") != NULL);
    if (rc == MACULA_CONFIG_OK) {
        check(d->quic_port == c->quic_port && strcmp(d->realm, c->realm) == 0 &&
              d->health_port == c->health_port && strcmp(d->health_addr, c->health_addr) == 0 &&
              d->bootstrap_health_interval_ms == c->bootstrap_health_interval_ms &&
              d->cert_validity_days == c->cert_validity_days &&
              d->cert_expired == c->cert_expired && d->dht_k == c->dht_k &&
              d->dht_alpha == c->dht_alpha && d->max_clients == c->max_clients &&
              d->max_frame_size == c->max_frame_size &&
              d->ping_interval_ms == c->ping_interval_ms && d->mcp_port == c->mcp_port &&
              d->log_level == c->log_level && d->bootstrap_peer_count == c->bootstrap_peer_count);
        for (size_t i = 0; i < c->bootstrap_peer_count; i++) {
            check(strcmp(d->bootstrap_peers[i], c->bootstrap_peers[i]) == 0);
        }
        if (paths) {
            check(strcmp(d->cert_path, c->cert_path) == 0 &&
                  strcmp(d->key_path, c->key_path) == 0 && strcmp(d->data_dir, c->data_dir) == 0);
        }
    }
    free(d);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    macula_config *a = malloc(sizeof *a);
    macula_config *b = malloc(sizeof *b);
    check(a != NULL && b != NULL);
    char ea[2048] = "";
    char eb[2048] = "";
    macula_config_defaults(a);
    macula_config_defaults(b);
    int ra = macula_config_parse_ini(a, (const char *)data, size, "fuzz.ini", ea, sizeof ea);
    int rb = macula_config_parse_ini(b, (const char *)data, size, "fuzz.ini", eb, sizeof eb);
    check(ra == rb && strcmp(ea, eb) == 0 && memcmp(a, b, sizeof *a) == 0);
    check(ra <= 0 && ra >= MACULA_CONFIG_EIO);
    if (ra != MACULA_CONFIG_OK) {
        check(ea[0] != '\0' && strstr(ea, "fuzz.ini") != NULL);
    } else {
        check_valid(a);
        round_trip(a);
    }

    /* 3: the first line as a raw value for one key. */
    if (size > 0) {
        macula_config_key key = (macula_config_key)(data[0] % MACULA_KEY_COUNT);
        const uint8_t *nl = memchr(data + 1, '\n', size - 1);
        size_t vlen = nl ? (size_t)(nl - (data + 1)) : size - 1;
        char *value = malloc(vlen + 1);
        check(value != NULL);
        memcpy(value, data + 1, vlen);
        value[vlen] = '\0'; /* an embedded NUL just ends the value early */
        macula_config_defaults(a);
        char e[2048] = "";
        int rc = macula_config_set(a, key, value, MACULA_SRC_FLAG, "flag --x", e, sizeof e);
        if (rc == MACULA_CONFIG_OK) {
            if (a->dht_alpha <= a->dht_k) {
                check_valid(a);
            }
        } else {
            check(rc == MACULA_CONFIG_EINVAL && strstr(e, macula_config_key_name(key)) != NULL);
        }
        free(value);
    }
    free(a);
    free(b);
    return 0;
}
