/* Lab 4 starter: the dispatcher and the worker of the 7-step handoff, in one program.
 *
 * The lab text: labs/lab4-client/README.md (the grading contract is at its end): the reference
 * watchdog starts this program as `./main dispatcher --workers K --dir DIR` and as
 * `./main worker --id I --dir DIR --work-ms W`, and restarts whichever dies.
 * Build:  make        Grade:  make grade
 * Do the TODOs in order: each one not done stops the program and says which it is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME 65536

static char *paths[2];
static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

static void todo(const char *tag, const char *what)
{
    fprintf(stderr, "TODO(%s) not done: %s (see README.md)\n", tag, what);
    exit(1);
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000;
}

static int full(int fd, void *buf, size_t n, int writing)
{
    size_t done = 0;
    while (done < n) {
        ssize_t k = writing ? send(fd, (char *)buf + done, n - done, MSG_NOSIGNAL)
                            : read(fd, (char *)buf + done, n - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        done += k;
    }
    return 0;
}

static void send_frame(int fd, const char *text)
{
    char buf[4 + 512];
    uint32_t n = strlen(text);
    if (n > 512)
        n = 512;
    buf[0] = n >> 24, buf[1] = n >> 16, buf[2] = n >> 8, buf[3] = n;
    memcpy(buf + 4, text, n);
    (void)full(fd, buf, 4 + n, 1);
}

/* Reads one frame into out (NUL-terminated). 0 ok, 1 end of stream, -1 malformed/error. */
static int read_frame(int fd, char *out, size_t cap)
{
    /* TODO(lab4.2): read the 4-byte big-endian length (full()), refuse more than cap - 1 or MAX_FRAME, read the body, NUL-terminate it, refuse non-ASCII; return 0, 1 at end of stream, -1 if malformed | fr: lire la longueur sur 4 octets, refuser plus que cap - 1 ou MAX_FRAME, lire le corps, le terminer par NUL, refuser le non-ASCII ; renvoyer 0, 1 en fin de flot, -1 si invalide */
    todo("lab4.2", "read a frame");
    /* END TODO(lab4.2) */
}

static void timeouts(int fd, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int unix_socket(const char *path, struct sockaddr_un *a)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a->sun_path) {
        fprintf(stderr, "%s: path too long for a socket\n", path);
        exit(2);
    }
    memcpy(a->sun_path, path, strlen(path) + 1);
    return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

static int dial(const char *path, int ms)
{
    struct sockaddr_un a;
    int fd = unix_socket(path, &a);
    timeouts(fd, ms);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* bind + listen; a dead server's socket (connect refused) is replaced. */
static int serve_on(const char *path)
{
    /* TODO(lab4.1): socket + bind + listen at path; if bind fails and connecting there is refused (a dead server’s socket), unlink it and bind again; if a server listens, exit 2 | fr: socket + bind + listen ; si bind échoue et que la connexion est refusée (socket d’un serveur mort), la supprimer et recommencer ; si un serveur écoute, sortir avec 2 */
    todo("lab4.1", "listen on a Unix socket (rebinding over a dead server’s socket)");
    /* END TODO(lab4.1) */
}

static void cleanup(void)
{
    for (int i = 0; i < 2; i++)
        if (paths[i])
            unlink(paths[i]);
}

static const char *arg(int argc, char **argv, const char *name)
{
    for (int i = 2; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    fprintf(stderr, "missing %s\n", name);
    exit(2);
}

static int ask_free(const char *dir, int k)
{
    char path[256], ans[64];
    for (int w = 1; w <= k; w++) {
        snprintf(path, sizeof path, "%s/worker-%d.ctl", dir, w);
        int fd = dial(path, 300);
        if (fd < 0)
            continue;
        send_frame(fd, "FREE?");
        int r = read_frame(fd, ans, sizeof ans);
        close(fd);
        if (r == 0 && !strcmp(ans, "YES"))
            return w;
    }
    return 0;
}

static int dispatcher(const char *dir, int k)
{
    char path[256], msg[600];
    snprintf(path, sizeof path, "%s/dispatcher.sock", dir);
    int srv = serve_on(path);
    paths[0] = strdup(path);
    while (!stop) {
        int c = accept4(srv, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue; /* EINTR from SIGTERM: the loop condition ends us */
        timeouts(c, 1000);
        /* TODO(lab4.3): read the client’s frame: malformed gets "ERR ...", HELLO gets "WORKER DIR/worker-w.sock" (w from ask_free) or "BUSY" at once, anything else "ERR ..." | fr: lire la trame du client : invalide reçoit « ERR ... », HELLO reçoit « WORKER ... » (w d’après ask_free) ou « BUSY » aussitôt, le reste « ERR ... » */
        todo("lab4.3", "the dispatcher’s handoff");
        /* END TODO(lab4.3) */
        close(c);
    }
    cleanup();
    return 0;
}

static int worker(const char *dir, int id, int work_ms)
{
    char ctl_path[256], svc_path[256], msg[600], answer[620];
    snprintf(ctl_path, sizeof ctl_path, "%s/worker-%d.ctl", dir, id);
    snprintf(svc_path, sizeof svc_path, "%s/worker-%d.sock", dir, id);
    int ctl = serve_on(ctl_path);
    paths[0] = strdup(ctl_path);
    int svc = serve_on(svc_path);
    paths[1] = strdup(svc_path);
    enum { FREE, RESERVED, BUSY } state = FREE;
    long reserved_at = 0, due = 0;
    int client = -1;
    while (!stop) {
        long now = now_ms();
        if (state == BUSY && now >= due) {
            send_frame(client, answer);
            close(client);
            client = -1;
            state = FREE;
        }
        if (state == RESERVED && now - reserved_at > 2000)
            state = FREE;
        struct pollfd p[2] = { { ctl, POLLIN, 0 }, { svc, POLLIN, 0 } };
        int wait = state == BUSY ? (int)(due - now) : 500;
        if (poll(p, 2, wait < 0 ? 0 : wait) < 0)
            continue;
        if (p[0].revents & POLLIN) {
            int c = accept4(ctl, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                timeouts(c, 1000);
                /* TODO(lab4.4): control: FREE? answers YES and reserves (state RESERVED, reserved_at = now) only when FREE, else NO; DONE? YES when FREE, else NO; malformed or unknown: ERR | fr: contrôle : FREE? répond YES et réserve seulement si FREE, sinon NO ; DONE? YES si FREE, sinon NO ; invalide ou inconnu : ERR */
                todo("lab4.4", "the worker’s control socket");
                /* END TODO(lab4.4) */
                close(c);
            }
        }
        if (p[1].revents & POLLIN) {
            int c = accept4(svc, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0)
                continue;
            timeouts(c, 1000);
            /* TODO(lab4.5): service: only when RESERVED (else ERR not reserved); read REQ text (else ERR, FREE again); answer = RESP TEXT upper-cased, client = c, due = now + work_ms, state BUSY | fr: service : seulement si RESERVED ; lire REQ texte (sinon ERR, de nouveau FREE) ; answer = RESP TEXTE, client = c, due = now + work_ms, état BUSY */
            todo("lab4.5", "the worker’s requests");
            /* END TODO(lab4.5) */
        }
    }
    cleanup();
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa = { 0 };
    sa.sa_handler = on_term; /* no SA_RESTART: accept and poll return EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (argc < 2) {
        fprintf(stderr, "usage: servers dispatcher|worker ...\n");
        return 2;
    }
    const char *dir = arg(argc, argv, "--dir");
    if (!strcmp(argv[1], "dispatcher"))
        return dispatcher(dir, atoi(arg(argc, argv, "--workers")));
    if (!strcmp(argv[1], "worker"))
        return worker(dir, atoi(arg(argc, argv, "--id")), atoi(arg(argc, argv, "--work-ms")));
    fprintf(stderr, "unknown role %s\n", argv[1]);
    return 2;
}
