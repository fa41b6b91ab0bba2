/* Minimal TAP (Test Anything Protocol) helpers for the loader's C unit tests. */
#ifndef OCI2BIN_TAP_H
#define OCI2BIN_TAP_H
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                                                       \
    do {                                                                                                    \
        int ok_c_ = !!(cond);                                                                               \
        tap_n++;                                                                                            \
        if (!ok_c_)                                                                                         \
            tap_failed++;                                                                                   \
        printf("%sok %d - ", ok_c_ ? "" : "not ", tap_n);                                                   \
        printf(__VA_ARGS__);                                                                                \
        printf("\n");                                                                                       \
        if (!ok_c_)                                                                                         \
            printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                                 \
    } while (0)

#define is_str(got, want, ...)                                                                              \
    do {                                                                                                    \
        const char *g_ = (got), *w_ = (want);                                                               \
        ok(g_ && w_ ? strcmp(g_, w_) == 0 : g_ == w_, __VA_ARGS__);                                         \
        if (!(g_ && w_ ? strcmp(g_, w_) == 0 : g_ == w_))                                                   \
            printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)");             \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    if (tap_failed)
        printf("# %d of %d failed\n", tap_failed, tap_n);
    return tap_failed ? 1 : 0;
}
#endif
