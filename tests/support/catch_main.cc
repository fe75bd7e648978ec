// Catch2 main with a watchdog: a test that hangs fails (SIGALRM) instead of blocking CI.
// LOOM_TEST_WATCHDOG_S overrides the default of 240 s.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace {
void onAlarm(int) {
  const char msg[] = "watchdog: test exceeded its time limit; aborting\n";
  (void)!write(2, msg, sizeof(msg) - 1);
  _exit(124);
}
}  // namespace

int main(int argc, char** argv) {
  int seconds = 240;
  if (const char* s = std::getenv("LOOM_TEST_WATCHDOG_S")) seconds = std::atoi(s);
  std::signal(SIGALRM, onAlarm);
  alarm(static_cast<unsigned>(seconds));
  std::signal(SIGPIPE, SIG_IGN);
  return Catch::Session().run(argc, argv);
}
