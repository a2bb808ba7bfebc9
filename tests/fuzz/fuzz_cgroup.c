/*
 * Fuzz target: the /proc/PID/cgroup parser and the cgroup path classifier
 * (plugin/cgroup.c), on the raw input (any bytes, NULs included).
 *
 * Invariants: po_cgroup_parse() returns 0 (-ENOMEM only when out of
 * memory); each path it gives starts with '/', holds no newline and no
 * NUL, is shorter than PO_CGROUP_PATH_MAX, and is the tail of a line of
 * the input that starts with "0::" (v2) or whose controllers list
 * name=systemd; classifying any path, and the input itself as a path,
 * gives a unit and a user unit that are components of that path (a leading
 * '_' removed) and fit, a container id of 64 lowercase hex digits that
 * appears in the path, a runtime exactly when there is an id, a pod uid of
 * 8-4-4-4-12 hex digits, a user unit only inside user@UID.service; the
 * label fits any buffer and is NUL-terminated.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "portowner/cgroup.h"
#include "fuzz.h"

#define MAX_INPUT 65536

/* 1 when the path is the tail of a line of the input with the right head. */
static int from_line(const uint8_t *data, size_t size, const char *path,
                     int v2) {
  size_t pl = strlen(path);

  for (size_t pos = 0; pos < size;) {
    const uint8_t *nl = memchr(data + pos, '\n', size - pos);
    size_t ll = nl ? (size_t)(nl - (data + pos)) : size - pos;
    const char *line = (const char *)data + pos;

    pos += ll + 1;
    if (ll < pl || memcmp(line + ll - pl, path, pl) != 0 || ll == pl ||
        line[ll - pl - 1] != ':')
      continue;
    if (v2 && ll == pl + 3 && memcmp(line, "0::", 3) == 0)
      return 1;
    if (!v2 && memmem(line, ll - pl, "name=systemd", 12))
      return 1;
  }
  return 0;
}

static int component_of(const char *path, size_t len, const char *name) {
  size_t nl = strlen(name);

  for (size_t i = 0; i + nl <= len; i++) {
    size_t start = i;
    if (i > 0 && path[i - 1] != '/')
      continue;
    if (path[start] == '_')
      start++;
    if (start + nl <= len && memcmp(path + start, name, nl) == 0 &&
        (start + nl == len || path[start + nl] == '/'))
      return 1;
  }
  return 0;
}

static void check_info(const char *path, size_t len) {
  struct po_cgroup_info info;
  char label[40], big[1024];

  po_cgroup_classify(path, len, &info);
  FUZZ_CHECK(strnlen(info.unit, sizeof(info.unit)) < sizeof(info.unit));
  FUZZ_CHECK(strnlen(info.user_unit, sizeof(info.user_unit)) <
             sizeof(info.user_unit));
  FUZZ_CHECK(!info.unit[0] || component_of(path, len, info.unit));
  FUZZ_CHECK(!info.user_unit[0] || component_of(path, len, info.user_unit));
  FUZZ_CHECK(!info.user_unit[0] || strncmp(info.unit, "user@", 5) == 0);
  FUZZ_CHECK((info.runtime == PO_RUNTIME_NONE) == !info.container[0]);
  if (info.container[0]) {
    FUZZ_CHECK(strlen(info.container) == PO_CONTAINER_ID_LEN);
    for (size_t i = 0; i < PO_CONTAINER_ID_LEN; i++)
      FUZZ_CHECK((info.container[i] >= '0' && info.container[i] <= '9') ||
                 (info.container[i] >= 'a' && info.container[i] <= 'f'));
    FUZZ_CHECK(memmem(path, len, info.container, PO_CONTAINER_ID_LEN));
    FUZZ_CHECK(po_runtime_name(info.runtime)[0]);
  }
  if (info.pod[0]) {
    FUZZ_CHECK(strlen(info.pod) == PO_POD_UID_LEN);
    for (size_t i = 0; i < PO_POD_UID_LEN; i++) {
      int dash = i == 8 || i == 13 || i == 18 || i == 23;
      char c = info.pod[i];
      FUZZ_CHECK(dash ? c == '-'
                      : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
    }
  }
  po_cgroup_label(&info, label, sizeof(label));
  FUZZ_CHECK(strnlen(label, sizeof(label)) < sizeof(label));
  po_cgroup_label(&info, big, sizeof(big));
  FUZZ_CHECK(strncmp(label, big, sizeof(label) - 1) == 0);
  FUZZ_CHECK(po_cgroup_label(&info, big, 0) == big);
}

static void check_path(const uint8_t *data, size_t size, const char *p,
                       int v2) {
  if (!p)
    return;
  size_t n = strlen(p);
  FUZZ_CHECK(n > 0 && n < PO_CGROUP_PATH_MAX && p[0] == '/');
  FUZZ_CHECK(!memchr(p, '\n', n));
  FUZZ_CHECK(from_line(data, size, p, v2));
  check_info(p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct po_cgroup_paths p;
  struct po_cgroup_info a, b;
  int err;

  if (size > MAX_INPUT)
    return 0;
  err = po_cgroup_parse((const char *)data, size, &p);
  FUZZ_CHECK(err == 0 || err == -ENOMEM);
  if (err == 0) {
    check_path(data, size, p.v2, 1);
    check_path(data, size, p.systemd, 0);
    po_cgroup_classify_paths(&p, &a);
    /* The v2 path decides what it names. */
    if (p.v2) {
      po_cgroup_classify(p.v2, strlen(p.v2), &b);
      FUZZ_CHECK(!b.unit[0] || strcmp(a.unit, b.unit) == 0);
      FUZZ_CHECK(!b.container[0] || strcmp(a.container, b.container) == 0);
    }
    po_cgroup_paths_release(&p);
  }
  check_info((const char *)data, size);
  return 0;
}
