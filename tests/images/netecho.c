/* netecho: the echo peers of orkops' service tests and benchmarks (busybox has no UDP server
 * or client, and its `nc -ll -e cat` listens with a backlog of 2 and forks per connection).
 *   netecho udp PORT               answer every datagram with "HOSTNAME PAYLOAD"
 *   netecho tcp PORT               echo every connection's bytes back (a thread per connection,
 *                                  listen backlog 4096)
 *   netecho ask HOST PORT MESSAGE  send MESSAGE over UDP, print the answer; exit 1 after 2 s
 *                                  of silence or on an ICMP error (port unreachable)
 * Built statically by scripts/build-test-images. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int serve(int port) {
    char host[256] = {0}, buf[2048], out[2400];
    gethostname(host, sizeof host - 1);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("netecho: bind");
        return 1;
    }
    for (;;) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            continue;
        buf[n] = 0;
        int m = snprintf(out, sizeof out, "%s %s", host, buf);
        sendto(s, out, m, 0, (struct sockaddr *)&from, fl);
    }
}

static void *echo_conn(void *arg) {
    int c = (int)(long)arg;
    char buf[65536];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(c, buf + off, n - off);
            if (w <= 0)
                goto done;
            off += w;
        }
    }
done:
    close(c);
    return NULL;
}

static int tcp_serve(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 4096) < 0) {
        perror("netecho: listen");
        return 1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_t t;
        if (pthread_create(&t, &attr, echo_conn, (void *)(long)c) != 0)
            close(c);
    }
}

static int ask(const char *host, int port, const char *msg) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "netecho: %s is not an IPv4 address\n", host);
        return 2;
    }
    struct timeval tv = {.tv_sec = 2};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0 || send(s, msg, strlen(msg), 0) < 0) {
        fprintf(stderr, "netecho: send: %s\n", strerror(errno));
        return 1;
    }
    char buf[2048];
    ssize_t n = recv(s, buf, sizeof buf - 1, 0);
    if (n < 0) {
        fprintf(stderr, "netecho: no answer: %s\n", strerror(errno));
        return 1;
    }
    buf[n] = 0;
    printf("%s\n", buf);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "udp"))
        return serve(atoi(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "tcp"))
        return tcp_serve(atoi(argv[2]));
    if (argc == 5 && !strcmp(argv[1], "ask"))
        return ask(argv[2], atoi(argv[3]), argv[4]);
    fprintf(stderr, "usage: netecho udp PORT | netecho tcp PORT | netecho ask HOST PORT MESSAGE\n");
    return 2;
}
