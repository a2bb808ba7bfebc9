/*
 * portowner: cgroup v2 ids to paths (cgroupid.h).
 */
#include "portowner/cgroupid.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* linux/exportfs.h: the kernfs file handle, the node id as a u64. */
#define PO_FILEID_KERNFS 0xfe
/* Ids kept before the cache starts again. */
#define PO_CGID_MAX 65536

struct entry {
  uint64_t id; /* 0: a free slot (no cgroup has id 0) */
  char *path;  /* NULL: a miss, remembered until the next epoch */
};

struct po_cgroup_ids {
  int mount_fd;   /* the cgroup2 mount, -1 before the first lookup */
  int no_mount;   /* there is none (or it cannot be opened) */
  int no_handles; /* open_by_handle_at() refused: walk instead */
  int walked;     /* walked in this epoch */
  char *mount;    /* its path */
  struct entry *v;
  size_t cap, len; /* cap: a power of two, or 0 */
};

struct po_cgroup_ids *po_cgroup_ids_new(void) {
  struct po_cgroup_ids *c = calloc(1, sizeof(*c));

  if (c)
    c->mount_fd = -1;
  return c;
}

static void clear(struct po_cgroup_ids *c) {
  for (size_t i = 0; i < c->cap; i++)
    free(c->v[i].path);
  free(c->v);
  c->v = NULL;
  c->cap = c->len = 0;
}

void po_cgroup_ids_free(struct po_cgroup_ids *c) {
  if (!c)
    return;
  clear(c);
  if (c->mount_fd >= 0)
    close(c->mount_fd);
  free(c->mount);
  free(c);
}

static size_t slot_of(const struct po_cgroup_ids *c, uint64_t id) {
  size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull) & (c->cap - 1);

  while (c->v[i].id && c->v[i].id != id)
    i = (i + 1) & (c->cap - 1);
  return i;
}

/* Records id -> path (path malloc'd, or NULL for a miss; taken over). */
static int put(struct po_cgroup_ids *c, uint64_t id, char *path) {
  if (c->len >= PO_CGID_MAX)
    clear(c);
  if ((c->len + 1) * 2 > c->cap) {
    size_t ncap = c->cap ? c->cap * 2 : 64;
    struct entry *old = c->v;
    size_t ocap = c->cap;
    struct entry *nv = calloc(ncap, sizeof(*nv));

    if (!nv) {
      free(path);
      return -ENOMEM;
    }
    c->v = nv;
    c->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
      if (old[i].id)
        c->v[slot_of(c, old[i].id)] = old[i];
    free(old);
  }
  size_t i = slot_of(c, id);
  if (c->v[i].id) {
    free(c->v[i].path);
  } else {
    c->v[i].id = id;
    c->len++;
  }
  c->v[i].path = path;
  return 0;
}

/* Undoes the octal escapes of a mountinfo field (\040 for a space). */
static void unescape_octal(char *s) {
  char *w = s;

  for (char *r = s; *r;) {
    if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
        r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
      *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
      r += 4;
    } else {
      *w++ = *r++;
    }
  }
  *w = '\0';
}

/* The first cgroup2 mount of its file system's root, from mountinfo:
 * "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE ...". */
static int find_mount(struct po_cgroup_ids *c) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  char *line = NULL;
  size_t cap = 0;
  int err = -ENOENT;

  if (!f)
    return -errno;
  while (err == -ENOENT && getline(&line, &cap, f) > 0) {
    char *save = NULL, *root, *mnt, *tok;

    if (!strtok_r(line, " \n", &save) || !strtok_r(NULL, " \n", &save) ||
        !strtok_r(NULL, " \n", &save) ||
        !(root = strtok_r(NULL, " \n", &save)) ||
        !(mnt = strtok_r(NULL, " \n", &save)))
      continue;
    while ((tok = strtok_r(NULL, " \n", &save)) && strcmp(tok, "-") != 0)
      ;
    if (!tok || !(tok = strtok_r(NULL, " \n", &save)) ||
        strcmp(tok, "cgroup2") != 0 || strcmp(root, "/") != 0)
      continue;
    unescape_octal(mnt);
    c->mount = strdup(mnt);
    err = c->mount ? 0 : -ENOMEM;
  }
  free(line);
  fclose(f);
  if (err)
    return err;
  c->mount_fd = open(c->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return c->mount_fd < 0 ? -errno : 0;
}

/* The path of a directory under the mount, from the mount's root. */
static char *relative(const struct po_cgroup_ids *c, const char *full) {
  size_t ml = strlen(c->mount);

  if (strcmp(c->mount, "/") == 0)
    return strdup(full);
  if (strncmp(full, c->mount, ml) != 0 || (full[ml] && full[ml] != '/'))
    return NULL;
  return strdup(full[ml] ? full + ml : "/");
}

/* open_by_handle_at() of id. Returns 0 (*path set, NULL when gone),
 * -EPERM (not allowed: walk), -ENOMEM. */
static int by_handle(struct po_cgroup_ids *c, uint64_t id, char **path) {
  union {
    struct file_handle fh;
    char bytes[sizeof(struct file_handle) + sizeof(uint64_t)];
  } h;
  char link[64], target[PATH_MAX];
  ssize_t n;
  int fd;

  *path = NULL;
  memset(&h, 0, sizeof(h));
  h.fh.handle_bytes = sizeof(uint64_t);
  h.fh.handle_type = PO_FILEID_KERNFS;
  memcpy(h.fh.f_handle, &id, sizeof(id));
  fd = open_by_handle_at(c->mount_fd, &h.fh, O_RDONLY | O_CLOEXEC | O_PATH);
  if (fd < 0)
    return errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS ? -EPERM
                                                                    : 0;
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  n = readlink(link, target, sizeof(target) - 1);
  close(fd);
  if (n <= 0)
    return 0;
  target[n] = '\0';
  *path = relative(c, target);
  return 0;
}

/* Deepest cgroup walked (the kernel's default cgroup.max.depth is
 * unlimited; real hierarchies are a dozen deep). */
#define PO_CGID_DEPTH 64

/* Records every directory under dfd (whose path from the mount's root is
 * the len bytes of path, PATH_MAX bytes of room) by inode, depth first. */
static int walk_dir(struct po_cgroup_ids *c, int dfd, char *path, size_t len,
                    int depth) {
  DIR *d;
  struct dirent *e;
  int err = 0;

  if (depth > PO_CGID_DEPTH)
    return 0;
  d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return 0;
  }
  while (!err && (e = readdir(d))) {
    struct stat st;
    size_t nl = strlen(e->d_name);
    int sub;
    char *copy;

    if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 ||
        strcmp(e->d_name, "..") == 0 || len + 1 + nl >= PATH_MAX)
      continue;
    sub = openat(dirfd(d), e->d_name,
                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
      continue;
    if (fstat(sub, &st) != 0) {
      close(sub);
      continue;
    }
    path[len] = '/';
    memcpy(path + len + 1, e->d_name, nl + 1);
    copy = strdup(path);
    err = copy ? put(c, (uint64_t)st.st_ino, copy) : -ENOMEM;
    if (!err)
      err = walk_dir(c, sub, path, len + 1 + nl, depth + 1);
    else
      close(sub);
    path[len] = '\0';
  }
  closedir(d);
  return err;
}

/* Every directory of the mount, by inode (the root as "/"). */
static int walk(struct po_cgroup_ids *c) {
  char path[PATH_MAX] = "";
  struct stat st;
  char *root;
  int dfd, err;

  c->walked = 1;
  if (fstat(c->mount_fd, &st) != 0)
    return -errno;
  root = strdup("/");
  if (!root)
    return -ENOMEM;
  err = put(c, (uint64_t)st.st_ino, root);
  if (err)
    return err;
  dfd = openat(c->mount_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return -errno;
  return walk_dir(c, dfd, path, 0, 1);
}

int po_cgroup_ids_lookup(struct po_cgroup_ids *c, uint64_t id,
                         const char **path) {
  char *p = NULL;
  int err;

  *path = NULL;
  if (id == 0)
    return -ENOENT;
  if (c->mount_fd < 0 && !c->no_mount && find_mount(c) != 0)
    c->no_mount = 1;
  if (c->no_mount)
    return -ENOENT;
  if (c->cap) {
    size_t i = slot_of(c, id);
    if (c->v[i].id == id) {
      *path = c->v[i].path;
      return *path ? 0 : -ENOENT;
    }
  }
  if (!c->no_handles) {
    err = by_handle(c, id, &p);
    if (err == -EPERM)
      c->no_handles = 1;
    else if (err)
      return err;
  }
  if (c->no_handles) {
    if (c->walked) {
      err = put(c, id, NULL);
      return err ? err : -ENOENT;
    }
    err = walk(c);
    if (err == -ENOMEM)
      return err;
    if (c->cap && c->v[slot_of(c, id)].id == id) {
      *path = c->v[slot_of(c, id)].path;
      return 0;
    }
    err = put(c, id, NULL);
    return err ? err : -ENOENT;
  }
  err = put(c, id, p);
  if (err)
    return err;
  *path = c->v[slot_of(c, id)].path;
  return *path ? 0 : -ENOENT;
}

void po_cgroup_ids_new_epoch(struct po_cgroup_ids *c) {
  struct entry *old;
  size_t ocap;

  if (!c)
    return;
  c->walked = 0;
  /* Rebuild without the misses (open addressing has no deletion). put()
   * takes each path over, also when out of memory (that one is read
   * again). */
  old = c->v;
  ocap = c->cap;
  c->v = NULL;
  c->cap = c->len = 0;
  for (size_t i = 0; i < ocap; i++)
    if (old[i].id && old[i].path)
      put(c, old[i].id, old[i].path);
  free(old);
}
