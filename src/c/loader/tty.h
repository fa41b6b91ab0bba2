/* -t/--tty: a pseudo-terminal for the container, relayed by the loader. */
#ifndef OCI2BIN_TTY_H
#define OCI2BIN_TTY_H
#include <sys/types.h>
#include <termios.h>
#include "util.h"

typedef struct tty {
    int master, slave; /* -1 when unused */
    int raw;           /* the host terminal (stdin) was put in raw mode */
    struct termios saved;
} tty;

/* Host side, before clone: opens a pty pair (sized like the host terminal, if any). */
int tty_open(tty *t, oerr *e);
/* Container side, right before exec: new session, the slave as controlling terminal and fds 0, 1, 2. */
int tty_attach(int slave, oerr *e);
/* Host side, after the command started: raw mode on a terminal stdin, then copies master -> stdout and
 * (if forward_stdin) stdin -> master (EOF on stdin sends the terminal's EOF character) until every
 * holder of the slave is gone. Restores the terminal. */
void tty_relay(tty *t, int forward_stdin);
void tty_close(tty *t);
#endif
