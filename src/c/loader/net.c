/* Network modes and resolver files. --net none gives the container a new network namespace (CLONE_NEWNET)
 * with only `lo`, brought up here; --net slirp/pasta a new one that net_helper.c wires to the host through
 * slirp4netns or pasta; --net container:PID joins another one (ns_join.c); --net host (default) shares the
 * host's. */
#define _GNU_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_ports.h"
#include "ns_join.h"

int net_check_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1 ? 0 : -1;
}

int net_check_add_host(const char *spec, oerr *e)
{
    const char *c = strchr(spec, ':');
    if (!c || c == spec || strpbrk(spec, " \t\n#") || (size_t)(c - spec) > 253)
        return oerr_set(e, "--add-host %s: expected NAME:IP (like db.internal:10.0.0.5)", spec);
    if (net_check_ip(c + 1))
        return oerr_set(e, "--add-host %s: \"%s\" is not an IP address: expected NAME:IP", spec, c + 1);
    return 0;
}

int net_private(const options *o)
{
    return o->net_none || o->net_helper;
}

int net_isolated(const options *o)
{
    return net_private(o) || o->net_join_pid;
}

int net_add_publish(options *o, const char *flag, const char *spec, oerr *e)
{
    port_fwd f;
    if (port_fwd_parse(spec, flag, &f, e))
        return -1;
    if (o->publish.n >= 64)
        return oerr_set(e, "more than 64 port forwards: publish a range of ports from fewer containers");
    strv_push(&o->publish, xstrdup(spec));
    return 0;
}

int net_parse_flag(options *o, const char *val, oerr *e)
{
    o->net_set = 1;
    o->net_none = o->net_helper = o->net_join_pid = 0;
    if (strcmp(val, "none") == 0) {
        o->net_none = 1;
        return 0;
    }
    if (strcmp(val, "host") == 0)
        return 0;
    if (strncmp(val, "container:", 10) == 0)
        return ns_join_parse("--net", val, &o->net_join_pid, e);
    size_t n = strcspn(val, ":");
    if ((n == 5 && strncmp(val, "slirp", 5) == 0) || (n == 5 && strncmp(val, "pasta", 5) == 0)) {
        o->net_helper = val[0] == 's' ? NET_SLIRP : NET_PASTA;
        if (!val[n])
            return 0;
        char *list = xstrdup(val + n + 1), *save = NULL;
        char flag[16];
        snprintf(flag, sizeof flag, "--net %.5s:", val);
        int rc = *list ? 0 : oerr_set(e, "--net %s: no ports after ':': give HOST:CTR[,HOST:CTR...]", val);
        for (char *spec = strtok_r(list, ",", &save); spec && rc == 0; spec = strtok_r(NULL, ",", &save))
            rc = net_add_publish(o, flag, spec, e);
        free(list);
        return rc;
    }
    return oerr_set(e, "--net %s is not supported: use host, none, slirp[:HOST:CTR,...], pasta[:HOST:CTR,...] "
                       "or container:PID", val);
}

int net_options_finish(options *o, oerr *e)
{
    if (o->publish.n && !o->net_set)
        o->net_helper = NET_SLIRP; /* docker's -p: publishing implies a private network */
    if (o->publish.n && !o->net_helper)
        return oerr_set(e, "-p %s needs a private network wired to the host: use --net slirp or --net pasta "
                           "(or drop -p)", o->publish.v[0]);
    return 0;
}

static void append(char **buf, size_t *len, const char *s)
{
    size_t n = strlen(s);
    *buf = xrealloc(*buf, *len + n + 1);
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

char *net_resolv_conf(const options *o, const char *host_text)
{
    /* slirp4netns serves DNS at 10.0.2.3; pasta is told to forward that address too (net_helper.c) */
    static char *const helper_dns[] = {(char *)NET_HELPER_DNS, NULL};
    options tmp;
    if (o->net_helper && !o->dns.n) {
        tmp = *o;
        tmp.dns.v = (char **)helper_dns;
        tmp.dns.n = 1;
        o = &tmp;
    }
    if (!o->dns.n && !o->dns_search.n)
        return NULL;
    char *out = xstrdup("");
    size_t len = 0;
    if (o->dns_search.n) {
        append(&out, &len, "search");
        for (size_t i = 0; i < o->dns_search.n; i++) {
            append(&out, &len, " ");
            append(&out, &len, o->dns_search.v[i]);
        }
        append(&out, &len, "\n");
    }
    if (o->dns.n) {
        for (size_t i = 0; i < o->dns.n; i++) {
            append(&out, &len, "nameserver ");
            append(&out, &len, o->dns.v[i]);
            append(&out, &len, "\n");
        }
    }
    /* keep the host's other lines (options, and nameservers when only --dns-search is given) */
    if (host_text) {
        char *copy = xstrdup(host_text);
        for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
            const char *t = line + strspn(line, " \t");
            int is_ns = strncmp(t, "nameserver", 10) == 0;
            int is_search = strncmp(t, "search", 6) == 0 || strncmp(t, "domain", 6) == 0;
            if ((is_ns && o->dns.n) || (is_search && o->dns_search.n))
                continue;
            append(&out, &len, line);
            append(&out, &len, "\n");
        }
        free(copy);
    }
    return out;
}

char *net_hosts(const options *o, const char *host_text, const char *hostname)
{
    char *out = xstrdup("");
    size_t len = 0;
    if (host_text && !net_isolated(o)) {
        append(&out, &len, host_text);
        if (len && out[len - 1] != '\n')
            append(&out, &len, "\n");
    } else {
        append(&out, &len, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        if (hostname && *hostname) {
            char *l = xasprintf("127.0.1.1\t%s\n", hostname);
            append(&out, &len, l);
            free(l);
        }
    }
    for (size_t i = 0; i < o->add_hosts.n; i++) {
        const char *spec = o->add_hosts.v[i];
        const char *c = strchr(spec, ':');
        char *l = xasprintf("%s\t%.*s\n", c + 1, (int)(c - spec), spec);
        append(&out, &len, l);
        free(l);
    }
    return out;
}

int net_loopback_up(oerr *e)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return oerr_sys(e, errno, NULL, "--net none: cannot open a socket to bring lo up");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int rc = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        rc = oerr_sys(e, errno, NULL, "--net none: cannot read the flags of lo");
    else if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
            rc = oerr_sys(e, errno, NULL, "--net none: cannot bring lo up");
    }
    close(s);
    return rc;
}
