/*
 * src/cli/flow_cluster.c — `macula flow cluster status|join|leave` (cli_flow_cluster) and the
 * hidden `macula flow-node` (cli_flow_node): one flow node with Raft (or PBFT: --pbft) and the
 * flow HTTP endpoint, for tests and the cluster bench until `macula flow serve` carries the
 * options.
 *
 * The cluster commands talk to a node's flow HTTP endpoint (flow_admin_start: POST
 * /flow/cluster_*), follow redirects to the leader (307), and print the answer's JSON. `join`
 * records the new member's gossip endpoint (address + node id) too: given with --gossip and
 * --node-id, or learnt from the joining node's own cluster_status at --api.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "macula/flow.h"
#include "macula/sup.h"
#include "macula/sup_supervisor.h"

#define FC_REPLY_MAX (16u << 20)

/* ---- a blocking HTTP/1.1 client (one request per connection) ----------------------------- */

typedef struct fc_url {
    char host[256];
    char port[8];
    char path[512];
} fc_url;

static int fc__parse_url(const char *url, fc_url *u)
{
    if (strncmp(url, "http://", 7) != 0) {
        return -1;
    }
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    const char *colon = memchr(h, ':', slash ? (size_t)(slash - h) : strlen(h));
    size_t hl = colon ? (size_t)(colon - h) : slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof u->host) {
        return -1;
    }
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    if (colon) {
        size_t pl = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
        if (pl == 0 || pl >= sizeof u->port) {
            return -1;
        }
        memcpy(u->port, colon + 1, pl);
        u->port[pl] = '\0';
    } else {
        snprintf(u->port, sizeof u->port, "80");
    }
    snprintf(u->path, sizeof u->path, "%s", slash ? slash : "/");
    return 0;
}

/* POSTs body to url; *status and the malloc'd response body (*resp) and Location (*loc). */
static int fc__post_once(const char *url, const char *body, int *status, char **resp, char **loc)
{
    fc_url u;
    if (fc__parse_url(url, &u) != 0) {
        fprintf(stderr, "flow cluster: bad URL %s (http://host:port)\n", url);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(u.host, u.port, &hints, &ai) != 0 || ai == NULL) {
        fprintf(stderr, "flow cluster: cannot resolve %s\n", u.host);
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "flow cluster: connect %s:%s: %s\n", u.host, u.port, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    size_t blen = strlen(body);
    char head[1024];
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      u.path, u.host, u.port, blen);
    if (write(fd, head, (size_t)hl) != hl || write(fd, body, blen) != (ssize_t)blen) {
        close(fd);
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    for (ssize_t n; buf && (n = read(fd, buf + len, cap - len)) > 0;) {
        len += (size_t)n;
        if (len == cap && cap < FC_REPLY_MAX) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (nb == NULL) {
                break;
            }
            buf = nb;
            cap *= 2;
        } else if (len == cap) {
            break;
        }
    }
    close(fd);
    if (buf == NULL) {
        return -1;
    }
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    char *sp = strchr(buf, ' ');
    long code = sp && strncmp(buf, "HTTP/1.", 7) == 0 ? strtol(sp + 1, NULL, 10) : 0;
    *status = (int)code;
    if (end == NULL || code < 100 || code > 599) {
        free(buf);
        fprintf(stderr, "flow cluster: bad HTTP answer from %s\n", url);
        return -1;
    }
    *end = '\0';
    *loc = NULL;
    for (char *line = strstr(buf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Location:", 9) == 0) {
            const char *v = line + 11;
            v += strspn(v, " ");
            free(*loc);
            *loc = strndup(v, strcspn(v, "\r\n"));
        }
    }
    char *payload = end + 4;
    if (strstr(buf, "chunked")) { /* de-chunk in place */
        char *in = payload, *out = payload;
        for (unsigned long n; (n = strtoul(in, &in, 16)) > 0;) {
            in = strstr(in, "\r\n");
            if (in == NULL) {
                break;
            }
            in += 2;
            memmove(out, in, n);
            out += n;
            in += n + 2;
        }
        *out = '\0';
    }
    *resp = strdup(payload);
    free(buf);
    return 0;
}

static int fc__post(const char *url, const char *body, char **resp);

/* The gossip endpoint a node reports in its cluster_status ({"gossip": {"address", "node"}}):
 * new references in *gossip / *node, or NULL when the node runs without gossip. */
static void fc__learn_gossip(const char *api, json_t **gossip, json_t **node)
{
    char url[600];
    snprintf(url, sizeof url, "%s/flow/cluster_status", api);
    char *resp = NULL;
    int status = fc__post(url, "{}", &resp);
    json_t *j = status == 200 && resp ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    const json_t *g = json_object_get(j, "gossip");
    const json_t *a = json_object_get(g, "address"), *n = json_object_get(g, "node");
    if (json_is_string(a) && json_is_string(n)) {
        *gossip = json_incref((json_t *)a);
        *node = json_incref((json_t *)n);
    }
    json_decref(j);
}

/* POSTs and follows up to 4 redirects. Returns the HTTP status or -1. */
static int fc__post(const char *url, const char *body, char **resp)
{
    char *cur = strdup(url);
    for (int hop = 0; cur && hop < 5; hop++) {
        int status = 0;
        char *loc = NULL;
        *resp = NULL;
        if (fc__post_once(cur, body, &status, resp, &loc) != 0) {
            free(cur);
            return -1;
        }
        if (status == 307 && loc) {
            free(cur);
            free(*resp);
            cur = loc;
            continue;
        }
        free(loc);
        free(cur);
        return status;
    }
    free(cur);
    return -1;
}

static void fc__usage(void)
{
    fprintf(stderr, "usage: macula flow cluster status [--node URL]\n"
                    "       macula flow cluster join --id N --address HOST:PORT [--api URL] "
                    "[--gossip HOST:PORT --node-id HEX] [--node URL]\n"
                    "       macula flow cluster leave --id N [--node URL]\n"
                    "  --node: a node's flow HTTP endpoint (default http://127.0.0.1:7480);\n"
                    "  requests to a follower are redirected to the leader.\n"
                    "  join without --gossip learns the new node's gossip endpoint from its\n"
                    "  cluster_status at --api (when it runs with gossip).\n");
}

int cli_flow_cluster(int argc, char **argv)
{
    /* argv[0] is "cluster", argv[1] the action */
    if (argc < 2) {
        fc__usage();
        return 2;
    }
    const char *action = argv[1];
    const char *node =
        getenv("MACULA_FLOW_URL") ? getenv("MACULA_FLOW_URL") : "http://127.0.0.1:7480";
    const char *address = NULL, *api = NULL, *gossip = NULL, *node_id = NULL;
    long id = 0;
    static const struct option opts[] = {{"node", required_argument, NULL, 'n'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"address", required_argument, NULL, 'a'},
                                         {"api", required_argument, NULL, 'p'},
                                         {"gossip", required_argument, NULL, 'g'},
                                         {"node-id", required_argument, NULL, 'k'},
                                         {NULL, 0, NULL, 0}};
    optind = 2;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'n': node = optarg; break;
        case 'i': id = strtol(optarg, NULL, 10); break;
        case 'a': address = optarg; break;
        case 'p': api = optarg; break;
        case 'g': gossip = optarg; break;
        case 'k': node_id = optarg; break;
        default: fc__usage(); return 2;
        }
    }
    const char *op;
    json_t *args;
    if (strcmp(action, "status") == 0) {
        op = "cluster_status";
        args = json_object();
    } else if (strcmp(action, "join") == 0 && id > 0 && address && !gossip == !node_id) {
        op = "cluster_join";
        json_t *g = gossip ? json_string(gossip) : NULL, *k = node_id ? json_string(node_id) : NULL;
        if (g == NULL && api) {
            fc__learn_gossip(api, &g, &k);
        }
        args = json_pack("{s:I, s:s, s:s?, s:o?, s:o?}", "id", (json_int_t)id, "address", address,
                         "api", api, "gossip", g, "node", k);
    } else if (strcmp(action, "leave") == 0 && id > 0) {
        op = "cluster_leave";
        args = json_pack("{s:I}", "id", (json_int_t)id);
    } else {
        fc__usage();
        return 2;
    }
    char url[600];
    snprintf(url, sizeof url, "%s/flow/%s", node, op);
    char *body = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    char *resp = NULL;
    int status = body ? fc__post(url, body, &resp) : -1;
    free(body);
    if (status < 0) {
        free(resp);
        return 1;
    }
    json_t *j = resp ? json_loads(resp, 0, NULL) : NULL;
    char *pretty = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    printf("%s\n", pretty ? pretty : (resp ? resp : ""));
    free(pretty);
    json_decref(j);
    free(resp);
    return status == 200 ? 0 : 1;
}

/* ---- macula flow-node --------------------------------------------------------------------- */

static uv_signal_t fc_sigterm, fc_sigint;

static void fc__on_signal(uv_signal_t *h, int sig)
{
    (void)sig;
    uv_stop(h->loop);
}

static int fc__split(const char *hp, char *host, size_t hs, uint16_t *port)
{
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || (size_t)(colon - hp) >= hs) {
        return -1;
    }
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    long p = strtol(colon + 1, NULL, 10);
    if (p <= 0 || p > 65535) {
        return -1;
    }
    *port = (uint16_t)p;
    return 0;
}

/* The member list of --members: a file if one has that name, else the list itself. */
static char *fc__members_text(const char *arg)
{
    FILE *f = fopen(arg, "r");
    if (f == NULL) {
        return strdup(arg);
    }
    char *buf = malloc(65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (buf) {
        buf[n] = '\0';
    }
    return buf;
}

/* --show-key: what a member list needs about the identity in DIR. */
static int fc__show_key(const char *data_dir)
{
    char key[256], node[65], err[512];
    if (data_dir == NULL) {
        fprintf(stderr, "flow-node: --show-key needs --data DIR\n");
        return 2;
    }
    if (flow_pbft_identity(data_dir, key, sizeof key, node, err, sizeof err) != 0) {
        fprintf(stderr, "flow-node: %s\n", err);
        return 1;
    }
    printf("node %s\nkey %s\n", node, key);
    return 0;
}

int cli_flow_node(int argc, char **argv)
{
    flow_raft_config rc = {0};
    flow_pbft_config pc = {0};
    bool pbft = false, show_key = false;
    const char *members = NULL;
    const char *http = "127.0.0.1:7480";
    bool local = false;
    static const struct option opts[] = {{"id", required_argument, NULL, 'i'},
                                         {"raft", required_argument, NULL, 'r'},
                                         {"http", required_argument, NULL, 'h'},
                                         {"data", required_argument, NULL, 'd'},
                                         {"join", no_argument, NULL, 'j'},
                                         {"local", no_argument, NULL, 'l'},
                                         {"election-ms", required_argument, NULL, 'e'},
                                         {"snapshot-threshold", required_argument, NULL, 's'},
                                         {"snapshot-trailing", required_argument, NULL, 't'},
                                         {"gossip", required_argument, NULL, 'g'},
                                         {"pbft", no_argument, NULL, 'p'},
                                         {"members", required_argument, NULL, 'm'},
                                         {"checkpoint", required_argument, NULL, 'k'},
                                         {"view-change-ms", required_argument, NULL, 'v'},
                                         {"show-key", no_argument, NULL, 'K'},
                                         {NULL, 0, NULL, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'i': rc.id = strtoull(optarg, NULL, 10); break;
        case 'r': rc.address = optarg; break;
        case 'h': http = optarg; break;
        case 'd': rc.data_dir = optarg; break;
        case 'j': rc.join = true; break;
        case 'l': local = true; break;
        case 'e': rc.election_ms = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': rc.snapshot_threshold = (unsigned)strtoul(optarg, NULL, 10); break;
        case 't': rc.snapshot_trailing = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'g': rc.gossip = optarg; break;
        case 'p': pbft = true; break;
        case 'm': members = optarg; break;
        case 'k': pc.checkpoint = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'v': pc.view_change_ms = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'K': show_key = true; break;
        default:
            fprintf(stderr, "usage: macula flow-node --id N --raft HOST:PORT --data DIR "
                            "[--http HOST:PORT] [--gossip HOST:PORT] [--join] [--election-ms MS] "
                            "[--snapshot-threshold N] [--snapshot-trailing N] | --local\n"
                            "       macula flow-node --pbft --id N --members FILE_OR_LIST --data "
                            "DIR [--http HOST:PORT] [--checkpoint N] [--view-change-ms MS]\n"
                            "       macula flow-node --show-key --data DIR\n"
                            "  members: one per line (or comma-separated): ID HOST:PORT KEY_HEX "
                            "[API_URL]; KEY_HEX as printed by --show-key\n"
                            "  MACULA_FLOW_FAULTS=1 enables the test-only fault switch "
                            "(POST /flow/cluster_fault {\"isolate\": bool})\n");
            return 2;
        }
    }
    if (show_key) {
        return fc__show_key(rc.data_dir);
    }
    char host[64];
    uint16_t port = 0;
    flow_pbft_member *mv = NULL;
    if (pbft) {
        char err[256] = "";
        char *text = members ? fc__members_text(members) : NULL;
        int prc = text ? flow_pbft_members_parse(text, &mv, &pc.n, err, sizeof err) : FLOW_EINVAL;
        free(text);
        if (prc != 0 || rc.id == 0 || rc.id > pc.n || rc.data_dir == NULL || rc.address || local) {
            fprintf(stderr,
                    "flow-node: --pbft needs --id N, --members FILE_OR_LIST (n >= 4) "
                    "and --data DIR, without --raft%s%s\n",
                    err[0] ? ": " : "", err);
            free(mv);
            return 2;
        }
        pc.id = (uint32_t)rc.id;
        pc.data_dir = rc.data_dir;
        pc.members = mv;
    }
    if (fc__split(http, host, sizeof host, &port) != 0 ||
        (!local && !pbft && (rc.id == 0 || rc.address == NULL || rc.data_dir == NULL))) {
        fprintf(stderr, "flow-node: needs --id, --raft HOST:PORT, --data DIR (or --local)\n");
        free(mv);
        return 2;
    }
    char api[128];
    snprintf(api, sizeof api, "http://%s", http);
    rc.api = api;
    const char *faults = getenv("MACULA_FLOW_FAULTS");
    rc.faults = faults && strcmp(faults, "1") == 0;
    signal(SIGPIPE, SIG_IGN); /* libraft and exec agents write to sockets and pipes */
    uv_loop_t loop;
    uv_loop_init(&loop);
    sup_rt *rt = sup_rt_new(&loop);
    flow_options fo = {.raft = local || pbft ? NULL : &rc, .pbft = pbft ? &pc : NULL};
    sup_pid flow;
    sup_reason why;
    if (flow_start(rt, SUP_NOPID, &fo, NULL, &flow, &why) != 0) {
        char r[200];
        fprintf(stderr, "flow-node: flow did not start: %s\n", sup_reason_str(&why, r, sizeof r));
        free(mv);
        return 1;
    }
    flow_admin *adm = NULL;
    const char *err = NULL;
    if (flow_admin_start(rt, host, port, &adm, &err) != 0) {
        fprintf(stderr, "flow-node: HTTP %s: %s\n", http, err ? err : "failed");
        free(mv);
        return 1;
    }
    uv_signal_init(&loop, &fc_sigterm);
    uv_signal_init(&loop, &fc_sigint);
    uv_signal_start(&fc_sigterm, fc__on_signal, SIGTERM);
    uv_signal_start(&fc_sigint, fc__on_signal, SIGINT);
    if (pbft) {
        printf("flow-node %llu pbft %s (n = %zu) http %s\n", (unsigned long long)rc.id,
               mv[rc.id - 1].address, pc.n, http);
    } else {
        printf("flow-node %llu raft %s http %s gossip %s%s\n", (unsigned long long)rc.id,
               rc.address ? rc.address : "-", http, rc.gossip ? rc.gossip : "-",
               rc.faults ? " (fault switch on)" : "");
    }
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    flow_admin_stop(adm);
    sup_reason r = sup_reason_shutdown();
    sup_stop_sync(rt, flow, &r);
    uv_close((uv_handle_t *)&fc_sigterm, NULL);
    uv_close((uv_handle_t *)&fc_sigint, NULL);
    sup_rt_free(rt);
    uv_run(&loop, UV_RUN_DEFAULT); /* libraft and the HTTP server finish closing */
    uv_loop_close(&loop);
    free(mv);
    return 0;
}
