/* Lab 2 starter: two named pipes, N ping-pong exchanges, a clean shutdown.
 *
 * The lab text: labs/lab2-pingpong/README.md (the grading contract is at its end).
 * Build and run:  make && ./main --exchanges 3 --dir "$(mktemp -d)"
 * Grade:          make grade
 * Do the TODOs in order: each one not done stops the program and says which it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void todo(const char *tag, const char *what)
{
    fprintf(stderr, "TODO(%s) not done: %s (see README.md)\n", tag, what);
    exit(1);
}

/* Reads one line (up to '\n') from fd into buf; 0 at end of file, -1 on error. */
static int read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return (int)r;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = 0;
    return 1;
}

static int secondary(int n, const char *ping, const char *pong)
{
    int rd = -1, wr = -1;
    char line[64];
    /* TODO(lab2.3): open ping for reading, then pong for writing (open(2)) | fr: ouvrir ping en lecture puis pong en écriture (open(2)) */
    todo("lab2.3", "the secondary opens the two FIFOs");
    /* END TODO(lab2.3) */
    for (int i = 1; i <= n; i++) {
        /* TODO(lab2.4): read "ping i\n" (read_line), print "pong i" and fflush(stdout), write "pong i\n" to pong | fr: lire « ping i », afficher « pong i » puis fflush(stdout), écrire « pong i » dans pong */
        todo("lab2.4", "the secondary answers ping i");
        /* END TODO(lab2.4) */
    }
    (void)rd, (void)wr, (void)line;
    return 0;
}

int main(int argc, char **argv)
{
    int n = -1;
    const char *dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--exchanges"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
    }
    if (n < 1 || !dir) {
        fprintf(stderr, "usage: main --exchanges N --dir DIR\n");
        return 2;
    }
    char ping[4096], pong[4096], line[64];
    snprintf(ping, sizeof ping, "%s/ping", dir);
    snprintf(pong, sizeof pong, "%s/pong", dir);
    pid_t pid = -1;
    int wr = -1, rd = -1, status = 0;
    /* TODO(lab2.1): create the two FIFOs, mode 0600 (mkfifo) | fr: créer les deux FIFO, mode 0600 (mkfifo) */
    todo("lab2.1", "create the two FIFOs in DIR");
    /* END TODO(lab2.1) */
    fflush(stdout); /* a forked child must not print main's buffered output again */
    /* TODO(lab2.2): fork; in the child, _exit(secondary(n, ping, pong)) | fr: fork ; dans l'enfant, _exit(secondary(n, ping, pong)) */
    todo("lab2.2", "start the secondary with fork");
    /* END TODO(lab2.2) */
    /* TODO(lab2.5): open ping for writing, pong for reading; for i = 1..N print "ping i" (fflush), send "ping i\n", read "pong i\n" | fr: ouvrir ping en écriture, pong en lecture ; pour i = 1..N afficher « ping i », l'envoyer, lire la réponse */
    todo("lab2.5", "main's exchange loop");
    /* END TODO(lab2.5) */
    /* TODO(lab2.6): waitpid for the secondary, unlink both FIFOs, return 0 | fr: attendre le secondaire (waitpid), supprimer les deux FIFO, renvoyer 0 */
    todo("lab2.6", "reap the secondary and remove the FIFOs");
    /* END TODO(lab2.6) */
    (void)pid, (void)wr, (void)rd, (void)status, (void)line;
    return 1;
}
