/* Unit tests for tar.c. */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "tar.h"
#include "tarbuild.h"

static char *read_all(tar_reader *r)
{
    static char buf[70000];
    oerr e;
    size_t n = 0;
    ssize_t got;
    while ((got = tar_read(r, buf + n, sizeof buf - 1 - n, &e)) > 0)
        n += (size_t)got;
    buf[n] = 0;
    return buf;
}

int main(void)
{
    tb t = {0};
    char longname[300], longlink[250];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    memcpy(longname, "dir/", 4);
    memset(longlink, 'l', sizeof longlink - 1);
    longlink[sizeof longlink - 1] = 0;
    static char big[70000];
    memset(big, 'b', sizeof big - 1);

    tb_dir(&t, "./etc/", 0755);
    tb_file(&t, "./etc/hostname", "box\n", 0640);
    tb_pax(&t, "path", "pax/very/long/name/from/pax");
    tb_file(&t, "ignored-ustar-name", "pax body", 0600);
    tb_gnu_long(&t, 'L', longname);
    tb_gnu_long(&t, 'K', longlink);
    tb_sym(&t, "ignored", "ignored");
    tb_pax(&t, "linkpath", "/pax/target");
    tb_sym(&t, "s", "short");
    tb_hard(&t, "h", "etc/hostname");
    tb_raw(&t, '0', "base256", NULL, 0644, big, sizeof big - 1, 1);
    tb_pax(&t, "mtime", "1234567890.5");
    tb_file(&t, "timed", "", 0644);
    tb_file(&t, "after", "x", 06755);
    tb_end(&t);
    t.chunk = 7; /* many short reads */

    tar_reader r;
    const tar_entry *en;
    oerr e = {0};
    tar_init(&r, tb_read, &t);
    ok(tar_next(&r, &en, &e) == 1 && en->type == '5', "directory entry");
    is_str(en->path, "./etc/", "directory name as stored");
    ok(tar_next(&r, &en, &e) == 1 && en->type == '0' && en->size == 4 && en->mode == 0640, "file header");
    is_str(read_all(&r), "box\n", "file data");
    ok(tar_next(&r, &en, &e) == 1, "pax-named file");
    is_str(en->path, "pax/very/long/name/from/pax", "pax path overrides the ustar name");
    /* data not read: the next tar_next must skip it */
    ok(tar_next(&r, &en, &e) == 1 && en->type == '2', "GNU long name + long link symlink");
    is_str(en->path, longname, "GNU 'L' long name");
    is_str(en->linkpath, longlink, "GNU 'K' long link");
    ok(tar_next(&r, &en, &e) == 1, "pax linkpath symlink");
    is_str(en->linkpath, "/pax/target", "pax linkpath overrides");
    is_str(en->path, "s", "pax record applies to one entry only (name)");
    ok(tar_next(&r, &en, &e) == 1 && en->type == '1', "hard link");
    is_str(en->linkpath, "etc/hostname", "hard link target");
    ok(tar_next(&r, &en, &e) == 1 && en->size == sizeof big - 1, "base-256 size field");
    ok(strlen(read_all(&r)) == sizeof big - 1, "base-256 sized data read fully");
    ok(tar_next(&r, &en, &e) == 1 && en->mtime == 1234567890 && en->mtime_nsec == 500000000, "pax mtime");
    ok(tar_next(&r, &en, &e) == 1 && en->mode == 06755, "mode keeps set-id bits (extract drops them)");
    ok(tar_next(&r, &en, &e) == 0, "end of archive");
    ok(tar_next(&r, &en, &e) == 0, "end is sticky");
    tar_free(&r);

    /* tar_read_view: through the source's view function (no copy), and without one (tar's own buffer) */
    for (int with_view = 0; with_view < 2; with_view++) {
        t.pos = 0;
        tar_init(&r, tb_read, &t);
        if (with_view)
            tar_set_view(&r, tb_view);
        while (tar_next(&r, &en, &e) == 1 && en->size != sizeof big - 1)
            ;
        static char got_big[70000];
        size_t n = 0;
        ssize_t k;
        const void *p;
        while ((k = tar_read_view(&r, &p, 1000, &e)) > 0 && n + (size_t)k < sizeof got_big) {
            memcpy(got_big + n, p, (size_t)k);
            n += (size_t)k;
        }
        ok(k == 0 && n == sizeof big - 1 && memcmp(got_big, big, n) == 0, "tar_read_view %s a view function: %zu bytes",
           with_view ? "with" : "without", n);
        ok(tar_next(&r, &en, &e) == 1 && en->mtime == 1234567890, "%s: the next entry follows",
           with_view ? "view" : "no view");
        tar_free(&r);
    }

    /* Truncated stream: header promises more data than there is. */
    tb t2 = {0};
    tb_file(&t2, "f", "0123456789", 0644);
    t2.len -= 512 - 10 + 5; /* cut inside the data */
    tar_init(&r, tb_read, &t2);
    ok(tar_next(&r, &en, &e) == 1, "truncated: header ok");
    ssize_t got;
    char buf[64];
    while ((got = tar_read(&r, buf, sizeof buf, &e)) > 0)
        ;
    ok(got < 0 && strstr(e.msg, "truncated"), "truncated data is an error");
    tar_free(&r);

    /* Bad checksum. */
    tb t3 = {0};
    tb_file(&t3, "f", "x", 0644);
    t3.buf[0] ^= 1;
    tar_init(&r, tb_read, &t3);
    e.msg[0] = 0;
    ok(tar_next(&r, &en, &e) == -1 && strstr(e.msg, "checksum"), "bad checksum rejected");
    tar_free(&r);

    /* Archive without end blocks (EOF right after an entry) ends cleanly. */
    tb t4 = {0};
    tb_file(&t4, "f", "x", 0644);
    tar_init(&r, tb_read, &t4);
    ok(tar_next(&r, &en, &e) == 1 && tar_next(&r, &en, &e) == 0, "bare EOF after an entry ends the archive");
    tar_free(&r);

    /* Malformed pax. */
    tb t5 = {0};
    tb_raw(&t5, 'x', "PaxHeader", NULL, 0644, "99 path=x\n", 10, 0);
    tb_file(&t5, "f", "x", 0644);
    tar_init(&r, tb_read, &t5);
    ok(tar_next(&r, &en, &e) == -1 && strstr(e.msg, "pax"), "malformed pax length rejected");
    tar_free(&r);

    /* ustar prefix field. */
    tb t6 = {0};
    tb_file(&t6, "name", "x", 0644);
    memcpy(t6.buf + 345, "some/prefix", 11);
    memset(t6.buf + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += t6.buf[i];
    snprintf((char *)t6.buf + 148, 8, "%06o", sum);
    tar_init(&r, tb_read, &t6);
    ok(tar_next(&r, &en, &e) == 1, "ustar prefix entry");
    is_str(en->path, "some/prefix/name", "prefix joined to name");
    tar_free(&r);
    free(t.buf);
    free(t2.buf);
    free(t3.buf);
    free(t4.buf);
    free(t5.buf);
    free(t6.buf);
    return tap_done();
}
