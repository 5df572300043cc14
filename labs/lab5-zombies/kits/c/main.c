/* Lab 5 starter: fork M children, reap them all, report each one's status.
 *
 * The lab text: labs/lab5-zombies/README.md (the grading contract is at its end).
 * Build and run:  make && ./main --children 5
 * Grade:          make grade
 * Do the TODOs in order: each one not done stops the program and says which it is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CHILDREN 1000

static void todo(const char *tag, const char *what)
{
    fprintf(stderr, "TODO(%s) not done: %s (see README.md)\n", tag, what);
    exit(1);
}

int main(int argc, char **argv)
{
    int m = argc == 3 && !strcmp(argv[1], "--children") ? atoi(argv[2]) : -1;
    if (m < 1 || m > MAX_CHILDREN) {
        fprintf(stderr, "usage: main --children M (1..%d)\n", MAX_CHILDREN);
        return 2;
    }
    static pid_t pids[MAX_CHILDREN + 1]; /* pids[i]: child i */
    int reaped = 0;
    fflush(stdout); /* a forked child must not print main's buffered output again */
    /* TODO(lab5.1): fork the M children; child i calls _exit(i) at once; keep pids[i] | fr: créer les M enfants ; l'enfant i appelle _exit(i) aussitôt ; garder pids[i] */
    todo("lab5.1", "fork the children");
    /* END TODO(lab5.1) */
    /* TODO(lab5.2): waitpid(-1, &st, 0) in a loop until it fails with ECHILD; for each, find i and print "child i exited with status s" (WEXITSTATUS), fflush | fr: waitpid(-1, &st, 0) en boucle jusqu'à ECHILD ; pour chacun, afficher « child i exited with status s » */
    todo("lab5.2", "reap every child in a waitpid loop");
    /* END TODO(lab5.2) */
    (void)pids;
    return reaped == m ? 0 : 1;
}
