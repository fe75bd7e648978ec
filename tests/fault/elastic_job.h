// A job of elastic_worker processes around a loomd of the test's own, for the FAULTS.md scenarios:
// founders and joiners started with their own arguments, every wait bounded, and the per-step
// lines ("step S epoch E world W ... state T") of each process collected for comparison.
#pragma once

#include "multiproc/subprocess.h"

#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace loomtest {

class ElasticJob {
 public:
  // `env`: extra variables for every rank (LOOM_PEER_TIMEOUT_MS=...); `program`: the rank program
  // in the build's bin directory (elastic_worker, or the example elastic_train).
  // `coordinator`: the address of a coordinator the test runs itself; empty: start a loomd here.
  ElasticJob(int commId, std::vector<std::string> env, std::string program = "elastic_worker",
             std::string coordinator = "")
      : commId_(commId), env_(std::move(env)), program_(std::move(program)), address_(std::move(coordinator)) {
    if (address_.empty()) loomd_ = startLoomd(address_);
    REQUIRE(!address_.empty());
  }
  ~ElasticJob() {
    for (auto& p : procs_)
      if (!p->exited()) p->stop(SIGKILL, 0);
    if (loomd_) loomd_->stop(SIGTERM, 3);
  }

  // Founder `rank` of `world` (ids are founding ranks).
  Child& founder(int rank, int world, const std::vector<std::string>& args) {
    return start(args, {"LOOM_RANK=" + std::to_string(rank), "LOOM_WORLD_SIZE=" + std::to_string(world)});
  }
  // A process joining the running communicator with identity `id`.
  Child& joiner(int id, std::vector<std::string> args) {
    args.insert(args.end(), {"--join", "--id", std::to_string(id)});
    return start(args, {});
  }

  // Waits (pumping everyone's output) until `who` printed `text`; false after `seconds`.
  bool waitFor(Child& who, const std::string& text, double seconds) {
    const auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    while (who.out().find(text) == std::string::npos) {
      if (Clock::now() >= until) return false;
      for (auto& p : procs_) p->pump(2);
    }
    return true;
  }

  // Every process has ended within `seconds` (the watchdog); the stragglers are killed.
  bool waitAll(double seconds) {
    const auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    bool all = true;
    for (auto& p : procs_) {
      const double left = std::chrono::duration<double>(until - Clock::now()).count();
      if (!p->wait(std::max(left, 0.0))) {
        all = false;
        p->stop(SIGKILL, 0);
      }
    }
    return all;
  }

  std::vector<std::unique_ptr<Child>>& procs() { return procs_; }

  // Reads whatever every process printed, waiting up to `ms` on each.
  void pumpAll(int ms) {
    for (auto& p : procs_) p->pump(ms);
  }

  std::string report() const {
    std::string s;
    for (size_t i = 0; i < procs_.size(); ++i)
      s += "--- process " + std::to_string(i) + ":\n" + procs_[i]->out() + procs_[i]->err();
    return s;
  }

  // The "step ..." lines of one process, by step number.
  static std::map<int, std::string> stepLines(const std::string& out) {
    std::map<int, std::string> lines;
    for (const auto& line : loomtest::lines(out))
      if (line.rfind("step ", 0) == 0) lines[std::stoi(line.substr(5))] = line;
    return lines;
  }

  // Every step completed by several processes has the same line on all of them: same epoch,
  // world, contributors, result hash and state hash. Returns the union of lines by step.
  // Only processes `counted` takes part: by default those not SIGKILLed. A killed process may have
  // completed a step that the survivors failed and then redid among themselves (with
  // LOOM_OUTCOME_VOTE=0 they agree at their next shared-state sync, which the killed one never
  // reached), so its last completions are not theirs to match.
  std::map<int, std::string> checkAgreement(
      const std::function<bool(const Child&)>& counted = [](const Child& c) { return c.termSignal() != SIGKILL; })
      const {
    std::map<int, std::string> reference;
    for (const auto& p : procs_) {
      if (!counted(*p)) continue;
      for (const auto& [step, line] : stepLines(p->out())) {
        auto [it, fresh] = reference.try_emplace(step, line);
        INFO("step " << step);
        if (!fresh) CHECK(line == it->second);
      }
    }
    return reference;
  }

 private:
  Child& start(std::vector<std::string> args, std::vector<std::string> env) {
    args.insert(args.begin(), bin(program_));
    env.insert(env.end(), {"LOOM_COORDINATOR=" + address_, "LOOM_COMM_ID=" + std::to_string(commId_),
                           "LOOM_DEBUG=NONE"});
    env.insert(env.end(), env_.begin(), env_.end());
    procs_.push_back(std::make_unique<Child>(args, cleanEnv(env)));
    return *procs_.back();
  }

  int commId_;
  std::vector<std::string> env_;
  std::string program_;
  std::string address_;
  std::unique_ptr<Child> loomd_;
  std::vector<std::unique_ptr<Child>> procs_;
};

}  // namespace loomtest
