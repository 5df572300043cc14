/* Lab 7 — the C twins of every `ipclab bench` mechanism, for `make bench` to run beside the
 * Rust ones: the same protocol (main creates the objects, forks and execs itself as the peer,
 * warm-up of K/10 round trips capped at 200, then K timed round trips, the sequence number in the
 * first 8 bytes checked on return), the same pinning, the same clock (CLOCK_MONOTONIC).
 *
 *   twins MECH SIZE K PIN [BATCH]   MECH: any of ipclab bench's (pipe fifo unix-stream unix-dgram
 *                                   socketpair tcp udp posix-mq sysv-mq shm-futex shm-sem shm-condvar
 *                                   shm-spin signal eventfd file-lock file); PIN: none same split;
 *                                   BATCH: round trips timed together
 *
 * Prints one line: min median p99 max round trip, in ns. No third-party code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 65536
#define HDR 4096

static const char *mech;
static size_t size;
static long k;
static int rd = -1, wr = -1;
static unsigned char *seg;
static unsigned seen, sent;
static int out_dir; /* 0: main writes buffer 0; 1: the peer writes buffer 1 */

static void die(const char *what)
{
    fprintf(stderr, "twins %s: %s: %s\n", mech, what, strerror(errno));
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + t.tv_nsec;
}

static void pin_to(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s) < 0)
        die("sched_setaffinity");
}

static int is_shm(void) { return !strncmp(mech, "shm-", 4); }
static int is_file(void) { return !strcmp(mech, "file"); }
static int is_eventfd(void) { return !strcmp(mech, "eventfd"); }
static int file_fd = -1; /* file, file-lock: the data file */
static long lock_next;   /* file-lock: the next handoff this side makes */
static mqd_t mq_out = (mqd_t)-1, mq_in = (mqd_t)-1;
static int msq = -1;      /* sysv-mq: one queue, type 1 main -> peer, 2 back */
static pid_t sig_to;      /* signal: the other side */
static sigset_t sig_set;
static int is_dgram(void) { return !strcmp(mech, "unix-dgram") || !strcmp(mech, "udp"); }
static int is(const char *m) { return !strcmp(mech, m); }

/* Sync objects of the shm mechanisms, in the segment's header, one per direction. */
struct dir_sync {
    sem_t sem;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned seq;
};
static struct dir_sync *sync_of(int d) { return (struct dir_sync *)(seg + 256 + 256 * d); }

static void lock_byte(long byte, int type)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
    while (fcntl(file_fd, F_SETLKW, &fl) < 0)
        if (errno != EINTR)
            die("fcntl");
}

struct sysv_msg {
    long type;
    unsigned char data[MAX_SIZE];
};
static struct sysv_msg msgbuf;

static unsigned *word(int i) { return (unsigned *)(seg + 4 * i); }

static void send_msg(const unsigned char *b)
{
    if (is("file-lock")) {
        if (pwrite(file_fd, b, size, HDR + out_dir * MAX_SIZE) != (ssize_t)size)
            die("pwrite");
        lock_byte(lock_next % 3, F_UNLCK);
        return;
    }
    if (is_dgram()) {
        if (send(wr, b, size, 0) != (ssize_t)size)
            die("send");
        return;
    }
    if (is("posix-mq")) {
        if (mq_send(mq_out, (const char *)b, size, 0) < 0)
            die("mq_send");
        return;
    }
    if (is("sysv-mq")) {
        msgbuf.type = out_dir + 1;
        memcpy(msgbuf.data, b, size);
        while (msgsnd(msq, &msgbuf, size, 0) < 0)
            if (errno != EINTR)
                die("msgsnd");
        return;
    }
    if (is("signal")) {
        union sigval v = { 0 };
        memcpy(&v.sival_ptr, b, size);
        if (sigqueue(sig_to, SIGRTMIN, v) < 0)
            die("sigqueue");
        return;
    }
    if (is("shm-sem") || is("shm-condvar")) {
        struct dir_sync *s = sync_of(out_dir);
        memcpy(seg + HDR + out_dir * MAX_SIZE, b, size);
        if (is("shm-sem")) {
            sem_post(&s->sem);
        } else {
            pthread_mutex_lock(&s->mu);
            s->seq++;
            pthread_cond_signal(&s->cv);
            pthread_mutex_unlock(&s->mu);
        }
        return;
    }
    if (is_file()) {
        /* The data, then the sequence number: a reader that sees the number sees the data. */
        if (pwrite(file_fd, b, size, HDR + out_dir * MAX_SIZE) != (ssize_t)size)
            die("pwrite");
        sent++;
        if (pwrite(file_fd, &sent, 4, 8 * out_dir) != 4)
            die("pwrite");
        return;
    }
    if (is_eventfd()) {
        /* 7 bytes of payload above a marker bit: the counter must never be 0. */
        uint64_t v = 0;
        memcpy((unsigned char *)&v + 1, b, size);
        v |= 1;
        if (write(wr, &v, 8) != 8)
            die("write");
        return;
    }
    if (is_shm()) {
        memcpy(seg + HDR + out_dir * MAX_SIZE, b, size);
        sent++;
        __atomic_store_n(word(out_dir), sent, __ATOMIC_RELEASE);
        if (!strcmp(mech, "shm-futex"))
            syscall(SYS_futex, word(out_dir), FUTEX_WAKE, 1, NULL, NULL, 0);
        return;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(wr, b + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("write");
        done += n;
    }
}

static void recv_msg(unsigned char *b)
{
    if (is("file-lock")) {
        lock_byte((lock_next + 1) % 3, F_WRLCK);
        lock_next += 2;
        if (pread(file_fd, b, size, HDR + (1 - out_dir) * MAX_SIZE) != (ssize_t)size)
            die("pread");
        return;
    }
    if (is_dgram()) {
        while (recv(rd, b, size, 0) != (ssize_t)size)
            if (errno != EINTR)
                die("recv");
        return;
    }
    if (is("posix-mq")) {
        static char big[MAX_SIZE];
        while (mq_receive(mq_in, big, sizeof big, NULL) < 0)
            if (errno != EINTR)
                die("mq_receive");
        memcpy(b, big, size);
        return;
    }
    if (is("sysv-mq")) {
        while (msgrcv(msq, &msgbuf, size, 2 - out_dir, 0) < 0)
            if (errno != EINTR)
                die("msgrcv");
        memcpy(b, msgbuf.data, size);
        return;
    }
    if (is("signal")) {
        siginfo_t info;
        while (sigwaitinfo(&sig_set, &info) < 0)
            if (errno != EINTR)
                die("sigwaitinfo");
        memcpy(b, &info.si_value.sival_ptr, size);
        return;
    }
    if (is("shm-sem") || is("shm-condvar")) {
        struct dir_sync *s = sync_of(1 - out_dir);
        if (is("shm-sem")) {
            while (sem_wait(&s->sem) < 0)
                if (errno != EINTR)
                    die("sem_wait");
        } else {
            pthread_mutex_lock(&s->mu);
            while (s->seq == seen)
                pthread_cond_wait(&s->cv, &s->mu);
            seen = s->seq;
            pthread_mutex_unlock(&s->mu);
        }
        memcpy(b, seg + HDR + (1 - out_dir) * MAX_SIZE, size);
        return;
    }
    if (is_file()) {
        unsigned v;
        do {
            if (pread(file_fd, &v, 4, 8 * (1 - out_dir)) != 4)
                die("pread");
        } while (v == seen);
        seen = v;
        if (pread(file_fd, b, size, HDR + (1 - out_dir) * MAX_SIZE) != (ssize_t)size)
            die("pread");
        return;
    }
    if (is_eventfd()) {
        uint64_t v;
        while (read(rd, &v, 8) != 8)
            if (errno != EINTR)
                die("read");
        memcpy(b, (unsigned char *)&v + 1, size);
        return;
    }
    if (is_shm()) {
        int d = 1 - out_dir;
        unsigned want = seen + 1, v;
        if (!strcmp(mech, "shm-futex")) {
            while ((v = __atomic_load_n(word(d), __ATOMIC_ACQUIRE)) != want)
                syscall(SYS_futex, word(d), FUTEX_WAIT, v, NULL, NULL, 0);
        } else {
            while (__atomic_load_n(word(d), __ATOMIC_ACQUIRE) != want)
                __builtin_ia32_pause();
        }
        seen = want;
        memcpy(b, seg + HDR + d * MAX_SIZE, size);
        return;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = read(rd, b + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("read");
        done += n;
    }
}

static long warmup(void) { long w = k / 10; return w < 1 ? 1 : w > 200 ? 200 : w; }

static void fill(unsigned char *b, uint64_t i)
{
    size_t n = size < 8 ? size : 8;
    memcpy(b, &i, n);
}

static void check(const unsigned char *b, uint64_t i)
{
    size_t n = size < 8 ? size : 8;
    if (memcmp(b, &i, n)) {
        fprintf(stderr, "twins %s: message %llu arrived corrupted\n", mech, (unsigned long long)i);
        exit(1);
    }
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static struct sockaddr_un addr(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    return a;
}

/* The peer: open its end (spec: fds "r,w", a directory, a socket path, a segment name), echo. */
static int peer(const char *spec, int cpu, int report)
{
    if (cpu >= 0)
        pin_to(cpu);
    out_dir = 1;
    if (!strcmp(mech, "pipe") || !strcmp(mech, "socketpair") || is_eventfd() || is_dgram() ||
        is("tcp")) {
        sscanf(spec, "%d,%d", &rd, &wr);
    } else if (is("posix-mq")) {
        char a[64], b[64];
        sscanf(spec, "%63[^,],%63s", a, b);
        if ((mq_in = mq_open(a, O_RDONLY)) == (mqd_t)-1 || (mq_out = mq_open(b, O_WRONLY)) == (mqd_t)-1)
            die("mq_open");
    } else if (is("sysv-mq")) {
        msq = atoi(spec);
    } else if (is("signal")) {
        sig_to = atoi(spec);
        sigemptyset(&sig_set);
        sigaddset(&sig_set, SIGRTMIN); /* blocked since main: the mask survives exec */
    } else if (is("file-lock")) {
        if ((file_fd = open(spec, O_RDWR | O_CLOEXEC)) < 0)
            die("open token");
        lock_byte(2, F_WRLCK); /* held before main's first handoff (lock 1) */
        lock_next = 0;
    } else if (is_file()) {
        if ((file_fd = open(spec, O_RDWR | O_CLOEXEC)) < 0)
            die("open data");
    } else if (!strcmp(mech, "fifo")) {
        char p[4200];
        if (write(report, "ready\n", 6) != 6)
            die("report");
        snprintf(p, sizeof p, "%s/ping", spec);
        if ((rd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
            die("open ping");
        snprintf(p, sizeof p, "%s/pong", spec);
        if ((wr = open(p, O_WRONLY | O_CLOEXEC)) < 0)
            die("open pong");
    } else if (!strcmp(mech, "unix-stream")) {
        struct sockaddr_un a = addr(spec);
        rd = wr = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(rd, (struct sockaddr *)&a, sizeof a) < 0)
            die("connect");
    } else {
        int fd = shm_open(spec, O_RDWR, 0);
        if (fd < 0)
            die("shm_open");
        seg = mmap(NULL, HDR + 2 * MAX_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (seg == MAP_FAILED)
            die("mmap");
        close(fd);
    }
    if (strcmp(mech, "fifo") && write(report, "ready\n", 6) != 6)
        die("report");
    unsigned char *b = malloc(size);
    for (long i = 0; i < warmup() + k; i++) {
        recv_msg(b);
        check(b, i < warmup() ? i : i - warmup());
        send_msg(b);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 8 && !strcmp(argv[1], "--peer")) {
        mech = argv[2];
        size = strtoul(argv[3], NULL, 10);
        k = strtol(argv[4], NULL, 10);
        return peer(argv[5], atoi(argv[6]), atoi(argv[7]));
    }
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: twins fifo|pipe|unix-stream|shm-futex|shm-spin SIZE K none|same|split [BATCH]\n");
        return 2;
    }
    /* Round trips timed together, as ipclab bench timed them (it passes its own batch size). */
    long batch = argc == 6 ? strtol(argv[5], NULL, 10) : 1;
    if (batch < 1)
        batch = 1;
    mech = argv[1];
    size = strtoul(argv[2], NULL, 10);
    k = strtol(argv[3], NULL, 10);
    const char *pin = argv[4];
    if (size < 1 || size > MAX_SIZE || k < 1) {
        fprintf(stderr, "twins: bad SIZE or K\n");
        return 2;
    }
    int cpu = !strcmp(pin, "same") ? 0 : !strcmp(pin, "split") ? 1 : -1;
    if (cpu >= 0)
        pin_to(0);
    char spec[4200] = "", dir[] = "/tmp/ipclab-twins-XXXXXX", shm_name[64] = "";
    int peer_fds[2] = { -1, -1 }, listener = -1;
    if (!mkdtemp(dir))
        die("mkdtemp");
    if (!strcmp(mech, "pipe")) {
        int a[2], b[2];
        if (pipe(a) < 0 || pipe(b) < 0)
            die("pipe");
        wr = a[1], rd = b[0];
        peer_fds[0] = a[0], peer_fds[1] = b[1];
        fcntl(wr, F_SETFD, FD_CLOEXEC), fcntl(rd, F_SETFD, FD_CLOEXEC);
        snprintf(spec, sizeof spec, "%d,%d", a[0], b[1]);
    } else if (!strcmp(mech, "socketpair")) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
            die("socketpair");
        rd = wr = sv[0];
        fcntl(sv[0], F_SETFD, FD_CLOEXEC);
        peer_fds[0] = peer_fds[1] = sv[1];
        snprintf(spec, sizeof spec, "%d,%d", sv[1], sv[1]);
    } else if (is_eventfd()) {
        if (size > 7) {
            fprintf(stderr, "twins: eventfd carries at most 7 bytes\n");
            rmdir(dir);
            return 2;
        }
        int a = eventfd(0, 0), b = eventfd(0, 0);
        if (a < 0 || b < 0)
            die("eventfd");
        /* Both sides use the same two counters (inherited): main writes a and reads b. */
        wr = a, rd = b;
        snprintf(spec, sizeof spec, "%d,%d", a, b);
    } else if (is_dgram() || is("tcp")) {
        int sv[2];
        if (is("unix-dgram")) {
            if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
                die("socketpair");
        } else {
            /* Two loopback sockets connected to each other; the peer's end is inherited. */
            int udp = is("udp");
            struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
            socklen_t len = sizeof a;
            if (udp) {
                struct sockaddr_in b2 = a;
                sv[0] = socket(AF_INET, SOCK_DGRAM, 0), sv[1] = socket(AF_INET, SOCK_DGRAM, 0);
                if (bind(sv[0], (struct sockaddr *)&a, sizeof a) < 0 || bind(sv[1], (struct sockaddr *)&b2, sizeof b2) < 0)
                    die("bind");
                struct sockaddr_in x, y;
                socklen_t lx = sizeof x, ly = sizeof y;
                getsockname(sv[0], (struct sockaddr *)&x, &lx), getsockname(sv[1], (struct sockaddr *)&y, &ly);
                if (connect(sv[0], (struct sockaddr *)&y, ly) < 0 || connect(sv[1], (struct sockaddr *)&x, lx) < 0)
                    die("connect");
            } else {
                int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
                if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
                    getsockname(l, (struct sockaddr *)&a, &len) < 0)
                    die("listen");
                sv[1] = socket(AF_INET, SOCK_STREAM, 0);
                if (connect(sv[1], (struct sockaddr *)&a, len) < 0 || (sv[0] = accept(l, NULL, NULL)) < 0)
                    die("connect");
                close(l);
                setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            }
        }
        rd = wr = sv[0];
        fcntl(sv[0], F_SETFD, FD_CLOEXEC);
        peer_fds[0] = peer_fds[1] = sv[1];
        snprintf(spec, sizeof spec, "%d,%d", sv[1], sv[1]);
    } else if (is("posix-mq")) {
        char a[64], b[64];
        struct mq_attr at = { .mq_maxmsg = 8, .mq_msgsize = (long)size };
        snprintf(a, sizeof a, "/ipclab-twins-%d-a", getpid());
        snprintf(b, sizeof b, "/ipclab-twins-%d-b", getpid());
        if ((mq_out = mq_open(a, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &at)) == (mqd_t)-1 ||
            (mq_in = mq_open(b, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &at)) == (mqd_t)-1)
            die("mq_open");
        snprintf(spec, sizeof spec, "%s,%s", a, b);
    } else if (is("sysv-mq")) {
        if ((msq = msgget(IPC_PRIVATE, IPC_CREAT | 0600)) < 0)
            die("msgget");
        snprintf(spec, sizeof spec, "%d", msq);
    } else if (is("signal")) {
        if (size > 8) {
            fprintf(stderr, "twins: a signal carries at most 8 bytes\n");
            rmdir(dir);
            return 2;
        }
        sigemptyset(&sig_set);
        sigaddset(&sig_set, SIGRTMIN);
        sigprocmask(SIG_BLOCK, &sig_set, NULL); /* before fork: the peer inherits the mask */
        snprintf(spec, sizeof spec, "%d", getpid());
    } else if (is("shm-sem") || is("shm-condvar")) {
        snprintf(shm_name, sizeof shm_name, "/ipclab-twins-%d", getpid());
        int fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, HDR + 2 * MAX_SIZE) < 0)
            die("shm_open");
        seg = mmap(NULL, HDR + 2 * MAX_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (seg == MAP_FAILED)
            die("mmap");
        close(fd);
        pthread_mutexattr_t ma;
        pthread_condattr_t ca;
        pthread_mutexattr_init(&ma), pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
        pthread_condattr_init(&ca), pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
        for (int d = 0; d < 2; d++) {
            sem_init(&sync_of(d)->sem, 1, 0);
            pthread_mutex_init(&sync_of(d)->mu, &ma);
            pthread_cond_init(&sync_of(d)->cv, &ca);
        }
        snprintf(spec, sizeof spec, "%s", shm_name);
    } else if (is("file-lock")) {
        char p[4200];
        snprintf(p, sizeof p, "%s/data", dir);
        if ((file_fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0 ||
            ftruncate(file_fd, HDR + 2 * MAX_SIZE) < 0)
            die("open token");
        lock_byte(0, F_WRLCK), lock_byte(1, F_WRLCK); /* handoff 1 is main's first send */
        lock_next = 1;
        snprintf(spec, sizeof spec, "%s", p);
    } else if (is_file()) {
        char p[4200];
        snprintf(p, sizeof p, "%s/data", dir);
        if ((file_fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0 ||
            ftruncate(file_fd, HDR + 2 * MAX_SIZE) < 0)
            die("open data");
        snprintf(spec, sizeof spec, "%s", p);
    } else if (!strcmp(mech, "fifo")) {
        char p[4200];
        snprintf(p, sizeof p, "%s/ping", dir);
        if (mkfifo(p, 0600) < 0)
            die("mkfifo");
        snprintf(p, sizeof p, "%s/pong", dir);
        if (mkfifo(p, 0600) < 0)
            die("mkfifo");
        snprintf(spec, sizeof spec, "%s", dir);
    } else if (!strcmp(mech, "unix-stream")) {
        snprintf(spec, sizeof spec, "%s/s", dir);
        struct sockaddr_un a = addr(spec);
        listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (bind(listener, (struct sockaddr *)&a, sizeof a) < 0 || listen(listener, 1) < 0)
            die("bind");
    } else if (!strcmp(mech, "shm-futex") || !strcmp(mech, "shm-spin")) {
        snprintf(shm_name, sizeof shm_name, "/ipclab-twins-%d", getpid());
        int fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, HDR + 2 * MAX_SIZE) < 0)
            die("shm_open");
        seg = mmap(NULL, HDR + 2 * MAX_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (seg == MAP_FAILED)
            die("mmap");
        close(fd);
        snprintf(spec, sizeof spec, "%s", shm_name);
    } else {
        fprintf(stderr, "twins: unknown mechanism %s\n", mech);
        rmdir(dir);
        return 2;
    }
    int rep[2];
    if (pipe2(rep, O_CLOEXEC) < 0)
        die("pipe2");
    char sz[32], kk[32], cpus[8], repfd[8];
    snprintf(sz, sizeof sz, "%zu", size);
    snprintf(kk, sizeof kk, "%ld", k);
    snprintf(cpus, sizeof cpus, "%d", cpu < 0 ? -1 : cpu == 0 ? 0 : 1);
    snprintf(repfd, sizeof repfd, "%d", rep[1]);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        fcntl(rep[1], F_SETFD, 0);
        char *args[] = { "/proc/self/exe", "--peer", (char *)mech, sz, kk, spec, cpus, repfd, NULL };
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(rep[1]);
    if (peer_fds[0] >= 0)
        close(peer_fds[0]), close(peer_fds[1]);
    char ready[8];
    if (read(rep[0], ready, 6) != 6)
        die("peer not ready");
    if (!strcmp(mech, "fifo")) {
        char p[4200];
        snprintf(p, sizeof p, "%s/ping", dir);
        if ((wr = open(p, O_WRONLY | O_CLOEXEC)) < 0)
            die("open ping");
        snprintf(p, sizeof p, "%s/pong", dir);
        if ((rd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
            die("open pong");
    } else if (listener >= 0) {
        rd = wr = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (rd < 0)
            die("accept");
    }
    if (shm_name[0])
        shm_unlink(shm_name);
    if (is("signal"))
        sig_to = pid;
    if (is("posix-mq")) {
        /* Both ends are open now: the names can go. */
        char a[64], b[64];
        sscanf(spec, "%63[^,],%63s", a, b);
        mq_unlink(a), mq_unlink(b);
    }
    unsigned char *out = calloc(1, size), *back = malloc(size);
    uint64_t *rtt = malloc(k * sizeof *rtt);
    for (long i = 0; i < warmup(); i++) {
        fill(out, i);
        send_msg(out);
        recv_msg(back);
        check(back, i);
    }
    for (long i = 0; i < k; i += batch) {
        long n = k - i < batch ? k - i : batch;
        uint64_t t0 = now_ns();
        for (long j = i; j < i + n; j++) {
            fill(out, j);
            send_msg(out);
            recv_msg(back);
            check(back, j);
        }
        uint64_t per = (now_ns() - t0) / (uint64_t)n;
        for (long j = i; j < i + n; j++)
            rtt[j] = per;
    }
    int st;
    waitpid(pid, &st, 0);
    if (msq >= 0)
        msgctl(msq, IPC_RMID, NULL);
    char p[4200];
    snprintf(p, sizeof p, "%s/ping", dir), unlink(p);
    snprintf(p, sizeof p, "%s/pong", dir), unlink(p);
    snprintf(p, sizeof p, "%s/s", dir), unlink(p);
    snprintf(p, sizeof p, "%s/data", dir), unlink(p);
    rmdir(dir);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) {
        fprintf(stderr, "twins %s: the peer failed\n", mech);
        return 1;
    }
    qsort(rtt, k, sizeof *rtt, cmp);
    printf("%llu %llu %llu %llu\n", (unsigned long long)rtt[0],
           (unsigned long long)rtt[(size_t)((k - 1) * 0.5 + 0.5)],
           (unsigned long long)rtt[(size_t)((k - 1) * 0.99 + 0.5)], (unsigned long long)rtt[k - 1]);
    return 0;
}
