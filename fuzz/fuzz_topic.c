/*
 * fuzz/fuzz_topic.c — topic and pattern parsing and the matching trie against the reference
 * matcher. Input: lines; a line "+P" adds pattern P (subscriber = line number), "-P" removes
 * it, anything else is a topic matched through the trie and checked, pattern by pattern,
 * against topic_match. At the end everything is removed and the trie must be back to its root.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/topic.h"

enum { MAX_PATS = 64 };

typedef struct fz {
    char *pat[MAX_PATS];
    size_t plen[MAX_PATS];
    uint64_t sub[MAX_PATS];
    int n;
    int hits;
} fz;

static void on_hit(void *ctx, uint64_t sub, const char *pattern, size_t plen)
{
    (void)sub;
    (void)pattern;
    (void)plen;
    ((fz *)ctx)->hits++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    topic_trie *t = topic_trie_new();
    if (t == NULL) {
        return 0;
    }
    fz f = {0};
    const char *p = (const char *)data, *end = p + size;
    uint64_t line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        if (len > 0 && p[0] == '+') {
            if (topic_trie_add(t, p + 1, len - 1, line) == TOPIC_OK && f.n < MAX_PATS) {
                f.pat[f.n] = malloc(len);
                if (f.pat[f.n] != NULL) {
                    memcpy(f.pat[f.n], p + 1, len - 1);
                    f.plen[f.n] = len - 1;
                    f.sub[f.n] = line;
                    f.n++;
                } else {
                    topic_trie_remove(t, p + 1, len - 1, line);
                }
            } else if (topic_validate_pattern(p + 1, len - 1) == TOPIC_OK && f.n >= MAX_PATS) {
                topic_trie_remove(t, p + 1, len - 1, line);
            }
        } else if (len > 0 && p[0] == '-') {
            for (int i = 0; i < f.n; i++) {
                if (f.plen[i] == len - 1 && memcmp(f.pat[i], p + 1, len - 1) == 0) {
                    if (topic_trie_remove(t, f.pat[i], f.plen[i], f.sub[i]) != TOPIC_OK) {
                        abort();
                    }
                    free(f.pat[i]);
                    f.n--;
                    f.pat[i] = f.pat[f.n];
                    f.plen[i] = f.plen[f.n];
                    f.sub[i] = f.sub[f.n];
                    break;
                }
            }
        } else {
            f.hits = 0;
            int got = topic_trie_match(t, p, len, on_hit, &f);
            if (got >= 0) {
                int want = 0;
                for (int i = 0; i < f.n; i++) {
                    want += topic_match(f.pat[i], f.plen[i], p, len);
                }
                if (got != want || f.hits != want) {
                    abort();
                }
            } else if (topic_validate_name(p, len) == TOPIC_OK) {
                abort();
            }
        }
        p += len + (nl ? 1 : 0);
    }
    for (int i = 0; i < f.n; i++) {
        if (topic_trie_remove(t, f.pat[i], f.plen[i], f.sub[i]) != TOPIC_OK) {
            abort();
        }
        free(f.pat[i]);
    }
    if (topic_trie_count(t) != 0 || topic_trie_nodes(t) != 1) {
        abort();
    }
    topic_trie_free(t);
    return 0;
}
