/* Deterministic mutation smoke test: thousands of corrupted JSON documents, tar streams and argument
 * vectors must be rejected or accepted cleanly (no crash, no hang, no out-of-bounds read that faults). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "options.h"
#include "tap.h"
#include "tar.h"
#include "tarbuild.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void mutate(unsigned char *b, size_t len)
{
    int n = 1 + (int)(rnd() % 4);
    static const unsigned char interesting[] = {0, 0xff, '"', '\\', '[', '{', ']', '}', ':', ',', 'u', '0',
                                                '9', ' ', '\n', 0x80, 0xc3, 0xed, 'x', '='};
    for (int i = 0; i < n && len; i++) {
        size_t at = rnd() % len;
        if (rnd() % 2)
            b[at] = interesting[rnd() % sizeof interesting];
        else
            b[at] ^= (unsigned char)(1u << (rnd() % 8));
    }
}

int main(void)
{
    const char *doc = "{\"format\":1,\"entries\":[[\"manifest.json\",1024,16],[\"blobs/sha256/ab\",2048,3]],"
                      "\"s\":\"a\\u00e9\\ud83d\\ude00\\n\",\"n\":-1.5e3,\"t\":true,\"f\":false,\"z\":null,"
                      "\"deep\":[[[[{\"k\":[1,2,{\"x\":\"y\"}]}]]]]}";
    size_t dlen = strlen(doc);
    unsigned char *buf = malloc(dlen);
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy(buf, doc, dlen);
        mutate(buf, dlen);
        size_t len = rnd() % 8 == 0 ? rnd() % dlen : dlen; /* sometimes truncated */
        oerr e;
        json *j = json_parse((const char *)buf, len, &e);
        if (j)
            accepted++;
        json_free(j);
    }
    free(buf);
    ok(1, "20000 mutated JSON documents parsed without crashing (%d accepted)", accepted);

    tb t = {0};
    tb_dir(&t, "d/", 0755);
    tb_pax(&t, "path", "d/pax-name");
    tb_file(&t, "x", "content", 0644);
    tb_gnu_long(&t, 'L', "d/gnu-long-name");
    tb_file(&t, "y", "more content", 0644);
    tb_sym(&t, "s", "target");
    tb_end(&t);
    unsigned char *orig = malloc(t.len);
    memcpy(orig, t.buf, t.len);
    int entries = 0, errors = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy(t.buf, orig, t.len);
        /* Mutate headers (the checksum would reject most), then fix the checksums half of the time. */
        mutate(t.buf, t.len);
        if (rnd() % 2)
            for (size_t off = 0; off + 512 <= t.len; off += 512) {
                unsigned char *h = t.buf + off;
                if (memcmp(h + 257, "ustar", 5) != 0)
                    continue;
                memset(h + 148, ' ', 8);
                unsigned sum = 0;
                for (int k = 0; k < 512; k++)
                    sum += h[k];
                snprintf((char *)h + 148, 8, "%06o", sum);
            }
        size_t full = t.len;
        if (rnd() % 4 == 0)
            t.len = rnd() % full;
        t.pos = 0;
        t.chunk = 1 + rnd() % 700;
        tar_reader r;
        const tar_entry *en;
        oerr e;
        tar_init(&r, tb_read, &t);
        int rc, guard = 0;
        while ((rc = tar_next(&r, &en, &e)) == 1 && guard++ < 64) {
            char d[64];
            entries++;
            while (tar_read(&r, d, sizeof d, &e) > 0)
                ;
        }
        if (rc < 0)
            errors++;
        tar_free(&r);
        t.len = full;
    }
    free(orig);
    free(t.buf);
    ok(1, "20000 mutated tar streams read without crashing (%d entries, %d errors)", entries, errors);

    static const char *const words[] = {"-e", "--env", "--env=", "-eK=V", "--workdir", "/w", "rel", "--",
                                        "--entrypoint", "", "-", "--debug", "--debug=1", "-h", "--user",
                                        "-u", "x", "--cache-dir", "--no-cache", "--bogus", "-Z", "--env-file"};
    int parsed = 0;
    for (int i = 0; i < 20000; i++) {
        char *argv[9];
        int argc = 1 + (int)(rnd() % 8);
        argv[0] = "prog";
        for (int k = 1; k < argc; k++)
            argv[k] = (char *)words[rnd() % (sizeof words / sizeof words[0])];
        argv[argc] = NULL;
        options o;
        oerr e;
        if (options_parse(argc, argv, &o, &e) == 0)
            parsed++;
        options_free(&o);
    }
    ok(1, "20000 random argument vectors parsed without crashing (%d accepted)", parsed);
    return tap_done();
}
