/*
 * Unit tests: /proc/PID/cgroup text and cgroup paths (plugin/cgroup.c), on
 * contents recorded from each layout: a hybrid systemd host, a pure cgroup
 * v2 host, a legacy v1 host, Docker with either cgroup driver, Podman,
 * containerd and CRI-O under Kubernetes, user managers, this sandbox.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "portowner/cgroup.h"
#include "portowner/proc.h"

#include "fixture.h"

#define ID64 "4f3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e"
#define POD "8d1e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
#define POD_ "8d1e1a2b_3c4d_4e5f_8a9b_0c1d2e3f4a5b"

static void parse(const char *text, struct po_cgroup_paths *p) {
  assert_int_equal(po_cgroup_parse(text, strlen(text), p), 0);
}

static void expect_path(const char *got, const char *want) {
  if (!want) {
    assert_null(got);
    return;
  }
  assert_non_null(got);
  assert_string_equal(got, want);
}

static void classify(const char *path, struct po_cgroup_info *i) {
  po_cgroup_classify(path, strlen(path), i);
}

/* Debian 11 with systemd in hybrid mode (what this machine mimics). */
static void test_parse_hybrid(void **state) {
  struct po_cgroup_paths p;
  (void)state;
  parse("13:misc:/\n"
        "12:pids:/system.slice/nginx.service\n"
        "11:cpu,cpuacct:/system.slice/nginx.service\n"
        "4:memory:/system.slice/nginx.service\n"
        "1:name=systemd:/system.slice/nginx.service\n"
        "0::/system.slice/nginx.service\n",
        &p);
  expect_path(p.v2, "/system.slice/nginx.service");
  expect_path(p.systemd, "/system.slice/nginx.service");
  po_cgroup_paths_release(&p);
  po_cgroup_paths_release(&p); /* twice is fine */
}

/* Debian 12 default: cgroup v2 only. No trailing newline on the last line
 * either (a short read). */
static void test_parse_unified(void **state) {
  struct po_cgroup_paths p;
  (void)state;
  parse("0::/user.slice/user-1000.slice/session-3.scope", &p);
  expect_path(p.v2, "/user.slice/user-1000.slice/session-3.scope");
  expect_path(p.systemd, NULL);
  po_cgroup_paths_release(&p);
}

/* A legacy host (CentOS 7): no 0:: line at all. */
static void test_parse_legacy(void **state) {
  struct po_cgroup_paths p;
  (void)state;
  parse("11:devices:/system.slice/sshd.service\n"
        "1:name=systemd:/system.slice/sshd.service\n",
        &p);
  expect_path(p.v2, NULL);
  expect_path(p.systemd, "/system.slice/sshd.service");
  po_cgroup_paths_release(&p);
}

/* This sandbox: hybrid, everything at the root but memory. */
static void test_parse_sandbox(void **state) {
  struct po_cgroup_paths p;
  struct po_cgroup_info i;
  (void)state;
  parse("9:name=systemd:/\n8:pids:/\n4:memory:/process_api/5096913bee21aff5\n"
        "0::/\n",
        &p);
  expect_path(p.v2, "/");
  expect_path(p.systemd, "/");
  po_cgroup_classify_paths(&p, &i);
  assert_string_equal(i.unit, "");
  assert_int_equal(i.runtime, PO_RUNTIME_NONE);
  po_cgroup_paths_release(&p);
}

/* Paths may hold ':'; malformed lines are skipped; the first line wins. */
static void test_parse_odd_lines(void **state) {
  struct po_cgroup_paths p;
  static const char nul[] = "0::/a\0b\n0::/good\n";
  (void)state;
  parse("garbage\n0:/x\n5:cpu:relative\n0::\n"
        "2:foo,name=systemd,bar:/a:b/c\n0::/x:y\n0::/second\n",
        &p);
  expect_path(p.v2, "/x:y");
  expect_path(p.systemd, "/a:b/c");
  po_cgroup_paths_release(&p);
  /* name=systemdX and a v2 line with controllers are neither. */
  parse("1:name=systemdX:/no\n0:cpu:/no\n", &p);
  expect_path(p.v2, NULL);
  expect_path(p.systemd, NULL);
  po_cgroup_paths_release(&p);
  assert_int_equal(po_cgroup_parse(nul, sizeof(nul) - 1, &p), 0);
  expect_path(p.v2, "/good");
  po_cgroup_paths_release(&p);
  assert_int_equal(po_cgroup_parse("", 0, &p), 0);
  expect_path(p.v2, NULL);
}

static void test_parse_too_long(void **state) {
  struct po_cgroup_paths p;
  size_t n = PO_CGROUP_PATH_MAX + 16;
  char *t = malloc(n + 32);
  (void)state;
  assert_non_null(t);
  strcpy(t, "0::/");
  memset(t + 4, 'a', n);
  strcpy(t + 4 + n, "\n0::/short\n");
  parse(t, &p);
  expect_path(p.v2, "/short");
  po_cgroup_paths_release(&p);
  free(t);
}

static void test_units(void **state) {
  struct po_cgroup_info i;
  (void)state;
  classify("/system.slice/nginx.service", &i);
  assert_string_equal(i.unit, "nginx.service");
  assert_string_equal(i.user_unit, "");
  classify("/system.slice/system-getty.slice/getty@tty1.service", &i);
  assert_string_equal(i.unit, "getty@tty1.service");
  classify("/user.slice/user-1000.slice/session-3.scope", &i);
  assert_string_equal(i.unit, "session-3.scope");
  classify("/init.scope", &i);
  assert_string_equal(i.unit, "init.scope");
  /* A sub-cgroup of a unit (Delegate=yes) is still the unit. */
  classify("/system.slice/docker.service/sub/leaf", &i);
  assert_string_equal(i.unit, "docker.service");
  /* systemd's escape of a name that could be a kernel file. */
  classify("/system.slice/_cpu.service", &i);
  assert_string_equal(i.unit, "cpu.service");
  /* Only slices, the root, no unit name: no unit. */
  classify("/system.slice", &i);
  assert_string_equal(i.unit, "");
  classify("/", &i);
  assert_string_equal(i.unit, "");
  classify("/docker/" ID64, &i);
  assert_string_equal(i.unit, "");
  classify("/system.slice/nginx", &i);
  assert_string_equal(i.unit, "");
  classify("/system.slice/foo@.service", &i);
  assert_string_equal(i.unit, "");
  classify("/system.slice/a@b@c.service", &i);
  assert_string_equal(i.unit, "");
  classify("/system.slice/.service", &i);
  assert_string_equal(i.unit, "");
  classify("/system.slice/a b.service", &i);
  assert_string_equal(i.unit, "");
}

static void test_user_units(void **state) {
  struct po_cgroup_info i;
  char label[600];
  (void)state;
  classify("/user.slice/user-1000.slice/user@1000.service/app.slice/"
           "app-gnome-firefox-2481.scope",
           &i);
  assert_string_equal(i.unit, "user@1000.service");
  assert_string_equal(i.user_unit, "app-gnome-firefox-2481.scope");
  classify("/user.slice/user-1000.slice/user@1000.service/"
           "session.slice/pipewire.service",
           &i);
  assert_string_equal(i.user_unit, "pipewire.service");
  assert_string_equal(po_cgroup_label(&i, label, sizeof(label)),
                      "user@1000.service/pipewire.service");
  classify("/user.slice/user-1000.slice/user@1000.service/init.scope", &i);
  assert_string_equal(i.user_unit, "init.scope");
  /* The user manager's own cgroup, and a unit that is not a manager. */
  classify("/user.slice/user-1000.slice/user@1000.service", &i);
  assert_string_equal(i.unit, "user@1000.service");
  assert_string_equal(i.user_unit, "");
  assert_string_equal(po_cgroup_label(&i, label, sizeof(label)),
                      "user@1000.service");
  classify("/system.slice/user@x.service/app.service", &i);
  assert_string_equal(i.user_unit, "");
  classify("/system.slice/nginx.service/app.service", &i);
  assert_string_equal(i.user_unit, "");
}

static void expect_container(const char *path, enum po_runtime rt,
                             const char *unit) {
  struct po_cgroup_info i;
  char label[64];
  classify(path, &i);
  assert_int_equal(i.runtime, rt);
  assert_string_equal(i.container, ID64);
  assert_string_equal(i.unit, unit);
  po_cgroup_label(&i, label, sizeof(label));
  assert_memory_equal(label, po_runtime_name(rt), strlen(po_runtime_name(rt)));
  assert_string_equal(label + strlen(po_runtime_name(rt)), ":4f3c2b1a09f8");
}

static void test_containers(void **state) {
  struct po_cgroup_info i;
  (void)state;
  /* Docker, systemd driver (runc names the scope) and cgroupfs driver. */
  expect_container("/system.slice/docker-" ID64 ".scope", PO_RUNTIME_DOCKER,
                   "docker-" ID64 ".scope");
  expect_container("/docker/" ID64, PO_RUNTIME_DOCKER, "");
  /* Podman, rootful and rootless (in the user manager), and cgroupfs. */
  expect_container("/machine.slice/libpod-" ID64 ".scope", PO_RUNTIME_PODMAN,
                   "libpod-" ID64 ".scope");
  expect_container("/machine.slice/libpod-" ID64 ".scope/container",
                   PO_RUNTIME_PODMAN, "libpod-" ID64 ".scope");
  expect_container("/user.slice/user-1000.slice/user@1000.service/user.slice/"
                   "libpod-" ID64 ".scope",
                   PO_RUNTIME_PODMAN, "user@1000.service");
  expect_container("/libpod_parent/libpod-" ID64, PO_RUNTIME_PODMAN, "");
  /* conmon is not the container. */
  classify("/machine.slice/libpod-conmon-" ID64 ".scope", &i);
  assert_int_equal(i.runtime, PO_RUNTIME_NONE);
  assert_string_equal(i.container, "");
  classify("/system.slice/crio-conmon-" ID64 ".scope", &i);
  assert_int_equal(i.runtime, PO_RUNTIME_NONE);
  /* Not 64 lowercase hex digits: not an id. */
  classify("/system.slice/docker-4F3C.scope", &i);
  assert_int_equal(i.runtime, PO_RUNTIME_NONE);
  classify("/docker/" ID64 "0", &i);
  assert_int_equal(i.runtime, PO_RUNTIME_NONE);
  classify("/other/" ID64, &i);
  assert_int_equal(i.runtime, PO_RUNTIME_NONE);
}

static void test_kubernetes(void **state) {
  struct po_cgroup_info i;
  char label[64];
  (void)state;
  /* containerd, systemd driver, burstable pod. */
  classify("/kubepods.slice/kubepods-burstable.slice/"
           "kubepods-burstable-pod" POD_ ".slice/cri-containerd-" ID64 ".scope",
           &i);
  assert_int_equal(i.runtime, PO_RUNTIME_CONTAINERD);
  assert_string_equal(i.container, ID64);
  assert_string_equal(i.pod, POD);
  assert_string_equal(i.unit, "cri-containerd-" ID64 ".scope");
  assert_string_equal(po_cgroup_label(&i, label, sizeof(label)),
                      "containerd:4f3c2b1a09f8");
  /* CRI-O, guaranteed pod (no QoS slice). */
  classify("/kubepods.slice/kubepods-pod" POD_ ".slice/crio-" ID64 ".scope",
           &i);
  assert_int_equal(i.runtime, PO_RUNTIME_CRIO);
  assert_string_equal(i.pod, POD);
  /* cgroupfs driver: the runtime is not in the name. */
  classify("/kubepods/besteffort/pod" POD "/" ID64, &i);
  assert_int_equal(i.runtime, PO_RUNTIME_CRI);
  assert_string_equal(i.container, ID64);
  assert_string_equal(i.pod, POD);
  assert_string_equal(po_runtime_name(i.runtime), "cri");
  classify("/kubepods/pod" POD "/crio-" ID64, &i);
  assert_int_equal(i.runtime, PO_RUNTIME_CRIO);
  assert_string_equal(i.pod, POD);
  /* The pause sandbox's pod cgroup only. */
  classify("/kubepods/burstable/pod" POD, &i);
  assert_int_equal(i.runtime, PO_RUNTIME_NONE);
  assert_string_equal(i.pod, POD);
  /* Not under kubepods, or a malformed uid: no pod. */
  classify("/other/pod" POD "/" ID64, &i);
  assert_string_equal(i.pod, "");
  assert_int_equal(i.runtime, PO_RUNTIME_NONE);
  classify("/kubepods.slice/kubepods-pod" POD ".slice", &i); /* '-' */
  assert_string_equal(i.pod, "");
  classify("/kubepods.slice/kubepodsXpod" POD_ ".slice", &i);
  assert_string_equal(i.pod, "");
}

/* A hybrid host whose container runtime named only the v1 hierarchy. */
static void test_classify_paths_fallback(void **state) {
  struct po_cgroup_paths p;
  struct po_cgroup_info i;
  (void)state;
  parse("1:name=systemd:/docker/" ID64
        "\n0::/system.slice/containerd.service\n",
        &p);
  po_cgroup_classify_paths(&p, &i);
  assert_string_equal(i.unit, "containerd.service");
  assert_int_equal(i.runtime, PO_RUNTIME_DOCKER);
  assert_string_equal(i.container, ID64);
  po_cgroup_paths_release(&p);
  parse("1:name=systemd:/system.slice/cron.service\n0::/\n", &p);
  po_cgroup_classify_paths(&p, &i);
  assert_string_equal(i.unit, "cron.service");
  po_cgroup_paths_release(&p);
}

static void test_label_cut(void **state) {
  struct po_cgroup_info i;
  char small[8];
  (void)state;
  classify("/system.slice/nginx.service", &i);
  assert_string_equal(po_cgroup_label(&i, small, sizeof(small)), "nginx.s");
  classify("/", &i);
  assert_string_equal(po_cgroup_label(&i, small, sizeof(small)), "");
}

/* <ProcRoot>/PID/cgroup as po_proc_read() reads it off procfs (a fixture
 * tree): every time, regular files only, whole lines of a long file. */
static void test_proc_read_cgroup(void **state) {
  char root[256], path[512];
  struct po_proc p;
  static const char v2only[] = "0::/system.slice/web.service\n";
  static const char hybrid[] = "3:pids:/x\n1:name=systemd:/user.slice/"
                               "session-2.scope\n0::/user.slice/"
                               "session-2.scope\n";
  (void)state;
  fx_root_make(root, sizeof(root), NULL, "cgroup");
  fx_proc(root, 100);
  fx_proc_details(root, 100, "web", 0, 77);

  /* No cgroup file: nothing known, the rest read. */
  assert_int_equal(po_proc_read(root, 100, &p), 0);
  assert_null(p.cgroup.v2);
  assert_null(p.cgroup.systemd);
  assert_string_equal(p.comm, "web");
  po_proc_release(&p);

  /* A pure cgroup v2 host. */
  fx_write(root, "100/cgroup", v2only, sizeof(v2only) - 1);
  assert_int_equal(po_proc_read(root, 100, &p), 0);
  assert_string_equal(p.cgroup.v2, "/system.slice/web.service");
  assert_null(p.cgroup.systemd);
  {
    /* Off procfs it is read every time, known or not. */
    struct po_proc again;
    fx_write(root, "100/cgroup", hybrid, sizeof(hybrid) - 1);
    assert_int_equal(po_proc_read_ex(root, 100, 0, 0, &p, &again), 0);
    assert_string_equal(again.cgroup.v2, "/user.slice/session-2.scope");
    assert_string_equal(again.cgroup.systemd, "/user.slice/session-2.scope");
    po_proc_release(&again);
  }
  po_proc_release(&p);

  /* Longer than is read (16 KiB): the line cut at the end is not taken
   * (else "0::/second/lo" would be). */
  {
    char *big = malloc(20000);
    size_t n = 0;
    assert_non_null(big);
    n += (size_t)sprintf(big, "1:name=systemd:/first\n");
    while (n + 9 < 16384 - 10)
      n += (size_t)sprintf(big + n, "5:cpu:/x\n");
    while (n < 16384 - 13)
      big[n++] = '\n';
    n += (size_t)sprintf(big + n, "0::/second/longname\n");
    assert_true(n > 16384 && n < 16384 + 20);
    fx_write(root, "100/cgroup", big, n);
    free(big);
    assert_int_equal(po_proc_read(root, 100, &p), 0);
    assert_null(p.cgroup.v2);
    assert_string_equal(p.cgroup.systemd, "/first");
    po_proc_release(&p);
  }

  /* A FIFO is never read (it would block). */
  fx_remove(root, "100/cgroup");
  fx_path(root, path, sizeof(path), "100/cgroup");
  assert_int_equal(mkfifo(path, 0600), 0);
  assert_int_equal(po_proc_read(root, 100, &p), 0);
  assert_null(p.cgroup.v2);
  po_proc_release(&p);
  assert_int_equal(fx_root_remove(root), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_hybrid),
      cmocka_unit_test(test_parse_unified),
      cmocka_unit_test(test_parse_legacy),
      cmocka_unit_test(test_parse_sandbox),
      cmocka_unit_test(test_parse_odd_lines),
      cmocka_unit_test(test_parse_too_long),
      cmocka_unit_test(test_units),
      cmocka_unit_test(test_user_units),
      cmocka_unit_test(test_containers),
      cmocka_unit_test(test_kubernetes),
      cmocka_unit_test(test_classify_paths_fallback),
      cmocka_unit_test(test_label_cut),
      cmocka_unit_test(test_proc_read_cgroup),
  };
  fx_set_failure(fx_fail_cmocka);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
