// Open file descriptors and threads of this process, for tests that check nothing leaks.
#pragma once

#include <dirent.h>

namespace loomtest {

inline int countEntries(const char* dir) {
  int n = 0;
  if (DIR* d = opendir(dir)) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n;
}
inline int openFds() { return countEntries("/proc/self/fd"); }
inline int threadCount() { return countEntries("/proc/self/task"); }

}  // namespace loomtest
