/* Unit tests for payload.c: footer validation, metadata parsing, entry lookup and bounds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "payload.h"
#include "tap.h"

static void le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* A fake polyglot: 4096 bytes of "archive" (tar_end), metadata, footer. Returns a /proc path. */
static char *make(const char *meta, uint64_t tar_end_override, const char *magic, char *path, int *fdp)
{
    int fd = memfd_create("payload_test", 0);
    unsigned char arch[4096] = {0};
    memcpy(arch + 1024, "[{\"Config\":\"c\"}]", 16);
    write_all(fd, arch, sizeof arch);
    write_all(fd, meta, strlen(meta));
    unsigned char f[64] = {0};
    memcpy(f, magic, 8);
    le(f + 8, 1, 4);
    le(f + 16, tar_end_override ? tar_end_override : sizeof arch, 8);
    le(f + 24, strlen(meta), 8);
    le(f + 48, 512, 8);
    memcpy(f + 56, "OCI2END\0", 8);
    write_all(fd, f, 64);
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    *fdp = fd;
    return path;
}

int main(void)
{
    char path[64];
    int fd;
    payload p;
    oerr e = {0};
    const char *good = "{\"config_digest\":\"sha256:ab\",\"entries\":[[\"manifest.json\",1024,16],[\"x\",2048,0]],"
                       "\"format\":1,\"image\":\"img:1\"}";
    ok(payload_open(&p, make(good, 0, "OCI2BIN\0", path, &fd), &e) == 0, "valid payload opens (%s)", e.msg);
    ok(p.n_entries == 2 && p.tar_end == 4096 && p.loader_off == 512, "footer fields and entries");
    is_str(p.image, "img:1", "image name");
    is_str(p.config_digest, "sha256:ab", "config digest");
    const payload_entry *m = payload_find(&p, "manifest.json");
    ok(m && m->off == 1024 && m->size == 16, "entry found by exact name");
    ok(payload_find(&p, "manifest") == NULL, "no prefix matches");
    char *text = NULL;
    ok(m && payload_read(&p, m, 100, &text, &e) == 0 && strcmp(text, "[{\"Config\":\"c\"}]") == 0, "entry read");
    free(text);
    ok(payload_read(&p, m, 10, &text, &e) == -1, "entry larger than max rejected");
    payload_close(&p);
    close(fd);

    ok(payload_open(&p, make(good, 0, "OCI2BIX\0", path, &fd), &e) == -1 && strstr(e.msg, "not an oci2bin"),
       "bad magic: not an oci2bin binary");
    payload_close(&p), close(fd);
    ok(payload_open(&p, make(good, 1u << 30, "OCI2BIN\0", path, &fd), &e) == -1 && strstr(e.msg, "outside"),
       "metadata offset beyond the file rejected");
    payload_close(&p), close(fd);
    const char *oob = "{\"entries\":[[\"x\",4000,200]],\"format\":1}";
    ok(payload_open(&p, make(oob, 0, "OCI2BIN\0", path, &fd), &e) == -1 && strstr(e.msg, "outside the archive"),
       "entry beyond TAR_END rejected");
    payload_close(&p), close(fd);
    const char *fmt2 = "{\"entries\":[[\"x\",1024,1]],\"format\":2}";
    ok(payload_open(&p, make(fmt2, 0, "OCI2BIN\0", path, &fd), &e) == -1 && strstr(e.msg, "format"),
       "unknown metadata format rejected");
    payload_close(&p), close(fd);
    ok(payload_open(&p, make("{not json", 0, "OCI2BIN\0", path, &fd), &e) == -1 && strstr(e.msg, "metadata"),
       "malformed metadata rejected");
    payload_close(&p), close(fd);
    ok(payload_open(&p, "/proc/self/status", &e) == -1, "a non-regular/small file is not a payload");
    payload_close(&p);
    return tap_done();
}
