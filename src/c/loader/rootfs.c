/* Layer blobs -> codec -> tar -> extract, in manifest order. Each layer runs through the pipeline
 * (pipeline.h: read+hash and decode on two threads, joined before the next layer). */
#include "rootfs.h"

#include <string.h>
#include <sys/statvfs.h>

#include "extract.h"
#include "pipeline.h"
#include "tar.h"

int rootfs_extract(const payload *p, const image *img, int rootfd, int keep_owners, oerr *e)
{
    extract_ctx x;
    extract_init(&x, rootfd);
    x.keep_owners = keep_owners;
    int rc = 0;
    /* What the target filesystem can take: declared file sizes are taken from it (tar_guard), so a layer
     * that would inflate past the free space (a decompression bomb) fails before writing it. */
    struct statvfs sv;
    uint64_t budget = 0;
    int have_budget = fstatvfs(rootfd, &sv) == 0 && sv.f_frsize;
    if (have_budget)
        budget = (uint64_t)sv.f_bavail * sv.f_frsize;
    for (size_t i = 0; i < img->n_layers && rc == 0; i++) {
        const image_layer *l = &img->layers[i];
        layer_pipe lp;
        tar_reader t;
        double t0 = now_ms();
        /* The decoded stream is hashed against the config's diff_id only when the blob has no digest to check:
         * a verified blob digest already pins the content, and the cache key binds every blob digest
         * (cache_key_digest), so a second SHA-256 of the whole decoded stream would buy no safety for ~0.8 s of
         * CPU per 180 MB (docs/benchmarks.md). */
        const char *diff_hex = l->hex[0] ? NULL : l->diff_hex;
        if (layer_pipe_start(&lp, p->fd, l->ent->off, l->ent->size, l->hex[0] != 0, diff_hex, l->ent->name, e)) {
            rc = -1;
            break;
        }
        enum codec_kind kind = lp.c.kind;
        int threaded = lp.started;
        tar_init(&t, layer_pipe_read, &lp);
        tar_set_view(&t, layer_pipe_view);
        /* the diff_id is checked by the pipeline's hasher thread (by tar, when reading serially) */
        tar_guard(&t, threaded ? NULL : diff_hex, have_budget ? &budget : NULL);
        rc = extract_layer(&x, &t, e);
        rc = layer_pipe_finish(&lp, rc == 0, l->hex, e);
        dbg("layer %zu/%zu %s (%s, %llu bytes%s): %s in %.1f ms", i + 1, img->n_layers, l->ent->name,
            codec_kind_name(kind), (unsigned long long)l->ent->size, threaded ? ", threaded" : "",
            rc ? "failed" : "extracted", now_ms() - t0);
        tar_free(&t);
    }
    if (rc == 0)
        rc = extract_finish(&x, e);
    dbg("rootfs: %llu files, %llu bytes", (unsigned long long)x.files, (unsigned long long)x.bytes);
    extract_free(&x);
    return rc;
}
