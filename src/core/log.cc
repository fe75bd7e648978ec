#include "core/log.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace loom::log {
namespace {

struct Filter {
  Level level = Level::Warn;
  int subsystems = 0xF;
};

Filter readFilter() {
  Filter f;
  if (const char* v = std::getenv("LOOM_DEBUG")) {
    std::string s(v);
    if (s == "NONE") f.level = Level::None;
    else if (s == "INFO") f.level = Level::Info;
    else if (s == "TRACE") f.level = Level::Trace;
  }
  if (const char* v = std::getenv("LOOM_DEBUG_SUBSYS")) {
    std::string s(v);
    if (s.find("ALL") == std::string::npos) {
      f.subsystems = 0;
      if (s.find("INIT") != std::string::npos) f.subsystems |= int(Subsys::Init);
      if (s.find("COLL") != std::string::npos) f.subsystems |= int(Subsys::Coll);
      if (s.find("NET") != std::string::npos) f.subsystems |= int(Subsys::Net);
      if (s.find("COORD") != std::string::npos) f.subsystems |= int(Subsys::Coord);
    }
  }
  return f;
}

const Filter& filter() {
  static const Filter f = readFilter();
  return f;
}

thread_local int tlsRank = -1;

const char* subsysName(Subsys s) {
  switch (s) {
    case Subsys::Init: return "INIT";
    case Subsys::Coll: return "COLL";
    case Subsys::Net: return "NET";
    case Subsys::Coord: return "COORD";
  }
  return "?";
}

const char* levelName(Level l) {
  switch (l) {
    case Level::Warn: return "WARN";
    case Level::Info: return "INFO";
    case Level::Trace: return "TRACE";
    default: return "";
  }
}

}  // namespace

bool enabled(Level level, Subsys subsys) {
  const Filter& f = filter();
  return int(level) <= int(f.level) && (f.subsystems & int(subsys)) != 0;
}

void setThreadRank(int rank) { tlsRank = rank; }

void nameThread(const char* name) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%s", name);
  pthread_setname_np(pthread_self(), buf);
}

void write(Level level, Subsys subsys, const std::string& message) {
  static const std::string host = [] {
    char h[256] = {0};
    gethostname(h, sizeof(h) - 1);
    return std::string(h);
  }();
  std::string line = fmt::format("{}:{}:{} [{}] {} {} {}\n", host, getpid(), static_cast<long>(syscall(SYS_gettid)),
                                 tlsRank, subsysName(subsys), levelName(level), message);
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace loom::log
