/* Unit tests for extract.c and pathres.c: layers, whiteouts, links, modes, and escape attempts.
 * Runs every case twice: with openat2 (if the kernel has it) and with the fallback component walk. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extract.h"
#include "pathres.h"
#include "tap.h"
#include "tarbuild.h"

static char top[PATH_MAX];

static int apply(extract_ctx *x, tb *t, oerr *e)
{
    tar_reader r;
    t->pos = 0;
    tar_init(&r, tb_read, t);
    int rc = extract_layer(x, &r, e);
    tar_free(&r);
    return rc;
}

static int exists(const char *root, const char *rel)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return lstat(p, &st) == 0;
}

static char *content(const char *root, const char *rel)
{
    static char buf[256];
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    int fd = open(p, O_RDONLY | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = 0;
    return buf;
}

static mode_t mode_of(const char *root, const char *rel)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return lstat(p, &st) == 0 ? st.st_mode : 0;
}

static void run_case(const char *label)
{
    char root[PATH_MAX], outside[PATH_MAX];
    snprintf(root, sizeof root, "%s/%s-root", top, label);
    snprintf(outside, sizeof outside, "%s/%s-outside", top, label);
    mkdir(root, 0755);
    mkdir(outside, 0755);
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    extract_ctx x;
    extract_init(&x, rootfd);
    oerr e = {0};

    tb l1 = {0};
    tb_dir(&l1, "./", 0755);
    tb_dir(&l1, "etc", 0755);
    tb_file(&l1, "etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0644);
    tb_file(&l1, "implicit/parent/file", "p", 0644); /* parents not in the tar */
    tb_dir(&l1, "data", 0755);
    tb_file(&l1, "data/keep", "keep", 0644);
    tb_file(&l1, "data/gone", "gone", 0644);
    tb_dir(&l1, "data/gonedir", 0755);
    tb_file(&l1, "data/gonedir/f", "f", 0644);
    tb_dir(&l1, "opq", 0755);
    tb_file(&l1, "opq/old", "old", 0644);
    tb_dir(&l1, "ro", 0555);
    tb_file(&l1, "ro/f", "ro", 0444);
    tb_file(&l1, "suid", "s", 04755);
    tb_hard(&l1, "hard", "data/keep");
    tb_sym(&l1, "lib", "usr/lib");
    tb_dir(&l1, "usr/lib", 0755);
    tb_sym(&l1, "evil_abs", "/");
    tb_sym(&l1, "evil_rel", "../../../../../../..");
    tb_raw(&l1, '3', "dev/null", NULL, 0666, NULL, 0, 0);
    tb_end(&l1);
    ok(apply(&x, &l1, &e) == 0, "%s: layer 1 extracts (%s)", label, e.msg);
    is_str(content(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n", "%s: regular file", label);
    is_str(content(root, "implicit/parent/file"), "p", "%s: missing parents created", label);
    struct stat a, b;
    char p1[PATH_MAX], p2[PATH_MAX];
    snprintf(p1, sizeof p1, "%s/hard", root);
    snprintf(p2, sizeof p2, "%s/data/keep", root);
    ok(stat(p1, &a) == 0 && stat(p2, &b) == 0 && a.st_ino == b.st_ino, "%s: hard link shares the inode", label);
    ok((mode_of(root, "suid") & 07777) == 0755, "%s: set-uid bit dropped", label);
    ok(!exists(root, "dev/null"), "%s: device node skipped", label);

    tb l2 = {0};
    tb_file(&l2, "data/.wh.gone", "", 0644);
    tb_file(&l2, "data/.wh.gonedir", "", 0644);
    tb_file(&l2, "data/.wh.never-existed", "", 0644);
    tb_dir(&l2, "opq", 0755);
    tb_file(&l2, "opq/new", "new", 0644);
    tb_file(&l2, "opq/.wh..wh..opq", "", 0644);
    tb_file(&l2, "ro/f2", "layer2", 0644);          /* write into a 0555 dir from a lower layer */
    tb_file(&l2, "lib/libx.so", "lib", 0644);        /* through an in-root symlink */
    tb_file(&l2, "evil_abs/etc/escape", "x", 0644);  /* symlink to / must stay inside */
    tb_file(&l2, "evil_rel/escape2", "x", 0644);     /* ../.. must clamp at the root */
    tb_file(&l2, "etc/passwd", "replaced\n", 0600);  /* replace a file */
    tb_sym(&l2, "data/keep", "elsewhere");           /* replace a file by a symlink */
    tb_end(&l2);
    ok(apply(&x, &l2, &e) == 0, "%s: layer 2 extracts (%s)", label, e.msg);
    ok(!exists(root, "data/gone") && !exists(root, "data/gonedir"), "%s: .wh. whiteouts remove file and dir",
       label);
    ok(exists(root, "opq/new") && !exists(root, "opq/old"), "%s: opaque whiteout keeps only this layer's files",
       label);
    is_str(content(root, "ro/f2"), "layer2", "%s: later layer writes into a read-only dir", label);
    is_str(content(root, "usr/lib/libx.so"), "lib", "%s: symlinked parent resolved inside the root", label);
    is_str(content(root, "etc/escape"), "x", "%s: absolute symlink parent stays in the root", label);
    is_str(content(root, "escape2"), "x", "%s: ../ symlink parent clamps at the root", label);
    ok(!exists(outside, "escape2") && !exists(top, "escape2"), "%s: nothing written outside", label);
    is_str(content(root, "etc/passwd"), "replaced\n", "%s: file replaced", label);
    ok(S_ISLNK(mode_of(root, "data/keep")), "%s: file replaced by symlink", label);

    /* Unsafe names are errors. */
    tb l3 = {0};
    tb_file(&l3, "../escape3", "x", 0644);
    tb_end(&l3);
    e.msg[0] = 0;
    ok(apply(&x, &l3, &e) == -1 && strstr(e.msg, ".."), "%s: \"..\" name rejected", label);
    tb l4 = {0};
    tb_file(&l4, "/abs", "x", 0644);
    tb_end(&l4);
    ok(apply(&x, &l4, &e) == -1 && strstr(e.msg, "absolute"), "%s: absolute name rejected", label);
    tb l5 = {0};
    tb_hard(&l5, "hl", "../../etc/passwd");
    tb_end(&l5);
    ok(apply(&x, &l5, &e) == -1, "%s: hard link to .. rejected", label);
    tb l6 = {0};
    tb_hard(&l6, "hl2", "evil_abs/etc/passwd"); /* resolves in root: to root/etc/passwd */
    tb_end(&l6);
    ok(apply(&x, &l6, &e) == 0, "%s: hard link through in-root symlink (%s)", label, e.msg);
    snprintf(p1, sizeof p1, "%s/hl2", root);
    snprintf(p2, sizeof p2, "%s/etc/passwd", root);
    ok(stat(p1, &a) == 0 && stat(p2, &b) == 0 && a.st_ino == b.st_ino, "%s: ... links the in-root file", label);

    ok(extract_finish(&x, &e) == 0, "%s: finish", label);
    ok((mode_of(root, "ro") & 07777) == 0555, "%s: directory mode applied at the end", label);
    snprintf(p1, sizeof p1, "%s/ro", root);
    ok(stat(p1, &a) == 0 && a.st_mtime == 1700000000, "%s: directory mtime applied at the end", label);
    snprintf(p1, sizeof p1, "%s/etc/passwd", root);
    ok(stat(p1, &a) == 0 && a.st_mtime == 1700000000, "%s: file mtime", label);

    extract_free(&x);
    close(rootfd);
    free(l1.buf), free(l2.buf), free(l3.buf), free(l4.buf), free(l5.buf), free(l6.buf);
}

static int owner_is(const char *root, const char *rel, uid_t u, gid_t g)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return lstat(p, &st) == 0 && st.st_uid == u && st.st_gid == g;
}

/* keep_owners (root): entries get their tar owners; a new entry already owned as wanted is not chowned, except
 * under a set-gid root, whose group new entries would inherit. */
static void owner_cases(void)
{
    if (geteuid() != 0) {
        ok(1, "# SKIP owner cases: need root (chown to other ids)");
        return;
    }
    for (int sgid = 0; sgid < 2; sgid++) {
        char root[PATH_MAX];
        snprintf(root, sizeof root, "%s/owners-%d", top, sgid);
        mkdir(root, 0755);
        if (sgid && (chown(root, 0, 4242) < 0 || chmod(root, 02755) < 0))
            printf("# chown/chmod %s: %s\n", root, strerror(errno));
        int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        extract_ctx x;
        extract_init(&x, rootfd);
        x.keep_owners = 1;
        oerr e = {0};
        tb l = {0};
        tb_dir(&l, "d", 0755);
        tb_file(&l, "mine", "m", 0644);
        tb_pax(&l, "uid", "1234");
        tb_pax(&l, "gid", "4321");
        tb_file(&l, "theirs", "t", 0640);
        tb_sym(&l, "link", "mine");
        tb_file(&l, "d/inner", "i", 0600);
        tb_end(&l);
        int rc = apply(&x, &l, &e);
        ok(rc == 0 && extract_finish(&x, &e) == 0, "owners%s: extracted (%s)", sgid ? " under a set-gid root" : "",
           rc ? e.msg : "ok");
        const char *what = sgid ? "set-gid root: " : "";
        ok(owner_is(root, "mine", 0, 0) && owner_is(root, "d", 0, 0) && owner_is(root, "link", 0, 0) &&
               owner_is(root, "d/inner", 0, 0),
           "%sentries wanting 0:0 are 0:0", what);
        ok(owner_is(root, "theirs", 1234, 4321) && (mode_of(root, "theirs") & 07777) == 0640,
           "%sentry wanting 1234:4321 is chowned, mode kept", what);
        extract_free(&x);
        close(rootfd);
        free(l.buf);
    }
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(top, sizeof top, "%s/oci2bin-extract-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(top)) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    run_case("openat2");
    pathres_force_walk(1);
    run_case("walk");
    owner_cases();
    int topfd = open("/", O_PATH | O_DIRECTORY);
    ok(remove_tree_at(topfd, top + 1) == 0, "remove_tree_at removes the whole tree (incl. 0555 dirs)");
    ok(access(top, F_OK) != 0, "test directory gone");
    return tap_done();
}
