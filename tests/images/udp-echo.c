/* udp-echo: the UDP peer for orkops' service tests (busybox has no UDP server or client).
 *   udp-echo serve PORT             answer every datagram with "HOSTNAME PAYLOAD"
 *   udp-echo ask HOST PORT MESSAGE  send MESSAGE, print the answer; exit 1 after 2 s of
 *                                   silence or on an ICMP error (port unreachable)
 * Built statically by scripts/build-test-images. */
#include <arpa/inet.h>
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
        perror("udp-echo: bind");
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

static int ask(const char *host, int port, const char *msg) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "udp-echo: %s is not an IPv4 address\n", host);
        return 2;
    }
    struct timeval tv = {.tv_sec = 2};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0 || send(s, msg, strlen(msg), 0) < 0) {
        fprintf(stderr, "udp-echo: send: %s\n", strerror(errno));
        return 1;
    }
    char buf[2048];
    ssize_t n = recv(s, buf, sizeof buf - 1, 0);
    if (n < 0) {
        fprintf(stderr, "udp-echo: no answer: %s\n", strerror(errno));
        return 1;
    }
    buf[n] = 0;
    printf("%s\n", buf);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "serve"))
        return serve(atoi(argv[2]));
    if (argc == 5 && !strcmp(argv[1], "ask"))
        return ask(argv[2], atoi(argv[3]), argv[4]);
    fprintf(stderr, "usage: udp-echo serve PORT | udp-echo ask HOST PORT MESSAGE\n");
    return 2;
}
