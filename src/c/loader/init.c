/* --init. As PID 1 of the PID namespace this process only receives signals it has handlers for, so
 * it installs handlers for the forwarded ones; everything else (SIGKILL from the loader's death via
 * PDEATHSIG) ends the namespace, which kills the rest. */
#define _GNU_SOURCE
#include "init.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const int FWD[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT};
static volatile pid_t g_main;

static void on_signal(int sig)
{
    int saved = errno;
    if (g_main > 0)
        kill(g_main, sig);
    errno = saved;
}

int init_run(exec_plan *pl, int single_id, const int *close_fds, int n_close, oerr *e)
{
    sigset_t block, old;
    sigemptyset(&block);
    for (size_t i = 0; i < sizeof FWD / sizeof FWD[0]; i++)
        sigaddset(&block, FWD[i]);
    sigprocmask(SIG_BLOCK, &block, &old); /* no signal lost between fork and the handlers */
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        return oerr_sys(e, err, NULL, "--init: cannot start the command");
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        oerr ce = {0};
        exec_run(pl, single_id, &ce);
        oerr_print(&ce);
        _exit(ce.status ? ce.status : EXIT_SETUP);
    }
    g_main = pid;
    for (int i = 0; i < n_close; i++)
        if (close_fds[i] >= 0)
            close(close_fds[i]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof FWD / sizeof FWD[0]; i++)
        sigaction(FWD[i], &sa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    int status = EXIT_SETUP;
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, 0);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: nothing left */
        }
        if (w == pid) {
            status = exit_status_of(st);
            g_main = 0;
            while (waitpid(-1, NULL, WNOHANG) > 0) /* drain zombies already there */
                ;
            break;
        }
    }
    return status;
}
