/* -t/--tty: a pseudo-terminal for the container, relayed by the loader. */
#ifndef OCI2BIN_TTY_H
#define OCI2BIN_TTY_H
#include <sys/types.h>
#include <termios.h>
#include "util.h"

typedef struct tty {
    int master;        /* loader side, received from the container; -1 until then */
    int sock[2];       /* socketpair: [0] loader, [1] container (sends the master with SCM_RIGHTS) */
    int raw;           /* the host terminal (stdin) was put in raw mode */
    struct termios saved;
} tty;

/* Host side, before clone: the socketpair over which the container hands back the pty master. */
int tty_open(tty *t, oerr *e);
/* Container side, after pivot_root, right before exec: allocates a pty from the container's own devpts
 * (/dev/ptmx), sends the master to the loader, and makes the slave the controlling terminal and fds 0-2
 * in a new session (so `tty` inside names it). */
int tty_child(tty *t, oerr *e);
/* Host side, after the command started: receives the master (sized like the host terminal). */
int tty_receive(tty *t, oerr *e);
/* Host side: raw mode on a terminal stdin, then copies master -> stdout and (if forward_stdin) stdin ->
 * master (EOF on stdin sends the terminal's EOF character) until every holder of the slave is gone.
 * Restores the terminal. */
void tty_relay(tty *t, int forward_stdin);
void tty_close(tty *t);
#endif
