/* --net none|host, --dns, --dns-search, --add-host. */
#ifndef OCI2BIN_NET_H
#define OCI2BIN_NET_H
#include "options.h"
#include "util.h"

/* 0 if s is an IPv4 or IPv6 address. */
int net_check_ip(const char *s);
/* Checks --add-host NAME:IP (IPv6 addresses contain ':', so the name ends at the first ':'). */
int net_check_add_host(const char *spec, oerr *e);
/* The container's /etc/resolv.conf when --dns/--dns-search are given (malloc'd), or NULL to copy the host's.
 * Without --dns the host's nameservers are kept and only the search line is replaced. */
char *net_resolv_conf(const options *o, const char *host_text);
/* The container's /etc/hosts: the host's (or a minimal one with --net none), then --add-host lines. */
char *net_hosts(const options *o, const char *host_text, const char *hostname);
/* In a new network namespace: brings the loopback interface up. */
int net_loopback_up(oerr *e);
#endif
