/* The pod sandbox's process for the local real node (localhost/pause:3.10).
 *
 * It holds the pod's namespaces open and does nothing else: as PID 1 of the
 * pod it reaps any child that is re-parented to it, and it exits 0 on SIGINT
 * or SIGTERM. Other signals are ignored or left to their defaults.
 *
 * Build: gcc -static -Os -s -o pause pause.c   (hack/build-image.sh pause)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PAUSE_VERSION
#define PAUSE_VERSION "3.10-paramedic"
#endif

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static void on_child(int sig) {
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int handle(int sig, void (*fn)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = (sig == SIGCHLD) ? SA_NOCLDSTOP | SA_RESTART : 0;
    return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
        printf("pause %s\n", PAUSE_VERSION);
        return 0;
    }
    if (getpid() != 1) {
        /* Not fatal (handy for a test run), but it is meant to be a pod's first process. */
        fprintf(stderr, "pause: warning: not PID 1\n");
    }
    if (handle(SIGINT, on_stop) || handle(SIGTERM, on_stop) || handle(SIGCHLD, on_child)) {
        perror("pause: sigaction");
        return 1;
    }
    /* Block the stop signals except inside sigsuspend, so one arriving between the
     * check and the wait cannot be lost. */
    sigset_t block, wait_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &block, &wait_mask)) {
        perror("pause: sigprocmask");
        return 1;
    }
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGCHLD);
    while (!stop_signal) {
        sigsuspend(&wait_mask);
    }
    fprintf(stderr, "pause: signal %d, exiting\n", (int)stop_signal);
    return 0;
}
