/* --cap-drop / --cap-add (capabilities inside the container's user namespace). */
#ifndef OCI2BIN_CAPS_H
#define OCI2BIN_CAPS_H
#include <stdint.h>
#include "util.h"

/* Capability number for a name: case-insensitive, "CAP_" prefix optional. -1 if unknown. */
int cap_by_name(const char *name);

typedef struct caps_plan {
    uint64_t drop; /* bits to drop from the bounding/permitted/effective/inheritable sets */
    uint64_t add;  /* bits raised as inheritable + ambient (survive exec for non-root users too) */
    int active;    /* always set (the default set applies to every container) */
} caps_plan;

/* Docker's default capability set, what the container keeps without --cap-add/--cap-drop. */
extern const uint64_t CAPS_DEFAULT;
/* Always active: everything outside CAPS_DEFAULT is dropped. --cap-drop all drops everything but the --cap-add ones; --cap-add wins over --cap-drop. */
int caps_plan_build(const strv *drop, const strv *add, caps_plan *cp, oerr *e);
/* Before switching user: drops from the bounding set (needs CAP_SETPCAP) and, when some are to be
 * added, keeps permitted caps across setuid. Failures are warnings. */
void caps_before_user(const caps_plan *cp);
/* After switching user, right before exec. Failures are warnings (SPEC: non-fatal). */
void caps_apply(const caps_plan *cp);
#endif
