// The exception types of ropescope. Library code throws; only main() turns an
// exception into a message and an exit code (ArgumentError -> 2, others -> 1).
#pragma once

#include <stdexcept>
#include <string>

namespace ropescope {

// Any failure with a message meant for the user.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bad argument or parameter value: the message names the argument and what
// was expected. Exit code 2 from the CLI, ValueError from Python.
// Library code names its parameters, not the flags of one front end: the
// two-argument form keeps the parameter apart, what() reads
// "PARAMETER: DETAIL", and each front end renders the parameter its own way
// (the CLI as its flag, "--exact-limit"; Python as the keyword, exact_limit).
class ArgumentError : public Error {
 public:
  using Error::Error;
  ArgumentError(std::string parameter, const std::string& detail)
      : Error(parameter + ": " + detail), parameter_(std::move(parameter)), detail_(detail) {}
  // Empty when the message names no single parameter.
  const std::string& parameter() const { return parameter_; }
  const std::string& detail() const { return detail_; }

 private:
  std::string parameter_, detail_;
};

// A malformed input file (checkpoint, config, token file): the message names
// the file, the tensor or field, and what was expected.
class FormatError : public Error {
 public:
  using Error::Error;
};

}  // namespace ropescope
