// The communicator's event-loop thread (libuv): watches the transport's fd and the coordinator
// socket, and runs the timers (operation deadlines, heartbeats). Callbacks never block: they
// take the engine lock only to advance non-blocking state machines.
#pragma once

#include <uv.h>

#include <atomic>
#include <thread>

namespace loom {

class Communicator;

class EventLoop {
 public:
  explicit EventLoop(Communicator& comm);
  ~EventLoop();
  // Starts the thread; heartbeatMs <= 0 disables the coordinator heartbeat timer, livenessMs <= 0
  // the peer liveness timer.
  void start(int rank, int heartbeatMs, int livenessMs);
  // Stops and joins the thread. Idempotent; safe from any thread but the loop's own.
  void stop();
  // Loop thread only: stop reading the coordinator socket (it failed), or read a new one (reconnected).
  void stopWatchingCoordinator();
  void watchCoordinator(int fd);

 private:
  static void onTransport(uv_poll_t* h, int status, int events);
  static void onCoordinator(uv_poll_t* h, int status, int events);
  static void onTick(uv_timer_t* t);
  static void onHeartbeat(uv_timer_t* t);
  static void onLiveness(uv_timer_t* t);
  static void onStop(uv_async_t* a);

  Communicator& comm_;
  uv_loop_t loop_{};
  uv_poll_t transportPoll_{};
  uv_poll_t* coordinatorPoll_ = nullptr;  // its own allocation: a reconnect watches a new fd
  uv_timer_t tick_{};
  uv_timer_t heartbeat_{};
  uv_timer_t liveness_{};
  uv_async_t stopAsync_{};
  bool watchingCoordinator_ = false;
  std::thread thread_;
  std::atomic<bool> running_{false};
};

}  // namespace loom
