/* Locates the embedded image through the polyglot's footer and metadata (docs/format.md). */
#ifndef OCI2BIN_PAYLOAD_H
#define OCI2BIN_PAYLOAD_H
#include <stdint.h>
#include "json.h"

#define PAYLOAD_FOOTER_SIZE 64
#define PAYLOAD_META_MAX (64u << 20)

typedef struct payload_entry {
    const char *name; /* points into the metadata tree */
    uint64_t off, size;
} payload_entry;

typedef struct payload {
    int fd;
    uint64_t file_size;
    uint32_t version, flags;
    uint64_t tar_end, meta_size, sig_off, sig_len, loader_off;
    json *meta;
    const char *image;         /* metadata "image" (may be NULL) */
    const char *config_digest; /* metadata "config_digest", "sha256:<64 hex>" */
    payload_entry *entries;
    size_t n_entries;
} payload;

/* Opens path (normally /proc/self/exe), checks the footer and parses the metadata. */
int payload_open(payload *p, const char *path, oerr *e);
void payload_close(payload *p);
/* The entry with exactly this archive name, or NULL. */
const payload_entry *payload_find(const payload *p, const char *name);
/* Reads a whole entry (at most max bytes) into a NUL-terminated malloc'd buffer. */
int payload_read(const payload *p, const payload_entry *ent, size_t max, char **out, oerr *e);
#endif
