#include "core/status.h"

namespace loom {

const char* resultString(loomResult_t code) {
  switch (code) {
#define LOOM_RESULT_CASE_(name, value, msg) \
  case name:                                \
    return msg;
    LOOM_RESULT_MAP(LOOM_RESULT_CASE_)
#undef LOOM_RESULT_CASE_
    default:
      return "unknown result code";
  }
}

std::string Status::toString() const {
  if (isOk()) return "success";
  return message_.empty() ? resultString(code_) : fmt::format("{}: {}", resultString(code_), message_);
}

}  // namespace loom
