/* Content-addressed rootfs cache, keyed by the image's config and layer digests (cache_key_digest) and the
 * id-mapping mode. */
#ifndef OCI2BIN_CACHE_H
#define OCI2BIN_CACHE_H
#include <limits.h>
#include "image.h"
#include "options.h"
#include "payload.h"
#include "util.h"

typedef struct cache {
    char dir[PATH_MAX];    /* <cache>/rootfs */
    char key[192];         /* <key hex>-<mode> */
    char entry[PATH_MAX];  /* dir/key: the published rootfs */
    int lockfd;            /* dir/key.lock; shared-locked while a container uses the entry */
} cache;

/* "sha256:<hex>" of the config digest and the manifest's layer blob digests, in order (a copy of
 * config_digest when that is not a valid digest, for cache_open to report). This is what cache_open takes. */
void cache_key_digest(const char *config_digest, const image *img, char out[72]);
/* Host side, before clone: resolves the cache directory (--cache-dir, $OCI2BIN_CACHE_DIR,
 * $XDG_CACHE_HOME/oci2bin, ~/.cache/oci2bin), creates it and opens the entry's lock file. */
int cache_open(cache *c, const options *o, const char *config_digest, const char *mode, oerr *e);
/* Sets the key's mode suffix (when the id mapping changed after cache_open). */
void cache_set_mode(cache *c, const char *config_digest, const char *mode);
/* Makes sure the entry exists: if not, extracts into a temp dir inside the cache (verifying digests),
 * patches it for single-id maps, fsyncs and renames it into place, all under an exclusive flock, and
 * removes stale temp dirs of killed extractions. Leaves a shared lock held on c->lockfd. */
int cache_ensure(cache *c, const payload *p, const image *img, int keep_owners, int single_id, oerr *e);
void cache_close(cache *c);
#endif
