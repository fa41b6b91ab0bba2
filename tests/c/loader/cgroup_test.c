/* Unit tests for cgroup.c: the --memory/--cpus/--pids-limit value parsers (exact values, docker's forms and
 * limits) and the run-dir sweep of a dead loader's cgroup record (on plain directories under $TMPDIR: rmdir is
 * what removes a cgroup too). The cgroups themselves are tested for real by test_cgroup_limits.py. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "tap.h"

static int mem(const char *s, uint64_t want)
{
    uint64_t v = 12345;
    oerr e = {0};
    return cgroup_parse_memory(s, &v, &e) == 0 && v == want;
}

static int mem_err(const char *s, const char *msg)
{
    uint64_t v = 12345;
    oerr e = {0};
    return cgroup_parse_memory(s, &v, &e) == -1 && e.status == 125 && strstr(e.msg, msg) && v == 12345;
}

static int cpus(const char *s, uint64_t want)
{
    uint64_t v = 12345;
    oerr e = {0};
    return cgroup_parse_cpus(s, &v, &e) == 0 && v == want;
}

static int cpus_err(const char *s, const char *msg)
{
    uint64_t v = 12345;
    oerr e = {0};
    return cgroup_parse_cpus(s, &v, &e) == -1 && strstr(e.msg, msg) && v == 12345;
}

static int pids(const char *s, int64_t want)
{
    int64_t v = 12345;
    oerr e = {0};
    return cgroup_parse_pids(s, &v, &e) == 0 && v == want;
}

static int pids_err(const char *s)
{
    int64_t v = 12345;
    oerr e = {0};
    return cgroup_parse_pids(s, &v, &e) == -1 && strstr(e.msg, "--pids-limit") && v == 12345;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

int main(void)
{
    ok(mem("512m", 512ull << 20) && mem("512M", 512ull << 20) && mem("512mb", 512ull << 20) &&
           mem("512MiB", 512ull << 20),
       "--memory: m, M, mb, MiB are MiB");
    ok(mem("1g", 1ull << 30) && mem("1.5g", 3ull << 29) && mem("2t", 2ull << 40), "--memory: g, fractions, t");
    ok(mem("8388608", 8ull << 20) && mem("8388608b", 8ull << 20) && mem("8192k", 8ull << 20),
       "--memory: bytes, b, k");
    ok(mem("0", 0) && mem("6m", 6ull << 20), "--memory: 0 = no limit; 6m is the minimum");
    ok(mem_err("5m", "below the minimum of 6m") && mem_err("6291455", "below the minimum"), "--memory < 6m refused");
    ok(mem_err("12x", "is not a size") && mem_err("", "is not a size") && mem_err("-1", "is not a size") &&
           mem_err("1.g", "is not a size") && mem_err("m", "is not a size") && mem_err("1ib", "is not a size") &&
           mem_err(" 1g", "is not a size") && mem_err("1g ", "is not a size"),
       "--memory: malformed sizes refused");
    ok(mem_err("99999999999g", "too large") && mem_err("99999999999999999999999", "too large") &&
           mem_err("8388608t", "too large"),
       "--memory: overflow refused");

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    char many[32], over[32];
    snprintf(many, sizeof many, "%ld", ncpu);
    snprintf(over, sizeof over, "%ld.5", ncpu);
    ok(cpus("0.5", 50000) && cpus("0.01", 1000) && cpus("1", 100000) && cpus("0.015", 1500),
       "--cpus: quota per 100000 us period");
    ok(cpus(many, (uint64_t)ncpu * 100000) && cpus("0", 0), "--cpus: all online CPUs; 0 = no limit");
    ok(cpus_err("0.001", "below 0.01") && cpus_err(over, "more than the") && cpus_err("100000", "more than the"),
       "--cpus: range 0.01 .. online CPUs");
    ok(cpus_err("abc", "not a number") && cpus_err("-1", "not a number") && cpus_err("1,5", "not a number") &&
           cpus_err("", "not a number"),
       "--cpus: malformed refused");

    ok(pids("100", 100) && pids("1", 1) && pids("4194304", 4194304), "--pids-limit: counts");
    ok(pids("-1", 0) && pids("0", 0), "--pids-limit: -1 and 0 = no limit (docker)");
    ok(pids_err("-2") && pids_err("ten") && pids_err("") && pids_err("5x") && pids_err("4194305") &&
           pids_err(" 5"),
       "--pids-limit: malformed or out of range refused");

    /* sweep of a dead run dir's record */
    const char *tmp = getenv("TMPDIR") && getenv("TMPDIR")[0] == '/' ? getenv("TMPDIR") : "/tmp";
    char base[4096], run[4200], cg_empty[4200], cg_full[4200], other[4200], rec[4300], file[4300];
    snprintf(base, sizeof base, "%s/cgroup_test-XXXXXX", tmp);
    ok(mkdtemp(base) != NULL, "scratch dir");
    snprintf(run, sizeof run, "%s/run", base);
    snprintf(cg_empty, sizeof cg_empty, "%s/oci2bin-aaaa", base);
    snprintf(cg_full, sizeof cg_full, "%s/oci2bin-bbbb", base);
    snprintf(other, sizeof other, "%s/not-ours", base);
    snprintf(rec, sizeof rec, "%s/" CG_RECORD, run);
    mkdir(run, 0700);
    mkdir(cg_empty, 0755);
    mkdir(cg_full, 0755);
    mkdir(other, 0755);
    snprintf(file, sizeof file, "%s/busy", cg_full);
    put(file, "x");
    int rfd = open(run, O_RDONLY | O_DIRECTORY);
    ok(cgroup_sweep_record(rfd) == 0, "no record: nothing to do");
    char text[20000];
    snprintf(text, sizeof text, "%s\n%s\n%s\n%s/oci2bin-never-made\nrelative/oci2bin-x\n", cg_empty, cg_full, other,
             base);
    put(rec, text);
    ok(cgroup_sweep_record(rfd) == -1, "a populated cgroup: -1 (keep the run dir)");
    ok(access(cg_empty, F_OK) != 0 && access(cg_full, F_OK) == 0 && access(rec, F_OK) == 0,
       "the empty one is removed, the populated one and the record stay");
    ok(access(other, F_OK) == 0, "a recorded path that is not oci2bin-* is never touched");
    unlink(file);
    ok(cgroup_sweep_record(rfd) == 0 && access(cg_full, F_OK) != 0 && access(rec, F_OK) != 0,
       "once empty: removed, and the record with it");
    close(rfd);
    rmdir(other);
    rmdir(run);
    ok(rmdir(base) == 0, "nothing else left");
    return tap_done();
}
