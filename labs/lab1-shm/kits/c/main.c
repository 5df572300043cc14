/* Lab 1 starter: K messages through a POSIX shared-memory segment, synchronised by two
 * process-shared semaphores that live in the segment itself.
 *
 * The lab text: labs/lab1-shm/README.md (the grading contract is at its end).
 * Build and run:  make && ./main --messages 3 --name-prefix mine
 * Grade:          make grade
 * Do the TODOs in order: each one not done stops the program and says which it is.
 */
#include <ctype.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

struct segment {
    sem_t request; /* posted by main: a message is ready */
    sem_t reply;   /* posted by the secondary: the answer is ready */
    size_t len;
    char text[4096];
};

static void todo(const char *tag, const char *what)
{
    fprintf(stderr, "TODO(%s) not done: %s (see README.md)\n", tag, what);
    exit(1);
}

int main(int argc, char **argv)
{
    int k = -1;
    const char *prefix = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--messages"))
            k = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--name-prefix"))
            prefix = argv[i + 1];
    }
    if (k < 1 || !prefix) {
        fprintf(stderr, "usage: main --messages K --name-prefix P\n");
        return 2;
    }
    char name[256];
    snprintf(name, sizeof name, "/%s-%d", prefix, (int)getpid());
    struct segment *seg = NULL;
    pid_t pid = -1;
    /* TODO(lab1.1): shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600), ftruncate to sizeof *seg, mmap MAP_SHARED into seg, close the fd; sem_init both semaphores with pshared = 1, value 0 | fr: shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600), ftruncate, mmap MAP_SHARED dans seg, fermer le fd ; sem_init des deux sémaphores avec pshared = 1, valeur 0 */
    todo("lab1.1", "create and map the segment, initialise the semaphores");
    /* END TODO(lab1.1) */
    fflush(stdout); /* a forked child must not print main's buffered output again */
    /* TODO(lab1.2): fork; the child, K times: sem_wait(&seg->request), upper-case seg->text, sem_post(&seg->reply); then _exit(0) | fr: fork ; l'enfant, K fois : sem_wait(&seg->request), mettre seg->text en majuscules, sem_post(&seg->reply) ; puis _exit(0) */
    todo("lab1.2", "start the secondary");
    /* END TODO(lab1.2) */
    /* TODO(lab1.3): for i = 1..K: write a message into seg->text (and seg->len), sem_post request, sem_wait reply, check the upper-case answer, print "message i" and fflush | fr: pour i = 1..K : écrire un message dans seg->text, sem_post request, sem_wait reply, vérifier la réponse, afficher « message i » */
    todo("lab1.3", "main's message loop");
    /* END TODO(lab1.3) */
    /* TODO(lab1.4): waitpid the secondary, shm_unlink(name), return 0 | fr: attendre le secondaire (waitpid), shm_unlink(name), renvoyer 0 */
    todo("lab1.4", "reap the secondary and unlink the segment");
    /* END TODO(lab1.4) */
    (void)seg, (void)pid;
    return 1;
}
