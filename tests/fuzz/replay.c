/*
 * Replay driver for a fuzz target without libFuzzer: feeds every regular
 * file of the directories in REPLAY_DIRS (colon-separated, set at compile
 * time) and of the paths given as arguments (files or directories) to
 * LLVMFuzzerTestOneInput(), once each, in name order. A violated invariant
 * aborts; exit status 0 when every input passed, 1 when an input could not
 * be read or none was found.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef REPLAY_DIRS
#define REPLAY_DIRS ""
#endif

static int replay_file(const char *path, size_t *count) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = NULL;
  size_t len = 0, cap = 0;

  if (!f) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  for (;;) {
    size_t n;
    if (len == cap) {
      unsigned char *nb = realloc(buf, cap ? cap * 2 : 4096);
      if (!nb) {
        fclose(f);
        free(buf);
        fprintf(stderr, "replay: %s: out of memory\n", path);
        return -1;
      }
      buf = nb;
      cap = cap ? cap * 2 : 4096;
    }
    n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0)
      break;
  }
  if (ferror(f)) {
    fprintf(stderr, "replay: %s: read error\n", path);
    fclose(f);
    free(buf);
    return -1;
  }
  fclose(f);
  /* libFuzzer never passes NULL; a copy of exactly len bytes lets the
   * memory checker see reads past the end. */
  {
    unsigned char *exact = malloc(len ? len : 1);
    if (!exact) {
      free(buf);
      return -1;
    }
    if (len)
      memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
  }
  (*count)++;
  return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

static int replay_path(const char *path, size_t *count) {
  struct dirent **names;
  struct stat st;
  int n, ret = 0;

  if (stat(path, &st) != 0) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode))
    return replay_file(path, count);
  n = scandir(path, &names, NULL, by_name);
  if (n < 0) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  for (int i = 0; i < n; i++) {
    char sub[4096];

    if (names[i]->d_name[0] != '.' &&
        (size_t)snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name) <
            sizeof(sub) &&
        stat(sub, &st) == 0 && S_ISREG(st.st_mode) &&
        replay_file(sub, count) < 0)
      ret = -1;
    free(names[i]);
  }
  free(names);
  return ret;
}

int main(int argc, char **argv) {
  char dirs[] = REPLAY_DIRS;
  size_t count = 0;
  int ret = 0;

  for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d;
       d = strtok_r(NULL, ":", &save)) {
    struct stat st;
    /* A target may have no regressions yet: its directory may not exist. */
    if (stat(d, &st) != 0 && errno == ENOENT)
      continue;
    if (replay_path(d, &count) < 0)
      ret = 1;
  }
  for (int i = 1; i < argc; i++)
    if (replay_path(argv[i], &count) < 0)
      ret = 1;
  printf("replay: %zu inputs replayed\n", count);
  if (count == 0) {
    fprintf(stderr, "replay: no inputs found\n");
    return 1;
  }
  return ret;
}
