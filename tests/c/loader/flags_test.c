/* Unit tests for the runtime flags added for SPEC's "Running containers" .. "Interactive and TTY mode":
 * parsing/validation (options.c, volumes.c, ulimit.c, caps.c, net.c), resolver file text, --config, the
 * seccomp table, and run-dir sweeping (rundir.c). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caps.h"
#include "net.h"
#include "options.h"
#include "rundir.h"
#include "seccomp.h"
#include "tap.h"
#include "ulimit.h"
#include "volumes.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void test_volumes(void)
{
    mount_spec m;
    oerr e = {0};
    ok(volume_parse("/h:/c", &m, &e) == 0 && strcmp(m.host, "/h") == 0 && strcmp(m.ctr, "/c") == 0 && !m.ro,
       "-v HOST:CTR");
    mount_spec_free(&m);
    ok(volume_parse("rel/dir:/c//d/:ro", &m, &e) == 0 && strcmp(m.ctr, "/c/d") == 0 && m.ro,
       "-v relative host, :ro, container path normalised");
    mount_spec_free(&m);
    ok(volume_parse("/h:/c:rw", &m, &e) == 0 && !m.ro, "-v :rw");
    mount_spec_free(&m);
    ok(volume_parse("/h", &m, &e) < 0 && strstr(e.msg, "HOST:CONTAINER"), "-v without container path");
    ok(volume_parse(":/c", &m, &e) < 0, "-v without host path");
    ok(volume_parse("/h:c", &m, &e) < 0 && strstr(e.msg, "not absolute"), "-v relative container path");
    ok(volume_parse("/h:/a/../b", &m, &e) < 0 && strstr(e.msg, ".."), "-v .. in container path");
    ok(volume_parse("/h:/", &m, &e) < 0 && strstr(e.msg, "root"), "-v over /");
    ok(volume_parse("/h:/c:rx", &m, &e) < 0 && strstr(e.msg, "ro or rw"), "-v unknown option");

    ok(secret_parse("/home/u/.config/api_key", &m, &e) == 0 && strcmp(m.ctr, "/run/secrets/api_key") == 0 &&
           m.ro,
       "--secret default /run/secrets/NAME");
    mount_spec_free(&m);
    ok(secret_parse("/etc/ssl/cert.pem:/certs/ca.pem", &m, &e) == 0 && strcmp(m.ctr, "/certs/ca.pem") == 0 &&
           strcmp(m.host, "/etc/ssl/cert.pem") == 0,
       "--secret FILE:CTR");
    mount_spec_free(&m);
    ok(secret_parse(":/x", &m, &e) < 0, "--secret without file");
    ok(secret_parse("/x:/../y", &m, &e) < 0, "--secret .. in container path");

    ok(tmpfs_parse("/var/cache", &m, &e) == 0 && strcmp(m.ctr, "/var/cache") == 0 && !m.host, "--tmpfs");
    mount_spec_free(&m);
    ok(tmpfs_parse("tmp", &m, &e) < 0 && strstr(e.msg, "absolute"), "--tmpfs relative");
    ok(tmpfs_parse("/a/..", &m, &e) < 0, "--tmpfs ..");
}

static void test_ulimit(void)
{
    int res;
    struct rlimit rl;
    oerr e = {0};
    ok(ulimit_parse("nofile=1024", &res, &rl, &e) == 0 && res == RLIMIT_NOFILE && rl.rlim_cur == 1024 &&
           rl.rlim_max == 1024,
       "--ulimit nofile=N sets soft and hard");
    ok(ulimit_parse("nproc=64:128", &res, &rl, &e) == 0 && res == RLIMIT_NPROC && rl.rlim_cur == 64 &&
           rl.rlim_max == 128,
       "--ulimit SOFT:HARD");
    ok(ulimit_parse("core=unlimited", &res, &rl, &e) == 0 && rl.rlim_cur == RLIM_INFINITY, "unlimited");
    ok(ulimit_parse("as=536870912", &res, &rl, &e) == 0 && res == RLIMIT_AS, "as");
    ok(ulimit_parse("bogus=1", &res, &rl, &e) < 0 && strstr(e.msg, "unknown type"), "unknown type");
    ok(ulimit_parse("nofile", &res, &rl, &e) < 0 && strstr(e.msg, "TYPE=N"), "no value");
    ok(ulimit_parse("nofile=12x", &res, &rl, &e) < 0, "not a number");
    ok(ulimit_parse("nofile=", &res, &rl, &e) < 0, "empty value");
    ok(ulimit_parse("nofile=10:5", &res, &rl, &e) < 0 && strstr(e.msg, "soft"), "soft above hard");
    ok(ulimit_parse("nofile=99999999999999999999999", &res, &rl, &e) < 0, "overflow");
}

static void test_caps(void)
{
    ok(cap_by_name("net_raw") == 13 && cap_by_name("CAP_NET_RAW") == 13 && cap_by_name("Cap_Net_Raw") == 13,
       "capability names: case-insensitive, CAP_ optional");
    ok(cap_by_name("chown") == 0 && cap_by_name("sys_admin") == 21 && cap_by_name("ipc_lock") == 14 &&
           cap_by_name("setfcap") == 31 && cap_by_name("audit_write") == 29 && cap_by_name("mknod") == 27,
       "SPEC's capability names");
    ok(cap_by_name("nope") < 0 && cap_by_name("CAP_") < 0 && cap_by_name("") < 0, "unknown names");
    strv drop = {0}, add = {0};
    caps_plan cp;
    oerr e = {0};
    strv_push(&drop, strdup("all"));
    strv_push(&add, strdup("NET_BIND_SERVICE"));
    ok(caps_plan_build(&drop, &add, &cp, &e) == 0 && cp.active && cp.add == (1u << 10) &&
           !(cp.drop & (1u << 10)) && (cp.drop & 1),
       "--cap-drop all --cap-add net_bind_service");
    strv_free(&drop);
    strv_free(&add);
    ok(caps_plan_build(&drop, &add, &cp, &e) == 0 && cp.active && (cp.drop & (1u << 21)) && !(cp.drop & 1) &&
           !(cp.drop & (1u << 7)) && !(cp.drop & (1u << 6)) && cp.drop == ~CAPS_DEFAULT,
       "no cap flags: docker's default set (sys_admin dropped, chown/setuid/setgid kept)");
    strv_push(&add, strdup("sys_admin"));
    ok(caps_plan_build(&drop, &add, &cp, &e) == 0 && !(cp.drop & (1u << 21)), "--cap-add sys_admin keeps it");
    strv_free(&add);
}

static void test_net(void)
{
    oerr e = {0};
    ok(net_check_ip("1.1.1.1") == 0 && net_check_ip("2001:db8::1") == 0, "IPv4 and IPv6");
    ok(net_check_ip("1.1.1") < 0 && net_check_ip("example.com") < 0 && net_check_ip("") < 0, "not IPs");
    ok(net_check_add_host("db.internal:10.0.0.5", &e) == 0 && net_check_add_host("v6:::1", &e) == 0,
       "--add-host NAME:IP (v4, v6)");
    ok(net_check_add_host("db.internal", &e) < 0 && net_check_add_host(":1.2.3.4", &e) < 0 &&
           net_check_add_host("a:b", &e) < 0 && net_check_add_host("a b:1.2.3.4", &e) < 0,
       "bad --add-host");
    options o;
    char *a[] = {"p", "--dns", "1.1.1.1", "--dns=8.8.8.8", "--dns-search", "corp.example", "--add-host",
                 "db:10.0.0.5", "--net", "none"};
    ok(options_parse(ARGC(a), a, &o, &e) == 0 && o.net_none && o.dns.n == 2 && o.add_hosts.n == 1, "net flags");
    char *r = net_resolv_conf(&o, "nameserver 9.9.9.9\nsearch host.lan\noptions ndots:2\n");
    is_str(r, "search corp.example\nnameserver 1.1.1.1\nnameserver 8.8.8.8\noptions ndots:2\n",
           "resolv.conf: --dns/--dns-search replace, options kept");
    free(r);
    char *h = net_hosts(&o, "1.2.3.4 hostonly\n", "ctr");
    ok(h && !strstr(h, "hostonly") && strstr(h, "127.0.0.1\tlocalhost\n") && strstr(h, "127.0.1.1\tctr\n") &&
           strstr(h, "10.0.0.5\tdb\n"),
       "hosts with --net none: minimal + hostname + --add-host");
    free(h);
    options_free(&o);
    char *b[] = {"p", "--add-host", "x:1.2.3.4"};
    options_parse(ARGC(b), b, &o, &e);
    ok(net_resolv_conf(&o, "nameserver 9.9.9.9\n") == NULL, "no --dns: host resolv.conf as is");
    h = net_hosts(&o, "1.2.3.4 hostonly", "ctr");
    is_str(h, "1.2.3.4 hostonly\n1.2.3.4\tx\n", "hosts: host's + --add-host appended");
    free(h);
    options_free(&o);
    char *c[] = {"p", "--net", "bogus"};
    ok(options_parse(ARGC(c), c, &o, &e) < 0 && strstr(e.msg, "is not supported"), "--net bogus refused");
    options_free(&o);
    char *c2[] = {"p", "--net", "slirp:8080:80", "-p", "127.0.0.1:8443:443/udp"};
    ok(options_parse(ARGC(c2), c2, &o, &e) == 0 && o.net_helper == NET_SLIRP, "--net slirp:PORTS and -p parse: %s",
       e.msg);
    options_free(&o);
    char *d[] = {"p", "--dns", "1", "--dns", "2", "--dns", "3", "--dns", "4", "--dns", "5", "--dns", "6",
                 "--dns", "7", "--dns", "8", "--dns", "9"};
    for (int i = 2; i < ARGC(d); i += 2)
        d[i] = "1.1.1.1";
    ok(options_parse(ARGC(d), d, &o, &e) < 0 && strstr(e.msg, "more than 8"), "--dns at most 8 times");
    options_free(&o);
}

static void test_options(void)
{
    options o;
    oerr e = {0};
    char *a[] = {"p", "-it", "-d", "--name", "web-1", "--init", "--read-only", "--tmpfs", "/t", "-v/a:/b",
                 "--secret", "/s", "--ulimit", "nofile=10", "--cap-drop", "ALL", "--cap-add", "cap_chown",
                 "--no-seccomp", "--overlay-persist", "st", "--ssh-agent", "cmd", "-x"};
    ok(options_parse(ARGC(a), a, &o, &e) == 0, "all new flags parse: %s", e.msg);
    ok(o.interactive && o.tty && o.detach && o.init && o.read_only && o.no_seccomp && o.ssh_agent,
       "booleans, -it cluster");
    ok(o.name && strcmp(o.name, "web-1") == 0 && o.tmpfs.n == 1 && o.volumes.n == 1 &&
           strcmp(o.volumes.v[0], "/a:/b") == 0 && o.secrets.n == 1 && o.ulimits.n == 1 && o.cap_drop.n == 1 &&
           o.cap_add.n == 1 && strcmp(o.overlay_persist, "st") == 0,
       "valued flags");
    ok(o.n_args == 2 && strcmp(o.args[1], "-x") == 0, "command after the flags");
    options_free(&o);
    char *b[] = {"p", "--name", "../x"};
    ok(options_parse(ARGC(b), b, &o, &e) < 0 && strstr(e.msg, "--name"), "--name with a slash refused");
    options_free(&o);
    char *b2[] = {"p", "--cap-add", "wizardry"};
    ok(options_parse(ARGC(b2), b2, &o, &e) < 0 && strstr(e.msg, "unknown capability"), "unknown capability");
    options_free(&o);
    char *b3[] = {"p", "-ix"};
    ok(options_parse(ARGC(b3), b3, &o, &e) < 0 && strstr(e.msg, "-x"), "unknown flag in a cluster");
    options_free(&o);
    char *b4[] = {"p", "-tv", "/a:/b", "true"};
    ok(options_parse(ARGC(b4), b4, &o, &e) == 0 && o.tty && o.volumes.n == 1 && o.n_args == 1,
       "cluster ending in a flag with a value");
    options_free(&o);

    /* --config */
    const char *tmp = getenv("TMPDIR");
    char path[512], path2[512];
    snprintf(path, sizeof path, "%s/flags_test.conf", tmp && *tmp ? tmp : "/tmp");
    snprintf(path2, sizeof path2, "%s/flags_test2.conf", tmp && *tmp ? tmp : "/tmp");
    FILE *f = fopen(path, "w");
    fputs("# comment\n\nread-only\nhostname = x y\nhostname=fromfile\nnet=none\nenv=A=1\ninit=false\n"
          "  tmpfs=/scratch  \r\n", f);
    fclose(f);
    char *c[] = {"p", "--config", path, "--hostname", "cli", "cmd"};
    ok(options_parse(ARGC(c), c, &o, &e) == 0, "--config parses: %s", e.msg);
    ok(o.read_only && o.net_none && !o.init && o.env.n == 1 && strcmp(o.env.v[0], "A=1") == 0 && o.tmpfs.n == 1,
       "--config: key=value, key, key=false");
    is_str(o.hostname, "cli", "a later command-line flag overrides the file");
    ok(o.n_args == 1, "command kept");
    options_free(&o);
    f = fopen(path2, "w");
    fprintf(f, "config=%s\n", path);
    fclose(f);
    char *d[] = {"p", "--config", path2};
    ok(options_parse(ARGC(d), d, &o, &e) < 0 && strstr(e.msg, "not allowed"), "nested --config refused");
    options_free(&o);
    f = fopen(path2, "w");
    fputs("bogus=1\n", f);
    fclose(f);
    ok(options_parse(ARGC(d), d, &o, &e) < 0 && strstr(e.msg, "line 1") && strstr(e.msg, "bogus"),
       "unknown key with its line");
    options_free(&o);
    f = fopen(path2, "w");
    fputs("hostname\n", f);
    fclose(f);
    ok(options_parse(ARGC(d), d, &o, &e) < 0 && strstr(e.msg, "needs a value"), "valued key without value");
    options_free(&o);
    char *g[] = {"p", "--config", "/nonexistent/x.conf"};
    ok(options_parse(ARGC(g), g, &o, &e) < 0 && strstr(e.msg, "--config"), "missing config file");
    options_free(&o);
    unlink(path);
    unlink(path2);
}

static void test_seccomp(void)
{
    const long *nrs;
    int n = seccomp_blocked(&nrs);
    int has_ptrace = 0, has_bpf = 0, has_kexec_file = 0;
    for (int i = 0; i < n; i++) {
        has_ptrace |= nrs[i] == SYS_ptrace;
        has_bpf |= nrs[i] == SYS_bpf;
        has_kexec_file |= nrs[i] == SYS_kexec_file_load;
    }
    ok(n == 16 && has_ptrace && has_bpf && has_kexec_file, "the SPEC's 16 blocked syscalls (%d)", n);
}

static void test_rundir(void)
{
    const char *t = getenv("TMPDIR");
    char base[512];
    snprintf(base, sizeof base, "%s/rundir-test-XXXXXX", t && *t ? t : "/tmp");
    ok(mkdtemp(base) != NULL, "test base dir");
    char dir[1024];
    int lock = -1;
    oerr e = {0};
    ok(rundir_create(base, dir, sizeof dir, &lock, &e) == 0 && lock >= 0, "run dir created, lock held");
    ok(rundir_sweep(base) == 0, "a live run dir (lock held) is not swept");
    close(lock); /* as if its loader was SIGKILLed */
    ok(rundir_sweep(base) == 1 && access(dir, F_OK) < 0, "a dead run dir is swept at once");
    char empty[1024];
    snprintf(empty, sizeof empty, "%s/oci2bin-run-abcdef", base);
    mkdir(empty, 0700);
    ok(rundir_sweep(base) == 1, "an empty lockless run dir (creator killed before the lock) is swept");
    snprintf(empty, sizeof empty, "%s/oci2bin-run-other", base);
    mkdir(empty, 0700);
    snprintf(dir, sizeof dir, "%s/keep", empty);
    mkdir(dir, 0700);
    ok(rundir_sweep(base) == 0 && access(dir, F_OK) == 0, "a non-empty lockless dir is left alone");
    rmdir(dir);
    rmdir(empty);
    ok(rundir_create(base, dir, sizeof dir, &lock, &e) == 0 && rundir_remove(dir) == 0 && access(dir, F_OK) < 0,
       "rundir_remove");
    close(lock);
    ok(rmdir(base) == 0, "nothing left");
}

int main(void)
{
    test_volumes();
    test_ulimit();
    test_caps();
    test_net();
    test_options();
    test_seccomp();
    test_rundir();
    return tap_done();
}
