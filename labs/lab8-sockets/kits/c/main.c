/* Lab 8 starter: a UDP and a TCP server and client, one program, the role as first argument.
 *
 * The lab text: labs/lab8-sockets/README.md (the grading contract is at its end).
 * Build and run:  make && ./main udp-server --port 9875 &  ./main udp-client --host 127.0.0.1 --port 9875 --message hi
 * Grade:          make grade
 * Do the TODOs in order: each one not done stops the program and says which it is.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *role;
static const char *host = "127.0.0.1";
static const char *message = "hello";
static int port = -1;

__attribute__((unused)) static void todo(const char *tag, const char *what)
{
    fprintf(stderr, "TODO(%s) not done: %s (see README.md)\n", tag, what);
    exit(1);
}

/* A socket of `type` bound to every address on `port`; a port in use (or refused) is one
 * line on stderr and exit status 1. */
static int bound_socket(int type)
{
    int s = socket(AF_INET, type, 0);
    if (s < 0) {
        perror("socket");
        exit(1);
    }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_ANY) };
    (void)a;
    /* TODO(lab8.1): bind(s, &a); on failure print "ROLE: bind port P: strerror(errno)" on stderr, close(s), exit(1) | fr: bind(s, &a) ; en cas d'échec afficher « ROLE: bind port P: strerror(errno) » sur stderr, close(s), exit(1) */
    todo("lab8.1", "bind the port, or say why not in one line");
    /* END TODO(lab8.1) */
    return s;
}

/* The server's address: a name (h2) or a dotted address, as getaddrinfo resolves it. */
static struct sockaddr_in server_address(void)
{
    struct addrinfo hints = { .ai_family = AF_INET }, *r;
    int e = getaddrinfo(host, NULL, &hints, &r);
    if (e) {
        fprintf(stderr, "%s: %s: %s\n", role, host, gai_strerror(e));
        exit(1);
    }
    struct sockaddr_in a = *(struct sockaddr_in *)r->ai_addr;
    freeaddrinfo(r);
    a.sin_port = htons(port);
    return a;
}

static void udp_server(void)
{
    int s = bound_socket(SOCK_DGRAM);
    char buf[2048];
    struct sockaddr_in src;
    socklen_t len;
    (void)s, (void)buf, (void)src, (void)len;
    /* TODO(lab8.2): loop: len = sizeof src; n = recvfrom(s, buf, ...); print the text and the source "IP:PORT" (inet_ntoa, ntohs; fflush), sendto(s, "OK", 2, 0, &src, len) | fr: boucle : len = sizeof src ; n = recvfrom(s, buf, ...) ; afficher le texte et la source « IP:PORT » (inet_ntoa, ntohs ; fflush), sendto(s, "OK", 2, 0, &src, len) */
    todo("lab8.2", "receive, show the source, answer OK");
    /* END TODO(lab8.2) */
}

static void udp_client(void)
{
    struct sockaddr_in a = server_address();
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    char buf[2048];
    (void)a, (void)s, (void)buf;
    /* TODO(lab8.3): sendto the message to a, wait for the answer (SO_RCVTIMEO 5 s, recvfrom), print it, close | fr: sendto du message vers a, attendre la réponse (SO_RCVTIMEO 5 s, recvfrom), l'afficher, fermer */
    todo("lab8.3", "send a datagram, print the answer");
    /* END TODO(lab8.3) */
}

/* One client: a line in, OK out, until it closes (recv returns 0) or vanishes (ECONNRESET). */
__attribute__((unused)) static void serve(int c, const char *who)
{
    char buf[1024], line[4096];
    size_t have = 0;
    (void)c, (void)who, (void)buf, (void)line, (void)have;
    /* TODO(lab8.4): loop on recv(c, buf, ...): 0 means the client closed, < 0 it vanished: close(c), return; append to line; for each whole line print it and send "OK\n" | fr: boucle sur recv(c, buf, ...) : 0 veut dire que le client a fermé, < 0 qu'il a disparu : close(c), rendre ; ajouter à line ; pour chaque ligne entière l'afficher et envoyer « OK\n » */
    todo("lab8.4", "serve one client until it closes");
    /* END TODO(lab8.4) */
}

static void tcp_server(void)
{
    int s = bound_socket(SOCK_STREAM);
    (void)s;
    /* TODO(lab8.5): listen(s, 5), then forever: c = accept(s, &src, &len); serve(c, "IP:PORT" of src) | fr: listen(s, 5), puis sans fin : c = accept(s, &src, &len) ; serve(c, « IP:PORT » de src) */
    todo("lab8.5", "listen and accept");
    /* END TODO(lab8.5) */
}

static void tcp_client(void)
{
    struct sockaddr_in a = server_address();
    int s = socket(AF_INET, SOCK_STREAM, 0);
    char buf[1024];
    (void)a, (void)s, (void)buf;
    /* TODO(lab8.6): connect, send the message and "\n", recv until a newline (or 0), print the answer, close first | fr: connect, envoyer le message et « \n », recv jusqu'à un saut de ligne (ou 0), afficher la réponse, fermer en premier */
    todo("lab8.6", "connect, send a line, print the answer, close");
    /* END TODO(lab8.6) */
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' },
        { "host", required_argument, NULL, 'h' },
        { "message", required_argument, NULL, 'm' },
        { 0 },
    };
    if (argc < 2) {
        fprintf(stderr, "usage: %s udp-server|udp-client|tcp-server|tcp-client --port P [--host H --message M]\n", argv[0]);
        return 2;
    }
    role = argv[1];
    optind = 2;
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (o == 'p')
            port = atoi(optarg);
        else if (o == 'h')
            host = optarg;
        else if (o == 'm')
            message = optarg;
        else
            return 2;
    }
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "%s: --port 1..65535 is required\n", role);
        return 2;
    }
    if (!strcmp(role, "udp-server"))
        udp_server();
    else if (!strcmp(role, "udp-client"))
        udp_client();
    else if (!strcmp(role, "tcp-server"))
        tcp_server();
    else if (!strcmp(role, "tcp-client"))
        tcp_client();
    else {
        fprintf(stderr, "unknown role %s\n", role);
        return 2;
    }
    return 0;
}
