// What a C API call returned and the message it left (loomGetLastError), for tests that check both.
#pragma once

#include <loom/loom.h>

#include <string>

namespace loomtest {

struct Outcome {
  loomResult_t rc = loomSuccess;
  std::string message;
};

inline Outcome outcome(loomResult_t rc, loomComm_t comm) { return {rc, loomGetLastError(comm)}; }

inline bool mentions(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

}  // namespace loomtest
