/*
 * src/cli/tree.c — `macula tree [--url http://HOST:PORT]`: fetches /tree from a running node's
 * health endpoint and prints it as an indented tree. `--json` prints the JSON as it came.
 */
#include <jansson.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli.h"

#define TREE_MAX_BODY (8u << 20)

/* GET http://host:port/path with HTTP/1.0; returns the malloc'd body or NULL (err filled). */
static char *http_get(const char *url, const char *path, int *status, char *err, size_t errsize)
{
    char host[256], port[16] = "80";
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, errsize, "the URL must start with http://");
        return NULL;
    }
    const char *h = url + 7;
    size_t hl = strcspn(h, ":/");
    if (hl == 0 || hl >= sizeof host) {
        snprintf(err, errsize, "bad host in %s", url);
        return NULL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (h[hl] == ':') {
        size_t pl = strcspn(h + hl + 1, "/");
        if (pl == 0 || pl >= sizeof port) {
            snprintf(err, errsize, "bad port in %s", url);
            return NULL;
        }
        memcpy(port, h + hl + 1, pl);
        port[pl] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errsize, "%.200s: %s", host, gai_strerror(rc));
        return NULL;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, 0);
        if (fd < 0) {
            continue;
        }
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, errsize, "cannot connect to %.200s:%s (is the node running?)", host, port);
        return NULL;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        snprintf(err, errsize, "write failed");
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ssize_t k;
    while (buf && (k = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)k;
        if (len + 1 == cap) {
            if (cap >= TREE_MAX_BODY) {
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    if (buf == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    buf[len] = '\0';
    *status = 0;
    if (strncmp(buf, "HTTP/1.", 7) == 0 && len > 9) {
        char *sp = strchr(buf, ' ');
        if (sp != NULL) {
            long code = strtol(sp + 1, NULL, 10);
            *status = (code >= 100 && code <= 999) ? (int)code : 0;
        }
    }
    char *body = strstr(buf, "\r\n\r\n");
    if (body == NULL) {
        free(buf);
        snprintf(err, errsize, "not an HTTP answer");
        return NULL;
    }
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

static void print_node(json_t *n, const char *prefix, bool last, bool root)
{
    const char *id = json_string_value(json_object_get(n, "id"));
    const char *pid = json_string_value(json_object_get(n, "pid"));
    const char *type = json_string_value(json_object_get(n, "type"));
    printf("%s%s%s  %s", prefix, root ? "" : (last ? "└─ " : "├─ "), id ? id : "?",
           pid ? pid : "(not running)");
    json_t *kids = json_object_get(n, "children");
    if (type && strcmp(type, "supervisor") == 0 && json_is_array(kids)) {
        printf("  %s %lld/%llds", json_string_value(json_object_get(n, "strategy")),
               (long long)json_integer_value(json_object_get(n, "intensity")),
               (long long)json_integer_value(json_object_get(n, "period")));
    } else {
        printf("  worker");
    }
    json_t *restart = json_object_get(n, "restart");
    if (restart) {
        printf(" %s, restarts %lld", json_string_value(restart),
               (long long)json_integer_value(json_object_get(n, "restarts")));
    }
    if (json_object_get(n, "memory")) {
        printf(", mailbox %lld, %lld B",
               (long long)json_integer_value(json_object_get(n, "mailbox")),
               (long long)json_integer_value(json_object_get(n, "memory")));
    }
    printf("\n");
    if (!json_is_array(kids)) {
        return;
    }
    char sub[512];
    snprintf(sub, sizeof sub, "%s%s", prefix, root ? "" : (last ? "   " : "│  "));
    size_t nk = json_array_size(kids);
    for (size_t i = 0; i < nk; i++) {
        print_node(json_array_get(kids, i), sub, i + 1 == nk, false);
    }
}

int cli_tree(int argc, char **argv)
{
    const char *url = "http://127.0.0.1:8080";
    bool raw = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            raw = true;
        } else {
            fprintf(stderr, "usage: macula tree [--url http://HOST:PORT] [--json]\n");
            return 2;
        }
    }
    char err[600];
    int status = 0;
    char *body = http_get(url, "/tree", &status, err, sizeof err);
    if (body == NULL) {
        fprintf(stderr, "macula tree: %s\n", err);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "macula tree: %s/tree answered %d: %s", url, status, body);
        free(body);
        return 1;
    }
    if (raw) {
        fputs(body, stdout);
        free(body);
        return 0;
    }
    json_error_t jerr;
    json_t *tree = json_loads(body, JSON_REJECT_DUPLICATES, &jerr);
    free(body);
    if (tree == NULL) {
        fprintf(stderr, "macula tree: bad JSON from the node: %s\n", jerr.text);
        return 1;
    }
    print_node(tree, "", true, true);
    json_decref(tree);
    return 0;
}
