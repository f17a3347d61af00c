/* src/sup/reason.c — exit reasons (macula/sup_reason.h). */
#include <stdio.h>
#include <string.h>

#include "macula/sup_reason.h"

sup_reason sup_reason_make(sup_reason_kind kind, const char *text)
{
    sup_reason r;
    memset(&r, 0, sizeof r);
    r.kind = (unsigned char)kind;
    if (text != NULL) {
        snprintf(r.text, sizeof r.text, "%s", text);
    }
    return r;
}

bool sup_reason_is_normal(const sup_reason *r)
{
    return r->kind == SUP_R_NORMAL || r->kind == SUP_R_SHUTDOWN || r->kind == SUP_R_SHUTDOWN_TERM;
}

const char *sup_reason_str(const sup_reason *r, char *buf, size_t size)
{
    switch ((sup_reason_kind)r->kind) {
    case SUP_R_NORMAL: snprintf(buf, size, "normal"); break;
    case SUP_R_SHUTDOWN: snprintf(buf, size, "shutdown"); break;
    case SUP_R_SHUTDOWN_TERM: snprintf(buf, size, "{shutdown,%s}", r->text); break;
    case SUP_R_KILL: snprintf(buf, size, "kill"); break;
    case SUP_R_KILLED: snprintf(buf, size, "killed"); break;
    case SUP_R_NOPROC: snprintf(buf, size, "noproc"); break;
    case SUP_R_ERROR:
    default: snprintf(buf, size, "%s", r->text[0] ? r->text : "error"); break;
    }
    return buf;
}

int sup_reason_parse(const char *s, sup_reason *out)
{
    size_t n = strlen(s);
    if (n == 0 || n >= SUP_REASON_TEXT_MAX) {
        return -1;
    }
    if (strcmp(s, "normal") == 0) {
        *out = sup_reason_make(SUP_R_NORMAL, NULL);
    } else if (strcmp(s, "shutdown") == 0) {
        *out = sup_reason_make(SUP_R_SHUTDOWN, NULL);
    } else if (strcmp(s, "kill") == 0) {
        *out = sup_reason_make(SUP_R_KILL, NULL);
    } else if (strcmp(s, "killed") == 0) {
        *out = sup_reason_make(SUP_R_KILLED, NULL);
    } else if (strcmp(s, "noproc") == 0) {
        *out = sup_reason_make(SUP_R_NOPROC, NULL);
    } else if (strncmp(s, "{shutdown,", 10) == 0 && s[n - 1] == '}' && n > 11) {
        char inner[SUP_REASON_TEXT_MAX];
        memcpy(inner, s + 10, n - 11);
        inner[n - 11] = '\0';
        *out = sup_reason_make(SUP_R_SHUTDOWN_TERM, inner);
    } else {
        *out = sup_reason_make(SUP_R_ERROR, s);
    }
    return 0;
}
