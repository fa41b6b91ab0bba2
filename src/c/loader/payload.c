/* Finds the embedded image: pread the footer at size-64, check magics and bounds, parse the metadata
 * JSON and index its "entries" table. Never scans the file or walks tar headers. */
#define _GNU_SOURCE
#include "payload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOT_OCI2BIN "not an oci2bin binary"
#define REBUILD "rebuild it with oci2bin"

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64(const unsigned char *b)
{
    return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
}

static int parse_footer(payload *p, const unsigned char *f, oerr *e)
{
    if (memcmp(f, "OCI2BIN\0", 8) != 0 || memcmp(f + 56, "OCI2END\0", 8) != 0)
        return oerr_set(e, "%s (no oci2bin footer): run a file produced by oci2bin", NOT_OCI2BIN);
    p->version = le32(f + 8);
    p->flags = le32(f + 12);
    p->tar_end = le64(f + 16);
    p->meta_size = le64(f + 24);
    p->sig_off = le64(f + 32);
    p->sig_len = le64(f + 40);
    p->loader_off = le64(f + 48);
    if (p->version != 1)
        return oerr_set(e, "unsupported oci2bin format version %u: use a newer oci2bin loader", p->version);
    uint64_t limit = p->file_size - PAYLOAD_FOOTER_SIZE;
    if (p->tar_end < 1024 || p->tar_end > limit || p->meta_size == 0 || p->meta_size > limit - p->tar_end)
        return oerr_set(e, "%s (metadata outside the file): the file is truncated or corrupt, %s", NOT_OCI2BIN,
                        REBUILD);
    if (p->meta_size > PAYLOAD_META_MAX)
        return oerr_set(e, "oci2bin metadata is too large (%llu bytes): %s", (unsigned long long)p->meta_size,
                        REBUILD);
    if (p->sig_off || p->sig_len) {
        if (p->sig_off < p->tar_end || p->sig_off > limit || p->sig_len > limit - p->sig_off)
            return oerr_set(e, "%s (signature outside the file): the file is corrupt, %s", NOT_OCI2BIN, REBUILD);
    }
    if (p->loader_off >= p->tar_end)
        return oerr_set(e, "%s (bad loader offset): the file is corrupt, %s", NOT_OCI2BIN, REBUILD);
    return 0;
}

static int index_entries(payload *p, oerr *e)
{
    const json *m = p->meta;
    uint64_t fmt;
    if (!m || m->type != JSON_OBJECT)
        return oerr_set(e, "oci2bin metadata is not a JSON object: the file is corrupt, %s", REBUILD);
    if (json_u64(json_get(m, "format"), &fmt) || fmt != 1)
        return oerr_set(e, "unsupported oci2bin metadata format: use a newer oci2bin loader");
    p->image = json_str(json_get(m, "image"));
    p->config_digest = json_str(json_get(m, "config_digest"));
    const json *ents = json_get(m, "entries");
    if (!ents || ents->type != JSON_ARRAY || ents->count == 0)
        return oerr_set(e, "oci2bin metadata has no \"entries\" table: the file is corrupt, %s", REBUILD);
    p->entries = xcalloc(ents->count, sizeof *p->entries);
    for (const json *it = ents->child; it; it = it->next) {
        payload_entry *pe = &p->entries[p->n_entries];
        if (it->type != JSON_ARRAY || it->count != 3 || !json_str(json_at(it, 0)) ||
            json_u64(json_at(it, 1), &pe->off) || json_u64(json_at(it, 2), &pe->size))
            return oerr_set(e, "oci2bin metadata entry %zu is malformed: the file is corrupt, %s", p->n_entries,
                            REBUILD);
        pe->name = json_str(json_at(it, 0));
        if (pe->off < 512 || pe->off > p->tar_end || pe->size > p->tar_end - pe->off)
            return oerr_set(e, "archive entry %s lies outside the archive: the file is corrupt, %s", pe->name,
                            REBUILD);
        p->n_entries++;
    }
    return 0;
}

int payload_open(payload *p, const char *path, oerr *e)
{
    memset(p, 0, sizeof *p);
    p->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0)
        return oerr_sys(e, errno, "make sure the file is readable (chmod a+r)", "cannot open %s", path);
    struct stat st;
    if (fstat(p->fd, &st) < 0)
        return oerr_sys(e, errno, NULL, "cannot stat %s", path);
    p->file_size = (uint64_t)st.st_size;
    if (!S_ISREG(st.st_mode) || p->file_size < 2048)
        return oerr_set(e, "%s (file too small): run a file produced by oci2bin", NOT_OCI2BIN);
    unsigned char footer[PAYLOAD_FOOTER_SIZE];
    if (pread_all(p->fd, footer, sizeof footer, p->file_size - PAYLOAD_FOOTER_SIZE) < 0)
        return oerr_sys(e, errno, NULL, "cannot read the oci2bin footer of %s", path);
    if (parse_footer(p, footer, e))
        return -1;
    char *text = xmalloc(p->meta_size + 1);
    if (pread_all(p->fd, text, p->meta_size, p->tar_end) < 0) {
        free(text);
        return oerr_sys(e, errno, NULL, "cannot read the oci2bin metadata of %s", path);
    }
    p->meta = json_parse(text, p->meta_size, e);
    free(text);
    if (!p->meta) {
        char tmp[OERR_MSG_MAX];
        snprintf(tmp, sizeof tmp, "%s", e->msg);
        return oerr_set(e, "oci2bin metadata: %s", tmp);
    }
    return index_entries(p, e);
}

void payload_close(payload *p)
{
    if (p->fd > 0)
        close(p->fd);
    json_free(p->meta);
    free(p->entries);
    memset(p, 0, sizeof *p);
    p->fd = -1;
}

const payload_entry *payload_find(const payload *p, const char *name)
{
    for (size_t i = 0; i < p->n_entries; i++)
        if (strcmp(p->entries[i].name, name) == 0)
            return &p->entries[i];
    return NULL;
}

int payload_read(const payload *p, const payload_entry *ent, size_t max, char **out, oerr *e)
{
    if (ent->size > max)
        return oerr_set(e, "%s is too large (%llu bytes): the image is unusual, report it", ent->name,
                        (unsigned long long)ent->size);
    char *buf = xmalloc(ent->size + 1);
    if (pread_all(p->fd, buf, ent->size, ent->off) < 0) {
        free(buf);
        return oerr_sys(e, errno, "the file may be truncated", "cannot read %s from the archive", ent->name);
    }
    buf[ent->size] = 0;
    *out = buf;
    return 0;
}
