/*
 * tests/unit/json_cases.h — JSON texts shared by the tests that hold a JSON reader to jansson
 * (test_mcp_json: mcp_json_parse; test_jsontext: jsontext_valid): hand-picked texts jansson
 * accepts and rejects, and a deterministic mutation run over seed documents.
 */
#ifndef MACULA_TESTS_JSON_CASES_H
#define MACULA_TESTS_JSON_CASES_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char json_cases_rpc_call[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
    "\"arguments\":{\"text\":\"hello\"}}}";

static const char *const json_cases_accepted[] = {
    "{}",
    "[]",
    " \t\r\n{ \"a\" : [ 1 , -2 , 3.5 , -0.0 , 1e10 , 1E-7 , 2.5e+3 ] } \n",
    json_cases_rpc_call,
    "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
    "\"\\u00e9\\u20AC\\ud83d\\ude00\\u0001\\u001f\\u007f\"",
    "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"",
    "9223372036854775807",
    "-9223372036854775808",
    "0",
    "-0",
    "1.7976931348623157e308",
    "1e-400", /* underflow is accepted (0) */
    "0.1",
    "123456789012345678901234567890.5",
    "true",
    "false",
    "null",
    "[true,false,null,{\"\":\"\"}]",
    "{\"a\":{\"b\":{\"c\":[[[]]]}},\"z\":1,\"m\":2}",
    "{\"k\\u00e9y\":1,\"k\\u00e8y\":2}",
};

static const char *const json_cases_rejected[] = {
    "",
    "   ",
    "{",
    "}",
    "[1,]",
    "[,1]",
    "{\"a\":1,}",
    "{\"a\" 1}",
    "{a:1}",
    "01",
    "-01",
    "-",
    "1.",
    ".5",
    "1e",
    "1e+",
    "+1",
    "0x10",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999",
    "1e400",
    "-1e400",
    "tru",
    "truex",
    "nul",
    "True",
    "\"abc",
    "\"\\u0000\"",
    "\"\\ud83d\"",
    "\"\\ude00\"",
    "\"\\ud83d\\u0041\"",
    "\"\\u12\"",
    "\"\\x41\"",
    "\"\\\"",
    "\"a\tb\"",
    "\"a\nb\"",
    "\"\xff\"",
    "\"\xc0\xaf\"",
    "\"\xe0\x80\xaf\"",
    "\"\xed\xa0\x80\"",
    "\"\xf4\x90\x80\x80\"",
    "\"\xc3\"",
    "1 2",
    "{} {}",
    "[1] x",
    "NaN",
    "Infinity",
};

/* Rejected only when duplicate keys are (JSON_REJECT_DUPLICATES). */
static const char *const json_cases_dup_keys[] = {
    "{\"a\":1,\"a\":2}",
    "{\"a\\u0062\":1,\"ab\":2}",
};

/* xorshift64*: deterministic */
static uint64_t json_cases_rnd_state = 0x9E3779B97F4A7C15ull;
static uint64_t json_cases_rnd(void)
{
    json_cases_rnd_state ^= json_cases_rnd_state >> 12;
    json_cases_rnd_state ^= json_cases_rnd_state << 25;
    json_cases_rnd_state ^= json_cases_rnd_state >> 27;
    return json_cases_rnd_state * 0x2545F4914F6CDD1Dull;
}

/* Runs `rounds` mutated seed documents through check (1: accepted, 0: rejected; it fails
 * the test itself on a disagreement) and returns how many were accepted. */
static int json_cases_mutations(int rounds, int (*check)(const char *p, size_t n))
{
    static const char *const seeds[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":17,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
        "\"arguments\":{\"text\":\"h\\u00e9llo\\n\",\"n\":[1,-2.5e3,true,null]}}}",
        "[{\"a\":\"\\ud83d\\ude00\xc3\xa9\"},{\"b\":-0.125},{\"c\":{}},[],\"\\\"\\\\\"]",
        "{\"x\":12345678901234,\"y\":1E+2,\"z\":false,\"\xe2\x82\xac\":\"\xf0\x9f\x98\x80\"}",
    };
    /* bytes a mutation inserts: structure, escapes, digits, UTF-8 pieces, controls */
    static const char pool[] = "{}[]\":,\\u0123456789abcdefABCDEF.eE+-tfnrl \t\n\r\x01\x7f\x80\xbf"
                               "\xc2\xc3\xe0\xe2\xed\xf0\xf4\xff";
    char buf[512];
    int ok = 0, total = 0;
    for (int round = 0; round < rounds; round++) {
        const char *s = seeds[json_cases_rnd() % 3];
        size_t n = strlen(s);
        memcpy(buf, s, n + 1);
        int edits = 1 + (int)(json_cases_rnd() % 4);
        for (int k = 0; k < edits; k++) {
            size_t at = n ? json_cases_rnd() % n : 0;
            switch (json_cases_rnd() % 4) {
            case 0: buf[at] = pool[json_cases_rnd() % (sizeof pool - 1)]; break;
            case 1: /* delete */
                if (n > 1) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
                break;
            case 2: /* insert */
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = pool[json_cases_rnd() % (sizeof pool - 1)];
                    n++;
                }
                break;
            default: /* truncate */ n = at; break;
            }
        }
        ok += check(buf, n);
        total++;
    }
    fprintf(stderr, "mutations: %d of %d accepted\n", ok, total);
    return ok;
}

#endif
