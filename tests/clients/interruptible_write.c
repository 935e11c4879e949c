/* A writer with a SIGINT handler (no SA_RESTART): one write(2) of argv[2] to argv[1], then
 * "write: ok N" or "write: <errno name>" on stdout. With a handler a signal interrupts a blocked
 * write with EINTR instead of killing the process, as an interactive tool would see it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_signal(int sig) { (void)sig; }

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s FILE TEXT\n", argv[0]);
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: the write returns EINTR */
  sigaction(SIGINT, &sa, NULL);
  int fd = open(argv[1], O_WRONLY);
  if (fd < 0) {
    printf("open: %s\n", strerrorname_np(errno));
    return 1;
  }
  ssize_t n = write(fd, argv[2], strlen(argv[2]));
  if (n < 0) printf("write: %s\n", strerrorname_np(errno));
  else printf("write: ok %zd\n", n);
  fflush(stdout);
  close(fd);
  return n < 0;
}
