// Status and Expected<T>: how failures travel inside Loom. Codes are the public loomResult_t,
// so nothing needs translating at the C boundary; the message says what, which peer, what to do.
#pragma once

#include <loom/loom.h>

#include <fmt/format.h>

#include <string>
#include <utility>
#include <variant>

namespace loom {

class [[nodiscard]] Status {
 public:
  Status() = default;  // success
  Status(loomResult_t code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool isOk() const { return code_ == loomSuccess; }
  explicit operator bool() const { return isOk(); }
  loomResult_t code() const { return code_; }
  const std::string& message() const { return message_; }
  // "peer lost: <message>"
  std::string toString() const;

 private:
  loomResult_t code_ = loomSuccess;
  std::string message_;
};

template <typename... Args>
Status makeError(loomResult_t code, fmt::format_string<Args...> f, Args&&... args) {
  return Status(code, fmt::format(f, std::forward<Args>(args)...));
}

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}                   // NOLINT: implicit by design
  Expected(Status error) : v_(std::move(error)) {}               // NOLINT: must not be ok
  bool hasValue() const { return v_.index() == 0; }
  explicit operator bool() const { return hasValue(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Status& error() const { return std::get<1>(v_); }
  Status status() const { return hasValue() ? Status::ok() : error(); }

 private:
  std::variant<T, Status> v_;
};

const char* resultString(loomResult_t code);

}  // namespace loom

#define LOOM_RETURN_IF_ERROR(expr)        \
  do {                                    \
    ::loom::Status s_ = (expr);           \
    if (!s_.isOk()) return s_;            \
  } while (0)
