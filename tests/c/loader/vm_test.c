/* Unit tests for --vm's pieces that run without a VM: the guest's run description (vm_cfg.c) and the newc
 * initramfs writer (vm_cpio.c), whose output is parsed back here field by field. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec.h"
#include "tap.h"
#include "vm_cfg.h"
#include "vm_cpio.h"

typedef struct entry {
    char name[256];
    unsigned ino, mode, nlink, size;
    char data[64];
} entry;

static unsigned hex8(const char *p)
{
    char b[9];
    memcpy(b, p, 8);
    b[8] = 0;
    return (unsigned)strtoul(b, NULL, 16);
}

/* Parses a newc archive; returns the entry count (-1 on a format error). */
static int parse(const char *buf, size_t len, entry *out, int max)
{
    size_t off = 0;
    int n = 0;
    while (off + 110 <= len && n < max) {
        if (memcmp(buf + off, "070701", 6) != 0 || off % 4)
            return -1;
        entry *e = &out[n++];
        e->ino = hex8(buf + off + 6);
        e->mode = hex8(buf + off + 14);
        e->nlink = hex8(buf + off + 38);
        e->size = hex8(buf + off + 54);
        unsigned nl = hex8(buf + off + 94);
        if (nl == 0 || nl > sizeof e->name || off + 110 + nl > len || buf[off + 110 + nl - 1])
            return -1;
        memcpy(e->name, buf + off + 110, nl);
        off = (off + 110 + nl + 3) & ~(size_t)3;
        if (off + e->size > len)
            return -1;
        memcpy(e->data, buf + off, e->size < sizeof e->data - 1 ? e->size : sizeof e->data - 1);
        e->data[e->size < sizeof e->data - 1 ? e->size : sizeof e->data - 1] = 0;
        off = (off + e->size + 3) & ~(size_t)3;
        if (strcmp(e->name, "TRAILER!!!") == 0)
            return off == len ? n : -1;
    }
    return -1;
}

static const entry *find(const entry *es, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(es[i].name, name) == 0)
            return &es[i];
    return NULL;
}

static int index_of(const entry *es, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(es[i].name, name) == 0)
            return i;
    return -1;
}

int main(void)
{
    oerr e = {0};
    /* vm_cfg: any byte but NUL survives; order of args and env kept */
    exec_plan pl = {0};
    strv_push(&pl.argv, xstrdup("sh"));
    strv_push(&pl.argv, xstrdup("-c"));
    strv_push(&pl.argv, xstrdup("echo \"$A\" 'b c'\n\t\xff"));
    strv_push(&pl.env, xstrdup("A=1=2"));
    strv_push(&pl.env, xstrdup("EMPTY="));
    pl.workdir = "/w d";
    pl.user = "65534:65534";
    size_t len;
    char *blob = vm_cfg_encode(&pl, "host", &len);
    vm_cfg c;
    ok(vm_cfg_decode(blob, len, &c, &e) == 0, "cfg round trip parses");
    ok(c.argv.n == 3 && strcmp(c.argv.v[2], "echo \"$A\" 'b c'\n\t\xff") == 0 && c.argv.v[3] == NULL,
       "argv kept byte for byte, NULL-terminated");
    ok(c.env.n == 2 && strcmp(c.env.v[0], "A=1=2") == 0 && strcmp(c.env.v[1], "EMPTY=") == 0, "env kept");
    is_str(c.workdir, "/w d", "workdir");
    is_str(c.user, "65534:65534", "user");
    is_str(c.hostname, "host", "hostname");
    vm_cfg_free(&c);
    ok(vm_cfg_decode(blob, len - 1, &c, &e) < 0 && strstr(e.msg, "malformed"), "a truncated blob is refused");
    ok(vm_cfg_decode("bogus\0x\0", 8, &c, &e) < 0, "an unknown key is refused");
    ok(vm_cfg_decode("workdir\0/\0", 10, &c, &e) < 0, "no arg is refused");
    free(blob);
    strv_free(&pl.argv);
    strv_free(&pl.env);

    /* cpio: a small tree with a dir, a file, a hard link, a symlink, a fifo */
    const char *tmpdir = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/vm-test-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    ok(mkdtemp(dir) != NULL, "temp dir");
    char p[4200];
    snprintf(p, sizeof p, "%s/root", dir);
    mkdir(p, 0751);
    snprintf(p, sizeof p, "%s/root/etc", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/root/etc/hello", dir);
    int fd = open(p, O_WRONLY | O_CREAT, 0640);
    ok(fd >= 0 && write(fd, "hello world\n", 12) == 12, "file written");
    close(fd);
    char q[4200];
    snprintf(q, sizeof q, "%s/root/hardlink", dir);
    ok(link(p, q) == 0, "hard link");
    snprintf(q, sizeof q, "%s/root/etc/sym", dir);
    ok(symlink("../hardlink", q) == 0, "symlink");
    snprintf(q, sizeof q, "%s/root/fifo", dir);
    ok(mkfifo(q, 0600) == 0, "fifo");
    snprintf(p, sizeof p, "%s/root", dir);
    int rootfd = open(p, O_RDONLY | O_DIRECTORY);
    snprintf(q, sizeof q, "%s/out.cpio", dir);
    int out = open(q, O_RDWR | O_CREAT | O_TRUNC, 0600);
    memset(&e, 0, sizeof e);
    cpio_out *cp = malloc(sizeof *cp);
    cpio_init(cp, out);
    ok(cpio_add_tree(cp, rootfd, &e) == 0 && cpio_add_data(cp, "init", 0755, "\x7f" "ELF", 4, &e) == 0 &&
           cpio_finish(cp, &e) == 0,
       "archive written: %s", e.msg);
    cpio_free(cp);
    free(cp);
    close(rootfd);
    struct stat st;
    fstat(out, &st);
    char *buf = malloc((size_t)st.st_size);
    ok(pread(out, buf, (size_t)st.st_size, 0) == st.st_size, "archive read back");
    close(out);
    entry es[32];
    int n = parse(buf, (size_t)st.st_size, es, 32);
    ok(n == 8, "8 entries (., etc, etc/hello, etc/sym, hardlink, fifo, init, trailer): %d", n);
    const entry *root = find(es, n, "."), *etc = find(es, n, "etc"), *hello = find(es, n, "etc/hello"),
                *hl = find(es, n, "hardlink"), *sym = find(es, n, "etc/sym"), *fifo = find(es, n, "fifo"),
                *init = find(es, n, "init");
    ok(root && root->mode == (S_IFDIR | 0751) && index_of(es, n, ".") == 0, "root dir first, with its mode");
    ok(etc && index_of(es, n, "etc") < index_of(es, n, "etc/hello"), "parents before children");
    ok(hello && hl && hello->ino == hl->ino && hello->nlink == 2 && hl->nlink == 2, "hard links share an inode");
    const entry *first = index_of(es, n, "etc/hello") < index_of(es, n, "hardlink") ? hello : hl;
    const entry *second = first == hello ? hl : hello;
    ok(first && first->size == 12 && strcmp(first->data, "hello world\n") == 0 && second->size == 0,
       "the data travels with the first name only");
    ok(first->mode == (S_IFREG | 0640), "file mode");
    ok(sym && S_ISLNK(sym->mode) && strcmp(sym->data, "../hardlink") == 0, "symlink target as data");
    ok(fifo && S_ISFIFO(fifo->mode) && fifo->size == 0, "fifo");
    ok(init && init->mode == (S_IFREG | 0755) && init->size == 4 && memcmp(init->data, "\x7f" "ELF", 4) == 0,
       "in-memory file");
    ok(strcmp(es[n - 1].name, "TRAILER!!!") == 0, "trailer last, archive ends there");
    free(buf);
    snprintf(p, sizeof p, "rm -rf '%s'", dir);
    ok(system(p) == 0, "cleanup");
    return tap_done();
}
