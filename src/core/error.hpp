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

// A bad command-line argument or parameter value: the message names the
// argument and what was expected. Exit code 2.
class ArgumentError : public Error {
 public:
  using Error::Error;
};

// A malformed input file (checkpoint, config, token file): the message names
// the file, the tensor or field, and what was expected.
class FormatError : public Error {
 public:
  using Error::Error;
};

}  // namespace ropescope
