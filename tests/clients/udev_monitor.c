/* udev_monitor: a minimal real libudev consumer of "udev"-group uevents, for apemu's tests.
 *
 * Usage: udev_monitor [--count N] [--timeout-ms T] [--subsystem S] [--tag T] [--properties]
 *
 * Creates udev_monitor_new_from_netlink(udev, "udev") (optionally with a subsystem and a tag
 * filter, which libudev turns into a BPF program over the message header's hashes), enables
 * receiving, prints "READY" once listening, then one line per received device:
 *   ACTION DEVPATH SUBSYSTEM SEQNUM DRIVER   (DRIVER is "-" when absent)
 * followed, with --properties, by "  KEY=VALUE" lines for every property.
 * Exit status: 0 after N devices (N = 1 by default), 1 on timeout (T < 0 waits forever, the
 * default), 2 on usage or setup errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <libudev.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int usage(void) {
  fprintf(stderr, "usage: udev_monitor [--count N] [--timeout-ms T] [--subsystem S] [--tag T] "
                  "[--properties]\n");
  return 2;
}

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

/* Filters and binding. Returns 0 or the exit status 2. */
static int setup(struct udev_monitor *mon, const char *subsystem, const char *tag) {
  if (!mon) {
    perror("udev_monitor_new_from_netlink");
    return 2;
  }
  if (subsystem && udev_monitor_filter_add_match_subsystem_devtype(mon, subsystem, NULL) < 0) {
    fprintf(stderr, "cannot add subsystem filter\n");
    return 2;
  }
  if (tag && udev_monitor_filter_add_match_tag(mon, tag) < 0) {
    fprintf(stderr, "cannot add tag filter\n");
    return 2;
  }
  int r = udev_monitor_enable_receiving(mon);
  if (r < 0) {
    fprintf(stderr, "udev_monitor_enable_receiving: %s\n", strerror(-r));
    return 2;
  }
  return 0;
}

static void print_device(struct udev_device *dev, int properties) {
  printf("%s %s %s %llu %s\n", or_dash(udev_device_get_action(dev)),
         or_dash(udev_device_get_devpath(dev)), or_dash(udev_device_get_subsystem(dev)),
         udev_device_get_seqnum(dev), or_dash(udev_device_get_property_value(dev, "DRIVER")));
  if (properties) {
    struct udev_list_entry *e;
    udev_list_entry_foreach(e, udev_device_get_properties_list_entry(dev)) {
      printf("  %s=%s\n", udev_list_entry_get_name(e), or_dash(udev_list_entry_get_value(e)));
    }
  }
  fflush(stdout);
}

/* Receives `count` devices. Returns the exit status: 0, 1 on timeout, 2 on poll errors. */
static int monitor(struct udev_monitor *mon, long count, long long timeout_ms, int properties) {
  const long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  struct pollfd pfd = {.fd = udev_monitor_get_fd(mon), .events = POLLIN};
  long received = 0;
  while (received < count) {
    int wait = -1;
    if (deadline >= 0) {
      long long left = deadline - now_ms();
      if (left <= 0) {
        fprintf(stderr, "timeout after %ld of %ld devices\n", received, count);
        return 1;
      }
      wait = (int)left;
    }
    int n = poll(&pfd, 1, wait);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("poll");
      return 2;
    }
    if (n == 0) continue; /* the deadline check above reports the timeout */
    /* NULL: filtered out or rejected by libudev (errno EAGAIN), or ENOBUFS after overflow. */
    struct udev_device *dev = udev_monitor_receive_device(mon);
    if (!dev) continue;
    print_device(dev, properties);
    udev_device_unref(dev);
    ++received;
  }
  return 0;
}

int main(int argc, char **argv) {
  long count = 1;
  long long timeout_ms = -1;
  const char *subsystem = NULL;
  const char *tag = NULL;
  int properties = 0;

  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
      count = strtol(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
      timeout_ms = strtoll(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--subsystem") == 0 && i + 1 < argc)
      subsystem = argv[++i];
    else if (strcmp(argv[i], "--tag") == 0 && i + 1 < argc)
      tag = argv[++i];
    else if (strcmp(argv[i], "--properties") == 0)
      properties = 1;
    else
      return usage();
  }
  if (count < 1) return usage();

  struct udev *udev = udev_new();
  if (!udev) {
    perror("udev_new");
    return 2;
  }
  struct udev_monitor *mon = udev_monitor_new_from_netlink(udev, "udev");
  int status = setup(mon, subsystem, tag);
  if (status == 0) {
    printf("READY\n");
    fflush(stdout);
    status = monitor(mon, count, timeout_ms, properties);
  }
  udev_monitor_unref(mon);
  udev_unref(udev);
  return status;
}
