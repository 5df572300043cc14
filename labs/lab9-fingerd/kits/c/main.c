/* Lab 9 starter: a finger daemon and its client, one program, the role as first argument.
 *
 * The lab text: labs/lab9-fingerd/README.md (the grading contract is at its end).
 * Build and run:  make && mkdir -m 700 d && ./main fingerd --port 7979 --dir d && ./main fingercli --login $USER --host 127.0.0.1 --port 7979
 * Grade:          make grade
 * Do the TODOs in order: each one not done stops the program and says which it is.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *role;
static const char *host = "127.0.0.1";
static const char *login = "";
static const char *dir;
static int port = 7979;
static char pidfile[4096];
static FILE *logf;
__attribute__((unused)) static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((unused)) static void todo(const char *tag, const char *what)
{
    fprintf(stderr, "TODO(%s) not done: %s (see README.md)\n", tag, what);
    exit(1);
}

/* A login: letters, digits, _ . - (not first), at most 32. Anything else never reaches finger. */
__attribute__((unused)) static int is_login(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32 || s[0] == '-' || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '_' || s[i] == '.' || s[i] == '-' || (s[i] >= '0' && s[i] <= '9') ||
              (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

/* Writes all of buf (a short write is not an error: it is the rest still to send). */
__attribute__((unused)) static int send_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

/* A listening TCP socket on every address; a port in use is one line and exit status 1. */
static int listen_socket(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_ANY) };
    (void)a;
    /* TODO(lab9.1): bind(s, &a); on failure print "fingerd: bind port P: strerror(errno)" on stderr and exit(1); then listen(s, 16) | fr: bind(s, &a) ; en cas d'échec afficher « fingerd: bind port P: strerror(errno) » sur stderr et exit(1) ; puis listen(s, 16) */
    todo("lab9.1", "bind and listen, or say why not in one line");
    /* END TODO(lab9.1) */
    return s;
}

/* The launcher returns once the daemon runs: fork; the parent waits for the child's word on a
 * pipe and exits 0; the child calls setsid, puts /dev/null on 0, 1, 2, writes its pid. */
static void daemonize(void)
{
    /* TODO(lab9.2): pipe(p); fork: the parent closes p[1], read(p[0]) one byte, _exit(0). The child: setsid(); open /dev/null and dup2 it onto 0, 1, 2; write getpid() to pidfile; write one byte to p[1]; close it | fr: pipe(p) ; fork : le père ferme p[1], read(p[0]) d'un octet, _exit(0). L'enfant : setsid() ; ouvrir /dev/null et le dup2 sur 0, 1, 2 ; écrire getpid() dans pidfile ; écrire un octet sur p[1] ; le fermer */
    todo("lab9.2", "become a daemon and write the pidfile");
    /* END TODO(lab9.2) */
}

/* The query line (RFC 1288: up to CRLF) in q, NUL-terminated; 0 if it is a login, else -1. */
__attribute__((unused)) static int read_query(int fd, char *q, size_t cap)
{
    (void)fd;
    (void)q;
    (void)cap;
    /* TODO(lab9.3): recv into q until a '\n' is there (or 0, or cap - 1 bytes); cut at the first '\n', drop a '\r' before it; -1 if a NUL byte came before it or !is_login(q) | fr: recv dans q jusqu'à y avoir un '\n' (ou 0, ou cap - 1 octets) ; couper au premier '\n', ôter un '\r' avant lui ; -1 si un octet NUL est venu avant ou si !is_login(q) */
    todo("lab9.3", "read the query line and check it is a login");
    /* END TODO(lab9.3) */
    return -1;
}

/* One client: its query, finger's answer (never through a shell), a log line, close. */
__attribute__((unused)) static void *answer(void *arg)
{
    int fd = (int)(long)arg;
    char q[520];
    int ok = read_query(fd, q, sizeof q);
    (void)ok;
    /* TODO(lab9.4): lock log_lock, fprintf(logf, "%s from IP:PORT\n") (getpeername, inet_ntop), fflush, unlock. Not a login: send "fingerd: not a login\r\n". Else pipe; fork; child: dup2 the pipe's write end onto 1 and 2, execl("/usr/bin/finger", "finger", "-l", "-m", "--", q, NULL), _exit(127); parent: read the pipe until 0, sending each '\n' as "\r\n"; waitpid. Then close(fd) | fr: verrouiller log_lock, fprintf(logf, "%s from IP:PORT\n") (getpeername, inet_ntop), fflush, déverrouiller. Pas un login : envoyer "fingerd: not a login\r\n". Sinon pipe ; fork ; l'enfant : dup2 de l'écriture du tube sur 1 et 2, execl("/usr/bin/finger", "finger", "-l", "-m", "--", q, NULL), _exit(127) ; le père : lire le tube jusqu'à 0, en envoyant chaque '\n' comme "\r\n" ; waitpid. Puis close(fd) */
    todo("lab9.4", "answer with finger's output from an argv, log, close");
    /* END TODO(lab9.4) */
    return NULL;
}

__attribute__((unused)) static void on_term(int sig)
{
    (void)sig;
    unlink(pidfile); /* async-signal-safe, as _exit is */
    _exit(0);
}

static int fingerd(void)
{
    if (!dir) {
        fprintf(stderr, "fingerd needs --dir DIR (yours alone: mkdir -m 700 DIR)\n");
        return 2;
    }
    snprintf(pidfile, sizeof pidfile, "%s/fingerd.pid", dir);
    int s = listen_socket();
    daemonize();
    char path[4096];
    snprintf(path, sizeof path, "%s/fingerd.log", dir);
    logf = fopen(path, "a");
    if (!logf)
        return 1;
    (void)s;
    /* TODO(lab9.5): sigaction(SIGTERM) with on_term; then forever: fd = accept4(s, NULL, NULL, SOCK_CLOEXEC), a detached pthread running answer((void *)(long)fd) | fr: sigaction(SIGTERM) avec on_term ; puis sans fin : fd = accept4(s, NULL, NULL, SOCK_CLOEXEC), un pthread détaché qui lance answer((void *)(long)fd) */
    todo("lab9.5", "stop on SIGTERM; accept, a thread per client");
    /* END TODO(lab9.5) */
    return 0;
}

static int fingercli(void)
{
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    int e = getaddrinfo(host, p, &hints, &ai);
    if (e) {
        fprintf(stderr, "fingercli: %s: %s\n", host, gai_strerror(e));
        return 1;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    (void)s;
    /* TODO(lab9.6): connect(s, ai->ai_addr, ai->ai_addrlen); failure: one line on stderr, return 1. send login then "\r\n" (send_all); recv into a 4096-byte buffer until it returns 0, writing each piece to stdout; close(s) | fr: connect(s, ai->ai_addr, ai->ai_addrlen) ; échec : une ligne sur stderr, rendre 1. envoyer login puis "\r\n" (send_all) ; recv dans un tampon de 4096 octets jusqu'à ce qu'il rende 0, en écrivant chaque morceau sur stdout ; close(s) */
    todo("lab9.6", "connect, send the login, print the whole answer");
    /* END TODO(lab9.6) */
    freeaddrinfo(ai);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "fingerd") && strcmp(argv[1], "fingercli"))) {
        fprintf(stderr, "usage: %s fingerd|fingercli [--port P] [--dir D] [--login L] [--host H]\n", argv[0]);
        return 2;
    }
    role = argv[1];
    static const struct option opts[] = {
        { "port", required_argument, 0, 'p' }, { "dir", required_argument, 0, 'd' },
        { "login", required_argument, 0, 'l' }, { "host", required_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'p':
            port = (int)strtol(optarg, &end, 10);
            if (*end || port <= 0 || port > 65535) {
                fprintf(stderr, "%s: --port: not a port: %s\n", role, optarg);
                return 2;
            }
            break;
        case 'd': dir = optarg; break;
        case 'l': login = optarg; break;
        case 'h': host = optarg; break;
        default: return 2;
        }
    }
    return strcmp(role, "fingerd") == 0 ? fingerd() : fingercli();
}
