/*
 * src/mesh/topic.h — pub/sub topics, subscription patterns and the matching trie (MESH.md
 * "Pub/sub"), sans I/O.
 *
 * A topic is a non-empty sequence of `.`-separated segments, e.g. `sensor.kitchen.temp`.
 * Every segment is non-empty; any byte but `.` and NUL may appear in it. A topic that is
 * published may not contain wildcard segments. A subscription pattern may use two wildcards,
 * each as a whole segment:
 *
 *   `*`   matches exactly one segment          `sensor.*.temp` ~ `sensor.kitchen.temp`
 *   `**`  matches zero or more segments,       `sensor.**` ~ `sensor`, `sensor.a`, `sensor.a.b`
 *         anywhere in the pattern              `**.temp` ~ `temp`, `a.b.temp`
 *
 * A segment that contains `*` but is not exactly `*` or `**` (say `temp*`) is invalid, so the
 * meaning of a pattern never depends on guessing. Limits: TOPIC_MAX_LEN bytes and
 * TOPIC_MAX_SEGMENTS segments, for topics and patterns alike.
 *
 * The trie stores (pattern, subscriber) pairs; subscribers are opaque 64-bit ids chosen by the
 * caller. Matching a topic walks the trie once per (node, position) pair at most, so its cost
 * is bounded by O(trie nodes on the topic's paths × segments) even for patterns full of `**`
 * — never a scan of every subscription and never exponential backtracking. Each stored
 * (pattern, subscriber) pair is reported at most once per match, however many ways `**` can
 * align with the topic. A subscriber holding two patterns that both match is reported once per
 * pattern: the caller decides whether to deliver once or per pattern.
 *
 * Not thread-safe; one owner (the pubsub worker).
 */
#ifndef MACULA_MESH_TOPIC_H
#define MACULA_MESH_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    TOPIC_OK = 0,
    TOPIC_EINVAL = -1, /* not a valid topic / pattern (empty segment, bad wildcard, NUL) */
    TOPIC_ELIMIT = -2, /* longer than TOPIC_MAX_LEN or more than TOPIC_MAX_SEGMENTS segments */
    TOPIC_ENOMEM = -3, /* allocation failed */
    TOPIC_EEXIST = -4, /* topic_trie_add: this subscriber already holds this pattern */
    TOPIC_ENOENT = -5, /* topic_trie_remove: no such (pattern, subscriber) */
};

/* "ok", "invalid topic", "topic too long", "out of memory", "already subscribed",
 * "not subscribed"; "unknown error" otherwise. */
const char *topic_strerror(int err);

#define TOPIC_MAX_LEN 1024
#define TOPIC_MAX_SEGMENTS 64

/* TOPIC_OK when s[0..len) is a publishable topic (no wildcard segments), else an error. */
int topic_validate_name(const char *s, size_t len);
/* TOPIC_OK when s[0..len) is a valid subscription pattern, else an error. */
int topic_validate_pattern(const char *s, size_t len);

/* Whether one pattern matches one topic (both validated here: false when either is invalid).
 * Linear-time dynamic programming; used for single checks and as the tests' reference. */
bool topic_match(const char *pattern, size_t plen, const char *topic, size_t tlen);

typedef struct topic_trie topic_trie;

/* NULL when out of memory. */
topic_trie *topic_trie_new(void);
/* Frees every node; NULL is a no-op. */
void topic_trie_free(topic_trie *t);

/* Stores (pattern, sub). TOPIC_EEXIST when the pair is already there (the trie is unchanged). */
int topic_trie_add(topic_trie *t, const char *pattern, size_t len, uint64_t sub);
/* Removes (pattern, sub) and every node left empty. TOPIC_ENOENT when it is not there. */
int topic_trie_remove(topic_trie *t, const char *pattern, size_t len, uint64_t sub);

/* Called once per matching (pattern, sub) pair; `pattern` is the stored pattern text (valid
 * during the call only, not NUL-terminated). */
typedef void (*topic_match_fn)(void *ctx, uint64_t sub, const char *pattern, size_t plen);

/* Reports every stored pair whose pattern matches the topic. Returns the number of pairs
 * reported, or a negative error when the topic is not a valid name. fn must not modify t. */
int topic_trie_match(topic_trie *t, const char *topic, size_t len, topic_match_fn fn, void *ctx);

/* Stored pairs, and trie nodes (the root included): for metrics and leak tests. */
size_t topic_trie_count(const topic_trie *t);
size_t topic_trie_nodes(const topic_trie *t);

#endif
