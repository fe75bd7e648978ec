// Logging with fmt: LOOM_DEBUG=NONE|WARN|INFO|TRACE, LOOM_DEBUG_SUBSYS=INIT,COLL,NET,COORD|ALL.
// Every line is prefixed "host:pid:tid [rank] SUBSYS LEVEL".
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>

namespace loom::log {

enum class Level : int { None = 0, Warn = 1, Info = 2, Trace = 3 };
enum class Subsys : int { Init = 1, Coll = 2, Net = 4, Coord = 8 };

bool enabled(Level level, Subsys subsys);
void write(Level level, Subsys subsys, const std::string& message);
// The rank shown in this thread's prefix (-1: none yet).
void setThreadRank(int rank);
// Names the calling thread (shows in top/gdb), e.g. "loom-loop-3".
void nameThread(const char* name);

template <typename... Args>
void warn(Subsys s, fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Warn, s)) write(Level::Warn, s, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(Subsys s, fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Info, s)) write(Level::Info, s, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void trace(Subsys s, fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Trace, s)) write(Level::Trace, s, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace loom::log
