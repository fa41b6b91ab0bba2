/* Docker's seccomp profile format (what `docker run --security-opt seccomp=FILE` reads):
 *   {"defaultAction": A, "defaultErrnoRet": N, "architectures": [...], "archMap": [...],
 *    "syscalls": [{"names": [...] | "name": S, "action": A, "errnoRet": N,
 *                  "args": [{"index": 0-5, "value": N, "valueTwo": N, "op": "SCMP_CMP_*"}],
 *                  "includes"/"excludes": {"arches": [...], "caps": [...], "minKernel": "X.Y"}}]}
 * Like docker, a rule's includes/excludes are resolved here (arches against this loader's architecture, caps
 * against the container's capability set, minKernel against uname), and names this architecture does not have
 * are skipped. Only the native ABI is filtered: other ABIs get ENOSYS (seccomp_bpf.c). Unknown members are
 * ignored (podman's "errno" strings, comments); wrong types and unknown actions/ops are errors. */
#define _GNU_SOURCE
#include "seccomp_profile.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include "caps.h"
#include "json.h"
#include "syscall_table.h"

#if defined(__x86_64__)
static const char *const NATIVE_ARCH_NAMES[] = {"amd64", "x86_64", "SCMP_ARCH_X86_64"};
#elif defined(__aarch64__)
static const char *const NATIVE_ARCH_NAMES[] = {"arm64", "aarch64", "SCMP_ARCH_AARCH64"};
#endif

#define PROFILE_MAX (8u << 20)
#define FIX "fix the profile (Docker's seccomp JSON format)"

static int name_cmp(const void *key, const void *ent)
{
    return strcmp((const char *)key, ((const syscall_name *)ent)->name);
}

int seccomp_syscall_nr(const char *name)
{
    const syscall_name *s = bsearch(name, SYSCALL_NAMES, sizeof SYSCALL_NAMES / sizeof SYSCALL_NAMES[0],
                                    sizeof SYSCALL_NAMES[0], name_cmp);
    return s ? s->nr : -1;
}

typedef struct ctx {
    const char *path;
    uint64_t caps;
    int kmajor, kminor;
    oerr *e;
} ctx;

static int bad(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(ctx *c, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return oerr_set(c->e, "--seccomp-profile %s: %s: " FIX, c->path, what);
}

static int is_str_array(const json *j)
{
    if (!j || j->type != JSON_ARRAY)
        return 0;
    for (const json *it = j->child; it; it = it->next)
        if (it->type != JSON_STRING)
            return 0;
    return 1;
}

static int in_list(const json *arr, const char *const *names, size_t n)
{
    for (const json *it = arr ? arr->child : NULL; it; it = it->next)
        for (size_t k = 0; k < n; k++)
            if (strcmp(it->str, names[k]) == 0)
                return 1;
    return 0;
}

/* Action name (+ errnoRet) -> SECCOMP_RET_* value. */
static int action(ctx *c, const json *act, const json *errno_ret, const char *where, uint32_t *out)
{
    const char *a = json_str(act);
    uint64_t err = EPERM; /* runc's default for ERRNO and TRACE without errnoRet */
    if (!a)
        return bad(c, "%s action must be a string like \"SCMP_ACT_ERRNO\"", where);
    if (errno_ret && errno_ret->type != JSON_NULL && (json_u64(errno_ret, &err) || err > 4095))
        return bad(c, "%s errnoRet must be an errno number 0..4095", where);
    if (strcmp(a, "SCMP_ACT_ALLOW") == 0)
        *out = SECCOMP_RET_ALLOW;
    else if (strcmp(a, "SCMP_ACT_ERRNO") == 0)
        *out = SECCOMP_RET_ERRNO | (uint32_t)err;
    else if (strcmp(a, "SCMP_ACT_KILL") == 0 || strcmp(a, "SCMP_ACT_KILL_THREAD") == 0)
        *out = SECCOMP_RET_KILL_THREAD;
    else if (strcmp(a, "SCMP_ACT_KILL_PROCESS") == 0)
        *out = SECCOMP_RET_KILL_PROCESS;
    else if (strcmp(a, "SCMP_ACT_TRAP") == 0)
        *out = SECCOMP_RET_TRAP;
    else if (strcmp(a, "SCMP_ACT_LOG") == 0)
        *out = SECCOMP_RET_LOG;
    else if (strcmp(a, "SCMP_ACT_TRACE") == 0)
        *out = SECCOMP_RET_TRACE | (uint32_t)err; /* no tracer in a container: the syscall fails with ENOSYS */
    else if (strcmp(a, "SCMP_ACT_NOTIFY") == 0)
        return bad(c, "%s action SCMP_ACT_NOTIFY needs a seccomp agent, which oci2bin does not run: use "
                      "SCMP_ACT_ERRNO",
                   where);
    else
        return bad(c, "%s action \"%s\" is unknown: use SCMP_ACT_ALLOW, ERRNO, KILL, KILL_PROCESS, TRAP, LOG or "
                      "TRACE",
                   where, a);
    return 0;
}

static int op_by_name(const char *s, enum seccomp_op *op)
{
    static const struct {
        const char *name;
        enum seccomp_op op;
    } OPS[] = {{"SCMP_CMP_NE", SC_OP_NE}, {"SCMP_CMP_LT", SC_OP_LT}, {"SCMP_CMP_LE", SC_OP_LE},
               {"SCMP_CMP_EQ", SC_OP_EQ}, {"SCMP_CMP_GE", SC_OP_GE}, {"SCMP_CMP_GT", SC_OP_GT},
               {"SCMP_CMP_MASKED_EQ", SC_OP_MASKED_EQ}};
    for (size_t i = 0; s && i < sizeof OPS / sizeof OPS[0]; i++)
        if (strcmp(s, OPS[i].name) == 0) {
            *op = OPS[i].op;
            return 0;
        }
    return -1;
}

static int parse_args(ctx *c, const json *args, const char *where, seccomp_rule *r)
{
    if (!args || args->type == JSON_NULL)
        return 0;
    if (args->type != JSON_ARRAY)
        return bad(c, "%s args must be an array", where);
    if (args->count > 6)
        return bad(c, "%s has %zu args conditions: at most 6 (one per syscall argument)", where, args->count);
    for (const json *a = args->child; a; a = a->next) {
        seccomp_cond *sc = &r->conds[r->n_conds];
        uint64_t idx;
        const json *v2 = json_get(a, "valueTwo");
        if (a->type != JSON_OBJECT)
            return bad(c, "%s args[%d] must be an object", where, r->n_conds);
        if (json_u64(json_get(a, "index"), &idx) || idx > 5)
            return bad(c, "%s args[%d].index must be a number 0..5", where, r->n_conds);
        if (json_u64(json_get(a, "value"), &sc->value))
            return bad(c, "%s args[%d].value must be a number 0..2^64-1", where, r->n_conds);
        sc->value_two = 0;
        if (v2 && v2->type != JSON_NULL && json_u64(v2, &sc->value_two))
            return bad(c, "%s args[%d].valueTwo must be a number 0..2^64-1", where, r->n_conds);
        if (op_by_name(json_str(json_get(a, "op")), &sc->op))
            return bad(c, "%s args[%d].op must be one of SCMP_CMP_NE, LT, LE, EQ, GE, GT, MASKED_EQ", where,
                       r->n_conds);
        sc->index = (unsigned)idx;
        r->n_conds++;
    }
    return 0;
}

/* Whether a rule's includes/excludes let it apply here (docker: includes need all, excludes skip on any). */
static int filter_ok(ctx *c, const json *f, int include, const char *where, int *applies)
{
    if (!f || f->type == JSON_NULL)
        return 0;
    if (f->type != JSON_OBJECT)
        return bad(c, "%s %s must be an object", where, include ? "includes" : "excludes");
    const json *arches = json_get(f, "arches"), *caps = json_get(f, "caps"), *mk = json_get(f, "minKernel");
    if ((arches && arches->type != JSON_NULL && !is_str_array(arches)) ||
        (caps && caps->type != JSON_NULL && !is_str_array(caps)))
        return bad(c, "%s %s arches and caps must be arrays of strings", where, include ? "includes" : "excludes");
    if (mk && mk->type != JSON_NULL && !json_str(mk))
        return bad(c, "%s %s minKernel must be a string like \"4.8\"", where, include ? "includes" : "excludes");
    int n_arch = arches && arches->type == JSON_ARRAY ? (int)arches->count : 0;
    int native = in_list(arches, NATIVE_ARCH_NAMES, sizeof NATIVE_ARCH_NAMES / sizeof NATIVE_ARCH_NAMES[0]);
    int any_cap = 0, all_caps = 1;
    for (const json *it = caps && caps->type == JSON_ARRAY ? caps->child : NULL; it; it = it->next) {
        int bit = cap_by_name(it->str);
        int held = bit >= 0 && ((c->caps >> bit) & 1);
        any_cap |= held;
        all_caps &= held;
    }
    int kernel_ok = 1;
    if (json_str(mk)) {
        int maj = 0, min = 0;
        if (sscanf(mk->str, "%d.%d", &maj, &min) < 1)
            return bad(c, "%s minKernel \"%s\" is not a version like \"4.8\"", where, mk->str);
        kernel_ok = c->kmajor > maj || (c->kmajor == maj && c->kminor >= min);
    }
    if (include)
        *applies &= (!n_arch || native) && all_caps && kernel_ok;
    else
        *applies &= !(n_arch && native) && !any_cap && !(json_str(mk) && kernel_ok);
    return 0;
}

static int parse_syscalls(ctx *c, const json *list, seccomp_rule **rules, size_t *n)
{
    size_t cap = 0;
    int i = 0, unknown = 0;
    for (const json *s = list->child; s; s = s->next, i++) {
        char where[48];
        snprintf(where, sizeof where, "syscalls[%d]", i);
        if (s->type != JSON_OBJECT)
            return bad(c, "%s must be an object", where);
        const json *names = json_get(s, "names"), *name = json_get(s, "name");
        if (names && names->type != JSON_NULL && !is_str_array(names))
            return bad(c, "%s names must be an array of strings", where);
        if (name && name->type != JSON_NULL && !json_str(name))
            return bad(c, "%s name must be a string", where);
        int has_names = names && names->type == JSON_ARRAY;
        if (has_names == !!json_str(name))
            return bad(c, "%s needs \"names\" (an array) or \"name\" (a string), not both or neither", where);
        seccomp_rule r = {0};
        if (action(c, json_get(s, "action"), json_get(s, "errnoRet"), where, &r.action) ||
            parse_args(c, json_get(s, "args"), where, &r))
            return -1;
        int applies = 1;
        if (filter_ok(c, json_get(s, "includes"), 1, where, &applies) ||
            filter_ok(c, json_get(s, "excludes"), 0, where, &applies))
            return -1;
        if (!applies)
            continue;
        const char *single = json_str(name);
        for (const json *it = single ? name : names->child; it; it = single ? NULL : it->next) {
            r.nr = seccomp_syscall_nr(it->str);
            if (r.nr < 0) {
                dbg("seccomp profile: syscall \"%s\" does not exist on this architecture: skipped", it->str);
                unknown++;
                continue;
            }
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                *rules = xrealloc(*rules, cap * sizeof **rules);
            }
            (*rules)[(*n)++] = r;
        }
    }
    if (unknown)
        dbg("seccomp profile: %d syscall names skipped (unknown here)", unknown);
    return 0;
}

int seccomp_profile_load(const char *path, uint64_t caps, seccomp_filter *out, oerr *e)
{
    ctx c = {path, caps, 0, 0, e};
    struct utsname u;
    if (uname(&u) == 0)
        sscanf(u.release, "%d.%d", &c.kmajor, &c.kminor);
    char *text;
    size_t len;
    if (read_small_file(AT_FDCWD, path, PROFILE_MAX, &text, &len, e)) {
        char tmp[OERR_MSG_MAX];
        snprintf(tmp, sizeof tmp, "--seccomp-profile: %s", e->msg);
        return oerr_set(e, "%s", tmp);
    }
    json *root = json_parse(text, len, e);
    free(text);
    if (!root) {
        char tmp[OERR_MSG_MAX];
        snprintf(tmp, sizeof tmp, "%s", e->msg);
        char *cut = strstr(tmp, ": the file is corrupt");
        if (cut)
            *cut = 0;
        return bad(&c, "not valid JSON (%s)", tmp);
    }
    int rc = -1;
    uint32_t def;
    seccomp_rule *rules = NULL;
    size_t n = 0;
    const json *arches = json_get(root, "architectures"), *list = json_get(root, "syscalls");
    if (root->type != JSON_OBJECT) {
        bad(&c, "the profile must be a JSON object");
        goto out;
    }
    if (!json_get(root, "defaultAction")) {
        bad(&c, "no \"defaultAction\"");
        goto out;
    }
    if (action(&c, json_get(root, "defaultAction"), json_get(root, "defaultErrnoRet"), "defaultAction", &def))
        goto out;
    if (arches && arches->type != JSON_NULL && !is_str_array(arches)) {
        bad(&c, "architectures must be an array of strings like \"SCMP_ARCH_X86_64\"");
        goto out;
    }
    if (list && list->type != JSON_NULL && list->type != JSON_ARRAY) {
        bad(&c, "syscalls must be an array");
        goto out;
    }
    if (list && list->type == JSON_ARRAY && parse_syscalls(&c, list, &rules, &n))
        goto out;
    rc = seccomp_bpf_build(rules, n, def, out, e);
    if (rc == 0)
        dbg("seccomp profile %s: %zu rules, %u BPF instructions", path, n, out->len);
out:
    free(rules);
    json_free(root);
    return rc;
}
