/*
 * bench/bench_quic.c — the QUIC transport's costs (src/mesh/quic.h) on loopback.
 *
 *   bench_quic [N_IDLE] [N_LAT] [WINDOW]      defaults 10000, 1000 and 256
 *
 * The server endpoint runs in this process, the clients in a child forked at the start (one client
 * endpoint, one UDP socket, all its connections demultiplexed by connection ID). Both processes
 * make their own throwaway identity in a temporary directory. Phases:
 *
 *   latency   N_LAT sequential connections. For each: quic_connect -> on_connected is the
 *             handshake latency; then 1 KiB is written on a new stream with FIN and the
 *             server echoes it: quic_connect -> echo complete is the first-data latency
 *             (this is where ngtcp2 0.12's pre-RTT pacing delay would show, docs/quic.md).
 *             -> quic_handshake_p50_us, quic_handshake_p99_us, quic_first_echo_p50_us,
 *                quic_first_echo_p99_us
 *   connect   N_IDLE connections opened with at most WINDOW handshakes in flight; the time from
 *             the first quic_connect to the last on_connected.
 *             -> quic_connects_per_s
 *   memory    those N_IDLE connections then stay open and idle. The server's resident set
 *             (/proc/self/statm) and malloc'ed bytes (mallinfo2) are sampled before the
 *             connect phase (after the latency phase's connections drained) and once all
 *             N_IDLE are established; the deltas / N_IDLE:
 *             -> quic_server_bytes_per_conn_rss, quic_server_bytes_per_conn_heap,
 *                quic_server_ngtcp2_bytes_per_conn (the part ngtcp2 holds, counted by the
 *                endpoint's allocator), and the client process's quic_client_bytes_per_conn_*
 *
 * Output: one "name value" line per result (bench/bench_runtime.c's format).
 *
 *   bench_quic --mqtt PORT N BROKER_PID [tls]
 *
 * The comparison bench/quic.sh makes with mosquitto: N MQTT 3.1.1 clients (raw sockets, one
 * CONNECT each, CONNACK awaited, then idle) against a broker on 127.0.0.1:PORT, over TCP or,
 * with `tls`, TLS 1.3 (GnuTLS, certificate not verified: a benchmark). Connections are made
 * one after the other.
 *   -> mqtt_connect_p50_us, mqtt_connect_p99_us, mqtt_connects_per_s, mqtt_idle_conns,
 *      mqtt_broker_bytes_per_conn_rss (the broker's /proc/PID/statm resident delta / N)
 * (with tls the names start mqtts_).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "mesh/identity.h"
#include "mesh/quic.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_quic[%d]: %s: %s\n", (int)getpid(), what, why);
    exit(1);
}

static size_t rss_of(const char *statm)
{
    char buf[128] = {0};
    FILE *f = fopen(statm, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end = NULL;
    strtoul(buf, &end, 10); /* size */
    unsigned long res = strtoul(end, NULL, 10);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t rss_bytes(void)
{
    return rss_of("/proc/self/statm");
}

static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static identity *make_identity(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/macula_benchquic_XXXXXX");
    if (!mkdtemp(dir))
        die("mkdtemp", "failed");
    identity_config cfg = {.data_dir = dir};
    identity *id = NULL;
    char err[256];
    if (identity_load_or_create(&cfg, &id, err, sizeof err) != IDENTITY_OK)
        die("identity", err);
    return id;
}

static void remove_dir(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_quic: could not remove %s\n", dir);
}

static void on_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    (void)level;
    fprintf(stderr, "bench_quic[%d]: %s\n", (int)getpid(), msg);
}

/* ---- control channel: one byte at a time over a pipe, watched by uv_poll ----------------- */

typedef struct ctl {
    int rfd, wfd;
    uv_poll_t poll;
    void (*on_msg)(char c, void *arg);
    void *arg;
} ctl;

static void ctl_on_readable(uv_poll_t *p, int status, int events)
{
    ctl *c = p->data;
    (void)events;
    if (status < 0)
        die("control pipe", uv_strerror(status));
    char b;
    ssize_t n = read(c->rfd, &b, 1);
    if (n == 1)
        c->on_msg(b, c->arg);
    else
        c->on_msg('\0', c->arg); /* the other process is gone */
}

static void ctl_start(uv_loop_t *loop, ctl *c)
{
    uv_poll_init(loop, &c->poll, c->rfd);
    c->poll.data = c;
    uv_poll_start(&c->poll, UV_READABLE, ctl_on_readable);
}

static void ctl_send(ctl *c, char b)
{
    if (write(c->wfd, &b, 1) != 1)
        die("control pipe", "write failed");
}

/* ---- server (parent) --------------------------------------------------------------------- */

typedef struct server {
    quic_endpoint *ep;
    ctl ctl;
    size_t n_idle;
    size_t rss0, heap0, ng0;
    uv_timer_t wait;
    bool done;
} server;

static void srv_data(quic_conn *c, int64_t sid, const uint8_t *data, size_t len, bool fin,
                     void *ctx)
{
    (void)ctx;
    if (quic_stream_write(c, sid, data, len, fin) != QUIC_OK)
        quic_stream_reset(c, sid, 1);
}

static void srv_wait_drained(uv_timer_t *t)
{
    server *s = t->data;
    quic_endpoint_stats st;
    quic_endpoint_stats_get(s->ep, &st);
    if (st.connections != 0)
        return; /* the latency phase's connections are still in their draining period */
    uv_timer_stop(t);
    malloc_trim(0);
    s->rss0 = rss_bytes();
    s->heap0 = heap_bytes();
    s->ng0 = st.ngtcp2_bytes;
    ctl_send(&s->ctl, 'b'); /* start the connect phase */
}

static void srv_msg(char c, void *arg)
{
    server *s = arg;
    quic_endpoint_stats st;
    switch (c) {
    case 'A': /* latency phase over */ uv_timer_start(&s->wait, srv_wait_drained, 50, 50); break;
    case 'B': /* all N_IDLE connected and idle */
        quic_endpoint_stats_get(s->ep, &st);
        if (st.connections != s->n_idle)
            fprintf(stderr, "bench_quic: server holds %zu connections, expected %zu\n",
                    st.connections, s->n_idle);
        printf("quic_idle_conns %zu\n", st.connections);
        printf("quic_server_bytes_per_conn_rss %.0f\n",
               ((double)rss_bytes() - (double)s->rss0) / (double)st.connections);
        printf("quic_server_bytes_per_conn_heap %.0f\n",
               ((double)heap_bytes() - (double)s->heap0) / (double)st.connections);
        printf("quic_server_ngtcp2_bytes_per_conn %.0f\n",
               ((double)st.ngtcp2_bytes - (double)s->ng0) / (double)st.connections);
        fflush(stdout);
        ctl_send(&s->ctl, 'd'); /* the client may print and go */
        break;
    default: /* client finished (or died) */
        s->done = true;
        uv_poll_stop(&s->ctl.poll);
        uv_close((uv_handle_t *)&s->ctl.poll, NULL);
        uv_close((uv_handle_t *)&s->wait, NULL);
        quic_endpoint_close(s->ep);
        break;
    }
}

/* ---- clients (child) --------------------------------------------------------------------- */

typedef struct client {
    quic_endpoint *ep;
    ctl ctl;
    uint16_t port;
    uint8_t server_id[IDENTITY_ID_LEN];
    size_t n_idle, n_lat, window;
    /* latency phase */
    size_t lat_i;
    uint64_t t0;
    uint64_t *hs, *echo;
    size_t echo_got;
    /* connect phase */
    bool connect_phase;
    size_t started, connected, failed;
    uint64_t tc0;
    size_t rss0, heap0;
    quic_conn **conns;
} client;

static void cli_next_latency(client *c);

static void cli_connect_one(client *c)
{
    quic_conn *qc = NULL;
    int rc = quic_connect(c->ep, "127.0.0.1", c->port, c->server_id, NULL, &qc);
    if (rc != QUIC_OK)
        die("quic_connect", quic_strerror(rc));
    if (c->connect_phase)
        c->conns[c->started] = qc;
    c->started++;
}

static void cli_fill_window(client *c)
{
    while (c->started < c->n_idle && c->started - c->connected - c->failed < c->window)
        cli_connect_one(c);
}

static void cli_connected(quic_conn *qc, void *ctx)
{
    client *c = ctx;
    if (!c->connect_phase) {
        c->hs[c->lat_i] = uv_hrtime() - c->t0;
        int64_t sid;
        uint8_t msg[1024];
        memset(msg, 'x', sizeof msg);
        c->echo_got = 0;
        if (quic_stream_open(qc, &sid) != QUIC_OK ||
            quic_stream_write(qc, sid, msg, sizeof msg, true) != QUIC_OK)
            die("latency", "cannot write");
        return;
    }
    c->connected++;
    if (c->connected + c->failed == c->n_idle) {
        uint64_t ns = uv_hrtime() - c->tc0;
        printf("quic_connects_per_s %.0f\n", (double)c->connected * 1e9 / (double)ns);
        fflush(stdout);
        ctl_send(&c->ctl, 'B');
        return;
    }
    cli_fill_window(c);
}

static void cli_data(quic_conn *qc, int64_t sid, const uint8_t *data, size_t len, bool fin,
                     void *ctx)
{
    client *c = ctx;
    (void)sid;
    (void)data;
    c->echo_got += len;
    if (fin && !c->connect_phase) {
        c->echo[c->lat_i] = uv_hrtime() - c->t0;
        quic_conn_close(qc, 0, "done");
    }
}

static void cli_closed(quic_conn *qc, const quic_close_info *info, void *ctx)
{
    client *c = ctx;
    (void)qc;
    if (c->connect_phase) {
        if (c->connected + c->failed < c->n_idle) {
            c->failed++;
            fprintf(stderr, "bench_quic: connection failed: %s %s\n", quic_strerror(info->error),
                    info->reason);
            cli_fill_window(c);
        }
        return;
    }
    if (info->error != QUIC_OK)
        die("latency connection", info->reason);
    c->lat_i++;
    cli_next_latency(c);
}

static void cli_next_latency(client *c)
{
    if (c->lat_i == c->n_lat) {
        printf("quic_handshake_p50_us %.1f\n", (double)pct(c->hs, c->n_lat, 0.50) / 1e3);
        printf("quic_handshake_p99_us %.1f\n", (double)pct(c->hs, c->n_lat, 0.99) / 1e3);
        printf("quic_first_echo_p50_us %.1f\n", (double)pct(c->echo, c->n_lat, 0.50) / 1e3);
        printf("quic_first_echo_p99_us %.1f\n", (double)pct(c->echo, c->n_lat, 0.99) / 1e3);
        fflush(stdout);
        ctl_send(&c->ctl, 'A');
        return;
    }
    c->t0 = uv_hrtime();
    cli_connect_one(c);
}

static void cli_msg(char m, void *arg)
{
    client *c = arg;
    if (m == 'b') {
        malloc_trim(0);
        c->rss0 = rss_bytes();
        c->heap0 = heap_bytes();
        c->connect_phase = true;
        c->started = c->connected = c->failed = 0;
        c->tc0 = uv_hrtime();
        cli_fill_window(c);
        return;
    }
    if (m == 'd') {
        printf("quic_client_bytes_per_conn_rss %.0f\n",
               ((double)rss_bytes() - (double)c->rss0) / (double)c->n_idle);
        printf("quic_client_bytes_per_conn_heap %.0f\n",
               ((double)heap_bytes() - (double)c->heap0) / (double)c->n_idle);
        fflush(stdout);
    }
    uv_poll_stop(&c->ctl.poll);
    uv_close((uv_handle_t *)&c->ctl.poll, NULL);
    quic_endpoint_close(c->ep);
}

static int run_client(client *c)
{
    char dir[64];
    identity *id = make_identity(dir, sizeof dir);
    uv_loop_t loop;
    uv_loop_init(&loop);
    quic_config cfg = {0};
    cfg.id = id;
    cfg.bind_host = "127.0.0.1";
    cfg.cb.on_connected = cli_connected;
    cfg.cb.on_stream_data = cli_data;
    cfg.cb.on_closed = cli_closed;
    cfg.ctx = c;
    cfg.log = on_log;
    cfg.log_level = QUIC_LOG_ERROR;
    cfg.max_connections = (uint32_t)c->n_idle + 16;
    int rc = quic_endpoint_new(&loop, &cfg, &c->ep);
    if (rc != QUIC_OK)
        die("client endpoint", quic_strerror(rc));
    c->hs = calloc(c->n_lat ? c->n_lat : 1, sizeof *c->hs);
    c->echo = calloc(c->n_lat ? c->n_lat : 1, sizeof *c->echo);
    c->conns = calloc(c->n_idle, sizeof *c->conns);
    if (!c->hs || !c->echo || !c->conns)
        die("client", "out of memory");
    ctl_start(&loop, &c->ctl);
    cli_next_latency(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(c->hs);
    free(c->echo);
    free(c->conns);
    identity_free(id);
    remove_dir(dir);
    return 0;
}

/* ---- main -------------------------------------------------------------------------------- */

/* ---- MQTT comparison -------------------------------------------------------------------- */

typedef struct mqtt_conn {
    int fd;
    gnutls_session_t tls;
} mqtt_conn;

static void mqtt_io(mqtt_conn *m, uint8_t *buf, size_t len, bool rd)
{
    while (len > 0) {
        ssize_t n;
        if (m->tls)
            n = rd ? gnutls_record_recv(m->tls, buf, len) : gnutls_record_send(m->tls, buf, len);
        else
            n = rd ? read(m->fd, buf, len) : write(m->fd, buf, len);
        if (m->tls && n < 0 && !gnutls_error_is_fatal((int)n))
            continue;
        if (n <= 0)
            die(rd ? "mqtt read" : "mqtt write",
                m->tls && n < 0 ? gnutls_strerror((int)n) : "connection closed");
        buf += n;
        len -= (size_t)n;
    }
}

static int run_mqtt(int argc, char **argv)
{
    if (argc < 5)
        die("usage", "bench_quic --mqtt PORT N BROKER_PID [tls]");
    uint16_t port = (uint16_t)strtoul(argv[2], NULL, 10);
    size_t n = strtoul(argv[3], NULL, 10);
    char statm[64];
    snprintf(statm, sizeof statm, "/proc/%lu/statm", strtoul(argv[4], NULL, 10));
    bool tls = argc > 5 && strcmp(argv[5], "tls") == 0;
    const char *pfx = tls ? "mqtts" : "mqtt";
    gnutls_certificate_credentials_t cred = NULL;
    if (tls && gnutls_certificate_allocate_credentials(&cred) != 0)
        die("mqtt", "gnutls credentials");
    mqtt_conn *conns = calloc(n ? n : 1, sizeof *conns);
    uint64_t *lat = calloc(n ? n : 1, sizeof *lat);
    if (!conns || !lat || n == 0)
        die("mqtt", "out of memory or N = 0");
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    usleep(200000); /* let the broker settle before the baseline */
    size_t rss0 = rss_of(statm);
    uint64_t t0 = uv_hrtime();
    for (size_t i = 0; i < n; i++) {
        uint64_t a = uv_hrtime();
        mqtt_conn *m = &conns[i];
        m->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (m->fd < 0 || connect(m->fd, (const struct sockaddr *)&to, sizeof to) != 0)
            die("mqtt", "connect failed (is the broker up? ulimit -n?)");
        int one = 1;
        setsockopt(m->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (tls) {
            if (gnutls_init(&m->tls, GNUTLS_CLIENT) != 0 ||
                gnutls_priority_set_direct(m->tls, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL) != 0 ||
                gnutls_credentials_set(m->tls, GNUTLS_CRD_CERTIFICATE, cred) != 0)
                die("mqtt", "gnutls session");
            gnutls_transport_set_int(m->tls, m->fd);
            int rc;
            do {
                rc = gnutls_handshake(m->tls);
            } while (rc < 0 && !gnutls_error_is_fatal(rc));
            if (rc < 0)
                die("mqtt TLS handshake", gnutls_strerror(rc));
        }
        /* CONNECT: "MQTT" level 4, clean session, keep-alive 90 s, client ID "bNNNNNNN" */
        uint8_t pkt[32] = {0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 90, 0, 8};
        snprintf((char *)pkt + 14, 9, "b%07zu", i % 10000000);
        pkt[1] = 12 + 8;
        mqtt_io(m, pkt, 22, false);
        uint8_t ack[4];
        mqtt_io(m, ack, sizeof ack, true);
        if (ack[0] != 0x20 || ack[3] != 0)
            die("mqtt", "CONNACK refused");
        lat[i] = uv_hrtime() - a;
    }
    uint64_t ns = uv_hrtime() - t0;
    usleep(200000);
    size_t rss1 = rss_of(statm);
    printf("%s_connect_p50_us %.1f\n", pfx, (double)pct(lat, n, 0.50) / 1e3);
    printf("%s_connect_p99_us %.1f\n", pfx, (double)pct(lat, n, 0.99) / 1e3);
    printf("%s_connects_per_s %.0f\n", pfx, (double)n * 1e9 / (double)ns);
    printf("%s_idle_conns %zu\n", pfx, n);
    printf("%s_broker_bytes_per_conn_rss %.0f\n", pfx, ((double)rss1 - (double)rss0) / (double)n);
    for (size_t i = 0; i < n; i++) {
        if (conns[i].tls)
            gnutls_deinit(conns[i].tls);
        close(conns[i].fd);
    }
    if (cred)
        gnutls_certificate_free_credentials(cred);
    free(conns);
    free(lat);
    return 0;
}

static void read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n <= 0)
            die("control pipe", "the server went away");
        p += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--mqtt") == 0)
        return run_mqtt(argc, argv);
    size_t n_idle = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    size_t n_lat = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    size_t window = argc > 3 ? strtoul(argv[3], NULL, 10) : 256;
    if (n_idle == 0 || window == 0)
        die("usage", "bench_quic [N_IDLE>0] [N_LAT] [WINDOW>0]");
    signal(SIGPIPE, SIG_IGN);
    int to_child[2], to_parent[2];
    if (pipe(to_child) != 0 || pipe(to_parent) != 0)
        die("pipe", "failed");
    fflush(stdout);

    /* fork before any loop or socket exists: each process starts from scratch */
    pid_t pid = fork();
    if (pid < 0)
        die("fork", "failed");
    if (pid == 0) {
        close(to_child[1]);
        close(to_parent[0]);
        client c = {0};
        c.n_idle = n_idle;
        c.n_lat = n_lat;
        c.window = window;
        c.ctl.rfd = to_child[0];
        c.ctl.wfd = to_parent[1];
        c.ctl.on_msg = cli_msg;
        c.ctl.arg = &c;
        uint8_t hello[2 + IDENTITY_ID_LEN];
        read_full(c.ctl.rfd, hello, sizeof hello);
        c.port = (uint16_t)(hello[0] << 8 | hello[1]);
        memcpy(c.server_id, hello + 2, IDENTITY_ID_LEN);
        _exit(run_client(&c));
    }
    close(to_child[0]);
    close(to_parent[1]);

    char dir[64];
    identity *id = make_identity(dir, sizeof dir);
    uv_loop_t loop;
    uv_loop_init(&loop);
    server s = {0};
    s.n_idle = n_idle;
    quic_config cfg = {0};
    cfg.id = id;
    cfg.listen = true;
    cfg.bind_host = "127.0.0.1";
    cfg.cb.on_stream_data = srv_data;
    cfg.ctx = &s;
    cfg.log = on_log;
    cfg.log_level = QUIC_LOG_ERROR;
    cfg.max_connections = (uint32_t)n_idle + 1024;
    int rc = quic_endpoint_new(&loop, &cfg, &s.ep);
    if (rc != QUIC_OK)
        die("server endpoint", quic_strerror(rc));
    s.ctl.rfd = to_parent[0];
    s.ctl.wfd = to_child[1];
    s.ctl.on_msg = srv_msg;
    s.ctl.arg = &s;
    ctl_start(&loop, &s.ctl);
    uv_timer_init(&loop, &s.wait);
    s.wait.data = &s;
    uint16_t port = quic_endpoint_port(s.ep);
    uint8_t hello[2 + IDENTITY_ID_LEN] = {(uint8_t)(port >> 8), (uint8_t)port};
    memcpy(hello + 2, identity_node_id(id), IDENTITY_ID_LEN);
    if (write(s.ctl.wfd, hello, sizeof hello) != (ssize_t)sizeof hello)
        die("control pipe", "write failed");
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    int status = 0;
    waitpid(pid, &status, 0);
    identity_free(id);
    remove_dir(dir);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
