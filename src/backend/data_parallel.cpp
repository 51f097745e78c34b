// Data parallel over devices (see data_parallel.hpp).
#include "backend/data_parallel.hpp"

#include <fmt/format.h>

#include <exception>
#include <thread>

#include "core/error.hpp"

namespace ropescope::backend {

DataParallelBackend::DataParallelBackend(std::vector<std::unique_ptr<Backend>> replicas)
    : replicas_(std::move(replicas)) {
  if (replicas_.size() < 2)
    throw ArgumentError("devices", fmt::format("data parallel needs at least two devices, got {}", replicas_.size()));
  for (std::size_t r = 1; r < replicas_.size(); ++r)
    if (&replicas_[r]->model() != &replicas_.front()->model())
      throw ArgumentError("devices", fmt::format("replica {} ({}) holds another model than replica 0 ({})", r,
                                                 replicas_[r]->name(), replicas_.front()->name()));
  adopt_notices(replicas_);
}

std::string DataParallelBackend::name() const {
  return fmt::format("data parallel over {} devices: {}", replicas_.size(), joined_names(replicas_));
}

std::string DataParallelBackend::precision() const {
  return replicas_.front()->precision() +
         "; data parallel: every sequence runs whole on one device, so its numbers are that device's alone";
}

std::vector<ForwardResult> DataParallelBackend::forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                                        const ForwardOptions& options) {
  check_forward_request(model(), sequences, options);  // bad input is named by its batch number before any work
  const std::size_t n = replicas_.size();
  std::vector<ForwardResult> results(sequences.size());
  std::vector<std::exception_ptr> errors(sequences.size());
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (std::size_t r = 0; r < n && r < sequences.size(); ++r)
    threads.emplace_back([&, r] {
      for (std::size_t b = r; b < sequences.size(); b += n) {
        try {
          ForwardOptions one = options;
          one.first_sequence = options.first_sequence + static_cast<int>(b);
          results[b] = std::move(replicas_[r]->forward({sequences[b]}, one).front());
        } catch (...) {
          errors[b] = std::current_exception();
          return;  // this replica stops; the others finish their sequences
        }
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  return results;
}

std::uint64_t DataParallelBackend::forward_bytes(long T, const ForwardOptions& options) const {
  return replicas_.front()->forward_bytes(T, options);  // per device: each holds one sequence at a time
}

void DataParallelBackend::check_memory(long T, const ForwardOptions& options) const {
  for (const auto& r : replicas_) r->check_memory(T, options);
}

std::vector<std::string> DataParallelBackend::kernel_choices() const {
  return replicas_.front()->kernel_choices();  // the replicas run the same code on the same shapes
}

}  // namespace ropescope::backend
