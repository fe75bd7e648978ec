#include "core/event_loop.h"

#include "core/communicator.h"
#include "core/log.h"

#include <string>

namespace loom {

namespace {
// How often the loop checks operation deadlines while operations are in flight.
constexpr uint64_t kTickMs = 20;
}  // namespace

EventLoop::EventLoop(Communicator& comm) : comm_(comm) {}

EventLoop::~EventLoop() { stop(); }

void EventLoop::start(int rank, int heartbeatMs, int livenessMs) {
  uv_loop_init(&loop_);
  loop_.data = this;
  uv_async_init(&loop_, &stopAsync_, &EventLoop::onStop);
  stopAsync_.data = this;
  uv_poll_init(&loop_, &transportPoll_, comm_.transportFd());
  transportPoll_.data = this;
  uv_poll_start(&transportPoll_, UV_READABLE, &EventLoop::onTransport);
  uv_timer_init(&loop_, &tick_);
  tick_.data = this;
  uv_timer_start(&tick_, &EventLoop::onTick, kTickMs, kTickMs);
  uv_timer_init(&loop_, &heartbeat_);
  heartbeat_.data = this;
  if (heartbeatMs > 0) uv_timer_start(&heartbeat_, &EventLoop::onHeartbeat, heartbeatMs, heartbeatMs);
  uv_timer_init(&loop_, &liveness_);
  liveness_.data = this;
  if (livenessMs > 0) uv_timer_start(&liveness_, &EventLoop::onLiveness, livenessMs, livenessMs);
  if (comm_.coordinatorFd() >= 0) watchCoordinator(comm_.coordinatorFd());
  running_ = true;
  thread_ = std::thread([this, rank] {
    log::setThreadRank(rank);
    log::nameThread(("loom-loop-" + std::to_string(rank)).c_str());
    uv_run(&loop_, UV_RUN_DEFAULT);
  });
}

void EventLoop::watchCoordinator(int fd) {
  stopWatchingCoordinator();
  coordinatorPoll_ = new uv_poll_t;
  uv_poll_init(&loop_, coordinatorPoll_, fd);
  coordinatorPoll_->data = this;
  uv_poll_start(coordinatorPoll_, UV_READABLE, &EventLoop::onCoordinator);
  watchingCoordinator_ = true;
}

void EventLoop::stopWatchingCoordinator() {
  if (!watchingCoordinator_) return;
  uv_poll_stop(coordinatorPoll_);
  uv_close(reinterpret_cast<uv_handle_t*>(coordinatorPoll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  coordinatorPoll_ = nullptr;
  watchingCoordinator_ = false;
}

void EventLoop::stop() {
  if (!running_.exchange(false)) return;
  uv_async_send(&stopAsync_);
  if (thread_.joinable()) thread_.join();
  uv_loop_close(&loop_);
}

void EventLoop::onStop(uv_async_t* a) {
  auto* self = static_cast<EventLoop*>(a->data);
  self->stopWatchingCoordinator();  // its handle is freed by its close callback
  uv_walk(
      &self->loop_,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
}

void EventLoop::onTransport(uv_poll_t* h, int status, int events) {
  static_cast<EventLoop*>(h->data)->comm_.onTransportEvent();
}

void EventLoop::onCoordinator(uv_poll_t* h, int status, int events) {
  static_cast<EventLoop*>(h->data)->comm_.onCoordinatorReadable();
}

void EventLoop::onTick(uv_timer_t* t) { static_cast<EventLoop*>(t->data)->comm_.onTick(); }

void EventLoop::onHeartbeat(uv_timer_t* t) { static_cast<EventLoop*>(t->data)->comm_.onHeartbeat(); }

void EventLoop::onLiveness(uv_timer_t* t) { static_cast<EventLoop*>(t->data)->comm_.onLiveness(); }

}  // namespace loom
