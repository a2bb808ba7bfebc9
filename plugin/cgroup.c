/*
 * portowner: /proc/PID/cgroup and what a cgroup path's naming shows.
 *
 * Sources of the patterns (docs/design.md, "Which service, which container"):
 * - units: systemd src/basic/cgroup-util.c, cg_path_get_unit() (skip the
 *   slices, the next component is the unit) and cg_path_get_user_unit()
 *   (the same inside user@UID.service); unit names as unit_name_is_valid()
 *   of src/basic/unit-name.c accepts them (at most 255 bytes of
 *   [A-Za-z0-9:_.\-@], a known type suffix);
 * - Docker: with the systemd cgroup driver runc names the scope
 *   "<prefix>-<id>.scope" and Docker's prefix is "docker" (runc
 *   docs/systemd.md, "systemd unit name and placement"); with the cgroupfs
 *   driver the cgroup is "<cgroup-parent>/<id>", parent "/docker" by
 *   default (dockerd --cgroup-parent);
 * - Podman: "libpod-<id>.scope" (systemd driver, conmon is in
 *   "libpod-conmon-<id>.scope"), "/libpod_parent/libpod-<id>" (cgroupfs);
 * - containerd's CRI plugin with SystemdCgroup: "cri-containerd-<id>.scope";
 * - CRI-O: "crio-<id>.scope" (conmon: "crio-conmon-<id>.scope"), cgroupfs
 *   "crio-<id>";
 * - Kubernetes pods (kubelet pkg/kubelet/cm cgroup naming): systemd driver
 *   "kubepods[-<qos>]-pod<uid>.slice" with the uid's '-' written '_' (a
 *   '-' in a slice name means a parent slice), cgroupfs driver
 *   "/kubepods[/<qos>]/pod<uid>", and a container of the cgroupfs driver
 *   is "<pod cgroup>/<id>" whatever the runtime.
 */
#include "portowner/cgroup.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *copy_path(const char *p, size_t n) {
  char *s = malloc(n + 1);

  if (!s)
    return NULL;
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

/* 1 when the controllers field (n bytes) lists name=systemd. */
static int lists_name_systemd(const char *c, size_t n) {
  static const char want[] = "name=systemd";
  const size_t wl = sizeof(want) - 1;
  size_t i = 0;

  while (i <= n) {
    size_t j = i;
    while (j < n && c[j] != ',')
      j++;
    if (j - i == wl && memcmp(c + i, want, wl) == 0)
      return 1;
    i = j + 1;
  }
  return 0;
}

int po_cgroup_parse(const char *text, size_t len, struct po_cgroup_paths *out) {
  size_t pos = 0;

  out->v2 = NULL;
  out->systemd = NULL;
  while (pos < len) {
    const char *line = text + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t ll = nl ? (size_t)(nl - line) : len - pos;
    const char *c1, *c2;
    size_t idl, cl, pl;
    char **slot = NULL;

    pos += ll + (nl ? 1 : 0);
    if (memchr(line, '\0', ll))
      continue;
    c1 = memchr(line, ':', ll);
    if (!c1)
      continue;
    idl = (size_t)(c1 - line);
    c2 = memchr(c1 + 1, ':', ll - idl - 1);
    if (!c2)
      continue;
    cl = (size_t)(c2 - c1 - 1);
    pl = ll - idl - 1 - cl - 1;
    if (pl == 0 || c2[1] != '/' || pl >= PO_CGROUP_PATH_MAX)
      continue;
    if (idl == 1 && line[0] == '0' && cl == 0)
      slot = &out->v2;
    else if (lists_name_systemd(c1 + 1, cl))
      slot = &out->systemd;
    if (!slot || *slot)
      continue;
    *slot = copy_path(c2 + 1, pl);
    if (!*slot) {
      po_cgroup_paths_release(out);
      return -ENOMEM;
    }
  }
  return 0;
}

void po_cgroup_paths_release(struct po_cgroup_paths *p) {
  if (!p)
    return;
  free(p->v2);
  free(p->systemd);
  p->v2 = NULL;
  p->systemd = NULL;
}

/* ---- unit names (systemd unit_name_is_valid()) ----------------------------
 */

static int unit_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == ':' || c == '_' || c == '.' ||
         c == '-' || c == '\\' || c == '@';
}

static int has_suffix(const char *s, size_t n, const char *suf) {
  size_t sl = strlen(suf);
  return n >= sl && memcmp(s + n - sl, suf, sl) == 0;
}

/* 1 when the n bytes at s are a unit name systemd accepts: a name, with
 * at most one '@' (not first), then '.' and a unit type. */
static int valid_unit(const char *s, size_t n) {
  static const char *const types[] = {
      ".service", ".socket", ".target", ".device", ".mount", ".automount",
      ".swap",    ".timer",  ".path",   ".slice",  ".scope",
  };
  size_t ats = 0, tl = 0;

  if (n == 0 || n >= PO_UNIT_NAME_MAX || s[0] == '@' || s[0] == '.')
    return 0;
  for (size_t i = 0; i < n; i++) {
    if (!unit_char((unsigned char)s[i]))
      return 0;
    ats += s[i] == '@';
  }
  if (ats > 1)
    return 0;
  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
    if (has_suffix(s, n, types[i]))
      tl = strlen(types[i]);
  /* A name before the type; a template ("foo@.service") is no cgroup. */
  if (tl == 0 || tl >= n || s[n - tl - 1] == '@')
    return 0;
  return 1;
}

static int valid_slice(const char *s, size_t n) {
  return has_suffix(s, n, ".slice") && !memchr(s, '@', n) && valid_unit(s, n);
}

/* The path component at *pos (slashes skipped) of a path of len bytes:
 * sets *c and returns its length, 0 at the end. */
static size_t next_component(const char *path, size_t len, size_t *pos,
                             const char **c) {
  size_t i = *pos, start;

  while (i < len && path[i] == '/')
    i++;
  start = i;
  while (i < len && path[i] != '/')
    i++;
  *pos = i;
  *c = path + start;
  return i - start;
}

/* cg_unescape(): a leading '_' escapes a name that could be mistaken for a
 * kernel file. */
static void unescape(const char **c, size_t *n) {
  if (*n > 0 && (*c)[0] == '_') {
    (*c)++;
    (*n)--;
  }
}

/* cg_path_get_unit() from *pos: skip slices, then the unit (into unit,
 * PO_UNIT_NAME_MAX bytes). Returns 1 when found. */
static int unit_from(const char *path, size_t len, size_t *pos, char *unit) {
  for (;;) {
    const char *c;
    size_t n = next_component(path, len, pos, &c);

    if (n == 0)
      return 0;
    unescape(&c, &n);
    if (valid_slice(c, n))
      continue;
    if (!valid_unit(c, n))
      return 0;
    memcpy(unit, c, n);
    unit[n] = '\0';
    return 1;
  }
}

/* user@UID.service, UID decimal. */
static int is_user_manager(const char *u) {
  size_t n = strlen(u);

  if (strncmp(u, "user@", 5) != 0 || !has_suffix(u, n, ".service") ||
      n == 5 + 8)
    return 0;
  for (size_t i = 5; i < n - 8; i++)
    if (u[i] < '0' || u[i] > '9')
      return 0;
  return 1;
}

/* ---- containers and pods --------------------------------------------------
 */

static int lower_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return 1;
}

/* c (n bytes) is prefix + 64 hex + suffix: copies the id into id. */
static int id_between(const char *c, size_t n, const char *prefix,
                      const char *suffix, char *id) {
  size_t pl = strlen(prefix), sl = strlen(suffix);

  if (n != pl + PO_CONTAINER_ID_LEN + sl || memcmp(c, prefix, pl) != 0 ||
      memcmp(c + n - sl, suffix, sl) != 0 ||
      !lower_hex(c + pl, PO_CONTAINER_ID_LEN))
    return 0;
  memcpy(id, c + pl, PO_CONTAINER_ID_LEN);
  id[PO_CONTAINER_ID_LEN] = '\0';
  return 1;
}

/* A pod uid of 36 bytes at s, with sep ('-' or '_') between the groups of
 * 8-4-4-4-12 hex digits: copies it with '-' into uid. */
static int pod_uid(const char *s, size_t n, char sep, char *uid) {
  if (n != PO_POD_UID_LEN)
    return 0;
  for (size_t i = 0; i < n; i++) {
    int dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != sep : !lower_hex(s + i, 1))
      return 0;
    uid[i] = dash ? '-' : s[i];
  }
  uid[n] = '\0';
  return 1;
}

/* The systemd driver's pod slice: kubepods-pod<uid>.slice or
 * kubepods-<qos>-pod<uid>.slice (uid with '_'). */
static int pod_slice(const char *c, size_t n, char *uid) {
  const size_t tail = 3 + PO_POD_UID_LEN + 6; /* "pod" uid ".slice" */

  if (n < 9 + tail || memcmp(c, "kubepods-", 9) != 0 ||
      !has_suffix(c, n, ".slice") || memcmp(c + n - tail, "pod", 3) != 0 ||
      c[n - tail - 1] != '-')
    return 0;
  return pod_uid(c + n - tail + 3, PO_POD_UID_LEN, '_', uid);
}

static void classify_containers(const char *path, size_t len,
                                struct po_cgroup_info *info) {
  size_t pos = 0;
  int kubepods = 0, in_pod = 0;
  const char *prev = NULL;
  size_t prevn = 0;

  for (;;) {
    const char *c;
    size_t n = next_component(path, len, &pos, &c);
    char id[PO_CONTAINER_ID_LEN + 1], uid[PO_POD_UID_LEN + 1];
    enum po_runtime rt = PO_RUNTIME_NONE;

    if (n == 0)
      break;
    if (id_between(c, n, "docker-", ".scope", id) ||
        (prev && prevn == 6 && memcmp(prev, "docker", 6) == 0 &&
         id_between(c, n, "", "", id)))
      rt = PO_RUNTIME_DOCKER;
    else if (id_between(c, n, "libpod-", ".scope", id) ||
             id_between(c, n, "libpod-", "", id))
      rt = PO_RUNTIME_PODMAN;
    else if (id_between(c, n, "cri-containerd-", ".scope", id))
      rt = PO_RUNTIME_CONTAINERD;
    else if (id_between(c, n, "crio-", ".scope", id) ||
             id_between(c, n, "crio-", "", id))
      rt = PO_RUNTIME_CRIO;
    else if (in_pod && id_between(c, n, "", "", id))
      rt = PO_RUNTIME_CRI;
    in_pod = 0;
    if (rt != PO_RUNTIME_NONE) {
      info->runtime = rt;
      memcpy(info->container, id, sizeof(id));
    } else if (pod_slice(c, n, uid) ||
               (kubepods && n == 3 + PO_POD_UID_LEN &&
                memcmp(c, "pod", 3) == 0 &&
                pod_uid(c + 3, PO_POD_UID_LEN, '-', uid))) {
      memcpy(info->pod, uid, sizeof(uid));
      in_pod = 1;
    }
    if ((n == 8 && memcmp(c, "kubepods", 8) == 0) ||
        (n >= 14 && memcmp(c, "kubepods", 8) == 0 &&
         has_suffix(c, n, ".slice")))
      kubepods = 1;
    prev = c;
    prevn = n;
  }
}

void po_cgroup_classify(const char *path, size_t len,
                        struct po_cgroup_info *info) {
  size_t pos = 0;

  memset(info, 0, sizeof(*info));
  if (!path || len == 0 || len >= PO_CGROUP_PATH_MAX || memchr(path, '\0', len))
    return;
  if (unit_from(path, len, &pos, info->unit) && is_user_manager(info->unit) &&
      !unit_from(path, len, &pos, info->user_unit))
    info->user_unit[0] = '\0';
  classify_containers(path, len, info);
}

void po_cgroup_classify_paths(const struct po_cgroup_paths *p,
                              struct po_cgroup_info *info) {
  struct po_cgroup_info v1;

  memset(info, 0, sizeof(*info));
  if (p->v2)
    po_cgroup_classify(p->v2, strlen(p->v2), info);
  if (!p->systemd)
    return;
  po_cgroup_classify(p->systemd, strlen(p->systemd), &v1);
  if (!info->unit[0]) {
    memcpy(info->unit, v1.unit, sizeof(v1.unit));
    memcpy(info->user_unit, v1.user_unit, sizeof(v1.user_unit));
  }
  if (info->runtime == PO_RUNTIME_NONE) {
    info->runtime = v1.runtime;
    memcpy(info->container, v1.container, sizeof(v1.container));
  }
  if (!info->pod[0])
    memcpy(info->pod, v1.pod, sizeof(v1.pod));
}

const char *po_runtime_name(enum po_runtime r) {
  switch (r) {
  case PO_RUNTIME_DOCKER:
    return "docker";
  case PO_RUNTIME_PODMAN:
    return "podman";
  case PO_RUNTIME_CONTAINERD:
    return "containerd";
  case PO_RUNTIME_CRIO:
    return "crio";
  case PO_RUNTIME_CRI:
    return "cri";
  case PO_RUNTIME_NONE:
    break;
  }
  return "";
}

char *po_cgroup_label(const struct po_cgroup_info *info, char *buf,
                      size_t size) {
  if (size == 0)
    return buf;
  if (info->runtime != PO_RUNTIME_NONE)
    snprintf(buf, size, "%s:%.*s", po_runtime_name(info->runtime),
             PO_CONTAINER_SHORT_LEN, info->container);
  else if (info->user_unit[0])
    snprintf(buf, size, "%s/%s", info->unit, info->user_unit);
  else
    snprintf(buf, size, "%s", info->unit);
  return buf;
}

int po_cgroup_units_match(const struct po_cgroup_paths *p, char *const *globs,
                          size_t n) {
  struct po_cgroup_info info;
  char label[2 * PO_UNIT_NAME_MAX];
  int ok = 0;

  po_cgroup_classify_paths(p, &info);
  po_cgroup_label(&info, label, sizeof(label));
  for (size_t i = 0; i < n && !ok; i++)
    ok = (info.unit[0] && fnmatch(globs[i], info.unit, 0) == 0) ||
         (info.user_unit[0] && fnmatch(globs[i], info.user_unit, 0) == 0) ||
         (label[0] && fnmatch(globs[i], label, 0) == 0);
  return ok;
}
