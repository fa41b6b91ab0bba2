/* Unit tests for options.c and exec.c's plan building. */
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "options.h"
#include "tap.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

int main(void)
{
    options o;
    oerr e = {0};
    char *a1[] = {"prog", "--debug", "-e", "A=1", "--env=B=2", "-eC=3", "-w", "/w", "--entrypoint", "/bin/x",
                  "--user=1:2", "--", "--not-a-flag", "arg"};
    ok(options_parse(ARGC(a1), a1, &o, &e) == 0, "flags parse");
    ok(o.debug && o.env.n == 3 && strcmp(o.env.v[1], "B=2") == 0 && strcmp(o.env.v[2], "C=3") == 0,
       "-e forms: separate, --env=, attached");
    is_str(o.workdir, "/w", "-w");
    ok(o.has_entrypoint && strcmp(o.entrypoint, "/bin/x") == 0, "--entrypoint");
    is_str(o.user, "1:2", "--user=");
    ok(o.n_args == 2 && strcmp(o.args[0], "--not-a-flag") == 0, "-- ends flags");
    options_free(&o);

    char *a2[] = {"prog", "ls", "-l"};
    ok(options_parse(ARGC(a2), a2, &o, &e) == 0 && o.n_args == 2 && strcmp(o.args[1], "-l") == 0,
       "first non-flag starts the command");
    options_free(&o);

    char *a3[] = {"prog", "--bogus", "x"};
    ok(options_parse(ARGC(a3), a3, &o, &e) == -1 && e.status == 125 && strstr(e.msg, "unknown flag: --bogus"),
       "unknown long flag -> 125 naming it");
    options_free(&o);
    char *a4[] = {"prog", "-Z"};
    ok(options_parse(ARGC(a4), a4, &o, &e) == -1 && strstr(e.msg, "-Z"), "unknown short flag");
    options_free(&o);
    char *a5[] = {"prog", "--workdir"};
    ok(options_parse(ARGC(a5), a5, &o, &e) == -1 && strstr(e.msg, "needs a value"), "missing value");
    options_free(&o);
    char *a6[] = {"prog", "--workdir", "rel"};
    ok(options_parse(ARGC(a6), a6, &o, &e) == -1 && strstr(e.msg, "absolute"), "relative --workdir rejected");
    options_free(&o);
    char *a7[] = {"prog", "--debug=1"};
    ok(options_parse(ARGC(a7), a7, &o, &e) == -1 && strstr(e.msg, "takes no value"), "boolean with =value");
    options_free(&o);
    char *a7b[] = {"prog", "--debugx"};
    ok(options_parse(ARGC(a7b), a7b, &o, &e) == -1 && strstr(e.msg, "--debugx"), "prefix of a flag is unknown");
    options_free(&o);

    /* Plan: Entrypoint + Cmd semantics. */
    image img = {0};
    strv_push(&img.entrypoint, strdup("/ep"));
    strv_push(&img.cmd, strdup("c1"));
    strv_push(&img.env, strdup("PATH=/img"));
    strv_push(&img.env, strdup("K=img"));
    exec_plan pl;
    char *b1[] = {"prog"};
    options_parse(ARGC(b1), b1, &o, &e);
    ok(exec_plan_build(&img, &o, "h", &pl, &e) == 0 && pl.argv.n == 2 && strcmp(pl.argv.v[1], "c1") == 0,
       "Entrypoint + Cmd");
    is_str(pl.workdir, "/", "workdir defaults to /");
    exec_plan_free(&pl);
    options_free(&o);
    char *b2[] = {"prog", "x", "y"};
    options_parse(ARGC(b2), b2, &o, &e);
    exec_plan_build(&img, &o, "h", &pl, &e);
    ok(pl.argv.n == 3 && strcmp(pl.argv.v[0], "/ep") == 0 && strcmp(pl.argv.v[2], "y") == 0, "args replace Cmd");
    exec_plan_free(&pl);
    options_free(&o);
    char *b3[] = {"prog", "--entrypoint", "/other"};
    options_parse(ARGC(b3), b3, &o, &e);
    exec_plan_build(&img, &o, "h", &pl, &e);
    ok(pl.argv.n == 1 && strcmp(pl.argv.v[0], "/other") == 0, "--entrypoint clears Cmd");
    exec_plan_free(&pl);
    options_free(&o);
    char *b4[] = {"prog", "--entrypoint", ""};
    options_parse(ARGC(b4), b4, &o, &e);
    ok(exec_plan_build(&img, &o, "h", &pl, &e) == -1 && strstr(e.msg, "no command"), "nothing to run -> error");
    exec_plan_free(&pl);
    options_free(&o);

    setenv("OCI2BIN_TEST_HOSTVAR", "hostval", 1);
    unsetenv("OCI2BIN_TEST_UNSET");
    char *b5[] = {"prog", "-e", "K=cli", "-e", "OCI2BIN_TEST_HOSTVAR", "-e", "OCI2BIN_TEST_UNSET", "-e", "NEW="};
    options_parse(ARGC(b5), b5, &o, &e);
    exec_plan_build(&img, &o, "host1", &pl, &e);
    int seen = 0;
    for (size_t i = 0; i < pl.env.n; i++) {
        if (strcmp(pl.env.v[i], "K=cli") == 0)
            seen |= 1;
        if (strcmp(pl.env.v[i], "OCI2BIN_TEST_HOSTVAR=hostval") == 0)
            seen |= 2;
        if (strncmp(pl.env.v[i], "OCI2BIN_TEST_UNSET", 18) == 0)
            seen |= 4;
        if (strcmp(pl.env.v[i], "NEW=") == 0)
            seen |= 8;
        if (strcmp(pl.env.v[i], "PATH=/img") == 0)
            seen |= 16;
        if (strcmp(pl.env.v[i], "HOSTNAME=host1") == 0)
            seen |= 32;
        if (strcmp(pl.env.v[i], "K=img") == 0)
            seen |= 64;
    }
    ok(seen == (1 | 2 | 8 | 16 | 32), "env: -e overrides image, -e KEY copies host, unset skipped (seen=%d)", seen);
    exec_plan_free(&pl);
    options_free(&o);
    image_free(&img);
    return tap_done();
}
