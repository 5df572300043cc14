/* Lab 6 starter: a daemon with start, stop and status.
 *
 * The lab text: labs/lab6-daemon/README.md (the grading contract is at its end).
 * Build and run:  make && ./main start --dir /tmp/d && ./main status --dir /tmp/d && ./main stop --dir /tmp/d
 * Grade:          make grade
 * Do the TODOs in order: each one not done stops the program and says which it is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char pidfile[4096];

static void todo(const char *tag, const char *what)
{
    fprintf(stderr, "TODO(%s) not done: %s (see README.md)\n", tag, what);
    exit(1);
}

/* True while a daemon holds the pidfile's lock (its pid alone could be reused). */
static int running(void)
{
    int fd = open(pidfile, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

__attribute__((unused)) static void on_term(int sig)
{
    (void)sig;
    unlink(pidfile);
    _exit(0);
}

/* The daemon itself, after the double fork: never returns. */
__attribute__((unused)) static void daemon_main(int ready_w)
{
    /* TODO(lab6.3): umask(0), chdir("/"), fds 0-2 onto /dev/null (dup2), close every other fd but ready_w | fr: umask(0), chdir("/"), fd 0 à 2 sur /dev/null (dup2), fermer tous les autres fd sauf ready_w */
    todo("lab6.3", "detach from the launcher's environment");
    /* END TODO(lab6.3) */
    /* TODO(lab6.4): open the pidfile (O_RDWR | O_CREAT, 0600), flock(LOCK_EX | LOCK_NB), write your pid; keep it open | fr: ouvrir le fichier de pid, flock(LOCK_EX | LOCK_NB), y écrire son pid ; le garder ouvert */
    todo("lab6.4", "the locked pidfile");
    /* END TODO(lab6.4) */
    /* TODO(lab6.5): sigaction(SIGTERM, on_term); write "ok" on ready_w and close it; then pause() forever | fr: sigaction(SIGTERM, on_term) ; écrire « ok » sur ready_w et le fermer ; puis pause() pour toujours */
    todo("lab6.5", "SIGTERM handling, readiness");
    /* END TODO(lab6.5) */
    _exit(1);
}

static int start(void)
{
    if (running()) {
        fprintf(stderr, "already running\n");
        return 1;
    }
    int ready[2];
    if (pipe(ready) < 0)
        return 1;
    fflush(stdout); /* a forked child must not print main's buffered output again */
    pid_t pid = -1;
    /* TODO(lab6.1): fork; the child closes ready[0], setsid(), forks again (the middle process _exit(0)s at once), and the grandchild calls daemon_main(ready[1]) | fr: fork ; l'enfant ferme ready[0], setsid(), fork encore (l'intermédiaire fait _exit(0)), et le petit-enfant appelle daemon_main(ready[1]) */
    todo("lab6.1", "the double fork");
    /* END TODO(lab6.1) */
    /* TODO(lab6.2): waitpid the middle process, close ready[1], read "ok" from ready[0]; print "started" and return 0 (else 1) | fr: attendre l'intermédiaire (waitpid), fermer ready[1], lire « ok » sur ready[0] ; afficher « started » et renvoyer 0 (sinon 1) */
    todo("lab6.2", "the launcher waits for readiness");
    /* END TODO(lab6.2) */
    (void)pid;
    return 1;
}

static int stop(void)
{
    if (!running()) {
        printf("not running\n");
        return 0;
    }
    /* TODO(lab6.6): read the daemon's pid from the pidfile, pidfd_open it (syscall(SYS_pidfd_open, pid, 0)), kill(pid, SIGTERM), poll the pidfd until the daemon has exited (10 s at most), return 0 | fr: lire le pid du démon, pidfd_open, kill(pid, SIGTERM), poll sur le pidfd jusqu'à sa fin, renvoyer 0 */
    todo("lab6.6", "stop the daemon and wait for its end");
    /* END TODO(lab6.6) */
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[2], "--dir")) {
        fprintf(stderr, "usage: main start|stop|status --dir DIR\n");
        return 2;
    }
    snprintf(pidfile, sizeof pidfile, "%s/daemon.pid", argv[3]);
    if (!strcmp(argv[1], "start"))
        return start();
    if (!strcmp(argv[1], "stop"))
        return stop();
    if (!strcmp(argv[1], "status"))
        return running() ? 0 : 3;
    fprintf(stderr, "unknown action %s\n", argv[1]);
    return 2;
}
