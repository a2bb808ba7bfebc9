/*
 * portowner: which service, which container. Parses the text of
 * /proc/PID/cgroup into the cgroup v2 path and the name=systemd (v1) path,
 * and a cgroup path into the systemd unit, the unit inside a user manager,
 * the container (runtime and id) and the Kubernetes pod uid that its
 * naming shows.
 *
 * Contract: 0 or a negative errno value. Pure functions on bytes: any input
 * (any length, any byte, NULs included) is bounded and never read past its
 * length. Nothing logs or keeps globals.
 */
#ifndef PORTOWNER_CGROUP_H
#define PORTOWNER_CGROUP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest cgroup path kept: a longer line of /proc/PID/cgroup is skipped. */
#define PO_CGROUP_PATH_MAX 4096
/* systemd's UNIT_NAME_MAX: a unit name is at most 255 bytes. */
#define PO_UNIT_NAME_MAX 256
/* A container id as the runtimes write it: 64 lowercase hex digits. */
#define PO_CONTAINER_ID_LEN 64
/* The short id `docker ps` shows. */
#define PO_CONTAINER_SHORT_LEN 12
/* A Kubernetes pod uid: 8-4-4-4-12 hex digits. */
#define PO_POD_UID_LEN 36

struct po_cgroup_paths {
  char *v2;      /* path of the "0::PATH" line (malloc'd), NULL when none */
  char *systemd; /* path of the line whose controllers hold name=systemd
                    (hybrid and legacy hosts; malloc'd), NULL when none */
};

/*
 * Parses len bytes of /proc/PID/cgroup text ("ID:CONTROLLERS:PATH" lines;
 * the path is everything after the second ':' up to the newline, so it may
 * hold ':'). A line with a NUL byte, a path that does not start with '/',
 * or longer than PO_CGROUP_PATH_MAX - 1 bytes is skipped; the first line
 * of each kind wins. Initialises *out. Returns 0 (with both paths NULL
 * when no line gave one) or -ENOMEM (with both NULL).
 */
int po_cgroup_parse(const char *text, size_t len, struct po_cgroup_paths *out);

/* Frees the paths and sets them to NULL. NULL is allowed. */
void po_cgroup_paths_release(struct po_cgroup_paths *p);

/* The runtime a cgroup path's naming shows (po_cgroup_runtime_name()). */
enum po_runtime {
  PO_RUNTIME_NONE = 0,
  PO_RUNTIME_DOCKER,     /* docker-<id>.scope, /docker/<id> */
  PO_RUNTIME_PODMAN,     /* libpod-<id>.scope, libpod-<id> */
  PO_RUNTIME_CONTAINERD, /* cri-containerd-<id>.scope */
  PO_RUNTIME_CRIO,       /* crio-<id>.scope, crio-<id> */
  PO_RUNTIME_CRI,        /* <id> directly in a cgroupfs pod<uid> cgroup:
                            the runtime is not in the name */
};

struct po_cgroup_info {
  char unit[PO_UNIT_NAME_MAX];      /* "nginx.service", "session-3.scope",
                                       "user@1000.service"; "" when none */
  char user_unit[PO_UNIT_NAME_MAX]; /* the unit inside user@UID.service:
                                       "app.service"; "" when none */
  enum po_runtime runtime;          /* PO_RUNTIME_NONE: no container */
  char container[PO_CONTAINER_ID_LEN + 1]; /* the id, "" when none */
  char pod[PO_POD_UID_LEN + 1];            /* pod uid, "" when none */
};

/*
 * What the path (len bytes, e.g. "/system.slice/nginx.service") shows.
 * The unit is systemd's cg_path_get_unit(): leading slice components
 * ("*.slice") are skipped and the next component, when it is a valid unit
 * name and not a slice, is the unit (a leading '_', systemd's escape, is
 * removed); the user unit is cg_path_get_user_unit(): when that unit is
 * user@UID.service, the same rule on the rest of the path. The container
 * and the pod are the innermost components that follow a runtime's naming
 * (docs/design.md, "Which service, which container"). Initialises *info; any
 * path is accepted (nothing found: every field empty).
 */
void po_cgroup_classify(const char *path, size_t len,
                        struct po_cgroup_info *info);

/*
 * Classifies p->v2, and takes each field it leaves empty from p->systemd
 * (a hybrid host keeps both; a container runtime with the cgroupfs driver
 * may name only the v1 hierarchies). Both NULL: every field empty.
 */
void po_cgroup_classify_paths(const struct po_cgroup_paths *p,
                              struct po_cgroup_info *info);

/* "docker", "podman", "containerd", "crio", "cri"; "" for none. */
const char *po_runtime_name(enum po_runtime r);

/*
 * The short label of info into buf (size bytes, cut to fit): the
 * container's short id ("docker:0123456789ab") when there is one, else the
 * unit and its user unit ("user@1000.service/app.service"), else the unit,
 * else "" (no unit known). Returns buf.
 */
char *po_cgroup_label(const struct po_cgroup_info *info, char *buf,
                      size_t size);

/*
 * 1 when one of the n globs (fnmatch(3)) matches the unit, the user unit or
 * the label (po_cgroup_label()) that the cgroup paths p show, else 0: what
 * ExpectUnit and AllowUnit judge.
 */
int po_cgroup_units_match(const struct po_cgroup_paths *p, char *const *globs,
                          size_t n);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_CGROUP_H */
