// Exceptions out of OpenMP loops. An exception must not leave an OpenMP
// parallel region (the runtime would call std::terminate and end the
// process), so every parallel loop body of the CPU backend runs inside
// ParallelErrors::run: what it throws is caught on its thread, the first one
// kept, the remaining iterations skipped, and rethrow() after the loop throws
// it on the calling thread, where callers can catch it.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>

namespace ropescope::cpu {

class ParallelErrors {
 public:
  template <class Body>
  void run(Body&& body) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      body();
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  // Throws the first captured exception, if any (call after the loop).
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr first_;
};

}  // namespace ropescope::cpu
