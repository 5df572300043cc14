/* Lab 3 starter: a watchdog that starts its servers, reaps and restarts them, detects hangs,
 * and stops them in order.
 *
 * The lab text: labs/lab3-watchdog/README.md (the grading contract is at its end).
 * Build and run:  make && ./main --secondaries 2 --heartbeat-ms 50 --hang-ms 400 --events ev.jsonl --dir "$(mktemp -d)"
 * Grade:          make grade
 * The servers here are stand-ins: forked children that write one byte per heartbeat period on
 * their own pipe, the watchdog's control channel. Do the TODOs in order: each one not done
 * stops the program and says which it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXS 17
static int wake[2];
static volatile sig_atomic_t term;
static struct { pid_t pid; int fd; long last; char role[32]; } s[MAXS];
static int n, period, hang;
static FILE *events;

static void todo(const char *tag, const char *what) {
    fprintf(stderr, "TODO(%s) not done: %s (see README.md)\n", tag, what);
    exit(1);
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void log_event(const char *ev, int i, int status) {
    fprintf(events, "{\"ts_ms\":%ld,\"event\":\"%s\",\"role\":\"%s\",\"pid\":%d", now_ms(), ev, s[i].role, (int)s[i].pid);
    if (status >= 0) fprintf(events, ",\"status\":%d", status);
    fprintf(events, "}\n");
    fflush(events);
}

static void on_signal(int sig) {
    int saved = errno;
    if (sig == SIGTERM) term = 1;
    if (write(wake[1], "x", 1) < 0) { /* the pipe is full: a wake-up is pending anyway */ }
    errno = saved;
}

static void start(int i) {
    /* TODO(lab3.2): pipe + fork with SIGTERM blocked across the fork (sigprocmask); the child restores SIGTERM and SIGCHLD to SIG_DFL, unblocks SIGTERM and writes one byte per period; the parent unblocks SIGTERM, keeps s[i] (pid, non-blocking fd, last) and logs "start" | fr: pipe + fork avec SIGTERM bloqué pendant le fork (sigprocmask) ; l'enfant remet SIGTERM et SIGCHLD par défaut, débloque SIGTERM et écrit un octet par période ; le parent débloque SIGTERM, garde s[i] et journalise « start » */
    todo("lab3.2", "start a server");
    /* END TODO(lab3.2) */
}

static int status_code(int st) {
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void reap(int restart) {
    /* TODO(lab3.3): waitpid(-1, &st, WNOHANG) until it returns 0 or -1; for each server found: log "exit" with status_code(st), close its fd, pid = 0, start it again if restart | fr: waitpid(-1, &st, WNOHANG) jusqu'à 0 ou -1 ; pour chaque serveur : journaliser « exit », fermer son fd, pid = 0, le relancer si restart */
    todo("lab3.3", "reap and restart");
    /* END TODO(lab3.3) */
}

int main(int argc, char **argv) {
    int k = 0;
    const char *path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--secondaries")) k = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--heartbeat-ms")) period = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hang-ms")) hang = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--events")) path = argv[i + 1];
    }
    if (k < 1 || k + 1 > MAXS || period < 1 || hang <= period || !path) {
        fprintf(stderr, "usage: --secondaries K --heartbeat-ms P --hang-ms T --events PATH\n");
        return 2;
    }
    if (!(events = fopen(path, "a"))) { perror(path); return 2; }
    /* TODO(lab3.1): the self-pipe wake[] (both ends O_NONBLOCK) and sigaction(SIGCHLD) and sigaction(SIGTERM) with on_signal, SA_RESTART | fr: l'auto-tube wake[] (deux bouts O_NONBLOCK) et sigaction(SIGCHLD), sigaction(SIGTERM) avec on_signal, SA_RESTART */
    todo("lab3.1", "signals into a self-pipe");
    /* END TODO(lab3.1) */
    n = k + 1;
    strcpy(s[0].role, "main");
    for (int i = 1; i < n; i++) snprintf(s[i].role, sizeof s[i].role, "secondary-%d", i);
    for (int i = 0; i < n; i++) start(i);

    while (!term) {
        struct pollfd fds[MAXS + 1];
        fds[0] = (struct pollfd){ .fd = wake[0], .events = POLLIN };
        for (int i = 0; i < n; i++) fds[i + 1] = (struct pollfd){ .fd = s[i].fd, .events = POLLIN };
        if (poll(fds, n + 1, period) < 0 && errno != EINTR) { perror("poll"); return 1; }
        char buf[256];
        while (read(wake[0], buf, sizeof buf) > 0) {}
        for (int i = 0; i < n; i++)
            if (fds[i + 1].revents & POLLIN && read(s[i].fd, buf, sizeof buf) > 0) s[i].last = now_ms();
        if (term) break;
        reap(1);
        /* TODO(lab3.4): a server silent for more than hang ms: log "hang" and SIGKILL it (its SIGCHLD restarts it) | fr: un serveur muet depuis plus de hang ms : journaliser « hang » et le tuer par SIGKILL (son SIGCHLD le relance) */
        todo("lab3.4", "hang detection");
        /* END TODO(lab3.4) */
    }
    fprintf(events, "{\"ts_ms\":%ld,\"event\":\"shutdown\",\"role\":\"watchdog\",\"pid\":%d}\n", now_ms(), (int)getpid());
    /* TODO(lab3.5): secondaries first, then main: SIGTERM + SIGCONT, waitpid, log "exit" with its status | fr: les secondaires d'abord, puis le principal : SIGTERM + SIGCONT, waitpid, journaliser « exit » */
    todo("lab3.5", "the orderly shutdown");
    /* END TODO(lab3.5) */
    fprintf(events, "{\"ts_ms\":%ld,\"event\":\"exit\",\"role\":\"watchdog\",\"pid\":%d,\"status\":0}\n", now_ms(), (int)getpid());
    fclose(events);
    return 0;
}
