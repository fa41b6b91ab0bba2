/* The guest's run description, "KEY\0VALUE\0" records (see vm_cfg.h). */
#include "vm_cfg.h"

#include <stdlib.h>
#include <string.h>

static void put(char **buf, size_t *len, size_t *cap, const char *key, const char *val)
{
    size_t kl = strlen(key) + 1, vl = strlen(val) + 1;
    while (*len + kl + vl > *cap) {
        *cap = *cap ? *cap * 2 : 4096;
        *buf = xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, key, kl);
    memcpy(*buf + *len + kl, val, vl);
    *len += kl + vl;
}

char *vm_cfg_encode(const exec_plan *pl, const char *hostname, size_t *len)
{
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (size_t i = 0; i < pl->argv.n; i++)
        put(&buf, len, &cap, "arg", pl->argv.v[i]);
    for (size_t i = 0; i < pl->env.n; i++)
        put(&buf, len, &cap, "env", pl->env.v[i]);
    put(&buf, len, &cap, "workdir", pl->workdir ? pl->workdir : "/");
    if (pl->user)
        put(&buf, len, &cap, "user", pl->user);
    if (hostname)
        put(&buf, len, &cap, "hostname", hostname);
    return buf;
}

int vm_cfg_decode(const char *buf, size_t len, vm_cfg *c, oerr *e)
{
    memset(c, 0, sizeof *c);
    size_t i = 0;
    while (i < len) {
        const char *key = buf + i;
        const char *kend = memchr(key, 0, len - i);
        if (!kend || (size_t)(kend + 1 - buf) >= len)
            goto bad;
        const char *val = kend + 1;
        const char *vend = memchr(val, 0, len - (size_t)(val - buf));
        if (!vend)
            goto bad;
        i = (size_t)(vend + 1 - buf);
        if (strcmp(key, "arg") == 0)
            strv_push(&c->argv, xstrdup(val));
        else if (strcmp(key, "env") == 0)
            strv_push(&c->env, xstrdup(val));
        else if (strcmp(key, "workdir") == 0 && !c->workdir)
            c->workdir = xstrdup(val);
        else if (strcmp(key, "user") == 0 && !c->user)
            c->user = xstrdup(val);
        else if (strcmp(key, "hostname") == 0 && !c->hostname)
            c->hostname = xstrdup(val);
        else
            goto bad;
    }
    if (c->argv.n == 0 || !c->workdir)
        goto bad;
    return 0;
bad:
    vm_cfg_free(c);
    return oerr_set(e, "/" VM_CFG_PATH " is malformed: the VM's initramfs is corrupt (rebuild it: run again)");
}

void vm_cfg_free(vm_cfg *c)
{
    strv_free(&c->argv);
    strv_free(&c->env);
    free(c->workdir);
    free(c->user);
    free(c->hostname);
    memset(c, 0, sizeof *c);
}
