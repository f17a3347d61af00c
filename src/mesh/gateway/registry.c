/* src/mesh/gateway/registry.c — see registry.h. */
#include "registry.h"

#include <pthread.h>
#include <stddef.h>

typedef struct gw_reg_entry {
    const void *rt;
    const void *ptr[GW_REG_SLOTS];
} gw_reg_entry;

static gw_reg_entry gw_reg__table[GW_REG_MAX];
static pthread_mutex_t gw_reg__lock = PTHREAD_MUTEX_INITIALIZER;

static gw_reg_entry *gw_reg__find(const void *rt)
{
    for (size_t i = 0; i < GW_REG_MAX; i++) {
        if (gw_reg__table[i].rt == rt) {
            return &gw_reg__table[i];
        }
    }
    return NULL;
}

static void gw_reg__release_if_empty(gw_reg_entry *e)
{
    for (size_t s = 0; s < GW_REG_SLOTS; s++) {
        if (e->ptr[s] != NULL) {
            return;
        }
    }
    e->rt = NULL;
}

bool gw_reg_set(const void *rt, gw_reg_slot slot, const void *ptr)
{
    if (rt == NULL || (unsigned)slot >= GW_REG_SLOTS) {
        return false;
    }
    pthread_mutex_lock(&gw_reg__lock);
    gw_reg_entry *e = gw_reg__find(rt);
    if (e == NULL) {
        e = gw_reg__find(NULL);
        if (e != NULL) {
            e->rt = rt;
        }
    }
    if (e != NULL) {
        e->ptr[slot] = ptr;
        if (ptr == NULL) {
            gw_reg__release_if_empty(e);
        }
    }
    pthread_mutex_unlock(&gw_reg__lock);
    return e != NULL;
}

void gw_reg_clear(const void *rt, gw_reg_slot slot, const void *ptr)
{
    if (rt == NULL || (unsigned)slot >= GW_REG_SLOTS) {
        return;
    }
    pthread_mutex_lock(&gw_reg__lock);
    gw_reg_entry *e = gw_reg__find(rt);
    if (e != NULL && e->ptr[slot] == ptr) {
        e->ptr[slot] = NULL;
        gw_reg__release_if_empty(e);
    }
    pthread_mutex_unlock(&gw_reg__lock);
}

const void *gw_reg_get(const void *rt, gw_reg_slot slot)
{
    if (rt == NULL || (unsigned)slot >= GW_REG_SLOTS) {
        return NULL;
    }
    pthread_mutex_lock(&gw_reg__lock);
    const gw_reg_entry *e = gw_reg__find(rt);
    const void *p = e != NULL ? e->ptr[slot] : NULL;
    pthread_mutex_unlock(&gw_reg__lock);
    return p;
}
