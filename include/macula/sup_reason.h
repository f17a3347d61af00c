/*
 * macula/sup_reason.h — exit reasons, as Erlang terms flattened into a small value type.
 *
 * A reason is copied by value (64 bytes), so it can travel in EXIT and DOWN messages to any
 * number of receivers without ownership questions. Text longer than SUP_REASON_TEXT_MAX-1
 * bytes is truncated.
 *
 *   kind                  Erlang            normal?
 *   SUP_R_NORMAL          normal            yes
 *   SUP_R_SHUTDOWN        shutdown          yes
 *   SUP_R_SHUTDOWN_TERM   {shutdown, Text}  yes
 *   SUP_R_KILL            kill              (only as a signal: untrappable, becomes killed)
 *   SUP_R_KILLED          killed            no
 *   SUP_R_NOPROC          noproc            no
 *   SUP_R_ERROR           Text (any term)   no
 */
#ifndef MACULA_SUP_REASON_H
#define MACULA_SUP_REASON_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SUP_REASON_TEXT_MAX 60

typedef enum sup_reason_kind {
    SUP_R_NORMAL = 0,
    SUP_R_SHUTDOWN,
    SUP_R_SHUTDOWN_TERM,
    SUP_R_KILL,
    SUP_R_KILLED,
    SUP_R_NOPROC,
    SUP_R_ERROR,
} sup_reason_kind;

typedef struct sup_reason {
    unsigned char kind;             /* sup_reason_kind */
    char text[SUP_REASON_TEXT_MAX]; /* detail for SHUTDOWN_TERM and ERROR, else "" */
} sup_reason;

sup_reason sup_reason_make(sup_reason_kind kind, const char *text);
static inline sup_reason sup_reason_normal(void)
{
    return sup_reason_make(SUP_R_NORMAL, NULL);
}
static inline sup_reason sup_reason_shutdown(void)
{
    return sup_reason_make(SUP_R_SHUTDOWN, NULL);
}
static inline sup_reason sup_reason_error(const char *text)
{
    return sup_reason_make(SUP_R_ERROR, text);
}

/* normal, shutdown and {shutdown, _} are normal exits (OTP); everything else is abnormal. */
bool sup_reason_is_normal(const sup_reason *r);
/* Formats as the Erlang term would print: normal, shutdown, {shutdown,x}, killed, x. */
const char *sup_reason_str(const sup_reason *r, char *buf, size_t size);
/* Parses the format above ("normal", "{shutdown,x}", "kill", any other word = error).
 * Returns 0, or -1 for an empty or over-long string. */
int sup_reason_parse(const char *s, sup_reason *out);

#ifdef __cplusplus
}
#endif
#endif
